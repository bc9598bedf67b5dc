"""photod's surgical container edits on files built to be awkward: an IFD1 that loops into the
Exif IFD, Extended XMP (XMP spec part 3), MPF images after an XMP segment that has to grow, and
RAW files LibRaw can and cannot decode, through the pipeline that indexes them."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from photod.index import get_by_path, open_index
from photod.metadata import RatingInfo, read_photod_fields, sidecar_paths, write_label, write_rating
from photod.metadata import surgical as S
from photod.metadata.xmp import MINIMAL_PACKET, merge_packet
from tests import photos

EXIFTOOL = shutil.which("exiftool")
MAKERS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "makers"
pytestmark = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool missing: `make system-deps`")


def info(stars: int = 4) -> RatingInfo:
    return RatingInfo(score=3.3, stars=stars, model="photod-aesthetic-v3")


def tags(*paths: Path, extra: tuple[str, ...] = ()) -> list[dict]:
    out = subprocess.run([EXIFTOOL, "-j", "-a", "-G1", "-n", *extra, *map(str, paths)],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return json.loads(out)


def validate(path: Path) -> list[str]:
    out = subprocess.run([EXIFTOOL, "-validate", "-warning", "-error", "-a", "-s3", str(path)],
                         capture_output=True, text=True).stdout  # fmt: skip
    return sorted(out.splitlines())


def segments(path: Path) -> list[tuple[str, bytes]]:
    data = path.read_bytes()
    found, scan = S.jpeg_segments(data)
    return [(s.kind, s.payload) for s in found] + [("scan", data[scan:])]


def test_looping_ifd1_jpeg_gets_its_rating(tmp_path: Path, caplog) -> None:
    """exiv2 (pyexiv2) refuses this file ("Thumbnail pointer references previously read Photo
    directory"); exiftool only warns. photod logs it and writes the rating."""
    photo = photos.write_jpeg_looping_ifd1(tmp_path / "loop.jpg", photos.real_photo("coffee", 0.3))
    import pyexiv2

    with pytest.raises(RuntimeError, match="Thumbnail pointer"):  # the old writer's failure
        pyexiv2.Image(str(photo)).modify_xmp({"Xmp.xmp.Rating": "4"})
    before, checks = segments(photo), validate(photo)
    with caplog.at_level(logging.INFO, logger="photod"):
        outcome = write_rating(photo, info(4))
    assert outcome.status == "written" and outcome.written == [str(photo)]
    assert any("Thumbnail pointer" in r.getMessage() for r in caplog.records)  # logged
    got = tags(photo)[0]
    assert got["XMP-xmp:Rating"] == 4 and got["XMP-photod:Stars"] == 4
    assert got["IFD0:Rating"] == 4 and got["IFD0:RatingPercent"] == 75  # patched in place
    assert got["IFD0:Make"] == "Canon" and got["ExifIFD:DateTimeOriginal"] == "2026:11:28 10:00:00"
    assert validate(photo) == checks  # nothing new for exiftool to complain about
    after = segments(photo)
    kinds, new_kinds = [k for k, _ in before], [k for k, _ in after]
    assert [k for k in new_kinds if k != "xmp"] == kinds  # one XMP segment more, that is all
    assert new_kinds.index("xmp") == 2  # after the leading EXIF and JFIF segments
    assert [p for k, p in after if k not in ("xmp", "exif")] == [
        p for k, p in before if k != "exif"
    ]  # every other segment byte-identical
    assert dict(after)["scan"] == dict(before)["scan"]
    old_exif, new_exif = dict(before)["exif"], dict(after)["exif"]
    assert len(old_exif) == len(new_exif)
    assert (
        sum(a != b for a, b in zip(old_exif, new_exif, strict=True)) == 2
    )  # 4 and 75, 1 byte each


def test_looping_ifd1_jpeg_is_scored_rated_and_indexed_ok(tmp_path: Path, scorer) -> None:
    from photod.pipeline import process_paths

    photo = photos.write_jpeg_looping_ifd1(tmp_path / "loop.jpg", photos.real_photo("rocket", 0.3))
    db = open_index(tmp_path / "index.db")
    (result,) = process_paths([photo], scorer, db)
    assert result.action == "scored" and result.status == "ok"
    assert result.write_status == "written" and result.write_error is None
    row = get_by_path(db, str(photo))
    assert row["status"] == "ok" and row["write_error"] is None and row["score"] is not None
    assert tags(photo)[0]["XMP-xmp:Rating"] == row["stars"]


def _with_extended(photo: Path, standard_extra: str, extended_body: str) -> tuple[Path, str]:
    """Add a standard packet naming an Extended XMP packet, split into two APP1 chunks."""
    extended = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
        'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"'
        f"{extended_body}</rdf:Description></rdf:RDF></x:xmpmeta>"
    ).encode()
    guid = S.extended_guid(extended)
    standard = merge_packet(MINIMAL_PACKET, {"Xmp.xmpNote.HasExtendedXMP": guid,
                                             "Xmp.dc.format": "image/jpeg"})  # fmt: skip
    if standard_extra:
        standard = merge_packet(standard, {"Xmp.xmp.CreatorTool": standard_extra})
    data = photo.read_bytes()
    half = len(extended) // 2
    total = len(extended).to_bytes(4, "big")
    chunks = b""
    for offset, piece in ((0, extended[:half]), (half, extended[half:])):
        payload = S.EXT_SIG + guid.encode() + total + offset.to_bytes(4, "big") + piece
        chunks += b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    payload = S.XMP_SIG + standard
    std = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    segs, _ = S.jpeg_segments(data)
    at = segs[0].end if segs and segs[0].kind in ("app0", "exif") else 2
    photo.write_bytes(data[:at] + std + chunks + data[at:])
    return photo, guid


