"""Latency: a photo closed in a watched folder -> its rating readable by exiftool; and `suggest`.

Daemon latency runs the real `photod watch` in a subprocess (real inotify through watchdog, real
index, real rating writes). The benchmark writes a 24 MP JPEG into the folder (open, write,
close: the clock starts at close) and polls `exiftool -XMP:Rating` on the photo and on both
sidecar names through one `exiftool -stay_open` process (a fresh exiftool per poll would add
~150 ms of Perl start-up to every sample). The daemon is idle before each photo; a first photo
warms it up and is not counted.

Suggest latency calls `photod.suggest.suggest_photo(path, scorer)` on a 24 MP photo: decode once,
search candidates in batches; candidates per second comes from the suggestion's own count.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common, inputs

log = logging.getLogger("photod")


class ExifTool:
    """One long-lived `exiftool -stay_open` process answering rating queries."""

    def __init__(self) -> None:
        exe = shutil.which("exiftool")
        if exe is None:
            raise RuntimeError("exiftool is not installed (needed to read ratings independently)")
        self.proc = subprocess.Popen(
            [exe, "-stay_open", "True", "-@", "-"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )

    def rating(self, path: Path) -> str | None:
        """xmp:Rating of `path` or of its sidecars, as exiftool reads it (None when absent)."""
        candidates = [path, path.with_name(path.name + ".xmp"), path.with_name(path.stem + ".xmp")]
        for candidate in candidates:
            if not candidate.exists():
                continue
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(f"-s3\n-XMP:Rating\n{candidate}\n-execute\n")
            self.proc.stdin.flush()
            lines = []
            while (line := self.proc.stdout.readline()) and line.strip() != "{ready}":
                lines.append(line.strip())
            value = "".join(lines).strip()
            if value:
                return value
        return None

    def close(self) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("-stay_open\nFalse\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()


class WatchProcess:
    """`photod watch FOLDER` in a subprocess, stopped with SIGTERM (its clean shutdown path)."""

    def __init__(self, folder: Path, db: Path, extra: list[str] | None = None) -> None:
        cmd = [sys.executable, "-m", "photod", "--log-level", "info", "watch", str(folder)]
        cmd += ["--db", str(db), "--json", *(extra or [])]
        self.log_path = db.with_suffix(".log")
        self._log = open(self.log_path, "w")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text().splitlines()[-lines:])
        except OSError:
            return ""


def wait_for_rating(
    exiftool: ExifTool, path: Path, timeout: float, watcher: WatchProcess, poll: float = 0.02
) -> float | None:
    """Seconds until exiftool reads a rating for `path`, or None after `timeout`."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if exiftool.rating(path) is not None:
            return time.perf_counter() - start
        if not watcher.alive():
            raise RuntimeError("photod watch exited:\n" + watcher.log_tail())
        time.sleep(poll)
    return None


def drop_photo(jpegs: inputs.JpegSet, index: int, folder: Path) -> tuple[Path, float]:
    """Write photo `index` into `folder` like a copy does (open, write, close); the close time."""
    path = folder / inputs.jpeg_name(index)
    data = jpegs.data(index)
    with open(path, "wb") as handle:
        handle.write(data)
    return path, time.perf_counter()


def daemon_latency(
    workdir: Path,
    jpegs: inputs.JpegSet,
    samples: int = 5,
    extra: list[str] | None = None,
    label: str = "default",
    idle: float = 1.5,
    timeout: float = 120.0,
) -> dict[str, Any]:
    """Median/min/max seconds from close to readable rating over `samples` photos."""
    folder = workdir / f"watch-{label}"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    db = workdir / f"watch-{label}.db"
    for stale in db.parent.glob(db.name + "*"):
        stale.unlink()
    watcher = WatchProcess(folder, db, extra)
    exiftool = ExifTool()
    values: list[float] = []
    try:
        # Warm-up: model load and first inference; not counted.
        path, closed = drop_photo(jpegs, 10_000, folder)
        waited = wait_for_rating(exiftool, path, timeout, watcher)
        if waited is None:
            raise RuntimeError("no rating for the warm-up photo:\n" + watcher.log_tail())
        warmup = time.perf_counter() - closed
        for i in range(samples):
            time.sleep(idle)  # an idle daemon, as when a single photo arrives
            path, closed = drop_photo(jpegs, 10_001 + i, folder)
            waited = wait_for_rating(exiftool, path, timeout, watcher)
            if waited is None:
                raise RuntimeError(f"no rating for {path.name} after {timeout} s")
            values.append(time.perf_counter() - closed)
    finally:
        exiftool.close()
        watcher.stop()
    return {
        "label": label,
        "options": extra or [],
        "seconds": common.summary(values, 3),
        "warmup_seconds_incl_model_load": round(warmup, 2),
    }


