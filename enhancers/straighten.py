"""Straighten: find a tilted horizon or tilted verticals with a Hough transform, rotate them level.

Edges (Canny) -> line segments (probabilistic Hough). Segments within `max_angle` of horizontal or
vertical vote for the tilt with their length; the length-weighted median is the estimate. When the
lines supporting it are too short (a photo without architecture or horizon), nothing is proposed.
The rotation comes with the largest centred crop of the same aspect ratio that has no empty
corners, exactly as Lightroom's straighten tool crops.
"""

from __future__ import annotations

import math

import numpy as np

from photod.enhancers import Candidate, EnhanceContext, register_enhancer
from photod.enhancers.geometry import inscribed_box


def detect_tilt(
    image: np.ndarray, max_angle: float = 8.0, min_line_fraction: float = 0.15
) -> float | None:
    """Counter-clockwise tilt in degrees of the scene's horizontals/verticals, or None."""
    import cv2

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    scale = 512 / max(h, w)
    if scale < 1:
        grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        h, w = grey.shape
    edges = cv2.Canny(cv2.GaussianBlur(grey, (3, 3), 0), 60, 160)
    min_len = max(20, int(0.12 * max(h, w)))
    lines = cv2.HoughLinesP(
        edges, 1, np.pi / 720, threshold=60, minLineLength=min_len, maxLineGap=6
    )
    if lines is None:
        return None
    tilts, weights = [], []
    for x1, y1, x2, y2 in lines[:, 0, :]:
        dx, up = float(x2 - x1), float(y1 - y2)  # image y grows downwards
        length = math.hypot(dx, up)
        if dx < 0:
            dx, up = -dx, -up
        horizontal = math.degrees(math.atan2(up, dx))
        if abs(horizontal) <= max_angle:
            tilts.append(horizontal)
            weights.append(length)
            continue
        if up < 0:
            dx, up = -dx, -up
        vertical = math.degrees(math.atan2(-dx, up))
        if abs(vertical) <= max_angle:
            tilts.append(vertical)
            weights.append(length)
    if not tilts or sum(weights) < min_line_fraction * (h + w):
        return None
    order = np.argsort(tilts)
    cumulative = np.cumsum(np.asarray(weights)[order])
    return float(np.asarray(tilts)[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


@register_enhancer("straighten", kind="geometry", description="level horizons/verticals (Hough)")
def straighten(image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
    """Rotate a detected tilt level, with the matching crop."""
    params = context.params
    tilt = detect_tilt(
        image, float(params.get("max_angle", 8.0)), float(params.get("min_line_fraction", 0.15))
    )
    if tilt is None or abs(tilt) < float(params.get("min_angle", 0.4)):
        return []
    h, w = image.shape[:2]
    candidates = []
    for angle in sorted({round(tilt, 2), round(tilt / 2, 2)}, key=abs, reverse=True):
        if abs(angle) < float(params.get("min_angle", 0.4)):
            continue
        box = inscribed_box(w, h, angle)
        candidates.append(
            Candidate(
                enhancer="straighten",
                params={"angle": angle, "detected_tilt": round(tilt, 2)},
                crop=box,
                angle=angle,
            )
        )
    return candidates
