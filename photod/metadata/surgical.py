"""Surgical XMP/EXIF edits inside JPEG, PNG and TIFF/DNG files: only the bytes a rating needs
change, every other byte of the file stays where it was.

Why not a metadata library: exiv2 (pyexiv2) parses and re-serialises the whole EXIF block and the
maker notes on every write; on exiftool's own test images that lost or changed 35 tags in 7 of 41
files (Olympus lens type, Ricoh firmware, FLIR temperatures, PrintIM…, NOTES.md), and it refuses
files it merely warns about. So photod edits the containers itself:

- JPEG: the standard XMP APP1 segment is replaced in place (padded to its old length when the new
  packet fits, so nothing in the file moves) or inserted after the EXIF/JFIF segments and before
  any APP2 (ICC, MPF). Extended XMP (XMP spec part 3, 1.1.3.1: `xmpNote:HasExtendedXMP` holds the
  GUID, the MD5 of the extended packet, split into APP1 chunks of at most 65000 bytes) is read and
  merged; its segments are kept byte-identical unless a key photod changes lives there, in which
  case the extended packet is rewritten under its new GUID. When an insertion shifts the bytes
  after it, the MPF offsets (relative to the MPF header, pointing past EOI) are corrected.
  Every other segment (EXIF, maker notes, thumbnails, IPTC, ICC, MPF) and the scan data are
  copied byte for byte.
- PNG: the `iTXt` chunk `XML:com.adobe.xmp` is replaced where it is, or inserted before the first
  IDAT; PNG has no offsets, so nothing else needs care.
- TIFF/DNG: the new packet is appended at the end of the file and tag 700's count/offset patched
  in place (a packet photod appended earlier, the file's tail, is replaced there, so re-rating
  does not grow the file); without a tag 700, IFD0 is copied to the end of the file with the one
  extra entry and the header's IFD0 offset repointed. Every original byte but those 8 (or the 4
  of the header) stays as it was: every IFD, strip, tile, maker note and SubIFD, and the old
  packet too (decoders of truncated strips were seen reading over it).
- EXIF Rating (0x4746) / RatingPercent (0x4749) in IFD0: the value bytes are overwritten when the
  tag exists with a SHORT/LONG count 1. A missing tag is NOT added: adding entries means
  re-laying out IFD0 inside a 64 KB segment full of offsets (maker notes among them), and
  Windows Explorer, Lightroom and darktable all read `xmp:Rating` (darktable prefers it over EXIF;
  tests/test_darktable.py imports photod's JPEG/PNG/TIFF ratings with no EXIF Rating at all).

Everything here works on bytes; the XMP packet itself is merged by `photod.metadata.xmp` with
Adobe's XMP toolkit (through pyexiv2), so foreign namespaces survive.
"""

from __future__ import annotations

import hashlib
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from photod.errors import MetadataError

log = logging.getLogger("photod")

XMP_SIG = b"http://ns.adobe.com/xap/1.0/\x00"
EXT_SIG = b"http://ns.adobe.com/xmp/extension/\x00"
EXIF_SIG = b"Exif\x00\x00"
MPF_SIG = b"MPF\x00"
# One APP1 segment holds 65533 payload bytes; the standard packet shares it with its signature.
STANDARD_LIMIT = 65533 - len(XMP_SIG)
EXTENDED_CHUNK = 65000  # the XMP spec's recommended chunk size (65533 - 75 bytes of header)
PNG_SIG = b"\x89PNG\r\n\x1a\n"
PNG_XMP_KEY = b"XML:com.adobe.xmp"
TIFF_XMP_TAG = 700
RATING_TAGS = {"Exif.Image.Rating": 0x4746, "Exif.Image.RatingPercent": 0x4749}
ORIENTATION_TAG = 0x0112
PADDING = 2048  # room for later edits in place (the XMP spec suggests 2-4 KB)


