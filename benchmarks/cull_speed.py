"""Grouping speed: regroup 10,000 indexed photos from their stored embeddings (target < 10 s).

Run: `python -m benchmarks.cull_speed [--photos 10000] [--runs 3] [--quick]`.

The index is a real SQLite file made by `photod.index.open_index`, with 10,000 synthetic rows
that look like a day of shooting: scenes 5-600 s apart, a third of them bursts of 3-12 frames
0.1-0.6 s apart, some brackets (-2/0/+2 EV), 5 % of photos without capture time, two cameras.

Embeddings are realistic: each scene's embedding is the backbone embedding of a real photo crop
(scikit-image/scikit-learn sample photos, random crops, flips and exposure, run through photod's
EfficientNet-Lite0 backbone), and the frames of a burst perturb it multiplicatively so that their
cosine similarity to each other lands where measured for real bursts (0.85-0.97). Stored as
float16 bytes, as the pipeline stores them.

Timed: `photod.cull_store.rebuild_groups(db, rank=False, geometry=False)`, i.e. load rows and
embeddings, link, group, write the `groups` table and `photos.group_id`. Ranking and the
panorama shift check decode pixels of group members only, and are not part of this target.
Also reported: pairwise precision/recall against the synthetic truth (a sanity check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def real_embeddings(count: int, seed: int = 0) -> np.ndarray:
    """Backbone embeddings of `count` random crops of real sample photos."""
    import skimage.data
    import torch
    from PIL import Image
    from sklearn.datasets import load_sample_image

    from photod.models.aesthetic import AestheticNet
    from photod.models.preprocess import to_tensor

    rng = np.random.default_rng(seed)
    sources = [getattr(skimage.data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket")]
    sources += [load_sample_image("china.jpg"), load_sample_image("flower.jpg")]
    sources += [np.stack([skimage.data.camera()] * 3, -1)]
    crops = []
    for _ in range(count):
        src = sources[rng.integers(len(sources))]
        h, w = src.shape[:2]
        ch, cw = int(h * rng.uniform(0.3, 0.8)), int(w * rng.uniform(0.3, 0.8))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = src[y : y + ch, x : x + cw, :3]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        gain = 2 ** rng.uniform(-1, 1)
        crop = np.clip(crop.astype(np.float32) * gain, 0, 255).astype(np.uint8)
        crops.append(np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((224, 224))))
    net = AestheticNet().eval()  # the embedding comes from the backbone alone
    out = []
    with torch.inference_mode():
        for start in range(0, count, 32):
            _, emb = net.forward_all(to_tensor(crops[start : start + 32]))
            out.append(emb.numpy())
    return np.concatenate(out)


def synthetic_rows(n: int, base: np.ndarray, seed: int = 1) -> tuple[list[dict], list[list[str]]]:
    """Index rows for `n` photos and the true groups (lists of paths)."""
    from photod.index import embedding_blob

    rng = np.random.default_rng(seed)
    rows: list[dict] = []
    truth: list[list[str]] = []
    clock = dt.datetime(2026, 6, 20, 8, 0, 0)
    cameras = [("Canon", "EOS R5"), ("Sony", "ILCE-7M4")]
    scene = 0
    while len(rows) < n:
        scene += 1
        clock += dt.timedelta(seconds=float(rng.uniform(5, 600)))
        make, model = cameras[int(rng.random() < 0.3)]
        centre = base[rng.integers(len(base))] * rng.lognormal(0, 0.6, base.shape[1])
        roll = rng.random()
        kind = "burst" if roll < 0.33 else "bracket" if roll < 0.36 else "single"
        size = int(rng.integers(3, 13)) if kind == "burst" else 3 if kind == "bracket" else 1
        size = min(size, n - len(rows))
        untimed = rng.random() < 0.05
        members = []
        t = clock
        for k in range(size):
            # Multiplicative noise: frames of one burst at cosine 0.85-0.97 to each other.
            emb = centre * rng.lognormal(0, 0.25, centre.shape)
            path = f"/photos/2026-06-20/IMG_{len(rows):05d}.JPG"
            rows.append(
                {
                    "path": path,
                    "folder": "/photos/2026-06-20",
                    "filename": os.path.basename(path),
                    "content_hash": f"{len(rows):032x}",
                    "status": "ok",
                    "score": float(rng.normal(3.2, 0.4)),
                    "stars": 3,
                    "captured_at": None if untimed else t.strftime("%Y-%m-%dT%H:%M:%S"),
                    "capture_subsec": None if untimed else f"{t.microsecond // 10000:02d}",
                    "camera_make": make,
                    "camera_model": model,
                    "exposure_bias": float((k - 1) * 2) if kind == "bracket" else 0.0,
                    "exposure_time": 1 / 250,
                    "embedding": embedding_blob(emb),
                }
            )
            members.append(path)
            t += dt.timedelta(seconds=float(rng.uniform(0.1, 0.6)))
        clock = t
        if len(members) > 1:
            truth.append(members)
    return rows, truth


def pair_metrics(predicted: list[list[str]], truth: list[list[str]]) -> dict[str, float]:
    def pairs(groups: list[list[str]]) -> set[tuple[str, str]]:
        out = set()
        for group in groups:
            g = sorted(group)
            out.update((a, b) for i, a in enumerate(g) for b in g[i + 1 :])
        return out

    got, want = pairs(predicted), pairs(truth)
    hits = len(got & want)
    return {
        "precision": round(hits / len(got), 4) if got else 1.0,
        "recall": round(hits / len(want), 4) if want else 1.0,
    }


def run(photos: int, runs: int) -> dict[str, Any]:
    import torch

    from photod.cull_store import rebuild_groups
    from photod.index import open_index

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    started = time.perf_counter()
    base = real_embeddings(min(300, max(20, photos // 30)))
    rows, truth = synthetic_rows(photos, base)
    setup_s = time.perf_counter() - started

    times = []
    result: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        db = open_index(Path(tmp) / "index.db")
        db["photos"].insert_all(rows, batch_size=1000)
        for _ in range(runs):
            t0 = time.perf_counter()
            result = rebuild_groups(db, rank=False, geometry=False)
            times.append(time.perf_counter() - t0)
        stored = db.execute("SELECT count(*) FROM photos WHERE group_id IS NOT NULL").fetchone()[0]
        by_id: dict[str, list[str]] = {}
        for path, gid in db.execute("SELECT path, group_id FROM photos WHERE group_id NOT NULL"):
            by_id.setdefault(gid, []).append(path)
    return {
        "benchmark": "cull_speed",
        "photos": photos,
        "groups": len(result),
        "grouped_photos": stored,
        "true_groups": len(truth),
        "seconds": {
            "median": round(statistics.median(times), 3),
            "min": round(min(times), 3),
            "max": round(max(times), 3),
        },
        "target_seconds": 10.0,
        "setup_seconds": round(setup_s, 1),
        "cpu_count": os.cpu_count(),
        **pair_metrics(list(by_id.values()), truth),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cull_speed")
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="500 photos, 1 run")
    args = parser.parse_args(argv)
    if args.quick:
        args.photos, args.runs = 500, 1
    result = run(args.photos, args.runs)
    secs = result["seconds"]
    print(
        f"grouped {result['photos']} indexed photos into {result['groups']} groups in "
        f"{secs['median']:.2f} s (median of {args.runs}; min {secs['min']:.2f}, max "
        f"{secs['max']:.2f}; target < {result['target_seconds']:.0f} s); pairwise precision "
        f"{result['precision']:.3f}, recall {result['recall']:.3f} vs synthetic truth"
    )
    out = Path("bench-results") / "cull_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written {out}")
    return 0 if secs["median"] < result["target_seconds"] else 1


if __name__ == "__main__":
    sys.exit(main())
