"""Realistic benchmark inputs, made here from real photographs: no download, cached between runs.

- Camera-sized JPEGs (default 6000x4000 = 24 MP, quality 92, camera EXIF) of two kinds:
  `grainy` (scikit-image's sample photographs scaled up with sensor-like grain: they weigh what a
  camera file weighs, 8 MB, and cost what it costs to entropy-decode) and `smooth` (the same
  photographs scaled up without grain, 1.5-3 MB: what an upscaled or heavily denoised photo, or a
  new user's first test folder, looks like). A dozen distinct pictures are encoded once; every file then gets its
  own EXIF block (capture time, sub-seconds, ImageUniqueID, some with orientation 6), spliced in
  front of the same compressed image data. Each file therefore has distinct bytes (photod's index
  recognises copies by content hash and would not score them) and costs exactly what a camera file
  of that size costs to decode, while making 2,000 of them takes seconds, not an hour.
- A few PNG, TIFF and HEIC files and small DNGs (tests/photos.py writers) for the per-format figures.

Inputs are written once under `<workdir>/inputs/<key>/` and reused while their parameters match.
"""

from __future__ import annotations

import io
import json
import logging
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

log = logging.getLogger("photod")

SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "camera", "hubble_deep_field")
MEDIUM_PREVIEW = (1616, 1080)  # Sony's ARW preview; Canon's CR3 carries 1620x1080
DEFAULT_SIZE = (6000, 4000)
GRAIN_SIGMA = 7.0


def real_photo(name: str) -> np.ndarray:
    """A scikit-image sample photograph as HxWx3 uint8 (the same pictures tests use)."""
    import skimage.data

    pixels = getattr(skimage.data, name)()
    if pixels.ndim == 2:
        pixels = np.stack([pixels] * 3, axis=-1)
    return np.ascontiguousarray(pixels[..., :3])


KINDS = {"grainy": GRAIN_SIGMA, "smooth": 0.0}


