"""Lists of versions of good photos for the edit-preference head, and their cached features.

Every source photo gives *lists* (`search_lists`), each what one step of `photod suggest` ranks:
its start (the good photo, or the photo with one injected defect) and the edits proposed from
it by the enhancers' own code, each labelled with its residual, how far it is from the good
photo:

- exposure: from the clean photo, an under- and an over-exposed one (linear light, clipped like
  a sensor); nearby shifts, and the search's whole ladder plus its refinement (`ladder_*`);
  residual |injected + applied EV|
- colour: the white-balance enhancer's candidates (grey-world, white-patch, temperature, tint)
  from the clean photo and from a random linear-light cast, plus the exact inverse; residual:
  the cast left (`cast_size`, the benchmark's measure)
- crops: random crops and the crop enhancer's own boxes of the clean photo, and crops of the
  photo padded with a flat border or a strip of ANOTHER photo; residual 1 - IoU with the frame
- contrast, saturation and tilt (rotated 1.5-7 degrees, cropped to the largest upright box)

Crops and margins keep their own shape (never resized to a square): the head sees them at their
aspect ratio through the shape buckets (models/buckets.py), as the search will.

Sources (`sources()`): good PARA photos of the TRAINING sessions (aesthetic mean above the
median; `session_split(..., seed) == "train"`), split again by session hash into fit / held-out
photos; and the few real full-size photos that are NOT in the benchmark (`REAL_TRAIN`, by file;
benchmarks/suggest_quality.py lists the benchmark's). Features: one pass of the base model's
backbone per image (models/lite.py), cached per shard so a re-run only adds what is missing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger("photod")

# Real photos used for TRAINING (paths in the unpacked Debian packages, or library samples).
# The benchmark's photos (benchmarks/suggest_quality.py PHOTOS, SKIMAGE) are never listed here.
REAL_TRAIN = (
    "usr/share/backgrounds/Picture_0B_by_freespace.jpg",
    "usr/share/backgrounds/analogpattern_by_Peter_Nerlich.jpg",
    "usr/share/backgrounds/Infinite-Sea_by_Aury88.jpg",
    "usr/share/backgrounds/free_by_Peter_Nerlich.jpg",
    "usr/share/kphotoalbum/pics/search.jpg",
    "sklearn:china.jpg",
    "sklearn:flower.jpg",
    "matplotlib:grace_hopper.jpg",
    "skimage:stereo_motorcycle",
)
KINDS = (
    "ladder_clean",
    "ladder_under",
    "ladder_over",
    "grid_clean",
    "grid_margin",
    "exposure_clean",
    "exposure_under",
    "exposure_over",
    "colour_clean",
    "colour_cast",
    "crop_clean",
    "margin_flat",
    "margin_foreign",
    "contrast",
    "saturation",
    "tilt",
)


def held_out(group: str) -> bool:
    """About a fifth of the groups (by a hash of the PARA session or the file) are held out."""
    return hashlib.sha256(f"edit-pref:{group}".encode()).digest()[0] < 52


def _linear(image: np.ndarray) -> np.ndarray:
    from photod.enhancers.color import LINEAR

    return LINEAR[image]


def _srgb(linear: np.ndarray) -> np.ndarray:
    from photod.enhancers.color import linear_to_srgb

    return np.round(linear_to_srgb(linear) * 255).astype(np.uint8)


def _shift(lin: np.ndarray, ev: float) -> np.ndarray:
    """A camera's exposure error: linear light times 2**ev, clipped at white."""
    return _srgb(lin * 2.0**ev)


def _cast(lin: np.ndarray, gains: np.ndarray) -> np.ndarray:
    luma = np.array([0.2126, 0.7152, 0.0722])
    return _srgb(lin * (gains / (gains @ luma)))


