"""Shared helpers: repeated timing (median, min, max), machine description, table and JSON output."""

from __future__ import annotations

import json
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """Median, min and max of repeated measurements (plus the raw values)."""
    if not values:
        return {"median": None, "min": None, "max": None, "runs": 0, "values": []}
    return {
        "median": round(statistics.median(values), digits),
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "runs": len(values),
        "values": [round(v, digits) for v in values],
    }


def time_call(func: Callable[[], Any]) -> tuple[float, Any]:
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        import psutil

        return round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        return None


def machine_info(device: str = "cpu") -> dict[str, Any]:
    """What the figures were measured on; the load average shows whether the machine was quiet."""
    import PIL
    import PIL.features
    import torch

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": bool(PIL.features.check_feature("libjpeg_turbo")),
        "device": device,
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def write_json(path: str | os.PathLike[str], data: dict[str, Any]) -> Path:
    """Write results as indented JSON (temp file + rename, so a crash never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A plain fixed-width text table."""
    cells = [[str(c) for c in header]] + [[_fmt(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cells[0], widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)


def fmt_stat(stat: dict[str, Any] | None, unit: str = "") -> str:
    """`median (min-max) unit` for a summary dict."""
    if not stat or stat.get("median") is None:
        return "n/a"
    return f"{_fmt(stat['median'])} ({_fmt(stat['min'])}-{_fmt(stat['max'])}){unit}"


def fresh_copy(source: Path, dest: Path, names: Sequence[str] | None = None) -> Path:
    """Copies of `source`'s files (or only `names`) in an empty `dest`, so that a timed run
    never finds ratings written by an earlier one.

    Copies, not hard links: photod refuses to rewrite a photo with other links (the rename would
    split them; `hard_link` in `photod.metadata.atomic`), so a linked input would only measure
    that refusal. The copy is flushed (`sync`) before the run it prepares; `check_unchanged`
    still verifies that the cached inputs are never modified.
    """
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for name in names if names is not None else sorted(p.name for p in source.iterdir()):
        shutil.copy2(source / name, dest / name)
    sync()
    return dest


def stat_signature(paths: Sequence[Path]) -> list[tuple[int, int]]:
    return [(os.stat(p).st_size, os.stat(p).st_mtime_ns) for p in paths]


def check_unchanged(paths: Sequence[Path], before: list[tuple[int, int]]) -> None:
    """Raise if a cached input changed (it would make every later measurement wrong)."""
    if stat_signature(paths) != before:
        raise RuntimeError(
            "benchmark inputs were modified in place; delete the inputs folder and run again"
        )


def sync() -> None:
    """Flush dirty pages so that one measurement does not pay for the previous one's writes."""
    try:
        os.sync()
    except AttributeError:  # not on POSIX
        subprocess.run(["sync"], check=False)
