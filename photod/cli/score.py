"""`photod score`: score files and folders (`photod models` lives in photod/cli/models.py)."""

from __future__ import annotations

import sys
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

    Exit status: 0 when every file was scored (and, with --write, its rating written or
    deliberately kept), 1 when any failed, a rating write included (the rest are still done).
    With --json each row's `write_status` is written, skipped (reason in metadata.skipped) or
    failed (metadata.error).
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
    show_bar = len(files) > 3 and sys.stderr.isatty()
    with tqdm(total=len(files), unit="photo", disable=not show_bar, file=sys.stderr) as bar:
        for result in scorer.score_paths(files, progress=bar.update):
            failures += result.status != "ok"
            row = result.to_dict()
            note = ""
            if writer is not None and result.status == "ok":
                row["metadata"] = writer.write(result)
                row["write_status"] = row["metadata"]["status"]
                failures += row["write_status"] == "failed"
                note = writer.describe(row["metadata"])
            if as_json:
                emit_json(row)
            elif result.status == "ok":
                stars = "★" * max(result.stars or 0, 0) or "reject"
                click.echo(f"{result.score:6.3f}  {stars:<5}  {result.path}{note}")
            else:
                click.echo(f"{'error':>6}  {'':<5}  {result.path}: {result.error}")
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
