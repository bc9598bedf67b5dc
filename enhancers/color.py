"""Colour maths shared by the pixel enhancers: sRGB transfer curve, LUTs, luminance.

Exposure and white balance are physical operations, so they act on linear light; the point-wise
8-bit edits are expressed as 256-entry lookup tables per channel, which apply in one pass at any
resolution (cv2.LUT) and compose exactly.
"""

from __future__ import annotations

import numpy as np

_CODES = np.arange(256, dtype=np.float64) / 255.0


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] to linear light."""
    v = np.asarray(v, dtype=np.float64)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB-encoded values."""
    v = np.clip(np.asarray(v, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


LINEAR = srgb_to_linear(_CODES)


def to_lut(values: np.ndarray) -> np.ndarray:
    """Floats in [0, 1] for each of the 256 input codes -> a uint8 LUT."""
    return np.clip(np.round(np.asarray(values) * 255.0), 0, 255).astype(np.uint8)


def apply_luts(image: np.ndarray, luts: np.ndarray) -> np.ndarray:
    """Apply a (256,) LUT to every channel or a (3, 256) LUT channel by channel."""
    import cv2

    if luts.ndim == 1:
        return cv2.LUT(image, luts)
    table = np.ascontiguousarray(luts.T.reshape(256, 1, 3))
    return cv2.LUT(np.ascontiguousarray(image), table)


def luminance(image: np.ndarray) -> np.ndarray:
    """Rec. 709 relative luminance of an sRGB uint8 image, in linear light [0, 1]."""
    lin = LINEAR.astype(np.float32)[image]
    return lin @ np.array([0.2126, 0.7152, 0.0722], np.float32)


def highlight_shoulder(x: np.ndarray, knee: float = 0.5, peak: float = 1.0) -> np.ndarray:
    """Identity below `knee`, then a smooth rational roll-off that maps `peak` to exactly 1.

    Used after a positive exposure shift (peak = 2**ev): only pixels that were already white
    end up white and the brightest tones keep distinct codes, so skies keep their gradation
    (highlight protection). The curve is continuous and rising at the knee.
    """
    x = np.asarray(x, dtype=np.float64)
    span = 1.0 - knee
    t = np.maximum(x - knee, 0.0) / span
    reach = max(peak - knee, 1e-6) / span
    rolled = knee + span * (t / (1.0 + t)) / (reach / (1.0 + reach))
    return np.where(x > knee, np.minimum(rolled, 1.0), x)
