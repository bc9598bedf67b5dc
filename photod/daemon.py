"""`photod watch`: watch import folders and score, rate and index every photo that lands there.

Threads and hand-offs, each bounded or deduplicated:

    watchdog observer ──events──▶ pending {path: PendingFile}   (one entry per path)
    settle thread: a pending file becomes ready once complete  ──▶ bounded queue (backpressure)
    main thread: takes batches from the queue ──▶ `pipeline.process_paths` (decode threads,
                 batched scoring, rating write, index commit)

A file is complete when it was closed after writing (inotify IN_CLOSE_WRITE) or moved in, and
its size and mtime then stay unchanged for `settle_seconds`; a file only created or modified
(still open) waits for its close, or for `quiet_seconds` without any change when no close event
can come (polling, or a file moved in from another file system). Hidden files, photod's own temp
files and sidecars are ignored; photod's own rating writes are recognised by the index row (same
size and mtime as committed after the write), so they never trigger a re-score.

At start the folders are reconciled with the index (new, changed and vanished files), stale temp
files of a crashed write are removed, and an exclusive lock next to the index keeps a second
daemon off the same index. SIGTERM/SIGINT finish the photo in flight (no new photo is started;
those left are done at the next start), record the run as stopped, flush the index and exit 0.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import signal
import socket
import stat
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from photod.errors import PhotodError

if TYPE_CHECKING:
    import sqlite_utils

    from photod.pipeline import ProcessedPhoto
    from photod.scoring import Scorer

log = logging.getLogger("photod")

TEMP_GRACE_SECONDS = 10.0  # a younger temp file may belong to a live writer (web page, CLI)
TICK_SECONDS = 0.2


class DaemonError(PhotodError):
    code = "daemon"


def lock_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".lock")


def daemon_holding(db_path: Path) -> int | None:
    """PID of the `photod watch` holding this index, or None when no daemon runs on it."""
    path = lock_path(db_path)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_ignored(path: str, root: str) -> bool:
    """Hidden (any component under the watched root), temp or backup files, non-photos."""
    from photod.decode import is_supported

    relative = os.path.relpath(path, root)
    if relative.startswith(".."):
        relative = os.path.basename(path)
    if any(part.startswith(".") for part in Path(relative).parts):
        return True  # includes photod's own TEMP_PREFIX files and rsync's .name.XXXX
    name = os.path.basename(path)
    if name.endswith("~") or name.startswith("~$"):
        return True
    return not is_supported(path)  # sidecars (.xmp), .part, .tmp, .crdownload ...


@dataclass
class PendingFile:
    kind: str  # "closed": complete once stable; "busy": still being written; "gone": deleted
    last_event: float  # monotonic time of the last event
    due: float  # next time to look at it
    signature: tuple[int, int] | None = None  # (size, mtime_ns) at the last look
    version: int = 0  # bumped by every event, so a stale readiness check never wins


class _Handler:
    """watchdog event handler for one watched root: turns events into `Daemon.note` calls."""

    def __init__(self, daemon: Daemon, root: str) -> None:
        self.daemon = daemon
        self.root = root

    def dispatch(self, event: Any) -> None:
        try:
            self._dispatch(event)
        except Exception:  # an event handler must never kill the observer thread
            log.exception("error handling %r", event)

    def _dispatch(self, event: Any) -> None:
        kind = event.event_type  # created, modified, closed, moved, deleted, opened, ...
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if kind in ("deleted", "moved"):
                self.daemon.note_folder_gone(src)
            if kind in ("created", "moved"):
                new = os.fsdecode(event.dest_path) if kind == "moved" else src
                if new and not is_ignored(new, self.root):
                    log.info("skipped %s: a folder, not a photo (its contents are watched)", new)
            return
        if kind == "moved":
            dest = os.fsdecode(event.dest_path)
            if not is_ignored(src, self.root):
                self.daemon.note(src, "gone")
            if dest and not is_ignored(dest, self.root):
                self.daemon.note(dest, "closed")
            return
        if is_ignored(src, self.root):
            return
        if kind == "closed":
            self.daemon.note(src, "closed")
        elif kind == "created":
            # Whether it is complete (moved in) or still being written is decided by the settle
            # thread: nothing here may stat a file (a slow or hung mount would stall watchdog).
            self.daemon.note(src, "created")
        elif kind == "modified":
            self.daemon.note(src, "busy")
        elif kind == "deleted":
            self.daemon.note(src, "gone")
        # opened, closed_no_write and attrib change nothing photod reads


class _OverflowWatch(logging.Handler):
    """watchdog reports a kernel inotify queue overflow (events lost) only as a log line: hear
    it and ask the daemon for a reconciliation scan."""

    def __init__(self, daemon: Daemon) -> None:
        super().__init__(logging.WARNING)
        self.daemon = daemon

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in record.getMessage().lower():
            self.daemon.request_rescan("inotify queue overflow")


class Daemon:
    """Watch `folders`; score, rate and index each complete photo exactly once."""

    def __init__(
        self,
        folders: Iterable[str | os.PathLike[str]],
        scorer: Scorer,
        db_path: str | os.PathLike[str] | None = None,
        *,
        recursive: bool = True,
        polling: bool = False,
        poll_interval: float = 1.0,
        write_mode: str = "auto",
        force: bool = False,
        suggest: bool = False,
        group: bool = False,
        settle_seconds: float = 1.0,
        quiet_seconds: float = 5.0,
        queue_size: int = 512,
        summary_interval: float = 60.0,
        retry_seconds: float = 30.0,
        rescan_interval: float = 600.0,
        once: bool = False,
        on_result: Callable[[ProcessedPhoto], None] | None = None,
    ) -> None:
        from photod.paths import default_db_path

        self.folders = [os.path.abspath(os.path.expanduser(os.fspath(f))) for f in folders]
        if not self.folders:
            raise DaemonError(
                "no folder to watch: give one (`photod watch ~/Pictures/import`) or set "
                "`folders` in the config file"
            )
        for folder in self.folders:
            if not os.path.isdir(folder):
                raise DaemonError("not a folder (or not there)", folder)
        self.scorer = scorer
        self.db_path = Path(db_path) if db_path is not None else default_db_path()
        self.recursive = recursive
        self.polling = polling
        self.poll_interval = poll_interval
        self.write_mode = write_mode
        self.force = force
        self.suggest = suggest
        self.group = group
        self.settle_seconds = settle_seconds
        # With polling no close event ever comes: quiet must outlast a poll interval.
        self.quiet_seconds = max(quiet_seconds, 2 * poll_interval if polling else 0)
        self.summary_interval = summary_interval
        # A failed rating write is tried again after retry_seconds, doubling up to an hour.
        self.retry_seconds = retry_seconds
        self.rescan_interval = rescan_interval
        self._next_rescan = time.monotonic() + rescan_interval
        self._retries: dict[str, tuple[int, float]] = {}  # path -> (failed attempts, due)
        self.once = once
        self.on_result = on_result
        self.batch_size = max(1, scorer.batch_size)

        self._pending: dict[str, PendingFile] = {}
        self._pending_lock = threading.Lock()
        self._ready: queue.Queue[str] = queue.Queue(maxsize=max(1, queue_size))
        self._folders_gone: set[str] = set()
        self._in_transit = 0  # paths between `_pending` and `_ready` (for --once's idle check)
        self._temp_rechecks: dict[str, float] = {}
        self._unwatchable: set[str] = set()
        self._overflow_watch: logging.Handler | None = None
        self._stop = threading.Event()
        self.stop_reason = "done" if once else "stopped"
        self.ready = threading.Event()  # set once watching and the catch-up scan is queued
        self._lock_fd: int | None = None
        self._db: sqlite_utils.Database | None = None
        self._run_id: int | None = None
        self.stats = {
            "scored": 0, "moved": 0, "copied": 0, "retried": 0, "unchanged": 0, "missing": 0,
            "error": 0, "skipped": 0, "not_written": 0,
        }  # fmt: skip

    # ----------------------------------------------------------------- events

    def note(self, path: str, kind: str) -> None:
        """Record an event for `path` (called from observer threads and the catch-up scan).

        Only bookkeeping, no file access: the settle thread takes the file's size and mtime at
        its first look (due at once), and that look starts the settle window from the event.
        """
        now = time.monotonic()
        with self._pending_lock:
            entry = self._pending.get(path)
            if entry is None:
                self._pending[path] = PendingFile(kind, now, now)
                return
            entry.version += 1
            entry.last_event = now
            if kind in ("gone", "busy", "created") or entry.kind == "gone":
                entry.kind = kind
            elif kind == "closed":
                entry.kind = "closed"
            entry.due = now
            entry.signature = None

    def request_rescan(self, reason: str) -> None:
        """Reconcile the folders with the index soon (thread-safe): events may have been lost."""
        log.warning("%s: a reconciliation scan follows", reason)
        self._next_rescan = 0.0

    def note_folder_gone(self, folder: str) -> None:
        with self._pending_lock:
            self._folders_gone.add(folder)

    def stop(self) -> None:
        """Ask the daemon to finish the batch in flight and exit (thread- and signal-safe)."""
        self._stop.set()

    # --------------------------------------------------------------- settling

    def _settle_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._settle_once()
            except Exception:
                log.exception("error in the settle loop")
            self._stop.wait(TICK_SECONDS)

    def _settle_once(self) -> None:
        now = time.monotonic()
        with self._pending_lock:
            due = [(p, e.version, e) for p, e in self._pending.items() if e.due <= now]
        for path, version, entry in sorted(due, key=lambda item: item[2].last_event):
            if self._stop.is_set():
                return
            if entry.kind != "gone" and entry.signature is None:
                self._first_look(path, entry, now)
                continue
            if entry.kind == "busy" and now - entry.last_event < self.quiet_seconds:
                entry.due = entry.last_event + self.quiet_seconds
                continue
            if entry.kind != "gone" and not self._is_stable(path, entry, now):
                continue
            with self._pending_lock:
                current = self._pending.get(path)
                if current is not entry or current.version != version:
                    continue  # a new event arrived meanwhile; look again later
                del self._pending[path]
                self._in_transit += 1
            try:
                self._put_ready(path)
            finally:
                with self._pending_lock:
                    self._in_transit -= 1

    def _first_look(self, path: str, entry: PendingFile, now: float) -> None:
        """Size and mtime right after the event; a `created` file is complete (moved in, its
        mtime older than the quiet period) or still being written."""
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or not stat.S_ISREG(st.st_mode):
            entry.signature = (-1, -1)  # the pipeline reports what is wrong with it
            if entry.kind == "created":
                entry.kind = "closed"
        else:
            entry.signature = (st.st_size, st.st_mtime_ns)
            if entry.kind == "created":
                complete = st.st_size > 0 and time.time() - st.st_mtime > self.quiet_seconds
                entry.kind = "closed" if complete else "busy"
        entry.due = max(now, entry.last_event + self.settle_seconds)

    def _is_stable(self, path: str, entry: PendingFile, now: float) -> bool:
        try:
            st = os.stat(path)
        except OSError:
            return True  # vanished or unreadable: the pipeline records what happened
        if not stat.S_ISREG(st.st_mode):
            return True  # the pipeline logs and skips it
        signature = (st.st_size, st.st_mtime_ns)
        if entry.signature != signature:
            entry.signature = signature
            entry.due = now + self.settle_seconds
            return False
        return True

    def _put_ready(self, path: str) -> None:
        while not self._stop.is_set():
            try:
                self._ready.put(path, timeout=0.5)
                return
            except queue.Full:
                continue  # backpressure: the model is behind; events keep piling up as paths

    # ----------------------------------------------------------------- run

    def run(self) -> int:
        """Run until stopped (or, with `once`, until the catch-up is done).

        Returns the exit status: 0, or with `once` 1 when a photo was scored but its rating could
        not be written (the index has its score; `photod status` counts it)."""
        self._acquire_lock()
        observer = None
        previous_handlers: dict[int, Any] = {}
        try:
            from photod.index import open_index

            self._db = open_index(self.db_path)
            if threading.current_thread() is threading.main_thread():
                for signum in (signal.SIGTERM, signal.SIGINT):
                    previous_handlers[signum] = signal.signal(signum, self._on_signal)
            _ = self.scorer.net  # fail now, not on the first photo, when the model is missing
            self._start_run_row()
            if not self.once:
                observer = self._start_observer()
            settler = threading.Thread(target=self._settle_loop, name="photod-settle", daemon=True)
            settler.start()
            self._catch_up()
            self.ready.set()
            log.info(
                "watching %s (%s)",
                ", ".join(self.folders),
                "catch-up only" if self.once else ("polling" if self.polling else "inotify"),
            )
            self._main_loop()
            self._stop.set()
            settler.join(timeout=5)
        finally:
            if observer is not None:
                logging.getLogger("watchdog").removeHandler(self._overflow_watch)
                observer.stop()
                observer.join(timeout=5)
            self._finish()
            for signum, handler in previous_handlers.items():
                signal.signal(signum, handler)
        return 1 if self.once and self.stats["not_written"] else 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self._stop.is_set():
            log.warning("second %s: exiting now", signal.Signals(signum).name)
            raise SystemExit(1)
        log.info("%s received: stopping after the photo in flight", signal.Signals(signum).name)
        self.stop_reason = signal.Signals(signum).name
        self._stop.set()

    def _acquire_lock(self) -> None:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        path = lock_path(self.db_path)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            os.close(fd)
            raise DaemonError(
                f"another photod watch (pid {text or '?'}) is already using this index",
                str(self.db_path),
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _start_observer(self) -> Any:
        if self.polling:
            from watchdog.observers.polling import PollingObserver

            observer: Any = PollingObserver(timeout=self.poll_interval)
        else:
            from watchdog.observers import Observer

            observer = Observer()
        for folder in self.folders:
            observer.schedule(_Handler(self, folder), folder, recursive=self.recursive)
        try:
            observer.start()
        except OSError as exc:
            raise DaemonError(
                f"cannot watch the folders ({exc.strerror}); with many sub-folders raise "
                "fs.inotify.max_user_watches, or use --polling"
            ) from exc
        self._overflow_watch = _OverflowWatch(self)
        logging.getLogger("watchdog").addHandler(self._overflow_watch)
        return observer

    def _catch_up(self, what: str = "catch-up") -> None:
        """Queue every photo that is new or changed since the index saw it; mark vanished ones.

        Run at start and then every `rescan_interval` (and after an inotify overflow): events
        watchdog never delivered (a folder it could not watch, a dropped event) are found here.
        """
        from photod.index import mark_missing_under

        assert self._db is not None
        started = time.monotonic()
        queued = known = 0
        for folder in self.folders:
            gone = mark_missing_under(self._db, folder)
            if gone:
                log.info("%d indexed photos under %s are gone: marked missing", gone, folder)
            indexed = self._indexed_stats(folder)
            for path in self._walk(folder):
                if self._stop.is_set():
                    return
                try:
                    st = os.stat(path)
                except OSError:
                    self.note(path, "closed")  # the pipeline records the error
                    queued += 1
                    continue
                if indexed.get(path) == (st.st_size, st.st_mtime_ns):
                    known += 1
                    continue
                self.note(path, "closed")
                queued += 1
        log.log(
            logging.INFO if what == "catch-up" or queued else logging.DEBUG,
            "%s: %d photos to process, %d already indexed (%.1f s)",
            what,
            queued,
            known,
            time.monotonic() - started,
        )

    def _indexed_stats(self, folder: str) -> dict[str, tuple[int, int]]:
        assert self._db is not None
        prefix = folder.rstrip(os.sep) + os.sep
        from photod.pipeline import write_pending

        rows = self._db.query(
            "SELECT path, size, mtime_ns, status, score, error_code, write_error, write_error_code "
            "FROM photos "
            "WHERE status != 'missing' AND substr(path, 1, ?) = ?",
            [len(prefix), prefix],
        )
        # A photo whose rating write failed is queued again, like a new one.
        return {
            row["path"]: (row["size"], row["mtime_ns"]) for row in rows if not write_pending(row)
        }

    def _walk(self, folder: str) -> Iterable[str]:
        from photod.metadata import TEMP_PREFIX

        for dirpath, dirnames, filenames in os.walk(folder, onerror=self._walk_error):
            # Hidden folders are skipped like hidden files; symlinked folders are not followed
            # (os.walk's default), so a link loop cannot trap the scan.
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in dirnames:
                self._check_watchable(os.path.join(dirpath, name))
            if any(name.startswith(TEMP_PREFIX) for name in filenames):
                self._clean_temp(dirpath)
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if not is_ignored(path, folder):
                    yield path
            for name in dirnames:
                # A folder named like a photo is not one: say so once instead of ignoring it.
                if not is_ignored(os.path.join(dirpath, name), folder):
                    log.info("skipped %s: a folder, not a photo", os.path.join(dirpath, name))
            if not self.recursive:
                dirnames[:] = []

    def _check_watchable(self, folder: str) -> None:
        """watchdog skips a folder it may not read without a word: say so (once per folder)."""
        effective = os.access in os.supports_effective_ids
        readable = os.access(folder, os.R_OK | os.X_OK, effective_ids=effective)
        if readable:
            self._unwatchable.discard(folder)
        elif folder not in self._unwatchable:
            self._unwatchable.add(folder)
            log.warning(
                "cannot watch %s (permission denied): photos in it are not seen until it is "
                "readable; the periodic scan picks them up then",
                folder,
            )

    def _walk_error(self, exc: OSError) -> None:
        if exc.filename and exc.filename not in self._unwatchable:
            log.warning("cannot list %s: %s", exc.filename, exc.strerror)

    def _clean_temp(self, folder: str) -> None:
        from photod.metadata import TEMP_PREFIX, clean_stale_temp_files

        clean_stale_temp_files(folder, min_age_s=TEMP_GRACE_SECONDS)
        try:
            left = any(name.startswith(TEMP_PREFIX) for name in os.listdir(folder))
        except OSError:
            return
        if left:  # too young to be sure nobody writes it: look again after the grace period
            self._temp_rechecks[folder] = time.monotonic() + TEMP_GRACE_SECONDS

    # ------------------------------------------------------------- main loop

    def _main_loop(self) -> None:
        from photod.pipeline import process_paths

        assert self._db is not None
        last_summary = time.monotonic()
        last_counts = dict(self.stats)
        while not self._stop.is_set():
            batch = self._take_batch()
            self._housekeeping()
            if batch:
                indexed = []
                for outcome in process_paths(
                    batch,
                    self.scorer,
                    self._db,
                    write_mode=self.write_mode,
                    force=self.force,
                    suggest=self.suggest,
                    should_stop=self._stop.is_set,
                ):
                    self._count(outcome)
                    if (
                        outcome.action in ("scored", "moved", "copied", "retried")
                        and outcome.score is not None
                    ):
                        indexed.append(outcome.path)
                if self.group and indexed:
                    self._update_groups(indexed)
            now = time.monotonic()
            if now - last_summary >= self.summary_interval:
                self._summary(now - last_summary, last_counts)
                last_summary, last_counts = now, dict(self.stats)
            if self.once and not batch and self._idle():
                self._finish_temp_rechecks()
                break
        self._summary(max(time.monotonic() - last_summary, 1e-9), last_counts)

    def _finish_temp_rechecks(self) -> None:
        """--once: temp files too young to remove at the scan are looked at again before exit
        (a crashed run's leftovers must not outlive the catch-up that follows it)."""
        deadline = time.monotonic() + 3 * TEMP_GRACE_SECONDS  # a live writer may keep making more
        while self._temp_rechecks and not self._stop.is_set() and time.monotonic() < deadline:
            wait = min(self._temp_rechecks.values()) - time.monotonic()
            if wait > 0:
                self._stop.wait(wait)
            self._housekeeping()

    def _update_groups(self, paths: list[str]) -> None:
        """Regroup bursts and near-duplicates around the new photos (`photod cull`'s index)."""
        try:
            from photod.cull_store import update_groups_for
        except ImportError as exc:
            log.warning("grouping is on but unavailable in this install (%s); turning it off", exc)
            self.group = False
            return
        try:
            groups = update_groups_for(self._db, paths)
        except Exception:  # grouping is a bonus: a failure must not stop rating photos
            log.exception("grouping failed for %d new photos", len(paths))
            return
        if groups:
            log.info("grouping: %d groups now hold new photos", len(groups))

    def _take_batch(self) -> list[str]:
        """Up to a few model batches of ready paths; waits briefly so a burst fills a batch."""
        try:
            first = self._ready.get(timeout=0.5)
        except queue.Empty:
            return []
        batch = [first]
        limit = 4 * self.batch_size
        deadline = time.monotonic() + 0.2
        while len(batch) < limit:
            try:
                batch.append(self._ready.get(timeout=max(0.0, deadline - time.monotonic())))
            except queue.Empty:
                break
        return batch

    def _idle(self) -> bool:
        with self._pending_lock:
            return not self._pending and not self._in_transit and self._ready.empty()

    def _housekeeping(self) -> None:
        from photod.index import mark_missing_under

        assert self._db is not None
        with self._pending_lock:
            gone, self._folders_gone = self._folders_gone, set()
        for folder in gone:
            count = mark_missing_under(self._db, folder)
            if count:
                log.info("folder %s is gone: %d photos marked missing", folder, count)
        now = time.monotonic()
        if not self.once and now >= self._next_rescan:
            self._next_rescan = now + self.rescan_interval
            self._catch_up("reconciliation scan")
        for path, (_attempts, due) in list(self._retries.items()):
            if due <= now:
                self.note(path, "closed")
        for folder, due in list(self._temp_rechecks.items()):
            if due <= now:
                del self._temp_rechecks[folder]
                self._clean_temp(folder)

    def _schedule_retry(self, outcome: ProcessedPhoto) -> None:
        """Back-off for a failed rating write (the score is known: only the write is retried)."""
        from photod.index import PERMANENT_WRITE_ERRORS

        path = outcome.path
        if outcome.write_error and outcome.score is not None:
            if outcome.write_error_code in PERMANENT_WRITE_ERRORS:
                self._retries.pop(path, None)
                return
            attempts = self._retries.get(path, (0, 0.0))[0] + 1
            delay = min(self.retry_seconds * 2 ** (attempts - 1), 3600.0)
            self._retries[path] = (attempts, time.monotonic() + delay)
            log.info(
                "rating write for %s failed %d times; next try in %.0f s", path, attempts, delay
            )
        elif outcome.action != "unchanged" or path in self._retries:
            self._retries.pop(path, None)

    def _count(self, outcome: ProcessedPhoto) -> None:
        self._schedule_retry(outcome)
        self.stats[outcome.action] = self.stats.get(outcome.action, 0) + 1
        if outcome.write_error:  # scored and indexed, but the photo does not carry its rating
            self.stats["not_written"] += 1
            log.warning("rating NOT written (%s stars kept in the index): %s", outcome.stars,
                        outcome.write_error)  # fmt: skip
        elif outcome.action == "scored":
            kept = (
                f" (rating not written: {outcome.write_skipped})" if outcome.write_skipped else ""
            )
            log.info(
                "scored %.3f (%s stars): %s%s", outcome.score, outcome.stars, outcome.path, kept
            )
        elif outcome.action == "error":
            log.warning("error %s: %s", outcome.path, outcome.error)
        if self.on_result is not None and outcome.action != "unchanged":
            try:
                self.on_result(outcome)
            except Exception:  # a reporting problem (closed pipe, odd name) must not stop work
                log.exception("cannot report the result for %r", outcome.path)

    def _summary(self, elapsed: float, before: dict[str, int]) -> None:
        done = sum(self.stats[k] - before.get(k, 0) for k in ("scored", "moved", "copied"))
        with self._pending_lock:
            waiting = len(self._pending)
        log.info(
            "summary: %d scored, %d moved/copied, %d errors, %d ratings not written, %d missing, "
            "%d skipped; "
            "%d waiting, %d queued; %.1f photos/s",
            self.stats["scored"],
            self.stats["moved"] + self.stats["copied"],
            self.stats["error"],
            self.stats["not_written"],
            self.stats["missing"],
            self.stats["skipped"],
            waiting,
            self._ready.qsize(),
            done / elapsed,
        )
        self._heartbeat()

    # ----------------------------------------------------------- bookkeeping

    def _start_run_row(self) -> None:
        from photod.index import now_iso

        assert self._db is not None
        stamp = now_iso()
        table = self._db["daemon_runs"]
        table.insert(
            {
                "pid": os.getpid(),
                "hostname": socket.gethostname(),
                "folders": json.dumps(self.folders),
                "started_at": stamp,
                "heartbeat_at": stamp,
                "processed": 0,
                "errors": 0,
            }
        )
        self._run_id = table.last_pk

    def _heartbeat(self, stopped: bool = False) -> None:
        from photod.index import now_iso

        if self._db is None or self._run_id is None:
            return
        values = {
            "heartbeat_at": now_iso(),
            "processed": sum(self.stats[k] for k in ("scored", "moved", "copied", "retried")),
            "errors": self.stats["error"],
        }
        if stopped:
            values["stopped_at"] = values["heartbeat_at"]
            values["stop_reason"] = self.stop_reason
        self._db["daemon_runs"].update(self._run_id, values)

    def _finish(self) -> None:
        if self._db is not None:
            try:
                self._heartbeat(stopped=True)
                # Fold the WAL back into the main file so readers see one tidy database.
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except Exception as exc:
                log.warning("could not flush the index cleanly: %s", exc)
            self._db.close()
            self._db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None
        log.info("stopped")
