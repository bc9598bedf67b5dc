"""Reading and changing XMP/EXIF with pyexiv2 (exiv2 0.28), always on a file photod may change.

pyexiv2 parses and re-serialises the whole XMP packet with Adobe's XMP toolkit, so every property
of every namespace survives a write (darktable:history, crs:* develop settings, unknown vendors'
fields), only the packet's layout and padding change. It writes in place, so callers hand it temp
copies only (see atomic.py). It cannot start a sidecar from nothing: `MINIMAL_PACKET` is written
first.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from pathlib import Path
from typing import Any

from photod.errors import MetadataError
from photod.formats import HEIF_EXTENSIONS, JPEG_EXTENSIONS
from photod.metadata.records import PHOTOD_NS, PHOTOD_PREFIX

log = logging.getLogger("photod")

# Formats whose files carry XMP that Lightroom reads (it reads only embedded XMP for these).
EMBEDDABLE_EXTENSIONS = JPEG_EXTENSIONS | {".png", ".tif", ".tiff", ".dng"}
# Formats with an EXIF IFD0 where Windows Explorer looks for Rating/RatingPercent. exiv2 stores
# PNG EXIF in a non-standard text chunk few readers see, so PNG gets XMP only.
EXIF_EXTENSIONS = JPEG_EXTENSIONS | {".tif", ".tiff", ".dng"}
# What exiv2 must detect in a file before photod writes into it: a .jpg that is really a HEIC
# (phones export those) is refused rather than handed to a writer for the wrong format.
WRITABLE_MIME = {"image/jpeg", "image/png", "image/tiff", "image/x-adobe-dng"}

MINIMAL_PACKET = (
    '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
    '<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="photod">\n'
    ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
    '  <rdf:Description rdf:about=""/>\n'
    " </rdf:RDF>\n"
    "</x:xmpmeta>\n"
    '<?xpacket end="w"?>\n'
).encode()

RATING = "Xmp.xmp.Rating"
LABEL = "Xmp.xmp.Label"
EXIF_RATING = "Exif.Image.Rating"
EXIF_RATING_PERCENT = "Exif.Image.RatingPercent"
PHOTOD_KEY = f"Xmp.{PHOTOD_PREFIX}."
# Windows Explorer's mapping of stars to RatingPercent.
RATING_PERCENT = {0: 0, 1: 1, 2: 25, 3: 50, 4: 75, 5: 99}
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

_lock = threading.Lock()
_ready = False
# exiv2's XMP toolkit keeps global state (namespace registry, parser) that is not safe to use
# from several threads at once; the daemon and the web server both call in from worker threads.
_exiv2_lock = threading.RLock()


def exiv2() -> Any:
    """pyexiv2, imported on first use, with photod's namespace registered (HEIC/BMFF reading is
    always on since pyexiv2 2.14)."""
    global _ready
    import pyexiv2

    with _lock:
        if not _ready:
            try:
                pyexiv2.registerNs(PHOTOD_NS, PHOTOD_PREFIX)
            except Exception as exc:  # already registered by an earlier import: fine
                log.debug("photod namespace registration: %s", exc)
            # exiv2 prints warnings on stdout (breaking `--json` output); errors still raise.
            pyexiv2.set_log_level(3)
            _ready = True
    return pyexiv2


def is_embeddable(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in EMBEDDABLE_EXTENSIONS


def carries_exif(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in EXIF_EXTENSIONS


def is_heif(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in HEIF_EXTENSIONS


def read_metadata(path: Path, with_exif: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """(XMP, EXIF) of a photo or sidecar as exiv2 sees them; only reads.

    Raises MetadataError when the file is missing or its metadata cannot be parsed.
    """
    pyexiv2 = exiv2()
    with _exiv2_lock:
        try:
            image = pyexiv2.Image(str(path))
        except Exception as exc:
            if not path.exists():
                raise MetadataError("file vanished", str(path)) from exc
            raise MetadataError(f"cannot read metadata: {exc}", str(path)) from exc
        try:
            xmp = image.read_xmp()
            exif = image.read_exif() if with_exif else {}
        except Exception as exc:
            raise MetadataError(f"cannot parse metadata: {exc}", str(path)) from exc
        finally:
            image.close()
    return xmp, exif


def modify(path: Path, xmp: dict[str, str | None], exif: dict[str, str] | None = None) -> None:
    """Set (or with None, delete) XMP and EXIF keys of `path` in place: call on temp copies only.

    Reads back what it wrote so a silently dropped field is an error, not a surprise.
    """
    pyexiv2 = exiv2()
    with _exiv2_lock:
        image = pyexiv2.Image(str(path))
        try:
            mime = image.get_mime_type()
            if mime not in WRITABLE_MIME and mime != "application/rdf+xml":
                raise MetadataError(f"exiv2 detects {mime}; photod writes no metadata into it")
            image.modify_xmp(xmp)
            if exif:
                image.modify_exif(exif)
        finally:
            image.close()
        check = pyexiv2.Image(str(path))
        try:
            got = check.read_xmp()
        finally:
            check.close()
    for key, value in xmp.items():
        if got.get(key) != value:
            raise MetadataError(f"{key} reads back {got.get(key)!r} instead of {value!r}")


def rating_fields(
    score: float,
    stars: int,
    model: str,
    scored_at: str,
    label: str | None,
    extra: dict[str, str],
    version: str,
) -> dict[str, str | None]:
    fields: dict[str, str | None] = {
        RATING: str(stars),
        PHOTOD_KEY + "Score": f"{score:.4f}",
        PHOTOD_KEY + "Stars": str(stars),
        PHOTOD_KEY + "Model": model,
        PHOTOD_KEY + "Version": version,
        PHOTOD_KEY + "ScoredAt": scored_at,
    }
    if label is not None:
        fields[LABEL] = label
    for name, value in extra.items():
        if not _FIELD_NAME.match(name):
            raise MetadataError(f"invalid photod field name {name!r}")
        fields[PHOTOD_KEY + name] = str(value)
    return fields


def exif_rating_fields(stars: int) -> dict[str, str]:
    """EXIF Rating/RatingPercent: 0..5 only (Windows has no reject; a reject reads as unrated)."""
    stars = max(stars, 0)
    return {EXIF_RATING: str(stars), EXIF_RATING_PERCENT: str(RATING_PERCENT[stars])}


def parse_rating(value: str | None) -> int | None:
    """xmp:Rating is an XMP Real (-1..5); tools write '3', '3.0' or garbage."""
    if value is None or str(value).strip() == "":
        return None
    try:
        rating = round(float(value))
    except ValueError:
        return None
    return rating if -1 <= rating <= 5 else None


def photod_fields(xmp: dict[str, str]) -> dict[str, str]:
    """photod:* fields by local name ('Score', 'Stars', ...)."""
    return {k[len(PHOTOD_KEY) :]: v for k, v in xmp.items() if k.startswith(PHOTOD_KEY)}


def jpeg_scan_data(path: Path) -> bytes:
    """Everything from the first start-of-scan marker on: the compressed image (plus anything
    appended after it, such as MPF or motion-photo payloads), which a metadata write must not
    change."""
    data = path.read_bytes()
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG (no SOI marker)", str(path))
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise MetadataError(f"broken JPEG marker at byte {pos}", str(path))
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return data[pos:]
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 2 + length
    raise MetadataError("JPEG has no image data (no SOS marker)", str(path))


def png_image_data(path: Path) -> bytes:
    """The concatenated IDAT chunks of a PNG: its compressed pixels."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise MetadataError("not a PNG", str(path))
    pos, out = 8, []
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            out.append(data[pos + 8 : pos + 8 + length])
        pos += 12 + length
    return b"".join(out)


