"""Crop: candidate framings at standard aspect ratios, scales and positions.

Candidates are the largest box of each aspect ratio (original, 3:2, 2:3, 4:3, 3:4, 1:1, 4:5,
16:9) scaled down in steps and slid across the free axes, plus one box per size centred on the
saliency centroid. Rules keep them sensible: a crop keeps at least `min_area` of the photo and
`min_side` of each side (it never throws away most of the photo); it never cuts through a
detected face (a face is either well inside, with `face_margin` of its size around it, or the
crop is dropped, so faces are never cut away either); and it keeps at least `min_saliency` of the
photo's saliency mass, so it cannot drop the subject for empty sky. Faces come from OpenCV's
Haar cascade, saliency from opencv-contrib's spectral-residual detector; both are computed once
per photo by the search (`detect_faces`, `saliency_map`).

Besides the grid, `detected_frame` finds the frame inside what was added to the photo: flat
borders (rows/columns of one colour from an edge inward, ending at an edge: a sky's gradient
or a flat region reaching the middle is not a border) and the strip beyond a pasted seam (a
column whose step to its neighbour stands far above the photo's usual steps, and is sharp in
at least half the rows: a natural edge is sharp in some rows only; row seams are never cut, a
sea horizon looks just like one). With `detect_borders` (presets.json's `edit_params`, the
edit-preference objective) a photo with such a frame gets it as the step's only candidate,
marked `"detected"`: the search takes it (photod/suggest.py, "trusted" steps) and the margin
still judges the whole suggestion.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from photod.enhancers import Box, Candidate, EnhanceContext, register_enhancer

log = logging.getLogger("photod")

ASPECTS = {
    "3:2": 1.5,
    "2:3": 2 / 3,
    "4:3": 4 / 3,
    "3:4": 0.75,
    "1:1": 1.0,
    "4:5": 0.8,
    "16:9": 16 / 9,
}

_cascade = None


def detect_faces(image: np.ndarray) -> list[Box]:
    """Frontal faces (OpenCV Haar cascade) as boxes in fractions of `image`."""
    import cv2

    global _cascade
    if _cascade is None:
        _cascade = cv2.CascadeClassifier(
            cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        )
        if _cascade.empty():
            log.warning("OpenCV ships no Haar cascade here; crops are not steered by faces")
    if _cascade.empty():
        return []
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    # Faces small enough to vanish at 360 px hardly constrain a crop; the cascade's cost grows
    # with the pixel count, so it runs on a copy of at most 360 px on the long side.
    scale = min(1.0, 360 / max(h, w))
    if scale < 1:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
    gh, gw = grey.shape
    min_face = max(16, min(gh, gw) // 12)
    found = _cascade.detectMultiScale(
        grey, scaleFactor=1.15, minNeighbors=6, minSize=(min_face, min_face)
    )
    return [
        (x / gw, y / gh, (x + fw) / gw, (y + fh) / gh)
        for x, y, fw, fh in np.asarray(found).reshape(-1, 4)
    ]


def saliency_map(image: np.ndarray, size: int = 64) -> np.ndarray:
    """Spectral-residual saliency, blurred, normalised to sum to 1 (short side `size`)."""
    import cv2

    h, w = image.shape[:2]
    scale = size / min(h, w)
    small = cv2.resize(
        image, (max(8, round(w * scale)), max(8, round(h * scale))), interpolation=cv2.INTER_AREA
    )
    detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, sal = detector.computeSaliency(small)
    if not ok:
        sal = np.ones(small.shape[:2], np.float32)
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), 2.0)
    total = float(sal.sum())
    return sal / total if total > 0 else np.full(sal.shape, 1.0 / sal.size, np.float32)


def _box_mass(integral: np.ndarray, box: Box) -> float:
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    x0, x1 = round(box[0] * w), round(box[2] * w)
    y0, y1 = round(box[1] * h), round(box[3] * h)
    return float(integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0])


def _keeps_faces(box: Box, faces: list[Box], margin: float) -> bool:
    for fl, ft, fr, fb in faces:
        mx, my = (fr - fl) * margin, (fb - ft) * margin
        inside = box[0] <= fl - mx and box[1] <= ft - my and box[2] >= fr + mx and box[3] >= fb + my
        if not inside:
            return False
    return True


def crop_boxes(width: int, height: int, context: EnhanceContext) -> list[tuple[str, float, Box]]:
    """Every allowed (aspect, scale, box) for an image of `width` x `height` pixels."""
    params = context.params
    image_aspect = width / height
    n_pos = max(1, int(params.get("positions", 5)))
    min_area = float(params.get("min_area", 0.45))
    min_side = float(params.get("min_side", 0.6))
    min_saliency = float(params.get("min_saliency", 0.7))
    face_margin = float(params.get("face_margin", 0.15))
    integral = None
    centre = (0.5, 0.5)
    if context.saliency is not None:
        sal = context.saliency.astype(np.float64)
        integral = np.pad(sal.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        ys, xs = np.mgrid[0 : sal.shape[0], 0 : sal.shape[1]]
        centre = ((xs * sal).sum() / sal.shape[1], (ys * sal).sum() / sal.shape[0])
    seen: set[tuple[int, int, int, int]] = set()
    boxes = []
    for aspect_name in params.get("aspects", ["original", *ASPECTS]):
        ratio = image_aspect if aspect_name == "original" else ASPECTS.get(aspect_name)
        if ratio is None:
            continue
        # The largest box of this aspect, as fractions of width and height.
        fw, fh = (
            (1.0, image_aspect / ratio) if ratio > image_aspect else (ratio / image_aspect, 1.0)
        )
        for scale in params.get("scales", [1.0, 0.85, 0.7]):
            bw, bh = fw * scale, fh * scale
            if bw * bh < min_area or min(bw, bh) < min_side or bw * bh > 0.995:
                continue
            xs_ = np.linspace(0, 1 - bw, n_pos) if bw < 0.999 else [0.0]
            ys_ = np.linspace(0, 1 - bh, n_pos) if bh < 0.999 else [0.0]
            lefts_tops = [(x, y) for x in xs_ for y in ys_]
            lefts_tops.append(
                (
                    min(max(centre[0] - bw / 2, 0.0), 1 - bw),
                    min(max(centre[1] - bh / 2, 0.0), 1 - bh),
                )
            )
            for left, top in lefts_tops:
                box = (float(left), float(top), float(left + bw), float(top + bh))
                key = tuple(round(v * 200) for v in box)
                if key in seen:
                    continue
                seen.add(key)
                if not _keeps_faces(box, context.faces, face_margin):
                    continue
                if integral is not None and _box_mass(integral, box) < min_saliency:
                    continue
                boxes.append((aspect_name, float(scale), box))
    return boxes


def _flat_run(lines: np.ndarray, tolerance: float) -> int:
    """How many leading lines ([N, L, 3], edge first) are one flat colour (the first line's) and
    end at an edge: the line after them mostly far from the last of them. A sky's smooth
    gradient drifts out of tolerance a level per line and is not a border, nor is a flat
    region reaching the middle of the photo (an overcast sky, a wall)."""
    reference = np.median(lines[0], axis=0)
    close = (np.abs(lines - reference).max(axis=2) <= tolerance).mean(axis=1) >= 0.97
    if close.all():
        return 0
    run = int(np.argmin(close))
    if run and (np.abs(lines[run] - lines[run - 1]).max(axis=1) > tolerance).mean() < 0.5:
        return 0
    return run


def _seam_sharpness(grey: np.ndarray, x: int) -> float:
    """Fraction of rows whose step between columns x-1 and x stands well above their steps a
    few columns either side: a pasted edge is sharp in nearly every row, a natural edge (a
    horizon, a wall) in some rows only, or spread over several pixels."""
    step = np.abs(np.diff(grey, axis=1))
    c = x - 1
    near = [step[:, max(0, c - 4) : max(0, c - 1)], step[:, c + 2 : c + 5]]
    neighbours = np.concatenate(near, axis=1).max(axis=1)
    return float((step[:, c] > 1.5 * neighbours + 2.0).mean())


def _seams(image: np.ndarray, ratio: float) -> list[tuple[int, float]]:
    """Columns x (between x-1 and x) whose mean step stands `ratio` times above the median:
    (x, sharpness)."""
    grey = image.astype(np.float32).mean(axis=2)
    step = np.abs(np.diff(grey, axis=1)).mean(axis=0)
    typical = float(np.median(step)) + 1.0
    w = image.shape[1]
    found = []
    for lo, hi in ((0.08, 0.45), (0.55, 0.92)):
        window = step[int(lo * w) : int(hi * w)]
        if not len(window):
            continue
        x = int(np.argmax(window)) + int(lo * w)
        if step[x] >= ratio * typical:
            found.append((x + 1, _seam_sharpness(grey, x + 1)))
    return found


# How sharp a column seam must be (`_seam_sharpness`) for `detected_frame` to cut at it. Row
# seams are never cut: a sea horizon is as straight and as sharp across the whole width as a
# pasted edge (a banner pasted above or below a photo is usually flat, and found as a border).
SEAM_SHARPNESS = 0.5


def detected_boxes(
    image: np.ndarray, tolerance: float = 10.0, seam_ratio: float = 4.0
) -> list[Box]:
    """Frames that drop flat borders, or a strip beyond a pasted seam, as fractions."""
    return [box for box, _ in _detections(image, tolerance, seam_ratio)]


def detected_frame(
    image: np.ndarray, tolerance: float = 10.0, seam_ratio: float = 4.0
) -> Box | None:
    """The one frame inside what was confidently added to the photo, or None: flat borders
    (ending at an edge) when there are any, else the strips beyond sharp column seams cut
    away."""
    detections = _detections(image, tolerance, seam_ratio)
    flat = [box for box, how in detections if how == "flat"]
    if flat:
        return flat[0]
    left, right = 0.0, 1.0
    for box, how in detections:
        if how != "flat" and how[0] == "column" and how[1] >= SEAM_SHARPNESS:
            left, right = max(left, box[0]), min(right, box[2])
    return (left, 0.0, right, 1.0) if 0.3 <= right - left < 0.99 else None


def _detections(image: np.ndarray, tolerance: float, seam_ratio: float) -> list[tuple[Box, Any]]:
    """(box, "flat" or (axis, sharpness)) of every border or seam found."""
    h, w = image.shape[:2]
    img = image.astype(np.int16)
    half_h, half_w = h // 2, w // 2
    top = _flat_run(img[:half_h], tolerance)
    bottom = _flat_run(img[::-1][:half_h], tolerance)
    left = _flat_run(img[:, :half_w].transpose(1, 0, 2), tolerance)
    right = _flat_run(img[:, ::-1][:, :half_w].transpose(1, 0, 2), tolerance)
    found: list[tuple[Box, Any]] = []
    if max(top, bottom, left, right) >= max(2, 0.01 * min(h, w)):
        found.append(((left / w, top / h, 1 - right / w, 1 - bottom / h), "flat"))
    for x, sharpness in _seams(image, seam_ratio):
        box = (x / w, 0.0, 1.0, 1.0) if x < w / 2 else (0.0, 0.0, x / w, 1.0)
        found.append((box, ("column", sharpness)))
    for y, sharpness in _seams(image.transpose(1, 0, 2), seam_ratio):
        box = (0.0, y / h, 1.0, 1.0) if y < h / 2 else (0.0, 0.0, 1.0, y / h)
        found.append((box, ("row", sharpness)))
    return [
        (b, how)
        for b, how in found
        if (b[2] - b[0]) * (b[3] - b[1]) >= 0.3 and (b[2] - b[0]) * (b[3] - b[1]) < 0.99
    ]


@register_enhancer("crop", kind="geometry", description="aspect ratios x scales x positions")
def crop(image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
    """Crops at standard aspect ratios, steered by faces and saliency, with a minimum size.
    With `detect_borders`, a photo with confidently added borders or a pasted strip gets one
    candidate: the frame inside them (`detected_frame`), cut exactly; reframing the photo
    itself is a question for another step, not mixed into fixing a defect."""
    h, w = image.shape[:2]
    if context.params.get("detect_borders", False):
        frame = detected_frame(image)
        if frame is not None and _keeps_faces(frame, context.faces, 0.0):
            area = (frame[2] - frame[0]) * (frame[3] - frame[1])
            params = {
                "aspect": "detected",
                "scale": round(float(np.sqrt(area)), 3),
                "box": [round(v, 4) for v in frame],
                "detected": True,
            }
            return [Candidate(enhancer="crop", params=params, crop=frame)]
    return [
        Candidate(
            enhancer="crop",
            params={"aspect": aspect, "scale": scale, "box": [round(v, 4) for v in box]},
            crop=box,
        )
        for aspect, scale, box in crop_boxes(w, h, context)
    ]
