"""Technical checks of one frame for culling: subject focus, closed eyes, motion blur, clipping.

Everything here is a pure function of an sRGB uint8 array, measured on a working copy whose long
side is `WORK_SIDE` pixels, so numbers from frames of one burst (same camera, same size) compare
directly. The numbers are meant for *comparison within a group of near-identical frames*: a
Laplacian ratio of 0.3 says little about one photo, but 0.3 against 0.6 for the frame shot 0.1 s
earlier says this one missed focus.

- Subject region: detected faces when there are any (OpenCV's bundled Haar frontal-face cascade),
  else the largest blob of the spectral-residual saliency map (`cv2.saliency`, opencv-contrib),
  else the central half of the frame. Focus is measured there, not over the whole frame, because a
  portrait with a sharp background and a soft face is exactly the frame a photographer discards.
- Sharpness: sqrt(var(Laplacian) / var(gray)) of the region. Dividing by the region's contrast
  keeps a darker or brighter frame of the same burst from looking softer or sharper.
- Eyes: the Haar eye cascades (plain and eyeglasses) find *open* eyes; a face large enough to
  show eyes (>= `MIN_FACE_FOR_EYES` px wide) in which neither finds one is called "eyes closed".
  Smaller faces get `None` (unknown), never a guess.
- Motion blur: anisotropy of gradient energy over four directions. Camera shake or a moving subject
  smears edges along one direction, so energy across that direction collapses while the
  perpendicular one stays. 0 = isotropic, 1 = every edge runs one way.
- Clipped highlights: share of pixels with any channel >= 250.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("photod")

WORK_SIDE = 640
MIN_FACE_FOR_EYES = 60
CLIP_LEVEL = 250
FACE_MIN_WEIGHT = 2.5
TILES = 16
FACE_SIDE = 480

_cascades = threading.local()


@dataclass
class FaceCheck:
    """One detected face, in working-copy pixels (x, y, w, h), and what its eyes show."""

    box: tuple[int, int, int, int]
    eyes_found: int
    eyes_open: bool | None  # None: face too small to tell
    sharpness: float


@dataclass
class FrameChecks:
    """Technical measurements of one frame (see the module docstring for each definition)."""

    width: int
    height: int
    subject: str  # "faces", "saliency" or "centre"
    subject_box: tuple[int, int, int, int]
    subject_sharpness: float
    background_sharpness: float
    frame_sharpness: float
    motion_blur: float
    clipped_highlights: float
    faces: list[FaceCheck] = field(default_factory=list)
    # TILES x TILES grid of (Laplacian variance, gray variance) per tile: lets ranking measure
    # every frame of a group over one common subject region (see `region_sharpness`).
    tiles: list[list[list[float]]] = field(default_factory=list, repr=False)

    def box_fraction(self, box: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
        """A working-copy box (x, y, w, h) as fractions of the frame (x0, y0, x1, y1)."""
        x, y, w, h = box
        return (x / self.width, y / self.height, (x + w) / self.width, (y + h) / self.height)

    def region_sharpness(self, region: tuple[float, float, float, float]) -> float:
        """`sharpness` over the tiles a fractional region (x0, y0, x1, y1) touches."""
        if not self.tiles:
            return self.subject_sharpness
        grid = np.asarray(self.tiles, np.float64)
        n = grid.shape[0]
        x0, y0, x1, y1 = region
        c0, c1 = int(np.clip(np.floor(x0 * n), 0, n - 1)), int(np.clip(np.ceil(x1 * n), 1, n))
        r0, r1 = int(np.clip(np.floor(y0 * n), 0, n - 1)), int(np.clip(np.ceil(y1 * n), 1, n))
        cells = grid[r0:r1, c0:c1].reshape(-1, 2)
        return float(np.sqrt(cells[:, 0].sum() / (cells[:, 1].sum() + 25.0 * len(cells))))

    @property
    def eyes_closed(self) -> bool:
        """True when at least one face big enough to judge shows no open eye."""
        return any(face.eyes_open is False for face in self.faces)

    @property
    def eyes_open(self) -> bool:
        """True when at least one face big enough to judge shows open eyes."""
        return any(face.eyes_open is True for face in self.faces)

    @property
    def background_sharper(self) -> bool:
        """Focus landed behind or before the subject: the rest is clearly sharper than it."""
        return self.background_sharpness > 1.5 * self.subject_sharpness

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["tiles"] = [[[round(v, 2) for v in cell] for cell in row] for row in self.tiles]
        data["eyes_closed"] = self.eyes_closed
        data["background_sharper"] = self.background_sharper
        for key in ("subject_sharpness", "background_sharpness", "frame_sharpness"):
            data[key] = round(data[key], 4)
        data["motion_blur"] = round(self.motion_blur, 4)
        data["clipped_highlights"] = round(self.clipped_highlights, 5)
        for face in data["faces"]:
            face["sharpness"] = round(face["sharpness"], 4)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrameChecks:
        faces = [
            FaceCheck(tuple(f["box"]), f["eyes_found"], f["eyes_open"], f["sharpness"])  # type: ignore[arg-type]
            for f in data.get("faces", [])
        ]
        return cls(
            width=data["width"],
            height=data["height"],
            subject=data["subject"],
            subject_box=tuple(data["subject_box"]),  # type: ignore[arg-type]
            subject_sharpness=data["subject_sharpness"],
            background_sharpness=data["background_sharpness"],
            frame_sharpness=data["frame_sharpness"],
            motion_blur=data["motion_blur"],
            clipped_highlights=data["clipped_highlights"],
            faces=faces,
            tiles=data.get("tiles", []),
        )


def _cascade(name: str) -> Any:
    """A bundled Haar cascade, loaded once per thread.

    One CascadeClassifier shared by decode threads fails inside OpenCV (`getScaleData`
    assertion) when two threads detect at once, so each thread keeps its own.
    """
    import cv2

    cache = getattr(_cascades, "by_name", None)
    if cache is None:
        cache = _cascades.by_name = {}
    if name not in cache:
        classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
        if classifier.empty():
            raise RuntimeError(f"OpenCV cascade {name} is missing (opencv-python<5 ships it)")
        cache[name] = classifier
    return cache[name]


def working_copy(pixels: np.ndarray, side: int = WORK_SIDE) -> np.ndarray:
    """Resize (area averaging) so the long side is `side`; upscales small inputs too, so every
    frame is measured at the same scale."""
    import cv2

    h, w = pixels.shape[:2]
    scale = side / max(h, w)
    if abs(scale - 1.0) < 1e-3:
        return pixels
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(pixels, size, interpolation=interp)


def sharpness(gray: np.ndarray) -> float:
    """Contrast-normalised high-frequency energy: sqrt(var(Laplacian) / var(gray))."""
    import cv2

    if gray.size < 16:
        return 0.0
    g = gray.astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    contrast = float(g.var())
    return float(np.sqrt(lap.var() / (contrast + 25.0)))


def motion_blur(gray: np.ndarray) -> float:
    """Anisotropy of gradient energy over 0/45/90/135 degrees: 1 - min/max (0 = none)."""
    import cv2

    g = gray.astype(np.float32)
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    energies = []
    for angle in (0.0, 45.0, 90.0, 135.0):
        c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
        energies.append(float(np.mean((gx * c + gy * s) ** 2)))
    top = max(energies)
    return 0.0 if top <= 1e-6 else 1.0 - min(energies) / top


def clipped_highlights(rgb: np.ndarray, level: int = CLIP_LEVEL) -> float:
    """Share of pixels with any channel at or above `level` (blown highlights)."""
    if rgb.size == 0:
        return 0.0
    return float(np.mean(rgb.max(axis=2) >= level))


def detect_faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Frontal faces (x, y, w, h) in a working-copy grayscale image.

    The cascade runs on a copy with a long side of at most `FACE_SIDE` px with scale steps of
    1.2: twice as fast as 640 px / 1.1 on this CPU, and the same faces and eye verdicts on the
    test face in 12 of 12 crops; faces smaller than ~1/16 of the short side are not looked for.
    """
    import cv2

    scale = min(1.0, FACE_SIDE / max(gray.shape[:2]))
    small = gray
    if scale < 1.0:
        size = (round(gray.shape[1] * scale), round(gray.shape[0] * scale))
        small = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    min_size = max(24, min(small.shape[:2]) // 16)
    faces, _, weights = _cascade("haarcascade_frontalface_default.xml").detectMultiScale3(
        cv2.equalizeHist(small),
        scaleFactor=1.2,
        minNeighbors=5,
        minSize=(min_size, min_size),
        outputRejectLevels=True,
    )
    # The last stage's confidence separates faces (> 4 on real faces we tried) from the textured
    # patches the cascade also accepts (around 1); those would otherwise count as faces with
    # "closed eyes".
    return [
        tuple(round(v / scale) for v in face)  # type: ignore[misc]
        for face, weight in zip(faces, np.ravel(weights), strict=True)
        if weight >= FACE_MIN_WEIGHT
    ]


def count_open_eyes(gray: np.ndarray, box: tuple[int, int, int, int]) -> int:
    """Open eyes the Haar cascades find in the upper part of a face (0, 1 or 2)."""
    x, y, w, h = box
    # Eyes sit in the upper ~55 % of a frontal face box; the mouth and nostrils below them are
    # the cascade's usual false positives.
    roi = gray[y + h // 8 : y + int(h * 0.58), x : x + w]
    if roi.size == 0:
        return 0
    min_eye = max(8, w // 9)
    # minNeighbors 6: at 4 the plain cascade took a drawn shut lid under an eyebrow for an eye
    # in 1 of 6 crops of the test face; open eyes were found at 3 to 8 alike.
    best = 0
    for name in ("haarcascade_eye.xml", "haarcascade_eye_tree_eyeglasses.xml"):
        eyes = _cascade(name).detectMultiScale(
            roi, scaleFactor=1.1, minNeighbors=6, minSize=(min_eye, min_eye),
            maxSize=(w // 2, w // 2),
        )  # fmt: skip
        best = max(best, min(len(eyes), 2))
    return best


def salient_box(rgb: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box of the largest salient blob (spectral residual saliency), or None."""
    import cv2

    if not hasattr(cv2, "saliency"):
        return None
    small = cv2.resize(rgb, (128, max(1, round(128 * rgb.shape[0] / rgb.shape[1]))))
    detector = cv2.saliency.StaticSaliencySpectralResidual_create()
    ok, smap = detector.computeSaliency(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    if not ok:
        return None
    smap = cv2.GaussianBlur((smap * 255).astype(np.uint8), (0, 0), 3)
    _, mask = cv2.threshold(smap, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    if count <= 1:
        return None
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y, w, h = (int(v) for v in stats[largest, :4])
    sx, sy = rgb.shape[1] / small.shape[1], rgb.shape[0] / small.shape[0]
    box = (round(x * sx), round(y * sy), round(w * sx), round(h * sy))
    # A "subject" covering nearly all or almost none of the frame tells nothing.
    share = box[2] * box[3] / (rgb.shape[0] * rgb.shape[1])
    if not 0.02 <= share <= 0.8:
        return None
    return box


def _union(boxes: list[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def analyse_frame(pixels: np.ndarray, side: int = WORK_SIDE) -> FrameChecks:
    """All technical checks of one HxWx3 uint8 sRGB frame."""
    import cv2

    rgb = working_copy(np.ascontiguousarray(pixels[..., :3]), side)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    h, w = gray.shape

    faces: list[FaceCheck] = []
    for box in detect_faces(gray):
        fx, fy, fw, fh = box
        eyes = count_open_eyes(gray, box)
        eyes_open = None if fw < MIN_FACE_FOR_EYES else eyes > 0
        face_sharp = sharpness(gray[fy : fy + fh, fx : fx + fw])
        faces.append(FaceCheck(box, eyes, eyes_open, face_sharp))

    if faces:
        subject, box = "faces", _union([f.box for f in faces])
    else:
        found = salient_box(rgb)
        if found is not None:
            subject, box = "saliency", found
        else:
            subject, box = "centre", (w // 4, h // 4, w // 2, h // 2)
    x, y, bw, bh = box
    subject_sharp = sharpness(gray[y : y + bh, x : x + bw])
    mask = np.ones_like(gray, dtype=bool)
    mask[y : y + bh, x : x + bw] = False
    background = _masked_sharpness(gray, mask)

    return FrameChecks(
        width=w,
        height=h,
        subject=subject,
        subject_box=box,
        subject_sharpness=subject_sharp,
        background_sharpness=background,
        frame_sharpness=sharpness(gray),
        motion_blur=motion_blur(gray),
        clipped_highlights=clipped_highlights(rgb),
        faces=faces,
        tiles=tile_grid(gray),
    )


def tile_grid(gray: np.ndarray, tiles: int = TILES) -> list[list[list[float]]]:
    """Per-tile (Laplacian variance, gray variance) on a `tiles` x `tiles` grid."""
    import cv2

    g = gray.astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    h, w = g.shape
    th, tw = h // tiles, w // tiles
    if th == 0 or tw == 0:
        return []

    # Crop to a whole number of tiles (at most tiles-1 px lost per side) and reduce per tile.
    def per_tile_var(a: np.ndarray) -> np.ndarray:
        blocks = a[: th * tiles, : tw * tiles].reshape(tiles, th, tiles, tw)
        return blocks.var(axis=(1, 3))

    lap_var, gray_var = per_tile_var(lap), per_tile_var(g)
    return np.stack([lap_var, gray_var], axis=-1).astype(float).tolist()


def _masked_sharpness(gray: np.ndarray, mask: np.ndarray) -> float:
    """`sharpness` over the pixels where `mask` is true (the background around the subject)."""
    import cv2

    if mask.sum() < 256:
        return 0.0
    g = gray.astype(np.float32)
    lap = cv2.Laplacian(g, cv2.CV_32F, ksize=3)
    # Keep the box border out: the Laplacian straddling it mixes subject and background.
    inner = cv2.erode(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if inner.sum() < 256:
        return 0.0
    return float(np.sqrt(lap[inner].var() / (g[inner].var() + 25.0)))
