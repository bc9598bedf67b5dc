"""Labelled image sets for training and evaluation, each yielding (image path, target) with a split.

`para_dataset` reads PARA's `labels.csv` (image, session, aesthetic_mean, quality_mean). Splits are
made by `session`, never by image, so near-identical shots of one session cannot sit on both sides;
the split is a pure function of the session name and the seed, hence stable across runs/machines.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PARA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "para-train"
SPLIT_SEED = 20261129
VALIDATION_SHARE = 0.2


def para_dir() -> Path:
    """`$PHOTOD_PARA_DIR`, else `../shared/data/para-train` beside the source tree."""
    return Path(os.environ.get("PHOTOD_PARA_DIR", DEFAULT_PARA_DIR))


@dataclass(frozen=True)
class Sample:
    path: Path
    target: float
    group: str


def session_split(group: str, seed: int = SPLIT_SEED, share: float = VALIDATION_SHARE) -> str:
    """'val' for about `share` of groups, else 'train': a hash of (seed, group), not a RNG state."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < share else "train"


def para_dataset(
    root: Path | None = None,
    split: str = "all",
    target: str = "aesthetic_mean",
    seed: int = SPLIT_SEED,
) -> list[Sample]:
    """PARA samples of `split` ('train', 'val' or 'all'), sorted by image name."""
    root = root or para_dir()
    samples = []
    with open(root / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if split != "all" and session_split(row["session"], seed) != split:
                continue
            samples.append(Sample(root / "images" / row["image"], float(row[target]), row["session"]))
    return sorted(samples, key=lambda s: s.path.name)
