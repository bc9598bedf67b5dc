"""Map an aesthetic score to 1-5 stars (and, opt-in, a reject) by documented thresholds.

A score is the predicted human mean rating on PARA's 1-5 scale, which people use timidly: most
photos land between 2.8 and 3.6. Mapping that scale 1:1 to stars would rate nearly everything 3★.
The thresholds are instead quantiles of the shipped model's predictions on a held-out set of real
photos, chosen so stars spread out like a photographer's own culling:

    1★ bottom 10 %, 2★ next 20 %, 3★ middle 35 %, 4★ next 25 %, 5★ top 10 %.

Each model's card stores its own thresholds (`star_thresholds`); the config file can override them.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

# Share of photos in each star bucket, lowest first; the model card's thresholds are these quantiles.
STAR_SHARES = (0.10, 0.20, 0.35, 0.25, 0.10)
FALLBACK_THRESHOLDS = (2.6, 2.9, 3.3, 3.6)


@dataclass(frozen=True)
class StarMapping:
    """`thresholds[i]` is the lowest score that earns i+2 stars; `reject_below` gives -1 (reject)."""

    thresholds: tuple[float, float, float, float] = FALLBACK_THRESHOLDS
    reject_below: float | None = None

    def __post_init__(self) -> None:
        if len(self.thresholds) != 4 or list(self.thresholds) != sorted(self.thresholds):
            raise ValueError(f"star thresholds must be 4 increasing numbers, got {self.thresholds}")

    def stars(self, score: float) -> int:
        if not math.isfinite(score):
            # NaN compares false with every threshold and would come out as 5 stars.
            raise ValueError(f"a score must be finite to map to stars, got {score!r}")
        if self.reject_below is not None and score < self.reject_below:
            return -1
        return 1 + bisect_right(self.thresholds, score)


def thresholds_from_scores(scores: Sequence[float]) -> tuple[float, float, float, float]:
    """Quantile thresholds that give STAR_SHARES on `scores` (used when a model is trained)."""
    import numpy as np

    cumulative = np.cumsum(STAR_SHARES)[:-1]
    values = np.quantile(np.asarray(scores, dtype=float), cumulative)
    return tuple(round(float(v), 4) for v in values)  # type: ignore[return-value]


def relative_stars(scores: Sequence[float]) -> list[int]:
    """Stars within one shoot: the same STAR_SHARES split, by rank among `scores` themselves.

    What culling tools do for an import: the best 10 % of this shoot get 5★ whatever the model's
    absolute scale says, so a shoot of strong photos still spreads over 1-5★. A photo's share is
    its rank's centre, (rank + 0.5) / n, with tied scores sharing their mean rank, so a single
    photo gets 3★, two get 2★ and 4★, and equal scores get equal stars.
    """
    n = len(scores)
    order = sorted(range(n), key=lambda i: scores[i])
    ranks = [0.0] * n
    start = 0
    while start < n:
        end = start
        while end + 1 < n and scores[order[end + 1]] == scores[order[start]]:
            end += 1
        for k in range(start, end + 1):
            ranks[order[k]] = (start + end) / 2
        start = end + 1
    # Compare in whole numbers, (2 * rank + 1) / 2n against the cumulative shares in percent, so
    # a share that falls exactly on a boundary (10 photos: 65 %) lands the same way every time.
    percents = [round(share * 100) for share in STAR_SHARES]
    bounds = [sum(percents[: i + 1]) * 2 * n for i in range(len(percents) - 1)]
    return [1 + bisect_right(bounds, round((2 * rank + 1) * 100)) for rank in ranks]


def shoot_key(path: str, given: Sequence[str]) -> str:
    """Which shoot a photo belongs to for relative stars: the folder that holds it when it came
    from a folder argument (with -r each sub-folder, a day or an event, is its own shoot), else
    the set of files named one by one (key "")."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    for item in given:
        if os.path.isdir(item):
            root = os.path.abspath(item)
            if folder == root or folder.startswith(root.rstrip(os.sep) + os.sep):
                return folder
    return ""