def sniff(data: bytes) -> str | None:
    """'jpeg', 'png', 'tiff' (classic TIFF: TIFF and DNG) from the first bytes, else None."""
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    if data[:8] == PNG_SIG:
        return "png"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    return None


@dataclass
class Embedded:
    """What a photo carries that photod reads: the XMP packets and a few IFD0 values."""

    kind: str
    standard: bytes | None = None  # the standard XMP packet
    extended: bytes | None = None  # the reassembled Extended XMP packet named by the GUID
    guid: str | None = None  # the GUID found in extended chunks that matched
    ifd0: dict[int, int] = field(default_factory=dict)  # Rating, RatingPercent, Orientation
    warnings: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- TIFF structures (EXIF and TIFF)

_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4}


@dataclass
class Entry:
    tag: int
    kind: int
    count: int
    pos: int  # byte offset of the 12-byte entry in the TIFF block

    def value_size(self) -> int:
        return _SIZES.get(self.kind, 1) * self.count


@dataclass
class Ifd:
    order: str  # "little" or "big"
    offset: int  # of the IFD in the TIFF block
    entries: list[Entry]
    next_pos: int  # byte offset of the next-IFD pointer

    def find(self, tag: int) -> Entry | None:
        return next((e for e in self.entries if e.tag == tag), None)


def _num(block: bytes, pos: int, size: int, order: str) -> int:
    return int.from_bytes(block[pos : pos + size], order)  # type: ignore[arg-type]


def parse_ifd0(block: bytes) -> Ifd:
    """IFD0 of a TIFF block (a TIFF file or the payload of an EXIF segment after `Exif\\0\\0`)."""
    order = {b"II": "little", b"MM": "big"}.get(block[:2])
    if order is None or _num(block, 2, 2, order) != 42:
        raise MetadataError("not a classic TIFF structure (BigTIFF and others are not written)")
    offset = _num(block, 4, 4, order)
    if offset < 8 or offset + 2 > len(block):
        raise MetadataError(f"IFD0 offset {offset} lies outside the TIFF data")
    count = _num(block, offset, 2, order)
    if offset + 2 + 12 * count + 4 > len(block):
        raise MetadataError("IFD0 runs past the end of the TIFF data")
    entries = []
    for i in range(count):
        pos = offset + 2 + 12 * i
        entries.append(
            Entry(
                _num(block, pos, 2, order),
                _num(block, pos + 2, 2, order),
                _num(block, pos + 4, 4, order),
                pos,
            )  # fmt: skip
        )
    return Ifd(order, offset, entries, offset + 2 + 12 * count)


def _value_pos(block: bytes, ifd: Ifd, entry: Entry) -> int:
    if entry.value_size() <= 4:
        return entry.pos + 8
    return _num(block, entry.pos + 8, 4, ifd.order)


def _small_values(block: bytes, ifd: Ifd, warnings: list[str]) -> dict[int, int]:
    values = {}
    for tag in (*RATING_TAGS.values(), ORIENTATION_TAG):
        entry = ifd.find(tag)
        if entry is None:
            continue
        if entry.kind not in (3, 4) or entry.count != 1:
            warnings.append(f"IFD0 tag 0x{tag:04x} has type {entry.kind} count {entry.count}")
            continue
        values[tag] = _num(block, entry.pos + 8, _SIZES[entry.kind], ifd.order)
    return values


def _patch_ratings(block: bytearray, ifd: Ifd, exif: dict[str, str], warnings: list[str]) -> None:
    """Overwrite the value bytes of Rating/RatingPercent where they exist; never add them."""
    for key, tag in RATING_TAGS.items():
        if key not in exif:
            continue
        entry = ifd.find(tag)
        if entry is None:
            continue  # not added: see the module docstring
        if entry.kind not in (3, 4) or entry.count != 1:
            warnings.append(f"IFD0 {key} has type {entry.kind} count {entry.count}: left alone")
            continue
        size = _SIZES[entry.kind]
        block[entry.pos + 8 : entry.pos + 8 + size] = int(exif[key]).to_bytes(size, ifd.order)  # type: ignore[arg-type]


