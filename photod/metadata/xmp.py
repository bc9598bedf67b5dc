"""Reading and changing XMP with Adobe's XMP toolkit (through pyexiv2, exiv2 0.28), and the
dispatch to photod's surgical container edits (surgical.py) for JPEG, PNG and TIFF/DNG.

The toolkit parses and re-serialises one XMP packet, so every property of every namespace
survives a merge (darktable:history, crs:* develop settings, unknown vendors' fields); only the
packet's layout changes. It never touches a photo's EXIF or maker notes: photod puts the merged
packet into the file itself. Sidecars are still written by pyexiv2 in place, so callers hand it
temp copies only (see atomic.py); it cannot start a sidecar from nothing: `MINIMAL_PACKET` is
written first.
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
from photod.metadata import surgical as S
from photod.metadata.records import PHOTOD_NS, PHOTOD_PREFIX

log = logging.getLogger("photod")

# Formats whose files carry XMP that Lightroom reads (it reads only embedded XMP for these).
EMBEDDABLE_EXTENSIONS = JPEG_EXTENSIONS | {".png", ".tif", ".tiff", ".dng"}
# Formats with an EXIF IFD0 where Windows Explorer looks for Rating/RatingPercent. exiv2 stores
# PNG EXIF in a non-standard text chunk few readers see, so PNG gets XMP only.
EXIF_EXTENSIONS = JPEG_EXTENSIONS | {".tif", ".tiff", ".dng"}
TIFF_SUFFIXES = (".tif", ".tiff", ".dng")

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
EXTENDED_KEY = "Xmp.xmpNote.HasExtendedXMP"
INSTANCE_ID = "Xmp.xmpMM.InstanceID"
XMP_NOTE_NS = "http://ns.adobe.com/xmp/note/"  # HasExtendedXMP's namespace, unknown to exiv2
_ABOUT = re.compile(rb"(?:rdf:)?about=(['\"])([^'\"<>&]+)\1")
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
            for namespace, prefix in ((PHOTOD_NS, PHOTOD_PREFIX), (XMP_NOTE_NS, "xmpNote")):
                try:
                    pyexiv2.registerNs(namespace, prefix)
                except Exception as exc:  # already registered by an earlier import: fine
                    log.debug("%s namespace registration: %s", prefix, exc)
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


def _is_sidecar(path: Path) -> bool:
    return path.suffix.lower() == ".xmp" or path.name.endswith(".xmp")


def parse_packet(packet: bytes | None) -> dict[str, str]:
    """The properties of one XMP packet, flattened the way exiv2 names them ('Xmp.xmp.Rating')."""
    if not packet or not packet.strip(b"\x00 \t\r\n"):
        return {}
    pyexiv2 = exiv2()
    with _exiv2_lock:
        try:
            data = pyexiv2.ImageData(packet)
        except Exception as exc:
            raise MetadataError(f"cannot parse the embedded XMP: {exc}") from exc
        try:
            return data.read_xmp()
        except Exception as exc:
            raise MetadataError(f"cannot parse the embedded XMP: {exc}") from exc
        finally:
            data.close()


def merge_packet(packet: bytes | None, changes: dict[str, str | None]) -> bytes:
    """`packet` (or an empty one) with `changes` set (None deletes), re-serialised by Adobe's XMP
    toolkit: every other property of every namespace is kept. No padding (see surgical.py)."""
    pyexiv2 = exiv2()
    source = packet if packet and packet.strip(b"\x00 \t\r\n") else MINIMAL_PACKET
    # An old-style packet names its resource in rdf:about (often 'uuid:…'); the toolkit moves
    # that into a new xmpMM:InstanceID and empties rdf:about. Both are put back as they were.
    about = _ABOUT.search(source)
    about_value = about.group(2) if about else b""
    with _exiv2_lock:
        try:
            data = pyexiv2.ImageData(source)
            try:
                had_instance = b"InstanceID" in source  # spelt out, not derived from about
                data.modify_xmp(changes)
                if about_value and not had_instance and INSTANCE_ID not in changes:
                    if data.read_xmp().get(INSTANCE_ID) == about_value.decode("utf-8", "replace"):
                        data.modify_xmp({INSTANCE_ID: None})
                merged = data.get_bytes()
            finally:
                data.close()
        except MetadataError:
            raise
        except Exception as exc:
            raise MetadataError(f"cannot merge into the existing XMP: {exc}") from exc
    if about_value:
        merged = merged.replace(b'rdf:about=""', b'rdf:about="' + about_value + b'"')
    return merged


def _guid_of(standard: bytes) -> str | None:
    guid = parse_packet(standard).get(EXTENDED_KEY)
    return guid.strip().upper() if guid else None


def read_embedded(path: Path, data: bytes | None = None) -> S.Embedded:
    """The XMP packets and IFD0 rating values of a JPEG, PNG or TIFF/DNG, read by photod's own
    parser (the same one that writes them). Raises MetadataError for other content."""
    data = _read_for_metadata(path) if data is None else data
    kind = S.sniff(data)
    try:
        if kind == "jpeg":
            return S.read_jpeg(data, _guid_of)
        if kind == "png":
            return S.read_png(data)
        if kind == "tiff":
            return S.read_tiff(data)
    except MetadataError as exc:
        if exc.path is None:
            exc.path = str(path)
        raise
    raise MetadataError(_wrong_content(path, data), str(path))


def _read_for_metadata(path: Path) -> bytes:
    """What photod's parser needs of a file: a JPEG's head (its segments up to the image data;
    `S.read_jpeg_head`), a PNG's or TIFF's whole bytes (their metadata may sit anywhere)."""
    with open(path, "rb") as handle:
        if S.sniff(handle.read(16)) == "jpeg":
            return S.read_jpeg_head(handle)
        handle.seek(0)
        return handle.read()


def _wrong_content(path: Path, data: bytes) -> str:
    what = "HEIF/ISO-BMFF" if data[4:8] == b"ftyp" else "not JPEG, PNG or TIFF"
    return (
        f"the content is {what} despite the {path.suffix} name; photod writes no metadata into it"
    )


def embedded_xmp(found: S.Embedded) -> dict[str, str]:
    """Standard and Extended XMP of one photo as one dict (the standard packet wins a clash)."""
    xmp = parse_packet(found.extended) if found.extended is not None else {}
    xmp.update(parse_packet(found.standard))
    return xmp


def read_metadata(path: Path, with_exif: bool = True) -> tuple[dict[str, str], dict[str, str]]:
    """(XMP, EXIF) of a photo or sidecar; only reads.

    JPEG/PNG/TIFF/DNG XMP comes from photod's own parser (standard + Extended XMP); EXIF from
    exiv2, which only reads here; when exiv2 refuses a file it merely warns about, photod's own
    IFD0 values (Rating, RatingPercent, Orientation) stand in. Sidecars, RAW and HEIC: exiv2.
    Raises MetadataError when the file is missing or its metadata cannot be parsed.
    """
    if is_embeddable(path) and not _is_sidecar(path):
        try:
            found = read_embedded(path)
        except FileNotFoundError:
            raise MetadataError("file vanished", str(path)) from None
        except MetadataError as exc:
            if exc.path is None:
                exc.path = str(path)
            raise
        for warning in found.warnings:
            log.info("%s: %s", path, warning)
        try:
            xmp = embedded_xmp(found)
        except MetadataError as exc:
            exc.path = str(path)
            raise
        exif: dict[str, str] = {}
        if with_exif:
            try:
                exif = _exiv2_read(path, with_exif=True)[1]
            except MetadataError as exc:
                # odd but readable (an IFD1 looping into the Exif IFD, ...): said, never fatal
                log.warning(
                    "%s: exiv2 refuses its EXIF (%s); photod reads and writes it without exiv2",
                    path,
                    exc,
                )
            names = {v: k for k, v in S.RATING_TAGS.items()}
            names[S.ORIENTATION_TAG] = "Exif.Image.Orientation"
            for tag, value in found.ifd0.items():
                exif.setdefault(names[tag], str(value))
        return xmp, exif
    return _exiv2_read(path, with_exif)


def _exiv2_read(path: Path, with_exif: bool) -> tuple[dict[str, str], dict[str, str]]:
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


def modify(path: Path, xmp: dict[str, str | None], exif: dict[str, str] | None = None) -> list[str]:
    """Set (or with None, delete) XMP keys and patch EXIF rating values of `path` in place: call
    on temp copies only. Returns the warnings met (odd but readable metadata: logged, not fatal).

    JPEG, PNG, TIFF/DNG are edited surgically (see surgical.py); sidecars through exiv2. Reads
    back what it wrote so a silently dropped field is an error, not a surprise.
    """
    if _is_sidecar(path):
        _modify_sidecar(path, xmp)
        return []
    data = _read_for_metadata(path)  # a JPEG's head only: its image data is never read here
    found = read_embedded(path, data)
    warnings = list(found.warnings)
    suffix = path.suffix.lower()
    expected_kind = "png" if suffix == ".png" else "tiff" if suffix in TIFF_SUFFIXES else "jpeg"
    if found.kind != expected_kind:
        raise MetadataError(_wrong_content(path, data), str(path))
    changes = dict(xmp)
    extended = found.extended
    extended_changed = False
    if extended is not None:
        in_extended = parse_packet(extended)
        moved = {k: None for k in changes if any(e == k or e.startswith(k + "[") or
                                                    e.startswith(k + "/") for e in in_extended)}  # fmt: skip
        if moved:  # the standard packet wins, so a stale value there must go
            extended = merge_packet(extended, moved)
            extended_changed = True
            changes[EXTENDED_KEY] = S.extended_guid(extended)
    standard = merge_packet(found.standard, changes)
    if found.kind == "jpeg" and len(standard) > S.STANDARD_LIMIT - S.PADDING:
        standard, extended = spill_to_extended(standard, extended, warnings)
        extended_changed = True
    if found.kind == "jpeg":
        prefix, scan = S.jpeg_prefix(data, standard, extended, extended_changed, exif, warnings)
        _replace_prefix(path, prefix, scan)
    else:
        if found.kind == "png":
            new = S.write_png(data, standard)
        else:
            new = S.write_tiff(data, standard, exif, warnings)
        with open(path, "r+b") as handle:
            handle.write(new)
            handle.truncate()
    got = embedded_xmp(read_embedded(path))  # what was just written, read back and parsed
    for key, value in xmp.items():
        if got.get(key) != value:
            raise MetadataError(f"{key} reads back {got.get(key)!r} instead of {value!r}")
    for warning in warnings:
        log.warning("%s: %s (rating written anyway)", path, warning)
    return warnings


def _replace_prefix(path: Path, prefix: bytes, scan: int) -> None:
    """Put `prefix` in place of the first `scan` bytes of `path` (a temp copy): in place when
    the length is the same (a packet padded to its old size: nothing else is touched), else
    with the image data after it moved once."""
    with open(path, "r+b") as handle:
        if len(prefix) != scan:
            handle.seek(scan)
            tail = handle.read()
            handle.seek(0)
            handle.write(prefix)
            handle.write(tail)
            handle.truncate()
        else:
            handle.write(prefix)


_RDF = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
# Never moved out of the standard packet: what readers that ignore Extended XMP must still see.
_KEEP_NAMESPACES = ("http://ns.adobe.com/xap/1.0/", PHOTOD_NS, XMP_NOTE_NS)


def _xml_body(packet: bytes) -> bytes:
    start, end = packet.find(b"<x:xmpmeta"), packet.rfind(b"</x:xmpmeta>")
    if start < 0 or end < 0:
        raise MetadataError("the XMP packet has no x:xmpmeta element")
    return packet[start : end + len(b"</x:xmpmeta>")]


def spill_to_extended(
    standard: bytes, extended: bytes | None, warnings: list[str]
) -> tuple[bytes, bytes]:
    """Move the largest top-level properties of a standard packet too big for one JPEG segment
    into the Extended XMP (XMP spec part 3, 1.1.3.1), largest first, until it fits; xmp:, photod:
    and xmpNote: properties stay. Returns (standard naming the new GUID, extended packet)."""
    import io
    import xml.etree.ElementTree as ET

    def parse(body: bytes) -> Any:
        for _event, (prefix, uri) in ET.iterparse(io.BytesIO(body), events=("start-ns",)):
            if prefix:
                ET.register_namespace(prefix, uri)
        return ET.fromstring(body)

    root = parse(_xml_body(standard))
    ext_root = parse(_xml_body(extended)) if extended else parse(_xml_body(MINIMAL_PACKET))
    ext_desc = next(ext_root.iter(_RDF + "Description"))
    candidates = []
    for desc in root.iter(_RDF + "Description"):
        for child in list(desc):
            candidates.append((len(ET.tostring(child)), desc, child))
        for name, value in desc.attrib.items():
            if not name.startswith(_RDF):
                candidates.append((len(value) + len(name), desc, name))
    candidates.sort(key=lambda c: c[0], reverse=True)
    target = S.STANDARD_LIMIT - S.PADDING - 512  # room for the GUID and the toolkit's layout
    moved = []
    for _size, desc, item in candidates:
        if len(ET.tostring(root)) <= target:
            break
        name = item if isinstance(item, str) else item.tag
        if name.startswith(tuple("{" + ns for ns in _KEEP_NAMESPACES)):
            continue
        for old in [c for c in ext_desc if c.tag == name]:  # the standard value wins
            ext_desc.remove(old)
        ext_desc.attrib.pop(name, None)
        if isinstance(item, str):
            ext_desc.set(item, desc.attrib.pop(item))
        else:
            desc.remove(item)
            ext_desc.append(item)
        moved.append(name.rsplit("}", 1)[-1])
    if len(ET.tostring(root)) > target:
        raise MetadataError("the XMP is too large for a JPEG even with Extended XMP")
    warnings.append(f"XMP too large for one JPEG segment: {', '.join(moved)} moved to Extended XMP")
    new_extended = merge_packet(ET.tostring(ext_root), {})  # the toolkit checks and lays it out
    body = _xml_body(new_extended)  # the extended packet carries no packet wrapper
    guid = S.extended_guid(body)
    new_standard = merge_packet(ET.tostring(root), {EXTENDED_KEY: guid})
    return new_standard, body


def _modify_sidecar(path: Path, xmp: dict[str, str | None]) -> None:
    pyexiv2 = exiv2()
    with _exiv2_lock:
        image = pyexiv2.Image(str(path))
        try:
            mime = image.get_mime_type()
            if mime != "application/rdf+xml":
                raise MetadataError(f"exiv2 detects {mime}; photod writes no metadata into it")
            image.modify_xmp(xmp)
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
    """Refuse a write that changed more than the XMP and the EXIF rating values: for JPEG every
    other segment and the scan data (with anything after it: MPF images, trailers), for PNG every
    other chunk (IDAT included), for TIFF/DNG every original byte but the XMP entry, the header's
    IFD0 offset and the rating values (strips, tiles, SubIFDs, maker notes). See surgical.py."""
    if original.suffix.lower() not in EMBEDDABLE_EXTENSIONS:
        return
    why = S.untouched(original, modified)
    if why is not None:
        raise MetadataError(f"image data would change ({why}); write refused", str(original))
