"""White balance: grey-world and white-patch corrections, and temperature/tint shifts.

Gains act on linear light per channel (as a camera's white balance does) and are normalised to
keep the luminance of mid-grey, so white balance never doubles as an exposure change. Grey-world
assumes the scene averages to grey; white-patch that its brightest (non-clipped) pixels are
white; `strength` blends toward the neutral gains, because a full correction of a warm sunset is
rarely wanted. Temperature moves red against blue, tint green against magenta.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from photod.enhancers import Candidate, EnhanceContext, register_enhancer
from photod.enhancers.color import LINEAR, apply_luts, linear_to_srgb, to_lut

_LUMA = np.array([0.2126, 0.7152, 0.0722])


def gains_lut(gains: np.ndarray) -> np.ndarray:
    """A (3, 256) LUT that multiplies linear light by `gains` (R, G, B)."""
    gains = np.asarray(gains, dtype=np.float64)
    gains = gains / float(gains @ _LUMA)  # keep the luminance of a neutral grey
    return np.stack([to_lut(linear_to_srgb(LINEAR * g)) for g in gains])


def _linear_sample(image: np.ndarray, limit: int = 40_000) -> np.ndarray:
    flat = image.reshape(-1, 3)
    step = max(1, flat.shape[0] // limit)
    return LINEAR[flat[::step]]


def grey_world_gains(image: np.ndarray) -> np.ndarray:
    """Gains that make the mean of each channel equal (clipped pixels left out)."""
    lin = _linear_sample(image)
    keep = lin.max(axis=1) < 0.98
    means = (lin[keep] if keep.sum() > 100 else lin).mean(axis=0) + 1e-6
    return means.mean() / means


def white_patch_gains(image: np.ndarray, percentile: float = 99.0) -> np.ndarray:
    """Gains that make the brightest non-clipped pixels neutral."""
    lin = _linear_sample(image)
    luma = lin @ _LUMA
    keep = lin.max(axis=1) < 0.98
    if keep.sum() < 100:
        keep = np.ones_like(keep)
    threshold = np.percentile(luma[keep], percentile)
    bright = lin[keep & (luma >= threshold)]
    whites = bright.mean(axis=0) + 1e-6
    return whites.mean() / whites


def temperature_tint_gains(temperature: float, tint: float) -> np.ndarray:
    """Warmer (+) / cooler (-) and magenta (+) / green (-) as R, G, B gains."""
    return np.array([1.0 + temperature, 1.0 - tint, 1.0 - temperature])


def _apply(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return apply_luts(image, lut)


def crs_for_gains(gains: np.ndarray) -> dict[str, float]:
    """Approximate Camera Raw incremental temperature/tint for linear gains (JPEG/TIFF scale).

    Camera Raw's incremental sliders for rendered files run -100..100; a log blue/red ratio of
    ln(2) is treated as the full range. This is a readable hint, not a colour-exact conversion.
    """
    g = np.asarray(gains, dtype=np.float64)
    temp = np.log(g[0] / g[2]) / np.log(2.0) * 100.0
    tint = np.log(np.sqrt(g[0] * g[2]) / g[1]) / np.log(2.0) * 100.0
    return {
        "IncrementalTemperature": int(np.clip(round(temp), -100, 100)),
        "IncrementalTint": int(np.clip(round(tint), -100, 100)),
    }


# No channel gets more than this factor relative to the others: estimators fooled by a scene
# (a green meadow for grey-world, a coloured highlight for white-patch) propose absurd gains.
MAX_GAIN_RATIO = 2.2


def _limit(gains: np.ndarray) -> np.ndarray:
    g = np.asarray(gains, dtype=np.float64)
    centre = np.exp(np.log(g).mean())
    return centre * np.clip(g / centre, 1 / np.sqrt(MAX_GAIN_RATIO), np.sqrt(MAX_GAIN_RATIO))


def _candidate(name: str, params: dict, gains: np.ndarray) -> Candidate:
    return Candidate(
        enhancer="white_balance",
        params={**params, "gains": [round(float(g), 4) for g in gains / (gains @ _LUMA)]},
        pixel_op=partial(_apply, lut=gains_lut(gains)),
        crs=crs_for_gains(gains),
    )


@register_enhancer("white_balance", kind="pixel", description="grey-world/white-patch, temp/tint")
def white_balance(image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
    """Grey-world and white-patch corrections, given estimates, temperature and tint shifts."""
    params = context.params
    candidates = []
    estimators = {
        "grey_world": lambda: grey_world_gains(image),
        "white_patch": lambda: white_patch_gains(image, float(params.get("white_percentile", 99))),
    }
    for method in params.get("methods", ["grey_world"]):
        if method not in estimators:
            continue
        full = estimators[method]()
        for strength in params.get("strength", [1.0]):
            gains = _limit(1.0 + float(strength) * (full - 1.0))
            if np.abs(gains / gains.mean() - 1.0).max() < 0.01:
                continue  # already neutral: nothing to propose
            candidates.append(
                _candidate("white_balance", {"method": method, "strength": strength}, gains)
            )
    # Gains estimated elsewhere (the search's predicted correction, photod/suggest.py), blended
    # toward neutral in log space at each strength.
    for method, estimate in params.get("estimates", {}).items():
        full = np.asarray(estimate, dtype=np.float64)
        for strength in params.get("predicted_strength", [1.0]):
            gains = _limit(np.exp(float(strength) * np.log(full)))
            if np.abs(gains / np.exp(np.log(gains).mean()) - 1.0).max() < 0.01:
                continue
            candidates.append(
                _candidate("white_balance", {"method": method, "strength": strength}, gains)
            )
    for temperature in params.get("temperature", []):
        gains = temperature_tint_gains(float(temperature), 0.0)
        candidates.append(_candidate("white_balance", {"temperature": temperature}, gains))
    for tint in params.get("tint", []):
        gains = temperature_tint_gains(0.0, float(tint))
        candidates.append(_candidate("white_balance", {"tint": tint}, gains))
    return candidates