def exif_patch_ranges(block: bytes) -> list[tuple[int, int]]:
    """Byte ranges of a TIFF block that a rating patch may change (the Rating value fields)."""
    try:
        ifd = parse_ifd0(block)
    except MetadataError:
        return []
    return [(e.pos + 8, e.pos + 12) for e in ifd.entries if e.tag in RATING_TAGS.values()]


# ---------------------------------------------------------------- XMP packets


def pad_packet(packet: bytes, size: int | None = None) -> bytes:
    """`packet` with whitespace padding before its trailer: exactly `size` bytes when given (an
    edit in place), else PADDING bytes more. Padding is the XMP spec's way of leaving room."""
    trailer_at = packet.rfind(b"<?xpacket end")
    if trailer_at < 0:
        body, trailer = packet.rstrip() + b"\n", b'<?xpacket end="w"?>'
    else:
        body, trailer = packet[:trailer_at].rstrip() + b"\n", packet[trailer_at:].rstrip()
    room = PADDING if size is None else size - len(body) - len(trailer)
    if room < 0:
        raise ValueError("packet does not fit")
    lines, left = [], room
    while left > 0:
        line = min(left, 100)
        lines.append(b" " * (line - 1) + b"\n" if line > 1 else b" ")
        left -= line
    return body + b"".join(lines) + trailer


_UTF = (
    (b"\x00\x00\x00<", "utf-32-be"), (b"<\x00\x00\x00", "utf-32-le"),
    (b"\x00<", "utf-16-be"), (b"<\x00", "utf-16-le"),
)  # fmt: skip


def normalise_packet(packet: bytes, warnings: list[str]) -> bytes:
    """The packet as UTF-8, the only encoding the XMP spec allows in JPEG/PNG/TIFF. UTF-16/32
    packets exist (exiftool's own test images carry them): odd but readable, so they are
    converted (and the write then stores UTF-8), with a warning. Leading BOM/whitespace and
    trailing NULs, which some writers leave, are dropped for parsing."""
    encoding = "utf-16" if packet[:2] in (b"\xfe\xff", b"\xff\xfe") else None  # BOM first
    for start, name in _UTF:
        if encoding is None and packet.startswith(start):
            encoding = name
    if encoding is None:
        return packet.lstrip(b"\xef\xbb\xbf \t\r\n").rstrip(b"\x00")
    try:
        text = packet.decode(encoding)
    except UnicodeDecodeError:
        return packet  # not really UTF-16/32: the XMP parser will say what it is
    warnings.append(f"XMP packet encoded as {encoding.upper()}; it is written as UTF-8")
    return text.lstrip("\ufeff \t\r\n").rstrip("\x00").encode("utf-8")


def extended_guid(extended: bytes) -> str:
    """The GUID of an Extended XMP packet: its MD5 as 32 upper-case hex digits (spec part 3)."""
    return hashlib.md5(extended).hexdigest().upper()  # noqa: S324 - the spec's checksum


# ---------------------------------------------------------------- JPEG


@dataclass
class Segment:
    marker: int
    start: int  # of the 0xFF marker
    end: int  # one past the segment
    payload: bytes

    @property
    def kind(self) -> str:
        if self.marker == 0xE1 and self.payload.startswith(XMP_SIG):
            return "xmp"
        if self.marker == 0xE1 and self.payload.startswith(EXT_SIG):
            return "xmp-ext"
        if self.marker == 0xE1 and self.payload.startswith(EXIF_SIG):
            return "exif"
        if self.marker == 0xE2 and self.payload.startswith(MPF_SIG):
            return "mpf"
        if self.marker == 0xE0:
            return "app0"
        return f"0x{self.marker:02x}"


