"""Exposure: shift by whole and third stops in linear light, with highlight protection.

A shift of `ev` stops multiplies linear light by 2**ev, as a camera or Camera Raw's Exposure2012
does; brightening rolls highlights off with a soft shoulder instead of clipping them to white.
The edit is one LUT, identical on the working copy and the full-resolution photo.
"""

from __future__ import annotations

from functools import partial

import numpy as np

from photod.enhancers import Candidate, EnhanceContext, register_enhancer
from photod.enhancers.color import LINEAR, apply_luts, highlight_shoulder, linear_to_srgb, to_lut


def exposure_lut(ev: float, knee: float = 0.5) -> np.ndarray:
    """The 256-entry LUT of an `ev`-stop shift (shoulder above `knee` when brightening)."""
    scaled = LINEAR * (2.0**ev)
    if ev > 0:
        scaled = highlight_shoulder(scaled, knee, peak=2.0**ev)
    return to_lut(linear_to_srgb(scaled))


def _apply(image: np.ndarray, lut: np.ndarray) -> np.ndarray:
    return apply_luts(image, lut)


@register_enhancer("exposure", kind="pixel", description="EV shifts in linear light")
def exposure(image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
    """EV shifts in linear light, highlights protected."""
    params = context.params
    knee = float(params.get("knee", 0.5))
    candidates = []
    for ev in params.get("ev", [-1.0, -0.5, 0.5, 1.0]):
        ev = float(ev)
        if ev == 0:
            continue
        lut = exposure_lut(ev, knee)
        candidates.append(
            Candidate(
                enhancer="exposure",
                params={"ev": ev},
                pixel_op=partial(_apply, lut=lut),
                crs={"Exposure2012": ev},
            )
        )
    return candidates
