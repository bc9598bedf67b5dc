"""The daemon (issue 16): SIGTERM stops it within 10 s in every mode, between photos, with the run
recorded as stopped (finding 10); missed events are recovered by a periodic reconciliation scan,
unwatchable folders are logged, and no file is looked at in watchdog's thread (finding 9).

`photod watch` as a real process on real folders, real inotify, a real index.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from photod.index import open_index
from tests import photos
from tests.test_daemon import DaemonProcess, run_once

pytestmark = pytest.mark.timeout(400)


def _photo_folder(folder: Path, count: int) -> list[Path]:
    folder.mkdir()
    names = ("chelsea", "coffee", "astronaut", "rocket")
    return [
        photos.write_jpeg(folder / f"p{i:02d}.jpg", photos.real_photo(names[i % 4], 0.9 + i / 100))
        for i in range(count)
    ]


@pytest.mark.parametrize("mode", [("--suggest",), ("--suggest", "--once"), ("--group",)])
def test_sigterm_stops_within_ten_seconds_between_photos(tmp_path: Path, mode: tuple[str, ...]):
    folder = tmp_path / "import"
    paths = _photo_folder(folder, 48)
    db_path = tmp_path / "index.db"
    with DaemonProcess([folder], db_path, *mode) as daemon:
        daemon.wait_for(lambda: len(daemon.results) >= 1, 180, "the first photo")
        started = time.monotonic()
        daemon.proc.send_signal(signal.SIGTERM)
        code = daemon.proc.wait(timeout=60)
        elapsed = time.monotonic() - started
        assert code == 0, daemon.log_text()[-3000:]
        assert elapsed <= 10.0, f"took {elapsed:.1f} s to stop"
        done = len(daemon.results)
    db = open_index(db_path)
    try:
        (run,) = list(db.query("SELECT * FROM daemon_runs"))
        assert run["stopped_at"] is not None and run["stop_reason"] == "SIGTERM"
        rows = db.execute("SELECT count(*) FROM photos WHERE status = 'ok'").fetchone()[0]
    finally:
        db.close()
    if mode != ("--group",):  # plain scoring is quick enough to finish a chunk; suggest is not
        assert done < len(paths), "stopped only after every photo"
    assert rows == done  # every result reported has its row, nothing half-done
    # The next run does the rest, each photo once.
    rest = run_once(str(folder), "--db", str(db_path), "--device", "cpu")
    assert len(rest) == len(paths) - done
    assert {r["path"] for r in rest}.isdisjoint({r["path"] for r in daemon.results})


@pytest.fixture()
def shared_folder():
    """A world-writable folder outside pytest's private tmp (which nobody may not enter)."""
    import os
    import shutil
    import tempfile

    if os.geteuid() != 0:
        pytest.skip("needs root to run the daemon as another user")
    folder = Path(tempfile.mkdtemp(prefix="photod-watch-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        subprocess_safe_chmod(folder)
        shutil.rmtree(folder, ignore_errors=True)


def subprocess_safe_chmod(folder: Path) -> None:
    import os

    for dirpath, dirnames, _ in os.walk(folder):
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), 0o755)


def test_missed_events_are_recovered_and_unwatchable_folders_logged(
    shared_folder: Path, scorer, caplog, monkeypatch
):
    """A folder watchdog could not watch (no permission when the daemon started) gets no events
    even once it is readable; the periodic reconciliation scan finds its photos. No file is
    stat'ed in watchdog's threads."""
    import logging
    import os
    import threading

    import watchdog.observers
    import watchdog.observers.inotify  # noqa: F401  (imported as root: nobody cannot read /root)
    from watchdog.observers.api import BaseObserver, EventEmitter

    from photod.daemon import Daemon

    warm = shared_folder / "warm"
    warm.mkdir()
    photos.write_jpeg(warm / "w.jpg", photos.real_photo("coffee", 0.3))
    Daemon([warm], scorer, shared_folder / "warm.db", once=True, settle_seconds=0.1).run()

    root = shared_folder / "import"
    locked = root / "locked"
    locked.mkdir(parents=True)
    for folder in (root, locked):
        os.chown(folder, 65534, 65534)
    locked.chmod(0o000)

    in_watchdog: list[str] = []
    real_stat = os.stat

    def spying_stat(path, *args, **kwargs):
        if str(path).endswith(".jpg") and isinstance(
            threading.current_thread(), BaseObserver | EventEmitter
        ):
            in_watchdog.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", spying_stat)
    results: list = []
    os.setegid(65534)
    os.seteuid(65534)  # the daemon runs as a user who may not read `locked`
    try:
        daemon = Daemon(
            [root],
            scorer,
            shared_folder / "index.db",
            settle_seconds=0.2,
            rescan_interval=2.0,
            on_result=results.append,
        )
        with caplog.at_level(logging.INFO, logger="photod"):
            thread = threading.Thread(target=daemon.run, daemon=True)
            thread.start()
            assert daemon.ready.wait(120)
            seen = photos.write_jpeg(root / "seen.jpg", photos.real_photo("chelsea", 0.4))
            locked.chmod(0o755)  # readable now, but watchdog never added a watch for it
            late = photos.write_jpeg(locked / "late.jpg", photos.real_photo("rocket", 0.4))
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and {r.path for r in results} < {
                str(seen),
                str(late),
            }:
                time.sleep(0.2)
            daemon.stop()
            thread.join(timeout=30)
    finally:
        os.seteuid(0)
        os.setegid(0)
    assert f"cannot watch {locked}" in caplog.text
    by_path = {r.path: r for r in results}
    assert by_path[str(seen)].action == "scored"
    assert by_path[str(late)].action == "scored", caplog.text[-3000:]
    assert "reconciliation scan: 1 photos to process" in caplog.text
    assert in_watchdog == []


def test_an_inotify_queue_overflow_triggers_a_reconciliation_scan(tmp_path: Path):
    """A real overflow: the daemon is stopped (SIGSTOP) while more events than the kernel queues
    (fs.inotify.max_queued_events) arrive, then two photos; their events are dropped by the
    kernel. On SIGCONT the daemon reads the overflow marker and rescans at once (the periodic
    scan is an hour away), so both photos are scored."""
    import os

    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    folder = tmp_path / "import"
    folder.mkdir()
    filler = folder / "filler"
    filler.mkdir()
    db_path = tmp_path / "index.db"
    with DaemonProcess([folder], db_path, env={"PHOTOD_RESCAN_INTERVAL": "3600"}) as daemon:
        daemon.wait_ready()
        daemon.proc.send_signal(signal.SIGSTOP)
        try:
            for i in range(limit + 1000):  # each file: at least a create and a close event
                os.close(os.open(filler / f"{i}.txt", os.O_CREAT | os.O_WRONLY, 0o644))
            lost = [
                photos.write_jpeg(folder / "lost-1.jpg", photos.real_photo("chelsea", 0.4)),
                photos.write_jpeg(folder / "lost-2.jpg", photos.real_photo("rocket", 0.4)),
            ]
        finally:
            daemon.proc.send_signal(signal.SIGCONT)
        for path in lost:
            daemon.wait_result(path, timeout=120)
        assert "inotify queue overflow: a reconciliation scan follows" in daemon.log_text()
        assert [r["action"] for r in daemon.results_for(lost[0])] == ["scored"]
        assert daemon.stop() == 0
