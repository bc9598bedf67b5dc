"""The SQLite index: schema via migrations, WAL, queries, and readability by the sqlite-utils CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlite_utils.migrations import Migrations

from photod.index import (
    PhotoIndexError,
    counts,
    embedding_array,
    embedding_blob,
    find_by_hash,
    mark_missing_under,
    migrations,
    move_photo,
    open_index,
    open_index_readonly,
    query_photos,
    upsert_photo,
)

SQLITE_UTILS = str(Path(sys.executable).with_name("sqlite-utils"))


def _fill(db) -> None:
    rows = [
        ("/p/a.jpg", 3.9, 5, None, "Canon", "EOS R5", "2026-11-01T10:00:00+00:00", "ok"),
        ("/p/b.jpg", 3.1, 3, 5, "NIKON CORPORATION", "Z 6", "2026-11-20T10:00:00+00:00", "ok"),
        ("/p/sub/c.jpg", 2.5, 1, None, "Canon", "EOS R6", "2026-11-25T10:00:00+00:00", "ok"),
        ("/p/d.jpg", None, None, None, None, None, "2026-11-26T10:00:00+00:00", "error"),
        ("/q/e.jpg", 3.5, 4, None, "FUJIFILM", "X-T5", "2026-11-27T10:00:00+00:00", "missing"),
    ]
    for path, score, stars, user, make, model, added, status in rows:
        upsert_photo(
            db,
            {
                "path": path,
                "score": score,
                "stars": stars,
                "user_rating": user,
                "camera_make": make,
                "camera_model": model,
                "added_at": added,
                "status": status,
                "content_hash": "h-" + Path(path).stem,
            },
        )


def test_open_index_creates_schema_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "index.db"
    db = open_index(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    columns = set(db["photos"].columns_dict)
    required = {"path", "content_hash", "size", "mtime", "width", "height", "format",
                "captured_at", "camera_make", "camera_model", "lens", "score", "stars",
                "user_rating", "model", "status", "error", "scored_at", "embedding",
                "capture_subsec", "exposure_bias", "exposure_time"}  # fmt: skip
    assert required <= columns
    assert any(index.unique and index.columns == ["path"] for index in db["photos"].indexes)
    applied = [m.name for m in migrations.applied(db)]
    db.close()
    # Opening again applies nothing twice.
    again = open_index(path)
    assert [m.name for m in migrations.applied(again)] == applied
    assert again.execute("SELECT count(*) FROM _sqlite_migrations").fetchone()[0] == len(applied)


def test_path_is_unique(tmp_path: Path) -> None:
    db = open_index(tmp_path / "i.db")
    upsert_photo(db, {"path": "/p/a.jpg", "status": "ok", "score": 1.0})
    upsert_photo(db, {"path": "/p/a.jpg", "status": "ok", "score": 2.0})
    assert db["photos"].count == 1
    with pytest.raises(sqlite3.IntegrityError):
        db["photos"].insert({"path": "/p/a.jpg", "status": "ok"})


def test_other_features_add_their_own_migration_sets(tmp_path: Path) -> None:
    db = open_index(tmp_path / "i.db")
    theirs = Migrations("culling")

    @theirs()
    def m001_groups(db) -> None:
        db["groups"].create({"id": int, "photo_id": int}, pk="id", foreign_keys=[])

    theirs.apply(db)
    db.close()
    db = open_index(tmp_path / "i.db")
    assert db["groups"].exists() and db["photos"].exists()
    sets = {row["migration_set"] for row in db.query("SELECT * FROM _sqlite_migrations")}
    assert sets == {"photod", "culling"}


def test_query_filters_and_sorting(tmp_path: Path) -> None:
    db = open_index(tmp_path / "i.db")
    _fill(db)
    best = [r["path"] for r in query_photos(db)]
    # Sorted by score, best first; rows without a score come last.
    assert best == ["/p/a.jpg", "/q/e.jpg", "/p/b.jpg", "/p/sub/c.jpg", "/p/d.jpg"]
    # The user's own rating counts over photod's.
    assert [r["path"] for r in query_photos(db, min_stars=4)] == [
        "/p/a.jpg", "/q/e.jpg", "/p/b.jpg"
    ]  # fmt: skip
    assert [r["path"] for r in query_photos(db, status="error")] == ["/p/d.jpg"]
    since = [r["path"] for r in query_photos(db, since="2026-11-25", sort="path", descending=False)]
    assert since == ["/p/d.jpg", "/p/sub/c.jpg", "/q/e.jpg"]
    assert {r["path"] for r in query_photos(db, camera="canon")} == {"/p/a.jpg", "/p/sub/c.jpg"}
    assert {r["path"] for r in query_photos(db, camera="nikon corporation z")} == {"/p/b.jpg"}
    assert [r["path"] for r in query_photos(db, sort="score", descending=False, limit=2)] == [
        "/p/sub/c.jpg", "/p/b.jpg"
    ]  # fmt: skip
    assert {r["path"] for r in query_photos(db, folder="/p/sub")} == {"/p/sub/c.jpg"}
    assert "embedding" not in query_photos(db, limit=1)[0]
    with pytest.raises(PhotoIndexError, match="cannot sort"):
        query_photos(db, sort="score; DROP TABLE photos")
    with pytest.raises(PhotoIndexError, match="unknown status"):
        query_photos(db, status="gone")
    with pytest.raises(PhotoIndexError, match="cannot read date"):
        query_photos(db, since="last tuesday")


def test_embedding_round_trip(tmp_path: Path) -> None:
    db = open_index(tmp_path / "i.db")
    vector = np.random.default_rng(0).normal(size=1280).astype(np.float32)
    upsert_photo(db, {"path": "/p/a.jpg", "status": "ok", "embedding": embedding_blob(vector)})
    row = query_photos(db, include_embedding=True)[0]
    assert len(row["embedding"]) == 1280 * 2  # float16
    restored = embedding_array(row["embedding"])
    assert restored.shape == (1280,)
    np.testing.assert_allclose(restored, vector, rtol=1e-3, atol=1e-3)


def test_hash_lookup_move_and_missing(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "kept.jpg").write_bytes(b"x")
    db = open_index(tmp_path / "i.db")
    for name in ("kept.jpg", "gone.jpg", "old.jpg"):
        path = str(folder / name)
        upsert_photo(db, {"path": path, "status": "ok", "content_hash": "h-" + name})
    upsert_photo(db, {"path": str(folder / "new.jpg"), "status": "error", "original_hash": "zz"})
    old = find_by_hash(db, "h-old.jpg")[0]
    move_photo(db, old["id"], str(folder / "new.jpg"), {"size": 5})
    moved = find_by_hash(db, "h-old.jpg")
    assert [(r["path"], r["size"], r["id"]) for r in moved] == [
        (str(folder / "new.jpg"), 5, old["id"])
    ]
    assert db["photos"].count == 3  # the stale row at the destination gave way
    # Only rows whose files are gone become missing; "new.jpg" does not exist either.
    assert mark_missing_under(db, str(folder)) == 2
    assert counts(db)["by_status"] == {"ok": 1, "error": 0, "missing": 2}
    assert mark_missing_under(db, str(folder)) == 0


def test_reader_is_not_blocked_by_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    writer = open_index(path)
    _fill(writer)
    writer.conn.execute("BEGIN IMMEDIATE")
    writer.conn.execute("UPDATE photos SET score = 0")
    reader = sqlite3.connect(str(path), timeout=0.5)
    # WAL: the reader sees the last committed state at once, without waiting for the writer.
    assert reader.execute("SELECT count(*) FROM photos WHERE score > 0").fetchone()[0] == 4
    writer.conn.execute("COMMIT")
    assert reader.execute("SELECT count(*) FROM photos WHERE score > 0").fetchone()[0] == 0


def test_readonly_open_refuses_missing_or_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(PhotoIndexError, match="no index here"):
        open_index_readonly(tmp_path / "none.db")
    sqlite3.connect(str(tmp_path / "other.db")).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(PhotoIndexError, match="not a photod index"):
        open_index_readonly(tmp_path / "other.db")
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(PhotoIndexError, match="cannot open index"):
        open_index(tmp_path / "junk.db")


def test_index_is_readable_by_the_sqlite_utils_cli(tmp_path: Path) -> None:
    path = tmp_path / "i.db"
    db = open_index(path)
    _fill(db)
    db.close()
    out = subprocess.run(
        [
            SQLITE_UTILS,
            "query",
            str(path),
            "select path, stars from photos where status = 'ok' order by score desc limit 1",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert json.loads(out) == [{"path": "/p/a.jpg", "stars": 5}]
    tables = subprocess.run(
        [SQLITE_UTILS, "tables", str(path), "--counts"], capture_output=True, text=True, check=True
    ).stdout
    assert {"table": "photos", "count": 5} in json.loads(tables)


def test_list_top_and_status_commands(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from photod.cli import cli

    path = tmp_path / "i.db"
    db = open_index(path)
    _fill(db)
    db.close()
    runner = CliRunner()
    listed = runner.invoke(cli, ["list", "--db", str(path), "--min-stars", "4", "--json"])
    assert listed.exit_code == 0, listed.output
    assert [json.loads(line)["path"] for line in listed.output.splitlines()] == [
        "/p/a.jpg", "/q/e.jpg", "/p/b.jpg"
    ]  # fmt: skip
    errors = runner.invoke(cli, ["list", "--db", str(path), "--status", "error"])
    assert errors.output.split() == ["error", "/p/d.jpg"]
    db = open_index(path)
    db.execute("update photos set error = '/p/d.jpg: truncated JPEG' where path = '/p/d.jpg'")
    db.conn.commit()
    db.close()
    errors = runner.invoke(cli, ["list", "--db", str(path), "--status", "error"])
    assert errors.output.split() == ["error", "/p/d.jpg:", "truncated", "JPEG"]  # path once
    text = runner.invoke(cli, ["list", "--db", str(path), "--sort", "score", "--limit", "2"])
    # A photo that is gone shows its status instead of a score.
    assert text.output.splitlines() == [" 3.900  ★★★★★   /p/a.jpg", "missing          /q/e.jpg"]
    top = runner.invoke(cli, ["top", "2", "--db", str(path), "--json"])
    # top skips photos that are gone (e.jpg is missing) and shows your own rating (b.jpg: 5).
    assert [json.loads(line)["path"] for line in top.output.splitlines()] == [
        "/p/a.jpg", "/p/b.jpg"
    ]  # fmt: skip
    assert "★★★★★*" in runner.invoke(cli, ["top", "2", "--db", str(path)]).output
    status = runner.invoke(cli, ["status", "--db", str(path), "--json"])
    report = json.loads(status.output)
    assert report["total"] == 5
    assert report["by_status"] == {"ok": 3, "error": 1, "missing": 1}
    assert report["daemon"]["running"] is False
    assert "not running" in runner.invoke(cli, ["status", "--db", str(path)]).output
    bad = runner.invoke(cli, ["list", "--db", str(tmp_path / "nothing.db")])
    assert bad.exit_code == 1 and "no index here" in bad.output


def test_datasette_reads_the_index_while_it_is_open_for_writing(tmp_path: Path) -> None:
    """datasette (a real instance, through its own HTTP client) browses a live WAL index."""
    import asyncio

    from datasette.app import Datasette

    path = tmp_path / "index.db"
    db = open_index(path)
    _fill(db)  # the writer keeps its connection open, as the daemon does

    async def fetch() -> list[dict]:
        datasette = Datasette([str(path)])
        response = await datasette.client.get(
            "/index/photos.json?_shape=array&status=ok&_sort_desc=score"
        )
        assert response.status_code == 200, response.text
        return response.json()

    rows = asyncio.run(fetch())
    assert [row["path"] for row in rows] == ["/p/a.jpg", "/p/b.jpg", "/p/sub/c.jpg"]
    assert rows[0]["stars"] == 5 and rows[0]["camera_make"] == "Canon"
    db.close()
