"""`photod suggest --apply`: render a suggestion at full resolution into a NEW file.

The original is only ever opened for reading. The variant is decoded at full resolution with its
orientation applied, cut and straightened with the suggestion's box and angle (fractions, so the
box found on the working copy lands on the same content), and the point-wise pixel edits run on
it in strips. The output goes to OUTDIR as `<stem>.photod.<ext>` (`-2`, `-3`… when taken), via a
hidden temp file, fsync and a create-if-absent link, so an existing file is never replaced.

What is kept: the EXIF block (camera, lens, dates, exposure…) with Orientation reset to 1 and the
pixel dimensions updated; the ICC profile (pixels stay in the source's colour space for RGB
JPEG/PNG/TIFF/HEIC; sources photod must convert first, CMYK, grey, 16-bit and camera RAW, are
written as sRGB with an sRGB profile); a note of the edits in EXIF UserComment and Software. The
source's XMP is not copied: its ratings and any Camera Raw settings describe the original, and
crs: crop values would be applied a second time to an already cropped file.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image, ImageCms

from photod import __version__
from photod.errors import PhotodError

log = logging.getLogger("photod")

OUTPUT_FORMATS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif"}
# TIFF tags that describe how the SOURCE's pixels are stored (size, strips, compression, sample
# layout, sub-IFDs, thumbnails); copying them would describe the new file wrongly.
_STRUCTURAL_TAGS = {
    0x00FE, 0x0100, 0x0101, 0x0102, 0x0103, 0x0106, 0x0111, 0x0115, 0x0116, 0x0117, 0x011C,
    0x0122, 0x0123, 0x013D, 0x0140, 0x0142, 0x0143, 0x0144, 0x0145, 0x014A, 0x0152, 0x0153,
    0x0154, 0x0155, 0x0156, 0x0201, 0x0202, 0x0211, 0x0212, 0x0213, 0x0214, 0x02BC, 0x83BB,
    0x8649, 0x8773, 0x935C,
}  # fmt: skip
_STRIP = 512


class Suggestion(Protocol):
    """What rendering needs of a suggestion: its `--json` form (live ones may also carry
    `pixel_ops`). `photod.suggest.Suggestion` is one; a stored suggestion's dict works too.
    Rendering sits below the search and never imports it."""

    def to_dict(self) -> dict[str, Any]: ...


class RenderError(PhotodError):
    """The variant could not be rendered or written."""

    code = "render"


def pixel_ops_for(suggestion: Suggestion | dict[str, Any]) -> list[Callable[[np.ndarray], Any]]:
    """The point-wise operations of a suggestion: live ones, or rebuilt from stored edits."""
    ops = getattr(suggestion, "pixel_ops", None)
    if ops:
        return list(ops)
    edits = suggestion.to_dict()["edits"] if hasattr(suggestion, "to_dict") else suggestion["edits"]
    return [op for op in (_rebuild(e) for e in edits) if op is not None]


def _rebuild(edit: dict[str, Any]) -> Callable[[np.ndarray], Any] | None:
    """Built-in pixel edits from their parameters (what a stored suggestion keeps)."""
    from functools import partial

    from photod.enhancers.color import apply_luts

    name, params = edit["enhancer"], edit["params"]
    if name == "exposure":
        from photod.enhancers.exposure import exposure_lut

        return partial(apply_luts, luts=exposure_lut(float(params["ev"])))
    if name == "white_balance":
        from photod.enhancers.white_balance import gains_lut

        return partial(apply_luts, luts=gains_lut(np.asarray(params["gains"], dtype=np.float64)))
    if name == "tone":
        from photod.enhancers.tone import adjust_saturation, contrast_lut

        if "contrast" in params:
            return partial(apply_luts, luts=contrast_lut(float(params["contrast"])))
        return partial(
            adjust_saturation,
            saturation=float(params.get("saturation", 0.0)),
            vibrance=float(params.get("vibrance", 0.0)),
        )
    if name in ("crop", "straighten"):
        return None
    raise RenderError(f"cannot re-create a stored '{name}' edit; run the suggestion again")


def apply_suggestion(
    image: np.ndarray,
    suggestion: Suggestion | dict[str, Any],
    ops: Sequence[Callable[[np.ndarray], Any]] | None = None,
) -> np.ndarray:
    """Geometry first (box + angle, on the whole image), then the pixel edits in strips."""
    from photod.enhancers.geometry import extract

    data = suggestion.to_dict() if hasattr(suggestion, "to_dict") else suggestion
    if data.get("crop"):
        image = extract(image, tuple(data["crop"]), float(data.get("angle") or 0.0))
    ops = pixel_ops_for(suggestion) if ops is None else ops
    if not ops:
        return np.ascontiguousarray(image)
    out = np.empty_like(image)
    for start in range(0, image.shape[0], _STRIP):
        block = np.ascontiguousarray(image[start : start + _STRIP])
        for op in ops:
            block = op(block)
        out[start : start + _STRIP] = block
    return out


def edit_note(suggestion: Suggestion | dict[str, Any]) -> str:
    """A one-line human note of the edits, stored in the rendered file."""
    data = suggestion.to_dict() if hasattr(suggestion, "to_dict") else suggestion
    parts = []
    for edit in data["edits"]:
        params = ", ".join(f"{k}={v}" for k, v in edit["params"].items() if k != "gains")
        parts.append(f"{edit['enhancer']}({params})")
    return (
        f"photod {__version__} suggestion, model {data.get('model')}: "
        f"{'; '.join(parts) or 'no edits'}; score {data['score_before']:.3f} -> "
        f"{data['score_after']:.3f}"
    )


def output_path(source: Path, outdir: Path, suffix: str, attempt: int) -> Path:
    tail = "" if attempt == 1 else f"-{attempt}"
    return outdir / f"{source.stem}.photod{tail}{suffix}"


def render_suggestion(
    path: str | os.PathLike[str],
    suggestion: Suggestion | dict[str, Any],
    outdir: str | os.PathLike[str],
    quality: int = 95,
) -> Path:
    """Render the full-resolution variant of `path` into `outdir`; returns the new file's path."""
    from photod.metadata.atomic import atomic_create

    source = Path(path)
    folder = Path(outdir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RenderError(f"cannot create output folder: {exc.strerror}", str(folder)) from exc
    pixels, icc, exif, fmt = _load_full(source)
    edited = apply_suggestion(pixels, suggestion)
    fmt = fmt if fmt in OUTPUT_FORMATS else "JPEG"
    data = _encode(edited, fmt, icc, exif, edit_note(suggestion), quality)
    source_real = os.path.realpath(source)
    for attempt in range(1, 1000):
        target = output_path(source, folder, OUTPUT_FORMATS[fmt], attempt)
        if os.path.realpath(target) == source_real:
            continue  # never over the original, even if OUTDIR is its folder and names collide
        if atomic_create(target, data):
            log.debug("rendered %s -> %s", source, target)  # `photod suggest` prints it
            return target
    raise RenderError("no free output name (999 variants exist?)", str(folder))


def _load_full(source: Path) -> tuple[np.ndarray, bytes | None, Image.Exif | None, str]:
    """Full-resolution pixels (orientation applied), ICC bytes, EXIF and format of `source`."""
    from photod.decode import HEIF_EXTENSIONS, RAW_EXTENSIONS, _register_heif, decode_image

    suffix = source.suffix.lower()
    if suffix not in RAW_EXTENSIONS:
        if suffix in HEIF_EXTENSIONS:
            _register_heif()
        try:
            with Image.open(source) as im:
                fmt = "JPEG" if suffix in HEIF_EXTENSIONS else (im.format or "JPEG")
                if im.mode == "RGB":
                    exif = im.getexif()
                    icc = im.info.get("icc_profile")
                    orientation = int(exif.get(0x0112) or 1)
                    im.load()
                    pixels = _orient(np.asarray(im, dtype=np.uint8), orientation)
                    return pixels, icc, exif, fmt
                exif = im.getexif()
        except (OSError, ValueError, SyntaxError) as exc:
            raise RenderError(f"cannot read the photo: {exc}", str(source)) from exc
    else:
        exif, fmt = None, "JPEG"
    # Other modes (CMYK, grey, 16-bit, alpha) and RAW: photod's decoder converts to sRGB.
    decoded = decode_image(source, min_side=None)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    return decoded.pixels, srgb, exif, fmt


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    from photod.decode import _apply_orientation

    return _apply_orientation(pixels, orientation if 1 <= orientation <= 8 else 1)


def _clean_exif(source: Image.Exif | None) -> Image.Exif:
    """A new EXIF block with the source's descriptive tags (camera, lens, dates, exposure, GPS)."""
    exif = Image.Exif()
    if source is None:
        return exif
    for tag, value in source.items():
        if tag not in _STRUCTURAL_TAGS and tag not in (0x8769, 0x8825):
            exif[tag] = value
    for pointer in (0x8769, 0x8825):  # Exif and GPS sub-IFDs
        try:
            ifd = source.get_ifd(pointer)
        except (KeyError, ValueError, OSError, TypeError):
            continue
        if ifd:
            target = exif.get_ifd(pointer)
            for tag, value in ifd.items():
                if tag not in (0x927C, 0xA005):  # MakerNote offsets break once moved; interop
                    target[tag] = value
    return exif


def _encode(
    pixels: np.ndarray,
    fmt: str,
    icc: bytes | None,
    exif: Image.Exif | None,
    note: str,
    quality: int,
) -> bytes:
    exif = _clean_exif(exif)
    exif[0x0112] = 1  # the pixels are upright now
    exif[0x0131] = f"photod {__version__}"
    ifd = exif.get_ifd(0x8769)
    ifd[0xA002] = int(pixels.shape[1])
    ifd[0xA003] = int(pixels.shape[0])
    ifd[0x9286] = b"ASCII\x00\x00\x00" + note.encode("ascii", "replace")
    options: dict[str, Any] = {"exif": exif}
    if icc:
        options["icc_profile"] = icc
    if fmt == "JPEG":
        options.update(quality=quality, subsampling=0, optimize=False)
    elif fmt == "TIFF":
        options["compression"] = "tiff_deflate"
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, fmt, **options)
    return buffer.getvalue()
