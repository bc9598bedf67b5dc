"""Turn any supported photo file into an 8-bit sRGB pixel array, as small and as fast as allowed.

One entry point, `decode_image`, serves the scorer (224 px), the suggestion search (a working copy of
about a thousand pixels) and the web page. JPEGs are decoded with libjpeg's DCT scaling (Pillow
`draft`), so a 24 MP photo is never fully decoded to get 224 px. Camera RAW files use their embedded
preview when it is big enough and a half-size demosaic otherwise. Every failure is a typed
`DecodeError`; nothing here lets an exception from Pillow, rawpy or the OS escape unexplained.
"""

from __future__ import annotations

import errno
import io
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from photod import raw_previews
from photod.errors import (
    DecodeError,
    EmptyFileError,
    FileUnreadableError,
    FileVanishedError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
    UnsupportedFormatError,
)
from photod.formats import (  # noqa: F401  (re-exported: photod.decode.is_supported etc.)
    HEIF_EXTENSIONS,
    JPEG_EXTENSIONS,
    PILLOW_EXTENSIONS,
    RAW_EXTENSIONS,
    SUPPORTED_EXTENSIONS,
    is_supported,
)

log = logging.getLogger("photod")

DEFAULT_MAX_PIXELS = 200_000_000


# Pillow's own bomb check would raise before we can say how big the image is; photod checks the
# header itself against a configurable limit.
Image.MAX_IMAGE_PIXELS = None

_SRGB_PROFILE = None
_heif_registered = False


@dataclass
class DecodedImage:
    """Pixels of a photo (orientation applied, sRGB, uint8 HxWx3) and what was learnt on the way."""

    pixels: np.ndarray
    original_size: tuple[int, int]  # (width, height) of the full image, orientation applied
    format: str
    exif: dict[str, Any] = field(default_factory=dict)

    @property
    def width(self) -> int:
        return self.original_size[0]

    @property
    def height(self) -> int:
        return self.original_size[1]


