"""Scoring alone (decode + preprocess + inference, no writes): photos/s per configuration.

Sweeps the knobs that decide how 2 cores (or a GPU) are shared: model batch size, torch's
intra-op threads and the number of decode threads. Used to choose photod's defaults and by
benchmarks/gpu.sh for batch sizes 64-256. Each configuration gets its own warmed-up Scorer;
configurations are interleaved across runs so that drifting machine load hits them alike.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks import common, inputs


def parse_configs(text: str) -> list[tuple[int, int, int]]:
    """`32:2:2,64:0:2` -> [(batch, torch_threads, decode_workers), ...]; 0 threads = automatic."""
    configs = []
    for part in text.split(","):
        batch, threads, workers = (int(v) for v in part.split(":"))
        configs.append((batch, threads, workers))
    return configs


def run(
    workdir: Path,
    photos: int = 200,
    size: tuple[int, int] = inputs.DEFAULT_SIZE,
    runs: int = 3,
    device: str = "cpu",
    configs: list[tuple[int, int, int]] | None = None,
    model: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    import numpy as np

    from photod.scoring import DEFAULT_MODEL, Scorer

    cores = 2 if device == "cpu" else 8
    configs = configs or [(batch_size or 0, 0, cores)]
    files = inputs.photo_files(inputs.jpeg_folder(workdir, photos, size))
    rates: dict[str, list[float]] = {}
    scores: dict[str, np.ndarray] = {}
    for _ in range(runs):
        for batch, threads, workers in configs:
            key = f"batch{batch}-threads{threads}-decoders{workers}"
            scorer = Scorer(
                model or DEFAULT_MODEL,
                device=device,
                batch_size=batch or None,
                decode_workers=workers,
                torch_threads=threads or None,  # 0: photod's automatic choice
            )
            scorer.score_pixels([np.zeros((224, 224, 3), np.uint8)] * min(scorer.batch_size, 8))
            start = time.perf_counter()
            results = list(scorer.score_paths(files))
            rates.setdefault(key, []).append(len(files) / (time.perf_counter() - start))
            bad = [r.path for r in results if r.status != "ok"]
            if bad:
                raise RuntimeError(f"could not score {bad[:3]}")
            scores[key] = np.array([r.score for r in results])
    first = next(iter(scores.values()))
    return {
        "photos": len(files),
        "size": f"{size[0]}x{size[1]}",
        "device": device,
        "photos_per_s": {key: common.summary(v, 2) for key, v in rates.items()},
        # Every configuration must give the same scores: batching and threads change speed only.
        "max_score_difference_between_configs": round(
            max(float(np.abs(s - first).max()) for s in scores.values()), 6
        ),
    }


def table(result: dict[str, Any]) -> str:
    rows = [[k, common.fmt_stat(v, " photos/s")] for k, v in result["photos_per_s"].items()]
    rows.append(["max score diff", result["max_score_difference_between_configs"]])
    return common.format_table(rows, [f"scoring only ({result['device']})", "median (min-max)"])
