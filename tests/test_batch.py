"""`photod batch` on a real local Ray (one session for the module): the same scores as `photod
score`, error rows for bad files, resumption by stat and hash, ratings written on the workers,
and the results merged into the SQLite index that `photod list` reads.

The multi-node and kill tests, which need Ray processes of their own, are in test_batch_cluster.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from tests import photos

EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket")


def test_plain_photod_and_batch_help_import_no_ray() -> None:
    code = (
        "import sys, photod, photod.cli\n"
        "from click.testing import CliRunner\n"
        "for args in (['--help'], ['batch', '--help'], ['index', 'import', '--help']):\n"
        "    result = CliRunner().invoke(photod.cli.cli, args)\n"
        "    assert result.exit_code == 0, result.output\n"
        "    if args[0] == 'batch': assert \"photod[ray]\" in result.output, result.output\n"
        "heavy = [m for m in ('ray', 'pyarrow', 'torch') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_sources_are_folders_globs_and_path_lists(tmp_path: Path) -> None:
    from photod.batch import list_photos

    (tmp_path / "a" / "deep").mkdir(parents=True)
    one = photos.write_jpeg(tmp_path / "a" / "one.jpg", photos.real_photo("chelsea", 0.2))
    two = photos.write_jpeg(tmp_path / "a" / "deep" / "two.jpg", photos.real_photo("coffee", 0.2))
    (tmp_path / "a" / "notes.md").write_text("not a photo")
    listing = tmp_path / "paths.txt"
    listing.write_text(f"# archive\n{two}\n\n{tmp_path / 'gone.jpg'}\n")

    assert list_photos([str(tmp_path / "a")]) == [str(one)]
    assert list_photos([str(tmp_path / "a")], recursive=True) == [str(two), str(one)]
    assert list_photos([str(tmp_path / "a" / "**" / "*.jpg")], recursive=True) == [
        str(two),
        str(one),
    ]
    # A list is taken as it is: a missing file becomes a row of its own, not a silent gap.
    assert list_photos([str(listing), str(one), str(two)]) == [
        str(two),
        str(tmp_path / "gone.jpg"),
        str(one),
    ]


@pytest.fixture(scope="module")
def ray_session():
    if os.environ.get("CI"):
        import ray  # .ci/run installs the extra: missing is a failure there
    else:
        ray = pytest.importorskip("ray", reason="needs the extra: pip install -e '.[ray]'")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight real photos of different sizes, three bad files and a sub-folder."""
    folder = tmp_path_factory.mktemp("archive")
    for i in range(8):
        pixels = photos.real_photo(SAMPLES[i % 4], 0.4 + 0.1 * i)
        photos.write_jpeg(folder / f"photo_{i}.jpg", pixels, make="Nikon", model=f"Z{i}")
    good = (folder / "photo_0.jpg").read_bytes()
    (folder / "cut.jpg").write_bytes(good[: len(good) // 3])
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "fake.png").write_bytes(b"this is text, not a PNG")
    return folder


def _copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / "photos"
    shutil.copytree(folder, target)
    return target


def _options(**kw):
    from photod.batch import BatchOptions

    return BatchOptions(progress=False, decode_batch=3, shard_size=4, **kw)


def _rows(out: Path) -> dict[str, dict]:
    from photod.batch import read_results

    return {Path(row["path"]).name: row for row in read_results(out).to_pylist()}


def _summary(output: str) -> dict:
    """The --json summary line (Ray forwards worker log lines into the same output)."""
    return json.loads([line for line in output.splitlines() if line.startswith('{"out"')][-1])


def _raw_row_count(out: Path) -> int:
    import pyarrow.parquet as pq

    from photod.batch import shard_paths

    return sum(pq.read_metadata(shard).num_rows for shard in shard_paths(out))


@pytest.mark.slow
@pytest.mark.parametrize("decode", ["auto", "tasks"])
def test_batch_equals_photod_score_and_bad_files_are_error_rows(
    ray_session, archive: Path, tmp_path: Path, decode: str
) -> None:
    """Both layouts: decoding in the scoring actor (what a one-machine Ray gets by default)
    and in CPU tasks before it (a cluster's)."""
    from photod.batch import BatchOptions, _decode_in_actor, run_batch
    from photod.config import load_settings, scorer_from_settings
    from photod.index import embedding_array
    from photod.scoring import iter_photo_paths

    assert _decode_in_actor(ray_session, BatchOptions(decode=decode)) == (decode == "auto")
    out = tmp_path / "out"
    summary = run_batch([str(archive)], out, _options(decode=decode))
    assert (summary.listed, summary.photos, summary.ok, summary.errors) == (11, 11, 8, 3)
    assert summary.shards >= 3 and all(summary.stage_s[s] > 0 for s in ("decode", "score"))
    rows = _rows(out)
    assert len(rows) == 11 == _raw_row_count(out)

    # `photod score` builds its scorer exactly so (flags > PHOTOD_* > config.toml).
    scorer = scorer_from_settings(load_settings(cli={}))
    expected = {
        Path(r.path).name: r for r in scorer.score_paths(iter_photo_paths([archive], False))
    }
    for name, local in expected.items():
        row = rows[name]
        assert row["status"] == local.status, name
        if local.status != "ok":
            assert row["error_code"] == local.error_code and row["score"] is None
            continue
        assert abs(row["score"] - local.score) < 1e-4, name
        assert row["stars"] == local.stars and row["model"] == local.model
        assert (row["width"], row["height"]) == (local.width, local.height)
        embedding = embedding_array(row["embedding"])
        assert np.allclose(embedding, local.embedding, atol=2e-2)  # float16 storage
    assert {rows[n]["error_code"] for n in ("cut.jpg", "empty.jpg", "fake.png")} == {
        "truncated",
        "empty",
        "not_an_image",
    }
    first = rows["photo_3.jpg"]
    assert (first["camera_make"], first["camera_model"]) == ("Nikon", "Z3")
    assert first["captured_at"] == "2026-11-28T10:00:00"
    assert first["size"] == (archive / "photo_3.jpg").stat().st_size
    assert first["content_hash"] and first["user_rating"] is None


@pytest.mark.slow
def test_rerun_skips_what_is_done_and_redoes_what_changed(
    ray_session, archive: Path, tmp_path: Path
) -> None:
    from photod.batch import run_batch

    folder = _copy(archive, tmp_path)
    out = tmp_path / "out"
    run_batch([str(folder)], out, _options())
    before = _rows(out)

    again = run_batch([str(folder)], out, _options())
    assert (again.listed, again.already_done, again.photos) == (11, 11, 0)

    touched = folder / "photo_1.jpg"  # same bytes, new mtime: the content hash says it is done
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    edited = folder / "photo_2.jpg"  # new content: scored again, and the new row wins
    photos.write_jpeg(edited, photos.real_photo("camera", 0.5))
    third = run_batch([str(folder)], out, _options())
    assert (third.already_done, third.photos, third.ok) == (10, 1, 1)
    after = _rows(out)
    assert len(after) == 11 and _raw_row_count(out) == 12
    assert after["photo_2.jpg"]["content_hash"] != before["photo_2.jpg"]["content_hash"]
    assert after["photo_2.jpg"]["score"] != pytest.approx(before["photo_2.jpg"]["score"])
    assert after["photo_1.jpg"] == before["photo_1.jpg"]

    # Error rows are done too (a truncated file stays truncated) unless asked to retry them.
    retried = run_batch([str(folder)], out, _options(retry_errors=True))
    assert (retried.photos, retried.errors) == (3, 3)


@pytest.mark.slow
def test_write_on_workers_then_index_and_list(ray_session, archive: Path, tmp_path: Path) -> None:
    from photod.cli import cli

    folder = _copy(archive, tmp_path)
    out, db = tmp_path / "out", tmp_path / "index.db"
    runner = CliRunner()
    args = ["batch", str(folder), "--out", str(out), "--write", "--index", str(db), "--json"]
    result = runner.invoke(cli, [*args, "--no-progress", "--shard-size", "4"])
    assert result.exit_code == 1, result.output  # three bad files: exit status 1, job finished
    summary = _summary(result.output)
    assert (summary["ok"], summary["errors"], summary["imported"]["imported"]) == (8, 3, 11)

    rows = _rows(out)
    tags = json.loads(
        subprocess.run(
            [EXIFTOOL, "-json", "-XMP-xmp:Rating", *sorted(map(str, folder.glob("photo_*.jpg")))],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    for tag in tags:
        row = rows[Path(tag["SourceFile"]).name]
        assert tag["Rating"] == row["stars"] and row["written_to"] != "[]"
        # The shard holds the file as photod left it, so a re-run sees nothing to do.
        assert row["mtime_ns"] == Path(tag["SourceFile"]).stat().st_mtime_ns

    rerun = runner.invoke(cli, [*args, "--no-progress"])
    again = _summary(rerun.output)
    assert (again["already_done"], again["photos"], again["imported"]["unchanged"]) == (11, 0, 11)

    listed = runner.invoke(cli, ["list", "--db", str(db), "--json"])
    assert listed.exit_code == 0, listed.output
    indexed = {Path(r["path"]).name: r for r in map(json.loads, listed.output.splitlines())}
    assert set(indexed) == set(rows)
    for name, row in rows.items():
        assert indexed[name]["status"] == row["status"]
        assert indexed[name]["score"] == row["score"]
    assert indexed["cut.jpg"]["error_code"] == "truncated"
    top = runner.invoke(cli, ["top", "3", "--db", str(db)])
    best = sorted((r for r in rows.values() if r["score"] is not None), key=lambda r: -r["score"])
    assert top.output.splitlines()[0].endswith(best[0]["path"])

    # `photod index import` into a second index gives the same rows.
    other = tmp_path / "other.db"
    imported = runner.invoke(cli, ["index", "import", str(out), "--db", str(other), "--json"])
    assert json.loads(imported.output)["imported"] == 11


def test_import_keeps_newer_index_rows_and_reads_newest_shard_row(tmp_path: Path) -> None:
    if not os.environ.get("CI"):  # .ci/run installs the extra: missing is a failure there
        pytest.importorskip("pyarrow", reason="needs the extra: pip install -e '.[ray]'")
    from photod.batch import import_results, read_results, write_shard
    from photod.index import get_by_path, open_index, upsert_photo

    out = tmp_path / "out"
    out.mkdir()

    def row(path: str, score: float, mtime_ns: int) -> dict:
        return {"path": path, "status": "ok", "score": score, "stars": 3, "size": 10,
                "mtime": mtime_ns / 1e9, "mtime_ns": mtime_ns, "content_hash": f"h{score}"}  # fmt: skip

    write_shard(out, [row("/a.jpg", 3.0, 100), row("/b.jpg", 2.0, 100)])
    write_shard(out, [row("/a.jpg", 3.5, 200)])  # re-scored later: the newer row wins
    (out / ".photod-tmp-shard-x.parquet").write_bytes(b"half a shard")  # never read
    assert {r["path"]: r["score"] for r in read_results(out).to_pylist()} == {
        "/a.jpg": 3.5,
        "/b.jpg": 2.0,
    }

    db = open_index(tmp_path / "index.db")
    upsert_photo(db, {"path": "/b.jpg", "status": "ok", "score": 4.0, "mtime_ns": 300})
    assert import_results(db, out) == {
        "imported": 1,
        "unchanged": 0,
        "kept_newer": 1,
        "not_indexed": 0,
    }
    assert get_by_path(db, "/a.jpg")["score"] == 3.5
    assert get_by_path(db, "/b.jpg")["score"] == 4.0  # the index saw a later version of b
    assert import_results(db, out)["unchanged"] == 1


@pytest.mark.slow
def test_serve_and_cull_work_on_an_imported_batch_run(
    ray_session, archive: Path, tmp_path: Path
) -> None:
    """The index a batch run fills is the ordinary one: the web page lists and shows its photos,
    and `photod cull --apply` keeps its rows in step with the stars it writes."""
    from starlette.testclient import TestClient

    from photod.cli import cli
    from photod.index import open_index
    from photod.web import WebConfig, create_app
    from tests import cull_set

    folder = _copy(archive, tmp_path)
    cull_set.build_cull_set(tmp_path / "shoot")
    burst = [shutil.copy2(p, folder) for p in sorted((tmp_path / "shoot").glob("b*.jpg"))]
    out, db_path = tmp_path / "out", tmp_path / "index.db"
    runner = CliRunner()
    args = ["batch", str(folder), "--out", str(out), "--index", str(db_path), "--json"]
    result = runner.invoke(cli, [*args, "--no-progress"])
    assert result.exit_code == 1, result.output  # the three bad files
    rows = _rows(out)

    app = create_app(WebConfig(db_path=db_path, library_roots=[folder]))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        listed = client.get("/api/photos", params={"limit": 50}).json()
        by_name = {p["filename"]: p for p in listed["photos"]}
        assert set(by_name) == set(rows)
        for name, row in rows.items():
            assert by_name[name]["status"] == row["status"]
            assert by_name[name]["score"] == row["score"]
        best = max((r for r in rows.values() if r["score"] is not None), key=lambda r: r["score"])
        top = client.get("/api/photos", params={"status": "ok", "limit": 1}).json()["photos"]
        assert top[0]["path"] == best["path"]
        thumb = client.get("/thumbs", params={"path": best["path"], "size": 320})
        assert thumb.status_code == 200 and thumb.content[:2] == b"\xff\xd8"

    culled = runner.invoke(
        cli,
        ["cull", str(folder), "--apply", "--mark", "stars", "--json", "--device", "cpu"],
        env={"PHOTOD_DB": str(db_path)},
    )
    assert culled.exit_code == 1, culled.output  # the three bad files; the burst is marked
    applied = [
        r for r in map(json.loads, culled.output.splitlines()) if r.get("applied") and "stars" in r
    ]
    assert {Path(r["path"]).name for r in applied} == {Path(p).name for p in burst}
    db = open_index(db_path)
    try:
        for outcome in applied:
            row = db.execute(
                "SELECT stars, mtime_ns FROM photos WHERE path = ?", [outcome["path"]]
            ).fetchone()
            assert row[0] == outcome["stars"]
            assert row[1] == Path(outcome["path"]).stat().st_mtime_ns
    finally:
        db.close()