def decode_image(
    path: str | os.PathLike[str],
    min_side: int | None = 224,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    *,
    data: bytes | None = None,
    square: int | None = None,
) -> DecodedImage:
    """Decode `path` to sRGB uint8 pixels whose short side is at least `min_side` when possible.

    The result is never upscaled and never much larger than needed: JPEGs use DCT scaling and RAW
    files their preview. `min_side=None` decodes at full resolution (for rendering a suggestion).
    `data`: the file's bytes when the caller already read them (they are not read again).
    `square`: resize the result to `square` x `square` (bilinear, the scorer's input), still in
    Pillow, which spares copies between Pillow and numpy; the pixels equal those of
    `photod.models.preprocess.resize_for_model` applied to the plain result.
    Raises a subclass of `DecodeError` with a clear message for every kind of bad input.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if data is None:
        _check_file(path)
    elif not data:
        raise EmptyFileError("empty file (0 bytes)", str(path))
    elif suffix not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFormatError(f"unsupported file type '{path.suffix}'", str(path))
    try:
        if suffix in RAW_EXTENSIONS:
            decoded = _decode_raw(path, min_side, max_pixels, data, square)
            if square and decoded.pixels.shape[:2] != (square, square):
                decoded.pixels = _square(Image.fromarray(decoded.pixels), square)
            return decoded
        if suffix in HEIF_EXTENSIONS:
            _register_heif()
        source = io.BytesIO(data) if data is not None else path
        return _decode_with_pillow(path, min_side, max_pixels, source, square, data)
    except DecodeError:
        raise
    except FileNotFoundError as exc:
        raise FileVanishedError("file vanished while it was being read", str(path)) from exc
    except PermissionError as exc:
        raise FileUnreadableError(f"permission denied: {exc.strerror}", str(path)) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError("not an image, or a format photod cannot read", str(path)) from exc
    except (OSError, SyntaxError, ValueError) as exc:
        message = str(exc)
        # Pillow says "Truncated File Read" or "image file is truncated"; match any case.
        lowered = message.lower()
        if "truncated" in lowered or "broken data stream" in lowered or "premature" in lowered:
            raise TruncatedImageError(
                f"truncated or damaged image data ({message})", str(path)
            ) from exc
        raise DecodeError(f"cannot decode: {message}", str(path)) from exc


def _check_file(path: Path) -> None:
    try:
        st = path.stat()
    except FileNotFoundError as exc:
        raise FileVanishedError("no such file (deleted or moved away)", str(path)) from exc
    except PermissionError as exc:
        raise FileUnreadableError("permission denied", str(path)) from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FileUnreadableError("symbolic link loop", str(path)) from exc
        raise FileUnreadableError(f"cannot stat: {exc.strerror}", str(path)) from exc
    if path.is_dir():
        raise NotAnImageError("is a folder, not a photo", str(path))
    if st.st_size == 0:
        raise EmptyFileError("empty file (0 bytes)", str(path))
    if path.suffix.lower() not in SUPPORTED_EXTENSIONS:
        raise UnsupportedFormatError(f"unsupported file type '{path.suffix}'", str(path))
    if not os.access(path, os.R_OK):
        raise FileUnreadableError("permission denied", str(path))


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True


def _check_pixels(size: tuple[int, int], max_pixels: int, path: Path) -> None:
    pixels = size[0] * size[1]
    if pixels > max_pixels:
        raise ImageTooLargeError(
            f"{size[0]}x{size[1]} = {pixels / 1e6:.0f} MP exceeds the limit of "
            f"{max_pixels / 1e6:.0f} MP (possible decompression bomb; raise max_pixels to allow)",
            str(path),
        )


def _decode_with_pillow(
    path: Path,
    min_side: int | None,
    max_pixels: int,
    source: Path | io.BytesIO | None = None,
    square: int | None = None,
    data: bytes | None = None,
) -> DecodedImage:
    with Image.open(source if source is not None else path) as im:
        fmt = (im.format or path.suffix.lstrip(".")).upper()
        _check_pixels(im.size, max_pixels, path)
        exif = _exif_summary(im)
        orientation = exif.get("orientation", 1)
        full_size = im.size if orientation < 5 else (im.size[1], im.size[0])
        if fmt == "JPEG" and min_side:
            _draft_jpeg(im, min_side)
        if square:
            # The same steps as below, each one done by Pillow on its own image (orientation,
            # area-averaged shrink, then the model's resize): no array copies in between.
            decoded = _turbo_decode(im, data) if fmt == "JPEG" and data is not None else None
            if decoded is None:
                im.load()
            upright = _to_srgb_image(decoded or im, path)
            transpose = _TRANSPOSE.get(orientation)
            if transpose is not None:
                upright = upright.transpose(transpose)
            pixels = _square(_shrink_image(upright, min_side), square)
            return DecodedImage(pixels=pixels, original_size=full_size, format=fmt, exif=exif)
        im.load()
        pixels = _to_srgb_array(im, path)
    pixels = _apply_orientation(pixels, orientation)
    pixels = _shrink(pixels, min_side)
    return DecodedImage(pixels=pixels, original_size=full_size, format=fmt, exif=exif)


def _turbo_decode(im: Image.Image, data: bytes) -> Image.Image | None:
    """The pixels Pillow's `load` would give for an RGB JPEG at its draft scale, decoded by
    libjpeg-turbo's TurboJPEG API (simplejpeg): the same library and scale, identical pixels,
    ~10 % less CPU (README, "Benchmarks"). None: let Pillow do it (another colour space, no
    simplejpeg, or any problem with the data, which Pillow then reports as it always has)."""
    if im.mode != "RGB" or _simplejpeg() is None:
        return None
    width, height = im.size  # the draft size: libjpeg's 1/2, 1/4 or 1/8 of the image
    try:
        # The smallest TurboJPEG scale giving at least the draft size is the draft's own scale.
        pixels = _simplejpeg().decode_jpeg(
            data, colorspace="RGB", min_width=width, min_height=height
        )
    except Exception:  # Pillow's decoder then explains it
        return None
    if pixels.shape[:2] != (height, width):
        return None
    decoded = Image.fromarray(pixels, "RGB")
    if "icc_profile" in im.info:
        decoded.info["icc_profile"] = im.info["icc_profile"]
    return decoded


_SIMPLEJPEG: Any = None


def _simplejpeg() -> Any:
    global _SIMPLEJPEG
    if _SIMPLEJPEG is None:
        try:
            import simplejpeg
        except ImportError:
            _SIMPLEJPEG = False
        else:
            _SIMPLEJPEG = simplejpeg
    return _SIMPLEJPEG or None


def _square(im: Image.Image, size: int) -> np.ndarray:
    """`resize_for_model` on a Pillow image: bilinear (antialiased) to size x size."""
    if im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.uint8)


def _draft_jpeg(im: Image.Image, min_side: int) -> None:
    """Ask libjpeg to decode at 1/2, 1/4 or 1/8 scale while keeping the short side >= min_side."""
    w, h = im.size
    short = min(w, h)
    if short <= min_side:
        return
    scale = short / min_side
    mode = "RGB" if im.mode in ("RGB", "YCbCr") else im.mode
    im.draft(mode, (max(1, int(w / scale)), max(1, int(h / scale))))


def _to_srgb_array(im: Image.Image, path: Path) -> np.ndarray:
    """Convert any Pillow mode (CMYK, L, P, RGBA, I;16, 48-bit) and ICC profile to sRGB uint8."""
    return np.asarray(_to_srgb_image(im, path), dtype=np.uint8)


def _to_srgb_image(im: Image.Image, path: Path) -> Image.Image:
    """`_to_srgb_array`, as an RGB Pillow image."""
    icc = im.info.get("icc_profile")
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float32)
        peak = 65535.0 if arr.max() > 255 else 255.0
        im = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        # Transparent areas are shown on white, as a browser or file manager would.
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, rgba)
    if icc:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            # The pixels must be in the profile's colour space (a grey JPEG can carry an RGB one).
            space = {"RGB": "RGB", "GRAY": "L", "CMYK": "CMYK"}.get(
                source.profile.xcolor_space.strip(), "RGB"
            )
            if im.mode != space:
                im = im.convert(space)
            im = ImageCms.profileToProfile(im, source, _srgb(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError) as exc:
            log.warning("%s: ignoring broken ICC profile (%s)", path, exc)
    if im.mode == "CMYK":
        # Adobe writes inverted CMYK JPEGs; Pillow already undoes that for its conversion.
        im = im.convert("RGB")
    if im.mode != "RGB":
        im = im.convert("RGB")
    return im


def _srgb() -> ImageCms.ImageCmsProfile:
    global _SRGB_PROFILE
    if _SRGB_PROFILE is None:
        _SRGB_PROFILE = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    return _SRGB_PROFILE


def _apply_orientation(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) to an HxWx3 array."""
    ops = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1, :],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a.transpose(1, 0, 2)[::-1, ::-1],
        8: lambda a: np.rot90(a, 1),
    }
    op = ops.get(orientation)
    return np.ascontiguousarray(op(pixels)) if op else pixels


