"""`photod score`: score files and folders (`photod models` lives in photod/cli/models.py)."""

from __future__ import annotations

import sys
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import click

from photod.cli.common import (
    batch_size_option,
    device_option,
    emit_json,
    json_option,
    library_errors,
    model_option,
)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@click.option(
    "--write",
    "write_mode",
    type=click.Choice(["auto", "embedded", "sidecar", "both", "none"]),
    is_flag=False,
    flag_value="auto",
    default="none",
    show_default=True,
    help="Write the rating as XMP/EXIF (bare --write: auto = embedded for JPEG/TIFF/PNG/DNG, "
    "sidecars for RAW/HEIC).",
)
@click.option(
    "--sidecar-only", is_flag=True, help="With --write: never modify a photo, only sidecars."
)
@click.option("--force", is_flag=True, help="With --write: replace ratings the user set.")
@json_option
@device_option
@batch_size_option
@model_option
@library_errors
def score(
    paths: tuple[str, ...],
    recursive: bool,
    write_mode: str,
    sidecar_only: bool,
    force: bool,
    as_json: bool,
    device: str | None,
    batch_size: int | None,
    model: str | None,
) -> None:
    """Score photos (files or folders) for aesthetic quality; print score and stars.

    Plain `photod score` only prints; `--write` also records the rating where Lightroom,
    darktable and file browsers read it (see `photod rating`).

    Exit status: 0 when every file was scored (and written), 1 when any failed (the rest are
    still done).
    """
    from tqdm import tqdm

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
    settings = load_settings(cli={"device": device, "batch_size": batch_size, "model": model})
    scorer = scorer_from_settings(settings)
    failures = 0

    def report(result: Any, job: Future[dict[str, Any]] | None) -> None:
        nonlocal failures
        failures += result.status != "ok"
        row = result.to_dict()
        note = ""
        if job is not None:
            row["metadata"] = job.result()
            failures += row["metadata"]["error"] is not None
            note = _RatingWriter.describe(row["metadata"])
        if as_json:
            emit_json(row)
        elif result.status == "ok":
            stars = "★" * max(result.stars or 0, 0) or "reject"
            click.echo(f"{result.score:6.3f}  {stars:<5}  {result.path}{note}")
        else:
            click.echo(f"{'error':>6}  {'':<5}  {result.path}: {result.error}")

    show_bar = len(files) > 3 and sys.stderr.isatty()
    # Rating writes (copy, fsync, rename) run in a small pool while the next photos decode and
    # score; results are printed in order, each once its write is done.
    pending: deque[tuple[Any, Future[dict[str, Any]] | None]] = deque()
    with (
        tqdm(total=len(files), unit="photo", disable=not show_bar, file=sys.stderr) as bar,
        ThreadPoolExecutor(2, thread_name_prefix="photod-write") as pool,
    ):
        for result in scorer.score_paths(files, progress=bar.update):
            job = None
            if writer is not None and result.status == "ok":
                job = pool.submit(writer.write, result)
            pending.append((result, job))
            while pending and (pending[0][1] is None or pending[0][1].done()):
                report(*pending.popleft())
            while len(pending) > 4 * scorer.batch_size:
                report(*pending.popleft())
        while pending:
            report(*pending.popleft())
    if failures:
        sys.exit(1)


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
                    "skipped": None, "user_rating": None, "error": str(exc)}  # fmt: skip
        return {**outcome.to_dict(), "error": None}

    @staticmethod
    def describe(meta: dict[str, Any]) -> str:
        import os

        if meta["error"]:
            return f"  (not written: {meta['error']})"
        if meta["skipped"]:
            return f"  (not written: {meta['skipped']})"
        return "  -> " + ", ".join(os.path.basename(p) for p in meta["written"])


def register(group: click.Group) -> None:
    group.add_command(score)
