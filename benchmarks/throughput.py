"""End-to-end scoring throughput (decode, score, write ratings, index) against a naive pipeline.

photod's path is `photod.pipeline.process_paths`, the code `photod score --write`, `photod watch`
and the web page share: triage by stat and content hash, reduced-size DCT decoding in threads
ahead of the model (on the CPU its backbone on ONNX Runtime where the model ships an export,
`photod.scoring.Scorer.backend`), the rating written into each file (or its sidecar), a
row committed to a real SQLite index.

The naive pipeline, measured in the same process with the same model, metadata writer and index,
is what a first implementation does: Pillow decodes the whole 24 MP image, applies the EXIF
orientation at full size, resizes to 224x224 and runs the model (torch, batch norm folded) on
one photo at a time; then the
same rating write and index row. Every run works on a fresh copy of the input folder (flushed to
disk before the clock starts), so no run finds ratings written by an earlier one.

Both kinds of input are measured (`benchmarks.inputs`: smooth upscaled photos and grainy
camera-like files), each run on files whose bytes no earlier run saw. The breakdown times each
stage alone, in series, on the same files: where the time goes, not a sum that equals the
end-to-end time (decode overlaps inference there).
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


def make_scorer(device: str, batch_size: int | None, model: str | None = None) -> Any:
    """A loaded, warmed-up Scorer (model load and first-call costs are not throughput)."""
    from photod.scoring import DEFAULT_MODEL, Scorer

    scorer = Scorer(model=model or DEFAULT_MODEL, device=device, batch_size=batch_size)
    warm = [np.zeros((448, 672, 3), np.uint8)] * min(scorer.batch_size, 8)
    scorer.score_pixels(warm)
    return scorer


def photod_run(paths: list[Path], scorer: Any, db_path: Path, write_mode: str) -> dict[str, Any]:
    """One timed end-to-end run of process_paths; returns seconds and the actions seen."""
    from photod.index import open_index
    from photod.pipeline import process_paths

    db = open_index(db_path)
    start, cpu = time.perf_counter(), time.process_time()
    outcomes = list(process_paths(paths, scorer, db, write_mode=write_mode))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    db.conn.close()
    actions: dict[str, int] = {}
    for outcome in outcomes:
        actions[outcome.action] = actions.get(outcome.action, 0) + 1
    scores = {os.path.basename(o.path): o.score for o in outcomes}
    return {"seconds": seconds, "cpu_seconds": cpu, "actions": actions, "scores": scores}


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
    start, cpu = time.perf_counter(), time.process_time()
    scores = {p.name: naive_one(p, scorer, db, metadata, write_mode) for p in paths}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    db.conn.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "scores": scores}


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
    # What a decode thread of `score_paths` does: one read, DCT-scaled decode, 224x224 in Pillow.
    seconds, prepared = common.time_call(lambda: [scorer._decode_for_model(p) for p in paths])
    per_photo("decode_for_model", seconds)
    pixels = [p.image.pixels for p in prepared]
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
    if scorer.device == "cpu" and scorer.backend == "onnx":
        # What photod's CPU path runs (photod.scoring.ONNX_CPU_RUN_BATCH photos a call), beside
        # the torch rows above: the A/B behind the ONNX Runtime backbone.
        from photod.scoring import ONNX_CPU_RUN_BATCH

        session = scorer._onnx_session(scorer._threads_now())
        stacked = np.stack(batch)
        session.features(stacked[:ONNX_CPU_RUN_BATCH])  # warm

        def onnx_pass() -> None:
            for start in range(0, len(stacked), ONNX_CPU_RUN_BATCH):
                session.features(stacked[start : start + ONNX_CPU_RUN_BATCH])

        seconds, _ = common.time_call(onnx_pass)
        per_photo(f"inference_onnx_runtime_batch{ONNX_CPU_RUN_BATCH}", seconds, len(batch))
        seconds, _ = common.time_call(lambda: session.features(stacked))
        per_photo(f"inference_onnx_runtime_batch{len(batch)}", seconds, len(batch))
    seconds, _ = common.time_call(lambda: [file_hash(str(p)) for p in paths])
    per_photo("content_hash", seconds)

    info = metadata.RatingInfo(score=3.0, stars=3, model=scorer.version, scored_at=now_iso())
    copies = paths[0].parent
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


PIPELINES = ("score", "none", "auto", "sidecar")


def score_run(paths: list[Path], scorer: Any) -> dict[str, Any]:
    """`photod score` without --write: `Scorer.score_paths` over the files, nothing stored."""
    start, cpu = time.perf_counter(), time.process_time()
    results = list(scorer.score_paths(paths))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    actions: dict[str, int] = {}
    for result in results:
        actions[result.status] = actions.get(result.status, 0) + 1
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "actions": actions,
        "scores": {Path(r.path).name: r.score for r in results},
    }


def measure_kind(
    workdir: Path,
    kind: str,
    photos: int,
    naive_photos: int,
    scorer: Any,
    runs: int,
    modes: list[str],
    size: tuple[int, int],
    naive_writes: bool = False,
) -> dict[str, Any]:
    """photod and naive photos/s for each pipeline in `modes`, `runs` times each, interleaved.

    Every timed run gets files no earlier run saw (`inputs.fresh_jpegs`). `score` is `photod
    score` (no index, no write); `none`, `auto` and `sidecar` are `process_paths` (what `photod
    watch` and the web page run) with that rating write mode. The naive pipeline runs with the
    same write mode (`score` is compared with naive `none`).
    """
    work = workdir / "runs"
    rates: dict[str, list[float]] = {m: [] for m in modes}
    cpu_ms: dict[str, list[float]] = {m: [] for m in modes}
    # The naive pipeline without writes: `score` and `none` compare with it as they are; a write
    # mode compares with it too (conservative: the naive side then skips its writes) unless
    # `naive_writes` runs the naive pipeline with each write mode as well.
    naive_modes = ["none"]
    if naive_writes:
        naive_modes += [m for m in modes if m not in ("score", "none")]
    naive_rates: dict[str, list[float]] = {m: [] for m in naive_modes}
    naive_cpu_ms: dict[str, list[float]] = {m: [] for m in naive_modes}
    actions: dict[str, dict[str, int]] = {}
    fast_scores: dict[str, float] = {}
    naive_scores: dict[str, float] = {}
    loads: list[float] = []
    mean_mb = 0.0
    for i in range(runs):
        run_id = int(time.time() * 1000) % 10**9 + i  # bytes no earlier run (or process) saw
        for mode in modes:
            folder = work / f"{kind}-{mode}"
            files = inputs.fresh_jpegs(workdir, folder, photos, run_id, size, kind)
            mean_mb = inputs.file_megabytes(files)
            loads.append(os.getloadavg()[0])
            if mode == "score":
                result = score_run(files, scorer)
            else:
                db = work / f"{kind}-{mode}-{i}.db"
                result = photod_run(files, scorer, db, mode)
            rates[mode].append(len(files) / result["seconds"])
            cpu_ms[mode].append(1000 * result["cpu_seconds"] / len(files))
            actions[mode], fast_scores = result["actions"], result["scores"]
            log.info("photod %s %s run %d: %.2f photos/s", kind, mode, i, rates[mode][-1])
        for mode in naive_modes:
            folder = work / f"{kind}-naive-{mode}"
            files = inputs.fresh_jpegs(workdir, folder, naive_photos, run_id, size, kind)
            loads.append(os.getloadavg()[0])
            result = naive_run(files, scorer, work / f"{kind}-naive-{mode}-{i}.db", mode)
            naive_rates[mode].append(len(files) / result["seconds"])
            naive_cpu_ms[mode].append(1000 * result["cpu_seconds"] / len(files))
            naive_scores = result["scores"]
            log.info("naive %s %s run %d: %.2f photos/s", kind, mode, i, naive_rates[mode][-1])
    entries: dict[str, Any] = {}
    for mode in modes:
        photod_stat = common.summary(rates[mode], 2)
        naive_mode = mode if mode in naive_rates else "none"
        naive_stat = common.summary(naive_rates[naive_mode], 2)
        photod_cpu = common.summary(cpu_ms[mode], 1)
        naive_cpu = common.summary(naive_cpu_ms[naive_mode], 1)
        entries[mode] = {
            "photod_photos_per_s": photod_stat,
            "naive_photos_per_s": naive_stat,
            "speedup": round(photod_stat["median"] / naive_stat["median"], 2),
            # CPU time of the whole process per photo (every thread): what a loaded machine
            # distorts least; the naive pipeline's over photod's is the work saved.
            "photod_cpu_ms_per_photo": photod_cpu,
            "naive_cpu_ms_per_photo": naive_cpu,
            "cpu_ratio": round(naive_cpu["median"] / max(photod_cpu["median"], 1e-9), 2),
            "naive_write_mode": naive_mode,
            "actions_last_run": actions[mode],
        }
    # Writes against no writes: process_paths `none` when measured, else `photod score`.
    plain = "none" if "none" in rates else "score" if "score" in rates else None
    for mode in ("auto", "sidecar"):
        if plain is not None and mode in rates:
            entries[mode]["vs_no_write"] = round(
                entries[mode]["photod_photos_per_s"]["median"]
                / entries[plain]["photod_photos_per_s"]["median"],
                2,
            )
            entries[mode]["vs_no_write_pipeline"] = plain
    names = [n for n in naive_scores if fast_scores.get(n) is not None]
    diffs = [abs(fast_scores[n] - naive_scores[n]) for n in names]
    return {
        "photos": photos,
        "naive_photos": naive_photos,
        "mean_file_mb": mean_mb,
        "load_average_1min": common.summary(loads, 2),
        "pipelines": entries,
        # The fast path decodes at 1/8 scale, the naive one at full size: the same photo, scored
        # through a slightly different resize chain.
        "score_difference_vs_naive": {
            "photos": len(diffs),
            "mean_abs": round(float(np.mean(diffs)), 4) if diffs else None,
            "max_abs": round(float(np.max(diffs)), 4) if diffs else None,
        },
    }


def measure_raw(
    workdir: Path, photos: int, scorer: Any, runs: int, size: tuple[int, int], kind: str = "smooth"
) -> dict[str, Any]:
    """DNGs rated in sidecars (`process_paths`, mode sidecar) against the same JPEGs (the
    full-size previews' bytes) without writes, interleaved; two layouts: as cameras write them
    (a full-size preview and a `MEDIUM_PREVIEW` one) and with the full-size preview alone."""
    work = workdir / "runs"
    layouts = {"camera": True, "full_only": False}
    rates: dict[str, list[float]] = {"jpeg": [], **{name: [] for name in layouts}}
    loads, diffs = [], []
    actions: dict[str, int] = {}
    for i in range(runs):
        run_id = int(time.time() * 1000) % 10**9 + i
        raw_scores = {}
        for name, medium in layouts.items():
            files = inputs.fresh_raws(
                workdir, work / f"raw-{name}", photos, run_id, size, kind, medium=medium
            )
            loads.append(os.getloadavg()[0])
            result = photod_run(files, scorer, work / f"raw-{name}-{i}.db", "sidecar")
            rates[name].append(len(files) / result["seconds"])
            actions = result["actions"]
            raw_scores[name] = result["scores"]
        files = inputs.fresh_jpegs(workdir, work / "raw-jpeg", photos, run_id, size, kind)
        loads.append(os.getloadavg()[0])
        result = photod_run(files, scorer, work / f"raw-jpeg-{i}.db", "none")
        rates["jpeg"].append(len(files) / result["seconds"])
        for name, score in raw_scores["camera"].items():
            jpeg_score = result["scores"].get(Path(name).stem + ".jpg")
            if score is not None and jpeg_score is not None:
                diffs.append(abs(score - jpeg_score))
        log.info(
            "raw run %d: camera %.2f, full-size only %.2f vs jpeg %.2f photos/s",
            i, rates["camera"][-1], rates["full_only"][-1], rates["jpeg"][-1],
        )  # fmt: skip
    stats = {name: common.summary(values, 2) for name, values in rates.items()}
    return {
        "photos": photos,
        "preview": f"{size[0]}x{size[1]} {kind} JPEG",
        "medium_preview": "{}x{} JPEG".format(*inputs.MEDIUM_PREVIEW),
        "raw_sidecar_photos_per_s": stats["camera"],
        "raw_full_preview_only_sidecar_photos_per_s": stats["full_only"],
        "jpeg_no_write_photos_per_s": stats["jpeg"],
        "raw_vs_jpeg": round(stats["camera"]["median"] / stats["jpeg"]["median"], 2),
        "raw_full_preview_only_vs_jpeg": round(
            stats["full_only"]["median"] / stats["jpeg"]["median"], 2
        ),
        # The camera layout is scored from its medium preview, the JPEG from its full size.
        "score_difference_medium_vs_full": {
            "photos": len(diffs),
            "mean_abs": round(float(np.mean(diffs)), 4) if diffs else None,
            "max_abs": round(float(np.max(diffs)), 4) if diffs else None,
        },
        "actions_last_run": actions,
        "load_average_1min": common.summary(loads, 2),
    }


def run(
    workdir: Path,
    photos: int = 200,
    naive_photos: int = 24,
    runs: int = 3,
    size: tuple[int, int] = inputs.DEFAULT_SIZE,
    device: str = "cpu",
    batch_size: int | None = None,
    write_mode: str = "score,none,auto",
    model: str | None = None,
    kinds: str = "smooth,grainy",
    breakdown_photos: int = 16,
    raw: bool = True,
    naive_writes: bool = False,
) -> dict[str, Any]:
    """Throughput of each pipeline in `write_mode` (comma-separated: score, none, auto, sidecar)
    on each kind of input (smooth, grainy), then the per-stage breakdown on the first kind.
    The naive pipeline uses the scorer's own model, so its backbone is the default model's."""
    modes = [m.strip() for m in write_mode.split(",") if m.strip()]
    unknown = [m for m in modes if m not in PIPELINES]
    if unknown:
        raise ValueError(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    kind_list = [k.strip() for k in kinds.split(",") if k.strip()]
    scorer = make_scorer(device, batch_size, model)
    measured = {
        kind: measure_kind(
            workdir, kind, photos, naive_photos, scorer, runs, modes, size, naive_writes
        )
        for kind in kind_list
    }
    raw_result = measure_raw(workdir, photos, scorer, runs, size) if raw else None
    source = inputs.jpeg_folder(workdir, max(breakdown_photos, 1), size, kind=kind_list[0])
    files = inputs.photo_files(source)
    write_modes = [m for m in modes if m not in ("score", "none")]
    stages = breakdown(files, scorer, workdir / "runs", write_modes) if breakdown_photos else {}
    head = measured[kind_list[0]]
    return {
        "inputs": {
            "photos": photos,
            "naive_photos": naive_photos,
            "size": f"{size[0]}x{size[1]}",
            "megapixels": round(size[0] * size[1] / 1e6, 1),
            "kinds": {k: {"mean_file_mb": v["mean_file_mb"]} for k, v in measured.items()},
        },
        "settings": {
            "device": scorer.device,
            "model": scorer.model_name,
            "backend": scorer.backend,  # what runs photod's backbone; the naive pipeline runs torch
            "batch_size": scorer.batch_size,
            "pipelines": modes,
            "decode_workers": scorer.decode_workers,
            "torch_threads": scorer.torch_threads or "auto",
            "torch_threads_default": _torch_threads(),
        },
        # The headline: the first kind, the first pipeline.
        **head["pipelines"][modes[0]],
        "score_difference_vs_naive": head["score_difference_vs_naive"],
        "kinds": measured,
        "raw": raw_result,
        "breakdown_ms_per_photo": stages,
    }


def table(result: dict[str, Any]) -> str:
    rows = []
    for kind, entry in result["kinds"].items():
        load = entry["load_average_1min"]
        rows.append([f"{kind} ({entry['mean_file_mb']} MB), load {common.fmt_stat(load)}", ""])
        for mode, stats in entry["pipelines"].items():
            label = "photod score" if mode == "score" else f"process_paths, write {mode}"
            rows += [
                [f"  {label}", common.fmt_stat(stats["photod_photos_per_s"], " photos/s")],
                ["    naive", common.fmt_stat(stats["naive_photos_per_s"], " photos/s")],
                ["    speedup", f"{stats['speedup']}x"],
            ]
            rows.append(
                [
                    "    CPU ms/photo, photod vs naive",
                    f"{stats['photod_cpu_ms_per_photo']['median']} vs "
                    f"{stats['naive_cpu_ms_per_photo']['median']} ({stats['cpu_ratio']}x)",
                ]
            )
            if "vs_no_write" in stats:
                rows.append(["    vs no write", f"{stats['vs_no_write']}x"])
    raw = result.get("raw")
    if raw:
        rows += [
            [
                f"DNG + {raw['preview']} preview, load {common.fmt_stat(raw['load_average_1min'])}",
                "",
            ],
            [
                f"  camera layout (+ {raw['medium_preview']}), write sidecar",
                common.fmt_stat(raw["raw_sidecar_photos_per_s"]),
            ],
            [
                "  full-size preview only, write sidecar",
                common.fmt_stat(raw["raw_full_preview_only_sidecar_photos_per_s"]),
            ],
            ["  the JPEGs, no write", common.fmt_stat(raw["jpeg_no_write_photos_per_s"])],
            ["  RAW vs JPEG", f"{raw['raw_vs_jpeg']}x"],
            ["  full-size preview only vs JPEG", f"{raw['raw_full_preview_only_vs_jpeg']}x"],
        ]
    rows += [[f"  {k}", f"{v} ms/photo"] for k, v in result["breakdown_ms_per_photo"].items()]
    return common.format_table(rows, ["throughput", "median (min-max)"])
