"""`python -m benchmarks`: run photod's benchmarks, print tables, write one JSON file.

    python -m benchmarks                 # everything, full size (>= 200 24 MP JPEGs, 2,000 burst)
    python -m benchmarks throughput latency --runs 5
    python -m benchmarks --quick         # tiny inputs: checks that every benchmark runs
    python -m benchmarks --list          # also lists other teams' benchmark modules

Sub-benchmarks: throughput (end-to-end photos/s vs naive, breakdown), latency (daemon close ->
rating, suggest), memory (daemon peak RSS in a burst), formats (PNG/TIFF/HEIC/DNG). Other modules
of this package with a `main(argv)` (e.g. suggest_quality, cull_speed) are listed and run by
name; their own arguments follow `--`.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import common

OWN = ("throughput", "scoring", "latency", "memory", "formats")
# Modules of this package that are helpers, not benchmarks.
HELPERS = {"common", "inputs", "report", "__main__", "__init__"}


def other_benchmarks() -> list[str]:
    """Benchmark modules others added to this package (each runnable by name)."""
    here = Path(__file__).parent
    names = sorted(p.stem for p in here.glob("*.py"))
    return [n for n in names if n not in HELPERS and n not in OWN]


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"size must look like 6000x4000, not {text!r}") from exc
    if w < 32 or h < 32:
        raise argparse.ArgumentTypeError("size must be at least 32x32")
    return w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("benchmarks", nargs="*", help=f"which to run (default: {' '.join(OWN)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--quick", action="store_true", help="tiny inputs, one run (smoke test)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("PHOTOD_BENCH_DIR", "/tmp/photod-bench")),
        help="inputs (cached) and scratch copies",
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON results file")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: photod's (8 on CPU, 64 on GPU)"
    )
    parser.add_argument("--runs", type=int, default=3, help="repetitions for median/min/max")
    parser.add_argument("--photos", type=int, default=200, help="JPEGs for throughput")
    parser.add_argument("--naive-photos", type=int, default=24, help="JPEGs the naive run uses")
    parser.add_argument(
        "--kinds", default="smooth,grainy", help="throughput inputs: smooth and/or grainy JPEGs"
    )
    parser.add_argument("--size", type=parse_size, default=(6000, 4000), help="JPEG size WxH")
    parser.add_argument(
        "--write-mode",
        default="score,none,auto",
        help="throughput pipelines, comma-separated, the first is the headline: score (`photod "
        "score`), none, auto, sidecar (process_paths with that rating write mode)",
    )
    parser.add_argument("--samples", type=int, default=5, help="photos per daemon latency figure")
    parser.add_argument("--burst-files", type=int, default=2000)
    parser.add_argument(
        "--burst-size",
        type=parse_size,
        default=(3000, 2000),
        help="burst photo size (default 6 MP: 2,000 x 24 MP is 16 GB to write, then rewrite)",
    )
    parser.add_argument(
        "--configs",
        default=None,
        help="scoring sweep: BATCH:TORCH_THREADS:DECODERS,... (e.g. 32:2:2,32:1:2)",
    )
    parser.add_argument("--no-raw", action="store_true", help="throughput: skip the DNG runs")
    parser.add_argument("--no-breakdown", action="store_true", help="throughput: no breakdown")
    parser.add_argument(
        "--naive-writes",
        action="store_true",
        help="throughput: run the naive pipeline with each write mode too (default: no writes)",
    )
    parser.add_argument("--model", default=None, help="model name (default: photod's)")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser


def quick(args: argparse.Namespace) -> None:
    """Small enough for a unit test on a busy 2-core machine, big enough to exercise every path."""
    args.size = (640, 427)
    args.burst_size = args.size
    args.write_mode = "score,auto"
    args.photos = min(args.photos, 6)
    args.naive_photos = min(args.naive_photos, 2)
    args.runs = 1
    args.samples = 1
    args.burst_files = min(args.burst_files, 8)
    args.batch_size = min(args.batch_size or 4, 4)


def run_own(name: str, args: argparse.Namespace) -> dict[str, Any]:
    workdir = args.workdir
    common_kw = {"device": args.device, "batch_size": args.batch_size, "model": args.model}
    if name == "throughput":
        from benchmarks import throughput

        return throughput.run(
            workdir,
            photos=args.photos,
            naive_photos=args.naive_photos,
            runs=args.runs,
            size=args.size,
            write_mode=args.write_mode,
            kinds=args.kinds,
            raw=not args.no_raw,
            naive_writes=args.naive_writes,
            breakdown_photos=0 if args.no_breakdown else 4 if args.quick else 16,
            **common_kw,
        )
    if name == "scoring":
        from benchmarks import scoring

        configs = scoring.parse_configs(args.configs) if args.configs else None
        return scoring.run(workdir, args.photos, args.size, args.runs, configs=configs, **common_kw)
    if name == "latency":
        from benchmarks import latency

        return latency.run(
            workdir,
            samples=args.samples,
            size=args.size,
            suggest_runs=args.runs,
            settle_values=(None,) if args.quick else (None, 0.2),
            **common_kw,
        )
    if name == "memory":
        from benchmarks import memory

        return memory.run(workdir, files=args.burst_files, size=args.burst_size, **common_kw)
    if name == "formats":
        from benchmarks import formats

        per_format, scale = (1, 0.1) if args.quick else (3, 1.0)
        return formats.run(workdir, per_format, scale, runs=args.runs, **common_kw)
    raise ValueError(name)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough: list[str] = []
    if "--" in argv:
        passthrough = argv[argv.index("--") + 1 :]
        argv = argv[: argv.index("--")]
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    others = other_benchmarks()
    if args.list:
        for name in OWN:
            print(f"{name}  (photod benchmarks)")
        for name in others:
            print(f"{name}  (python -m benchmarks {name} -- ARGS)")
        return 0
    names = args.benchmarks or list(OWN)
    unknown = [n for n in names if n not in OWN and n not in others]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; see --list", file=sys.stderr)
        return 2
    if args.quick:
        quick(args)
    args.workdir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"machine": common.machine_info(args.device)}
    results["settings"] = {
        k: v for k, v in vars(args).items() if k not in ("benchmarks", "list", "verbose")
    }
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out = args.out or args.workdir / f"results-{args.device}-{stamp}.json"
    status = 0
    for name in names:
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        if name in others:
            status = max(status, run_other(name, passthrough, results))
            continue
        try:
            result = run_own(name, args)
        except Exception as exc:  # one failing benchmark must not lose the others' figures
            logging.getLogger("photod").exception("benchmark %s failed", name)
            print(f"{name} failed: {type(exc).__name__}: {exc}", flush=True)
            results[name] = {"error": f"{type(exc).__name__}: {exc}"}
            status = 1
            continue
        result["benchmark_seconds"] = round(time.perf_counter() - started, 1)
        results[name] = result
        print(importlib.import_module(f"benchmarks.{name}").table(result), flush=True)
        common.write_json(out, results)  # after each, so a later crash keeps earlier figures
    results["machine"]["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    common.write_json(out, results)
    print(f"\nresults: {out}")
    return status


def run_other(name: str, argv: list[str], results: dict[str, Any]) -> int:
    """Another team's benchmark module: its `main(argv)`, or `python -m benchmarks.NAME`."""
    import subprocess

    module = importlib.import_module(f"benchmarks.{name}")
    entry = getattr(module, "main", None)
    if entry is not None:
        rc = entry(argv) or 0
    else:
        rc = subprocess.run([sys.executable, "-m", f"benchmarks.{name}", *argv]).returncode
    results[name] = {"exit_status": rc}
    return 1 if rc else 0


if __name__ == "__main__":
    sys.exit(main())