# `_apply_orientation` as Pillow transposes (the same pixels, without leaving Pillow).
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def _shrink_size(width: int, height: int, min_side: int | None) -> tuple[int, int] | None:
    """The size `_shrink` reduces to, or None when it keeps the pixels as they are."""
    if not min_side:
        return None
    short = min(height, width)
    if short <= 2 * min_side:
        return None
    scale = 2 * min_side / short
    return max(1, round(width * scale)), max(1, round(height * scale))


def _shrink_image(im: Image.Image, min_side: int | None) -> Image.Image:
    """`_shrink` on a Pillow image."""
    size = _shrink_size(im.width, im.height, min_side)
    return im if size is None else im.resize(size, Image.Resampling.BOX)


def _shrink(pixels: np.ndarray, min_side: int | None) -> np.ndarray:
    """Downscale with area averaging so the short side is about 2x min_side at most."""
    h, w = pixels.shape[:2]
    size = _shrink_size(w, h, min_side)
    if size is None:
        return pixels
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))


_EXIF_TAGS = {
    0x010F: "make",
    0x0110: "model",
    0x0112: "orientation",
    0x9003: "datetime_original",
    0x9291: "subsec_original",
    0xA434: "lens",
    0x9204: "exposure_bias",
    0x829A: "exposure_time",
    0x829D: "f_number",
    0x8827: "iso",
    0x920A: "focal_length",
}


def _exif_summary(im: Image.Image) -> dict[str, Any]:
    """The few EXIF fields photod indexes and uses, as plain Python values."""
    try:
        exif = im.getexif()
    except Exception:  # a broken EXIF block must never stop decoding
        return {}
    merged = dict(exif)
    try:
        merged.update(exif.get_ifd(0x8769))
    except Exception:
        pass
    return _exif_values(merged)


