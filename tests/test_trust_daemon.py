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
