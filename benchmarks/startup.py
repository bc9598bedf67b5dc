"""Start-up: `photod score ONE.jpg` in a new process, wall and CPU time, and where they go.

    python -m benchmarks startup -- [--runs 3] [--out FILE]

Each run starts a fresh `photod score --json` on one 24 MP JPEG (a new file every run) and
records its wall time and CPU time (user + system, from the child's rusage). One more run with
`-X importtime` attributes the import time to the heaviest top-level modules, and one process
with timers splits import, model load and the first photo. The load average is recorded with every figure: on a busy machine wall time is
mostly waiting for a core, so CPU time is the figure to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common, inputs

PHASES = r"""
import json, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
import torch  # noqa
t1 = time.perf_counter(); c1 = time.process_time()
from photod.scoring import Scorer
scorer = Scorer(device="cpu")
scorer.net
t2 = time.perf_counter(); c2 = time.process_time()
list(scorer.score_paths([sys.argv[1]]))
t3 = time.perf_counter(); c3 = time.process_time()
print(json.dumps({"import_torch": [t1 - t0, c1 - c0], "model_load": [t2 - t1, c2 - c1],
                  "first_photo": [t3 - t2, c3 - c2]}))
"""


def photod_exe() -> list[str]:
    return [sys.executable, "-m", "photod"]


def one_run(photo: Path) -> dict[str, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    out = subprocess.run(
        [*photod_exe(), "score", "--json", "--device", "cpu", str(photo)],
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    json.loads(out.stdout.splitlines()[-1])  # it really scored the photo
    return {"wall_s": wall, "cpu_s": cpu, "load_1min": load}


def import_breakdown(photo: Path, top: int = 8) -> list[dict[str, Any]]:
    """The heaviest modules imported by `photod score` (cumulative, as `-X importtime` says)."""
    out = subprocess.run(
        [
            sys.executable,
            "-X",
            "importtime",
            "-m",
            "photod",
            "score",
            "--device",
            "cpu",
            str(photo),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, raw_name = line[len("import time:") :].split("|")
        depth = len(raw_name) - len(raw_name.lstrip()) - 1  # two spaces per nesting level
        if cumulative.strip().isdigit() and depth <= 2:
            rows.append((int(cumulative), raw_name.strip()))
    rows.sort(reverse=True)
    top_rows = rows[:top]
    return [{"module": n, "seconds": round(c / 1e6, 3)} for c, n in top_rows]


def phases(photo: Path) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", PHASES, str(photo)], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out.splitlines()[-1])
    return {k: {"wall_s": round(v[0], 3), "cpu_s": round(v[1], 3)} for k, v in data.items()}


def run(workdir: Path, runs: int = 3) -> dict[str, Any]:
    jpegs = inputs.cached_jpeg_set(workdir, inputs.DEFAULT_SIZE, distinct=1, kind="smooth")
    folder = workdir / "startup"
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(runs + 1):  # the first run warms the page cache; not counted
        photo = folder / "one.jpg"
        photo.write_bytes(jpegs.data(i, run=int(time.time())))
        sample = one_run(photo)
        if i:
            samples.append(sample)
    return {
        "runs": runs,
        "wall_s": common.summary([s["wall_s"] for s in samples]),
        "cpu_s": common.summary([s["cpu_s"] for s in samples]),
        "load_1min": common.summary([s["load_1min"] for s in samples], 2),
        "phases_one_process": phases(folder / "one.jpg"),
        "heaviest_imports": import_breakdown(folder / "one.jpg"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks startup")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/photod-bench"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    result = {"machine": common.machine_info("cpu"), "startup": run(args.workdir, args.runs)}
    result["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(json.dumps(result, indent=2))
    if args.out:
        common.write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
