"""`photod list`, `photod top` and `photod status`: read the index (never write it).

They open the index read-only and WAL lets them run while the daemon writes.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from photod.cli.common import db_option, emit_json, json_option, library_errors

SORTS = ["score", "stars", "user_rating", "captured_at", "added_at", "scored_at", "path", "mtime"]


def _db_path(db_path: str | None) -> Path:
    from photod.config import load_settings
    from photod.paths import default_db_path

    if db_path:
        return Path(db_path)
    configured = load_settings().db
    return Path(configured) if configured else default_db_path()


def _stars_text(row: dict[str, Any]) -> str:
    stars = row["user_rating"] if row.get("user_rating") is not None else row.get("stars")
    if stars is None:
        return "-"
    text = "reject" if stars < 0 else ("★" * stars or "0")
    return text + ("*" if row.get("user_rating") is not None else "")


def _suggestion_text(suggestion: dict[str, Any]) -> str:
    parts = [f"gain {suggestion['gain']:+.3f}"]
    if suggestion.get("crop"):
        parts.append("crop " + ",".join(f"{v:.2f}" for v in suggestion["crop"]))
    if suggestion.get("exposure_ev"):
        parts.append(f"{suggestion['exposure_ev']:+.2f} EV")
    return "; ".join(parts)


def _print_rows(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        for row in rows:
            emit_json(row)
        return
    for row in rows:
        if row["status"] == "ok":
            line = f"{row['score']:6.3f}  {_stars_text(row):<6}  {row['path']}"
            if row.get("suggestion"):
                line += f"  [{_suggestion_text(row['suggestion'])}]"
            click.echo(line)
        else:
            error = row.get("error") or ""
            # photod's errors already start with the path; don't print it twice.
            error = error.removeprefix(f"{row['path']}: ")
            detail = f": {error}" if error else ""
            click.echo(f"{row['status']:>6}  {'':<6}  {row['path']}{detail}")


@click.command("list")
@click.option("--min-stars", type=click.IntRange(-1, 5), default=None, help="At least N stars.")
@click.option("--status", type=click.Choice(["ok", "error", "missing"]), default=None)
@click.option("--since", default=None, help="Indexed since DATE (YYYY-MM-DD, today, 7d, ...).")
@click.option("--camera", default=None, help="Camera make or model contains this text.")
@click.option("--folder", type=click.Path(file_okay=False), default=None, help="Only under this.")
@click.option("--sort", type=click.Choice(SORTS), default="score", show_default=True)
@click.option("--asc", is_flag=True, help="Ascending order (default: descending).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most N photos.")
@click.option(
    "--suggested", is_flag=True, help="Only photos with a worthwhile stored edit suggestion."
)
@db_option
@json_option
@library_errors
def list_command(
    min_stars: int | None,
    status: str | None,
    since: str | None,
    camera: str | None,
    folder: str | None,
    sort: str,
    asc: bool,
    limit: int | None,
    suggested: bool,
    db_path: str | None,
    as_json: bool,
) -> None:
    """List indexed photos, best first. A * after the stars marks your own rating.

    With --suggested, only photos whose stored suggestion gains more than its margin, with the gain
    and the edit (see `photod suggestions PATH` for the steps).
    """
    from photod.index import open_index_readonly, query_photos

    db = open_index_readonly(_db_path(db_path))
    rows = query_photos(
        db,
        min_stars=min_stars,
        status=status,
        since=since,
        camera=camera,
        sort=sort,
        descending=not asc,
        limit=limit,
        folder=folder,
        suggested=suggested,
    )
    if suggested:
        from photod.suggest_store import attach_suggestions

        attach_suggestions(db, rows)
    _print_rows(rows, as_json)


@click.command()
@click.argument("n", type=click.IntRange(1), default=10)
@click.option("--folder", type=click.Path(file_okay=False), default=None, help="Only under this.")
@db_option
@json_option
@library_errors
def top(n: int, folder: str | None, db_path: str | None, as_json: bool) -> None:
    """The N best-scoring photos (default 10) that are still there."""
    from photod.index import open_index_readonly, query_photos

    db = open_index_readonly(_db_path(db_path))
    _print_rows(query_photos(db, status="ok", limit=n, folder=folder), as_json)


@click.command()
@db_option
@json_option
@library_errors
def status(db_path: str | None, as_json: bool) -> None:
    """Counts in the index, last activity, and whether a daemon is running on it."""
    from photod.daemon import daemon_holding
    from photod.index import counts, open_index_readonly

    path = _db_path(db_path)
    db = open_index_readonly(path)
    report: dict[str, Any] = {"db": str(path), **counts(db)}
    pid = daemon_holding(path)
    last_run = None
    if db["daemon_runs"].exists():
        runs = list(db.query("SELECT * FROM daemon_runs ORDER BY id DESC LIMIT 1"))
        last_run = runs[0] if runs else None
    report["daemon"] = {
        "running": pid is not None,
        "pid": pid,
        "folders": _folders(last_run),
        "started_at": last_run["started_at"] if last_run else None,
        "heartbeat_at": last_run["heartbeat_at"] if last_run else None,
        "stopped_at": last_run["stopped_at"] if last_run else None,
        "stop_reason": last_run.get("stop_reason") if last_run else None,
    }
    if as_json:
        emit_json(report)
        return
    by = report["by_status"]
    click.echo(f"index:    {path}")
    click.echo(
        f"photos:   {report['total']} ({by['ok']} ok, {by['error']} errors, "
        f"{by['missing']} missing)"
    )
    if report["write_pending"]:
        click.echo(
            f"waiting:  {report['write_pending']} scored photos whose rating could not be "
            "written; retried on the next pass"
        )
    if report["by_stars"]:
        stars = ", ".join(f"{k}★ {v}" for k, v in report["by_stars"].items())
        click.echo(f"stars:    {stars}")
    click.echo(f"last:     {report['last_activity'] or 'never'}")
    daemon = report["daemon"]
    if daemon["running"]:
        where = ", ".join(daemon["folders"] or [])
        click.echo(f"daemon:   running (pid {pid}) since {daemon['started_at']}, watching {where}")
    else:
        when = daemon["stopped_at"] or daemon["heartbeat_at"]
        why = f", {daemon['stop_reason']}" if daemon["stop_reason"] else ""
        click.echo("daemon:   not running" + (f" (last seen {when}{why})" if when else ""))


def _folders(run: dict[str, Any] | None) -> list[str] | None:
    import json

    if not run or not run.get("folders"):
        return None
    try:
        return [os.fspath(f) for f in json.loads(run["folders"])]
    except ValueError:
        return None


def register(group: click.Group) -> None:
    group.add_command(list_command)
    group.add_command(top)
    group.add_command(status)
