"""A card's worth of photos at once: 1,000 small real JPEGs through a real `photod watch`, and
kill -9 in the middle of a burst followed by a restart (exactly once, nothing damaged).

Images are small (96x64) so the model, not decoding, sets the pace; the model itself always
runs at 224 px, so on a 2-core machine the burst costs about a minute of CPU.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image

from photod.metadata import TEMP_PREFIX
from tests import photos
from tests.test_daemon import DaemonProcess, rows_by_name, run_once

EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"
# Shared CI machines: one torch thread per daemon keeps spinning threads from burning the CPU.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _small_jpegs(count: int) -> list[bytes]:
    """`count` distinct real JPEGs (a photo with a few pixels changed per file), 96x64."""
    base = photos.real_photo("chelsea", 96 / 451)
    exif = photos.camera_exif()
    out = []
    for i in range(count):
        pixels = base.copy()
        pixels[i % pixels.shape[0], (i // pixels.shape[0]) % pixels.shape[1]] = (i % 256, 0, 255)
        pixels[-1, i % pixels.shape[1], 0] = i // 256
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=90, exif=exif)
        out.append(buffer.getvalue())
    return out


def _decoded(data_or_path: bytes | Path) -> np.ndarray:
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    with Image.open(source) as im:
        return np.asarray(im.convert("RGB"))


def _ratings(folder: Path) -> dict[str, int]:
    out = subprocess.run(
        [EXIFTOOL, "-json", "-q", "-XMP-xmp:Rating", "-ext", "jpg", str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    return {Path(d["SourceFile"]).name: d.get("Rating") for d in json.loads(out or "[]")}


def _count_rows(db_path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM photos WHERE status = 'ok'").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


class _Memory:
    """Samples a process's RSS in the background, with how many photos were done at the time."""

    def __init__(self, pid: int, done: Callable[[], int]) -> None:
        self.process = psutil.Process(pid)
        self.done = done
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.samples.append((self.done(), self.process.memory_info().rss))
            except psutil.Error:
                return
            self._stop.wait(0.25)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak(self, done_from: int = 0, done_to: int = 10**9) -> int:
        return max(rss for done, rss in self.samples if done_from <= done < done_to)


@pytest.mark.slow
def test_burst_of_1000_jpegs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "import"
    folder.mkdir()
    db_path = tmp_path / "index.db"
    files = _small_jpegs(1000)
    with DaemonProcess([folder], db_path) as daemon:
        daemon.wait_ready()
        process = psutil.Process(daemon.pid)
        baseline = process.memory_info().rss
        cpu_before = sum(process.cpu_times()[:2])
        memory = _Memory(daemon.pid, lambda: len(daemon.results))
        started = time.monotonic()
        for i, data in enumerate(files):
            with open(folder / f"IMG_{i:04d}.jpg", "wb") as handle:
                handle.write(data)
        written = time.monotonic()
        daemon.wait_for(lambda: len(daemon.results) >= 1000, 900, "1000 results")
        elapsed = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        memory.stop()
        assert daemon.stop() == 0
    # The first batches allocate the model's working memory once; after that the footprint must
    # not grow with the backlog (about 900 photos queued behind the model at the start).
    warm = memory.peak(0, 200)
    peak = memory.peak()

    print(
        f"\nburst: 1000 JPEGs written in {written - started:.1f} s, all processed in "
        f"{elapsed:.1f} s = {1000 / elapsed:.1f} photos/s; daemon CPU {cpu:.1f} s; "
        f"RSS {baseline / 2**20:.0f} MiB idle, {warm / 2**20:.0f} MiB after 200 photos, "
        f"{peak / 2**20:.0f} MiB peak"
    )
    actions = {}
    for result in daemon.results:
        actions.setdefault(result["path"], []).append(result["action"])
    assert len(actions) == 1000
    assert all(a == ["scored"] for a in actions.values()), "every photo scored exactly once"
    rows = rows_by_name(db_path)
    assert len(rows) == 1000 and all(r["status"] == "ok" for r in rows.values())
    # Memory stays bounded: the queue holds paths, decoding runs two batches ahead of the model.
    assert peak - warm < 150 * 2**20, f"RSS grew by {(peak - warm) / 2**20:.0f} MiB after warm-up"
    assert peak < 3 * 2**30
    ratings = _ratings(folder)
    assert {name: ratings.get(name) for name in rows} == {n: r["stars"] for n, r in rows.items()}
    assert not list(folder.glob(TEMP_PREFIX + "*"))


@pytest.mark.slow
def test_kill_9_mid_burst_then_restart_is_exactly_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in ONE_THREAD.items():
        monkeypatch.setenv(key, value)
    folder = tmp_path / "import"
    folder.mkdir()
    db_path = tmp_path / "index.db"
    files = _small_jpegs(300)
    originals = {f"IMG_{i:04d}.jpg": _decoded(data) for i, data in enumerate(files)}

    with DaemonProcess([folder], db_path) as daemon:
        daemon.wait_ready()
        for i, data in enumerate(files):
            with open(folder / f"IMG_{i:04d}.jpg", "wb") as handle:
                handle.write(data)
        daemon.wait_for(lambda: _count_rows(db_path) >= 60, 600, "60 committed rows")
        daemon.proc.send_signal(signal.SIGKILL)
        daemon.proc.wait(timeout=30)
    committed = {n for n, r in rows_by_name(db_path).items() if r["status"] == "ok"}
    assert 60 <= len(committed) < 300, "the kill landed mid-burst"

    # Restart: the catch-up finishes the job.
    second = run_once(str(folder), "--db", str(db_path), "--device", "cpu")
    redone = {Path(r["path"]).name for r in second}
    assert all(r["action"] == "scored" for r in second), second[:3]
    assert not redone & committed, "a photo with a committed row was processed again"
    assert redone | committed == set(originals)

    rows = rows_by_name(db_path)
    assert len(rows) == 300 and all(r["status"] == "ok" for r in rows.values())
    conn = sqlite3.connect(db_path)
    dupes = conn.execute(
        "SELECT original_hash FROM photos GROUP BY original_hash HAVING count(*) > 1"
    ).fetchall()
    conn.close()
    assert dupes == []
    assert not [p for p in folder.iterdir() if p.name.startswith(TEMP_PREFIX)], "temp files left"
    for name, pixels in originals.items():
        np.testing.assert_array_equal(_decoded(folder / name), pixels, err_msg=name)
    ratings = _ratings(folder)
    assert {name: ratings.get(name) for name in rows} == {n: r["stars"] for n, r in rows.items()}
    # A last run finds nothing left to do.
    assert run_once(str(folder), "--db", str(db_path), "--device", "cpu") == []
    assert set(os.listdir(folder)) == set(originals)  # nothing but the photos themselves
