"""`photod score`: score files and folders (`photod models` lives in photod/cli/models.py)."""

from __future__ import annotations

import json
import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import click

from photod.cli.common import (
    batch_size_option,
    db_option,
    device_option,
    echo_above,
    index_if_any,
    json_option,
    library_errors,
    model_option,
    progress_bar,
)

WRITE_MODES = ("auto", "embedded", "sidecar", "both", "none")


class _ScoreCommand(click.Command):
    """`--write` takes an optional mode: `--write photo.jpg` means `--write=auto photo.jpg`.

    click would take the word after a bare `--write` as its value and reject a path as a mode;
    a word that is not a mode is a path, so the bare flag can come before the paths too.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        fixed: list[str] = []
        rest = list(args)
        while rest:
            arg = rest.pop(0)
            if arg == "--":
                fixed += [arg, *rest]
                break
            if arg == "--write" and (not rest or rest[0] not in WRITE_MODES):
                arg = "--write=auto"
            fixed.append(arg)
        return super().parse_args(ctx, fixed)


@click.command(cls=_ScoreCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option(
    "--write",
    "write_mode",
    type=click.Choice(WRITE_MODES),
    is_flag=False,
    flag_value="auto",
    default="none",
    show_default=True,
    help="Write the rating as XMP/EXIF (bare --write, before or after the paths: auto = "
    "embedded for JPEG/TIFF/PNG/DNG, sidecars for RAW/HEIC).",
)
@click.option(
    "--sidecar-only", is_flag=True, help="With --write: never modify a photo, only sidecars."
)
@click.option("--force", is_flag=True, help="With --write: replace ratings the user set.")
@click.option(
    "--stars",
    "stars_mode",
    type=click.Choice(["absolute", "relative"]),
    default="absolute",
    show_default=True,
    help="absolute: the model's calibrated scale, the same for every photo; relative: 10/20/35/"
    "25/10 % of 1-5 stars within each shoot (each folder given, or the files named together).",
)
@json_option
@device_option
@batch_size_option
@model_option
@db_option
@library_errors
def score(
    paths: tuple[str, ...],
    recursive: bool,
    write_mode: str,
    sidecar_only: bool,
    force: bool,
    stars_mode: str,
    as_json: bool,
    device: str | None,
    batch_size: int | None,
    model: str | None,
    db_path: str | None,
) -> None:
    """Score photos (files or folders) for aesthetic quality; print score and stars.

    Plain `photod score` only prints; `--write` also records the rating where Lightroom,
    darktable and file browsers read it (see `photod rating`).

    Exit status: 0 when every file was scored (and, with --write, its rating written or
    deliberately kept), 1 when any failed, a rating write included (the rest are still done), 2
    for usage errors (a path that does not exist, a folder without photos). With --json each
    row's `write_status` is written, skipped (reason in metadata.skipped) or failed
    (metadata.error). A photo the index (--db, else the default one, when it exists) already
    knows gets the rating written in its row, so that a running daemon keeps it.
    """
    from photod.scoring import iter_photo_paths

    files = list(iter_photo_paths(paths, recursive))
    if not files:
        raise click.UsageError("no photos found in the given paths")
    if sidecar_only and write_mode == "none":
        write_mode = "auto"  # --sidecar-only alone means: write, but only sidecars
    writer = _RatingWriter(write_mode, sidecar_only, force, files) if write_mode != "none" else None
    from photod.config import load_settings, scorer_from_settings

    # Flags win over PHOTOD_* variables, which win over config.toml. A model of None means the
    # active model (`photod models --use`, a winning personal model, or the shipped default).
    settings = load_settings(
        cli={"device": device, "batch_size": batch_size, "model": model, "db": db_path}
    )
    scorer = scorer_from_settings(settings)
    index_db = index_if_any(settings) if writer is not None else None
    failures = 0
    absolute: dict[str, int | None] = {}

    def report(bar: Any, result: Any, job: Future[dict[str, Any]] | None) -> None:
        nonlocal failures
        failures += result.status != "ok"
        row = result.to_dict()
        if stars_mode == "relative":
            row["stars_mode"] = "relative"
            row["absolute_stars"] = absolute.get(result.path)
        note = ""
        if job is not None:
            row["metadata"] = job.result()
            row["write_status"] = row["metadata"]["status"]
            failures += row["write_status"] == "failed"
            if index_db is not None and row["metadata"]["written"]:
                from photod.pipeline import record_own_write

                record_own_write(
                    index_db, result.path, row["metadata"]["written"],
                    score=result.score, stars=result.stars, model=result.model,
                )  # fmt: skip
            note = _RatingWriter.describe(row["metadata"])
        if as_json:
            echo_above(bar, json.dumps(row, ensure_ascii=False, default=str))
        elif result.status == "ok":
            stars = "★" * max(result.stars or 0, 0) or "reject"
            echo_above(bar, f"{result.score:6.3f}  {stars:<5}  {result.path}{note}")
        else:
            echo_above(bar, f"{'error':>6}  {'':<5}  {result.path}: {result.error}")

    # Rating writes (copy, fsync, rename) run in a small pool while the next photos decode and
    # score; results are printed in order, each once its write is done.
    pending: deque[tuple[Any, Future[dict[str, Any]] | None]] = deque()
    with (
        progress_bar(len(files)) as bar,
        ThreadPoolExecutor(2, thread_name_prefix="photod-write") as pool,
    ):
        results: Any = scorer.score_paths(files, progress=bar.update)
        if stars_mode == "relative":
            # Stars depend on the whole shoot: score it all, then rate and write.
            results = list(results)
            absolute = relative_to_shoot(results, paths)
        for result in results:
            job = None
            if writer is not None and result.status == "ok":
                job = pool.submit(writer.write, result)
            pending.append((result, job))
            while pending and (pending[0][1] is None or pending[0][1].done()):
                report(bar, *pending.popleft())
            while len(pending) > 4 * scorer.batch_size:
                report(bar, *pending.popleft())
        while pending:
            report(bar, *pending.popleft())
    if index_db is not None:
        index_db.close()
    if failures:
        sys.exit(1)


def relative_to_shoot(results: list[Any], given: tuple[str, ...]) -> dict[str, int | None]:
    """Replace each scored result's stars by its stars within its shoot (`photod.stars`);
    returns the absolute stars they had, by path. A reject (opt-in, absolute) stays a reject."""
    from photod.stars import relative_stars, shoot_key

    shoots: dict[str, list[Any]] = {}
    for result in results:
        if result.status == "ok" and result.score is not None:
            shoots.setdefault(shoot_key(result.path, given), []).append(result)
    absolute: dict[str, int | None] = {}
    for members in shoots.values():
        for result, stars in zip(members, relative_stars([r.score for r in members]), strict=True):
            absolute[result.path] = result.stars
            if result.stars != -1:
                result.stars = stars
    return absolute


class _RatingWriter:
    """`--write`: one rating write per scored photo; a failed write is reported, never fatal."""

    def __init__(self, mode: str, sidecar_only: bool, force: bool, files: list[str]) -> None:
        import os

        from photod.metadata import clean_stale_temp_files

        self.mode, self.sidecar_only, self.force = mode, sidecar_only, force
        # Leftovers of a crashed write; young ones may belong to a running daemon.
        for folder in sorted({os.path.dirname(os.path.abspath(f)) for f in files}):
            clean_stale_temp_files(folder, min_age_s=60)

    def write(self, result: Any) -> dict[str, Any]:
        from photod.errors import PhotodError
        from photod.metadata import RatingInfo, write_rating

        try:
            info = RatingInfo(score=result.score, stars=result.stars, model=result.model)
            outcome = write_rating(
                result.path, info, self.mode, force=self.force, sidecar_only=self.sidecar_only
            )
        except PhotodError as exc:
            return {"path": result.path, "written": getattr(exc, "written", []),
                    "skipped": None, "user_rating": None, "warnings": [], "error": str(exc),
                    "status": "failed"}  # fmt: skip
        meta = {**outcome.to_dict(), "error": None}
        if meta["status"] == "not_written":  # nothing written and no reason: a failure
            meta.update(status="failed", error="nothing was written")
        return meta

    @staticmethod
    def describe(meta: dict[str, Any]) -> str:
        import os

        if meta["error"]:
            return f"  (rating NOT written: {meta['error']})"
        if meta["skipped"]:
            return f"  (not written: {meta['skipped']})"
        return "  -> " + ", ".join(os.path.basename(p) for p in meta["written"])


def register(group: click.Group) -> None:
    group.add_command(score)
