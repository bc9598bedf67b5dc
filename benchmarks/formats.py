"""Per-format cost: decode time and scoring rate for PNG, TIFF, HEIC and DNG files.

JPEGs have their own throughput benchmark; these are the other formats a card or a phone
export brings. Each file is decoded alone (ms per photo), then the folder is scored through
`Scorer.score_paths` (decode threads + batched inference) for a photos/s figure per format.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks import common, inputs


def run(
    workdir: Path,
    per_format: int = 3,
    scale: float = 1.0,
    runs: int = 3,
    device: str = "cpu",
    batch_size: int | None = None,
    model: str | None = None,
) -> dict[str, Any]:
    from benchmarks.throughput import make_scorer

    folder = inputs.format_folder(workdir, per_format, scale)
    scorer = make_scorer(device, batch_size, model)
    groups: dict[str, list[Path]] = {}
    for path in inputs.photo_files(folder):
        groups.setdefault(path.name.split("_")[0], []).append(path)
    result: dict[str, Any] = {"formats": {}}
    for name, paths in sorted(groups.items()):
        decode_ms, rates, size = [], [], None
        for _ in range(runs):
            start = time.perf_counter()
            for path in paths:
                decoded = scorer.decode(path)
                size = decoded.original_size
            decode_ms.append(1000 * (time.perf_counter() - start) / len(paths))
            start = time.perf_counter()
            results = list(scorer.score_paths(paths))
            rates.append(len(paths) / (time.perf_counter() - start))
            failed = [r.path for r in results if r.status != "ok"]
            if failed:
                raise RuntimeError(f"{name}: could not score {failed}")
        result["formats"][name] = {
            "files": len(paths),
            "size": f"{size[0]}x{size[1]}" if size else None,
            "mean_file_mb": inputs.file_megabytes(paths),
            "decode_ms": common.summary(decode_ms, 1),
            "score_photos_per_s": common.summary(rates, 2),
        }
    return result


def table(result: dict[str, Any]) -> str:
    rows = [
        [
            name,
            entry["size"],
            entry["mean_file_mb"],
            common.fmt_stat(entry["decode_ms"], " ms"),
            common.fmt_stat(entry["score_photos_per_s"], "/s"),
        ]
        for name, entry in result["formats"].items()
    ]
    return common.format_table(rows, ["format", "size", "MB", "decode", "score"])