def camera_picture(
    index: int, size: tuple[int, int], seed: int = 7, grain: float = GRAIN_SIGMA
) -> np.ndarray:
    """Picture `index`: sample photo `index % 6` (mirrored for odd rounds) at `size`, with
    `grain` (sigma of the added noise, 0 for none)."""
    width, height = size
    name = SAMPLES[index % len(SAMPLES)]
    im = Image.fromarray(real_photo(name))
    if (index // len(SAMPLES)) % 2:
        im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    # Fill the frame like a camera would (crop to the aspect ratio, then scale).
    im = _cover(im, size)
    if not grain:
        return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
    pixels = np.asarray(im, dtype=np.int16)
    # Grain from a tile: cheap to make, and the entropy coder cannot tell it repeats.
    rng = np.random.default_rng(seed + index)
    tile = rng.normal(0.0, grain, (min(height, 512), min(width, 512), 1)).astype(np.int16)
    reps = (-(-height // tile.shape[0]), -(-width // tile.shape[1]), 1)
    noise = np.tile(tile, reps)[:height, :width]
    pixels += noise
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _cover(im: Image.Image, size: tuple[int, int]) -> Image.Image:
    width, height = size
    scale = max(width / im.width, height / im.height)
    crop_w, crop_h = min(im.width, width / scale), min(im.height, height / scale)
    left, top = max(0.0, (im.width - crop_w) / 2), max(0.0, (im.height - crop_h) / 2)
    box = (left, top, left + crop_w, top + crop_h)
    return im.resize(size, Image.Resampling.BICUBIC, box=box)


def encode_jpeg(pixels: np.ndarray, quality: int = 92) -> bytes:
    """Baseline JPEG (4:2:0, like most cameras) without metadata; EXIF is spliced in per file."""
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=quality, subsampling="4:2:0")
    return out.getvalue()


def exif_block(index: int, orientation: int = 1, run: int = 0) -> bytes:
    """A camera-like EXIF APP1 segment, unique per `index` and `run` (capture time and
    ImageUniqueID)."""
    exif = Image.Exif()
    exif[0x010F] = "Canon"
    exif[0x0110] = "EOS R6"
    exif[0x0112] = orientation
    minute, second = divmod(index, 60)
    hour, minute = divmod(minute, 60)
    stamp = f"2026:06:20 {14 + hour % 10:02d}:{minute:02d}:{second:02d}"
    exif[0x0132] = stamp
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = stamp
    ifd[0x9291] = f"{index % 100:02d}"
    ifd[0xA434] = "RF24-105mm F4 L IS USM"
    ifd[0x829A] = 1 / 250
    ifd[0x829D] = 5.6
    ifd[0x8827] = 400
    ifd[0xA420] = f"{run:08x}{index:024x}"  # ImageUniqueID
    payload = exif.tobytes()  # starts with b"Exif\0\0"
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def splice_exif(jpeg: bytes, app1: bytes) -> bytes:
    """Insert an APP1 segment after SOI (and after a JFIF APP0, which must stay first)."""
    if jpeg[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    pos = 2
    if jpeg[2:4] == b"\xff\xe0":
        pos = 4 + struct.unpack(">H", jpeg[4:6])[0]
    return jpeg[:pos] + app1 + jpeg[pos:]


def jpeg_name(index: int) -> str:
    return f"IMG_{index:05d}.jpg"


def orientation_for(index: int) -> int:
    """One photo in five was shot in portrait (EXIF orientation 6), as from a real card."""
    return 6 if index % 5 == 4 else 1


@dataclass
class JpegSet:
    """Distinct encoded pictures; `write(i, folder)` writes file i (cheap: bytes + EXIF)."""

    encoded: list[bytes]

    def data(self, index: int, run: int = 0) -> bytes:
        base = self.encoded[index % len(self.encoded)]
        return splice_exif(base, exif_block(index, orientation_for(index), run))

    def write(self, index: int, folder: Path, run: int = 0) -> Path:
        path = folder / jpeg_name(index)
        path.write_bytes(self.data(index, run))
        return path


def make_jpeg_set(
    size: tuple[int, int], distinct: int = 12, quality: int = 92, kind: str = "grainy"
) -> JpegSet:
    """Encode `distinct` pictures at `size` (about 0.5 s each at 24 MP on one core)."""
    grain = KINDS[kind]
    return JpegSet(
        [encode_jpeg(camera_picture(i, size, grain=grain), quality) for i in range(distinct)]
    )


def cached_jpeg_set(
    workdir: Path | None,
    size: tuple[int, int],
    distinct: int = 12,
    quality: int = 92,
    kind: str = "grainy",
) -> JpegSet:
    """`make_jpeg_set`, kept under `<workdir>/inputs/` so later runs skip the encoding."""
    if workdir is None:
        return make_jpeg_set(size, distinct, quality, kind)
    params: dict[str, object] = {"w": size[0], "h": size[1], "d": distinct, "q": quality}
    if kind != "grainy":  # the grainy set keeps the folder name it always had
        params["k"] = kind
    folder = workdir / "inputs" / _key("base", **params)
    files = [folder / f"base_{i:02d}.jpg" for i in range(distinct)]
    if all(f.exists() for f in files):
        return JpegSet([f.read_bytes() for f in files])
    jpegs = make_jpeg_set(size, distinct, quality, kind)
    folder.mkdir(parents=True, exist_ok=True)
    for f, data in zip(files, jpegs.encoded, strict=True):
        tmp = f.with_name("." + f.name)
        tmp.write_bytes(data)
        os.replace(tmp, f)
    return jpegs


def _key(kind: str, **params: object) -> str:
    return kind + "-" + "-".join(f"{k}{v}" for k, v in sorted(params.items()))


def jpeg_folder(
    workdir: Path,
    count: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    distinct: int = 12,
    kind: str = "grainy",
) -> Path:
    """`count` camera JPEGs at `size` in a cached folder (made on first use)."""
    distinct = max(1, min(distinct, count))
    params: dict[str, object] = {"n": count, "w": size[0], "h": size[1], "d": distinct}
    if kind != "grainy":
        params["k"] = kind
    folder = workdir / "inputs" / _key("jpeg", **params)
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    log.info("making %d JPEGs of %dx%d in %s", count, size[0], size[1], folder)
    jpegs = cached_jpeg_set(workdir, size, distinct, kind=kind)
    for i in range(count):
        jpegs.write(i, folder)
    stamp.write_text(json.dumps({"count": count, "size": size, "distinct": distinct}))
    return folder


def format_folder(workdir: Path, per_format: int = 3, scale: float = 1.0) -> Path:
    """A few PNG, TIFF, HEIC and DNG files (phone- and camera-like sizes, times `scale`)."""
    folder = workdir / "inputs" / _key("formats", n=per_format, s=scale)
    stamp = folder / ".complete"
    if stamp.exists():
        return folder
    from tests import photos

    folder.mkdir(parents=True, exist_ok=True)

    def size(w: int, h: int) -> tuple[int, int]:
        return max(32, int(w * scale)), max(32, int(h * scale))

    for i in range(per_format):
        # PNG: a screenshot/export-sized file; TIFF: a scanned/exported 12 MP; HEIC: a phone.
        Image.fromarray(camera_picture(i, size(2400, 1600))).save(folder / f"png_{i}.png")
        Image.fromarray(camera_picture(i + 1, size(4000, 3000))).save(folder / f"tiff_{i}.tif")
        photos.write_heic(folder / f"heic_{i}.heic", camera_picture(i + 2, size(4032, 3024)))
        # DNG: a small real Bayer mosaic (pidng writes no preview, so LibRaw demosaics it).
        photos.write_dng(folder / f"dng_{i}.dng", camera_picture(i + 3, size(1200, 800)))
    stamp.write_text(json.dumps({"per_format": per_format, "scale": scale}))
    return folder


def fresh_jpegs(
    workdir: Path,
    dest: Path,
    count: int,
    run: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    kind: str = "grainy",
    distinct: int = 12,
) -> list[Path]:
    """`count` JPEGs with bytes no earlier run saw (`run` is in every file's ImageUniqueID),
    written into an empty `dest` and flushed to disk: a timed run reads files the way a new
    import is read, and neither the index nor any cache can know them."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    jpegs = cached_jpeg_set(workdir, size, max(1, min(distinct, count)), kind=kind)
    paths = [jpegs.write(i, dest, run) for i in range(count)]
    os.sync()
    return paths


def photo_files(folder: Path) -> list[Path]:
    """The photos in a generated folder, sorted (the `.complete` stamp is hidden)."""
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def file_megabytes(paths: list[Path]) -> float:
    return round(sum(os.path.getsize(p) for p in paths) / len(paths) / 1e6, 2) if paths else 0.0


def dng_with_preview(
    preview_jpeg: bytes,
    mosaic: np.ndarray,
    orientation: int = 1,
    medium_jpeg: bytes | None = None,
) -> bytes:
    """A DNG as cameras and Adobe's converter lay it out: IFD0 holds a JPEG preview
    (NewSubFileType 1), its first SubIFD the raw RGGB mosaic (uint16, uncompressed), and with
    `medium_jpeg` a second SubIFD a smaller JPEG preview, as camera DNGs carry a PreviewImage
    beside their full-size JpgFromRaw (and Sony's ARW a 1616x1080 one beside the full size).

    `preview_jpeg` is any baseline JPEG (a camera's full-size or 1-2 MP preview); LibRaw's
    `extract_thumb` returns it, and photod decodes it DCT-scaled instead of demosaicing.
    """
    with Image.open(io.BytesIO(preview_jpeg)) as im:
        pw, ph = im.size
    mosaic = np.ascontiguousarray(mosaic, dtype="<u2")
    mh, mw = mosaic.shape
    raw = mosaic.tobytes()
    medium = medium_jpeg or b""
    if medium:
        with Image.open(io.BytesIO(medium)) as im:
            medium_w, medium_h = im.size

    # (tag, type, values); types: 1 BYTE, 2 ASCII, 3 SHORT, 4 LONG, 5 RATIONAL, 10 SRATIONAL
    def ifd0(preview_at: int, sub_at: list[int]) -> list[tuple[int, int, list]]:
        return [
            (254, 4, [1]), (256, 4, [pw]), (257, 4, [ph]), (258, 3, [8, 8, 8]), (259, 3, [7]),
            (262, 3, [6]), (271, 2, "photod"), (272, 2, "Test Camera"), (273, 4, [preview_at]),
            (274, 3, [orientation]), (277, 3, [3]), (278, 4, [ph]),
            (279, 4, [len(preview_jpeg)]), (330, 4, sub_at), (50706, 1, [1, 4, 0, 0]),
            (50707, 1, [1, 2, 0, 0]), (50708, 2, "photod Test Camera"),
            (50721, 10, [(3240, 1000), (-1537, 1000), (-499, 1000), (-969, 1000), (1876, 1000),
                         (42, 1000), (56, 1000), (-204, 1000), (1057, 1000)]),
            (50728, 5, [(1, 1), (1, 1), (1, 1)]), (50778, 3, [21]),
        ]  # fmt: skip

    def sub(raw_at: int) -> list[tuple[int, int, list]]:
        return [
            (254, 4, [0]), (256, 4, [mw]), (257, 4, [mh]), (258, 3, [16]), (259, 3, [1]),
            (262, 3, [32803]), (273, 4, [raw_at]), (277, 3, [1]), (278, 4, [mh]),
            (279, 4, [len(raw)]), (33421, 3, [2, 2]), (33422, 1, [0, 1, 1, 2]),
            (50714, 4, [0]), (50717, 4, [4095]),
        ]  # fmt: skip

    def medium_ifd(medium_at: int) -> list[tuple[int, int, list]]:
        return [
            (254, 4, [1]), (256, 4, [medium_w]), (257, 4, [medium_h]), (258, 3, [8, 8, 8]),
            (259, 3, [7]), (262, 3, [6]), (273, 4, [medium_at]), (277, 3, [3]),
            (278, 4, [medium_h]), (279, 4, [len(medium)]),
        ]  # fmt: skip

    def encode(entries: list[tuple[int, int, list]], at: int) -> bytes:
        """One IFD at offset `at` (its out-of-line values follow it)."""
        size = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 10: 8}
        fmt = {1: "B", 3: "H", 4: "I"}
        head = struct.pack("<H", len(entries))
        extra = b""
        extra_at = at + 2 + 12 * len(entries) + 4
        body = b""
        for tag, kind, values in sorted(entries):
            if kind == 2:
                payload = values.encode() + b"\0"
                count = len(payload)
            elif kind in (5, 10):
                code = "<" + ("II" if kind == 5 else "ii") * len(values)
                payload = struct.pack(code, *[v for pair in values for v in pair])
                count = len(values)
            else:
                payload = struct.pack("<" + fmt[kind] * len(values), *values)
                count = len(values)
            if count * size[kind] <= 4:
                body += struct.pack("<HHI", tag, kind, count) + payload.ljust(4, b"\0")
            else:
                offset = extra_at + len(extra)
                body += struct.pack("<HHII", tag, kind, count, offset)
                extra += payload + (b"\0" if len(payload) % 2 else b"")
        return head + body + struct.pack("<I", 0) + extra

    # Layout: header, IFD0, SubIFDs, previews, mosaic (sizes of the IFDs do not depend on offsets).
    subs = 2 if medium else 1
    ifd0_at = 8
    ifd0_len = len(encode(ifd0(0, [0] * subs), ifd0_at))
    sub_at = ifd0_at + ifd0_len
    sub_len = len(encode(sub(0), sub_at))
    medium_ifd_at = sub_at + sub_len
    medium_ifd_len = len(encode(medium_ifd(0), medium_ifd_at)) if medium else 0
    preview_at = medium_ifd_at + medium_ifd_len
    medium_at = preview_at + len(preview_jpeg) + (len(preview_jpeg) % 2)
    raw_at = medium_at + len(medium) + (len(medium) % 2)
    out = b"II*\0" + struct.pack("<I", ifd0_at)
    out += encode(ifd0(preview_at, [sub_at, medium_ifd_at][:subs]), ifd0_at)
    out += encode(sub(raw_at), sub_at)
    if medium:
        out += encode(medium_ifd(medium_at), medium_ifd_at)
    out += preview_jpeg + b"\0" * (len(preview_jpeg) % 2)
    out += medium + b"\0" * (len(medium) % 2)
    return out + raw


def bayer_mosaic(pixels: np.ndarray) -> np.ndarray:
    """An RGGB mosaic (12-bit, linear) of an RGB picture."""
    h, w = (pixels.shape[0] // 2) * 2, (pixels.shape[1] // 2) * 2
    linear = (pixels[:h, :w].astype(np.float32) / 255.0) ** 2.2 * 4095
    bayer = np.zeros((h, w), np.uint16)
    bayer[0::2, 0::2] = linear[0::2, 0::2, 0]
    bayer[0::2, 1::2] = linear[0::2, 1::2, 1]
    bayer[1::2, 0::2] = linear[1::2, 0::2, 1]
    bayer[1::2, 1::2] = linear[1::2, 1::2, 2]
    return bayer


def medium_preview(jpeg: bytes, size: tuple[int, int] = MEDIUM_PREVIEW) -> bytes:
    """A camera's medium preview of `jpeg`: resized to fit `size`, baseline q90, no EXIF."""
    with Image.open(io.BytesIO(jpeg)) as im:
        im.draft("RGB", size)
        im = im.convert("RGB")
        im.thumbnail(size, Image.Resampling.LANCZOS)
        return encode_jpeg(np.asarray(im), quality=90)


def fresh_raws(
    workdir: Path,
    dest: Path,
    count: int,
    run: int,
    size: tuple[int, int] = DEFAULT_SIZE,
    kind: str = "smooth",
    mosaic_size: tuple[int, int] = (1200, 800),
    distinct: int = 12,
    medium: bool = False,
) -> list[Path]:
    """`count` DNGs whose full-size preview is the JPEG `fresh_jpegs` would write (same size,
    same bytes but for the run's EXIF), over a small real mosaic (a full-size 16-bit mosaic is
    48 MB a file and photod never decodes it when a preview is big enough). `medium`: a
    `MEDIUM_PREVIEW` JPEG beside it, as cameras write; IFD0 then carries the photo's
    orientation, which the medium preview (no EXIF of its own) takes from it."""
    import shutil

    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    jpegs = cached_jpeg_set(workdir, size, max(1, min(distinct, count)), kind=kind)
    mediums = [medium_preview(data) for data in jpegs.encoded] if medium else []
    mosaic = bayer_mosaic(camera_picture(0, mosaic_size, grain=0.0))
    paths = []
    for i in range(count):
        path = dest / f"IMG_{i:05d}.dng"
        orientation, extra = (
            (orientation_for(i), mediums[i % len(mediums)]) if medium else (1, None)
        )
        path.write_bytes(dng_with_preview(jpegs.data(i, run), mosaic, orientation, extra))
        paths.append(path)
    os.sync()
    return paths