def suggest_latency(
    workdir: Path,
    jpegs: inputs.JpegSet,
    runs: int = 3,
    device: str = "cpu",
    batch_size: int | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    """`suggest_photo` on a 24 MP photo: seconds, candidates, candidates per second."""
    try:
        from photod.suggest import suggest_photo
    except ImportError as exc:
        return {"skipped": f"photod.suggest is not available ({exc})"}
    from benchmarks.throughput import make_scorer

    folder = workdir / "suggest"
    folder.mkdir(parents=True, exist_ok=True)
    path = jpegs.write(0, folder)
    scorer = make_scorer(device, batch_size, model)
    suggest_photo(path, scorer)  # warm-up (lazy imports, allocator)
    seconds, rates, candidates = [], [], []
    for _ in range(runs):
        start = time.perf_counter()
        suggestion = suggest_photo(path, scorer)
        elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        candidates.append(suggestion.candidates)
        rates.append(suggestion.candidates / elapsed)
    return {
        "photo": f"{path.name} ({os.path.getsize(path) / 1e6:.1f} MB)",
        "seconds": common.summary(seconds, 3),
        "candidates": common.summary([float(c) for c in candidates], 0),
        "candidates_per_s": common.summary(rates, 1),
    }


def run(
    workdir: Path,
    samples: int = 5,
    size: tuple[int, int] = inputs.DEFAULT_SIZE,
    device: str = "cpu",
    batch_size: int | None = None,
    settle_values: tuple[float | None, ...] = (None, 0.2),
    suggest_runs: int = 3,
    model: str | None = None,
) -> dict[str, Any]:
    """Daemon latency (default settings, then each settle time in `settle_values`) and suggest."""
    jpegs = inputs.cached_jpeg_set(workdir, size, distinct=12)
    result: dict[str, Any] = {"size": f"{size[0]}x{size[1]}", "daemon": []}
    base = ["--device", device] + (["--batch-size", str(batch_size)] if batch_size else [])
    if model:
        base += ["--model", model]
    for settle in settle_values:
        extra = base + ([] if settle is None else ["--settle-seconds", str(settle)])
        label = "default" if settle is None else f"settle{settle}"
        result["daemon"].append(daemon_latency(workdir, jpegs, samples, extra, label))
    result["suggest"] = suggest_latency(
        workdir, jpegs, suggest_runs, device=device, batch_size=batch_size, model=model
    )
    return result


def table(result: dict[str, Any]) -> str:
    rows = []
    for entry in result["daemon"]:
        options = entry["options"]
        settle = (
            options[options.index("--settle-seconds") + 1]
            if "--settle-seconds" in options
            else None
        )
        label = f"settle {settle} s" if settle else "default settings"
        rows.append([f"daemon close -> rating ({label})", common.fmt_stat(entry["seconds"], " s")])
    suggest = result["suggest"]
    if "skipped" in suggest:
        rows.append(["suggest", suggest["skipped"]])
    else:
        rows.append([f"suggest ({result['size']})", common.fmt_stat(suggest["seconds"], " s")])
        rows.append(["  candidates", common.fmt_stat(suggest["candidates"])])
        rows.append(["  candidates/s", common.fmt_stat(suggest["candidates_per_s"])])
    return common.format_table(rows, ["latency", "median (min-max)"])
