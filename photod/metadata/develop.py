"""Write a suggestion as Camera Raw develop settings (`crs:`) merged into a photo's XMP.

Lightroom and Camera Raw show these as an ordinary, editable adjustment (a crop rectangle, an
Exposure slider value…); the pixels are never touched. Where they go:

- JPEG, TIFF, PNG, DNG: the embedded XMP (Lightroom reads only that for these formats).
- Camera RAW and HEIC: the Lightroom sidecar `NAME.xmp` (created, or merged into).

darktable: it reads `crs:` settings only through its Lightroom import, from `NAME.xmp`, and only
when it has no sidecar of its own (`NAME.EXT.xmp`); it then maps crop + CropAngle to its
clipping module (angle negated) and Exposure2012 to its exposure module, and ignores crs: inside
embedded XMP. So darktable shows the suggestion for RAW/HEIC photos it imports for the first
time, and not for JPEGs (documented in README, checked by tests with darktable-cli).

Settings photod writes: HasSettings, HasCrop, CropLeft/Top/Right/Bottom (fractions of the
upright photo), CropAngle, CropConstrainToWarp, Exposure2012, Contrast2012, Saturation,
Vibrance, IncrementalTemperature/Tint, plus `photod:Develop` (the model that suggested them).
Existing develop settings that photod did not write are the user's edits: they are left alone
(nothing is written) unless `force=True`. Every other XMP property is preserved (Adobe's XMP
toolkit re-serialises the packet), the photo's other bytes are untouched (the same surgical
writer as ratings, `photod.metadata.surgical`) and each write is atomic (`photod.metadata.atomic`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photod.errors import MetadataError
from photod.metadata import xmp as X
from photod.metadata.atomic import atomic_create, atomic_rewrite
from photod.metadata.records import PHOTOD_PREFIX
from photod.metadata.writer import sidecar_paths

CRS = "Xmp.crs."
MARKER = f"Xmp.{PHOTOD_PREFIX}.Develop"
# Develop settings whose presence (when photod did not write them) means the user edited.
USER_EDIT_KEYS = (
    "HasCrop",
    "CropLeft",
    "CropTop",
    "CropRight",
    "CropBottom",
    "CropAngle",
    "Exposure2012",
    "Contrast2012",
    "Saturation",
    "Vibrance",
    "IncrementalTemperature",
    "IncrementalTint",
    "Temperature",
    "Tint",
)


@dataclass
class DevelopOutcome:
    path: str
    written: list[str] = field(default_factory=list)
    skipped: str | None = None
    settings: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "written": self.written,
            "skipped": self.skipped,
            "settings": self.settings,
        }


def _signed(value: float, digits: int) -> str:
    return f"{value:+.{digits}f}"


# Displayed (orientation-applied) fractions -> stored (sensor) fractions, per EXIF orientation.
_TO_STORED = {
    1: lambda x, y: (x, y),
    2: lambda x, y: (1 - x, y),
    3: lambda x, y: (1 - x, 1 - y),
    4: lambda x, y: (x, 1 - y),
    5: lambda x, y: (y, x),
    6: lambda x, y: (y, 1 - x),
    7: lambda x, y: (1 - y, 1 - x),
    8: lambda x, y: (1 - y, x),
}
_MIRRORED = {2, 4, 5, 7}


def crop_corners(
    box: tuple[float, float, float, float],
    angle: float,
    width: int,
    height: int,
    orientation: int = 1,
) -> tuple[float, float, float, float, float]:
    """Camera Raw's (CropLeft, CropTop, CropRight, CropBottom, CropAngle) for a photod crop.

    photod's box is the centre and size of the result in the displayed photo, its content
    turned clockwise by `angle`. Camera Raw stores the crop's own top-left and bottom-right
    corners as fractions of the unrotated photo in its stored (sensor) orientation, and the
    angle with the opposite sign — the convention darktable's Lightroom import
    (src/develop/lightroom.c) decodes, which the darktable test checks pixel by pixel.
    """
    orientation = orientation if orientation in _TO_STORED else 1
    to_stored = _TO_STORED[orientation]
    left, top, right, bottom = box
    cx, cy = to_stored((left + right) / 2, (top + bottom) / 2)
    w_px, h_px = (right - left) * width, (bottom - top) * height
    if orientation >= 5:
        width, height, w_px, h_px = height, width, h_px, w_px
    a = -angle if orientation in _MIRRORED else angle
    rad = math.radians(a)
    cos, sin = math.cos(rad), math.sin(rad)
    # The crop's top-left corner, offset from its centre, in pixels of the stored frame
    # (the same rotation photod.enhancers.geometry.extract samples with).
    dx = cos * (-w_px / 2) + sin * (-h_px / 2)
    dy = -sin * (-w_px / 2) + cos * (-h_px / 2)
    return (
        cx + dx / width,
        cy + dy / height,
        cx - dx / width,
        cy - dy / height,
        -a,
    )


def develop_settings(
    suggestion: Any, orientation: int = 1, sidecar: bool = False
) -> dict[str, str]:
    """The crs: properties (exiv2 keys -> XMP strings) of a suggestion (live or stored dict).

    `orientation` is the photo's EXIF orientation (Camera Raw crops in stored orientation);
    a sidecar also records the stored pixel size (tiff:ImageWidth/ImageLength), which
    darktable's Lightroom import needs to place the crop.
    """
    data = suggestion.to_dict() if hasattr(suggestion, "to_dict") else dict(suggestion)
    settings: dict[str, str] = {CRS + "HasSettings": "True"}
    crop = data.get("crop")
    angle = float(data.get("angle") or 0.0)
    width, height = int(data.get("width") or 0), int(data.get("height") or 0)
    if crop:
        if angle and not (width and height):
            raise MetadataError("a rotated crop needs the photo's size to be written as crs:")
        left, top, right, bottom, crop_angle = crop_corners(
            tuple(float(v) for v in crop), angle, width or 1, height or 1, orientation
        )
        settings.update(
            {
                CRS + "HasCrop": "True",
                CRS + "CropLeft": f"{left:.6f}",
                CRS + "CropTop": f"{top:.6f}",
                CRS + "CropRight": f"{right:.6f}",
                CRS + "CropBottom": f"{bottom:.6f}",
                CRS + "CropAngle": f"{crop_angle + 0.0:.2f}".replace("-0.00", "0.00"),
                CRS + "CropConstrainToWarp": "0",
            }
        )
    else:
        settings[CRS + "HasCrop"] = "False"
    crs = data.get("crs") or {}
    exposure = float(data.get("exposure_ev") or crs.get("Exposure2012") or 0.0)
    if exposure:
        settings[CRS + "Exposure2012"] = _signed(exposure, 2)
    for key in (
        "Contrast2012",
        "Saturation",
        "Vibrance",
        "IncrementalTemperature",
        "IncrementalTint",
    ):
        if crs.get(key):
            settings[CRS + key] = _signed(float(crs[key]), 0)
    if sidecar and width and height:
        stored_w, stored_h = (height, width) if orientation >= 5 else (width, height)
        settings["Xmp.tiff.ImageWidth"] = str(stored_w)
        settings["Xmp.tiff.ImageLength"] = str(stored_h)
        settings["Xmp.tiff.Orientation"] = str(orientation)
    settings[MARKER] = str(data.get("model") or "photod")
    return settings


def photo_orientation(path: Path) -> int:
    """The EXIF orientation of a photo as exiv2 reads it (1 when absent or unreadable)."""
    if X.is_heif(path):
        return 1  # HEIF rotates in the container (irot); photod decodes it upright
    try:
        exif = X.read_metadata(path, with_exif=True)[1]
    except MetadataError:
        return 1
    try:
        value = int(str(exif.get("Exif.Image.Orientation", "1")).split()[0])
    except ValueError:
        return 1
    return value if 1 <= value <= 8 else 1


def develop_target(path: Path) -> Path:
    """Where Lightroom reads develop settings for this photo."""
    return path if X.is_embeddable(path) else sidecar_paths(path)[1]


def _user_edits(xmp: dict[str, str]) -> list[str]:
    if MARKER in xmp:
        return []
    return [k for k in USER_EDIT_KEYS if CRS + k in xmp and xmp[CRS + k] not in ("False", "0")]


def write_develop(
    path: str | os.PathLike[str], suggestion: Any, force: bool = False
) -> DevelopOutcome:
    """Merge the suggestion's Camera Raw settings into the photo's XMP (or Lightroom sidecar).

    Nothing is written for a suggestion without edits, or when the XMP already holds develop
    settings photod did not write (unless `force`). Raises MetadataError on a failed write.
    """
    photo = Path(path)
    outcome = DevelopOutcome(str(photo))
    data = suggestion.to_dict() if hasattr(suggestion, "to_dict") else dict(suggestion)
    if not data.get("edits"):
        outcome.skipped = "no suggestion above the margin: nothing to write"
        return outcome
    if not photo.exists():
        raise MetadataError("file vanished", str(photo))
    target = develop_target(photo)
    if not data.get("width") or not data.get("height"):
        from photod.decode import decode_image

        data["width"], data["height"] = decode_image(photo, min_side=224).original_size
    settings = develop_settings(data, photo_orientation(photo), sidecar=target != photo)
    outcome.settings = {k.removeprefix(CRS).removeprefix("Xmp."): v for k, v in settings.items()}
    existing: dict[str, str] = {}
    if target.exists():
        existing = X.read_metadata(target, with_exif=False)[0]
    edits = _user_edits(existing)
    if edits and not force:
        outcome.skipped = (
            f"{target.name} already has develop settings ({', '.join(edits)}) that photod did "
            "not write; left alone (use --force to replace them)"
        )
        return outcome
    # A crop photod wrote earlier but no longer suggests must not linger.
    values: dict[str, str | None] = dict(settings)
    if MARKER in existing:
        for key in USER_EDIT_KEYS:
            if CRS + key in existing and CRS + key not in values:
                values[CRS + key] = None

    def change(tmp: Path) -> None:
        X.modify(tmp, values)

    if target == photo:
        atomic_rewrite(photo, change, X.verify_image_data)
    elif not target.exists():
        if not atomic_create(target, X.MINIMAL_PACKET, change):
            atomic_rewrite(target, change)  # created by someone a moment ago: merge into it
    else:
        atomic_rewrite(target, change)
    outcome.written.append(str(target))
    return outcome
