"""The photo index: one SQLite file (sqlite-utils), readable by `sqlite-utils` and datasette.

Table `photos` has one row per photo path, keyed by a unique `path`, with the content hash that
lets photod recognise a renamed or moved file without re-scoring it. The index doubles as the
daemon's journal: a row is committed only after the rating was written to the photo, so after a
crash every file without a matching row is simply processed again.

WAL mode lets the CLI and the web page read while the daemon writes. Schema changes go through the
`photod` set of `sqlite_utils.migrations.Migrations`; other features add their own tables with
their own migration sets after calling `open_index`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

from photod.errors import PhotodError

migrations = Migrations("photod")

# Columns a caller may sort by; anything else is refused (the value ends up in SQL).
SORT_COLUMNS = {
    "score",
    "stars",
    "user_rating",
    "captured_at",
    "added_at",
    "scored_at",
    "path",
    "mtime",
    "size",
}
STATUSES = ("ok", "error", "missing")
# Rating-write failures that another try cannot fix (retried only when the file changes); any
# other failed write of a scored photo waits for a retry.
PERMANENT_WRITE_ERRORS = frozenset({"hard_link", "owner"})


class PhotoIndexError(PhotodError):
    """The index cannot be opened or queried (bad path, corrupt file, bad query value)."""

    code = "index"


@migrations()
def m001_photos(db: sqlite_utils.Database) -> None:
    db["photos"].create(
        {
            "id": int,
            "path": str,
            "folder": str,
            "filename": str,
            # content hash (photod.content_hash: SHA-256; blake2b-128 in rows indexed before)
            # of the file bytes as indexed (after photod's own metadata write)
            "content_hash": str,
            # content hash of the file bytes as they arrived, before photod wrote anything
            "original_hash": str,
            "size": int,
            "mtime": float,
            "mtime_ns": int,
            "width": int,
            "height": int,
            "format": str,
            "captured_at": str,
            "capture_subsec": str,
            "camera_make": str,
            "camera_model": str,
            "lens": str,
            "exposure_bias": float,
            "exposure_time": float,
            "f_number": float,
            "iso": int,
            "focal_length": float,
            "score": float,
            "stars": int,
            "user_rating": int,
            "written_to": str,
            "model": str,
            "status": str,
            "error": str,
            "error_code": str,
            "scored_at": str,
            "added_at": str,
            "updated_at": str,
            "embedding": bytes,
        },
        pk="id",
        not_null={"path", "status"},
    )
    photos = db["photos"]
    photos.create_index(["path"], unique=True)
    photos.create_index(["content_hash"])
    photos.create_index(["original_hash"])
    photos.create_index(["status"])
    photos.create_index(["score"])
    photos.create_index(["added_at"])


@migrations()
def m002_daemon(db: sqlite_utils.Database) -> None:
    # One row per daemon run on this index: what `photod status` reports.
    db["daemon_runs"].create(
        {
            "id": int,
            "pid": int,
            "hostname": str,
            "folders": str,
            "started_at": str,
            "heartbeat_at": str,
            "stopped_at": str,
            "processed": int,
            "errors": int,
        },
        pk="id",
    )


@migrations()
def m003_write_error(db: sqlite_utils.Database) -> None:
    # A photo scored but whose rating could not be written stays `ok` (its score is real); why the
    # write failed lives here, so it is reported, never mistaken for a written rating.
    # write_error_code: the failure's code (hard_link and owner are not worth a retry).
    if "write_error" not in db["photos"].columns_dict:
        db["photos"].add_column("write_error", str)
    if "write_error_code" not in db["photos"].columns_dict:
        db["photos"].add_column("write_error_code", str)


@migrations()
def m004_daemon_stop_reason(db: sqlite_utils.Database) -> None:
    # Why a run ended: SIGTERM, SIGINT, done (--once) or stopped; NULL while it runs (or if it
    # was killed).
    db["daemon_runs"].add_column("stop_reason", str)


def now_iso() -> str:
    """UTC now as ISO 8601 with seconds, the format of every timestamp in the index."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def open_index(path: str | os.PathLike[str] | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) the index at `path` (default: index.db in the user data dir).

    WAL journal, a busy timeout so concurrent writers wait instead of failing, and photod's
    migrations applied.
    """
    from photod.paths import default_db_path

    db_path = Path(path) if path is not None else default_db_path()
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(db_path), timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA busy_timeout = 30000")
        db.enable_wal()
        # NORMAL is durable across application crashes in WAL mode (only a power loss can drop
        # the last commits, and then the photo is simply processed again).
        db.execute("PRAGMA synchronous = NORMAL")
        migrations.apply(db)
    except (sqlite3.DatabaseError, OSError) as exc:
        raise PhotoIndexError(f"cannot open index: {exc}", str(db_path)) from exc
    return db


def open_index_readonly(path: str | os.PathLike[str] | None = None) -> sqlite_utils.Database:
    """Open an existing index for queries without creating or migrating anything."""
    from photod.paths import default_db_path

    db_path = Path(path) if path is not None else default_db_path()
    if not db_path.exists():
        raise PhotoIndexError(
            "no index here yet (run `photod watch` first, or pass --db)", str(db_path)
        )
    try:
        conn = sqlite3.connect(str(db_path), timeout=30, check_same_thread=False)
        db = sqlite_utils.Database(conn)
        db.execute("PRAGMA busy_timeout = 30000")
        if not db["photos"].exists():
            raise PhotoIndexError("not a photod index (no photos table)", str(db_path))
    except sqlite3.DatabaseError as exc:
        raise PhotoIndexError(f"cannot open index: {exc}", str(db_path)) from exc
    return db


def parse_since(value: str | dt.date | dt.datetime) -> str:
    """A date/datetime (or ISO string, or `today`/`yesterday`/`7d`) as a UTC ISO string."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), dt.UTC).isoformat(timespec="seconds")
    text = value.strip().lower()
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if text == "today":
        return today.isoformat(timespec="seconds")
    if text == "yesterday":
        return (today - dt.timedelta(days=1)).isoformat(timespec="seconds")
    if text[:-1].isdigit() and text[-1:] in ("d", "h"):
        delta = dt.timedelta(**{"days" if text[-1] == "d" else "hours": int(text[:-1])})
        return (dt.datetime.now(dt.UTC) - delta).isoformat(timespec="seconds")
    try:
        return parse_since(dt.datetime.fromisoformat(value.strip()))
    except ValueError as exc:
        raise PhotoIndexError(
            f"cannot read date {value!r} (use YYYY-MM-DD, an ISO time, today, yesterday or 7d)"
        ) from exc


