"""Suggestion outputs without the model: full-res render, crs: XMP, the suggestions table.

A `Suggestion` here is built from real enhancer candidates (the same objects the search keeps),
so these tests pin the output paths independently of what a model happens to prefer.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photod.enhancers import EnhanceContext, get_enhancer
from photod.enhancers.geometry import extract
from photod.suggest import Edit, Suggestion
from tests import photos

EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"  # an independent reader (required)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _exposure_candidate(ev: float):
    (candidate,) = get_enhancer("exposure").candidates(
        np.zeros((8, 8, 3), np.uint8), EnhanceContext(params={"ev": [ev]})
    )
    return candidate


def make_suggestion(crop=(0.1, 0.05, 0.8, 0.9), angle=0.0, ev=0.67) -> Suggestion:
    exposure = _exposure_candidate(ev)
    edits = [Edit("exposure", exposure.params, 0.12, 3.2, dict(exposure.crs))]
    if crop is not None:
        edits.append(Edit("crop", {"aspect": "4:3", "scale": 0.84, "box": list(crop)}, 0.15, 3.35))
    return Suggestion(
        path=None,
        score_before=3.08,
        score_after=3.35,
        edits=edits,
        crop=crop,
        angle=angle,
        exposure_ev=ev,
        model="photod-aesthetic-test",
        margin=0.1,
        best_score=3.35,
        pixel_ops=[exposure.pixel_op],
    )


def exiftool_json(path: Path, *tags: str) -> dict:
    out = subprocess.run(
        [EXIFTOOL, "-json", "-n", *tags, str(path)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)[0]


def test_to_dict_has_the_documented_json_fields():
    data = make_suggestion().to_dict()
    for key in ("path", "score_before", "score_after", "edits", "crop", "exposure_ev"):
        assert key in data
    assert data["edits"][0] == {"enhancer": "exposure", "params": {"ev": 0.67}, "gain": 0.12}
    assert data["crop"] == [0.1, 0.05, 0.8, 0.9]
    assert data["exposure_ev"] == 0.67
    assert data["suggested"] is True
    assert data["crs"] == {"Exposure2012": 0.67}
    json.dumps(data)  # plain JSON, no numpy types


# --- --apply ----------------------------------------------------------------------------------


def test_render_keeps_original_untouched_and_exif_icc(tmp_path):
    from photod.render import render_suggestion

    pixels = photos.real_photo("coffee", scale=1.0)
    source = tmp_path / "in" / "photo.jpg"
    source.parent.mkdir()
    # Stored sideways (orientation 6) in Display P3: the profile must travel with the pixels.
    photos.write_jpeg(source, pixels, orientation=6)
    icc = photos.display_p3_icc()
    with Image.open(source) as im:
        exif = im.getexif()
        stored = im.copy()
    stored.save(source, "JPEG", quality=92, exif=exif, icc_profile=icc)
    before = _sha(source)
    suggestion = make_suggestion()

    out = render_suggestion(source, suggestion, tmp_path / "out")
    assert _sha(source) == before
    assert out.parent == tmp_path / "out" and out.name == "photo.photod.jpg"
    with Image.open(out) as im:
        assert im.info.get("icc_profile") == icc
        exif_out = im.getexif()
        assert exif_out.get(0x0112) == 1
        assert exif_out.get(0x010F) == "Canon"
        rendered = np.asarray(im.convert("RGB"))
    # Upright pixels of the original (orientation applied), cropped, brighter.
    h, w = pixels.shape[:2]
    expected = extract(pixels, suggestion.crop)
    assert abs(rendered.shape[0] - expected.shape[0]) <= 1
    assert abs(rendered.shape[1] - expected.shape[1]) <= 1
    assert rendered.mean() > expected.mean() + 10
    # A second render never replaces the first.
    again = render_suggestion(source, suggestion, tmp_path / "out")
    assert again.name == "photo.photod-2.jpg" and out.exists()
    tags = exiftool_json(out, "-UserComment", "-Software", "-Orientation", "-Model")
    assert "photod" in tags["UserComment"] and "exposure(ev=0.67)" in tags["UserComment"]
    assert tags["Orientation"] == 1
    assert tags["Model"] == "EOS R5"


def test_render_into_the_photos_own_folder_never_overwrites_it(tmp_path):
    from photod.render import render_suggestion

    source = photos.write_jpeg(tmp_path / "a.jpg", photos.real_photo("chelsea"))
    before = _sha(source)
    out = render_suggestion(source, make_suggestion(), tmp_path)
    assert out != source and _sha(source) == before


def test_render_with_rotation_matches_the_working_copy_preview(tmp_path):
    from photod.render import apply_suggestion, render_suggestion

    pixels = photos.real_photo("astronaut", scale=0.8)
    source = photos.write_jpeg(tmp_path / "astro.jpg", pixels, quality=98)
    suggestion = make_suggestion(crop=(0.1, 0.1, 0.9, 0.9), angle=3.0, ev=-0.5)
    out = render_suggestion(source, suggestion, tmp_path / "out")
    with Image.open(out) as im:
        full = np.asarray(im.convert("RGB")).astype(int)
    small = apply_suggestion(pixels, suggestion).astype(int)
    assert abs(full.shape[0] - small.shape[0]) <= 1
    hh, ww = min(full.shape[0], small.shape[0]), min(full.shape[1], small.shape[1])
    assert np.median(np.abs(full[:hh, :ww] - small[:hh, :ww])) < 6


def test_render_from_a_stored_suggestion_rebuilds_the_edits(tmp_path):
    from photod.render import apply_suggestion

    pixels = photos.real_photo("coffee", scale=0.5)
    live = make_suggestion()
    stored = json.loads(json.dumps(live.to_dict()))
    assert np.array_equal(apply_suggestion(pixels, stored), apply_suggestion(pixels, live))


def test_render_of_a_dng_writes_srgb_jpeg(tmp_path):
    from photod.render import render_suggestion

    source = photos.write_dng(tmp_path / "raw.dng", photos.real_photo("chelsea", scale=0.5))
    before = _sha(source)
    out = render_suggestion(source, make_suggestion(), tmp_path / "out")
    assert _sha(source) == before
    with Image.open(out) as im:
        assert im.format == "JPEG" and im.info.get("icc_profile")


# --- --write-xmp ------------------------------------------------------------------------------


def test_write_xmp_embeds_crs_settings_exiftool_reads_back(tmp_path):
    from photod.metadata.develop import write_develop
    from photod.metadata.xmp import jpeg_scan_data

    source = photos.write_jpeg(tmp_path / "p.jpg", photos.real_photo("coffee"))
    scan = jpeg_scan_data(source)
    outcome = write_develop(source, make_suggestion(angle=1.5))
    assert outcome.written == [str(source)]
    tags = exiftool_json(source, "-XMP-crs:all", "-XMP-photod:all")
    assert tags["HasCrop"] is True
    # Camera Raw keeps the rotated crop's own corners; the angle has the opposite sign.
    from photod.metadata.develop import crop_corners

    h, w = photos.real_photo("coffee").shape[:2]
    left, top, right, bottom, angle = crop_corners((0.1, 0.05, 0.8, 0.9), 1.5, w, h)
    assert tags["CropLeft"] == pytest.approx(left, abs=1e-6)
    assert tags["CropTop"] == pytest.approx(top, abs=1e-6)
    assert tags["CropRight"] == pytest.approx(right, abs=1e-6)
    assert tags["CropBottom"] == pytest.approx(bottom, abs=1e-6)
    assert tags["CropAngle"] == pytest.approx(-1.5) == angle
    assert left < 0.1 < 0.8 < right  # the corners of a turned box reach past its centre box
    assert float(tags["Exposure2012"]) == pytest.approx(0.67)
    assert jpeg_scan_data(source) == scan  # pixels never re-encoded


def test_write_xmp_merges_and_respects_user_edits(tmp_path):
    from photod.metadata.develop import write_develop

    source = photos.write_jpeg(tmp_path / "p.jpg", photos.real_photo("chelsea"))
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", "-XMP-xmp:Rating=4", "-XMP-dc:Title=Cat",
         str(source)],
        check=True,
    )  # fmt: skip
    write_develop(source, make_suggestion())
    tags = exiftool_json(source, "-XMP-xmp:Rating", "-XMP-dc:Title", "-XMP-crs:Exposure2012")
    assert tags["Rating"] == 4 and tags["Title"] == "Cat"
    assert float(tags["Exposure2012"]) == 0.67
    # photod may update its own settings; a later suggestion without crop removes the old crop.
    no_crop = make_suggestion(crop=None, ev=-0.33)
    write_develop(source, no_crop)
    tags = exiftool_json(source, "-XMP-crs:all")
    assert tags["HasCrop"] is False and "CropLeft" not in tags
    assert float(tags["Exposure2012"]) == pytest.approx(-0.33)

    user = photos.write_jpeg(tmp_path / "u.jpg", photos.real_photo("chelsea"))
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", "-XMP-crs:Exposure2012=+1.20", str(user)],
        check=True,
    )
    before = _sha(user)
    outcome = write_develop(user, make_suggestion())
    assert outcome.written == [] and "Exposure2012" in outcome.skipped
    assert _sha(user) == before
    forced = write_develop(user, make_suggestion(), force=True)
    assert (
        forced.written
        and float(exiftool_json(user, "-XMP-crs:Exposure2012")["Exposure2012"]) == 0.67
    )


def test_write_xmp_for_raw_goes_to_the_lightroom_sidecar(tmp_path):
    from photod.metadata.develop import write_develop

    source = photos.write_dng(tmp_path / "IMG_1.dng", photos.real_photo("coffee", scale=0.4))
    heic = photos.write_heic(tmp_path / "IMG_2.heic", photos.real_photo("coffee", scale=0.4))
    before = _sha(heic)
    outcome = write_develop(heic, make_suggestion())
    sidecar = tmp_path / "IMG_2.xmp"
    assert outcome.written == [str(sidecar)]
    assert _sha(heic) == before
    tags = exiftool_json(sidecar, "-XMP-crs:all")
    assert tags["CropRight"] == pytest.approx(0.8) and float(tags["Exposure2012"]) == 0.67
    # DNG embeds (Lightroom reads DNG's own XMP).
    assert write_develop(source, make_suggestion()).written == [str(source)]


@pytest.mark.parametrize("angle", [0.0, 4.0, -3.0])
def test_darktable_imports_the_lightroom_sidecar_crop_like_photod_renders_it(tmp_path, angle):
    """darktable-cli (its Lightroom import) applies our crs: crop; compare with photod's own."""
    from photod.metadata.develop import write_develop

    pixels = photos.real_photo("coffee")
    heic = photos.write_heic(tmp_path / "IMG_3.heic", pixels, quality=95)
    suggestion = make_suggestion(crop=(0.15, 0.2, 0.75, 0.85), angle=angle, ev=0.5)
    suggestion.width, suggestion.height = pixels.shape[1], pixels.shape[0]
    write_develop(heic, suggestion)
    out = tmp_path / "dt.png"
    subprocess.run(
        ["darktable-cli", str(heic), str(out), "--core", "--configdir", str(tmp_path / "dt")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with Image.open(out) as im:
        theirs = np.asarray(im.convert("L"), dtype=float)
    ours = extract(pixels, suggestion.crop, angle)
    assert abs(theirs.shape[0] - ours.shape[0]) <= 2 and abs(theirs.shape[1] - ours.shape[1]) <= 2
    ours_l = np.asarray(Image.fromarray(ours).convert("L").resize(theirs.shape[::-1]), float)
    wrong = extract(pixels, suggestion.crop, -angle) if angle else np.roll(ours, 20, axis=1)
    wrong_l = np.asarray(Image.fromarray(wrong).convert("L").resize(theirs.shape[::-1]), float)
    match = np.corrcoef(ours_l.ravel(), theirs.ravel())[0, 1]
    mismatch = np.corrcoef(wrong_l.ravel(), theirs.ravel())[0, 1]
    assert match > 0.95 and match > mismatch + 0.1


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_crs_crop_is_in_stored_orientation(orientation):
    """The corners photod writes cut the same content out of the stored (sideways) pixels."""
    from photod.decode import _apply_orientation
    from photod.metadata.develop import crop_corners

    displayed = photos.real_photo("astronaut", scale=0.5)[:, :200]  # 256x200: not square
    inverse = {1: 1, 3: 3, 6: 8, 8: 6}[orientation]
    stored = _apply_orientation(displayed, inverse)
    assert np.array_equal(_apply_orientation(stored, orientation), displayed)
    box = (0.1, 0.2, 0.7, 0.9)
    h, w = displayed.shape[:2]
    left, top, right, bottom, crop_angle = crop_corners(box, 0.0, w, h, orientation)
    assert crop_angle == 0
    cut = extract(stored, (min(left, right), min(top, bottom), max(left, right), max(top, bottom)))
    expected = extract(displayed, box)
    assert np.array_equal(_apply_orientation(cut, orientation), expected)


def test_write_xmp_without_edits_writes_nothing(tmp_path):
    from photod.metadata.develop import write_develop

    source = photos.write_jpeg(tmp_path / "p.jpg", photos.real_photo("coffee", scale=0.3))
    before = _sha(source)
    nothing = make_suggestion()
    nothing.edits = []
    outcome = write_develop(source, nothing)
    assert outcome.written == [] and outcome.skipped
    assert _sha(source) == before


# --- the suggestions table --------------------------------------------------------------------


def test_suggestions_table_roundtrip(tmp_path):
    from photod.index import open_index
    from photod.suggest_store import load_suggestion, save_suggestion, suggested_paths

    db = open_index(tmp_path / "index.db")
    assert load_suggestion(db, "/photos/none.jpg") is None  # no table yet: nothing, no error
    suggestion = make_suggestion()
    save_suggestion(db, "/photos/a.jpg", suggestion)
    weak = make_suggestion()
    weak.edits, weak.score_after = [], weak.score_before
    save_suggestion(db, "/photos/b.jpg", weak)
    loaded = load_suggestion(db, "/photos/a.jpg")
    expected = suggestion.to_dict()
    expected["path"] = "/photos/a.jpg"
    assert {k: v for k, v in loaded.to_dict().items() if k != "created_at"} == expected
    assert [r["path"] for r in suggested_paths(db)] == ["/photos/a.jpg"]
    # Saving again replaces; the migration set is recorded once.
    save_suggestion(db, "/photos/a.jpg", weak)
    assert load_suggestion(db, "/photos/a.jpg")["suggested"] is False
    names = [
        r["name"] for r in db["_sqlite_migrations"].rows_where("migration_set = 'photod.suggest'")
    ]
    assert names == ["m001_suggestions"]
    # A path string opens the same index.
    assert load_suggestion(str(tmp_path / "index.db"), "/photos/b.jpg")["suggested"] is False


def test_list_suggested_shows_only_photos_with_a_worthwhile_suggestion(tmp_path):
    from click.testing import CliRunner

    from photod.cli import cli
    from photod.index import open_index, upsert_photo
    from photod.suggest_store import save_suggestion

    path = tmp_path / "index.db"
    db = open_index(path)
    runner = CliRunner()
    upsert_photo(db, {"path": "/p/a.jpg", "score": 3.2, "stars": 3, "status": "ok"})
    empty = runner.invoke(cli, ["list", "--suggested", "--db", str(path)])
    assert empty.exit_code == 0 and empty.output == ""  # no suggestions table yet: no rows
    for name, score in [("b", 3.0), ("c", 2.1)]:
        upsert_photo(db, {"path": f"/p/{name}.jpg", "score": score, "stars": 2, "status": "ok"})
    save_suggestion(db, "/p/b.jpg", make_suggestion())
    weak = make_suggestion()
    weak.edits, weak.score_after = [], weak.score_before
    save_suggestion(db, "/p/c.jpg", weak)  # below its margin: not worth showing
    db.close()
    listed = runner.invoke(cli, ["list", "--suggested", "--db", str(path), "--json"])
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [r["path"] for r in rows] == ["/p/b.jpg"]
    assert rows[0]["suggestion"]["gain"] == pytest.approx(0.27)
    assert rows[0]["suggestion"]["crop"] == [0.1, 0.05, 0.8, 0.9]
    text = runner.invoke(cli, ["list", "--suggested", "--db", str(path)]).output
    assert "/p/b.jpg" in text and "gain +0.270" in text and "+0.67 EV" in text
    assert "/p/a.jpg" not in text and "/p/c.jpg" not in text
    everything = runner.invoke(cli, ["list", "--db", str(path)]).output
    assert "/p/a.jpg" in everything and "gain" not in everything


@pytest.mark.parametrize("kind", ["png", "tiff", "tiff16", "heic", "cmyk"])
def test_render_every_format(tmp_path, kind):
    from photod.render import render_suggestion

    pixels = photos.real_photo("coffee", scale=0.5)
    if kind == "png":
        source = tmp_path / "a.png"
        Image.fromarray(pixels).save(source)
    elif kind == "tiff":
        source = tmp_path / "a.tif"
        Image.fromarray(pixels).save(source, exif=photos.camera_exif())
    elif kind == "tiff16":
        source = tmp_path / "a.tif"
        Image.fromarray(pixels[..., 1].astype(np.uint16) * 257).save(source)
    elif kind == "heic":
        source = photos.write_heic(tmp_path / "a.heic", pixels)
    else:
        source = tmp_path / "a.jpg"
        Image.fromarray(pixels).convert("CMYK").save(source, quality=95)
    before = _sha(source)
    suggestion = make_suggestion()
    out = render_suggestion(source, suggestion, tmp_path / "out")
    assert _sha(source) == before
    expected = extract(pixels, suggestion.crop)
    with Image.open(out) as im:
        assert im.mode == "RGB"
        assert abs(im.size[0] - expected.shape[1]) <= 1 and abs(im.size[1] - expected.shape[0]) <= 1
        assert im.getexif().get(0x0131, "").startswith("photod")
        if kind == "tiff":
            assert im.getexif().get(0x010F) == "Canon"


def test_window_stats_equal_direct_mean_and_std_over_the_window():
    from photod.suggest import window_stats

    rng = np.random.default_rng(3)
    fmap = rng.normal(2.0, 1.5, size=(5, 12, 16)).astype(np.float32)
    # Boxes on cell boundaries (exact windows) and one covering the whole map.
    boxes = np.array([[0, 0, 1, 1], [0.25, 0.5, 0.75, 1.0], [0.125, 0.25, 0.5, 0.75]])
    mean, std = window_stats(fmap, boxes)
    for (left, t, r, b), m, s in zip(boxes, mean, std, strict=True):
        window = fmap[:, round(t * 12) : round(b * 12), round(left * 16) : round(r * 16)]
        flat = window.reshape(5, -1).astype(np.float64)
        assert np.allclose(m, flat.mean(axis=1), atol=1e-5)
        assert np.allclose(s, flat.std(axis=1, ddof=1), atol=1e-4)
    # A fractional window is the area-weighted blend of the cells it covers.
    half = window_stats(fmap, np.array([[0, 0, 1.5 / 16, 1 / 12]]), std=False)[0][0]
    expected = (fmap[:, 0, 0] + 0.5 * fmap[:, 0, 1]) / 1.5
    assert np.allclose(half, expected, atol=1e-5)
