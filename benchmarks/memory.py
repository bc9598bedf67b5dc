"""Peak memory of the daemon during a burst: 2,000 photos land in a watched folder at once.

The real `photod watch` runs in a subprocess; after a warm-up photo (model loaded) the benchmark
writes the burst as fast as it can, like a card import, and waits until every photo has its row
in the index. The daemon's resident memory is sampled every 50 ms with psutil (children
included), and Linux's own high-water mark (VmHWM in /proc/PID/status) is read at the end, so a
spike between two samples is not missed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from benchmarks import inputs
from benchmarks.latency import ExifTool, WatchProcess, drop_photo, wait_for_rating

log = logging.getLogger("photod")


def vm_hwm_mb(pid: int) -> float | None:
    """Peak resident set size of `pid` over its life, from the kernel (Linux only)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return None


class RssSampler(threading.Thread):
    """Samples the RSS of a process and its children until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        import psutil

        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak_mb = 0.0
        self.samples: list[tuple[float, float]] = []
        self._halt = threading.Event()

    def rss_mb(self) -> float:
        import psutil

        total = 0
        try:
            total = self.process.memory_info().rss
            for child in self.process.children(recursive=True):
                try:
                    total += child.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        return total / 2**20

    def run(self) -> None:
        start = time.perf_counter()
        while not self._halt.is_set():
            rss = self.rss_mb()
            self.peak_mb = max(self.peak_mb, rss)
            self.samples.append((round(time.perf_counter() - start, 2), round(rss, 1)))
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


def indexed_count(db: Path) -> int:
    """Rows the daemon has committed (any status), read without disturbing its writes."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM photos").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def run(
    workdir: Path,
    files: int = 2000,
    size: tuple[int, int] = inputs.DEFAULT_SIZE,
    device: str = "cpu",
    batch_size: int | None = None,
    timeout: float = 1800.0,
    model: str | None = None,
) -> dict[str, Any]:
    """Burst `files` photos into a watched folder; peak RSS and time to index them all."""
    import shutil

    jpegs = inputs.cached_jpeg_set(workdir, size, distinct=min(files, 12))
    folder = workdir / "burst"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    db = workdir / "burst.db"
    for stale in db.parent.glob(db.name + "*"):
        stale.unlink()
    extra = ["--device", device] + (["--batch-size", str(batch_size)] if batch_size else [])
    if model:
        extra += ["--model", model]
    watcher = WatchProcess(folder, db, extra)
    sampler = None
    try:
        exiftool = ExifTool()
        try:
            path, _ = drop_photo(jpegs, 100_000, folder)
            if wait_for_rating(exiftool, path, 300, watcher) is None:
                raise RuntimeError("warm-up photo never rated:\n" + watcher.log_tail())
        finally:
            exiftool.close()
        sampler = RssSampler(watcher.pid)
        idle_mb = sampler.rss_mb()
        sampler.start()
        start = time.perf_counter()
        for i in range(files):
            jpegs.write(i, folder)
        written = time.perf_counter() - start
        expected = files + 1
        while (count := indexed_count(db)) < expected:
            if not watcher.alive():
                raise RuntimeError("photod watch exited:\n" + watcher.log_tail())
            if time.perf_counter() - start > timeout:
                raise RuntimeError(f"only {count} of {expected} indexed after {timeout} s")
            time.sleep(0.25)
        drained = time.perf_counter() - start
        sampler.stop()
        hwm = vm_hwm_mb(watcher.pid)
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        watcher.stop()
    return {
        "files": files,
        "size": f"{size[0]}x{size[1]}",
        "mean_file_mb": round(sum(len(j) for j in jpegs.encoded) / len(jpegs.encoded) / 1e6, 2),
        "idle_rss_mb": round(idle_mb, 1),
        "peak_rss_mb_sampled": round(sampler.peak_mb, 1),
        "peak_rss_mb_vmhwm": hwm,
        "seconds_to_write_burst": round(written, 2),
        "seconds_until_all_indexed": round(drained, 2),
        "photos_per_s_during_burst": round(files / drained, 2),
        "rss_timeline_mb": sampler.samples[:: max(1, len(sampler.samples) // 60)],
    }


def table(result: dict[str, Any]) -> str:
    from benchmarks import common

    rows = [
        ["burst", f"{result['files']} x {result['size']} ({result['mean_file_mb']} MB each)"],
        ["idle RSS (model loaded)", f"{result['idle_rss_mb']} MB"],
        ["peak RSS (sampled)", f"{result['peak_rss_mb_sampled']} MB"],
        ["peak RSS (kernel VmHWM)", f"{result['peak_rss_mb_vmhwm']} MB"],
        ["all indexed after", f"{result['seconds_until_all_indexed']} s"],
        ["rate during burst", f"{result['photos_per_s_during_burst']} photos/s"],
    ]
    return common.format_table(rows, ["memory", "value"])
