"""Calibrate the "suggest nothing" margin of the edit-preference search on held-out photos,
through the real search (photod/suggest.py) at each margin, and store the curve in the card.

Each held-out photo (good PARA photos of held-out sessions, `training.edit_pairs.held_out`: the
edit head and the offsets model never saw them) is searched with the default chain at every
margin of the grid, as it is and with one injected defect, cycling through an exposure shift
(+-0.5..1.5 EV, linear light), a colour cast (linear gains, log r/g and b/g of 0.15..0.35
either way) and a distracting margin (flat padding or a strip of another photo). At margin m:

- a clean photo is left alone when nothing is suggested, or only a nudge (|EV| <= 0.25, a crop
  keeping >= 80 % of the area, no colour edit);
- a defect is fixed when something is suggested and it undoes the defect: more than half the
  EV error removed in the right direction, more than half the cast removed, or a crop whose IoU
  with the photo is at least 0.85.

The chosen margin is the smallest of the grid that leaves `left_alone` (default 85 %) of the
clean photos alone; it becomes the chain margin and every step margin of the card (`margin`).
benchmarks/suggest_quality.py measures the result on real photos.

Run: `python -m photod.training.calibrate_margin [--photos N] [--dry-run]` (about 9 min for
120 photos on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("photod")

KINDS = ("exposure", "cast", "margin")


def _nudge(suggestion: Any) -> bool:
    kept = 1.0
    if suggestion.crop is not None:
        left, top, right, bottom = suggestion.crop
        kept = (right - left) * (bottom - top)
    colour = any(e.enhancer in ("white_balance", "tone") for e in suggestion.edits)
    return abs(suggestion.exposure_ev) <= 0.25 and kept >= 0.8 and not colour


def add_margin(
    image: np.ndarray, kind: str, other: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    """`image` padded with a flat colour on every side (6-20 % each), or with a strip of
    `other` (15-30 % of its width) on one side; returns it and the photo's box in fractions."""
    from photod.training.edit_pairs import pad_with_margin

    return pad_with_margin(image, kind, other, rng, (0.06, 0.2), (0.15, 0.3))


def photo_row(
    objective: Any,
    image: np.ndarray,
    other: np.ndarray,
    kind: str,
    rng: np.random.Generator,
    margins: list[float],
) -> dict[str, Any]:
    """One photo's row: at each margin, whether the clean photo was left alone and whether the
    photo with one injected defect of `kind` (`other` lends a strip) was fixed."""
    from photod.enhancers.geometry import iou
    from photod.suggest import suggest_pixels
    from photod.training.edit_pairs import _cast, _linear, _shift, cast_size

    if kind == "exposure":
        ev = float(rng.choice([-1, 1]) * rng.uniform(0.5, 1.5))
        defective = _shift(_linear(image), ev)

        def fixed(s: Any) -> bool:
            error = abs(s.exposure_ev + ev)
            return bool(np.sign(s.exposure_ev) == -np.sign(ev) and error < abs(ev) / 2)

    elif kind == "cast":
        log_gains = rng.uniform(0.15, 0.35, 2) * rng.choice([-1, 1], 2)
        defective = _cast(_linear(image), np.exp([log_gains[0], 0.0, log_gains[1]]))

        def fixed(s: Any) -> bool:
            return cast_size(s.render(defective), image) < 0.5 * cast_size(defective, image)

    else:
        layout = "flat" if rng.random() < 0.5 else "strip"
        defective, truth = add_margin(image, layout, other, rng)

        def fixed(s: Any) -> bool:
            return iou(s.crop or (0.0, 0.0, 1.0, 1.0), truth) >= 0.85

    row: dict[str, Any] = {"kind": kind, "left_alone": [], "fixed": []}
    for margin in margins:
        clean = suggest_pixels(image, objective, None, margin=margin)
        row["left_alone"].append(not clean.worthwhile or _nudge(clean))
        s = suggest_pixels(defective, objective, None, margin=margin)
        row["fixed"].append(bool(s.worthwhile and fixed(s)))
    return row


def run(
    n_photos: int, margins: list[float], seed: int = 0, model_file: Path | None = None
) -> list[dict[str, Any]]:
    """`photo_row` of each of `n_photos` held-out photos, the defect kinds in turn."""
    from photod.objective import EditObjective
    from photod.training.edit_pairs import held_out, sources, working_copy

    objective = EditObjective(device="cpu", model_file=model_file)
    held = [s for s in sources(7500, seed) if s[2] == "para" and held_out(s[1])][:n_photos]
    images = [working_copy(item) for _, _, _, item in held]
    rows = []
    started = time.perf_counter()
    for i, ((name, _, _, _), image) in enumerate(zip(held, images, strict=True)):
        other = images[(i + len(images) // 2) % len(images)]
        rng = np.random.default_rng(1000 + i)
        row = photo_row(objective, image, other, KINDS[i % len(KINDS)], rng, margins)
        rows.append({"photo": name, **row})
        if i % 10 == 0:
            log.info("%d/%d photos, %.0f s", i, len(held), time.perf_counter() - started)
    return rows


def curve(rows: list[dict[str, Any]], margins: list[float]) -> list[dict[str, float]]:
    """(margin, fixed, left alone, fixed per kind) at each margin."""
    out = []
    for k, m in enumerate(margins):
        point = {
            "margin": round(float(m), 3),
            "fixed": round(float(np.mean([r["fixed"][k] for r in rows])), 3),
            "left_alone": round(float(np.mean([r["left_alone"][k] for r in rows])), 3),
        }
        for kind in KINDS:
            of_kind = [r["fixed"][k] for r in rows if r["kind"] == kind]
            point[f"fixed_{kind}"] = round(float(np.mean(of_kind)), 3)
        out.append(point)
    return out


def choose(points: list[dict[str, float]], left_alone: float) -> dict[str, float]:
    """The smallest margin leaving at least `left_alone` of the clean photos alone."""
    for point in points:
        if point["left_alone"] >= left_alone:
            return point
    return points[-1]


def write(model_file: Path, entry: dict[str, Any]) -> None:
    """Replace the edit-preference head's `margin` entry in the card (atomically)."""
    import os
    import tempfile

    card_path = model_file.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["heads"]["edit_preference"]["margin"] = entry
    fd, tmp = tempfile.mkstemp(dir=card_path.parent, suffix=".json.tmp")
    with os.fdopen(fd, "w") as out:
        json.dump(card, out, indent=2)
        out.write("\n")
    os.replace(tmp, card_path)


def main(argv: list[str] | None = None) -> int:
    from photod.models.edit_preference import DEFAULT_MODEL_FILE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=120, help="held-out photos")
    parser.add_argument("--left-alone", type=float, default=0.85)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_FILE)
    parser.add_argument("--dry-run", action="store_true", help="report, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    margins = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.5, 0.6]
    rows = run(args.photos, margins, model_file=args.model)
    points = curve(rows, margins)
    chosen = choose(points, args.left_alone)
    entry = {
        "chosen": chosen["margin"],
        "rule": f"smallest chain margin leaving >= {args.left_alone:.0%} of held-out clean "
        "photos alone (nothing suggested, or a nudge), read from the real search "
        "(python -m photod.training.calibrate_margin)",
        "photos": len(rows),
        "at_chosen": chosen,
        "step": {"pixel": chosen["margin"], "geometry": chosen["margin"]},
        "curve_held_out": points,
    }
    print(json.dumps(entry, indent=1))
    if not args.dry_run:
        write(args.model, entry)
        print(f"wrote the margin into {args.model.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