def jpeg_segments(data: bytes) -> tuple[list[Segment], int]:
    """The marker segments before the first SOS and the offset of that SOS."""
    if data[:2] != b"\xff\xd8":
        raise MetadataError("not a JPEG (no SOI marker)")
    segments, pos = [], 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            raise MetadataError(f"broken JPEG marker at byte {pos}")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return segments, pos
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:
            pos += 2
            continue
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        if length < 2 or pos + 2 + length > len(data):
            raise MetadataError(f"JPEG segment 0x{marker:02x} at byte {pos} is truncated")
        segments.append(Segment(marker, pos, pos + 2 + length, data[pos + 4 : pos + 2 + length]))
        pos += 2 + length
    raise MetadataError("JPEG has no image data (no SOS marker)")


HEAD_READ = 1 << 16


def read_jpeg_head(handle: BinaryIO) -> bytes:
    """The bytes of an open JPEG from its start to past its first SOS marker (all its metadata
    segments), read in doubling steps; the whole file when it has no SOS (jpeg_segments then
    says what is wrong). A camera JPEG's metadata is 10-100 KB of an 8 MB file."""
    handle.seek(0)
    data = handle.read(HEAD_READ)
    step = HEAD_READ
    while data[:2] == b"\xff\xd8":
        try:
            jpeg_segments(data)  # returns once the SOS marker and its length are in `data`
            break
        except MetadataError:
            more = handle.read(step)
            if not more:
                break
            data += more
            step *= 2
    return data


def same_tail(a: BinaryIO, a_from: int, b: BinaryIO, b_from: int, chunk: int = 1 << 20) -> bool:
    """The bytes of `a` from `a_from` to its end equal those of `b` from `b_from` to its end,
    compared a chunk at a time (no copy of either file in memory)."""
    a.seek(0, 2)
    b.seek(0, 2)
    if a.tell() - a_from != b.tell() - b_from:
        return False
    a.seek(a_from)
    b.seek(b_from)
    while True:
        x, y = a.read(chunk), b.read(chunk)
        if x != y:
            return False
        if not x:
            return True


def _extended_chunks(segments: list[Segment]) -> dict[str, dict[int, bytes]]:
    """GUID -> {offset: chunk} of every Extended XMP segment."""
    found: dict[str, dict[int, bytes]] = {}
    for seg in segments:
        if seg.kind != "xmp-ext":
            continue
        head = seg.payload[len(EXT_SIG) :]
        if len(head) < 40:
            continue
        guid = head[:32].decode("ascii", "replace")
        offset = int.from_bytes(head[36:40], "big")
        found.setdefault(guid, {})[offset] = head[40:]
    return found


def _assemble(chunks: dict[int, bytes], total: int) -> bytes | None:
    out, pos = bytearray(), 0
    for offset in sorted(chunks):
        if offset != pos:
            return None
        out += chunks[offset]
        pos += len(chunks[offset])
    return bytes(out) if pos == total else None


def _extended_for(segments: list[Segment], guid: str | None, warnings: list[str]) -> bytes | None:
    chunks = _extended_chunks(segments)
    if guid is None:
        if chunks:
            warnings.append("Extended XMP segments without xmpNote:HasExtendedXMP: ignored")
        return None
    if guid not in chunks:
        warnings.append(f"Extended XMP {guid} is named but missing")
        return None
    totals = set()
    for seg in segments:
        if seg.kind == "xmp-ext" and seg.payload[len(EXT_SIG) : len(EXT_SIG) + 32] == guid.encode():
            totals.add(int.from_bytes(seg.payload[len(EXT_SIG) + 32 : len(EXT_SIG) + 36], "big"))
    packet = _assemble(chunks[guid], max(totals)) if len(totals) == 1 else None
    if packet is None or extended_guid(packet) != guid:
        warnings.append(f"Extended XMP {guid} is incomplete or its MD5 does not match: ignored")
        return None
    return packet


