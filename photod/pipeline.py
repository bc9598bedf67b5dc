"""Score, rate and index photos: the one pipeline the CLI, the daemon and the web page share.

For each path `process_paths` decides what work is needed, cheapest check first:

1. the index row matches the file's size and mtime: nothing to do (`unchanged`);
2. the file's content hash (SHA-256, `photod.content_hash`) is already indexed: a renamed or
   moved file takes over its old row (`moved`), a copy gets a new row with the known score
   (`copied`); neither is scored;
3. otherwise the file is decoded and scored in batches (`Scorer.score_paths`), the rating is
   written into the photo or its sidecar (`photod.metadata`), and only then is the row committed.

Committing last makes the index the journal: after a crash at any moment a file has either its
finished row or none, and one without a row is simply processed again (the metadata writer is
atomic and idempotent). One bad file yields an `error` row and never stops the others; a photo
scored whose rating could not be written keeps an `ok` row with the reason in `write_error`.
A photo that changes while it is scored (checked before its rating is written and again before
its row is committed) is looked at again from the start.

It is one stream, so that no core waits: paths are triaged as the decode threads ask for more
work; each decode thread reads a file once, hashes those bytes (step 2 is then answered from a
read-only connection to the index, so a moved file is not decoded) and decodes them; the model
runs on batches; rating writes (copy, fsync, rename) run in a small writer pool while the next
batches decode and score; the main thread commits each row once its write is done, in order.
"""

from __future__ import annotations

import json
import logging
import math
import os
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from photod.content_hash import file_hash
from photod.errors import (
    FileUnreadableError,
    FileVanishedError,
    MetadataError,
    PhotodError,
)
from photod.index import (
    PERMANENT_WRITE_ERRORS,
    embedding_blob,
    find_by_hash,
    get_by_path,
    mark_missing,
    move_photo,
    now_iso,
    upsert_photo,
)

if TYPE_CHECKING:
    import sqlite_utils

    from photod.scoring import Scorer, ScoreResult

log = logging.getLogger("photod")

# A photo that changes under the scorer this many times in a row is left for its next event.
MAX_CHANGED_ROUNDS = 3
# Columns copied from a known row when the same content turns up under another name.
_CARRIED_COLUMNS = (
    "width", "height", "format", "captured_at", "capture_subsec", "camera_make", "camera_model",
    "lens", "exposure_bias", "exposure_time", "f_number", "iso", "focal_length", "score", "stars",
    "model", "scored_at", "embedding",
)  # fmt: skip


@dataclass
class ProcessedPhoto:
    """What happened to one path; `to_dict` is the `--json` shape.

    `action`: scored, moved, copied, retried (a failed rating write done now), unchanged,
    missing, error or skipped.
    """

    path: str
    action: str
    status: str | None = None
    score: float | None = None
    stars: int | None = None
    user_rating: int | None = None
    model: str | None = None
    error: str | None = None
    error_code: str | None = None
    written: list[str] = field(default_factory=list)
    write_skipped: str | None = None
    write_error: str | None = None  # scored, but the rating could not be written
    write_error_code: str | None = None  # that failure's code (hard_link, owner: not retried)
    moved_from: str | None = None
    suggestion: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "action": self.action,
            "status": self.status,
            "score": None if self.score is None else round(self.score, 4),
            "stars": self.stars,
            "user_rating": self.user_rating,
            "model": self.model,
            "error": self.error,
            "error_code": self.error_code,
            "written": self.written,
            "write_skipped": self.write_skipped,
            "write_error": self.write_error,
            "write_error_code": self.write_error_code,
            "write_status": self.write_status,
            "moved_from": self.moved_from,
        }

    @property
    def write_status(self) -> str | None:
        """'written', 'skipped' (a reason in write_skipped), 'failed' (write_error), or None when
        no write was attempted (write mode none, unchanged, errors)."""
        if self.write_error:
            return "failed"
        if self.written:
            return "written"
        return "skipped" if self.write_skipped else None


