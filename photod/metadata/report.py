"""`rating_report`: what each reader will see for one photo, for `photod rating` and support.

The reader rules are the ones measured or documented (NOTES.md):

- darktable 4.2 on import: its own sidecar NAME.EXT.xmp wins; without one it imports a
  Lightroom-style NAME.xmp; else embedded XMP, else EXIF Rating; else its initial rating
  (1 star unless `ui_last/import_initial_rating` says otherwise). After import its database wins.
- Lightroom Classic: embedded XMP for JPEG/TIFF/PNG/DNG; NAME.xmp for camera RAW and HEIC.
- Windows Explorer: embedded XMP rating, else EXIF Rating (JPEG/TIFF).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from photod.errors import MetadataError
from photod.metadata import xmp as X
from photod.metadata.writer import _targets, _user_rating_in, sidecar_paths


def _describe(path: Path, with_exif: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": str(path), "exists": path.exists()}
    if not entry["exists"]:
        return entry
    try:
        xmp, exif = X.read_metadata(path, with_exif=with_exif)
    except MetadataError as exc:
        entry["error"] = str(exc)
        return entry
    entry["rating"] = X.parse_rating(xmp.get(X.RATING))
    entry["label"] = xmp.get(X.LABEL)
    entry["photod"] = X.photod_fields(xmp)
    entry["user_rating"] = _user_rating_in(xmp, exif)
    if with_exif:
        entry["exif_rating"] = X.parse_rating(exif.get(X.EXIF_RATING))
        percent = exif.get(X.EXIF_RATING_PERCENT)
        entry["exif_rating_percent"] = int(percent) if percent and percent.isdigit() else None
    return entry


def rating_report(path: str | os.PathLike[str]) -> dict:
    """Ratings in the photo (embedded XMP, EXIF Rating/RatingPercent) and in both sidecars, what
    Lightroom, darktable and Windows will show, and where `photod score --write` would write."""
    photo = Path(path)
    darktable_path, lightroom_path = sidecar_paths(photo)
    embedded = _describe(photo, with_exif=True)
    darktable = _describe(darktable_path, with_exif=False)
    lightroom = _describe(lightroom_path, with_exif=False)

    def rating(entry: dict[str, Any]) -> int | None:
        return entry.get("rating") if entry.get("exists") and "error" not in entry else None

    embeddable = X.is_embeddable(photo)
    dt_view: int | None = None
    dt_source = "initial rating (darktable default, 1 star unless configured)"
    for entry, source in (
        (darktable, darktable_path.name),
        (lightroom, lightroom_path.name),
        (embedded, "embedded XMP"),
    ):
        if entry.get("exists") and "error" not in entry:
            if rating(entry) is not None or entry is darktable:
                dt_view, dt_source = rating(entry), source
                break
    if dt_view is None and embedded.get("exif_rating") not in (None, 0):
        dt_view, dt_source = embedded["exif_rating"], "EXIF Rating"

    lr_entry = embedded if embeddable else lightroom
    windows = rating(embedded)
    if windows is None:
        windows = embedded.get("exif_rating")
    targets, reason = _targets(photo, "auto", False)
    user_ratings = [
        e["user_rating"]
        for e in (darktable, lightroom if not embeddable else {}, embedded)
        if e.get("user_rating") is not None
    ]
    return {
        "path": str(photo),
        "format": photo.suffix.lower().lstrip("."),
        "embedded": embedded,
        "darktable_sidecar": darktable,
        "lightroom_sidecar": lightroom,
        "readers": {
            "lightroom": {
                "rating": rating(lr_entry),
                "source": "embedded XMP" if embeddable else lightroom_path.name,
            },
            "darktable": {"rating": dt_view, "source": dt_source},
            "windows": {"rating": windows if X.carries_exif(photo) or embeddable else None},
        },
        "user_rating": user_ratings[0] if user_ratings else None,
        "auto_write_targets": [str(t.path) for t in targets],
        "auto_write_skipped": reason,
    }