def query_photos(
    db: sqlite_utils.Database,
    min_stars: int | None = None,
    status: str | None = None,
    since: str | dt.date | dt.datetime | None = None,
    camera: str | None = None,
    sort: str = "score",
    descending: bool = True,
    limit: int | None = None,
    folder: str | os.PathLike[str] | None = None,
    include_embedding: bool = False,
    suggested: bool = False,
) -> list[dict[str, Any]]:
    """Rows of `photos` as dicts, filtered and sorted.

    `min_stars` counts the user's own rating when there is one, else photod's; `status` is ok,
    error or missing (default: all); `since` keeps photos first indexed at or after that moment;
    `camera` matches make or model (case-insensitive substring); `folder` keeps photos under that
    folder; rows with no value in the sort column come last. The `embedding` blob is included only
    on request (`include_embedding=True`; decode with `embedding_array`). `suggested` keeps only
    photos with a worthwhile stored suggestion (`photod suggest`/`watch --suggest`);
    `photod.suggest_store.attach_suggestions(db, rows)` adds each one's gain, score and edit.
    """
    if sort not in SORT_COLUMNS:
        raise PhotoIndexError(
            f"cannot sort by {sort!r} (use one of {', '.join(sorted(SORT_COLUMNS))})"
        )
    if status is not None and status not in STATUSES:
        raise PhotoIndexError(f"unknown status {status!r} (use one of {', '.join(STATUSES)})")
    where: list[str] = []
    params: list[Any] = []
    if min_stars is not None:
        where.append("coalesce(user_rating, stars) >= ?")
        params.append(min_stars)
    if status is not None:
        where.append("status = ?")
        params.append(status)
    if since is not None:
        where.append("added_at >= ?")
        params.append(parse_since(since))
    if camera:
        where.append("(camera_make LIKE ? OR camera_model LIKE ? OR "
                     "(camera_make || ' ' || camera_model) LIKE ?)")  # fmt: skip
        params.extend([f"%{camera}%"] * 3)
    if folder is not None:
        prefix = os.path.abspath(folder).rstrip(os.sep) + os.sep
        where.append("substr(path, 1, ?) = ?")
        params.extend([len(prefix), prefix])
    if suggested:
        if not db["suggestions"].exists():
            return []
        where.append("path IN (SELECT path FROM suggestions WHERE suggested = 1)")
    # Every column (other features add some, e.g. group_id) except the blob unless asked for.
    names = [c for c in db["photos"].columns_dict if include_embedding or c != "embedding"]
    columns = ", ".join(f'"{name}"' for name in names)
    sql = f"SELECT {columns} FROM photos"
    if where:
        sql += " WHERE " + " AND ".join(where)
    direction = "DESC" if descending else "ASC"
    sql += f" ORDER BY {sort} IS NULL, {sort} {direction}, path"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    try:
        rows = list(db.query(sql, params))
    except sqlite3.DatabaseError as exc:
        raise PhotoIndexError(f"query failed: {exc}") from exc
    return rows


def embedding_array(blob: bytes | None) -> Any:
    """The 1280-d embedding stored as float16 bytes, as a float32 numpy array (or None)."""
    if blob is None:
        return None
    import numpy as np

    return np.frombuffer(blob, dtype=np.float16).astype(np.float32)


def embedding_blob(embedding: Any) -> bytes | None:
    """float16 bytes of an embedding vector: half the space, plenty for cosine similarity."""
    if embedding is None:
        return None
    import numpy as np

    return np.asarray(embedding, dtype=np.float16).tobytes()


