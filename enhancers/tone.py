"""Tone: a contrast S-curve around mid-grey, and saturation / vibrance.

Contrast is a LUT on the sRGB-encoded values (as the eye and Camera Raw's Contrast2012 slider
see it): a blend toward a smoothstep curve pivoting at 0.5, negative values flatten. Saturation
scales each pixel's distance from its own grey; vibrance does so more for dull pixels than for
already saturated ones (skin and skies stay natural).
"""

from __future__ import annotations

from functools import partial

import numpy as np

from photod.enhancers import Candidate, EnhanceContext, register_enhancer
from photod.enhancers.color import apply_luts, to_lut

_CODES = np.arange(256, dtype=np.float64) / 255.0


def contrast_lut(amount: float) -> np.ndarray:
    """S-curve LUT: `amount` 0 is identity, 1 is a full smoothstep, negative flattens."""
    s = _CODES * _CODES * (3.0 - 2.0 * _CODES)
    return to_lut(_CODES + amount * (s - _CODES))


def _apply_contrast(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return apply_luts(image, lut)


def adjust_saturation(
    image: np.ndarray, saturation: float = 0.0, vibrance: float = 0.0
) -> np.ndarray:
    """Scale chroma (distance from the pixel's grey) by 1 + saturation (+ vibrance if dull)."""
    out = np.empty_like(image)
    # Strips keep the float copy small on a 24 MP render.
    for start in range(0, image.shape[0], 256):
        block = image[start : start + 256].astype(np.float32)
        grey = block @ np.array([0.299, 0.587, 0.114], np.float32)
        chroma = block - grey[..., None]
        factor = np.full(grey.shape, 1.0 + saturation, np.float32)
        if vibrance:
            spread = (block.max(axis=2) - block.min(axis=2)) / 255.0
            factor += vibrance * (1.0 - spread)
        block = grey[..., None] + chroma * factor[..., None]
        out[start : start + 256] = np.clip(block + 0.5, 0, 255).astype(np.uint8)
    return out


@register_enhancer("tone", kind="pixel", description="contrast curve, saturation, vibrance")
def tone(image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
    """Contrast S-curve and saturation/vibrance."""
    params = context.params
    candidates = []
    for amount in params.get("contrast", [0.2]):
        amount = float(amount)
        candidates.append(
            Candidate(
                enhancer="tone",
                params={"contrast": amount},
                pixel_op=partial(_apply_contrast, lut=contrast_lut(amount)),
                crs={"Contrast2012": int(round(amount * 100))},
            )
        )
    for amount in params.get("saturation", []):
        amount = float(amount)
        candidates.append(
            Candidate(
                enhancer="tone",
                params={"saturation": amount},
                pixel_op=partial(adjust_saturation, saturation=amount),
                crs={"Saturation": int(round(amount * 100))},
            )
        )
    for amount in params.get("vibrance", []):
        amount = float(amount)
        candidates.append(
            Candidate(
                enhancer="tone",
                params={"vibrance": amount},
                pixel_op=partial(adjust_saturation, vibrance=amount),
                crs={"Vibrance": int(round(amount * 100))},
            )
        )
    return candidates
