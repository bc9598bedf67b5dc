"""Synthetic preference pairs: a photo must score higher than its own degraded version.

`photod suggest` uses the score as the objective of a search over crops, exposure, white balance and
tone; a score trained on mean opinions alone climbs for almost any tighter crop and is unsure about
exposure (see shared/NOTES.md). Pairs (original, degraded) teach it the direction of each defect.

Every degradation works on an HxWx3 uint8 sRGB array of any size; strengths are given at the model's
224-px scale and scaled with the image, so a blur of sigma 2 means the same at 224 px and at 6000 px.
`degrade(pixels, kind, rng)` draws a random strength from the training range;
`degrade(pixels, kind, rng, strength=EVAL_STRENGTH[kind])` gives the fixed strength used in evaluation.
Exposure is shifted in linear light (sRGB decoded, multiplied by 2**EV, re-encoded), so -1 EV is
what one stop less on the camera would have given, clipping included.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageFilter

KINDS = (
    "blur",
    "noise",
    "underexposed",
    "overexposed",
    "colour_cast",
    "low_contrast",
    "jpeg",
    "tilt",
    "bad_crop",
    "margin",
)

# Training draws each strength uniformly from these ranges (at the 224-px model scale).
TRAIN_RANGE: dict[str, tuple[float, float]] = {
    "blur": (1.2, 4.0),  # Gaussian sigma, px at 224
    "noise": (8.0, 28.0),  # std of additive noise, 0-255 units
    "underexposed": (0.6, 2.0),  # EV below
    "overexposed": (0.6, 2.0),  # EV above
    "colour_cast": (0.12, 0.35),  # relative channel gain
    "low_contrast": (0.35, 0.65),  # share of the contrast removed
    "jpeg": (4.0, 14.0),  # JPEG quality
    "tilt": (4.0, 12.0),  # degrees
    "bad_crop": (0.30, 0.55),  # share of the area kept, window pushed to an edge
    "margin": (0.12, 0.30),  # margin width as a share of the side
}

# The fixed strengths of the evaluation pairs (the targets: +-1 EV and blur).
EVAL_STRENGTH: dict[str, float] = {
    "blur": 2.0,
    "noise": 15.0,
    "underexposed": 1.0,
    "overexposed": 1.0,
    "colour_cast": 0.25,
    "low_contrast": 0.5,
    "jpeg": 10.0,
    "tilt": 6.0,
    "bad_crop": 0.45,
    "margin": 0.2,
}


def srgb_to_linear(x: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] to linear light."""
    return np.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: np.ndarray) -> np.ndarray:
    """Linear light in [0, 1] to sRGB values."""
    x = np.clip(x, 0.0, 1.0)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _scale(pixels: np.ndarray) -> float:
    """Pixels of this image per pixel of the 224-px model input (short side)."""
    return min(pixels.shape[:2]) / 224.0


def shift_exposure(pixels: np.ndarray, ev: float) -> np.ndarray:
    """Multiply linear light by 2**ev (clipping like a sensor would)."""
    linear = srgb_to_linear(pixels.astype(np.float32) / 255.0) * (2.0**ev)
    return _to_uint8(linear_to_srgb(linear))


def blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    radius = sigma * _scale(pixels)
    return np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(radius)))


def add_noise(pixels: np.ndarray, std: float, rng: np.random.Generator) -> np.ndarray:
    # Sensor-like: mostly luminance noise plus some chroma noise.
    luma = rng.normal(0.0, std, size=pixels.shape[:2] + (1,))
    chroma = rng.normal(0.0, std * 0.4, size=pixels.shape)
    return np.clip(pixels.astype(np.float32) + luma + chroma, 0, 255).astype(np.uint8)


def colour_cast(pixels: np.ndarray, strength: float, rng: np.random.Generator) -> np.ndarray:
    # A random hue direction in linear light, normalised so overall brightness stays about equal.
    angle = rng.uniform(0, 2 * np.pi)
    direction = np.array([np.cos(angle), np.cos(angle - 2.094), np.cos(angle + 2.094)])
    gains = 1.0 + strength * direction
    gains = gains / (gains @ np.array([0.2126, 0.7152, 0.0722]))
    linear = srgb_to_linear(pixels.astype(np.float32) / 255.0) * gains.astype(np.float32)
    return _to_uint8(linear_to_srgb(linear))