def read_jpeg(data: bytes, guid_of: callable) -> Embedded:  # type: ignore[valid-type]
    segments, _ = jpeg_segments(data)
    found = Embedded("jpeg")
    standard = [s for s in segments if s.kind == "xmp"]
    if len(standard) > 1:
        found.warnings.append(f"{len(standard)} standard XMP segments; the first one is used")
    if standard:
        found.standard = normalise_packet(standard[0].payload[len(XMP_SIG) :], found.warnings)
        guid = guid_of(found.standard)
        found.extended = _extended_for(segments, guid, found.warnings)
        found.guid = guid if found.extended is not None else None
    exif = next((s for s in segments if s.kind == "exif"), None)
    if exif is not None:
        block = exif.payload[len(EXIF_SIG) :]
        try:
            found.ifd0 = _small_values(block, parse_ifd0(block), found.warnings)
        except MetadataError as exc:
            found.warnings.append(f"EXIF IFD0 unreadable ({exc}); EXIF left alone")
    return found


def _segment(marker: int, payload: bytes) -> bytes:
    return b"\xff" + bytes([marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


def _extended_segments(extended: bytes) -> bytes:
    guid = extended_guid(extended).encode()
    total = len(extended).to_bytes(4, "big")
    out = bytearray()
    for offset in range(0, len(extended), EXTENDED_CHUNK):
        chunk = extended[offset : offset + EXTENDED_CHUNK]
        out += _segment(0xE1, EXT_SIG + guid + total + offset.to_bytes(4, "big") + chunk)
    return bytes(out)


def jpeg_prefix(
    data: bytes,
    standard: bytes,
    extended: bytes | None,
    extended_changed: bool,
    exif: dict[str, str] | None,
    warnings: list[str],
) -> tuple[bytes, int]:
    """(new bytes for `data[:scan]`, scan): the JPEG's metadata segments with `standard` as its
    XMP packet (and `extended` when it changed), the rating values patched into EXIF IFD0, every
    other segment copied; the scan data from offset `scan` on stays as it is. `data` need only
    reach past the first SOS marker (`read_jpeg_head`), so a caller rewrites the metadata of a
    large file without holding its image data."""
    segments, scan = jpeg_segments(data)
    out = bytearray(data[:2])
    old_std = next((s for s in segments if s.kind == "xmp"), None)
    new_payload_room = None if old_std is None else len(old_std.payload) - len(XMP_SIG)
    if new_payload_room is not None and len(standard) <= new_payload_room:
        packet = pad_packet(standard, new_payload_room)  # same length: nothing moves
    else:
        packet = pad_packet(standard)
        if len(packet) > STANDARD_LIMIT:
            packet = standard
    if len(packet) > STANDARD_LIMIT:
        raise MetadataError(
            f"the XMP packet would be {len(packet)} bytes, more than one JPEG segment holds"
        )
    xmp_bytes = _segment(0xE1, XMP_SIG + packet)
    ext_bytes = _extended_segments(extended) if extended is not None and extended_changed else b""
    # Where a new packet goes: after SOI/APP0/EXIF (the layout of the XMP spec and of cameras),
    # before APP2 (ICC, MPF) and anything else.
    insert_after = None
    if old_std is None:
        insert_after = 2
        for seg in segments:
            if seg.kind in ("app0", "exif"):
                insert_after = seg.end
            else:
                break
    if insert_after == 2:
        out += xmp_bytes + ext_bytes
    placed = insert_after == 2
    mpf_shift = 0
    mpf_at: int | None = None
    for seg in segments:
        raw = data[seg.start : seg.end]
        if seg is old_std:
            out += xmp_bytes + ext_bytes
            placed = True
            continue
        if seg.kind == "xmp":
            out += raw  # a second standard packet: not ours to judge, kept as it was
            continue
        if seg.kind == "xmp-ext" and extended_changed:
            continue  # replaced by the new extended packet's chunks
        if seg.kind == "exif" and exif:
            block = bytearray(seg.payload[len(EXIF_SIG) :])
            try:
                _patch_ratings(block, parse_ifd0(bytes(block)), exif, warnings)
                raw = _segment(0xE1, EXIF_SIG + bytes(block))
            except MetadataError as exc:
                warnings.append(f"EXIF IFD0 unreadable ({exc}); EXIF Rating not written")
        if seg.kind == "mpf" and mpf_at is None:
            mpf_at = len(out)
            mpf_shift = len(out) - seg.start
        out += raw
        if not placed and seg.end == insert_after:
            out += xmp_bytes + ext_bytes
            placed = True
    if not placed:
        out += xmp_bytes + ext_bytes
    scan_shift = len(out) - scan
    if mpf_at is not None and scan_shift != mpf_shift:
        _shift_mpf(out, mpf_at, scan_shift - mpf_shift, warnings)
    return bytes(out), scan


def _shift_mpf(out: bytearray, at: int, delta: int, warnings: list[str]) -> None:
    """Move MPF image offsets by `delta`: the images after EOI moved relative to the MPF header."""
    base = at + 4 + len(MPF_SIG)  # the MPF TIFF header
    block = bytes(out[base:])
    try:
        ifd = parse_ifd0(block)
    except MetadataError as exc:
        warnings.append(f"MPF unreadable ({exc}); its offsets were not adjusted")
        return
    entry = ifd.find(0xB002)
    if entry is None:
        return
    where = _value_pos(block, ifd, entry)
    for i in range(entry.count // 16):
        pos = base + where + 16 * i + 8
        offset = _num(out, pos, 4, ifd.order)
        if offset:
            out[pos : pos + 4] = (offset + delta).to_bytes(4, ifd.order)  # type: ignore[arg-type]


# ---------------------------------------------------------------- PNG


def png_chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(type, start, end) of every chunk."""
    if data[:8] != PNG_SIG:
        raise MetadataError("not a PNG")
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > len(data):
            raise MetadataError(f"PNG chunk {kind!r} at byte {pos} is truncated")
        chunks.append((kind, pos, end))
        pos = end
        if kind == b"IEND":
            break
    if not any(k == b"IDAT" for k, _, _ in chunks):
        raise MetadataError("PNG has no image data (no IDAT chunk)")
    return chunks


def _png_xmp(data: bytes, start: int, end: int) -> bytes | None:
    body = data[start + 8 : end - 4]
    if not body.startswith(PNG_XMP_KEY + b"\x00"):
        return None
    rest = body[len(PNG_XMP_KEY) + 1 :]
    compressed, rest = rest[0], rest[2:]
    _language, _, rest = rest.partition(b"\x00")
    _translated, _, text = rest.partition(b"\x00")
    if compressed:
        try:
            return zlib.decompress(text)
        except zlib.error as exc:
            raise MetadataError(f"compressed PNG XMP cannot be inflated: {exc}") from exc
    return text


def read_png(data: bytes) -> Embedded:
    found = Embedded("png")
    for kind, start, end in png_chunks(data):
        if kind == b"iTXt":
            packet = _png_xmp(data, start, end)
            if packet is not None:
                if found.standard is not None:
                    found.warnings.append("several XMP iTXt chunks; the first one is used")
                    continue
                found.standard = normalise_packet(packet, found.warnings)
    return found


def write_png(data: bytes, packet: bytes) -> bytes:
    body = PNG_XMP_KEY + b"\x00\x00\x00\x00\x00" + pad_packet(packet)
    chunk = len(body).to_bytes(4, "big") + b"iTXt" + body
    chunk += zlib.crc32(b"iTXt" + body).to_bytes(4, "big")
    chunks = png_chunks(data)
    out, placed = bytearray(data[:8]), False
    for kind, start, end in chunks:
        if kind == b"iTXt" and not placed and _png_xmp(data, start, end) is not None:
            out += chunk
            placed = True
            continue
        if kind == b"IDAT" and not placed:
            out += chunk
            placed = True
        out += data[start:end]
    out += data[chunks[-1][2] :]
    return bytes(out)


# ---------------------------------------------------------------- TIFF / DNG


def read_tiff(data: bytes) -> Embedded:
    found = Embedded("tiff")
    ifd = parse_ifd0(data)
    entry = ifd.find(TIFF_XMP_TAG)
    if entry is not None:
        where = _value_pos(data, ifd, entry)
        if where + entry.count > len(data):
            raise MetadataError("the XMP of this TIFF runs past the end of the file")
        found.standard = normalise_packet(data[where : where + entry.value_size()], found.warnings)
    found.ifd0 = _small_values(data, ifd, found.warnings)
    return found


def write_tiff(
    data: bytes, packet: bytes, exif: dict[str, str] | None, warnings: list[str]
) -> bytes:
    """Patch in place what can be patched, append what cannot; nothing already there moves."""
    out = bytearray(data)
    ifd = parse_ifd0(data)
    order = ifd.order
    if exif:
        _patch_ratings(out, ifd, exif, warnings)
    entry = ifd.find(TIFF_XMP_TAG)
    if entry is not None and entry.kind in (1, 7) and entry.count > 4:
        where = _value_pos(data, ifd, entry)
        if where + entry.count >= len(data) - 1:
            # The packet is the file's tail (photod appended it earlier): rewrite it there.
            del out[where:]
            offset = where
            tail = entry.count
        else:
            # Somebody else's packet inside the file stays as it was: image data readers (or a
            # truncated strip) may run over it, so its bytes are never changed.
            out += b"\x00" * (len(out) % 2)  # TIFF values start on a word boundary
            offset = len(out)
            tail = 0
        blob = pad_packet(packet)
        if len(blob) < tail:  # never shorter than before: the file only grows or stays
            blob = pad_packet(packet, tail)
        out += blob
        out[entry.pos + 4 : entry.pos + 12] = len(blob).to_bytes(4, order) + offset.to_bytes(
            4, order
        )  # type: ignore[arg-type]
        return bytes(out)
    if entry is not None:
        raise MetadataError(f"TIFF tag 700 (XMP) has type {entry.kind}; photod does not rewrite it")
    # No XMP yet: IFD0 gets one more entry, so a copy of it goes to the end of the file, then
    # the packet, last, so that the next write can replace it where it is.
    blob = pad_packet(packet)
    out += b"\x00" * (len(out) % 2)
    ifd_at = len(out)
    count = len(ifd.entries) + 1
    blob_at = ifd_at + 2 + 12 * count + 4
    new_entry = (TIFF_XMP_TAG.to_bytes(2, order) + (1).to_bytes(2, order)  # type: ignore[arg-type]
                 + len(blob).to_bytes(4, order) + blob_at.to_bytes(4, order))  # type: ignore[arg-type]  # fmt: skip
    raw_entries = [(e.tag, bytes(out[e.pos : e.pos + 12])) for e in ifd.entries]
    # In tag order, without re-sorting an IFD some writer left out of order.
    at = next((i for i, (tag, _) in enumerate(raw_entries) if tag > TIFF_XMP_TAG), len(raw_entries))
    raw_entries.insert(at, (TIFF_XMP_TAG, new_entry))
    out += count.to_bytes(2, order)  # type: ignore[arg-type]
    out += b"".join(raw for _, raw in raw_entries)
    out += data[ifd.next_pos : ifd.next_pos + 4]
    out += blob
    out[4:8] = ifd_at.to_bytes(4, order)  # type: ignore[arg-type]
    return bytes(out)


def tiff_allowed_ranges(data: bytes) -> list[tuple[int, int]]:
    """Ranges of a TIFF photod's write may change: header IFD0 offset, tag 700's entry and old
    packet, the rating values."""
    try:
        ifd = parse_ifd0(data)
    except MetadataError:
        return []
    ranges = [(4, 8)]
    ranges += [(e.pos + 8, e.pos + 12) for e in ifd.entries if e.tag in RATING_TAGS.values()]
    entry = ifd.find(TIFF_XMP_TAG)
    if entry is not None:
        ranges.append((entry.pos + 4, entry.pos + 12))
        where = _value_pos(data, ifd, entry)
        if where + entry.value_size() >= len(data) - 1:  # photod's own appended packet
            ranges.append((where, len(data)))
    return ranges


# ---------------------------------------------------------------- checks


def same_outside(before: bytes, after: bytes, allowed: list[tuple[int, int]]) -> bool:
    """`after` equals `before` everywhere but in `allowed` ranges (and may be longer)."""
    if len(after) < len(before):
        return False
    mask = bytearray(before)
    probe = bytearray(after[: len(before)])
    for start, end in allowed:
        mask[start:end] = b"\x00" * (min(end, len(before)) - start)
        probe[start:end] = b"\x00" * (min(end, len(before)) - start)
    return mask == probe


def untouched(original: Path, modified: Path) -> str | None:
    """Why `modified` changed more than the XMP and the rating values of `original`, or None.

    JPEG: every segment but XMP identical and in order (EXIF only at the rating values), scan
    data and trailer identical. PNG: every chunk but the XMP iTXt identical and in order. TIFF:
    every original byte identical outside the XMP entry, packet, header offset and rating values.
    """
    with open(original, "rb") as a, open(modified, "rb") as b:
        head = a.read(16)
        if sniff(head) == "jpeg":
            return _jpeg_untouched(a, b)
    before, after = original.read_bytes(), modified.read_bytes()
    kind = sniff(before)
    if kind == "png":

        def chunks(data: bytes) -> list[bytes]:
            return [data[s:e] for k, s, e in png_chunks(data)
                    if not (k == b"iTXt" and _png_xmp(data, s, e) is not None)]  # fmt: skip

        return None if chunks(before) == chunks(after) else "the PNG's chunks changed"
    if kind == "tiff":
        if not same_outside(before, after, tiff_allowed_ranges(before)):
            return "TIFF bytes outside the XMP changed"
        return None
    return "unknown format"


def _jpeg_untouched(a: BinaryIO, b: BinaryIO) -> str | None:
    """`untouched` for two open JPEGs: their metadata segments parsed from their heads, their
    scan data and everything after (MPF images, trailers) compared chunk by chunk."""
    try:
        old, old_scan = jpeg_segments(read_jpeg_head(a))
        new, new_scan = jpeg_segments(read_jpeg_head(b))
    except MetadataError as exc:
        return f"the JPEG's structure changed ({exc})"
    keep_old = [s for s in old if s.kind not in ("xmp", "xmp-ext")]
    keep_new = [s for s in new if s.kind not in ("xmp", "xmp-ext")]
    if [s.kind for s in keep_old] != [s.kind for s in keep_new]:
        return "the JPEG's segments changed"
    for x, y in zip(keep_old, keep_new, strict=True):
        if x.payload == y.payload:
            continue
        if x.kind == "exif" and len(x.payload) == len(y.payload):
            ranges = [(s + 6, e + 6) for s, e in exif_patch_ranges(x.payload[6:])]
            if same_outside(x.payload, y.payload, ranges):
                continue
        if x.kind == "mpf" and len(x.payload) == len(y.payload):
            continue  # offsets shifted by an insertion; the scan data check covers images
        return f"JPEG segment {x.kind} changed"
    if not same_tail(a, old_scan, b, new_scan):
        return "the JPEG's image data changed"
    return None
