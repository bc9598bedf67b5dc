"""Build the synthetic preference pairs of the training split and cache their frozen-trunk features.

Pairs come from the "good" photos of the training split (aesthetic mean above the split's median):
each chosen photo gets `kinds_per_photo` different degradations, with random strengths from
`degrade.TRAIN_RANGE`, drawn from a seeded generator so the cache is reproducible. Only the
degraded images are stored here; their originals are rows of the PARA trunk cache.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from photod.training.datasets import Sample
from photod.training.degrade import KINDS, degrade

log = logging.getLogger("photod")


def good_photos(samples: Sequence[Sample]) -> list[int]:
    """Indices of the samples above the median target (the photos worth protecting)."""
    targets = np.array([s.target for s in samples])
    return [int(i) for i in np.flatnonzero(targets > np.median(targets))]


def plan_pairs(
    candidates: Sequence[int], n_photos: int, kinds_per_photo: int, seed: int
) -> list[tuple[int, str, int]]:
    """[(sample index, degradation kind, per-pair seed)], balanced over kinds."""
    rng = np.random.default_rng(seed)
    chosen = rng.permutation(np.asarray(candidates))[:n_photos]
    plan = []
    offset = 0
    for index in chosen:
        # Rotate through the kinds so each appears equally often across the whole plan.
        kinds = [KINDS[(offset + k) % len(KINDS)] for k in range(kinds_per_photo)]
        offset += kinds_per_photo
        for kind in kinds:
            plan.append((int(index), kind, int(rng.integers(2**31))))
    return plan


def degraded_images(
    samples: Sequence[Sample], plan: Sequence[tuple[int, str, int]]
) -> list[np.ndarray]:
    """The degraded pixel arrays of `plan`, each from its own seeded generator."""
    from photod.decode import decode_image

    images = []
    cache: dict[int, np.ndarray] = {}
    for index, kind, pair_seed in plan:
        if index not in cache:
            cache = {index: decode_image(samples[index].path, min_side=224).pixels}
        images.append(degrade(cache[index], kind, np.random.default_rng(pair_seed)))
    return images


def cached_pairs(
    samples: Sequence[Sample],
    folder: Path,
    n_photos: int = 600,
    kinds_per_photo: int = 5,
    seed: int = 0,
    shard_size: int = 500,
    compute: bool = True,
    stages: int | None = None,
    **kwargs: object,
) -> dict[str, np.ndarray]:
    """Pair table (base name, kind) with the trunk features of each degraded image.

    Cached in shards under `folder` (resumable); with `compute=False` only finished shards are
    returned, so training can start on part of the pairs.
    """
    from photod.training.features import TRUNK_STAGES, extract_trunk, trunk_shape

    stages = stages or TRUNK_STAGES

    plan = plan_pairs(good_photos(samples), n_photos, kinds_per_photo, seed)
    folder.mkdir(parents=True, exist_ok=True)
    parts: list[dict[str, np.ndarray]] = []
    for k, start in enumerate(range(0, len(plan), shard_size)):
        chunk = plan[start : start + shard_size]
        base_names = np.array([samples[i].path.name for i, _, _ in chunk])
        shard = folder / f"shard-{k:03d}.npz"
        if shard.exists():
            data = dict(np.load(shard))
            if (data["base_names"] == base_names).all():
                parts.append(data)
                continue
        if not compute:
            continue
        maps, stats = extract_trunk(
            degraded_images(samples, chunk),
            desc=f"pairs {k}",
            stages=stages,
            **kwargs,  # type: ignore[arg-type]
        )
        data = {
            "base_names": base_names,
            "kinds": np.array([kind for _, kind, _ in chunk]),
            "maps": maps,
            "stats": stats,
        }
        tmp = folder / f"shard-{k:03d}.tmp.npz"
        np.savez(tmp, **data)
        tmp.replace(shard)
        parts.append(data)
    if not parts:
        channels, stat_dim = trunk_shape(stages)
        return {
            "base_names": np.array([], str),
            "kinds": np.array([], str),
            "maps": np.zeros((0, channels, 14, 14), np.float16),
            "stats": np.zeros((0, stat_dim), np.float32),
        }
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
