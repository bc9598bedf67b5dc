"""The star ratings a photographer set, as `photod train --from-ratings` learns from them.

Where a rating is read, in the order the editors themselves give precedence:

1. darktable's sidecar `NAME.EXT.xmp` (darktable prefers it over anything in the photo),
2. Lightroom's sidecar `NAME.xmp`, for camera RAW and HEIC only (for JPEG, TIFF, PNG and DNG
   Lightroom reads the embedded XMP, and a `NAME.xmp` beside a JPEG is the sidecar of a RAW of
   the same name, which is read with that RAW),
3. the XMP embedded in the photo,
4. EXIF `Rating` (set by cameras and Windows).

The first of these that holds a rating decides, as it decides what the user sees in the editor.
A rating there that photod wrote itself (a `photod:Stars` beside it with the same value; for
EXIF, photod's XMP stars in the photo) is not the user's: the photo has no user rating. What the
values mean (the XMP specification's scale, which Lightroom, Bridge and darktable follow):
1-5 are stars, -1 is a reject and counts as a rating below 1 star, 0 means "no rating" and the
photo is left out. EXIF has no reject (Windows writes 0), so an EXIF 0 is unrated too.

A confirmed rating is indistinguishable from photod's own: a photo the user left at the stars
photod gave it reads as photod's and is not trained on.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from photod.errors import MetadataError

log = logging.getLogger("photod")

REJECT = -1


@dataclass(frozen=True)
class UserRating:
    """A rating the user set: `stars` in -1 (reject), 1..5, and where it was read."""

    stars: int
    source: str  # "darktable sidecar", "lightroom sidecar", "embedded XMP" or "EXIF"


def read_user_stars(path: str | os.PathLike[str]) -> UserRating | None:
    """The user's own rating of `path` (module docstring for the rules), None when there is none."""
    from photod.metadata import xmp as X
    from photod.metadata.writer import locations

    photo = Path(path)
    embedded_xmp: dict[str, str] = {}
    exif: dict[str, str] = {}
    for loc in sorted(locations(photo), key=lambda loc: not loc.sidecar):
        if not loc.exists:
            continue
        try:
            xmp, found_exif = X.read_metadata(loc.path, with_exif=not loc.sidecar)
        except MetadataError as exc:
            log.warning("ignoring unreadable metadata: %s", exc)
            continue
        if not loc.sidecar:
            embedded_xmp, exif = xmp, found_exif
        rating = X.parse_rating(xmp.get(X.RATING))
        if rating is None:
            continue
        source = "embedded XMP" if loc.name == "embedded" else loc.name
        return _users(rating, X.parse_rating(X.photod_fields(xmp).get("Stars")), source)
    rating = X.parse_rating(exif.get(X.EXIF_RATING))
    if rating is None:
        return None
    return _users(rating, X.parse_rating(X.photod_fields(embedded_xmp).get("Stars")), "EXIF")


def _users(rating: int, photod_stars: int | None, source: str) -> UserRating | None:
    if rating == 0 or rating == photod_stars:
        return None  # unrated, or photod's own rating
    if source == "EXIF" and rating < 0:
        return None  # EXIF has no reject
    return UserRating(max(REJECT, min(rating, 5)), source)


def shot_key(path: Path) -> str:
    """Files of one shot share it: a RAW and its JPEG twin (same folder and stem) never end up on
    both sides of a train / held-out split."""
    return str(path.with_suffix(""))