def test_extended_xmp_is_read_merged_and_kept(tmp_path: Path) -> None:
    history = "x" * 90_000  # too big for one segment: it lives in the Extended XMP
    photo = photos.write_jpeg(tmp_path / "ext.jpg", photos.real_photo("chelsea", 0.3))
    body = f' photoshop:History="{history}" xmp:Label="Red">'
    photo, guid = _with_extended(photo, "", body)
    before = segments(photo)
    assert tags(photo)[0]["XMP-photoshop:History"] == history  # exiftool reads our build
    # The rating touches no key of the Extended XMP: its chunks stay byte-identical.
    assert write_rating(photo, info(5)).written == [str(photo)]
    after = segments(photo)
    assert [p for k, p in after if k == "xmp-ext"] == [p for k, p in before if k == "xmp-ext"]
    got = tags(photo)[0]
    assert got["XMP-xmp:Rating"] == 5 and got["XMP-photoshop:History"] == history
    assert got["XMP-xmpNote:HasExtendedXMP"] == guid and got["XMP-xmp:Label"] == "Red"
    assert read_photod_fields(photo)["label"] == "Red"  # photod reads the extended part too
    # A label lives in the Extended XMP: changing it rewrites that packet under a new GUID, the
    # standard packet wins and names the new GUID, nothing else is lost.
    assert write_label(photo, "Green").written == [str(photo)]
    got = tags(photo)[0]
    assert got["XMP-xmp:Label"] == "Green" and got["XMP-photoshop:History"] == history
    assert got["XMP-xmpNote:HasExtendedXMP"] != guid and got["XMP-xmp:Rating"] == 5
    assert "Warning" not in tags(photo, extra=("-warning",))[0]


def test_mpf_offsets_follow_a_growing_xmp_segment(tmp_path: Path) -> None:
    """An XMP segment after the MPF header grows: the second image moves relative to the MPF
    header, so its MP offset is corrected; exiftool then extracts the same second image."""
    first = Image.fromarray(photos.real_photo("chelsea", 0.3))
    second = Image.fromarray(photos.real_photo("coffee", 0.1))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second], quality=90)
    data = buffer.getvalue()
    segs, _ = S.jpeg_segments(data)
    mpf = next(s for s in segs if s.kind == "mpf")
    payload = S.XMP_SIG + MINIMAL_PACKET  # no padding: any write must grow it
    xmp = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    built = bytearray(data[: mpf.end] + xmp + data[mpf.end :])
    S._shift_mpf(built, mpf.start, len(xmp), [])  # the second image moved by the new segment
    photo = tmp_path / "pair.jpg"
    photo.write_bytes(bytes(built))

    def image2(path: Path) -> bytes:
        return subprocess.run([EXIFTOOL, "-b", "-MPImage2", str(path)], capture_output=True,
                              check=True).stdout  # fmt: skip

    before = image2(photo)
    assert before[:2] == b"\xff\xd8" and len(before) > 1000
    assert write_rating(photo, info(3)).written == [str(photo)]
    assert image2(photo) == before
    assert tags(photo)[0]["XMP-xmp:Rating"] == 3
    assert "Warning" not in tags(photo, extra=("-warning",))[0]


def test_utf16_packet_and_trailing_packet_layout(tmp_path: Path) -> None:
    """An XMP packet in UTF-16 (exiftool's XMP.jpg) is read, merged and written back as UTF-8
    (the only encoding the spec allows in JPEG) with every property."""
    if not (MAKERS / "XMP.jpg").exists():
        pytest.skip("makers samples missing")
    photo = Path(shutil.copyfile(MAKERS / "XMP.jpg", tmp_path / "utf16.jpg"))
    before = tags(photo)[0]
    outcome = write_rating(photo, info(2))
    assert outcome.written == [str(photo)]
    assert any("UTF-16" in w for w in outcome.warnings)  # reported, not fatal
    after = tags(photo)[0]
    lost = {k for k in before if k.startswith("XMP-") and k not in after}
    assert not lost and after["XMP-xmp:Rating"] == 2


