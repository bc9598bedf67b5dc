"""A culling test set made of real photos written as real files, with its ground truth.

Built from scikit-image's and scikit-learn's sample photographs (no download):

- burst "astronaut" (a face): the clean frame, then the same moment with the eyes drawn closed,
  out of focus, with motion blur, and overexposed; every frame also moves the camera a few pixels
  (a different crop of the same scene), 0.15 s apart;
- burst "portrait": the same face where the only open-eyes frame is slightly dark;
- burst "coffee": clean, soft, overexposed, shaken; burst "cat": clean, the cat's head out of
  focus while the rest stays sharp (missed focus on the subject), soft overall, slightly shifted
  and darker;
- a bracket of "rocket" at -2/0/+2 EV with matching EXIF ExposureBiasValue and ExposureTime;
- a panorama: three overlapping crops (50 % overlap) of scikit-learn's wide "china" photo, 1 s
  apart;
- a near-duplicate with no EXIF: a soft PNG export of an indexed JPEG;
- single photos, some shot 0.5 s after a burst with the same camera (a different scene).

`truth()` lists the true groups (file names) and the best frame of each ranked group.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from tests.photos import real_photo

T0 = dt.datetime(2026, 11, 28, 14, 30, 0)


@dataclass
class CullTruth:
    groups: dict[str, tuple[str, list[str]]] = field(default_factory=dict)  # name -> (kind, files)
    best: dict[str, str] = field(default_factory=dict)  # ranked group name -> best file
    singles: list[str] = field(default_factory=list)

    def files(self) -> list[str]:
        names = [f for _, members in self.groups.values() for f in members]
        return sorted(names + self.singles)


def shot_exif(
    when: dt.datetime | None,
    bias: float | None = None,
    exposure: Fraction | None = None,
    make: str = "Canon",
    model: str = "EOS R5",
) -> Image.Exif:
    """Camera EXIF with DateTimeOriginal + SubSecTimeOriginal, bias and exposure time."""
    exif = Image.Exif()
    exif[0x010F] = make
    exif[0x0110] = model
    exif[0x0112] = 1
    ifd = exif.get_ifd(0x8769)
    if when is not None:
        stamp = when.strftime("%Y:%m:%d %H:%M:%S")
        exif[0x0132] = stamp
        ifd[0x9003] = stamp
        ifd[0x9291] = f"{when.microsecond // 10000:02d}"
    if bias is not None:
        ifd[0x9204] = IFDRational(Fraction(bias).limit_denominator(6))
    if exposure is not None:
        ifd[0x829A] = IFDRational(exposure)
    return exif


def save_jpeg(path: Path, pixels: np.ndarray, exif: Image.Exif | None) -> Path:
    kwargs = {"exif": exif} if exif is not None else {}
    Image.fromarray(pixels).save(path, "JPEG", quality=93, **kwargs)
    return path


# -- degradations (all on uint8 RGB) ----------------------------------------------------------


def gaussian_blur(pixels: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(pixels, (0, 0), sigma)


def motion_blur(pixels: np.ndarray, length: int = 11) -> np.ndarray:
    import cv2

    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    return cv2.filter2D(pixels, -1, kernel)


def exposure(pixels: np.ndarray, ev: float) -> np.ndarray:
    """Scale linear light by 2**ev (sRGB decoded to linear and back), clipping like a sensor."""
    linear = (pixels.astype(np.float32) / 255.0) ** 2.2 * (2.0**ev)
    return (np.clip(linear, 0, 1) ** (1 / 2.2) * 255 + 0.5).astype(np.uint8)


def noise(pixels: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(pixels + rng.normal(0, sigma, pixels.shape), 0, 255).astype(np.uint8)


def crop(pixels: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return np.ascontiguousarray(pixels[y : y + h, x : x + w])


def blur_region(pixels: np.ndarray, box: tuple[int, int, int, int], sigma: float) -> np.ndarray:
    """Blur only `box` (x, y, w, h) with a feathered edge: the subject missed focus."""
    import cv2

    x, y, w, h = box
    mask = np.zeros(pixels.shape[:2], np.float32)
    mask[y : y + h, x : x + w] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 6)[..., None]
    blurred = gaussian_blur(pixels, sigma).astype(np.float32)
    return (mask * blurred + (1 - mask) * pixels).astype(np.uint8)


def close_eyes(pixels: np.ndarray) -> np.ndarray:
    """Paint the detected open eyes shut: skin-coloured lids and a dark lash line."""
    import cv2

    out = pixels.copy()
    gray = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    faces = cv2.CascadeClassifier(
        cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
    ).detectMultiScale(cv2.equalizeHist(gray), 1.1, 8, minSize=(40, 40))
    assert len(faces) >= 1, "no face to close the eyes of"
    x, y, w, h = max(faces, key=lambda f: f[2])
    eyes = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_eye.xml").detectMultiScale(
        gray[y : y + int(h * 0.6), x : x + w], 1.1, 3, minSize=(w // 10, w // 10)
    )
    assert len(eyes) >= 1, "no open eye found to close"
    cheek = out[y + int(h * 0.6) : y + int(h * 0.7), x + int(w * 0.3) : x + int(w * 0.7)]
    skin = tuple(int(v) for v in np.median(cheek.reshape(-1, 3), axis=0))
    for ex, ey, ew, eh in eyes:
        cx, cy = x + ex + ew // 2, y + ey + eh // 2
        cv2.ellipse(out, (cx, cy), (int(ew * 0.45), int(eh * 0.32)), 0, 0, 360, skin, -1)
        cv2.ellipse(
            out, (cx, cy - 2), (int(ew * 0.38), int(eh * 0.14)), 0, 10, 170, (60, 40, 35), 2,
            cv2.LINE_AA,
        )  # fmt: skip
    return out


# -- the set ----------------------------------------------------------------------------------


def _t(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def build_cull_set(folder: Path) -> CullTruth:
    """Write the whole set into `folder` (27 small JPEGs and a PNG); return the truth."""
    folder.mkdir(parents=True, exist_ok=True)
    truth = CullTruth()

    # Burst A: the astronaut (a face), 512x512 scene, 480x480 frames, 0.15 s apart.
    scene = real_photo("astronaut")
    shut = close_eyes(scene)
    frames = [
        ("a0_clean", crop(scene, 16, 16, 480, 480)),
        ("a1_eyes_closed", crop(shut, 12, 19, 480, 480)),
        ("a2_soft", gaussian_blur(crop(scene, 20, 13, 480, 480), 2.0)),
        ("a3_shake", motion_blur(crop(scene, 16, 22, 480, 480), 11)),
        ("a4_overexposed", exposure(crop(scene, 13, 16, 480, 480), 1.3)),
    ]
    _burst(folder, truth, "astronaut", frames, start=0.0, step=0.15)

    # Burst E: the same face 30 s later; the only open-eyes frame is a little dark (-0.5 EV), so
    # the aesthetic score alone may prefer a closed-eyes frame (v2: 3.45 for e2 vs 3.16 for e0).
    frames = [
        ("e0_open_dark", exposure(crop(scene, 15, 17, 480, 480), -0.5)),
        ("e1_eyes_closed", crop(shut, 12, 19, 480, 480)),
        ("e2_eyes_closed_bright", exposure(crop(shut, 17, 14, 480, 480), 0.3)),
    ]
    _burst(folder, truth, "portrait", frames, start=30.0, step=0.2)

    # Burst B: coffee, 400x600 scene.
    scene = real_photo("coffee")
    frames = [
        ("b0_clean", crop(scene, 10, 10, 570, 380)),
        ("b1_soft", gaussian_blur(crop(scene, 14, 8, 570, 380), 1.8)),
        ("b2_overexposed", exposure(crop(scene, 6, 12, 570, 380), 1.5)),
        ("b3_shake", motion_blur(crop(scene, 12, 14, 570, 380), 13)),
    ]
    _burst(folder, truth, "coffee", frames, start=60.0, step=0.2)
    save_jpeg(folder / "s1_flower.jpg", _sklearn("flower.jpg"), shot_exif(_t(61.1)))
    truth.singles.append("s1_flower.jpg")

    # Burst C: the cat, head out of focus in one frame (the background stays as it was).
    scene = real_photo("chelsea", scale=1.3)
    head = (150, 70, 260, 230)
    frames = [
        ("c0_clean", crop(scene, 8, 8, 570, 375)),
        ("c1_head_missed", crop(blur_region(scene, head, 3.0), 10, 6, 570, 375)),
        ("c2_soft", gaussian_blur(crop(scene, 6, 10, 570, 375), 1.6)),
        ("c3_dark", exposure(crop(scene, 9, 9, 570, 375), -0.7)),
    ]
    _burst(folder, truth, "cat", frames, start=120.0, step=0.25)

    # Bracket: rocket at -2/0/+2 EV, 0.3 s apart.
    scene = real_photo("rocket")
    names = []
    for k, ev in enumerate((-2, 0, 2)):
        name = f"k{k}_bracket_{ev:+d}ev.jpg"
        speed = Fraction(1, 125) * Fraction(2) ** ev
        save_jpeg(folder / name, exposure(scene, ev), shot_exif(_t(180 + 0.3 * k), ev, speed))
        names.append(name)
    truth.groups["bracket"] = ("bracket", names)

    # Panorama: three 480-wide crops of a 960-wide photo, 50 % overlap, 1 s apart.
    wide = real_photo_array(_sklearn("china.jpg"), 1.5)
    names = []
    for k in range(3):
        name = f"p{k}_pano.jpg"
        save_jpeg(folder / name, crop(wide, 240 * k, 0, 480, 640), shot_exif(_t(240 + k)))
        names.append(name)
    truth.groups["panorama"] = ("panorama", names)

    # Near-duplicate: a JPEG and a soft PNG export of it without EXIF.
    scene = real_photo("immunohistochemistry")
    save_jpeg(folder / "d0_original.jpg", scene, shot_exif(_t(300)))
    Image.fromarray(gaussian_blur(scene, 1.2)).save(folder / "d1_export.png")
    truth.groups["duplicate"] = ("duplicate", ["d0_original.jpg", "d1_export.png"])
    truth.best["duplicate"] = "d0_original.jpg"

    # Singles: other scenes, some right after a burst with the same camera.
    for name, pixels, when in (
        ("s2_camera.jpg", real_photo("camera"), _t(0.9)),
        ("s3_hubble.jpg", real_photo("hubble_deep_field"), _t(400)),
        ("s4_coffee_upside_down.jpg", real_photo("coffee")[::-1], _t(181)),
    ):
        save_jpeg(folder / name, pixels, shot_exif(when))
        truth.singles.append(name)
    return truth


def _burst(
    folder: Path,
    truth: CullTruth,
    name: str,
    frames: list[tuple[str, np.ndarray]],
    start: float,
    step: float,
) -> None:
    files = []
    for k, (stem, pixels) in enumerate(frames):
        path = save_jpeg(folder / f"{stem}.jpg", pixels, shot_exif(_t(start + step * k)))
        files.append(path.name)
    truth.groups[name] = ("burst", files)
    truth.best[name] = files[0]


def _sklearn(name: str) -> np.ndarray:
    from sklearn.datasets import load_sample_image

    return np.ascontiguousarray(load_sample_image(name)[..., :3])


def real_photo_array(pixels: np.ndarray, scale: float) -> np.ndarray:
    h, w = pixels.shape[:2]
    size = (round(w * scale), round(h * scale))
    return np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC))


# -- scoring the result -----------------------------------------------------------------------


def pair_metrics(predicted: list[list[str]], truth: list[list[str]]) -> dict[str, float]:
    """Pairwise precision and recall: a pair is positive when both photos share a group."""

    def pairs(groups: list[list[str]]) -> set[tuple[str, str]]:
        out = set()
        for group in groups:
            members = sorted(group)
            out.update((a, b) for i, a in enumerate(members) for b in members[i + 1 :])
        return out

    got, want = pairs(predicted), pairs(truth)
    hits = len(got & want)
    return {
        "precision": hits / len(got) if got else 1.0,
        "recall": hits / len(want) if want else 1.0,
        "predicted_pairs": len(got),
        "true_pairs": len(want),
    }
