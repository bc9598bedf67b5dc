"""`photod cull` and `photod group`: find bursts and near-duplicates, pick the best frame of each.

`photod cull PATH...` works on any files, with no index: it decodes, checks and scores them, groups
them, and shows each group with its pick and why. `--apply` marks the picks (and, optionally,
demotes the others) through photod's safe metadata writer; it never deletes or moves a file.

`photod group PATH|--all` regroups photos already in the index from their stored embeddings and
stores the groups there (table `groups`, column `photos.group_id`).

Thresholds and weights: command-line options, else `cull.toml` in photod's config folder with
`[grouping]` and `[ranking]` tables whose keys are the fields of `GroupingConfig` and
`RankingConfig` (photod/cull.py), else the documented defaults.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from photod.cli.common import (
    batch_size_option,
    db_option,
    device_option,
    emit_json,
    index_if_any,
    json_option,
    library_errors,
    model_option,
    progress_bar,
)

MARKS = ("labels", "stars", "both")


def load_cull_config(overrides: dict[str, Any]) -> tuple[Any, Any]:
    """GroupingConfig and RankingConfig from `cull.toml` (if any), then CLI overrides."""
    import tomllib

    from photod.cull import GroupingConfig, RankingConfig
    from photod.errors import PhotodError
    from photod.paths import config_dir

    path = config_dir() / "cull.toml"
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise PhotodError(f"cannot read cull settings: {exc}", str(path)) from exc
    try:
        grouping = GroupingConfig.from_mapping(data.get("grouping"))
        ranking = RankingConfig()
        for key, value in (data.get("ranking") or {}).items():
            if not hasattr(ranking, key):
                raise PhotodError(f"unknown ranking setting {key!r}", str(path))
            setattr(ranking, key, type(getattr(ranking, key))(value))
    except (TypeError, ValueError) as exc:
        raise PhotodError(f"bad cull setting: {exc}", str(path)) from exc
    for key, value in overrides.items():
        if value is None:
            continue
        target = grouping if hasattr(grouping, key) else ranking
        setattr(target, key, value)
    return grouping, ranking


def _threshold_options(func: Any) -> Any:
    options = [
        click.option(
            "--burst-gap", "burst_gap_s", type=click.FloatRange(0), default=None,
            help="Longest gap between frames of a burst, seconds (default 2).",
        ),
        click.option(
            "--similarity", "burst_similarity", type=click.FloatRange(0, 1), default=None,
            help="Least embedding cosine similarity within a burst (default 0.80).",
        ),
        click.option(
            "--duplicate-similarity", "duplicate_similarity", type=click.FloatRange(0, 1),
            default=None, help="Least similarity for near-duplicates without time (default 0.92).",
        ),
        click.option(
            "--keep", type=click.IntRange(1), default=None,
            help="Frames marked best in each group (default 1).",
        ),
    ]  # fmt: skip
    for option in reversed(options):
        func = option(func)
    return func


def _frame_dict(record: Any, frame: Any, ranked: bool) -> dict[str, Any]:
    checks = record.checks
    return {
        "path": record.path,
        "score": None if record.score is None else round(record.score, 4),
        "stars": record.stars,
        "best": frame.best,
        "reject": frame.reject,
        "value": round(frame.value, 4) if ranked else None,
        "focus": None if frame.focus_ratio is None else round(frame.focus_ratio, 3),
        "eyes": _eyes(checks),
        "motion_blur": None if checks is None else round(checks.motion_blur, 3),
        "clipped": None if checks is None else round(checks.clipped_highlights, 4),
        "reasons": frame.reasons,
    }


def _eyes(checks: Any) -> str | None:
    if checks is None or not checks.faces:
        return None
    if checks.eyes_closed:
        return "closed"
    return "open" if checks.eyes_open else "unknown"


def group_dicts(results: list[Any], records: list[Any]) -> list[dict[str, Any]]:
    """The `--json` shape: one object per group."""
    from photod.cull import group_key

    out = []
    for result in results:
        group = result.group
        members = [records[i].path for i in group.members]
        out.append(
            {
                "group": group_key(members),
                "kind": group.kind,
                "ranked": group.ranked,
                "size": len(members),
                "best": [records[i].path for i in result.best],
                "photos": [_frame_dict(records[f.index], f, group.ranked) for f in result.frames],
            }
        )
    return out


def flag_singles(results: list[Any], records: list[Any]) -> list[dict[str, Any]]:
    """Photos in no group whose own checks show a fault worth a look (closed eyes).

    Missed focus is judged only against other frames of the same moment: a face is smoother than
    most backgrounds, so "background sharper than the face" alone flags good portraits too.
    """
    grouped = {i for result in results for i in result.group.members}
    out = []
    for i, record in enumerate(records):
        if i in grouped or record.checks is None:
            continue
        flags = ["eyes closed"] if record.checks.eyes_closed else []
        if flags:
            out.append({"single": True, "path": record.path, "flags": flags})
    return out


def _print_group(data: dict[str, Any]) -> None:
    if data["ranked"]:
        click.echo(f"{data['kind']} of {data['size']}  [{data['group']}]")
    else:
        click.echo(f"{data['kind']} of {data['size']}  [{data['group']}]  kept together, unranked")
    for photo in data["photos"]:
        mark = "best  " if photo["best"] else ("reject" if photo["reject"] else "      ")
        facts = []
        if photo["score"] is not None:
            facts.append(f"score {photo['score']:.3f}")
        if photo["focus"] is not None:
            facts.append(f"focus {photo['focus']:.0%}")
        if photo["eyes"]:
            facts.append(f"eyes {photo['eyes']}")
        reasons = [r for r in photo["reasons"] if r not in ("best of group", data["kind"])]
        tail = ("  - " + "; ".join(reasons)) if reasons and data["ranked"] else ""
        click.echo(f"  {mark} {photo['path']}  ({', '.join(facts)}){tail}")


def apply_marks(
    groups: list[dict[str, Any]],
    mark: str,
    best_label: str,
    reject_label: str,
    demote: int,
    model: str,
    force: bool,
    db: Any = None,
) -> list[dict[str, Any]]:
    """Write labels and/or ratings for ranked groups; one outcome dict per photo touched.

    With `db` (the index a daemon may be watching with), each photo's row follows the write, so
    the daemon does not re-score the photo and put the model's stars back."""
    from photod.errors import MetadataError, PhotodError
    from photod.metadata import RatingInfo, write_label, write_rating
    from photod.pipeline import record_own_write

    outcomes = []
    for group in groups:
        if not group["ranked"]:
            continue
        best_stars = max((p["stars"] or 0) for p in group["photos"] if p["best"])
        for photo in group["photos"]:
            row: dict[str, Any] = {"path": photo["path"], "group": group["group"]}
            try:
                if mark in ("labels", "both"):
                    label = (
                        best_label if photo["best"] else reject_label if photo["reject"] else None
                    )
                    if label is not None:
                        outcome = write_label(photo["path"], label)
                        row["label"] = label
                        row["label_written"] = outcome.written
                        if db is not None:
                            record_own_write(db, photo["path"], outcome.written)
                if mark in ("stars", "both") and photo["score"] is not None:
                    stars = photo["stars"] or 0
                    if not photo["best"]:
                        # The pick keeps its stars; the others end below it (never below 1).
                        stars = max(1, min(stars, best_stars - demote))
                    info = RatingInfo(photo["score"], stars, model)
                    outcome = write_rating(photo["path"], info, force=force)
                    row["stars"] = stars
                    row["rating_written"] = outcome.written
                    row["write_status"] = outcome.status
                    if db is not None and outcome.written:
                        record_own_write(db, photo["path"], outcome.written, stars=stars)
                    if outcome.skipped:
                        row["skipped"] = outcome.skipped
                    elif not outcome.written:
                        raise MetadataError("nothing was written", photo["path"])
            except PhotodError as exc:
                row["error"] = str(exc)
                row["write_status"] = "failed"
            outcomes.append(row)
    return outcomes


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option("--apply", "apply", is_flag=True, help="Write the marks (labels/ratings).")
@click.option(
    "--mark",
    type=click.Choice(MARKS),
    default="labels",
    show_default=True,
    help="labels: colour labels for best and reject candidates; stars: the best keeps its stars, "
    "the others get fewer; both.",
)
@click.option("--best-label", default="Green", show_default=True, help="xmp:Label of the picks.")
@click.option(
    "--reject-label", default="Red", show_default=True, help="xmp:Label of reject candidates."
)
@click.option(
    "--demote",
    type=click.IntRange(0, 4),
    default=1,
    show_default=True,
    help="With --mark stars: the others get at most the pick's stars minus this.",
)
@click.option("--force", is_flag=True, help="With --mark stars: overwrite ratings set by the user.")
@_threshold_options
@json_option
@device_option
@batch_size_option
@model_option
@library_errors
def cull(
    paths: tuple[str, ...],
    recursive: bool,
    apply: bool,
    mark: str,
    best_label: str,
    reject_label: str,
    demote: int,
    force: bool,
    burst_gap_s: float | None,
    burst_similarity: float | None,
    duplicate_similarity: float | None,
    keep: int | None,
    as_json: bool,
    device: str | None,
    batch_size: int | None,
    model: str | None,
) -> None:
    """Group bursts and near-duplicates among PATHS and pick the best frame of each group.

    Brackets (differing exposure bias) and panoramas (overlapping, shifted frames) are shown but
    kept together and never ranked. Without --apply nothing is written. Never deletes or moves a
    file. Exit status 1 when a photo could not be read or marked (the rest are still done).
    """
    from photod.cull_store import analyse_files, cull_analysed
    from photod.scoring import iter_photo_paths

    files = list(iter_photo_paths(paths, recursive))
    if not files:
        raise click.UsageError("no photos found in the given paths")
    grouping, ranking = load_cull_config(
        {
            "burst_gap_s": burst_gap_s,
            "burst_similarity": burst_similarity,
            "duplicate_similarity": duplicate_similarity,
            "keep": keep,
        }
    )
    from photod.config import load_settings, scorer_from_settings

    settings = load_settings(cli={"device": device, "batch_size": batch_size, "model": model})
    scorer = scorer_from_settings(settings)
    with progress_bar(len(files)) as bar:
        if not bar.disable:
            bar.set_description("loading model")
            scorer.net  # noqa: B018  (load it now: the bar would stand at the end meanwhile)
            bar.set_description("analysing")
        analysed = analyse_files(files, scorer, progress=bar.update)
    results = cull_analysed(analysed, grouping, ranking)
    groups = group_dicts(results, analysed.records)

    grouped = sum(g["size"] for g in groups)
    flagged = flag_singles(results, analysed.records)
    summary = {
        "summary": True,
        "photos": len(files),
        "groups": len(groups),
        "grouped_photos": grouped,
        "singles": len(analysed.records) - grouped,
        "errors": [{"path": p, "error": e} for p, e in analysed.errors],
    }
    outcomes: list[dict[str, Any]] = []
    if apply:
        db = index_if_any(settings)
        try:
            outcomes = apply_marks(
                groups, mark, best_label, reject_label, demote, scorer.version, force, db
            )
        finally:
            if db is not None:
                db.close()
    if as_json:
        for group in groups:
            emit_json(group)
        for single in flagged:
            emit_json(single)
        for outcome in outcomes:
            emit_json({"applied": True, **outcome})
        emit_json(summary)
    else:
        for group in groups:
            _print_group(group)
        for single in flagged:
            click.echo(f"check   {single['path']}: {', '.join(single['flags'])}")
        for path, error in analysed.errors:
            click.echo(f"error  {path}: {error}")
        for outcome in outcomes:
            if "error" in outcome:
                click.echo(f"NOT marked  {outcome['path']}: {outcome['error']}")
            elif outcome.get("skipped"):
                click.echo(f"kept  {outcome['path']}: {outcome['skipped']}")
        kinds: dict[str, int] = {}
        for group in groups:
            kinds[group["kind"]] = kinds.get(group["kind"], 0) + 1
        detail = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        click.echo(
            f"{len(files)} photos: {len(groups)} groups ({detail or 'none'}), "
            f"{summary['singles']} single, {len(analysed.errors)} unreadable"
        )
        if apply:
            written = sum(1 for o in outcomes if o.get("label_written") or o.get("rating_written"))
            failed = sum(1 for o in outcomes if "error" in o)
            click.echo(
                f"marked {written} photos ({mark})" + (f", {failed} NOT marked" if failed else "")
            )
    if analysed.errors or any("error" in o for o in outcomes):
        sys.exit(1)