def test_png_xmp_chunk_replaced_in_place(tmp_path: Path) -> None:
    photo = tmp_path / "p.png"
    Image.fromarray(photos.real_photo("coffee", 0.2)).save(photo)
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-dc:Subject=cat",
                    "-PNG:Comment=hello", str(photo)], check=True)  # fmt: skip
    kinds = [k for k, _, _ in S.png_chunks(photo.read_bytes())]
    write_rating(photo, info(1))
    write_rating(photo, info(2))
    assert [k for k, _, _ in S.png_chunks(photo.read_bytes())] == kinds  # same chunks, same order
    got = tags(photo)[0]
    assert got["XMP-xmp:Rating"] == 2 and got["XMP-dc:Subject"] == "cat"
    assert got["PNG:Comment"] == "hello"


def test_tiff_rewrites_its_own_packet_without_growing(tmp_path: Path) -> None:
    photo = tmp_path / "t.tif"
    Image.fromarray(photos.real_photo("coffee", 0.2)).save(photo)
    original = photo.read_bytes()
    write_rating(photo, info(1))
    size = photo.stat().st_size
    for stars in (2, 3, 4):
        write_rating(photo, info(stars))
    assert photo.stat().st_size == size  # photod's appended packet is replaced, not repeated
    now = photo.read_bytes()
    assert S.same_outside(original, now, [(4, 8)])  # only the IFD0 offset changed in place
    assert tags(photo)[0]["XMP-xmp:Rating"] == 4


@pytest.mark.skipif(not MAKERS.is_dir(), reason="makers samples missing")
def test_every_libraw_raw_type_is_scanned_rated_or_recorded(tmp_path: Path, scorer) -> None:
    """RAW samples (image data stripped): the ones LibRaw decodes get sidecars and an ok row,
    the others a clean error row; no RAW byte changes either way."""
    from photod.pipeline import process_paths
    from photod.scoring import iter_photo_paths

    raws = [n for n in os.listdir(MAKERS) if n.lower().endswith((".cr2", ".crw", ".nef", ".raf",
                                                                  ".rw2"))]  # fmt: skip
    for name in raws:
        shutil.copyfile(MAKERS / name, tmp_path / name)
    digests = {n: hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in raws}
    found = sorted(Path(p).name for p in iter_photo_paths([tmp_path], recursive=False))
    assert found == sorted(raws)  # .crw included
    db = open_index(tmp_path / "index.db")
    results = {Path(r.path).name: r for r in process_paths(sorted(tmp_path.iterdir()), scorer, db)}
    for name in raws:
        path = tmp_path / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digests[name]
        row = get_by_path(db, str(path))
        darktable, lightroom = sidecar_paths(path)
        if results[name].status == "ok":
            assert row["status"] == "ok" and results[name].write_status == "written"
            assert darktable.exists() and lightroom.exists()
            assert read_photod_fields(path)["rating"] == row["stars"]
        else:
            assert row["status"] == "error" and row["error_code"] in ("truncated", "unsupported")
            assert not darktable.exists() and not lightroom.exists()
    assert results["Panasonic.rw2"].status == "ok"  # decodable in this LibRaw
    assert results["CanonRaw.crw"].action == "error"  # picked up, then a clean error row


def test_standard_xmp_too_big_for_a_segment_spills_to_extended_xmp(tmp_path: Path) -> None:
    """A packet near the 64 KB segment limit (a long editing history) plus photod's fields no
    longer fits: the largest properties move to Extended XMP, the rating stays standard."""
    photo = photos.write_jpeg(tmp_path / "big.jpg", photos.real_photo("chelsea", 0.3))
    history = "step; " * 10_800  # 64,800 bytes
    packet = merge_packet(MINIMAL_PACKET, {"Xmp.photoshop.History": history,
                                           "Xmp.dc.format": "image/jpeg"})  # fmt: skip
    assert len(packet) < S.STANDARD_LIMIT
    data = photo.read_bytes()
    payload = S.XMP_SIG + packet
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    segs, _ = S.jpeg_segments(data)
    photo.write_bytes(data[: segs[0].end] + segment + data[segs[0].end :])
    assert tags(photo)[0]["XMP-photoshop:History"] == history
    outcome = write_rating(photo, info(3))
    assert outcome.written == [str(photo)] and any("Extended" in w for w in outcome.warnings)
    kinds = [k for k, _ in segments(photo)]
    assert kinds.count("xmp") == 1 and kinds.count("xmp-ext") >= 1
    got = tags(photo)[0]
    assert got["XMP-xmp:Rating"] == 3 and got["XMP-photoshop:History"] == history
    assert got["XMP-dc:Format"] == "image/jpeg" and "XMP-xmpNote:HasExtendedXMP" in got
    assert "Warning" not in tags(photo, extra=("-warning",))[0]
    assert write_rating(photo, info(5)).written == [str(photo)]  # and again, now it has one
    assert tags(photo)[0]["XMP-xmp:Rating"] == 5
