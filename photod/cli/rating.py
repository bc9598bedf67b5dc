"""`photod rating PATH...`: what Lightroom, darktable and Windows will show for each photo, and where
the rating comes from (embedded XMP, EXIF, NAME.EXT.xmp, NAME.xmp). For support: read-only."""

from __future__ import annotations

import sys
from typing import Any

import click

from photod.cli.common import emit_json, json_option, library_errors


def _stars(rating: int | None) -> str:
    if rating is None:
        return "-"
    if rating < 0:
        return "reject"
    return "★" * rating if rating else "0"


def _location_line(label: str, entry: dict[str, Any]) -> str:
    if not entry.get("exists"):
        return f"  {label:<18} (none)"
    if "error" in entry:
        return f"  {label:<18} unreadable: {entry['error']}"
    photod = entry.get("photod") or {}
    who = "photod" if photod else "other"
    if entry.get("user_rating") is not None:
        who = "user"
    rated = entry.get("rating") is not None
    parts = [f"rating {_stars(entry.get('rating'))}" + (f" ({who})" if rated else "")]
    if "exif_rating" in entry:
        parts.append(f"EXIF Rating {_stars(entry.get('exif_rating'))}")
    if entry.get("label"):
        parts.append(f"label {entry['label']}")
    if photod:
        parts.append(f"score {photod.get('Score')} by {photod.get('Model')}")
    return f"  {label:<18} " + ", ".join(parts)


def _not_a_photo(path: str) -> str | None:
    """Why `path` is no photo at all (None when it decodes: only its metadata is unreadable)."""
    from photod.decode import decode_image
    from photod.errors import PhotodError

    try:
        decode_image(path, min_side=64)
    except PhotodError as exc:
        return exc.message_for(path)
    return None


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@json_option
@library_errors
def rating(paths: tuple[str, ...], as_json: bool) -> None:
    """Show the rating each reader will see for PATHS (embedded XMP, EXIF, sidecars).

    Exit status 1 when a file cannot be read as a photo, 2 when a path does not exist (the others
    are still shown).
    """
    from pathlib import Path

    from photod.metadata import rating_report

    missing = unreadable = 0
    for path in paths:
        if not Path(path).is_file():
            missing += 1
            if as_json:
                emit_json({"path": path, "error": "no such file"})
            else:
                click.echo(f"{path}: no such file", err=True)
            continue
        report = rating_report(path)
        # The photo itself cannot be read (a text file named .jpg, a cut-off file): no reader
        # will show a rating, and photod could not write one either.
        broken = report["embedded"].get("error") and _not_a_photo(path)
        if broken:
            unreadable += 1
        if as_json:
            emit_json(report if not broken else {**report, "error": broken})
            continue
        if broken:
            click.echo(f"{path}: error: not a readable photo ({broken})", err=True)
            continue
        readers = report["readers"]
        click.echo(report["path"])
        click.echo(
            f"  Lightroom {_stars(readers['lightroom']['rating'])} "
            f"({readers['lightroom']['source']}) · darktable "
            f"{_stars(readers['darktable']['rating'])} ({readers['darktable']['source']}) · "
            f"Windows {_stars(readers['windows']['rating'])}"
        )
        click.echo(_location_line("embedded", report["embedded"]))
        click.echo(_location_line(Path(report["darktable_sidecar"]["path"]).name,
                                  report["darktable_sidecar"]))  # fmt: skip
        click.echo(_location_line(Path(report["lightroom_sidecar"]["path"]).name,
                                  report["lightroom_sidecar"]))  # fmt: skip
        if report["user_rating"] is not None:
            click.echo(f"  user rating {report['user_rating']}: photod keeps it unless --force")
        targets = ", ".join(Path(t).name for t in report["auto_write_targets"])
        click.echo(f"  photod score --write would write: {targets or report['auto_write_skipped']}")
    if missing:
        sys.exit(2)
    if unreadable:
        sys.exit(1)


def register(group: click.Group) -> None:
    group.add_command(rating)
