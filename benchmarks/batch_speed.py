"""`photod batch` (Ray Data) against `photod score` (one process) on the same photos.

Run: `python -m benchmarks.batch_speed [--photos 2000] [--size 6000x4000] [--quick]`
(needs the ray extra). In one process, on the same cached camera JPEGs (page cache warmed first):

1. `photod score`'s library path: `scorer_from_settings(load_settings()).score_paths(files)`,
   model load included;
2. `photod batch` on a local Ray (`ray.init(num_cpus=<cores>)`), the Ray start timed apart from
   the job (actors start and load the model inside the job);
3. `photod batch` on `ray.cluster_utils.Cluster` with two nodes of cores/2 CPUs each, on this
   same machine: the same cores, so it shows the cost of spreading over nodes (object transfers
   between two object stores, scheduling), not a speed-up.

Printed: photos/s of each and the ratios against `photod score` (target: batch >= 0.8x), plus
each run's per-stage worker time. Results go to bench-results/batch_speed.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TARGET_RATIO = 0.8


def _warm(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb") as handle:
            while handle.read(1 << 20):
                pass


def score_local(files: list[Path]) -> dict[str, Any]:
    from photod.config import load_settings, scorer_from_settings

    started = time.perf_counter()
    scorer = scorer_from_settings(load_settings(cli={}))
    ok = sum(result.status == "ok" for result in scorer.score_paths(files))
    seconds = time.perf_counter() - started
    return {"photos": len(files), "ok": ok, "seconds": round(seconds, 3),
            "photos_per_s": round(len(files) / seconds, 3)}  # fmt: skip


def score_batch(ray: Any, folder: Path, options: Any, init_s: float, label: str) -> dict[str, Any]:
    from photod.batch import run_batch

    with tempfile.TemporaryDirectory(prefix=f"photod-bench-{label}-") as out:
        summary = run_batch([str(folder)], out, options)
    result = summary.to_dict()
    result["ray_init_s"] = round(init_s, 3)
    result["photos_per_s_with_init"] = round(summary.photos / (summary.wall_s + init_s), 3)
    return result


def run(
    count: int,
    size: tuple[int, int],
    workdir: Path,
    cluster: bool = True,
    decode_cpus: float | None = None,
) -> dict[str, Any]:
    import ray

    from benchmarks import common, inputs
    from photod.batch import BatchOptions, init_ray

    folder = inputs.jpeg_folder(workdir, count, size)
    files = sorted(folder.glob("*.jpg"))
    _warm(files)
    cores = os.cpu_count() or 2
    options = BatchOptions(progress=False, actors=1, decode_cpus=decode_cpus, shard_size=32)
    report: dict[str, Any] = {
        "machine": common.machine_info("cpu"),
        "photos": len(files),
        "size": list(size),
        "decode_cpus": decode_cpus,
        "score": score_local(files),
    }

    started = time.perf_counter()
    init_ray(ray, BatchOptions(num_cpus=cores))  # the local Ray `photod batch` itself starts
    init_s = time.perf_counter() - started
    try:
        report["batch_local"] = score_batch(ray, folder, options, init_s, "local")
    finally:
        ray.shutdown()

    if cluster:
        from ray.cluster_utils import Cluster

        half = max(1, cores // 2)
        started = time.perf_counter()
        nodes = Cluster(
            initialize_head=True, head_node_args={"num_cpus": half, "include_dashboard": False}
        )
        try:
            nodes.add_node(num_cpus=half)
            nodes.wait_for_nodes()
            ray.init(address=nodes.address, logging_level="WARNING")
            init_s = time.perf_counter() - started
            try:
                report["batch_2_nodes"] = score_batch(ray, folder, options, init_s, "cluster")
            finally:
                ray.shutdown()
        finally:
            nodes.shutdown()

    base = report["score"]["photos_per_s"]
    for key in ("batch_local", "batch_2_nodes"):
        if key in report:
            run_report = report[key]
            run_report["ratio"] = round(run_report["photos_per_s"] / base, 3)
            run_report["ratio_with_init"] = round(run_report["photos_per_s_with_init"] / base, 3)
    return report


def _parse_size(text: str) -> tuple[int, int]:
    width, height = text.lower().split("x")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.batch_speed")
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--size", type=_parse_size, default=(6000, 4000), help="WxH pixels")
    parser.add_argument("--workdir", type=Path, default=Path(".cache/photod-bench"))
    parser.add_argument("--no-cluster", action="store_true", help="Skip the 2-node run.")
    parser.add_argument("--decode-cpus", type=float, default=None, help="CPUs per decode task")
    parser.add_argument("--quick", action="store_true", help="24 photos of 1500x1000")
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.size = 24, (1500, 1000)
    report = run(
        args.photos,
        args.size,
        args.workdir,
        cluster=not args.no_cluster,
        decode_cpus=args.decode_cpus,
    )
    score = report["score"]
    print(f"{report['photos']} JPEGs of {args.size[0]}x{args.size[1]}, load average "
          f"{report['machine'].get('load_average_at_start')}")  # fmt: skip
    print(
        f"photod score          {score['photos_per_s']:7.2f} photos/s  ({score['seconds']:.1f} s)"
    )
    for key, label in (
        ("batch_local", "photod batch (local)"),
        ("batch_2_nodes", "batch (2 nodes)"),
    ):
        if key not in report:
            continue
        run_report = report[key]
        stages = ", ".join(f"{k} {v:.1f} s" for k, v in run_report["stage_s"].items())
        print(
            f"{label:<21} {run_report['photos_per_s']:7.2f} photos/s  ({run_report['wall_s']:.1f} s"
            f" + Ray start {run_report['ray_init_s']:.1f} s)  ratio {run_report['ratio']:.2f}x"
            f" ({run_report['ratio_with_init']:.2f}x with the Ray start; target >= "
            f"{TARGET_RATIO}x); worker time: {stages}"
        )
        if run_report["steady_photos_per_s"]:
            print(
                f"{'':<21} first shard after {run_report['first_shard_s']:.1f} s, the rest at "
                f"{run_report['steady_photos_per_s']:.2f} photos/s (writes queue behind scoring)"
            )
    out = Path("bench-results") / "batch_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"written {out}")
    return 0 if report["batch_local"]["ratio"] >= TARGET_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