def low_contrast(pixels: np.ndarray, amount: float) -> np.ndarray:
    x = pixels.astype(np.float32)
    return np.clip(x.mean() + (x - x.mean()) * (1.0 - amount), 0, 255).astype(np.uint8)


def jpeg_artefacts(pixels: np.ndarray, quality: float) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=int(round(quality)))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def tilt(pixels: np.ndarray, degrees: float, rng: np.random.Generator) -> np.ndarray:
    """Rotate by +-degrees and crop the largest upright rectangle without empty corners."""
    angle = degrees * rng.choice([-1.0, 1.0])
    h, w = pixels.shape[:2]
    rotated = Image.fromarray(pixels).rotate(angle, Image.Resampling.BICUBIC, expand=False)
    a = np.deg2rad(abs(angle))
    # Largest axis-aligned rectangle of the original aspect ratio inside the rotated frame.
    factor = 1.0 / (np.cos(a) + np.sin(a) * max(w / h, h / w))
    cw, ch = int(w * factor), int(h * factor)
    left, top = (w - cw) // 2, (h - ch) // 2
    return np.asarray(rotated.crop((left, top, left + cw, top + ch)).resize((w, h)))


def bad_crop(pixels: np.ndarray, keep: float, rng: np.random.Generator) -> np.ndarray:
    """Keep `keep` of the area in a window pushed against a random edge or corner."""
    h, w = pixels.shape[:2]
    side = np.sqrt(keep)
    aspect = rng.uniform(0.75, 1.33)
    cw = int(np.clip(w * side * np.sqrt(aspect), 8, w))
    ch = int(np.clip(h * side / np.sqrt(aspect), 8, h))
    # Off-centre: x and y each at the start or end, or one of them centred (an edge, not a corner).
    positions = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0), (0.5, 0.0), (0.5, 1.0)]
    positions += [(0.0, 0.5), (1.0, 0.5)]
    fx, fy = positions[rng.integers(len(positions))]
    left, top = int((w - cw) * fx), int((h - ch) * fy)
    crop = Image.fromarray(pixels[top : top + ch, left : left + cw])
    return np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR))


def add_margin(pixels: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Flat or foreign (noise texture) margins on one or two sides, the photo shrunk to fit."""
    h, w = pixels.shape[:2]
    sides = rng.choice(["left", "right", "top", "bottom", "lr", "tb"])
    mx = int(w * share) if sides in ("left", "right", "lr") else 0
    my = int(h * share) if sides in ("top", "bottom", "tb") else 0
    if rng.random() < 0.6:
        fill = np.ones((h, w, 3), np.float32) * rng.integers(0, 256, size=3)
    else:
        fill = rng.normal(128, 50, size=(h, w, 3)).clip(0, 255)
    canvas = fill.astype(np.uint8)
    inner_w = w - mx * (2 if sides == "lr" else 1)
    inner_h = h - my * (2 if sides == "tb" else 1)
    inner = np.asarray(Image.fromarray(pixels).resize((max(inner_w, 8), max(inner_h, 8))))
    left = mx if sides in ("left", "lr") else 0
    top = my if sides in ("top", "tb") else 0
    canvas[top : top + inner.shape[0], left : left + inner.shape[1]] = inner
    return canvas


_APPLY: dict[str, Callable[[np.ndarray, float, np.random.Generator], np.ndarray]] = {
    "blur": lambda p, s, r: blur(p, s),
    "noise": add_noise,
    "underexposed": lambda p, s, r: shift_exposure(p, -s),
    "overexposed": lambda p, s, r: shift_exposure(p, s),
    "colour_cast": colour_cast,
    "low_contrast": lambda p, s, r: low_contrast(p, s),
    "jpeg": lambda p, s, r: jpeg_artefacts(p, s),
    "tilt": tilt,
    "bad_crop": bad_crop,
    "margin": add_margin,
}


def degrade(
    pixels: np.ndarray, kind: str, rng: np.random.Generator, strength: float | None = None
) -> np.ndarray:
    """`pixels` with defect `kind` at `strength` (random in TRAIN_RANGE when None)."""
    if kind not in _APPLY:
        raise ValueError(f"unknown degradation {kind!r} (known: {', '.join(KINDS)})")
    if strength is None:
        low, high = TRAIN_RANGE[kind]
        strength = float(rng.uniform(low, high))
    return _APPLY[kind](np.ascontiguousarray(pixels), strength, rng)
