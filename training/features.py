"""Extract and cache frozen-backbone MLSP features, so heads and baselines train in seconds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from photod.models.aesthetic import TRUNK_STAGES, tail_forward, trunk_forward

__all__ = ["TRUNK_STAGES", "tail_forward", "trunk_forward"]  # re-exported: training code uses them

log = logging.getLogger("photod")


def extract_features(
    paths: Sequence[Path], batch_size: int = 64, device: str = "cpu", flip: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(MLSP features [N, D], embeddings [N, 1280]) of the images, backbone frozen (ImageNet)."""
    import torch
    from tqdm import tqdm

    from photod.decode import decode_image
    from photod.models.aesthetic import multilevel_features
    from photod.models.backbone import build_backbone
    from photod.models.preprocess import to_tensor

    backbone = build_backbone().to(device).to(memory_format=torch.channels_last)
    features, embeddings = [], []

    def load(path: Path) -> np.ndarray:
        pixels = decode_image(path, min_side=224).pixels
        return pixels[:, ::-1] if flip else pixels

    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        batches = [paths[i : i + batch_size] for i in range(0, len(paths), batch_size)]
        upcoming = pool.map(lambda batch: [load(p) for p in batch], batches)
        for images in tqdm(upcoming, total=len(batches), desc="features", unit="batch"):
            feats, emb = multilevel_features(backbone, to_tensor(images).to(device))
            features.append(feats.numpy().astype(np.float32))
            embeddings.append(emb.numpy().astype(np.float32))
    return np.concatenate(features), np.concatenate(embeddings)


def cached_features(
    paths: Sequence[Path], cache: Path, **kwargs: object
) -> tuple[np.ndarray, np.ndarray]:
    """`extract_features` with an .npz cache keyed by the list of file names."""
    names = np.array([p.name for p in paths])
    if cache.exists():
        data = np.load(cache)
        if data["names"].shape == names.shape and (data["names"] == names).all():
            return data["features"], data["embeddings"]
        log.info("feature cache %s is for other images; recomputing", cache)
    features, embeddings = extract_features(paths, **kwargs)  # type: ignore[arg-type]
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, names=names, features=features, embeddings=embeddings)
    return features, embeddings


# --- Frozen trunk cache for fine-tuning the late stages ------------------------------------------
# Fine-tuning the whole backbone on a CPU is out of reach; stages 0-4 stay frozen (they carry the
# low-level signals, which ImageNet features already describe well) and their output map
# (112 x 14 x 14) plus their MLSP mean/std vectors are cached once, in fp16. Stages 5-6, the head
# convolution and the MLP are then trained from the cache at a fraction of a full forward's cost.


def extract_trunk(
    images: Sequence[np.ndarray] | Sequence[Path],
    batch_size: int = 64,
    device: str = "cpu",
    desc: str = "trunk",
    stages: int = TRUNK_STAGES,
) -> tuple[np.ndarray, np.ndarray]:
    """(maps of blocks[:stages] fp16, e.g. [N, 112, 14, 14], their MLSP stats fp32) of images.

    `images` are pixel arrays or image paths; v3 caches 5 stages (112 channels, 544 stats), v4
    caches 4 (80 channels, 320 stats).
    """
    import torch
    from tqdm import tqdm

    from photod.decode import decode_image
    from photod.models.backbone import build_backbone
    from photod.models.preprocess import to_tensor

    backbone = build_backbone().to(device).to(memory_format=torch.channels_last)

    def load(item: np.ndarray | Path) -> np.ndarray:
        if isinstance(item, np.ndarray):
            return item
        return decode_image(item, min_side=224).pixels

    maps, stats = [], []
    with ThreadPoolExecutor(2) as pool, torch.inference_mode():
        batches = [images[i : i + batch_size] for i in range(0, len(images), batch_size)]
        upcoming = pool.map(lambda batch: [load(p) for p in batch], batches)
        for batch in tqdm(upcoming, total=len(batches), desc=desc, unit="batch"):
            h, s = trunk_forward(backbone, to_tensor(batch).to(device), stages)
            maps.append(h.float().cpu().numpy().astype(np.float16))
            stats.append(s.cpu().numpy().astype(np.float32))
    if not maps:
        channels, stat_dim = trunk_shape(stages)
        return np.zeros((0, channels, 14, 14), np.float16), np.zeros((0, stat_dim), np.float32)
    return np.concatenate(maps), np.concatenate(stats)


def trunk_shape(stages: int = TRUNK_STAGES) -> tuple[int, int]:
    """(channels of the map after blocks[:stages], length of their MLSP statistics)."""
    from photod.models.backbone import STAGE_CHANNELS

    return STAGE_CHANNELS[stages - 1], 2 * sum(STAGE_CHANNELS[:stages])


def trunk_order(names: Sequence[str], first: Sequence[int] = (), seed: int = 0) -> np.ndarray:
    """Extraction order: `first` (e.g. the validation rows), then the rest in a seeded random order.

    Any prefix of the work is then a complete validation set plus a random sample of the training
    images, so a run cut short (or a slow shared CPU) still leaves a usable cache.
    """
    first_set = set(int(i) for i in first)
    rest = np.array([i for i in range(len(names)) if i not in first_set], np.int64)
    rest = np.random.default_rng(seed).permutation(rest)
    return np.concatenate([np.array(sorted(first_set), np.int64), rest])


def sharded_trunk(
    paths: Sequence[Path],
    folder: Path,
    first: Sequence[int] = (),
    shard_size: int = 1024,
    compute: bool = True,
    stages: int = TRUNK_STAGES,
    **kwargs: object,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Trunk features of `paths` cached in shards under `folder`: (maps, stats, available mask).

    Shards already on disk are reused (resume after an interruption); with `compute=False`
    only what exists is loaded. Rows not yet extracted are zeros with mask False.
    """
    names = [p.name for p in paths]
    order = trunk_order(names, first)
    folder.mkdir(parents=True, exist_ok=True)
    channels, stat_dim = trunk_shape(stages)
    maps = np.zeros((len(paths), channels, 14, 14), np.float16)
    stats = np.zeros((len(paths), stat_dim), np.float32)
    have = np.zeros(len(paths), bool)
    for k, start in enumerate(range(0, len(order), shard_size)):
        rows = order[start : start + shard_size]
        shard = folder / f"shard-{k:03d}.npz"
        shard_names = np.array([names[i] for i in rows])
        if shard.exists():
            data = np.load(shard)
            if (data["names"] == shard_names).all():
                maps[rows], stats[rows], have[rows] = data["maps"], data["stats"], True
                continue
        if not compute:
            continue
        m, s = extract_trunk(
            [paths[i] for i in rows],
            desc=f"trunk {k}",
            stages=stages,
            **kwargs,  # type: ignore[arg-type]
        )
        tmp = folder / f"shard-{k:03d}.tmp.npz"
        np.savez(tmp, names=shard_names, maps=m, stats=s)
        tmp.replace(shard)
        maps[rows], stats[rows], have[rows] = m, s, True
    return maps, stats, have