@click.command()
@click.argument("path", required=False, type=click.Path())
@click.option("--all", "everything", is_flag=True, help="Regroup the whole index.")
@click.option("--no-rank", is_flag=True, help="Group only; skip the technical checks.")
@_threshold_options
@db_option
@json_option
@library_errors
def group(
    path: str | None,
    everything: bool,
    no_rank: bool,
    burst_gap_s: float | None,
    burst_similarity: float | None,
    duplicate_similarity: float | None,
    keep: int | None,
    db_path: str | None,
    as_json: bool,
) -> None:
    """Rebuild the groups of indexed photos under PATH (or --all) from stored embeddings."""
    from photod.cull_store import load_groups, rebuild_groups
    from photod.index import open_index

    if (path is None) == (not everything):
        raise click.UsageError("give a PATH or --all (not both)")
    grouping, ranking = load_cull_config(
        {
            "burst_gap_s": burst_gap_s,
            "burst_similarity": burst_similarity,
            "duplicate_similarity": duplicate_similarity,
            "keep": keep,
        }
    )
    db = open_index(db_path)
    folder = None if everything else str(Path(path).resolve())  # type: ignore[arg-type]
    results = rebuild_groups(db, folder, grouping, ranking, rank=not no_rank)
    stored = load_groups(db, folder)
    if as_json:
        for row in stored:
            emit_json(row)
        emit_json({"summary": True, "groups": len(results)})
        return
    for row in stored:
        click.echo(f"{row['kind']} of {row['size']}  [{row['id']}]")
        for frame in row["frames"]:
            mark = "best  " if frame["best"] else ("reject" if frame["reject"] else "      ")
            click.echo(f"  {mark} {frame['path']}")
    click.echo(f"{len(results)} groups")


def register(cli_group: click.Group) -> None:
    cli_group.add_command(cull)
    cli_group.add_command(group)
