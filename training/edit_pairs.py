"""Variants of good photos for the edit-preference head, and their cached MLSP features.

Every source photo becomes a *group*: the untouched photo (defect 0) and versions of it with one
known defect each, whose `defect` grows with how wrong the version is:

- exposure: an EV ladder in linear light (-2 ... +2, clipped like a sensor); defect |EV|
- colour: linear-light casts along a random hue (and pure temperature / tint); defect = gain size
- contrast and saturation, both directions; defect |amount|
- tilt: rotated 2-7 degrees, cropped to the largest upright box (no empty corners)
- margin_flat / margin_foreign: flat colour or a strip of ANOTHER photo around or beside it
- cut_subject: a crop of 40-60 % of the area pushed against an edge (at its own aspect ratio)
- too_tight: a centred crop of 30-55 % of the area

Crops and margins keep their own shape (never resized to a square): the head sees them at their
aspect ratio through the shape buckets (models/buckets.py), as the search will.

Sources (`sources()`): good PARA photos of v3's TRAINING sessions (aesthetic mean above the
median; `session_split(..., seed) == "train"`), split again by session hash into fit / held-out
groups; and the few real full-size photos that are NOT in the benchmark (`REAL_TRAIN`, by file;
benchmarks/suggest_quality.py lists the benchmark's). Features: one pass of the base model's
backbone per variant (models/lite.py), cached per shard so a re-run only adds what is missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger("photod")

# Real photos used for TRAINING (paths in the unpacked Debian packages, or library samples).
# The benchmark's photos (benchmarks/suggest_quality.py PHOTOS, SKIMAGE) are never listed here.
REAL_TRAIN = (
    "usr/share/backgrounds/Picture_0B_by_freespace.jpg",
    "usr/share/backgrounds/analogpattern_by_Peter_Nerlich.jpg",
    "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg",
    "usr/share/backgrounds/free_by_Peter_Nerlich.jpg",
    "usr/share/kphotoalbum/pics/search.jpg",
    "sklearn:china.jpg",
    "sklearn:flower.jpg",
)
KINDS = (
    "original",
    "exposure",
    "colour",
    "contrast",
    "saturation",
    "tilt",
    "margin_flat",
    "margin_foreign",
    "cut_subject",
    "too_tight",
)
EV_LADDER = (-2.0, -1.5, -1.0, -0.6, -0.3, 0.3, 0.6, 1.0, 1.5, 2.0)


def held_out(group: str) -> bool:
    """About a fifth of the groups (by a hash of the PARA session or the file) are held out."""
    return hashlib.sha256(f"edit-pref:{group}".encode()).digest()[0] < 52


def _linear(image: np.ndarray) -> np.ndarray:
    from photod.enhancers.color import LINEAR

    return LINEAR[image]


def _srgb(linear: np.ndarray) -> np.ndarray:
    from photod.enhancers.color import linear_to_srgb

    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


def variants(
    image: np.ndarray, other: np.ndarray, rng: np.random.Generator
) -> Iterator[tuple[str, float, np.ndarray]]:
    """(kind, defect, pixels) for one good photo; `other` supplies foreign margins."""
    from PIL import Image

    from photod.enhancers.geometry import extract, inscribed_box
    from photod.enhancers.tone import adjust_saturation, contrast_lut

    h, w = image.shape[:2]
    lin = _linear(image)
    yield "original", 0.0, image
    for ev in EV_LADDER:
        yield "exposure", abs(ev), _srgb(lin * 2.0**ev)
    luma = np.array([0.2126, 0.7152, 0.0722])
    for strength in (0.08, 0.16, 0.3):
        angle = rng.uniform(0, 2 * np.pi)
        direction = np.array([np.cos(angle), np.cos(angle - 2.094), np.cos(angle + 2.094)])
        gains = 1.0 + strength * direction
        yield "colour", strength, _srgb(lin * (gains / (gains @ luma)))
    for t in (rng.choice([-1, 1]) * 0.2, rng.choice([-1, 1]) * 0.12):
        gains = np.array([1 + t, 1.0, 1 - t]) if rng.random() < 0.5 else np.array([1, 1 - t, 1])
        yield "colour", abs(float(t)), _srgb(lin * (gains / (gains @ luma)))
    for amount in (-0.45, 0.5):
        yield "contrast", abs(amount), np.ascontiguousarray(np.asarray(contrast_lut(amount))[image])
    for amount in (-0.5, 0.6):
        yield "saturation", abs(amount), adjust_saturation(image, saturation=amount)
    for degrees in (rng.uniform(2, 3.5), rng.uniform(4.5, 7)):
        angle = float(degrees * rng.choice([-1, 1]))
        # The content tilted by `angle`: extract with the opposite angle turns the photo.
        tilted = extract(image, inscribed_box(w, h, angle), -angle)
        yield "tilt", degrees / 4.0, tilted
    for share in (0.06, 0.14):
        sides = rng.integers(0, 2, 4) if rng.random() < 0.5 else np.ones(4, int)
        sides = sides if sides.any() else np.ones(4, int)
        t, b, lft, r = (int(share * (h if i < 2 else w)) * s for i, s in enumerate(sides))
        canvas = np.empty((h + t + b, w + lft + r, 3), np.uint8)
        canvas[:] = rng.integers(0, 256, 3).astype(np.uint8)
        canvas[t : t + h, lft : lft + w] = image
        yield "margin_flat", share * 5, canvas
    for share in (0.12, 0.25):
        strip_w = max(8, int(w * share))
        strip = np.asarray(Image.fromarray(other).resize((strip_w, h), Image.Resampling.BILINEAR))
        pair = (strip, image) if rng.random() < 0.5 else (image, strip)
        yield "margin_foreign", share * 4, np.concatenate(pair, axis=1)
    for keep in (rng.uniform(0.4, 0.5), rng.uniform(0.5, 0.62)):
        aspect = rng.uniform(0.7, 1.4)
        bw = float(np.clip(np.sqrt(keep * aspect), 0.3, 1.0))
        bh = float(np.clip(keep / bw, 0.3, 1.0))
        fx, fy = [(0, 0), (1, 0), (0, 1), (1, 1), (0.5, 0), (0.5, 1), (0, 0.5), (1, 0.5)][
            rng.integers(8)
        ]
        left, top = (1 - bw) * fx, (1 - bh) * fy
        yield "cut_subject", (1 - keep) * 2, extract(image, (left, top, left + bw, top + bh))
    for keep in (rng.uniform(0.3, 0.42), rng.uniform(0.42, 0.55)):
        side = float(np.sqrt(keep))
        box = (0.5 - side / 2, 0.5 - side / 2, 0.5 + side / 2, 0.5 + side / 2)
        yield "too_tight", (1 - keep) * 2, extract(image, box)


def sources(
    n_para: int, seed: int = 0, bench_root: Path | None = None, para_offset: int = 0
) -> list[tuple[str, str, str, object]]:
    """[(group name, split key, origin, path or array)]: good PARA training photos (split by
    session), then REAL_TRAIN (split by file)."""
    from photod.training.datasets import para_dataset

    samples = para_dataset(split="train")
    targets = np.array([s.target for s in samples])
    good = [s for s, t in zip(samples, targets, strict=True) if t > np.median(targets)]
    rng = np.random.default_rng(seed)
    chosen = [good[i] for i in rng.permutation(len(good))[para_offset : para_offset + n_para]]
    out: list[tuple[str, str, str, object]] = [
        (f"para:{s.group}/{s.path.name}", s.group, "para", s.path) for s in chosen
    ]
    for rel in REAL_TRAIN:
        if rel.startswith("sklearn:"):
            from sklearn.datasets import load_sample_image

            out.append((rel, rel, "real", load_sample_image(rel.split(":", 1)[1])))
        elif bench_root is not None and (bench_root / rel).exists():
            out.append((rel, rel, "real", bench_root / rel))
    return out


def working_copy(item: object) -> np.ndarray:
    """The search's working copy of a path (decode_image) or an array (short side 224-448)."""
    from PIL import Image

    from photod.decode import decode_image

    if isinstance(item, np.ndarray):
        pixels = item[..., :3]
        h, w = pixels.shape[:2]
        scale = 448 / min(h, w)
        if scale < 1:
            size = (round(w * scale), round(h * scale))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
        return np.ascontiguousarray(pixels)
    return decode_image(item, min_side=224).pixels  # type: ignore[arg-type]