def _exif_values(merged: dict[int, Any]) -> dict[str, Any]:
    """`_EXIF_TAGS` of IFD0 + the EXIF IFD (tag -> Pillow-style value) as plain Python values."""
    values: dict[str, Any] = {}
    for tag, name in _EXIF_TAGS.items():
        value = merged.get(tag)
        if value is None:
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            value = value.strip("\x00 ").strip()
            if not value:
                continue
        elif not isinstance(value, int):
            try:
                value = float(value)
            except (TypeError, ValueError, ZeroDivisionError):
                continue
            if not math.isfinite(value):
                continue  # manual lenses write ExposureTime/FNumber as 0/0: "unknown", not NaN
        values[name] = value
    if not isinstance(values.get("orientation"), int) or not 1 <= values["orientation"] <= 8:
        values["orientation"] = 1
    return values


def _decode_raw(
    path: Path,
    min_side: int | None,
    max_pixels: int,
    data: bytes | None = None,
    square: int | None = None,
) -> DecodedImage:
    import rawpy

    if data is None:
        # Read once: LibRaw and the IFD walk (previews, EXIF) share the bytes.
        data = path.read_bytes()
        if not data:
            raise EmptyFileError("empty file (0 bytes)", str(path))
    try:
        raw = rawpy.imread(io.BytesIO(data))
    except rawpy.LibRawFileUnsupportedError as exc:
        raise UnsupportedFormatError("not a RAW file LibRaw can read", str(path)) from exc
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        raise TruncatedImageError(f"damaged RAW file ({exc})", str(path)) from exc
    except rawpy.LibRawError as exc:
        raise DecodeError(f"cannot read RAW file ({exc})", str(path)) from exc
    with raw:
        sizes = raw.sizes
        flip = sizes.flip  # LibRaw: 0 none, 3 180°, 5 90° CCW, 6 90° CW
        width, height = sizes.width, sizes.height
        if flip in (5, 6):
            width, height = height, width
        _check_pixels((width, height), max_pixels, path)
        walked = raw_previews.ifds(data)  # empty for RAW files that are not TIFF-based
        preview = None
        if min_side:
            preview = _smallest_preview(data, walked, min_side, flip, max_pixels, path)
            if preview is None:
                preview = _raw_preview(raw, min_side, flip, max_pixels, path)
        if preview is not None and square:
            # The JPEG path's steps on the preview, all in Pillow (no array copies between).
            pixels = _square(_shrink_image(preview, min_side), square)
            squared = True
        else:
            pixels = None if preview is None else np.array(preview)
            squared = False
        if pixels is None:
            try:
                half = bool(min_side) and min(width, height) // 2 >= min_side
                rgb = raw.postprocess(half_size=half, use_camera_wb=True, output_bps=8)
            except rawpy.LibRawError as exc:
                raise TruncatedImageError(f"damaged RAW data ({exc})", str(path)) from exc
            pixels = np.ascontiguousarray(rgb)
    return DecodedImage(
        pixels=pixels if squared else _shrink(pixels, min_side),
        original_size=(width, height),
        format="RAW:" + path.suffix.lstrip(".").upper(),
        exif=_raw_exif(path, data, walked),
    )


_EXIV2_KEYS = {
    "Exif.Image.Make": "make",
    "Exif.Image.Model": "model",
    "Exif.Photo.DateTimeOriginal": "datetime_original",
    "Exif.Photo.SubSecTimeOriginal": "subsec_original",
    "Exif.Photo.LensModel": "lens",
    "Exif.Photo.ExposureBiasValue": "exposure_bias",
    "Exif.Photo.ExposureTime": "exposure_time",
    "Exif.Photo.FNumber": "f_number",
    "Exif.Photo.ISOSpeedRatings": "iso",
    "Exif.Photo.FocalLength": "focal_length",
}