def pad_with_margin(
    image: np.ndarray,
    kind: str,
    other: np.ndarray,
    rng: np.random.Generator,
    flat_share: tuple[float, float] = (0.08, 0.2),
    strip_share: tuple[float, float] = (0.2, 0.3),
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """`image` padded with one flat colour on every side (each side a random `flat_share` of
    the photo's size) or, for any other `kind`, with a strip of `other` (`strip_share` of its
    width) on the left or right; returns it and the photo's box in fractions of it."""
    from PIL import Image

    h, w = image.shape[:2]
    if kind == "flat":
        top, bottom = (int(h * f) for f in rng.uniform(*flat_share, 2))
        left, right = (int(w * f) for f in rng.uniform(*flat_share, 2))
        colour = rng.integers(0, 256, 3).astype(np.uint8)
        out = np.empty((h + top + bottom, w + left + right, 3), np.uint8)
        out[:] = colour
        out[top : top + h, left : left + w] = image
    else:
        strip_w = int(w * rng.uniform(*strip_share))
        strip = np.asarray(Image.fromarray(other).resize((strip_w, h), Image.Resampling.BILINEAR))
        top = bottom = 0
        if rng.random() < 0.5:
            out, left, right = np.concatenate([strip, image], axis=1), strip_w, 0
        else:
            out, left, right = np.concatenate([image, strip], axis=1), 0, strip_w
    height, width = out.shape[:2]
    return out, (left / width, top / height, (left + w) / width, (top + h) / height)


def cast_size(image: np.ndarray, reference: np.ndarray) -> float:
    """How far `image`'s colour balance is from `reference`'s: max |log| of the channel ratio
    (the measure of benchmarks/suggest_quality.py)."""
    ratio = _linear(image).reshape(-1, 3).mean(0) / (
        _linear(reference).reshape(-1, 3).mean(0) + 1e-6
    )
    return float(np.abs(np.log(ratio / np.exp(np.log(ratio).mean()))).max())


def _random_crop(rng: np.random.Generator, width: int, height: int, area: tuple[float, float]):
    """A box (fractions) of a random aspect ratio, area and position."""
    from photod.enhancers.crop import ASPECTS

    aspect = float(rng.choice([width / height, *ASPECTS.values()]))
    keep = rng.uniform(*area)
    bw = float(np.clip(np.sqrt(keep * aspect * height / width), 0.3, 1.0))
    bh = float(np.clip(keep / bw, 0.3, 1.0))
    left, top = rng.uniform(0, 1 - bw), rng.uniform(0, 1 - bh)
    return (left, top, left + bw, top + bh)


def search_lists(
    image: np.ndarray, other: np.ndarray, rng: np.random.Generator
) -> Iterator[tuple[str, list[tuple[float, np.ndarray]]]]:
    """(kind, [(residual, pixels), ...]) lists for one good photo, as the search meets them.

    Each list is what one step of `photod suggest` ranks: its first item is the step's starting
    image (the good photo, or the photo with one injected defect) and the others are the edits
    the enhancer proposes from it, made by the enhancers' own code (exposure LUTs with their
    highlight shoulder, the white-balance estimators, crops). `residual` is how far each item
    is from the good photo: |injected EV + applied EV|, the colour cast left (`cast_size`),
    1 - IoU of a crop with the photo's true frame, or the size of a tone / tilt defect. The
    head learns to put smaller residuals first; whether the step should move at all is the
    calibrated margin's job (`train_edit_head.margin_curve`).
    """
    from PIL import Image

    from photod.enhancers import EnhanceContext, get_enhancer
    from photod.enhancers.color import apply_luts
    from photod.enhancers.exposure import exposure_lut
    from photod.enhancers.geometry import extract, inscribed_box, iou
    from photod.enhancers.tone import adjust_saturation, contrast_lut

    h, w = image.shape[:2]
    lin = _linear(image)

    def exposure_list(base: np.ndarray, injected: float, evs) -> list[tuple[float, np.ndarray]]:
        items = [(abs(injected), base)]
        for ev in evs:
            if abs(ev) > 1e-6:
                items.append((abs(injected + ev), apply_luts(base, exposure_lut(float(ev)))))
        return items

    ladder = [-1.6, -0.8, -0.4, 0.4, 0.8, 1.6, *np.round(rng.uniform(-2, 2, 2), 2)]
    yield "exposure_clean", exposure_list(image, 0.0, ladder)
    for sign in (-1, 1):
        injected = float(sign * rng.uniform(0.4, 1.8))
        fix = -injected
        evs = [fix + d for d in (-0.8, -0.4, -0.2, 0.0, 0.2, 0.4, 0.8)] + [-fix * 0.5]
        evs = [float(np.clip(round(ev, 2), -2.5, 2.5)) for ev in evs]
        yield (
            ("exposure_under" if sign < 0 else "exposure_over"),
            exposure_list(_shift(lin, injected), injected, evs),
        )

    white_balance = get_enhancer("white_balance")
    wb_params = {
        "methods": ["grey_world", "white_patch"],
        "strength": [0.5, 1.0],
        "temperature": [-0.2, -0.1, 0.1, 0.2],
        "tint": [-0.15, 0.15],
    }

    def colour_list(base: np.ndarray) -> list[tuple[float, np.ndarray]]:
        items = [(cast_size(base, image), base)]
        for candidate in white_balance.candidates(base, EnhanceContext(params=wb_params)):
            fixed = candidate.apply(base)
            items.append((cast_size(fixed, image), fixed))
        return items

    yield "colour_clean", colour_list(image)
    direction = rng.normal(size=3)
    direction -= direction.mean()
    direction /= np.linalg.norm(direction) + 1e-9
    gains = np.exp(rng.uniform(0.12, 0.45) * direction * np.sqrt(1.5))
    cast = _cast(lin, gains)
    items = colour_list(cast)
    for strength in (0.5, 1.0):
        # The exact inverse (and half of it): the fix the estimators should approach.
        inverse = _cast(_linear(cast), 1.0 + strength * (1.0 / gains - 1.0))
        items.append((cast_size(inverse, image), inverse))
    yield "colour_cast", items

    full = (0.0, 0.0, 1.0, 1.0)
    crops = [(0.0, image)]
    for area in ((0.3, 0.55), (0.55, 0.75), (0.75, 0.95), (0.75, 0.95), (0.5, 0.9)):
        box = _random_crop(rng, w, h, area)
        crops.append((1.0 - iou(box, full), extract(image, box)))
    yield "crop_clean", crops

    if rng.random() < 0.5:
        share = rng.uniform(0.05, 0.2, 4) * (rng.random(4) < 0.75)
        share = share if share.any() else np.full(4, 0.1)
        t, b = (int(s * h) for s in share[:2])
        lft, r = (int(s * w) for s in share[2:])
        padded = np.empty((h + t + b, w + lft + r, 3), np.uint8)
        padded[:] = rng.integers(0, 256, 3).astype(np.uint8)
        padded[t : t + h, lft : lft + w] = image
        kind = "margin_flat"
    else:
        strip_w = max(8, int(w * rng.uniform(0.12, 0.35)))
        strip = np.asarray(Image.fromarray(other).resize((strip_w, h), Image.Resampling.BILINEAR))
        left_side = rng.random() < 0.5
        padded = np.concatenate((strip, image) if left_side else (image, strip), axis=1)
        t, b, lft, r = 0, 0, (strip_w if left_side else 0), (0 if left_side else strip_w)
        kind = "margin_foreign"
    ph, pw = padded.shape[:2]
    truth = (lft / pw, t / ph, (lft + w) / pw, (t + h) / ph)
    boxes = [truth]
    for _ in range(3):  # near misses: the frame grown or shrunk a little on each side
        jitter = rng.uniform(-0.06, 0.06, 4)
        boxes.append(
            (
                max(0.0, truth[0] + jitter[0]),
                max(0.0, truth[1] + jitter[1]),
                min(1.0, truth[2] + jitter[2]),
                min(1.0, truth[3] + jitter[3]),
            )
        )
    boxes += [_random_crop(rng, pw, ph, (0.45, 0.9)) for _ in range(3)]
    items = [(1.0 - iou(full, truth), padded)]
    items += [(1.0 - iou(box, truth), extract(padded, box)) for box in boxes]
    yield kind, items

    # The search's own candidates: its whole exposure ladder (presets.json edit_params) and
    # refinement from a clean, an under- and an over-exposed start, and the crop enhancer's
    # boxes on the clean photo and on a padded one (the lists above cover nearby edits only).
    from photod.enhancers import load_presets
    from photod.enhancers.crop import crop_boxes

    settings = load_presets()
    search_ladder = [float(ev) for ev in settings["edit_params"]["exposure"]["ev"]]
    for name, injected in (
        ("ladder_clean", 0.0),
        ("ladder_under", -float(rng.uniform(0.4, 1.6))),
        ("ladder_over", float(rng.uniform(0.4, 1.6))),
    ):
        start = image if injected == 0 else _shift(lin, injected)
        refine = [round(-injected + d, 2) for d in (-0.2, 0.0, 0.2)] if injected else []
        yield name, exposure_list(start, injected, sorted(set(search_ladder + refine)))
    crop_params = {**settings["params"]["crop"], "min_saliency": 0.0}
    for name, canvas, frame in (("grid_clean", image, full), ("grid_margin", padded, truth)):
        ch, cw = canvas.shape[:2]
        boxes = [b for _, _, b in crop_boxes(cw, ch, EnhanceContext(params=crop_params))]
        picked = [boxes[i] for i in rng.permutation(len(boxes))[:9]]
        if frame != full:
            picked.append(frame)
        items = [(1.0 - iou(full, frame), canvas)]
        items += [(1.0 - iou(box, frame), extract(canvas, box)) for box in picked]
        yield name, items

    tone = [(0.0, image)]
    for amount in (rng.uniform(-0.5, -0.25), rng.uniform(0.3, 0.6)):
        tone.append((abs(amount), np.ascontiguousarray(np.asarray(contrast_lut(amount))[image])))
    yield "contrast", tone
    saturation = [(0.0, image)]
    for amount in (rng.uniform(-0.6, -0.3), rng.uniform(0.35, 0.7)):
        saturation.append((abs(amount), adjust_saturation(image, saturation=amount)))
    yield "saturation", saturation
    tilts = [(0.0, image)]
    for degrees in (rng.uniform(1.5, 3.5), rng.uniform(4.5, 7)):
        angle = float(degrees * rng.choice([-1, 1]))
        # The content tilted by `angle`: extract with the opposite angle turns the photo.
        tilts.append((degrees / 4.0, extract(image, inscribed_box(w, h, angle), -angle)))
    yield "tilt", tilts


def sources(
    n_para: int, seed: int = 0, bench_root: Path | None = None, para_offset: int = 0
) -> list[tuple[str, str, str, object]]:
    """[(group name, split key, origin, path or array)]: good PARA training photos (split by
    session), then REAL_TRAIN (split by file)."""
    from photod.training.datasets import para_dataset

    samples = para_dataset(split="train")
    targets = np.array([s.target for s in samples])
    good = [s for s, t in zip(samples, targets, strict=True) if t > np.median(targets)]
    rng = np.random.default_rng(seed)
    chosen = [good[i] for i in rng.permutation(len(good))[para_offset : para_offset + n_para]]
    out: list[tuple[str, str, str, object]] = [
        (f"para:{s.group}/{s.path.name}", s.group, "para", s.path) for s in chosen
    ]
    for rel in REAL_TRAIN:
        if rel.startswith("sklearn:"):
            from sklearn.datasets import load_sample_image

            out.append((rel, rel, "real", load_sample_image(rel.split(":", 1)[1])))
        elif rel.startswith("matplotlib:"):
            import matplotlib.cbook

            out.append(
                (
                    rel,
                    rel,
                    "real",
                    matplotlib.cbook.get_sample_data(rel.split(":")[1], asfileobj=False),
                )
            )
        elif rel.startswith("skimage:"):
            import skimage.data

            pixels = getattr(skimage.data, rel.split(":")[1])()
            out.append((rel, rel, "real", pixels[0] if isinstance(pixels, tuple) else pixels))
        elif bench_root is not None and (bench_root / rel).exists():
            out.append((rel, rel, "real", bench_root / rel))
    return out


def working_copy(item: object) -> np.ndarray:
    """The search's working copy of a path (decode_image) or an array (short side 224-448)."""
    from PIL import Image

    from photod.decode import decode_image

    if isinstance(item, np.ndarray):
        pixels = item[..., :3]
        h, w = pixels.shape[:2]
        scale = 448 / min(h, w)
        if scale < 1:
            size = (round(w * scale), round(h * scale))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
        return np.ascontiguousarray(pixels)
    return decode_image(item, min_side=224).pixels  # type: ignore[arg-type]


CACHE_KEYS = ("photo", "group", "kind", "residual", "base", "held_out", "features")


def load_cache(folder: Path) -> dict[str, np.ndarray]:
    """The finished shards under `folder` (training may start before the cache is complete)."""
    shards = sorted(folder.glob("**/shard-[0-9][0-9][0-9].npz"))
    parts = [dict(np.load(shard)) for shard in shards]
    return {key: np.concatenate([p[key] for p in parts]) for key in CACHE_KEYS}


def build_cache(
    folder: Path,
    n_para: int = 480,
    real_repeats: int = 4,
    seed: int = 0,
    base_weights: Path | None = None,
    bench_root: Path | None = None,
    shard_groups: int = 16,
    para_offset: int = 0,
    kinds: tuple[str, ...] = KINDS,
) -> dict[str, np.ndarray]:
    """Features of every item of every list (of `kinds`) of every source photo, cached in
    shards under `folder` (resumable: a finished shard is kept when its photos are the same).

    Returns, per item: its source photo, list id (`group`), list kind, residual, whether it is
    the list's starting image (`base`), the held-out flag, and features [N, 2848] (float32).
    """
    import torch

    from photod.models.buckets import group_by_bucket, resize_to_bucket
    from photod.models.lite import lite0_from_file_state

    folder.mkdir(parents=True, exist_ok=True)
    items = sources(n_para, seed, bench_root, para_offset)
    jobs = []
    for name, key, origin, item in items:
        for r in range(real_repeats if origin == "real" else 1):
            jobs.append((f"{name}#{r}" if origin == "real" else name, key, item))
    backbone = None
    parts = []
    for k, start in enumerate(range(0, len(jobs), shard_groups)):
        chunk = jobs[start : start + shard_groups]
        shard = folder / f"shard-{k:03d}.npz"
        names = np.array([j[0] for j in chunk])
        if shard.exists():
            data = dict(np.load(shard))
            if len(data["photo_list"]) == len(names) and (data["photo_list"] == names).all():
                parts.append(data)
                continue
        if backbone is None:
            from safetensors.torch import load_file

            from photod.models.aesthetic import split_state
            from photod.models.edit_preference import DEFAULT_MODEL_FILE

            path = base_weights or DEFAULT_MODEL_FILE
            backbone = lite0_from_file_state(split_state(load_file(str(path)))[1])
            backbone = backbone.to(memory_format=torch.channels_last)
        rows: dict[str, list] = {key: [] for key in CACHE_KEYS if key != "features"}
        images = []
        for g, (photo, split_key, item) in enumerate(chunk):
            image = working_copy(item)
            other = working_copy(jobs[(start + g + len(jobs) // 2) % len(jobs)][2])
            rng = np.random.default_rng(
                int.from_bytes(hashlib.sha256(photo.encode()).digest()[:4], "little") ^ seed
            )
            for kind, members in search_lists(image, other, rng):
                if kind not in kinds:
                    continue
                for position, (residual, pixels) in enumerate(members):
                    rows["photo"].append(photo)
                    rows["group"].append(f"{photo}|{kind}")
                    rows["kind"].append(kind)
                    rows["residual"].append(residual)
                    rows["base"].append(position == 0)
                    rows["held_out"].append(held_out(split_key))
                    images.append(pixels)
        feats = np.zeros((len(images), 2848), np.float32)
        with torch.inference_mode():
            for indices in group_by_bucket(images).values():
                for s in range(0, len(indices), 32):
                    sub = indices[s : s + 32]
                    x = np.stack([resize_to_bucket(images[i]) for i in sub])
                    t = torch.from_numpy(x).permute(0, 3, 1, 2).float().div_(127.5).sub_(1)
                    f, _ = backbone.features(t.contiguous(memory_format=torch.channels_last))
                    feats[sub] = f.numpy()
        data = {key: np.array(value) for key, value in rows.items()}
        data["residual"] = data["residual"].astype(np.float32)
        data["features"] = feats
        data["photo_list"] = names
        tmp = folder / f"shard-{k:03d}.tmp.npz"
        np.savez(tmp, **data)
        tmp.replace(shard)
        parts.append(data)
        log.info("edit lists: shard %d, %d photos, %d images", k, len(chunk), len(images))
        print(f"shard {k}: {start + len(chunk)}/{len(jobs)} photos", flush=True)
    return {key: np.concatenate([p[key] for p in parts]) for key in CACHE_KEYS}