def _exif_columns(exif: dict[str, Any]) -> dict[str, Any]:
    """Index columns from the decoder's EXIF summary (capture time as ISO 8601)."""
    captured = exif.get("datetime_original")
    if isinstance(captured, str) and len(captured) >= 19:
        # EXIF writes "YYYY:MM:DD HH:MM:SS"; keep it local time, as the camera recorded it.
        captured = captured[:10].replace(":", "-") + "T" + captured[11:19]
    else:
        captured = None
    subsec = exif.get("subsec_original")

    def number(key: str) -> float | None:
        value = exif.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        return float(value)

    iso = exif.get("iso")
    return {
        "captured_at": captured,
        "capture_subsec": None if subsec is None else str(subsec),
        "camera_make": exif.get("make"),
        "camera_model": exif.get("model"),
        "lens": exif.get("lens"),
        "exposure_bias": number("exposure_bias"),
        "exposure_time": number("exposure_time"),
        "f_number": number("f_number"),
        "iso": int(iso) if isinstance(iso, (int, float)) else None,
        "focal_length": number("focal_length"),
    }


def scored_columns(result: ScoreResult, scored_at: str) -> dict[str, Any]:
    """Index columns of a scored photo (size, EXIF summary, score, embedding blob); the local
    pipeline and the Ray batch job (`photod.batch`) record the same ones."""
    return {
        "width": result.width,
        "height": result.height,
        "format": result.format,
        **_exif_columns(result.exif),
        "score": result.score,
        "stars": result.stars,
        "model": result.model,
        "scored_at": scored_at,
        "embedding": embedding_blob(result.embedding),
    }


def write_rating_columns(
    path: str,
    score: float,
    stars: int,
    model: str,
    scored_at: str,
    original_hash: str,
    write_mode: str = "none",
    force: bool = False,
) -> dict[str, Any]:
    """Write the rating as `process_paths` does (mode `none`: only read the user's rating) and
    return the index columns that follow: user_rating, written_to, and the file's stat and hash
    as photod leaves it. Raises PhotodError when the rating cannot be written."""
    metadata = _Metadata(write_mode, force)
    outcome, columns = _write_rating(path, score, stars, model, scored_at, metadata)
    return {**columns, **_after_write_columns(path, original_hash, outcome)}


def _file_columns(path: str, st: os.stat_result) -> dict[str, Any]:
    return {"size": st.st_size, "mtime": st.st_mtime, "mtime_ns": st.st_mtime_ns}


class _Metadata:
    """The metadata writer, imported on first use so that mode `none` works without it."""

    def __init__(self, write_mode: str, force: bool) -> None:
        self.write_mode = write_mode
        self.force = force
        self._module: Any = None
        self._unavailable = False
        if write_mode != "none":
            self._load()

    def _load(self) -> None:
        try:
            import photod.metadata as module
        except ImportError as exc:
            raise PhotodError(
                f"cannot write ratings: photod.metadata is unavailable ({exc}); "
                "use write mode 'none' to only score and index"
            ) from exc
        self._module = module

    def read_user_rating(self, path: str) -> int | None:
        if self._module is None:
            if self._unavailable:
                return None
            try:
                self._load()
            except PhotodError:
                self._unavailable = True  # mode none: reading the user's rating is a bonus
                return None
        try:
            return self._module.read_user_rating(path)
        except PhotodError as exc:
            log.debug("%s: cannot read user rating: %s", path, exc)
            return None

    def already_rated(self, path: str, stars: int) -> bool:
        """True when photod's rating for `stars` is already in the photo or its sidecar (a moved
        or copied file carries it along), so there is nothing to write."""
        if self._module is None:
            return False
        try:
            fields = self._module.read_photod_fields(path)
        except PhotodError:
            return False
        return fields.get("source") is not None and fields.get("stars") == stars == fields.get(
            "rating"
        )

    def write(self, path: str, score: float, stars: int, model: str, scored_at: str) -> Any:
        info = self._module.RatingInfo(score=score, stars=stars, model=model, scored_at=scored_at)
        return self._module.write_rating(path, info, mode=self.write_mode, force=self.force)


def _suggest_modules() -> tuple[Any, Any]:
    try:
        import photod.suggest as suggest
        import photod.suggest_store as suggest_store
    except ImportError as exc:
        raise PhotodError(
            f"suggestions requested but not available in this install ({exc}); "
            "run without --suggest"
        ) from exc
    return suggest, suggest_store


