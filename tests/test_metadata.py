"""The rating writer on real files, checked by independent readers (exiftool, exiv2 CLIs) and by
decoding the pixels before and after."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photod.errors import MetadataError
from photod.metadata import (
    TEMP_PREFIX,
    RatingInfo,
    atomic_rewrite,
    clean_stale_temp_files,
    rating_report,
    read_photod_fields,
    read_user_rating,
    sidecar_paths,
    write_label,
    write_rating,
)
from photod.metadata.xmp import jpeg_scan_data, png_image_data, tiff_image_data, verify_image_data
from tests import photos

EXIFTOOL = shutil.which("exiftool")
EXIV2 = shutil.which("exiv2")
pytestmark = pytest.mark.skipif(
    not (EXIFTOOL and EXIV2), reason="exiftool/exiv2 missing: `make system-deps` installs them"
)

# A darktable 4.2 sidecar as darktable writes it (history stack of four modules), plus Lightroom
# develop settings and a vendor field: every one must survive photod's write.
FOREIGN_SIDECAR = """<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/" x:xmptk="XMP Core 4.4.0-Exiv2">
 <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
  <rdf:Description rdf:about=""
    xmlns:xmp="http://ns.adobe.com/xap/1.0/"
    xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
    xmlns:darktable="http://darktable.sf.net/"
    xmlns:crs="http://ns.adobe.com/camera-raw-settings/1.0/"
    xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:foo="http://example.com/foo/1.0/"
   xmpMM:DerivedFrom="photo.heic"
   darktable:xmp_version="5"
   darktable:raw_params="0"
   darktable:auto_presets_applied="1"
   darktable:history_end="2"
   darktable:iop_order_version="2"
   crs:Version="15.0"
   crs:Exposure2012="+0.35"
   crs:WhiteBalance="As Shot"
   foo:Thing="bar">
   <darktable:masks_history>
    <rdf:Seq/>
   </darktable:masks_history>
   <darktable:history>
    <rdf:Seq>
     <rdf:li darktable:num="0" darktable:operation="colorin" darktable:enabled="1"
      darktable:modversion="7" darktable:params="gz48eJxjZBgFowABWAbaAaNgwAEAEDgABg=="
      darktable:multi_name="" darktable:multi_priority="0" darktable:blendop_version="11"
      darktable:blendop_params="gz14eJxjYIAACQYYOOHEgAZY0QVwggZ7CB6pfNoAAE8gGQg="/>
     <rdf:li darktable:num="1" darktable:operation="flip" darktable:enabled="1"
      darktable:modversion="2" darktable:params="06000000" darktable:multi_name=""
      darktable:multi_priority="0" darktable:blendop_version="11"
      darktable:blendop_params="gz14eJxjYIAACQYYOOHEgAZY0QVwggZ7CB6pfNoAAE8gGQg="/>
    </rdf:Seq>
   </darktable:history>
   <crs:ToneCurvePV2012>
    <rdf:Seq>
     <rdf:li>0, 0</rdf:li>
     <rdf:li>255, 255</rdf:li>
    </rdf:Seq>
   </crs:ToneCurvePV2012>
   <dc:subject>
    <rdf:Bag>
     <rdf:li>holiday</rdf:li>
     <rdf:li>cat</rdf:li>
    </rdf:Bag>
   </dc:subject>
  </rdf:Description>
 </rdf:RDF>
