"""Geometric edits shared by the crop and straighten enhancers, the search and the renderer.

A geometric edit is a box (left, top, right, bottom) in fractions of the input image plus an angle
in degrees: the counter-clockwise tilt of the input that the edit removes (the content turns
clockwise by `angle` on screen). The box gives the centre and size of the result in the
unrotated input; the content is rotated about that centre. Fractions make the same edit apply to the working
copy and to the full-resolution photo.
"""

from __future__ import annotations

import math

import numpy as np

Box = tuple[float, float, float, float]


def extract(image: np.ndarray, box: Box, angle: float = 0.0) -> np.ndarray:
    """Cut `box` (fractions) out of `image`, rotated by `angle` degrees about the box centre."""
    h, w = image.shape[:2]
    left, top, right, bottom = box
    if abs(angle) < 1e-6:
        x0, x1 = round(left * w), round(right * w)
        y0, y1 = round(top * h), round(bottom * h)
        x0, y0 = min(max(x0, 0), w - 1), min(max(y0, 0), h - 1)
        x1, y1 = max(min(x1, w), x0 + 1), max(min(y1, h), y0 + 1)
        return np.ascontiguousarray(image[y0:y1, x0:x1])
    import cv2

    out_w = max(1, round((right - left) * w))
    out_h = max(1, round((bottom - top) * h))
    cx, cy = (left + right) / 2 * w, (top + bottom) / 2 * h
    # Output pixel (u, v) samples the input at centre + R(angle) * (u - out_w/2, v - out_h/2).
    a = math.radians(angle)
    cos, sin = math.cos(a), math.sin(a)
    matrix = np.array(
        [
            [cos, sin, cx - cos * out_w / 2 - sin * out_h / 2],
            [-sin, cos, cy + sin * out_w / 2 - cos * out_h / 2],
        ],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        image,
        matrix,
        (out_w, out_h),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def inscribed_box(width: float, height: float, angle: float) -> Box:
    """The largest centred box of the image's aspect ratio that stays inside the image rotated by
    `angle` degrees about its centre (no empty corners), as fractions."""
    a = abs(math.radians(angle))
    if a < 1e-9:
        return (0.0, 0.0, 1.0, 1.0)
    cos, sin = math.cos(a), math.sin(a)
    # Scale s so that the rotated box (s*w, s*h) fits inside (w, h).
    scale = min(width / (width * cos + height * sin), height / (width * sin + height * cos))
    half = scale / 2
    return (0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half)


def compose(outer: Box, outer_angle: float, inner: Box, width: int, height: int) -> Box:
    """Express `inner` (fractions of the result of `outer`) as a box of the original image.

    The inner box is axis-aligned in the rotated frame, so its centre moves through the rotation;
    its size in pixels is unchanged. The angle of the composition stays `outer_angle`.
    """
    ol, ot, orr, ob = outer
    ow, oh = (orr - ol) * width, (ob - ot) * height
    il, it, ir, ib = inner
    # Inner centre relative to the outer centre, in pixels of the rotated frame.
    dx = ((il + ir) / 2 - 0.5) * ow
    dy = ((it + ib) / 2 - 0.5) * oh
    a = math.radians(outer_angle)
    cos, sin = math.cos(a), math.sin(a)
    # The same rotation `extract` uses to map output offsets to input offsets.
    ix = cos * dx + sin * dy
    iy = -sin * dx + cos * dy
    cx = (ol + orr) / 2 * width + ix
    cy = (ot + ob) / 2 * height + iy
    iw, ih = (ir - il) * ow, (ib - it) * oh
    return (
        (cx - iw / 2) / width,
        (cy - ih / 2) / height,
        (cx + iw / 2) / width,
        (cy + ih / 2) / height,
    )


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes in the same fractional coordinates."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