def get_by_path(db: sqlite_utils.Database, path: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM photos WHERE path = ?", [path]))
    return rows[0] if rows else None


def find_by_hash(db: sqlite_utils.Database, content_hash: str) -> list[dict[str, Any]]:
    """Rows whose file had this content, as indexed or as it arrived; scored ones first."""
    return list(
        db.query(
            "SELECT * FROM photos WHERE (content_hash = :h OR original_hash = :h) "
            "ORDER BY status = 'ok' DESC, status = 'missing' DESC, id",
            {"h": content_hash},
        )
    )


@contextlib.contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[sqlite_utils.Database]:
    """A transaction that takes the write lock at its start (`BEGIN IMMEDIATE`).

    A deferred transaction that reads first and then writes cannot wait for another writer: in WAL
    mode SQLite fails it at once with "database is locked" (its read snapshot went stale), busy
    timeout or not. Taking the lock up front makes it wait its turn instead. Nested inside an open
    transaction it is a savepoint of that one.
    """
    if db.conn.in_transaction:
        with db.atomic():
            yield db
        return
    db.conn.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        raise
    else:
        try:
            db.conn.execute("COMMIT")
        except BaseException:
            if db.conn.in_transaction:
                db.conn.execute("ROLLBACK")
            raise


def upsert_photo(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    """Insert or update the row for `row['path']` (one transaction, committed on return)."""
    row = dict(row)
    row.setdefault("updated_at", now_iso())
    path = row["path"]
    row.setdefault("folder", os.path.dirname(path))
    row.setdefault("filename", os.path.basename(path))
    with write_transaction(db):
        existing = list(db.query("SELECT id, added_at FROM photos WHERE path = ?", [path]))
        if existing:
            row.pop("added_at", None)
            db["photos"].update(existing[0]["id"], row)
        else:
            row.setdefault("added_at", row["updated_at"])
            db["photos"].insert(row)


def move_photo(db: sqlite_utils.Database, row_id: int, new_path: str, updates: dict) -> None:
    """Point an existing row at the file's new path (a rename or move); one transaction."""
    with write_transaction(db):
        # A stale row at the destination (an older file that was replaced) gives way.
        db.execute("DELETE FROM photos WHERE path = ? AND id != ?", [new_path, row_id])
        values = {
            "path": new_path,
            "folder": os.path.dirname(new_path),
            "filename": os.path.basename(new_path),
            "updated_at": now_iso(),
            **updates,
        }
        db["photos"].update(row_id, values)


def mark_missing(db: sqlite_utils.Database, paths: Iterable[str]) -> int:
    """Mark the rows of these paths `missing` (their files are gone); returns how many changed."""
    changed = 0
    stamp = now_iso()
    with write_transaction(db):
        for path in paths:
            cursor = db.execute(
                "UPDATE photos SET status = 'missing', updated_at = ? "
                "WHERE path = ? AND status != 'missing'",
                [stamp, path],
            )
            changed += cursor.rowcount
    return changed


def mark_missing_under(db: sqlite_utils.Database, folder: str) -> int:
    """Mark every indexed photo under `folder` whose file no longer exists as `missing`."""
    prefix = os.path.abspath(folder).rstrip(os.sep) + os.sep
    rows = db.query(
        "SELECT path FROM photos WHERE status != 'missing' AND substr(path, 1, ?) = ?",
        [len(prefix), prefix],
    )
    gone = [row["path"] for row in rows if not os.path.lexists(row["path"])]
    return mark_missing(db, gone) if gone else 0


def counts(db: sqlite_utils.Database) -> dict[str, Any]:
    """Totals for `photod status`: rows per status, per star rating, photos whose rating write
    failed and waits for a retry (`write_pending`), last activity."""
    by_status = {s: 0 for s in STATUSES}
    for row in db.query("SELECT status, count(*) AS n FROM photos GROUP BY status"):
        by_status[row["status"]] = row["n"]
    by_stars = {
        str(row["stars"]): row["n"]
        for row in db.query(
            "SELECT stars, count(*) AS n FROM photos WHERE status = 'ok' "
            "GROUP BY stars ORDER BY stars"
        )
    }
    last = next(db.query("SELECT max(updated_at) AS last, max(scored_at) AS scored FROM photos"))
    marks = ",".join("?" * len(PERMANENT_WRITE_ERRORS))
    # An ok row with a write_error (since m003), or an older error row that kept its score.
    write_pending = db.execute(
        "SELECT count(*) FROM photos WHERE score IS NOT NULL AND ("
        f"(status = 'ok' AND write_error IS NOT NULL AND coalesce(write_error_code, '') NOT IN ({marks}))"
        f" OR (status = 'error' AND coalesce(error_code, '') NOT IN ({marks})))",
        sorted(PERMANENT_WRITE_ERRORS) * 2,
    ).fetchone()[0]
    return {
        "total": sum(by_status.values()),
        "by_status": by_status,
        "by_stars": by_stars,
        "write_pending": write_pending,
        "last_activity": last["last"],
        "last_scored": last["scored"],
    }
