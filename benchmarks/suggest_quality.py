"""Quality and speed of `photod suggest` on real photographs with injected defects.

Photos (61): the photographs in Debian packages mate-backgrounds, plasma-workspace-wallpapers,
kphotoalbum and lomiri-wallpapers(-16.04, -20.04) (fetched with `apt-get download` and unpacked
with `dpkg -x` into the cache folder on first run) plus scikit-image's sample photos. The split
is by file: the photos listed here are never used in training; the edit-preference head trains
on PARA and on the few real photos in `photod.training.edit_pairs.REAL_TRAIN` (checked at load).
Each photo is decoded once to the search's working copy; defects are injected into it:

- exposure: shifted by a known EV in linear light (clipped, like a camera), cycling through
  -1.5, -1, -0.5, +0.5, +1, +1.5. Reported: median |suggested EV + injected EV| and the fraction
  with the right sign (search restricted to the exposure enhancer), also per direction.
- colour cast: linear gains (warm, cool, green, magenta). Reported: the cast left after the
  white-balance suggestion as a fraction of the injected one (median), and how often it shrank.
- distracting margin: flat-colour padding on all sides, or a strip of an unrelated photo on one
  side. Reported: IoU of the suggested crop (no crop = the whole padded frame) with the photo.
- untouched photos through the default chain: how often nothing is suggested (the margin at work),
  and how often nothing or only a nudge is (|EV| <= 0.25 and a crop keeping >= 80 % of the area).

Also: the Spearman correlation between RoI-pooled crop scores (one backbone pass) and real
scores of the cropped images, per RoI input size; and the time of `suggest_photo` on a 24 MP
JPEG with the default preset (>= 100 candidates), median of several warm runs.

Run: `python -m benchmarks.suggest_quality [--model NAME] [--limit N] [--quick]`; results are
printed and written to bench-results/suggest_quality-<model>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

PACKAGES = (
    "mate-backgrounds",
    "plasma-workspace-wallpapers",
    "kphotoalbum",
    "lomiri-wallpapers",
    "lomiri-wallpapers-16.04",
    "lomiri-wallpapers-20.04",
)
# The photographs among the packages' images (not the abstract artwork, logos or screenshots).
PHOTOS = [
    *(
        f"usr/share/backgrounds/mate/nature/{n}.jpg"
        for n in (
            "Aqua Blinds Dune FreshFlower Garden GreenMeadow LadyBird RainDrops Storm "
            "TwoWings Wood YellowFlower"
        ).split()
    ),
    *(
        f"usr/share/wallpapers/{n}/contents/images/1280x800.jpg"
        for n in (
            "Autumn BytheWater ColdRipple DarkestHour EveningGlow FallenLeaf Kite "
            "OneStandsOut Path summer_1am"
        ).split()
    ),
    "usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
    *(
        f"usr/share/kphotoalbum/demo/{n}.jpg"
        for n in (
            "anne_helene bar55 blackie cold_water donna grand_canyon_1 grand_canyon_2 jesper "
            "new_wave_1 pool skagen snow spiff sunset wayne donna_2 pool_2 bar55_2 "
            "grand_canyon_3 skagen_2 new_wave_2 spiff_2 jesper_2"
        ).split()
    ),
    *(
        f"usr/share/backgrounds/{n}.jpg"
        for n in (
            "Picture_1A_by_freespace Wine_by_Jakkub_Mede seeding_by_Clements_Engelhardt "
            "aitzgorri_by_Aitzol_Berasategi Kleiber_by_Lukas_Baubkus Dragonfly_by_Bolly "
            "friends_by_Aitzol_Berasategi sunset_by_Aitzol_Berasategi "
            "picosdeeuropa_by_Aitzol_Berasategi life_by_Aitzol_Berasategi "
            "Bridge_by_Sander_Klootwijk"
        ).split()
    ),
]
SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket")
EVS = (-1.5, -1.0, -0.5, 0.5, 1.0, 1.5)
CASTS = {
    "warm": (1.3, 1.0, 0.75),
    "cool": (0.75, 1.0, 1.3),
    "green": (0.85, 1.2, 0.85),
    "magenta": (1.15, 0.8, 1.15),
}


def default_cache() -> Path:
    return Path(os.environ.get("PHOTOD_BENCH_CACHE", ".cache/photod-bench"))


def fetch_packages(cache: Path) -> Path:
    """Download the Debian packages (once) and unpack them; returns the unpacked root."""
    debs, root = cache / "debs", cache / "root"
    debs.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        if not list(debs.glob(f"{package}_*.deb")):
            subprocess.run(["apt-get", "download", package], cwd=debs, check=True)
    marker = root / ".unpacked"
    if not marker.exists():
        root.mkdir(parents=True, exist_ok=True)
        for deb in sorted(debs.glob("*.deb")):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
        marker.touch()
    return root


def load_photos(cache: Path, limit: int | None) -> list[tuple[str, np.ndarray]]:
    """(name, working copy) of every benchmark photo, sources interleaved, at most `limit`."""
    from photod.decode import decode_image
    from photod.suggest import WORKING_MIN_SIDE
    from photod.training.edit_pairs import REAL_TRAIN

    leaked = set(PHOTOS) & set(REAL_TRAIN)
    if leaked:
        raise RuntimeError(f"benchmark photos used in training: {sorted(leaked)}")
    root = fetch_packages(cache)
    debian = []
    for rel in PHOTOS:
        path = root / rel
        if path.exists():
            name = rel.split("/")[-1] if "wallpapers" not in rel else rel.split("/")[3]
            debian.append((name, decode_image(path, min_side=WORKING_MIN_SIDE).pixels))
    import skimage.data
    from PIL import Image

    extra = []
    for name in SKIMAGE:
        pixels = getattr(skimage.data, name)()[..., :3]
        h, w = pixels.shape[:2]
        scale = 2 * WORKING_MIN_SIDE / min(h, w)
        if scale < 1:
            size = (round(w * scale), round(h * scale))
            pixels = np.asarray(Image.fromarray(pixels).resize(size, Image.Resampling.BOX))
        extra.append((f"skimage-{name}", np.ascontiguousarray(pixels)))
    # Interleave so a --limit run still sees every source.
    mixed = []
    step = max(1, len(debian) // max(1, len(extra)))
    for i, item in enumerate(debian):
        mixed.append(item)
        if i % step == step - 1 and extra:
            mixed.append(extra.pop(0))
    mixed += extra
    return mixed[:limit] if limit else mixed


# --- defects ----------------------------------------------------------------------------------


def shift_exposure(image: np.ndarray, ev: float) -> np.ndarray:
    from photod.enhancers.color import LINEAR, linear_to_srgb

    return np.round(linear_to_srgb(LINEAR[image] * 2.0**ev) * 255).astype(np.uint8)


def colour_cast(image: np.ndarray, gains: tuple[float, float, float]) -> np.ndarray:
    from photod.enhancers.color import LINEAR, linear_to_srgb

    return np.round(linear_to_srgb(LINEAR[image] * np.asarray(gains)) * 255).astype(np.uint8)


def cast_size(image: np.ndarray, reference: np.ndarray) -> float:
    """How far `image`'s colour balance is from `reference`'s: max |log| of the channel ratio."""
    from photod.enhancers.color import LINEAR

    ratio = LINEAR[image].reshape(-1, 3).mean(0) / (LINEAR[reference].reshape(-1, 3).mean(0) + 1e-6)
    return float(np.abs(np.log(ratio / np.exp(np.log(ratio).mean()))).max())


def add_margin(
    image: np.ndarray, kind: str, other: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """Pad `image`; returns the padded image and the photo's box in fractions of it."""
    from photod.training.edit_pairs import pad_with_margin

    return pad_with_margin(image, kind, other, rng, (0.08, 0.2), (0.2, 0.3))