</x:xmpmeta>
<?xpacket end="w"?>
"""


def exiftool(*paths: Path) -> list[dict]:
    out = subprocess.run(
        [EXIFTOOL, "-j", "-G1", "-a", "-n", "-struct", "-XMP:all", "-IFD0:all", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def exiv2_keys(path: Path) -> dict[str, str]:
    out = subprocess.run(
        [EXIV2, "-q", "-Pkv", "-pa", str(path)], capture_output=True, text=True
    ).stdout
    keys = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        keys[key] = value.strip()
    return keys


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def pixels(path: Path) -> np.ndarray:
    if path.suffix.lower() == ".dng":
        import rawpy

        with rawpy.imread(str(path)) as raw:
            return raw.raw_image.copy()
    if path.suffix.lower() == ".heic":
        import pillow_heif

        pillow_heif.register_heif_opener()
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def info(stars: int = 4, score: float = 3.41, **kw) -> RatingInfo:
    return RatingInfo(score=score, stars=stars, model="photod-aesthetic-v1", **kw)


@pytest.fixture()
def small() -> np.ndarray:
    return photos.real_photo("chelsea", scale=0.5)


def make(kind: str, folder: Path, pixels_: np.ndarray, name: str = "photo") -> Path:
    path = folder / f"{name}.{kind}"
    if kind == "jpg":
        return photos.write_jpeg(path, pixels_)
    if kind == "dng":
        return photos.write_dng(path, pixels_)
    if kind == "heic":
        return photos.write_heic(path, pixels_)
    if kind == "tif":
        Image.fromarray(pixels_).save(path, compression="tiff_lzw")
        return path
    if kind == "png":
        Image.fromarray(pixels_).save(path)
        return path
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["jpg", "png", "tif", "dng"])
def test_embedded_rating_read_by_exiftool_and_exiv2_pixels_unchanged(tmp_path, small, kind):
    photo = make(kind, tmp_path, small)
    before = pixels(photo)
    outcome = write_rating(photo, info(stars=4, extra={"Suggestion": "crop +0.3EV"}))
    assert outcome.written == [str(photo)] and outcome.skipped is None
    assert np.array_equal(pixels(photo), before)
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))
    assert not sidecar_paths(photo)[0].exists() and not sidecar_paths(photo)[1].exists()

    tags = exiftool(photo)[0]
    assert tags["XMP-xmp:Rating"] == 4
    assert tags["XMP-photod:Stars"] == 4
    assert tags["XMP-photod:Score"] == pytest.approx(3.41)
    assert tags["XMP-photod:Model"] == "photod-aesthetic-v1"
    assert tags["XMP-photod:Suggestion"] == "crop +0.3EV"
    assert "XMP-photod:ScoredAt" in tags and "XMP-photod:Version" in tags
    keys = exiv2_keys(photo)
    assert keys["Xmp.xmp.Rating"] == "4"
    assert keys["Xmp.photod.Stars"] == "4"
    # EXIF Rating is patched where the file has one, never added (that would re-lay out IFD0;
    # Windows, Lightroom and darktable read xmp:Rating): see photod/metadata/surgical.py.
    assert "IFD0:Rating" not in tags and "Exif.Image.Rating" not in keys
    if kind == "jpg":  # the camera's EXIF is still there
        assert keys["Exif.Image.Model"] == "EOS R5"
    if kind == "png":  # no standard EXIF place in PNG for Windows to read
        return
    rated = make(kind, tmp_path, small, name="rated")
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-IFD0:Rating=0",
                    "-IFD0:RatingPercent=0", str(rated)], check=True)  # fmt: skip
    assert write_rating(rated, info(stars=4)).written == [str(rated)]
    tags, keys = exiftool(rated)[0], exiv2_keys(rated)
    assert tags["IFD0:Rating"] == 4 and tags["IFD0:RatingPercent"] == 75
    assert keys["Exif.Image.Rating"] == "4" and keys["Exif.Image.RatingPercent"] == "75"
    assert tags["XMP-xmp:Rating"] == 4


def test_compressed_image_data_byte_identical(tmp_path, small):
    jpeg = photos.write_jpeg(tmp_path / "photo.jpg", small, rating=0)
    png = make("png", tmp_path, small)
    tif, dng = make("tif", tmp_path, small), make("dng", tmp_path, small)
    scan, idat = jpeg_scan_data(jpeg), png_image_data(png)
    strips, raw = tiff_image_data(tif), tiff_image_data(dng)
    assert len(strips) == 1 and len(raw) == 1
    for stars in (3, 5, -1):  # repeated writes too
        for photo in (jpeg, png, tif, dng):
            assert write_rating(photo, info(stars=stars)).written == [str(photo)]
    assert jpeg_scan_data(jpeg) == scan
    assert png_image_data(png) == idat
    assert tiff_image_data(tif) == strips and tiff_image_data(dng) == raw
    assert exiftool(jpeg)[0]["XMP-xmp:Rating"] == -1  # reject
    assert exiftool(jpeg)[0]["IFD0:Rating"] == 0  # Windows has no reject: unrated


@pytest.mark.parametrize("kind", ["heic", "nef"])
def test_raw_and_heic_get_both_sidecars_and_stay_untouched(tmp_path, small, kind):
    if kind == "nef":  # a proprietary RAW cannot be made here: real DNG bytes under a .nef name
        photo = make("dng", tmp_path, small).rename(tmp_path / "photo.nef")
    else:
        photo = make(kind, tmp_path, small)
    digest = sha(photo)
    outcome = write_rating(photo, info(stars=2))
    darktable, lightroom = sidecar_paths(photo)
    assert darktable.name == f"photo.{kind}.xmp" and lightroom.name == "photo.xmp"
    assert outcome.written == [str(darktable), str(lightroom)]
    assert sha(photo) == digest
    for tags in exiftool(darktable, lightroom):
        assert tags["XMP-xmp:Rating"] == 2 and tags["XMP-photod:Stars"] == 2
    for sidecar in (darktable, lightroom):
        assert exiv2_keys(sidecar)["Xmp.xmp.Rating"] == "2"
    # embedded mode can never touch these formats
    skipped = write_rating(photo, info(stars=5), mode="embedded")
    assert skipped.written == [] and "never modified" in skipped.skipped
    assert sha(photo) == digest


def test_merge_keeps_darktable_history_and_lightroom_settings(tmp_path, small):
    photo = make("heic", tmp_path, small)
    darktable, lightroom = sidecar_paths(photo)
    darktable.write_text(FOREIGN_SIDECAR, encoding="utf-8")
    lightroom.write_text(FOREIGN_SIDECAR, encoding="utf-8")
    before = exiftool(darktable)[0]
    write_rating(photo, info(stars=3))
    write_rating(photo, info(stars=5))  # re-scoring updates photod's own rating
    for after in exiftool(darktable, lightroom):
        changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
        # only photod's fields, the rating and exiftool's file bookkeeping differ
        assert all(
            k.startswith(("XMP-photod:", "System:", "XMP-x:"))
            or k in ("SourceFile", "XMP-xmp:Rating")
            for k in changed
        ), changed
        assert after["XMP-xmp:Rating"] == 5
        assert after["XMP-darktable:History"] == before["XMP-darktable:History"]
        assert after["XMP-crs:ToneCurvePV2012"] == ["0, 0", "255, 255"]
        assert after["XMP-dc:Subject"] == ["holiday", "cat"]
        assert after["XMP-foo:Thing"] == "bar"


def test_user_rating_is_kept_unless_forced(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-xmp:Rating=4", str(photo)],
                   check=True)  # fmt: skip
    digest = sha(photo)
    assert read_user_rating(photo) == 4
    outcome = write_rating(photo, info(stars=2))
    assert outcome.written == [] and outcome.user_rating == 4
    assert outcome.skipped == "user rating 4 kept (use --force)"
    assert sha(photo) == digest
    forced = write_rating(photo, info(stars=2), force=True)
    assert forced.written == [str(photo)] and forced.user_rating == 4
    assert exiftool(photo)[0]["XMP-xmp:Rating"] == 2
    assert read_user_rating(photo) is None  # now it is photod's rating


def test_rescoring_updates_own_rating_but_not_a_user_change(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    write_rating(photo, info(stars=2))
    again = write_rating(photo, info(stars=3))
    assert again.written == [str(photo)] and again.user_rating is None
    assert exiftool(photo)[0]["XMP-xmp:Rating"] == 3
    # the user re-rates in Lightroom: photod:Stars stays 3, xmp:Rating becomes 1
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-XMP-xmp:Rating=1", str(photo)],
                   check=True)  # fmt: skip
    kept = write_rating(photo, info(stars=5))
    assert kept.written == [] and kept.user_rating == 1
    assert exiftool(photo)[0]["XMP-xmp:Rating"] == 1


def test_camera_exif_rating_and_sidecar_rating_count_as_user_ratings(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-IFD0:Rating=5", str(photo)],
                   check=True)  # fmt: skip
    assert read_user_rating(photo) == 5
    assert write_rating(photo, info(stars=1)).user_rating == 5
    heic = make("heic", tmp_path, small, name="phone")
    lightroom = sidecar_paths(heic)[1]
    lightroom.write_text(FOREIGN_SIDECAR.replace('foo:Thing="bar"', 'xmp:Rating="3"'))
    assert read_user_rating(heic) == 3
    outcome = write_rating(heic, info(stars=1))
    assert outcome.user_rating == 3 and outcome.written == []
    assert not sidecar_paths(heic)[0].exists()  # nothing half-written


def test_modes_and_sidecar_only_promise(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    digest = sha(photo)
    darktable, lightroom = sidecar_paths(photo)
    assert write_rating(photo, info(), mode="none").skipped == "write mode is none"
    only = write_rating(photo, info(stars=3), sidecar_only=True)
    assert only.written == [str(darktable)]  # never NAME.xmp for a JPEG: a RAW sibling's name
    assert sha(photo) == digest and not lightroom.exists()
    assert exiftool(darktable)[0]["XMP-xmp:Rating"] == 3
    # auto now updates the existing darktable sidecar too, since darktable prefers it
    auto = write_rating(photo, info(stars=4))
    assert auto.written == [str(photo), str(darktable)]
    assert [t["XMP-xmp:Rating"] for t in exiftool(photo, darktable)] == [4, 4]
    both = write_rating(make("png", tmp_path, small), info(stars=1), mode="both")
    assert len(both.written) == 2
    with pytest.raises(MetadataError, match="unknown write mode"):
        write_rating(photo, info(), mode="everywhere")


def test_label_set_and_removed_without_touching_rating(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    write_rating(photo, info(stars=4))
    write_label(photo, "Red")
    tags = exiftool(photo)[0]
    assert tags["XMP-xmp:Label"] == "Red" and tags["XMP-xmp:Rating"] == 4
    write_label(photo, None)
    tags = exiftool(photo)[0]
    assert "XMP-xmp:Label" not in tags and tags["XMP-xmp:Rating"] == 4
    assert read_photod_fields(photo)["label"] is None
    write_rating(photo, info(stars=4, label="Green"))
    assert read_photod_fields(photo)["label"] == "Green"


def test_read_photod_fields_and_rating_report(tmp_path, small):
    photo = make("heic", tmp_path, small)
    assert read_photod_fields(photo)["source"] is None
    write_rating(photo, info(stars=3, score=3.3, scored_at="2026-11-29T01:00:00+00:00",
                             extra={"Crop": "0.1,0.1,0.9,0.9"}))  # fmt: skip
    fields = read_photod_fields(photo)
    assert fields["rating"] == fields["stars"] == 3
    assert fields["score"] == pytest.approx(3.3)
    assert fields["scored_at"] == "2026-11-29T01:00:00+00:00"
    assert fields["extra"] == {"Crop": "0.1,0.1,0.9,0.9"}
    assert fields["source"] == str(sidecar_paths(photo)[0])
    report = rating_report(photo)
    assert report["readers"]["darktable"] == {"rating": 3, "source": "photo.heic.xmp"}
    assert report["readers"]["lightroom"] == {"rating": 3, "source": "photo.xmp"}
    assert report["user_rating"] is None
    jpeg = photos.write_jpeg(tmp_path / "camera.jpg", small, rating=0)
    write_rating(jpeg, info(stars=5))
    report = rating_report(jpeg)
    assert (
        report["embedded"]["exif_rating"] == 5 and report["embedded"]["exif_rating_percent"] == 99
    )
    assert report["readers"]["windows"]["rating"] == 5
    assert report["readers"]["lightroom"]["source"] == "embedded XMP"


def test_read_only_file_and_folder_are_refused_cleanly(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    digest = sha(photo)
    photo.chmod(0o444)
    with pytest.raises(MetadataError, match="read-only"):
        write_rating(photo, info())
    photo.chmod(0o644)
    folder = tmp_path / "ro"
    folder.mkdir()
    inside = make("heic", folder, small)
    shutil.copy(photo, folder / "x.jpg")
    folder.chmod(0o555)
    try:
        with pytest.raises(MetadataError, match="read-only"):
            write_rating(inside, info())
        with pytest.raises(MetadataError, match="read-only"):
            write_rating(folder / "x.jpg", info())
        assert sorted(p.name for p in folder.iterdir()) == ["photo.heic", "x.jpg"]
    finally:
        folder.chmod(0o755)
    assert sha(photo) == digest


def test_broken_existing_xmp_is_an_error_and_nothing_is_written(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    darktable = sidecar_paths(photo)[0]
    broken = FOREIGN_SIDECAR[:900]  # truncated mid-history, as after a crash of another tool
    darktable.write_text(broken)
    digest = sha(photo)
    with pytest.raises(MetadataError, match="photo.jpg.xmp"):
        write_rating(photo, info())
    assert sha(photo) == digest and darktable.read_text() == broken
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))
    # a photo with broken embedded XMP is refused too, not "repaired" by dropping it
    bad = photos.write_jpeg(tmp_path / "bad.jpg", small)
    payload = b"http://ns.adobe.com/xap/1.0/\x00" + FOREIGN_SIDECAR[:700].encode()
    data = bad.read_bytes()
    bad.write_bytes(data[:2] + b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
                    + data[2:])  # fmt: skip
    digest = sha(bad)
    with pytest.raises(MetadataError):
        write_rating(bad, info())
    assert sha(bad) == digest


def test_vanished_file_and_concurrent_change(tmp_path, small):
    with pytest.raises(MetadataError, match="vanished"):
        write_rating(tmp_path / "gone.jpg", info())
    photo = make("jpg", tmp_path, small)

    def someone_else_writes_meanwhile(tmp: Path) -> None:
        with open(photo, "ab") as fh:
            fh.write(b"\0")

    changed = photo.read_bytes() + b"\0"
    with pytest.raises(MetadataError, match="changed or vanished"):
        atomic_rewrite(photo, someone_else_writes_meanwhile)
    assert photo.read_bytes() == changed  # their write wins, ours is dropped
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))


def test_atomic_rewrite_failure_leaves_original_and_no_temp(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    digest = sha(photo)
    mode = os.stat(photo).st_mode

    def fails(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("boom")

    with pytest.raises(MetadataError, match="boom"):
        atomic_rewrite(photo, fails)
    assert sha(photo) == digest and os.stat(photo).st_mode == mode
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))


def test_symlink_target_rewritten_link_kept(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    write_rating(link, info(stars=5))
    assert link.is_symlink()
    assert exiftool(photo)[0]["XMP-xmp:Rating"] == 5


def test_clean_stale_temp_files(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    (tmp_path / f"{TEMP_PREFIX}dead-photo.jpg").write_bytes(b"x")
    (tmp_path / f"{TEMP_PREFIX}dead-photo.jpg.xmp").write_bytes(b"x")
    (tmp_path / ".hidden-but-not-ours.jpg").write_bytes(b"x")
    assert clean_stale_temp_files(tmp_path, min_age_s=3600) == 0  # too young: maybe in use
    assert clean_stale_temp_files(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-but-not-ours.jpg", photo.name]


def test_rating_info_validates_stars():
    with pytest.raises(ValueError):
        RatingInfo(score=1.0, stars=6, model="m")
    assert RatingInfo(score=1.0, stars=-1, model="m").scored_at.endswith("+00:00")


def test_verify_image_data_refuses_changed_pixels(tmp_path, small):
    for kind in ("jpg", "png", "tif"):
        photo = make(kind, tmp_path, small)
        other = make(kind, tmp_path, photos.real_photo("coffee", scale=0.3), name="other")
        verify_image_data(photo, photo)  # same data: fine
        with pytest.raises(MetadataError, match="image data would change"):
            verify_image_data(photo, other)


def test_heic_disguised_as_jpeg_is_refused(tmp_path, small):
    fake = photos.write_heic(tmp_path / "phone.heic", small).rename(tmp_path / "phone.jpg")
    digest = sha(fake)
    with pytest.raises(MetadataError, match="photod writes no metadata into it"):
        write_rating(fake, info())
    assert sha(fake) == digest and not list(tmp_path.glob(TEMP_PREFIX + "*"))


def test_concurrent_writers_from_threads(tmp_path, small):
    from concurrent.futures import ThreadPoolExecutor

    files = [make("jpg", tmp_path, small, name=f"t{i}") for i in range(12)]
    before = {f: pixels(f) for f in files}
    with ThreadPoolExecutor(max_workers=6) as pool:
        outcomes = list(pool.map(lambda f: write_rating(f, info(stars=files.index(f) % 6)), files))
    assert all(o.written == [o.path] for o in outcomes)
    for i, tags in enumerate(exiftool(*files)):
        assert tags["XMP-xmp:Rating"] == i % 6 == tags["XMP-photod:Stars"]
    assert all(np.array_equal(pixels(f), before[f]) for f in files)


def test_rewrite_keeps_owner_mode_and_xattrs_and_updates_mtime(tmp_path, small):
    photo = make("jpg", tmp_path, small)
    photo.chmod(0o640)
    os.setxattr(photo, "user.photod-test", b"kept")
    old = os.stat(photo)
    if os.geteuid() == 0:  # only root can hand the file to someone else first
        os.chown(photo, 1234, 1234)
        old = os.stat(photo)
    os.utime(photo, (old.st_atime - 3600, old.st_mtime - 3600))
    old = os.stat(photo)
    write_rating(photo, info())
    new = os.stat(photo)
    assert new.st_ino != old.st_ino  # really replaced, not written in place
    assert (new.st_uid, new.st_gid) == (old.st_uid, old.st_gid)
    assert new.st_mode == old.st_mode
    assert os.getxattr(photo, "user.photod-test") == b"kept"
    assert new.st_mtime > old.st_mtime
