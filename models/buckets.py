"""Model inputs at the photo's own shape, from a small fixed set of sizes ("shape buckets").

The backbone pools every stage globally, so it takes any input size; a crop is therefore shown
to the edit-preference head at its own aspect ratio instead of squashed to 224 x 224. The short
side is always 224 px and the long side is rounded to one of `LONG_SIDES` (at most 16 px off,
a <= 7 % stretch), so a search touches at most 15 distinct shapes: a new input shape costs the
CPU backend a fresh kernel selection on its first call, and a few fixed shapes keep a new
process's first photo close to the later ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

SHORT_SIDE = 224
LONG_SIDES = (224, 256, 288, 320, 352, 384, 416, 448)


def bucket_size(height: int, width: int) -> tuple[int, int]:
    """(height, width) of the model input for an image of `height` x `width` pixels."""
    long_side = max(height, width) * SHORT_SIDE / max(1, min(height, width))
    nearest = min(LONG_SIDES, key=lambda side: abs(side - long_side))
    return (SHORT_SIDE, nearest) if width >= height else (nearest, SHORT_SIDE)


def resize_to_bucket(pixels: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 -> its bucket's size (bilinear, antialiased by Pillow when shrinking)."""
    from PIL import Image

    h, w = pixels.shape[:2]
    th, tw = bucket_size(h, w)
    if (h, w) == (th, tw):
        return np.ascontiguousarray(pixels)
    return np.asarray(Image.fromarray(pixels).resize((tw, th), Image.Resampling.BILINEAR))


def group_by_bucket(images: Sequence[np.ndarray]) -> dict[tuple[int, int], list[int]]:
    """Indices of `images` grouped by their bucket size (one batch per shape)."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(bucket_size(*image.shape[:2]), []).append(i)
    return groups