def load_cache(folder: Path) -> dict[str, np.ndarray]:
    """The finished shards under `folder` (training may start before the cache is complete)."""
    shards = sorted(folder.glob("**/shard-[0-9][0-9][0-9].npz"))
    parts = [dict(np.load(shard)) for shard in shards]
    keys = ("group", "kind", "defect", "held_out", "features")
    return {key: np.concatenate([p[key] for p in parts]) for key in keys}


def build_cache(
    folder: Path,
    n_para: int = 160,
    real_repeats: int = 3,
    seed: int = 0,
    base_weights: Path | None = None,
    bench_root: Path | None = None,
    shard_groups: int = 16,
    para_offset: int = 0,
) -> dict[str, np.ndarray]:
    """Features of every variant of every group, cached in shards under `folder` (resumable).

    Returns group names, kinds, defects, held-out flags and features [N, 2848] (float32).
    """
    import torch

    from photod.models.buckets import group_by_bucket, resize_to_bucket
    from photod.models.lite import lite0_from_file_state

    folder.mkdir(parents=True, exist_ok=True)
    items = sources(n_para, seed, bench_root, para_offset)
    jobs = []
    for name, key, origin, item in items:
        for r in range(real_repeats if origin == "real" else 1):
            jobs.append((f"{name}#{r}" if origin == "real" else name, key, item))
    backbone = None
    parts = []
    for k, start in enumerate(range(0, len(jobs), shard_groups)):
        chunk = jobs[start : start + shard_groups]
        shard = folder / f"shard-{k:03d}.npz"
        names = np.array([j[0] for j in chunk])
        if shard.exists():
            data = dict(np.load(shard))
            if len(data["group_list"]) == len(names) and (data["group_list"] == names).all():
                parts.append(data)
                continue
        if backbone is None:
            from safetensors.torch import load_file

            from photod.models.aesthetic import split_state
            from photod.models.edit_preference import WEIGHTS_DIR

            path = base_weights or WEIGHTS_DIR / "photod-aesthetic-v3.safetensors"
            backbone = lite0_from_file_state(split_state(load_file(str(path)))[1])
            backbone = backbone.to(memory_format=torch.channels_last)
        rows_group, rows_kind, rows_defect, rows_held, images = [], [], [], [], []
        for g, (group, split_key, item) in enumerate(chunk):
            image = working_copy(item)
            other = working_copy(jobs[(start + g + len(jobs) // 2) % len(jobs)][2])
            rng = np.random.default_rng(
                int.from_bytes(hashlib.sha256(group.encode()).digest()[:4], "little") ^ seed
            )
            for kind, defect, pixels in variants(image, other, rng):
                rows_group.append(group)
                rows_kind.append(kind)
                rows_defect.append(defect)
                rows_held.append(held_out(split_key))
                images.append(pixels)
        feats = np.zeros((len(images), 2848), np.float32)
        with torch.inference_mode():
            for indices in group_by_bucket(images).values():
                for s in range(0, len(indices), 32):
                    sub = indices[s : s + 32]
                    x = np.stack([resize_to_bucket(images[i]) for i in sub])
                    t = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
                    f, _ = backbone.features(t.contiguous(memory_format=torch.channels_last))
                    feats[sub] = f.numpy()
        data = {
            "group_list": names,
            "group": np.array(rows_group),
            "kind": np.array(rows_kind),
            "defect": np.array(rows_defect, np.float32),
            "held_out": np.array(rows_held),
            "features": feats,
        }
        tmp = folder / f"shard-{k:03d}.tmp.npz"
        np.savez(tmp, **data)
        tmp.replace(shard)
        parts.append(data)
        log.info("edit pairs: shard %d, %d groups, %d variants", k, len(chunk), len(images))
        print(f"shard {k}: {start + len(chunk)}/{len(jobs)} groups", flush=True)
    keys = ("group", "kind", "defect", "held_out", "features")
    return {key: np.concatenate([p[key] for p in parts]) for key in keys}
