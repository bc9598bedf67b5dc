"""The embedded JPEG previews and the EXIF of TIFF-based camera RAW files (DNG, NEF, CR2, ARW,
PEF, ORF, SRW, …), read from the file's bytes: a read-only walk over its IFDs.

Why not LibRaw's `extract_thumb`: it returns one preview, the largest. Cameras carry several — a
full-size JPEG and a 1–2 MP one (camera DNGs: PreviewImage + JpgFromRaw; Sony's 1616x1080 beside
the full size; Adobe's converter writes a medium or a full-size preview) — and the scorer needs
224 pixels: the smallest preview that is large enough decodes several times faster than the
full-size one. Why not exiv2 for the EXIF: it reads and parses the whole file, maker notes
included, for the ten values photod indexes.

Everything here is bounds-checked: a truncated or crafted file yields fewer IFDs or previews,
never an exception (the decoder then falls back to LibRaw, which reports what is wrong).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Classic TIFF, and the variants with another magic number but the same IFD layout.
_MAGICS = {
    b"II*\x00": "little",
    b"MM\x00*": "big",
    b"IIRO": "little",  # Olympus ORF
    b"IIRS": "little",  # Olympus ORF (some models)
    b"MMOR": "big",  # Olympus ORF (E-1 era)
}
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}
MAX_IFDS = 64  # a crafted file may chain or nest IFDs in a loop
SUB_IFDS, EXIF_IFD = 0x014A, 0x8769
COMPRESSION, PHOTOMETRIC = 0x0103, 0x0106
STRIP_OFFSETS, STRIP_BYTE_COUNTS = 0x0111, 0x0117
JPEG_OFFSET, JPEG_LENGTH = 0x0201, 0x0202
RAW_PHOTOMETRICS = {32803, 34892}  # CFA and LinearRaw: the sensor data, never a preview
# Baseline, extended and progressive DCT: what libjpeg decodes (lossless SOF3 is RAW data).
_DCT_FRAMES = {0xC0, 0xC1, 0xC2}


@dataclass(frozen=True)
class Preview:
    """One embedded JPEG: where its bytes lie in the file and its pixel size (from its SOF)."""

    offset: int
    length: int
    width: int
    height: int

    @property
    def short_side(self) -> int:
        return min(self.width, self.height)


Ifd = dict[int, tuple[int, int, int]]  # tag -> (type, count, offset of the value bytes)
Walked = tuple[str, list[Ifd], Ifd]  # what `ifds` returns: byte order, image IFDs, EXIF IFD


def _order(data: bytes) -> str | None:
    return _MAGICS.get(bytes(data[:4]))


def _num(data: bytes, pos: int, size: int, order: str) -> int:
    return int.from_bytes(data[pos : pos + size], order)  # type: ignore[arg-type]


def _read_ifd(data: bytes, offset: int, order: str) -> tuple[Ifd, int] | None:
    """The entries of the IFD at `offset` and the offset of the next one (0: none)."""
    if offset < 8 or offset + 2 > len(data):
        return None
    count = _num(data, offset, 2, order)
    end = offset + 2 + 12 * count
    if end + 4 > len(data):
        return None
    entries: Ifd = {}
    for pos in range(offset + 2, end, 12):
        tag, kind, n = (
            _num(data, pos, 2, order), _num(data, pos + 2, 2, order), _num(data, pos + 4, 4, order)
        )  # fmt: skip
        size = _SIZES.get(kind, 1) * n
        at = pos + 8 if size <= 4 else _num(data, pos + 8, 4, order)
        if at + size <= len(data):
            entries[tag] = (kind, n, at)
    return entries, _num(data, end, 4, order)


def _values(data: bytes, order: str, entry: tuple[int, int, int]) -> list[Any]:
    """The values of one entry: ints, floats (rationals) or one str (ASCII)."""
    kind, count, at = entry
    if kind == 2:
        return [bytes(data[at : at + count]).split(b"\x00", 1)[0].decode("utf-8", "replace")]
    if kind in (5, 10):
        signed = kind == 10
        out: list[Any] = []
        for i in range(min(count, 64)):
            pos = at + 8 * i
            num = int.from_bytes(data[pos : pos + 4], order, signed=signed)  # type: ignore[arg-type]
            den = int.from_bytes(data[pos + 4 : pos + 8], order, signed=signed)  # type: ignore[arg-type]
            out.append(num / den if den else float("nan"))
        return out
    if kind in (1, 3, 4, 6, 8, 9):
        size = _SIZES[kind]
        signed = kind in (6, 8, 9)
        return [
            int.from_bytes(data[at + size * i : at + size * (i + 1)], order, signed=signed)  # type: ignore[arg-type]
            for i in range(min(count, 4096))
        ]
    return []


def _first(data: bytes, order: str, ifd: Ifd, tag: int) -> Any:
    values = _values(data, order, ifd[tag]) if tag in ifd else []
    return values[0] if values else None


def ifds(data: bytes) -> Walked:
    """(byte order, the image IFDs: IFD0's chain and every SubIFD, the EXIF IFD); empty when
    `data` is not a TIFF-based file."""
    order = _order(data)
    if order is None:
        return "little", [], {}
    found: list[Ifd] = []
    seen: set[int] = set()
    todo = [_num(data, 4, 4, order)]
    while todo and len(found) < MAX_IFDS:
        offset = todo.pop(0)
        if offset in seen:
            continue
        seen.add(offset)
        read = _read_ifd(data, offset, order)
        if read is None:
            continue
        entries, next_offset = read
        found.append(entries)
        if next_offset:
            todo.append(next_offset)
        if SUB_IFDS in entries:
            todo.extend(v for v in _values(data, order, entries[SUB_IFDS]) if isinstance(v, int))
    exif: Ifd = {}
    pointer = _first(data, order, found[0], EXIF_IFD) if found else None
    if isinstance(pointer, int):
        read = _read_ifd(data, pointer, order)
        exif = read[0] if read else {}
    return order, found, exif


def jpeg_size(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(width, height) from the SOF of the JPEG in data[start:end] when libjpeg can decode it
    (a DCT frame), else None."""
    if data[start : start + 2] != b"\xff\xd8":
        return None
    pos = start + 2
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = _num(data, pos + 2, 2, "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if marker not in _DCT_FRAMES or pos + 9 > end:
                return None
            height, width = _num(data, pos + 5, 2, "big"), _num(data, pos + 7, 2, "big")
            return (width, height) if width and height else None
        if marker == 0xDA or length < 2:  # scan data before any frame header: not a JPEG
            return None
        pos += 2 + length
    return None


def previews(data: bytes, walked: Walked | None = None) -> list[Preview]:
    """Every embedded JPEG preview libjpeg can decode, smallest first (`walked`: `ifds(data)`,
    when the caller has it)."""
    order, found, _ = walked or ifds(data)
    out: dict[int, Preview] = {}
    for ifd in found:
        spans = []
        if JPEG_OFFSET in ifd and JPEG_LENGTH in ifd:
            spans.append(
                (_first(data, order, ifd, JPEG_OFFSET), _first(data, order, ifd, JPEG_LENGTH))
            )
        photometric = _first(data, order, ifd, PHOTOMETRIC)
        if (
            _first(data, order, ifd, COMPRESSION) in (6, 7)
            and photometric not in RAW_PHOTOMETRICS
            and STRIP_OFFSETS in ifd
            and STRIP_BYTE_COUNTS in ifd
        ):
            offsets = _values(data, order, ifd[STRIP_OFFSETS])
            counts = _values(data, order, ifd[STRIP_BYTE_COUNTS])
            if len(offsets) == 1 and len(counts) == 1:  # one strip: a whole JPEG file
                spans.append((offsets[0], counts[0]))
        for offset, length in spans:
            if not isinstance(offset, int) or not isinstance(length, int) or length < 4:
                continue
            if offset + length > len(data) or offset in out:
                continue
            size = jpeg_size(data, offset, offset + length)
            if size is not None:
                out[offset] = Preview(offset, length, *size)
    return sorted(out.values(), key=lambda p: (p.width * p.height, p.offset))


def exif_tags(data: bytes, wanted: set[int], walked: Walked | None = None) -> dict[int, Any]:
    """The `wanted` tags of IFD0 and the EXIF IFD, merged (the EXIF IFD's win), as Pillow's
    `getexif` gives them: one value plain, several as a tuple. Empty when `data` is not
    TIFF-based."""
    order, found, exif = walked or ifds(data)
    merged: dict[int, Any] = {}
    for ifd in (found[0] if found else {}, exif):
        for tag, entry in ifd.items():
            if tag not in wanted:
                continue
            values = _values(data, order, entry)
            if values:
                merged[tag] = values[0] if len(values) == 1 else tuple(values)
    return merged


def is_tiff_based(data: bytes) -> bool:
    return _order(data) is not None
