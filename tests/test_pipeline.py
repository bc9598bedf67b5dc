"""`process_paths`: real photos, the real model, real metadata writes checked with exiftool."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photod.index import embedding_array, get_by_path, open_index, query_photos
from photod.pipeline import file_hash, process_paths
from tests import photos

EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"


@pytest.fixture(scope="module")
def model_scorer():
    """CPU scorer of the model the CLI would use (PHOTOD_MODEL, else the shipped one)."""
    from photod.scoring import DEFAULT_MODEL, Scorer

    return Scorer(model=os.environ.get("PHOTOD_MODEL") or DEFAULT_MODEL, device="cpu", batch_size=8)


@pytest.fixture()
def db(tmp_path: Path):
    database = open_index(tmp_path / "index.db")
    yield database
    database.close()


def _exiftool(*paths: Path) -> list[dict]:
    out = subprocess.run(
        [EXIFTOOL, "-json", "-G1", "-XMP-xmp:Rating", "-IFD0:Rating", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)


def _run(paths, scorer, db, **kw) -> dict[str, object]:
    return {Path(o.path).name: o for o in process_paths(paths, scorer, db, **kw)}


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def test_scores_rates_and_indexes_every_format(tmp_path: Path, model_scorer, db) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    # a camera JPEG with an (unrated) EXIF Rating: photod patches it in place
    jpeg = photos.write_jpeg(folder / "cat.jpg", photos.real_photo("chelsea", 0.8), rating=0)
    png = folder / "coffee.png"
    Image.fromarray(photos.real_photo("coffee", 0.5)).save(png)
    heic = photos.write_heic(folder / "rocket.heic", photos.real_photo("rocket", 0.5))
    dng = photos.write_dng(folder / "astronaut.dng", photos.real_photo("astronaut", 0.5))
    before = {p: _pixels(p) for p in (jpeg, png)}

    results = _run([jpeg, png, heic, dng], model_scorer, db)
    assert {name: o.action for name, o in results.items()} == dict.fromkeys(
        ["cat.jpg", "coffee.png", "rocket.heic", "astronaut.dng"], "scored"
    )
    rows = {Path(r["path"]).name: r for r in query_photos(db)}
    assert len(rows) == 4
    for name, row in rows.items():
        assert row["status"] == "ok", name
        assert 1 <= row["stars"] <= 5
        assert row["stars"] == results[name].stars
        assert row["model"] == model_scorer.version
        assert row["content_hash"] == file_hash(str(folder / name))
        assert row["size"] == (folder / name).stat().st_size
    cat = rows["cat.jpg"]
    assert (cat["camera_make"], cat["camera_model"]) == ("Canon", "EOS R5")
    assert cat["lens"] == "RF24-70mm F2.8 L IS USM"
    assert cat["captured_at"] == "2026-11-28T10:00:00" and cat["capture_subsec"] == "12"
    assert (cat["width"], cat["height"]) == (360, 240)
    full = query_photos(db, include_embedding=True)
    assert all(embedding_array(r["embedding"]).shape == (1280,) for r in full)
    # The JPEG and PNG carry the rating inside; the HEIC and the DNG's darktable sidecar too.
    by_file = {Path(d["SourceFile"]).name: d for d in _exiftool(jpeg, png, heic)}
    assert by_file["cat.jpg"]["XMP-xmp:Rating"] == rows["cat.jpg"]["stars"]
    assert by_file["cat.jpg"]["IFD0:Rating"] == rows["cat.jpg"]["stars"]
    assert by_file["coffee.png"]["XMP-xmp:Rating"] == rows["coffee.png"]["stars"]
    written = json.loads(rows["rocket.heic"]["written_to"]) + json.loads(
        rows["astronaut.dng"]["written_to"]
    )
    assert written, "HEIC and DNG ratings went somewhere"
    for name in written:
        assert (folder / name).exists()
    # Pixels are never re-encoded.
    for path, pixels in before.items():
        np.testing.assert_array_equal(_pixels(path), pixels)


def test_second_run_changes_nothing(tmp_path: Path, model_scorer, db) -> None:
    path = photos.write_jpeg(tmp_path / "a.jpg", photos.real_photo("coffee", 0.5))
    first = _run([path], model_scorer, db)["a.jpg"]
    assert first.action == "scored" and first.written == [str(path)]
    stat_after_write = path.stat()
    row = get_by_path(db, str(path))
    second = _run([path], model_scorer, db)["a.jpg"]
    assert second.action == "unchanged"
    assert path.stat().st_mtime_ns == stat_after_write.st_mtime_ns  # not written again
    assert get_by_path(db, str(path))["scored_at"] == row["scored_at"]
    # Same bytes with a new mtime (touched): still nothing to score.
    os.utime(path, ns=(stat_after_write.st_atime_ns, stat_after_write.st_mtime_ns + 10**9))
    assert _run([path], model_scorer, db)["a.jpg"].action == "unchanged"
    assert get_by_path(db, str(path))["mtime_ns"] == stat_after_write.st_mtime_ns + 10**9


def test_a_row_hashed_before_sha256_is_upgraded_when_its_photo_is_scored_again(
    tmp_path: Path, model_scorer, db
) -> None:
    import hashlib

    path = photos.write_jpeg(tmp_path / "a.jpg", photos.real_photo("rocket", 0.5))
    first = _run([path], model_scorer, db)["a.jpg"]
    row = get_by_path(db, str(path))
    assert row["content_hash"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # The row as an index of photod before SHA-256 holds it: blake2b-128 hashes.
    legacy = hashlib.blake2b(path.read_bytes(), digest_size=16).hexdigest()
    db["photos"].update(row["id"], {"content_hash": legacy, "original_hash": legacy})
    assert _run([path], model_scorer, db)["a.jpg"].action == "unchanged"  # known by its stat
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    again = _run([path], model_scorer, db)["a.jpg"]  # touched: its legacy hash cannot match
    assert again.action == "scored" and abs(again.score - first.score) < 1e-6
    upgraded = get_by_path(db, str(path))
    assert upgraded["id"] == row["id"] and upgraded["stars"] == row["stars"]
    assert upgraded["content_hash"] == file_hash(str(path)) and len(upgraded["content_hash"]) == 64
    assert _exiftool(path)[0]["XMP-xmp:Rating"] == row["stars"]
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _run([path], model_scorer, db)["a.jpg"].action == "unchanged"  # now by its hash


def test_rename_move_copy_edit_delete(tmp_path: Path, model_scorer, db) -> None:
    folder = tmp_path / "import"
    (folder / "sub").mkdir(parents=True)
    a = photos.write_jpeg(folder / "a.jpg", photos.real_photo("chelsea", 0.5))
    b = photos.write_jpeg(folder / "b.jpg", photos.real_photo("rocket", 0.5))
    _run([a, b], model_scorer, db)
    row_a, row_b = get_by_path(db, str(a)), get_by_path(db, str(b))

    renamed = folder / "sub" / "renamed a.jpg"
    os.rename(a, renamed)
    copy = folder / "copy of b.jpg"
    shutil.copy2(b, copy)
    results = _run([renamed, copy, a], model_scorer, db)
    assert results["renamed a.jpg"].action == "moved"
    assert results["renamed a.jpg"].moved_from == str(a)
    assert results["copy of b.jpg"].action == "copied"
    assert results["a.jpg"].action == "skipped"  # the old name is gone and no longer indexed
    moved = get_by_path(db, str(renamed))
    assert moved["id"] == row_a["id"]  # the same row, not a new one
    assert (moved["score"], moved["scored_at"]) == (row_a["score"], row_a["scored_at"])
    assert get_by_path(db, str(a)) is None
    copied = get_by_path(db, str(copy))
    assert copied["id"] != row_b["id"] and copied["score"] == row_b["score"]
    assert copied["scored_at"] == row_b["scored_at"]  # not re-scored
    assert db["photos"].count == 3

    # An edited photo (new pixels under the same name) is scored again, in its own row.
    photos.write_jpeg(b, photos.real_photo("astronaut", 0.5))
    edited = _run([b], model_scorer, db)["b.jpg"]
    assert edited.action == "scored"
    new_b = get_by_path(db, str(b))
    assert new_b["id"] == row_b["id"] and new_b["score"] != row_b["score"]
    assert _exiftool(b)[0]["XMP-xmp:Rating"] == new_b["stars"]

    os.unlink(copy)
    assert _run([copy], model_scorer, db)["copy of b.jpg"].action == "missing"
    assert get_by_path(db, str(copy))["status"] == "missing"
    assert db["photos"].count == 3


def test_bad_files_get_error_rows_and_never_stop_the_good_ones(
    tmp_path: Path, model_scorer, db
) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    good = [
        photos.write_jpeg(folder / f"good {i} ü.jpg", photos.real_photo("coffee", 0.3 + i / 20))
        for i in range(3)
    ]
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("not a photo at all")
    full = (folder / "good 0 ü.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(full[: len(full) // 3])
    (folder / "dir.jpg").mkdir()
    os.symlink(folder / "loop.jpg", folder / "loop.jpg")
    bad = ["empty.jpg", "text.jpg", "cut.jpg", "dir.jpg", "loop.jpg"]
    order = [folder / bad[0], good[0], *[folder / n for n in bad[1:]], *good[1:]]
    results = _run(order, model_scorer, db)

    assert all(results[p.name].action == "scored" for p in good)
    assert results["empty.jpg"].error_code == "empty"
    assert results["text.jpg"].error_code == "not_an_image"
    assert results["cut.jpg"].action in ("error", "scored")  # libjpeg may fill a cut-off end
    assert results["dir.jpg"].action == "skipped"
    assert results["loop.jpg"].action == "error"
    assert "symbolic links" in results["loop.jpg"].error  # the reason, once; the path is beside it
    assert str(folder) not in results["loop.jpg"].error
    rows = {Path(r["path"]).name: r for r in query_photos(db)}
    for name in ("empty.jpg", "text.jpg", "loop.jpg"):
        assert rows[name]["status"] == "error" and rows[name]["error"], name
    assert "dir.jpg" not in rows
    # An unchanged bad file is not retried over and over.
    again = _run([folder / "empty.jpg", folder / "text.jpg"], model_scorer, db)
    assert {o.action for o in again.values()} == {"unchanged"}


def test_user_rating_is_kept_and_recorded(tmp_path: Path, model_scorer, db) -> None:
    path = photos.write_jpeg(tmp_path / "mine.jpg", photos.real_photo("chelsea", 0.4))
    subprocess.run(
        [EXIFTOOL, "-q", "-overwrite_original", "-XMP-xmp:Rating=5", str(path)], check=True
    )
    before = path.read_bytes()
    result = _run([path], model_scorer, db)["mine.jpg"]
    assert result.action == "scored" and result.user_rating == 5
    assert result.written == [] and "user rating" in result.write_skipped
    assert path.read_bytes() == before
    row = get_by_path(db, str(path))
    assert row["user_rating"] == 5 and row["status"] == "ok" and row["stars"] is not None


def test_write_mode_none_only_scores_and_indexes(tmp_path: Path, model_scorer, db) -> None:
    path = photos.write_jpeg(tmp_path / "a.jpg", photos.real_photo("rocket", 0.4))
    before = path.read_bytes()
    result = _run([path], model_scorer, db, write_mode="none")["a.jpg"]
    assert result.action == "scored" and result.written == []
    assert path.read_bytes() == before
    assert get_by_path(db, str(path))["content_hash"] == file_hash(str(path))


def test_unwritable_photo_keeps_its_score_and_records_the_write_failure(
    tmp_path: Path, model_scorer, db
) -> None:
    # A name so long that the writer's temp file (prefix + name) cannot exist: the write fails
    # even for root, which ignores permissions.
    path = photos.write_jpeg(tmp_path / ("x" * 240 + ".jpg"), photos.real_photo("coffee", 0.4))
    before = path.read_bytes()
    result = next(iter(_run([path], model_scorer, db).values()))
    # scored and indexed (status ok), and the missing rating said as such, never a plain ok
    assert result.action == "scored" and result.status == "ok"
    assert result.write_error and result.write_status == "failed"
    assert result.to_dict()["write_status"] == "failed" and result.written == []
    row = get_by_path(db, str(path))
    assert row["status"] == "ok" and row["error"] is None
    assert "cannot" in row["write_error"]
    assert row["score"] is not None and row["stars"] is not None
    assert path.read_bytes() == before
    # The next pass tries the write again (a failure may be transient, issue 16) without
    # re-scoring: the same score, the same row, the photo still untouched.
    again = next(iter(_run([path], model_scorer, db).values()))
    assert again.action == "retried" and again.write_status == "failed", again.to_dict()
    assert again.score == result.score
    assert get_by_path(db, str(path))["scored_at"] == row["scored_at"]
    assert path.read_bytes() == before


def test_suggest_stores_a_suggestion_per_scored_photo(tmp_path: Path, model_scorer, db) -> None:
    from photod.suggest_store import load_suggestion

    path = photos.write_jpeg(tmp_path / "s.jpg", photos.real_photo("coffee", 0.3))
    result = _run([path], model_scorer, db, suggest=True)["s.jpg"]
    assert result.action == "scored" and result.suggestion is not None
    stored = load_suggestion(db, str(path))
    assert stored is not None and stored["created_at"]
    # An unchanged photo is not searched again.
    assert _run([path], model_scorer, db, suggest=True)["s.jpg"].suggestion is None