# --- measurements -----------------------------------------------------------------------------


def measure_quality(
    scorer: Any,
    photos: list[tuple[str, np.ndarray]],
    margin: float,
    part: tuple[int, int] = (0, 1),
    rows_file: Path | None = None,
) -> dict:
    """Every measurement on every photo (or on photos i::n for `part` (i, n)); with
    `rows_file`, each photo's rows are appended to it as they are measured (JSON lines)."""
    from photod.enhancers.geometry import iou
    from photod.suggest import suggest_pixels

    rows: dict[str, list[dict[str, Any]]] = {"exposure": [], "cast": [], "margin": [], "clean": []}
    for i, (name, image) in enumerate(photos):
        # One generator per photo: a part run injects the same margins as the full run.
        rng = np.random.default_rng(7 + i)
        if i % part[1] != part[0]:
            continue
        before = {key: len(value) for key, value in rows.items()}
        ev = EVS[i % len(EVS)]
        s = suggest_pixels(shift_exposure(image, ev), scorer, "exposure", margin=0.0)
        rows["exposure"].append(
            {"photo": name, "injected": ev, "suggested": s.exposure_ev, "gain": s.gain}
        )
        cast_name = list(CASTS)[i % len(CASTS)]
        cast = colour_cast(image, CASTS[cast_name])
        s = suggest_pixels(cast, scorer, "white_balance", margin=0.0)
        fixed = s.render(cast)
        rows["cast"].append(
            {
                "photo": name,
                "cast": cast_name,
                "before": cast_size(cast, image),
                "after": cast_size(fixed, image),
                "gain": s.gain,
                "params": [e.params for e in s.edits],
            }
        )
        kind = "flat" if i % 2 == 0 else "strip"
        other = photos[(i + len(photos) // 2) % len(photos)][1]
        padded, truth = add_margin(image, kind, other, rng)
        s = suggest_pixels(padded, scorer, "crop", margin=0.0)
        crop = s.crop or (0.0, 0.0, 1.0, 1.0)
        rows["margin"].append(
            {
                "photo": name,
                "kind": kind,
                "iou": iou(crop, truth),
                "iou_no_crop": iou((0, 0, 1, 1), truth),
                "gain": s.gain,
                "crop": [round(v, 3) for v in crop],
            }
        )
        s = suggest_pixels(image, scorer, None, margin=margin)
        kept = 1.0 if s.crop is None else (s.crop[2] - s.crop[0]) * (s.crop[3] - s.crop[1])
        colour = any(e.enhancer in ("white_balance", "tone") for e in s.edits)
        rows["clean"].append(
            {
                "photo": name,
                "suggested": s.worthwhile,
                "nudge": not s.worthwhile
                or (abs(s.exposure_ev) <= 0.25 and kept >= 0.8 and not colour),
                "best_gain": s.best_score - s.score_before,
                "edits": [e.enhancer for e in s.edits],
            }
        )
        if rows_file is not None:
            new = {key: value[before[key] :] for key, value in rows.items()}
            with rows_file.open("a") as out:
                out.write(json.dumps(new, default=float) + "\n")
        print(f"  {i + 1}/{len(photos)} {name}", file=sys.stderr, flush=True)
    return summarise(rows, margin)


def merge_rows(files: list[Path]) -> dict[str, list[dict[str, Any]]]:
    """The rows of several part runs (JSON lines from `measure_quality`), each photo once."""
    rows: dict[str, list[dict[str, Any]]] = {"exposure": [], "cast": [], "margin": [], "clean": []}
    seen: set[str] = set()
    for path in files:
        for line in path.read_text().splitlines():
            photo_rows = json.loads(line)
            name = photo_rows["exposure"][0]["photo"]
            if name in seen:
                continue
            seen.add(name)
            for key, value in photo_rows.items():
                rows[key] += value
    return rows


def summarise(rows: dict[str, list[dict[str, Any]]], margin: float) -> dict[str, Any]:
    exp = rows["exposure"]
    errors = [abs(r["suggested"] + r["injected"]) for r in exp]
    right_sign = [np.sign(r["suggested"]) == -np.sign(r["injected"]) for r in exp]

    def direction(rows_: list[dict[str, Any]]) -> dict[str, float]:
        if not rows_:  # a --limit run too short for this direction
            return {"n": 0, "right_sign": float("nan"), "median_abs_error_ev": float("nan")}
        return {
            "n": len(rows_),
            "right_sign": round(
                float(np.mean([np.sign(r["suggested"]) == -np.sign(r["injected"]) for r in rows_])),
                3,
            ),
            "median_abs_error_ev": round(
                statistics.median(abs(r["suggested"] + r["injected"]) for r in rows_), 3
            ),
        }

    at_margin = [(r["suggested"] if r["gain"] >= margin else 0.0) + r["injected"] for r in exp]
    cast = rows["cast"]
    left = [r["after"] / r["before"] for r in cast if r["before"] > 0]
    mar = rows["margin"]
    ious = [r["iou"] for r in mar]
    ious_at_margin = [r["iou"] if r["gain"] >= margin else r["iou_no_crop"] for r in mar]
    clean = rows["clean"]
    return {
        "photos": len(exp),
        "margin": margin,
        "exposure": {
            "median_abs_error_ev": round(statistics.median(errors), 3),
            "right_sign": round(float(np.mean(right_sign)), 3),
            "median_abs_error_ev_at_margin": round(statistics.median(abs(v) for v in at_margin), 3),
            "under": direction([r for r in exp if r["injected"] < 0]),
            "over": direction([r for r in exp if r["injected"] > 0]),
        },
        "cast": {
            "median_fraction_left": round(statistics.median(left), 3),
            "reduced": round(float(np.mean([v < 1 for v in left])), 3),
        },
        "margin_crop": {
            "mean_iou": round(float(np.mean(ious)), 3),
            "median_iou": round(statistics.median(ious), 3),
            "mean_iou_no_crop": round(float(np.mean([r["iou_no_crop"] for r in mar])), 3),
            "mean_iou_at_margin": round(float(np.mean(ious_at_margin)), 3),
            "flat_mean_iou": round(
                float(np.mean([r["iou"] for r in mar if r["kind"] == "flat"])), 3
            ),
            "strip_mean_iou": round(
                float(np.mean([r["iou"] for r in mar if r["kind"] == "strip"] or [np.nan])), 3
            ),
        },
        "untouched": {
            "no_suggestion": round(float(np.mean([not r["suggested"] for r in clean])), 3),
            "nothing_or_nudge": round(float(np.mean([r["nudge"] for r in clean])), 3),
            "median_best_gain": round(statistics.median(r["best_gain"] for r in clean), 4),
            "suggested_enhancers": sorted({e for r in clean for e in r["edits"]}),
        },
        "rows": rows,
    }


def measure_roi(scorer: Any, photos: list[tuple[str, np.ndarray]], sizes: list[int]) -> dict:
    """Spearman rank correlation of approximate crop scores with real crop scores.

    Two approximations: "roi" (one full backbone pass, every stage pooled over the window from
    integral images) at each size of `sizes`, and "roi-tail" (early stages once, the window's
    stage-4 map RoIAligned and the late stages run for real) at its default size. Also: how
    often the best of the approximation's top 6 is the real best crop, or within 0.05 of it.
    """
    from scipy.stats import spearmanr

    from photod.enhancers import EnhanceContext, get_enhancer, load_presets
    from photod.suggest import ROI_TAIL_INPUT, roi_scores, roi_tail_scores

    params = load_presets()["params"]["crop"]
    methods: dict[str, Any] = {str(size): partial(roi_scores, size=size) for size in sizes}
    methods[f"tail-{ROI_TAIL_INPUT}"] = roi_tail_scores
    spearman: dict[str, list[float]] = {name: [] for name in methods}
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    top_hit: dict[str, list[float]] = {name: [] for name in methods}
    for _name, image in photos:
        candidates = get_enhancer("crop").candidates(image, EnhanceContext(params=params))
        candidates = candidates[:: max(1, len(candidates) // 60)]
        boxes = [c.crop for c in candidates]
        real = scorer.score_pixels([c.apply(image) for c in candidates])[0]
        for name, method in methods.items():
            started = time.perf_counter()
            approx = method(scorer, image, boxes)
            seconds[name].append(time.perf_counter() - started)
            spearman[name].append(float(spearmanr(approx, real).statistic))
            shortlisted = real[np.argsort(-approx)[:6]]
            top_hit[name].append(float(shortlisted.max() >= real.max() - 0.05))
    return {
        name: {
            "median_spearman": round(statistics.median(v), 3),
            "min_spearman": round(min(v), 3),
            "top6_within_0.05": round(float(np.mean(top_hit[name])), 3),
            "median_seconds": round(statistics.median(seconds[name]), 3),
            "windows": len(boxes),
        }
        for name, v in spearman.items()
    }


def measure_speed(scorer: Any, workdir: Path, runs: int) -> dict[str, Any]:
    """`suggest_photo` on a 24 MP camera-like JPEG (default preset), warm, median of `runs`."""
    import torch
    from PIL import Image

    from photod.suggest import suggest_photo
    from tests.photos import camera_exif, real_photo

    path = workdir / "suggest-24mp.jpg"
    if not path.exists():
        base = Image.fromarray(real_photo("astronaut")).resize(
            (6000, 4000), Image.Resampling.BICUBIC
        )
        grain = np.random.default_rng(0).normal(0, 4, (4000, 6000, 1))
        pixels = np.clip(np.asarray(base, np.float32) + grain, 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(path, "JPEG", quality=92, exif=camera_exif())
    suggest_photo(path, scorer)  # warm-up: model load, first-call allocations
    times, candidates, scored, passes = [], [], [], []
    for _ in range(runs):
        started = time.perf_counter()
        s = suggest_photo(path, scorer)
        times.append(time.perf_counter() - started)
        candidates.append(s.candidates)
        scored.append(s.scored)
        passes.append(s.full_passes)
    return {
        "photo": f"{path.name} 6000x4000 ({path.stat().st_size / 1e6:.1f} MB)",
        "median_seconds": round(statistics.median(times), 3),
        "min_seconds": round(min(times), 3),
        "max_seconds": round(max(times), 3),
        "candidates": int(statistics.median(candidates)),
        "scored": int(statistics.median(scored)),
        "full_passes": int(statistics.median(passes)),
        "torch_threads": torch.get_num_threads(),
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def measure_cold_start(workdir: Path, runs: int) -> dict[str, Any]:
    """Wall time of `photod suggest --objective edit-preference 24MP.jpg --json` in a NEW
    process (import, model load, decode, search), median of `runs`, with its CPU time."""
    import resource

    path = workdir / "suggest-24mp.jpg"
    walls, cpus = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "photod", "suggest", "--objective", "edit-preference"]
            + [str(path), "--json", "--device", "cpu"],
            check=True,
            capture_output=True,
        )
        walls.append(time.perf_counter() - started)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        "median_wall_seconds": round(statistics.median(walls), 3),
        "median_cpu_seconds": round(statistics.median(cpus), 3),
        "runs": runs,
        "load_average": [round(v, 2) for v in os.getloadavg()],
    }


def run(
    workdir: Path,
    model: str | None = None,
    limit: int | None = None,
    device: str = "cpu",
    speed_runs: int = 3,
    roi_sizes: tuple[int, ...] = (224, 320, 448),
    roi_photos: int = 6,
    objective: str = "edit",
    cold_runs: int = 3,
    part: tuple[int, int] = (0, 1),
    rows_file: Path | None = None,
) -> dict[str, Any]:
    from photod.enhancers import load_presets
    from photod.objective import EditObjective, use_objective
    from photod.scoring import DEFAULT_MODEL, Scorer

    workdir.mkdir(parents=True, exist_ok=True)
    if objective == "edit":
        scorer: Any = EditObjective(device=device, batch_size=32)
        margin = scorer.default_margin
        margin = float(load_presets()["edit_margin"] if margin is None else margin)
        name = scorer.version
    else:
        scorer = Scorer(model=model or DEFAULT_MODEL, device=device, batch_size=32)
        use_objective(scorer, "aesthetic")
        margin = float(load_presets()["margin"])
        name = scorer.version
    photos = load_photos(default_cache(), limit)
    result: dict[str, Any] = {"model": name, "device": scorer.device}
    if speed_runs:
        result["speed"] = measure_speed(scorer, workdir, speed_runs)
    if cold_runs and objective == "edit":
        result["cold_start"] = measure_cold_start(workdir, cold_runs)
    # RoI window scores need the aesthetic model's layout (the old objective only).
    result["roi"] = (
        measure_roi(scorer, photos[:roi_photos], list(roi_sizes)) if objective != "edit" else {}
    )
    result["quality"] = measure_quality(scorer, photos, margin, part, rows_file)
    return result


def table(result: dict[str, Any]) -> str:
    q = result["quality"]
    lines = [
        f"model {result['model']} on {result['device']}, {q['photos']} photos, "
        f"margin {q['margin']}",
        f"exposure: median |suggested + injected| = {q['exposure']['median_abs_error_ev']} EV, "
        f"right sign {q['exposure']['right_sign']:.0%} "
        f"(at the margin: {q['exposure']['median_abs_error_ev_at_margin']} EV); under: "
        f"{q['exposure']['under']['right_sign']:.0%}, "
        f"{q['exposure']['under']['median_abs_error_ev']} EV; over: "
        f"{q['exposure']['over']['right_sign']:.0%}, "
        f"{q['exposure']['over']['median_abs_error_ev']} EV",
        f"colour cast: median fraction left {q['cast']['median_fraction_left']}, "
        f"reduced in {q['cast']['reduced']:.0%}",
        f"margin: crop IoU with the photo mean {q['margin_crop']['mean_iou']} "
        f"(median {q['margin_crop']['median_iou']}; flat {q['margin_crop']['flat_mean_iou']}, "
        f"strip {q['margin_crop']['strip_mean_iou']}; no crop "
        f"{q['margin_crop']['mean_iou_no_crop']}; at the margin "
        f"{q['margin_crop']['mean_iou_at_margin']})",
        f"untouched: no suggestion for {q['untouched']['no_suggestion']:.0%}, nothing or a "
        f"nudge for {q['untouched']['nothing_or_nudge']:.0%} "
        f"(median best gain {q['untouched']['median_best_gain']}; enhancers suggested "
        f"{', '.join(q['untouched']['suggested_enhancers']) or 'none'})",
    ]
    for name, roi in result["roi"].items():
        lines.append(
            f"RoI crop scores ({name}) vs real: Spearman median {roi['median_spearman']} "
            f"(min {roi['min_spearman']}), real best within 0.05 in the top 6: "
            f"{roi['top6_within_0.05']:.0%}, {roi['median_seconds'] * 1000:.0f} ms per photo "
            f"for {roi['windows']} windows"
        )
    if "speed" in result:
        sp = result["speed"]
        lines.append(
            f"speed: suggest_photo {sp['photo']}: median {sp['median_seconds']} s "
            f"({sp['min_seconds']}-{sp['max_seconds']}), {sp['candidates']} candidates, "
            f"{sp['scored']} scored ({sp['full_passes']} full passes), "
            f"{sp['torch_threads']} torch threads, load average {sp['load_average']}"
        )
    if "cold_start" in result:
        cs = result["cold_start"]
        lines.append(
            f"cold start: `photod suggest` on the 24 MP JPEG in a new process: median "
            f"{cs['median_wall_seconds']} s wall, {cs['median_cpu_seconds']} s CPU "
            f"({cs['runs']} runs, load average {cs['load_average']})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suggest_quality")
    parser.add_argument("--model", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos")
    parser.add_argument("--quick", action="store_true", help="8 photos, 1 speed run, one RoI size")
    parser.add_argument("--workdir", type=Path, default=Path("bench-results/work"))
    parser.add_argument(
        "--objective",
        choices=("edit", "model"),
        default="edit",
        help="edit: the edit-preference head (default); model: --model's aesthetic score",
    )
    parser.add_argument("--cold-runs", type=int, default=3, help="new-process runs (0: skip)")
    parser.add_argument("--speed-runs", type=int, default=3, help="warm 24 MP runs (0: skip)")
    parser.add_argument("--part", default="0/1", help="I/N: only photos I, I+N, ... (rows file)")
    parser.add_argument("--rows", type=Path, default=None, help="append per-photo rows here")
    parser.add_argument(
        "--merge", type=Path, nargs="+", default=None, help="summarise the rows files of parts"
    )
    args = parser.parse_args(argv)
    if args.merge:
        from photod.enhancers import load_presets
        from photod.objective import EditObjective

        margin = EditObjective().default_margin
        margin = float(load_presets()["edit_margin"] if margin is None else margin)
        summary = summarise(merge_rows(args.merge), margin)
        print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=1))
        out = Path("bench-results") / "suggest_quality-merged.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(summary, indent=1, default=float))
        return 0
    index, count = (int(v) for v in args.part.split("/"))
    kwargs: dict[str, Any] = {
        "objective": args.objective,
        "cold_runs": args.cold_runs,
        "speed_runs": args.speed_runs,
        "part": (index, count),
        "rows_file": args.rows,
    }
    if args.quick:
        kwargs.update(speed_runs=1, roi_sizes=(320,), roi_photos=3, cold_runs=1)
        args.limit = args.limit or 8
    result = run(args.workdir, args.model, args.limit, args.device, **kwargs)
    print(table(result))
    out = Path("bench-results") / f"suggest_quality-{result['model']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float))
    print(f"written {out}")
    shutil.rmtree(args.workdir / "tmp", ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
