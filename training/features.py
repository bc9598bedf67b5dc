"""Extract and cache frozen-backbone MLSP features, so heads and baselines train in seconds."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

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