def process_paths(
    paths: Iterable[str | os.PathLike[str]],
    scorer: Scorer,
    db: sqlite_utils.Database,
    write_mode: str = "auto",
    force: bool = False,
    suggest: bool = False,
    chunk_size: int | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> Iterator[ProcessedPhoto]:
    """Score, rate and index `paths`; yields one `ProcessedPhoto` per path (skips included).

    `paths` is read lazily, a little ahead of the decode threads, and at most `chunk_size`
    photos (default: 4 model batches) are between decoding and their index commit, so memory
    stays bounded whatever the number of paths. Raises only for setup problems (metadata writer
    or suggestion modules missing); every per-file problem becomes an `error` result.
    `should_stop` is asked between photos: once it says True no further photo is started (those
    left have no new row, so the next run does them; rating writes already under way are
    finished and committed), and the generator ends.
    """
    stop = should_stop or (lambda: False)
    metadata = _Metadata(write_mode, force)
    suggesters = _suggest_modules() if suggest else None
    in_flight = chunk_size or max(4 * scorer.batch_size, 32)
    unique = dict.fromkeys(os.path.abspath(os.fspath(p)) for p in paths)  # each path once
    with ThreadPoolExecutor(_writer_threads(), thread_name_prefix="photod-write") as writers:
        yield from _process_stream(
            iter(unique),
            scorer,
            db,
            metadata,
            suggesters,
            writers,
            in_flight,
            stop,
            known_check=True,
            changes={},
        )


def _writer_threads() -> int:
    """Rating writes mostly wait for the disk (fsync); two overlap those waits on any machine."""
    from photod.scoring import available_cpus

    return max(2, min(4, available_cpus()))


@dataclass
class _Queued:
    """A path triage sent to the model: its stat and index row as triage saw them."""

    st: os.stat_result
    row: dict[str, Any] | None


@dataclass
class _Written:
    """The file side of a scored photo (done in a writer thread): rating columns or an error."""

    scored_at: str
    outcome: Any = None
    columns: dict[str, Any] | None = None
    error: PhotodError | None = None
    # The photo changed after triage took its stat, before the write: nothing was written.
    changed: bool = False
    # The photo's stat right after photod wrote into it (None: the photo itself was not written).
    after: os.stat_result | None = None


def _process_stream(
    paths: Iterator[str],
    scorer: Scorer,
    db: sqlite_utils.Database,
    metadata: _Metadata,
    suggesters: tuple[Any, Any] | None,
    writers: ThreadPoolExecutor,
    in_flight: int,
    stop: Callable[[], bool],
    known_check: bool,
    changes: dict[str, int],
) -> Iterator[ProcessedPhoto]:
    """`process_paths` on `paths`; `changes` counts, across the rounds of one call, how often
    each photo changed while it was scored (it is skipped after MAX_CHANGED_ROUNDS)."""
    to_score: dict[str, _Queued] = {}
    settled: deque[ProcessedPhoto] = deque()  # triage outcomes, yielded as the stream goes

    gone: list[str] = []  # settled last: a file renamed in this stream takes over their rows

    def feed() -> Iterator[str]:
        for path in paths:
            if stop():  # no further photo is started
                return
            if not os.path.lexists(path):
                gone.append(path)
                continue
            try:
                outcome = _triage(path, db, scorer, metadata, to_score)
            except Exception as exc:  # one file's problem, whatever it is
                outcome = _unexpected(path, exc)
            if outcome is None:
                yield path
            else:
                settled.append(outcome)

    known = _KnownContent(db) if known_check else None
    pending: deque[tuple[ScoreResult, _Queued, Future[_Written] | None]] = deque()
    retry: list[str] = []  # known content that, looked at closely, must be scored after all
    changed: list[str] = []  # replaced or rewritten while scored: looked at again from the start

    def finish(
        entry: tuple[ScoreResult, _Queued, Future[_Written] | None],
    ) -> ProcessedPhoto | None:
        result, queued, job = entry
        try:
            written = job.result() if job is not None else None
            outcome = _commit_scored(result, queued.st, result.content_hash, db, written)
            if outcome is None:
                changed.append(result.path)
                return None
            if suggesters and outcome.status == "ok" and not stop():
                _suggest(outcome, scorer, db, suggesters)
        except Exception as exc:
            outcome = _unexpected(result.path, exc)
        return outcome

    def finished(
        entry: tuple[ScoreResult, _Queued, Future[_Written] | None],
    ) -> Iterator[ProcessedPhoto]:
        outcome = finish(entry)
        if outcome is not None:
            yield outcome

    stopped = False
    try:
        skip = known.seen if known is not None else None
        results = scorer.score_paths(feed(), content_hash=True, skip=skip)
        for result in results:
            while settled:
                yield settled.popleft()
            if stop():
                stopped = True
                results.close()  # cancels the decodes queued ahead
                break
            queued = to_score.pop(result.path)
            try:
                if result.content_hash is not None:
                    # Answered here, on the index itself: a copy or move of a photo scored
                    # meanwhile (or one the decode thread's look-up flagged) is not re-scored.
                    outcome = _triage_hashed(result.path, queued, result.content_hash, db, metadata)
                    if outcome is not None:
                        yield outcome
                        continue
                if result.status == "skipped":
                    retry.append(result.path)
                    continue
                job = None
                if result.status == "ok":
                    job = writers.submit(_write_scored, result, queued.st, metadata)
            except Exception as exc:
                yield _unexpected(result.path, exc)
                continue
            pending.append((result, queued, job))
            while pending and (pending[0][2] is None or pending[0][2].done()):
                yield from finished(pending.popleft())
            while len(pending) > in_flight:
                yield from finished(pending.popleft())
        if stopped:
            # Writes not started yet are dropped (no row: the next run does those photos);
            # those under way or done are finished and committed.
            for _, _, job in pending:
                if job is not None:
                    job.cancel()
            pending = deque(e for e in pending if e[2] is None or not e[2].cancelled())
        while pending:
            yield from finished(pending.popleft())
        if not stopped:
            for path in gone:
                try:
                    outcome = _triage(path, db, scorer, metadata, to_score)
                except Exception as exc:
                    outcome = _unexpected(path, exc)
                if outcome is not None:
                    settled.append(outcome)
                else:  # it came back meanwhile
                    retry.append(path)
        while settled:
            yield settled.popleft()
    finally:
        for _, _, job in pending:
            if job is not None:
                job.cancel()
        if known is not None:
            known.close()
    if stopped or stop():
        return
    for path in changed:
        # Its score belongs to bytes that are no longer there: look at it again from the start.
        changes[path] = changes.get(path, 0) + 1
        if changes[path] >= MAX_CHANGED_ROUNDS:
            log.warning("skipped %s: it kept changing while it was scored", path)
            yield ProcessedPhoto(path, "skipped", error="kept changing", error_code="changing")
            continue
        log.info("%s changed while it was scored: looking at it again", path)
        retry.append(path)
    if retry:
        yield from _process_stream(
            iter(retry),
            scorer,
            db,
            metadata,
            suggesters,
            writers,
            in_flight,
            stop,
            known_check=False,
            changes=changes,
        )


class _KnownContent:
    """Asked by the decode threads, right after they hash a file: could the index settle this
    content without the model (unchanged, moved or copied)? Then the file is not decoded.

    Each thread reads through its own read-only connection (the main thread's one stays the
    only writer); committed rows are what it sees, and the main thread decides with
    `_triage_hashed` in any case. An index without a file (in memory) answers no.
    """

    def __init__(self, db: sqlite_utils.Database) -> None:
        rows = db.execute("PRAGMA database_list").fetchall()
        self._file = next((row[2] for row in rows if row[1] == "main"), "") or ""
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def seen(self, path: str, digest: str) -> bool:
        if not self._file:
            return False
        conn = getattr(self._local, "conn", None)
        try:
            if conn is None:
                uri = "file:" + _uri_path(self._file) + "?mode=ro"
                conn = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
                self._local.conn = conn
                with self._lock:
                    self._connections.append(conn)
            # The conditions of `_triage_hashed`, in SQL. fetchall() steps the statement to its
            # end, so no read snapshot stays open between look-ups (stale rows, a blocked
            # checkpoint).
            found = conn.execute(
                "SELECT 1 FROM photos WHERE (content_hash = :h OR original_hash = :h) AND ("
                "(path = :p AND status != 'missing' AND content_hash = :h) OR "
                "(path != :p AND score IS NOT NULL AND status != 'error')) LIMIT 1",
                {"h": digest, "p": path},
            ).fetchall()
        except sqlite3.Error as exc:
            log.debug("content look-up failed (%s); decoding %s", exc, path)
            return False
        return bool(found)

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()


def _uri_path(path: str) -> str:
    from urllib.parse import quote

    return quote(path)


def _changed_since(path: str, st: os.stat_result) -> bool:
    """True when `path` is no longer the file `st` described (replaced, rewritten); a vanished
    file is reported by the caller's own checks."""
    try:
        now = os.stat(path)
    except OSError:
        return False
    return (now.st_dev, now.st_ino, now.st_size, now.st_mtime_ns) != (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
    )


def _unexpected(path: str, exc: Exception) -> ProcessedPhoto:
    if isinstance(exc, PhotodError):
        # Reported once, by the caller (the daemon logs each error outcome).
        return ProcessedPhoto(
            path, "error", "error", error=exc.message_for(path), error_code=exc.code
        )
    log.exception("unexpected error processing %s", path)
    return ProcessedPhoto(
        path, "error", "error", error=f"unexpected {type(exc).__name__}: {exc}", error_code="bug"
    )


def _error_row(db: sqlite_utils.Database, path: str, exc: PhotodError, extra: dict) -> None:
    row = {"path": path, "status": "error", "error": exc.message_for(path), "error_code": exc.code}
    _error_row_or_log(db, {**row, "score": None, "stars": None, "embedding": None, **extra})


def _triage(
    path: str,
    db: sqlite_utils.Database,
    scorer: Scorer,
    metadata: _Metadata,
    to_score: dict[str, _Queued],
) -> ProcessedPhoto | None:
    """Settle `path` by its stat when possible; else queue it in `to_score` (-> None).

    Its content hash comes from the decode thread that reads it (`_triage_hashed`)."""
    from photod.decode import is_supported

    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        # Bytes that are not UTF-8 (an old camera or a Windows card): SQLite text cannot hold the
        # name, so the index could never remember this file.
        log.warning("skipped %r: the file name is not valid UTF-8; rename the file", path)
        return ProcessedPhoto(path, "skipped", error="file name is not UTF-8", error_code="name")
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if get_by_path(db, path) is not None and mark_missing(db, [path]):
            log.info("missing: %s", path)
            return ProcessedPhoto(path, "missing", "missing")
        log.info("skipped %s: it no longer exists", path)
        return ProcessedPhoto(path, "skipped", error="vanished", error_code="vanished")
    except OSError as exc:
        # a symbolic link loop, a path component without permission, ...
        error = FileUnreadableError(f"cannot stat: {exc.strerror}", path)
        _error_row(db, path, error, {})
        return ProcessedPhoto(path, "error", "error", error=error.message, error_code=error.code)
    if not stat.S_ISREG(st.st_mode):
        kind = "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        log.info("skipped %s: %s", path, kind)
        return ProcessedPhoto(path, "skipped", error=kind, error_code="not_a_file")
    if not is_supported(path):
        log.info("skipped %s: not a photo type photod reads", path)
        return ProcessedPhoto(path, "skipped", error="unsupported", error_code="unsupported")

    row = get_by_path(db, path)
    if row is not None and write_pending(row):
        # Scored, but the rating could not be written (a read-only folder, a full disk): try the
        # write again with the known score; a changed file is scored afresh (queued below).
        # Rare, so this one is hashed here rather than in a decode thread.
        try:
            digest = file_hash(path)
        except OSError:
            digest = None
        if digest is not None and digest == row["content_hash"]:
            return _adopt(row, path, st, digest, db, metadata, action="retried")
    if row is not None and row["status"] != "missing" and _same_stat(row, st):
        return _from_row(path, "unchanged", row)
    to_score[path] = _Queued(st, row)
    return None


def _triage_hashed(
    path: str, queued: _Queued, digest: str, db: sqlite_utils.Database, metadata: _Metadata
) -> ProcessedPhoto | None:
    """The content-hash half of triage: unchanged bytes, a move or a copy; None: score it."""
    row, st = queued.row, queued.st
    files = _file_columns(path, st)
    if row is not None and row["status"] != "missing" and digest == row["content_hash"]:
        # Same bytes, new timestamp (touched, copied over itself): remember the new stat.
        upsert_photo(db, {"path": path, **files})
        return _from_row(path, "unchanged", row)

    for known in find_by_hash(db, digest):
        if known["path"] == path or known["score"] is None or known["status"] == "error":
            continue
        if not os.path.lexists(known["path"]) or known["status"] == "missing":
            return _adopt(known, path, st, digest, db, metadata, action="moved")
        return _adopt(known, path, st, digest, db, metadata, action="copied")
    return None


def write_pending(row: dict[str, Any]) -> bool:
    """True when a row's photo was scored but its rating write failed and is worth retrying."""
    if row.get("score") is None:
        return False
    if row.get("status") == "ok":  # since m003: the score's row is ok, the failure beside it
        return bool(row.get("write_error")) and (
            row.get("write_error_code") not in PERMANENT_WRITE_ERRORS
        )
    # An index written before m003 kept such a photo as an error row with its score.
    return row.get("status") == "error" and row.get("error_code") not in PERMANENT_WRITE_ERRORS


def _from_row(path: str, action: str, row: dict[str, Any]) -> ProcessedPhoto:
    return ProcessedPhoto(
        path,
        action,
        row["status"],
        row["score"],
        row["stars"],
        row["user_rating"],
        row["model"],
        row["error"],
        row["error_code"],
        write_error=row.get("write_error"),
    )


def _same_stat(row: dict[str, Any], st: os.stat_result) -> bool:
    return row["size"] == st.st_size and row["mtime_ns"] == st.st_mtime_ns


def _write_rating(
    path: str, score: float, stars: int, model: str, scored_at: str, metadata: _Metadata
) -> tuple[Any, dict[str, Any]]:
    """Write the rating; returns (outcome or None, row columns describing the result)."""
    if metadata.write_mode == "none":
        return None, {"user_rating": metadata.read_user_rating(path), "written_to": "[]"}
    outcome = metadata.write(path, score, stars, model, scored_at)
    if not outcome.written and not outcome.skipped:  # never report "nothing" as success
        raise MetadataError("the writer wrote nothing and gave no reason", path)
    return outcome, {
        "user_rating": outcome.user_rating,
        "written_to": json.dumps([os.path.basename(p) for p in outcome.written]),
    }


def _after_write_columns(path: str, original_hash: str | None, outcome: Any) -> dict[str, Any]:
    """Stat and hash of the file as photod leaves it, so its own write never looks like an edit."""
    st = os.stat(path)
    changed = outcome is not None and any(
        os.path.abspath(p) == path for p in getattr(outcome, "written", [])
    )
    return {
        **_file_columns(path, st),
        "content_hash": file_hash(path) if changed else original_hash,
        "original_hash": original_hash,
    }


def _adopt(
    known: dict[str, Any],
    path: str,
    st: os.stat_result,
    digest: str,
    db: sqlite_utils.Database,
    metadata: _Metadata,
    action: str,
) -> ProcessedPhoto:
    """A file whose content is already indexed: reuse the score, make sure the rating is there.

    `action`: moved (the row follows the file), copied (a new row) or retried (the row's own
    rating write failed before and is tried again).
    """
    moved = action == "moved"
    try:
        if metadata.write_mode != "none" and metadata.already_rated(path, known["stars"]):
            outcome = None
            rating_columns = {
                "user_rating": metadata.read_user_rating(path),
                "written_to": known.get("written_to") or "[]",
            }
        else:
            outcome, rating_columns = _write_rating(
                path, known["score"], known["stars"], known["model"], known["scored_at"], metadata
            )
        columns = {**rating_columns, **_after_write_columns(path, digest, outcome)}
    except PhotodError as exc:
        return _store_write_error(path, st, digest, known, exc, db, action, known, moved)
    columns.update(
        status="ok", error=None, error_code=None, write_error=None, write_error_code=None
    )
    if moved:
        move_photo(db, known["id"], path, columns)
        log.info("moved: %s -> %s (not re-scored)", known["path"], path)
    else:
        carried = {key: known[key] for key in _CARRIED_COLUMNS}
        upsert_photo(db, {"path": path, **carried, **columns})
        if action == "retried":
            log.info("rating written on retry: %s", path)
        else:
            log.info("copied: %s is the same photo as %s (not re-scored)", path, known["path"])
    return ProcessedPhoto(
        path,
        action,
        "ok",
        known["score"],
        known["stars"],
        columns.get("user_rating"),
        known["model"],
        written=list(getattr(outcome, "written", []) or []),
        write_skipped=getattr(outcome, "skipped", None),
        moved_from=known["path"] if moved else None,
    )


def _store_write_error(
    path: str,
    st: os.stat_result,
    digest: str,
    scored: dict[str, Any],
    exc: PhotodError,
    db: sqlite_utils.Database,
    action: str = "scored",
    known: dict[str, Any] | None = None,
    moved: bool = False,
) -> ProcessedPhoto:
    """The score is known but the rating could not be written: an `ok` row with the score and
    the reason in `write_error` (the score is real; only the rating is missing).

    The row keeps the score, so the next pass (and the daemon, with back-off) only tries the
    write again (`write_pending`), without re-scoring. A file deleted while it was being scored
    is no error: it is just gone.
    """
    if not os.path.lexists(path):
        return _vanished(path, db)
    # The caller reports it (the daemon's "rating NOT written" line, the command's write_status).
    message = exc.message_for(path) if isinstance(exc, PhotodError) else str(exc)
    row = {key: scored.get(key) for key in _CARRIED_COLUMNS}
    try:
        # A partial write may have changed the file: keep its current stat so that photod's own
        # change does not look like an edit and start a retry loop.
        st = os.stat(path)
    except OSError:
        pass
    row.update(_file_columns(path, st))
    row.update(
        path=path,
        content_hash=digest,
        original_hash=digest,
        status="ok",
        error=None,
        error_code=None,
        write_error=message,
        write_error_code=getattr(exc, "code", "metadata"),
        written_to=json.dumps([os.path.basename(p) for p in getattr(exc, "written", [])]),
    )
    if moved and known is not None:
        move_photo(db, known["id"], path, row)
    else:
        _error_row_or_log(db, row)
    return ProcessedPhoto(
        path,
        action,
        "ok",
        scored.get("score"),
        scored.get("stars"),
        model=scored.get("model"),
        written=list(getattr(exc, "written", []) or []),
        write_error=message,
        write_error_code=row["write_error_code"],
        moved_from=known["path"] if moved and known is not None else None,
    )


def _vanished(path: str, db: sqlite_utils.Database) -> ProcessedPhoto:
    if get_by_path(db, path) is not None and mark_missing(db, [path]):
        log.info("missing: %s (deleted while it was processed)", path)
        return ProcessedPhoto(path, "missing", "missing")
    log.info("skipped %s: deleted before it could be processed", path)
    return ProcessedPhoto(path, "skipped", error="vanished", error_code="vanished")


def _error_row_or_log(db: sqlite_utils.Database, row: dict[str, Any]) -> None:
    try:
        upsert_photo(db, row)
    except (UnicodeEncodeError, ValueError) as exc:
        # e.g. a file name that is not valid UTF-8 cannot be stored as SQLite text
        log.warning("%r: cannot index this path (%s)", row["path"], exc)


def _write_scored(result: ScoreResult, st: os.stat_result, metadata: _Metadata) -> _Written:
    """The file side of a scored photo: the rating write and the file's new stat and hash.

    Runs in a writer thread (it touches no index); every expected failure is returned. A photo
    that is no longer the file triage stat'ed (`st`) is not written: its score is not its own."""
    assert result.score is not None and result.stars is not None
    scored_at = now_iso()
    if _changed_since(result.path, st):
        return _Written(scored_at, changed=True)
    original_hash = result.content_hash
    try:
        outcome, rating_columns = _write_rating(
            result.path, result.score, result.stars, result.model, scored_at, metadata
        )
        wrote_photo = outcome is not None and any(
            os.path.abspath(p) == result.path for p in outcome.written
        )
        # Taken before the hash below: a change after this stat is caught before the commit.
        after = os.stat(result.path) if wrote_photo else None
        columns = {**rating_columns, **_after_write_columns(result.path, original_hash, outcome)}
    except PhotodError as exc:
        return _Written(scored_at, error=exc)
    except FileNotFoundError:
        return _Written(scored_at, error=FileVanishedError("vanished after scoring", result.path))
    return _Written(scored_at, outcome, columns, after=after)


def _commit_scored(
    result: ScoreResult,
    st: os.stat_result,
    original_hash: str | None,
    db: sqlite_utils.Database,
    written: _Written | None,
) -> ProcessedPhoto | None:
    """The index side of a scored photo (main thread): its row, committed after the write.

    None when the file changed since triage took its stat and the decode thread its hash (the
    caller looks at it again): checked before the write (`written.changed`) and here, just
    before the commit."""
    path = result.path
    if result.status != "ok":
        if _changed_since(path, st):
            return None
        if not os.path.lexists(path):
            return _vanished(path, db)
        row = {
            "path": path,
            **_file_columns(path, st),
            "content_hash": original_hash,
            "original_hash": original_hash,
            "status": "error",
            "error": result.error,
            "error_code": result.error_code,
            "score": None,
            "stars": None,
            "embedding": None,
            "model": result.model,
            "scored_at": now_iso(),
        }
        _error_row_or_log(db, row)
        return ProcessedPhoto(
            path,
            "error",
            "error",
            model=result.model,
            error=result.error,
            error_code=result.error_code,
        )

    assert written is not None and result.score is not None and result.stars is not None
    if written.changed:
        return None  # replaced or rewritten before its rating was written: nothing was written
    scored = scored_columns(result, written.scored_at)
    if written.error is not None:
        return _store_write_error(path, st, original_hash, scored, written.error, db)
    outcome, columns = written.outcome, written.columns or {}
    # A photo photod wrote into has the stat the writer left; otherwise triage's one.
    if _changed_since(path, written.after or st):
        return None  # changed during or after the write: this score is not the file's
    row = {"path": path, **scored, **columns, "status": "ok", "error": None, "error_code": None,
           "write_error": None, "write_error_code": None}  # fmt: skip
    upsert_photo(db, row)
    log.debug("scored %s: %.3f (%d stars)", path, result.score, result.stars)
    return ProcessedPhoto(
        path,
        "scored",
        "ok",
        result.score,
        result.stars,
        columns.get("user_rating"),
        result.model,
        written=list(getattr(outcome, "written", []) or []),
        write_skipped=getattr(outcome, "skipped", None),
    )


def record_own_write(
    db: sqlite_utils.Database,
    path: str | os.PathLike[str],
    written: Iterable[str],
    **columns: Any,
) -> bool:
    """Keep the index in step with a metadata write photod made outside `process_paths` (cull
    marks, `score --write`, develop settings): the photo's new size, mtime and hash, so that a
    running daemon does not take photod's own write for the user's edit and re-score (and re-rate)
    the photo, plus `columns` (e.g. the `stars` written). Returns False when the photo has no row.
    """
    path = os.path.abspath(os.fspath(path))
    row = get_by_path(db, path)
    if row is None:
        return False
    updates: dict[str, Any] = dict(columns)
    if any(os.path.abspath(p) == path for p in written):
        st = os.stat(path)
        updates.update(_file_columns(path, st), content_hash=file_hash(path))
    if updates:
        upsert_photo(db, {"path": path, **updates})
    return True


def _suggest(
    outcome: ProcessedPhoto, scorer: Scorer, db: sqlite_utils.Database, modules: tuple[Any, Any]
) -> None:
    suggest, suggest_store = modules
    started = time.monotonic()
    try:
        suggestion = suggest.suggest_photo(outcome.path, scorer)
        suggest_store.save_suggestion(db, outcome.path, suggestion)
        outcome.suggestion = suggestion
    except PhotodError as exc:
        log.warning("no suggestion for %s: %s", outcome.path, exc)
    log.debug("suggestion for %s took %.1f s", outcome.path, time.monotonic() - started)
