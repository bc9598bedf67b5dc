"""End-to-end scoring throughput (decode, score, write ratings, index) against a naive pipeline.

photod's path is `photod.pipeline.process_paths`, the code `photod score --write`, `photod watch`
and the web page share: triage by stat and content hash, reduced-size DCT decoding in threads
ahead of batched channels_last inference, the rating written into each file (or its sidecar), a
row committed to a real SQLite index.

The naive pipeline, measured in the same process with the same model, metadata writer and index,
is what a first implementation does: Pillow decodes the whole 24 MP image, applies the EXIF
orientation at full size, resizes to 224x224 and runs the model on one photo at a time; then the
same rating write and index row. Every run works on a fresh copy of the input folder (flushed to
disk before the clock starts), so no run finds ratings written by an earlier one.

The breakdown times each stage alone, in series, on the same files: where the time goes, not a
sum that equals the end-to-end time (decode overlaps inference there).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common, inputs

log = logging.getLogger("photod")


def make_scorer(device: str, batch_size: int, model: str | None = None) -> Any:
    """A loaded, warmed-up Scorer (model load and first-call costs are not throughput)."""
    from photod.scoring import DEFAULT_MODEL, Scorer

    scorer = Scorer(model=model or DEFAULT_MODEL, device=device, batch_size=batch_size)
    warm = [np.zeros((448, 672, 3), np.uint8)] * min(batch_size, 8)
    scorer.score_pixels(warm)
    return scorer


def photod_run(paths: list[Path], scorer: Any, db_path: Path, write_mode: str) -> dict[str, Any]:
    """One timed end-to-end run of process_paths; returns seconds and the actions seen."""
    from photod.index import open_index
    from photod.pipeline import process_paths

    db = open_index(db_path)
    start = time.perf_counter()
    outcomes = list(process_paths(paths, scorer, db, write_mode=write_mode))
    seconds = time.perf_counter() - start
    db.conn.close()
    actions: dict[str, int] = {}
    for outcome in outcomes:
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    scores = {os.path.basename(o.path): o.score for o in outcomes}
    return {"seconds": seconds, "actions": actions, "scores": scores}


def naive_one(path: Path, scorer: Any, db: Any, metadata: Any, write_mode: str) -> float:
    """The naive pipeline for one photo: full decode, full-size rotate, resize, batch of one."""
    import torch
    from PIL import Image, ImageOps

    from photod.index import embedding_blob, now_iso, upsert_photo
    from photod.models.preprocess import to_tensor

    with Image.open(path) as im:
        upright = ImageOps.exif_transpose(im).convert("RGB")
        small = np.asarray(upright.resize((224, 224), Image.Resampling.BILINEAR))
    with torch.inference_mode():
        score, embedding = scorer.net.forward_all(to_tensor([small]).to(scorer.device))
    value = float(score[0])
    stars = scorer.star_mapping.stars(value)
    scored_at = now_iso()
    info = metadata.RatingInfo(score=value, stars=stars, model=scorer.version, scored_at=scored_at)
    metadata.write_rating(str(path), info, mode=write_mode)
    row = {
        "path": str(path),
        "status": "ok",
        "score": value,
        "stars": stars,
        "model": scorer.version,
        "scored_at": scored_at,
        "width": upright.width,
        "height": upright.height,
        "embedding": embedding_blob(embedding[0].numpy()),
    }
    upsert_photo(db, row)
    return value


def naive_run(paths: list[Path], scorer: Any, db_path: Path, write_mode: str) -> dict[str, Any]:
    import photod.metadata as metadata
    from photod.index import open_index

    db = open_index(db_path)
    start = time.perf_counter()
    scores = {p.name: naive_one(p, scorer, db, metadata, write_mode) for p in paths}
    seconds = time.perf_counter() - start
    db.conn.close()
    return {"seconds": seconds, "scores": scores}


def breakdown(paths: list[Path], scorer: Any, work: Path, write_modes: list[str]) -> dict[str, Any]:
    """Milliseconds per photo of each stage alone, on `paths` (photod's path and the naive one)."""
    import torch
    from PIL import Image, ImageOps

    import photod.metadata as metadata
    from photod.index import now_iso, open_index, upsert_photo
    from photod.models.preprocess import to_tensor
    from photod.pipeline import file_hash

    n = len(paths)
    stages: dict[str, float] = {}

    def per_photo(key: str, seconds: float, count: int = n) -> None:
        stages[key] = round(1000 * seconds / max(count, 1), 2)

    seconds, decoded = common.time_call(lambda: [scorer.decode(p) for p in paths])
    per_photo("decode_dct_scaled", seconds)
    pixels = [d.pixels for d in decoded]
    batch = pixels[: scorer.batch_size]
    seconds, tensor = common.time_call(lambda: to_tensor(batch))
    per_photo("preprocess", seconds, len(batch))
    net = scorer.net
    with torch.inference_mode():
        dtype = torch.float16 if scorer.device.startswith("cuda") else torch.float32
        x = tensor.to(scorer.device, dtype=dtype)
        net.forward_all(x)  # warm
        _sync(scorer.device)
        seconds, _ = common.time_call(lambda: (net.forward_all(x), _sync(scorer.device)))
        per_photo(f"inference_batch{len(batch)}", seconds, len(batch))
        one = x[:1]
        seconds, _ = common.time_call(
            lambda: [(net.forward_all(one), _sync(scorer.device)) for _ in range(4)]
        )
        per_photo("inference_batch1", seconds, 4)
        if scorer.device == "cpu":
            # The same batch through the network as built, batch norm not folded (the A/B
            # behind `photod.scoring.fold_batchnorm`).
            from photod.models import load_model

            plain = load_model(scorer.model_name, device="cpu")
            plain.forward_all(x)
            seconds, _ = common.time_call(lambda: plain.forward_all(x))
            per_photo(f"inference_batch{len(batch)}_bn_not_folded", seconds, len(batch))
            del plain
    seconds, _ = common.time_call(lambda: [file_hash(str(p)) for p in paths])
    per_photo("content_hash", seconds)

    info = metadata.RatingInfo(score=3.0, stars=3, model=scorer.version, scored_at=now_iso())
    for mode in write_modes:
        copies = common.fresh_copy(paths[0].parent, work / "breakdown", [p.name for p in paths])
        seconds, _ = common.time_call(
            lambda: [metadata.write_rating(str(copies / p.name), info, mode=mode) for p in paths]  # noqa: B023
        )
        per_photo(f"write_rating_{mode}", seconds)
    db = open_index(work / "breakdown" / "index.db")
    rows = [{"path": str(copies / p.name), "status": "ok", "score": 3.0, "stars": 3} for p in paths]
    seconds, _ = common.time_call(lambda: [upsert_photo(db, row) for row in rows])
    per_photo("index_upsert", seconds)
    db.conn.close()

    def naive_decode(path: Path) -> np.ndarray:
        with Image.open(path) as im:
            upright = ImageOps.exif_transpose(im).convert("RGB")
            return np.asarray(upright.resize((224, 224), Image.Resampling.BILINEAR))

    sample = paths[: max(1, min(n, 4))]
    seconds, _ = common.time_call(lambda: [naive_decode(p) for p in sample])
    per_photo("naive_full_decode_and_resize", seconds, len(sample))
    return stages


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure_mode(
    files: list[Path],
    naive_files: list[Path],
    scorer: Any,
    work: Path,
    runs: int,
    write_mode: str,
) -> dict[str, Any]:
    """photod and naive photos/s with one write mode, `runs` times each, interleaved."""
    source = files[0].parent
    before = common.stat_signature(files)
    photod_rates, naive_rates, actions = [], [], {}
    fast_scores: dict[str, float] = {}
    naive_scores: dict[str, float] = {}
    for i in range(runs):
        # Interleaved, so drifting machine load hits both pipelines alike.
        folder = common.fresh_copy(source, work / "photod", [p.name for p in files])
        db = work / f"photod-{write_mode}-{i}.db"
        result = photod_run([folder / p.name for p in files], scorer, db, write_mode)
        photod_rates.append(len(files) / result["seconds"])
        actions, fast_scores = result["actions"], result["scores"]
        log.info("photod %s run %d: %.2f photos/s %s", write_mode, i, photod_rates[-1], actions)
        folder = common.fresh_copy(source, work / "naive", [p.name for p in naive_files])
        db = work / f"naive-{write_mode}-{i}.db"
        result = naive_run([folder / p.name for p in naive_files], scorer, db, write_mode)
        naive_rates.append(len(naive_files) / result["seconds"])
        naive_scores = result["scores"]
        log.info("naive %s run %d: %.2f photos/s", write_mode, i, naive_rates[-1])
        common.check_unchanged(files, before)
    photod_stat = common.summary(photod_rates, 2)
    naive_stat = common.summary(naive_rates, 2)
    names = [n for n in naive_scores if fast_scores.get(n) is not None]
    diffs = [abs(fast_scores[n] - naive_scores[n]) for n in names]
    return {
        "photod_photos_per_s": photod_stat,
        "naive_photos_per_s": naive_stat,
        "speedup": round(photod_stat["median"] / naive_stat["median"], 2),
        "actions_last_run": actions,
        # The fast path decodes at 1/8 scale, the naive one at full size: the same photo, scored
        # through a slightly different resize chain.
        "score_difference_vs_naive": {
            "photos": len(diffs),
            "mean_abs": round(float(np.mean(diffs)), 4) if diffs else None,
            "max_abs": round(float(np.max(diffs)), 4) if diffs else None,
        },
    }


def run(
    workdir: Path,
    photos: int = 200,
    naive_photos: int = 40,
    runs: int = 3,
    size: tuple[int, int] = inputs.DEFAULT_SIZE,
    device: str = "cpu",
    batch_size: int = 32,
    write_mode: str = "auto",
    model: str | None = None,
) -> dict[str, Any]:
    """Throughput with each write mode in `write_mode` (comma-separated; the first is the
    headline), then the per-stage breakdown."""
    source = inputs.jpeg_folder(workdir, photos, size)
    files = inputs.photo_files(source)
    naive_files = files[: max(1, min(naive_photos, len(files)))]
    scorer = make_scorer(device, batch_size, model)
    work = workdir / "runs"
    modes = [m.strip() for m in write_mode.split(",") if m.strip()]
    measured = {mode: measure_mode(files, naive_files, scorer, work, runs, mode) for mode in modes}
    stages = breakdown(files[: min(len(files), 32)], scorer, work, modes)
    return {
        "inputs": {
            "photos": len(files),
            "naive_photos": len(naive_files),
            "size": f"{size[0]}x{size[1]}",
            "megapixels": round(size[0] * size[1] / 1e6, 1),
            "mean_file_mb": inputs.file_megabytes(files),
            "folder": str(source),
        },
        "settings": {
            "device": scorer.device,
            "batch_size": batch_size,
            "write_mode": modes[0],
            "decode_workers": scorer.decode_workers,
            "torch_threads": scorer.torch_threads or "auto",
            "torch_threads_default": _torch_threads(),
        },
        **measured[modes[0]],
        "write_modes": measured,
        "breakdown_ms_per_photo": stages,
    }


def table(result: dict[str, Any]) -> str:
    rows = []
    for mode, entry in result["write_modes"].items():
        rows += [
            [
                f"photod e2e, write {mode}",
                common.fmt_stat(entry["photod_photos_per_s"], " photos/s"),
            ],
            [f"naive, write {mode}", common.fmt_stat(entry["naive_photos_per_s"], " photos/s")],
            [f"speedup, write {mode}", f"{entry['speedup']}x"],
        ]
    rows += [[f"  {k}", f"{v} ms/photo"] for k, v in result["breakdown_ms_per_photo"].items()]
    return common.format_table(rows, ["throughput", "median (min-max)"])