def _raw_exif(path: Path, data: bytes, walked: raw_previews.Walked | None = None) -> dict[str, Any]:
    """Capture time, camera and exposure of a RAW file (LibRaw exposes no EXIF): from its IFDs
    when it is TIFF-based (the same tags and values as a JPEG's), else through exiv2.

    Orientation is left out: the pixels from LibRaw are already upright.
    """
    if raw_previews.is_tiff_based(data):
        values = _exif_values(raw_previews.exif_tags(data, set(_EXIF_TAGS), walked))
    else:
        values = _exiv2_exif(path)
    values["orientation"] = 1
    return values


def _exiv2_exif(path: Path) -> dict[str, Any]:
    """`_raw_exif` through exiv2, for RAW files that are not TIFF-based (CR3, RAF, RW2, …)."""
    from photod.errors import PhotodError
    from photod.metadata.xmp import read_metadata

    try:
        _, exif = read_metadata(path)
    except PhotodError as exc:
        log.debug("%s: no EXIF (%s)", path, exc)
        return {}
    values: dict[str, Any] = {}
    for key, name in _EXIV2_KEYS.items():
        raw = exif.get(key)
        if isinstance(raw, list):
            raw = raw[0] if raw else None
        if raw is None or not str(raw).strip():
            continue
        text = str(raw).strip()
        if "/" in text and name not in ("make", "model", "lens", "datetime_original"):
            numerator, _, denominator = text.partition("/")
            try:
                values[name] = float(numerator) / float(denominator)
            except (ValueError, ZeroDivisionError):
                continue
        elif name in ("iso",):
            values[name] = int(text.split()[0]) if text.split()[0].isdigit() else text
        else:
            values[name] = text
    return values


def _raw_preview(
    raw: Any, min_side: int, flip: int, max_pixels: int, path: Path
) -> Image.Image | None:
    """The embedded JPEG preview when its short side is at least min_side, oriented like the RAW,
    decoded DCT-scaled as a JPEG file is (TurboJPEG when it takes it).

    The preview is a second image with its own size: the pixel limit applies to it too (a
    crafted RAW may declare a small sensor and carry a decompression bomb as its preview)."""
    import rawpy

    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError, rawpy.LibRawError):
        return None
    if thumb.format == rawpy.ThumbFormat.JPEG:
        return _preview_jpeg(bytes(thumb.data), min_side, flip, max_pixels, path)
    if thumb.format == rawpy.ThumbFormat.BITMAP:
        pixels = np.asarray(thumb.data)
        _check_pixels((pixels.shape[1], pixels.shape[0]), max_pixels, path)
        if min(pixels.shape[:2]) < min_side:
            return None
        image = Image.fromarray(np.ascontiguousarray(pixels[..., :3]).astype(np.uint8), "RGB")
        return _orient_preview(image, 0, flip)
    return None


def _smallest_preview(
    data: bytes,
    walked: raw_previews.Walked,
    min_side: int,
    flip: int,
    max_pixels: int,
    path: Path,
) -> Image.Image | None:
    """The smallest embedded JPEG whose short side is at least min_side, from the IFDs of a
    TIFF-based RAW file (`walked`); None when it has none (or it does not decode: LibRaw then
    tries)."""
    for preview in raw_previews.previews(data, walked):
        if preview.short_side >= min_side:
            jpeg = data[preview.offset : preview.offset + preview.length]
            return _preview_jpeg(jpeg, min_side, flip, max_pixels, path)
    return None


def _preview_jpeg(
    data: bytes, min_side: int, flip: int, max_pixels: int, path: Path
) -> Image.Image | None:
    """An embedded JPEG preview decoded DCT-scaled and oriented (None: too small or broken)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            _check_pixels(im.size, max_pixels, path)
            if min(im.size) < min_side:
                return None
            orientation = im.getexif().get(0x0112) or 0
            _draft_jpeg(im, min_side)
            image = _turbo_decode(im, data)
            if image is None:
                image = im.convert("RGB") if im.mode != "RGB" else im.copy()
    except (OSError, UnidentifiedImageError):
        return None
    return _orient_preview(image, orientation, flip)


def _orient_preview(image: Image.Image, orientation: int, flip: int) -> Image.Image:
    """A preview's own EXIF orientation, else the RAW's (LibRaw's flip)."""
    if not 1 <= orientation <= 8:
        orientation = {3: 3, 5: 8, 6: 6}.get(flip, 1)
    transpose = _TRANSPOSE.get(orientation)
    return image.transpose(transpose) if transpose is not None else image
