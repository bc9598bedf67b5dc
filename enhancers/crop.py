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
"""

from __future__ import annotations

import logging

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


@register_enhancer("crop", kind="geometry", description="aspect ratios x scales x positions")
def crop(image: np.ndarray, context: EnhanceContext) -> list[Candidate]:
    """Crops at standard aspect ratios, steered by faces and saliency, with a minimum size."""
    h, w = image.shape[:2]
    return [
        Candidate(
            enhancer="crop",
            params={"aspect": aspect, "scale": scale, "box": [round(v, 4) for v in box]},
            crop=box,
        )
        for aspect, scale, box in crop_boxes(w, h, context)
    ]
