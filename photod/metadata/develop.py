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
(nothing is written) unless `force=True`. Every other XMP property is preserved (pyexiv2
re-serialises the whole packet) and each write is atomic (see `photod.metadata.atomic`).
"""

from __future__ import annotations

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


def develop_settings(suggestion: Any) -> dict[str, str]:
    """The crs: properties (exiv2 keys -> XMP strings) of a suggestion (live or stored dict)."""
    data = suggestion.to_dict() if hasattr(suggestion, "to_dict") else dict(suggestion)
    settings: dict[str, str] = {CRS + "HasSettings": "True"}
    crop = data.get("crop")
    angle = float(data.get("angle") or 0.0)
    if crop:
        left, top, right, bottom = (min(max(float(v), 0.0), 1.0) for v in crop)
        settings.update(
            {
                CRS + "HasCrop": "True",
                CRS + "CropLeft": f"{left:.6f}",
                CRS + "CropTop": f"{top:.6f}",
                CRS + "CropRight": f"{right:.6f}",
                CRS + "CropBottom": f"{bottom:.6f}",
                # photod's angle is the tilt removed (content turns clockwise); Camera Raw's
                # CropAngle turns the crop, i.e. the same number (darktable imports it negated
                # into its own clockwise-negative convention).
                CRS + "CropAngle": f"{angle:.2f}",
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
    settings[MARKER] = str(data.get("model") or "photod")
    return settings


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
    settings = develop_settings(data)
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
