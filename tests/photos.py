"""Make real photo files for tests: JPEG (with EXIF, orientation, CMYK), PNG, TIFF, HEIC, DNG.

Pixels come from real photographs shipped with scikit-image, so the files look like photos to the
model, and formats are written by real encoders (Pillow, pillow-heif, pidng).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "hubble_deep_field")


def real_photo(name: str = "chelsea", scale: float = 1.0) -> np.ndarray:
    """A scikit-image sample photograph as HxWx3 uint8, optionally resized by `scale`."""
    import skimage.data

    pixels = getattr(skimage.data, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    pixels = pixels[..., :3]
    if scale != 1.0:
        h, w = pixels.shape[:2]
        size = (max(1, int(w * scale)), max(1, int(h * scale)))
        pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))
    return np.ascontiguousarray(pixels)


def camera_exif(
    orientation: int = 1, make: str = "Canon", model: str = "EOS R5", rating: int | None = None
) -> Image.Exif:
    """Camera EXIF; `rating` adds IFD0 Rating/RatingPercent as a camera with a rating button
    writes them (0: unrated), so the in-place EXIF rating patch has something to patch."""
    exif = Image.Exif()
    if rating is not None:
        exif[0x4746] = rating
        exif[0x4749] = {0: 0, 1: 1, 2: 25, 3: 50, 4: 75, 5: 99}[rating]
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0112] = orientation
    exif[0x0132] = "2026:11:28 10:00:00"
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = "2026:11:28 10:00:00"
    ifd[0x9291] = "12"
    ifd[0xA434] = "RF24-70mm F2.8 L IS USM"
    return exif


def write_jpeg(
    path: Path,
    pixels: np.ndarray,
    orientation: int = 1,
    quality: int = 92,
    rating: int | None = None,
    **exif_kw: str,
) -> Path:
    """Write `pixels` as a JPEG with camera EXIF; with orientation != 1 the stored pixels are
    transformed so that a viewer applying the orientation shows `pixels` upright."""
    stored = Image.fromarray(pixels)
    inverse = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
               8: Image.Transpose.ROTATE_270}  # fmt: skip
    if orientation in inverse:
        stored = stored.transpose(inverse[orientation])
    exif = camera_exif(orientation, rating=rating, **exif_kw)
    stored.save(path, "JPEG", quality=quality, exif=exif)
    return path


def looping_ifd1_exif(make: str = "Canon", model: str = "EOS 5D") -> bytes:
    """An EXIF APP1 payload whose IFD1 pointer points back at the Exif IFD, as some camera
    firmware and tools wrote it (exiv2: "Thumbnail pointer references previously read Photo
    directory"; pyexiv2 turned that warning into an exception). Built by hand, little-endian."""
    import struct

    def entry(tag: int, kind: int, count: int, value: bytes) -> bytes:
        return struct.pack("<HHI", tag, kind, count) + value.ljust(4, b"\0")

    make_b, model_b = make.encode() + b"\0", model.encode() + b"\0"
    date = b"2026:11:28 10:00:00\0"
    ifd0_at, n0 = 8, 5
    data_at = ifd0_at + 2 + 12 * n0 + 4
    exif_at = data_at + len(make_b) + len(model_b)
    exif_at += exif_at % 2
    n1 = 2
    date_at = exif_at + 2 + 12 * n1 + 4
    ifd0 = (
        struct.pack("<H", n0)
        + b"".join(
            [
                entry(0x010F, 2, len(make_b), struct.pack("<I", data_at)),
                entry(0x0110, 2, len(model_b), struct.pack("<I", data_at + len(make_b))),
                entry(0x4746, 3, 1, struct.pack("<H", 0)),
                entry(0x4749, 3, 1, struct.pack("<H", 0)),
                entry(0x8769, 4, 1, struct.pack("<I", exif_at)),
            ]
        )
        + struct.pack("<I", exif_at)
    )  # IFD1 "is" the Exif IFD: the loop
    blob = b"II*\0" + struct.pack("<I", ifd0_at) + ifd0 + make_b + model_b
    blob = blob.ljust(exif_at, b"\0")
    exif_ifd = struct.pack("<H", n1) + entry(0x9000, 7, 4, b"0231")
    exif_ifd += entry(0x9003, 2, len(date), struct.pack("<I", date_at)) + struct.pack("<I", 0)
    return b"Exif\0\0" + blob + exif_ifd + date


def write_jpeg_looping_ifd1(path: Path, pixels: np.ndarray) -> Path:
    """A real JPEG photo carrying `looping_ifd1_exif()` as its EXIF segment."""
    import io

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    payload = looping_ifd1_exif()
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    path.write_bytes(data[:2] + segment + data[2:])
    return path


def write_dng(path: Path, pixels: np.ndarray) -> Path:
    """A real DNG (RGGB Bayer mosaic of `pixels`, 16-bit) that rawpy/LibRaw opens and demosaics."""
    from pidng.core import RAW2DNG, DNGTags, Tag
    from pidng.defs import CalibrationIlluminant, CFAPattern, DNGVersion, PhotometricInterpretation

    h, w = (pixels.shape[0] // 2) * 2, (pixels.shape[1] // 2) * 2
    linear = (pixels[:h, :w].astype(np.float32) / 255.0) ** 2.2
    bayer = np.zeros((h, w), np.uint16)
    scale = 4095
    bayer[0::2, 0::2] = linear[0::2, 0::2, 0] * scale
    bayer[0::2, 1::2] = linear[0::2, 1::2, 1] * scale
    bayer[1::2, 0::2] = linear[1::2, 0::2, 1] * scale
    bayer[1::2, 1::2] = linear[1::2, 1::2, 2] * scale
    tags = DNGTags()
    tags.set(Tag.ImageWidth, w)
    tags.set(Tag.ImageLength, h)
    tags.set(Tag.TileWidth, w)
    tags.set(Tag.TileLength, h)
    tags.set(Tag.Orientation, 1)
    tags.set(Tag.PhotometricInterpretation, PhotometricInterpretation.Color_Filter_Array)
    tags.set(Tag.SamplesPerPixel, 1)
    tags.set(Tag.BitsPerSample, 16)
    tags.set(Tag.CFARepeatPatternDim, [2, 2])
    tags.set(Tag.CFAPattern, CFAPattern.RGGB)
    tags.set(Tag.BlackLevel, 0)
    tags.set(Tag.WhiteLevel, scale)
    # The mosaic is linear sRGB, so the camera matrix is XYZ(D65) -> linear sRGB.
    xyz_to_srgb = [3.2406, -1.5372, -0.4986, -0.9689, 1.8758, 0.0415, 0.0557, -0.2040, 1.0570]
    tags.set(Tag.ColorMatrix1, [[round(v * 10000), 10000] for v in xyz_to_srgb])
    tags.set(Tag.CalibrationIlluminant1, CalibrationIlluminant.D65)
    tags.set(Tag.AsShotNeutral, [[1, 1], [1, 1], [1, 1]])
    tags.set(Tag.BaselineExposure, [[0, 100]])
    tags.set(Tag.Make, "photod")
    tags.set(Tag.Model, "Test Camera")
    tags.set(Tag.DNGVersion, DNGVersion.V1_4)
    tags.set(Tag.DNGBackwardVersion, DNGVersion.V1_2)
    tags.set(Tag.PreviewColorSpace, 2)
    converter = RAW2DNG()
    converter.options(tags, path=str(path.parent), compress=False)
    converter.convert(bayer, filename=path.stem)
    return path


def write_heic(path: Path, pixels: np.ndarray, quality: int = 90) -> Path:
    import pillow_heif

    pillow_heif.register_heif_opener()
    Image.fromarray(pixels).save(path, format="HEIF", quality=quality)
    return path


def display_p3_icc() -> bytes:
    """A minimal ICC v2 matrix/TRC profile for Display P3 (gamma 2.2), built by hand: no profile
    files ship on these machines, and a non-sRGB profile is needed to prove colour conversion."""
    import struct

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ " + b"\0" * 4 + s15(x) + s15(y) + s15(z)

    def curve(gamma: float) -> bytes:
        return b"curv" + b"\0" * 4 + struct.pack(">IH", 1, round(gamma * 256)) + b"\0\0"

    text = b"Display P3 (photod test)"
    desc = b"desc" + b"\0" * 4 + struct.pack(">I", len(text) + 1) + text + b"\0"
    desc += b"\0" * 8 + b"\0" * 3 + b"\0" * 67
    desc += b"\0" * (-len(desc) % 4)
    tags = [
        (b"desc", desc),
        (b"cprt", b"text" + b"\0" * 4 + b"public domain\0\0\0"),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.5151, 0.2412, -0.0011)),
        (b"gXYZ", xyz(0.2920, 0.6922, 0.0419)),
        (b"bXYZ", xyz(0.1571, 0.0666, 0.7841)),
        (b"rTRC", curve(2.2)),
        (b"gTRC", curve(2.2)),
        (b"bTRC", curve(2.2)),
    ]
    offset = 128 + 4 + 12 * len(tags)
    table, data = b"", b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(data), len(body))
        data += body + b"\0" * (-len(body) % 4)
    size = offset + len(data)
    header = struct.pack(">I", size) + b"lcms" + struct.pack(">I", 0x02100000)
    header += b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"APPL" + b"\0" * 4
    header += b"\0" * 4 + b"\0" * 4 + b"\0" * 8 + struct.pack(">I", 0)
    header += s15(0.9642) + s15(1.0) + s15(0.8249) + b"lcms" + b"\0" * 16 + b"\0" * 28
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + data