_TIFF_TYPES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
_DATA_TAGS = ((273, 279), (324, 325))  # (StripOffsets, StripByteCounts), (TileOffsets, ...)
_SUBIFDS = 330


def tiff_image_data(path: Path) -> list[bytes]:
    """The raw strip/tile bytes of every image in a TIFF or DNG (IFD chain and SubIFDs, where DNG
    keeps its raw data), in file order of the IFDs: what a metadata write must not change even
    though exiv2 rewrites the whole TIFF structure around them."""
    data = path.read_bytes()
    order = {b"II": "little", b"MM": "big"}.get(data[:2])
    if order is None or int.from_bytes(data[2:4], order) != 42:  # BigTIFF and others: not ours
        raise MetadataError("not a classic TIFF", str(path))

    def num(pos: int, size: int) -> int:
        return int.from_bytes(data[pos : pos + size], order)  # type: ignore[arg-type]

    def values(pos: int) -> list[int]:
        kind, count = num(pos + 2, 2), num(pos + 4, 4)
        size = _TIFF_TYPES.get(kind, 1)
        where = pos + 8 if size * count <= 4 else num(pos + 8, 4)
        return [num(where + i * size, size) for i in range(count)]

    images: list[bytes] = []
    seen: set[int] = set()
    pending = [num(4, 4)]
    while pending:
        ifd = pending.pop(0)
        if ifd == 0 or ifd in seen or ifd + 2 > len(data):
            continue
        seen.add(ifd)
        count = num(ifd, 2)
        entries = {num(ifd + 2 + 12 * i, 2): ifd + 2 + 12 * i for i in range(count)}
        for offsets_tag, counts_tag in _DATA_TAGS:
            if offsets_tag in entries and counts_tag in entries:
                pairs = zip(values(entries[offsets_tag]), values(entries[counts_tag]), strict=False)
                images.append(b"".join(data[o : o + n] for o, n in pairs))
        if _SUBIFDS in entries:
            pending.extend(values(entries[_SUBIFDS]))
        pending.append(num(ifd + 2 + 12 * count, 4))
    return images


def verify_image_data(original: Path, modified: Path) -> None:
    """Refuse a write whose compressed image data differs from the original's (JPEG scan data,
    PNG IDAT chunks, TIFF/DNG strips and tiles of every IFD)."""
    suffix = original.suffix.lower()
    if suffix in JPEG_EXTENSIONS:
        same = jpeg_scan_data(original) == jpeg_scan_data(modified)
    elif suffix == ".png":
        same = png_image_data(original) == png_image_data(modified)
    elif suffix in (".tif", ".tiff", ".dng"):
        before = tiff_image_data(original)
        same = bool(before) and sorted(before) == sorted(tiff_image_data(modified))
    else:
        return
    if not same:
        raise MetadataError("image data would change; write refused", str(original))
