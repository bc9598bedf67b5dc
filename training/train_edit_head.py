"""Train the edit-preference head on cached variant features (training/edit_pairs.py).

Pairs come only from inside a group (versions of ONE photo): the untouched photo beats each of
its variants, and within one kind of defect a smaller defect beats a larger one (exposure -0.3
beats -1 and +1.5; a 6 % margin beats a 14 % one). The loss is RankNet's logistic pairwise loss
on the score difference; the head is a small MLP (hidden 64) over standardised MLSP features,
trained full-batch with AdamW in seconds. The features were computed once per variant, so
swapping the backbone is one re-run (see `main`):

    python -m photod.training.train_edit_head --base photod-aesthetic-v3.safetensors

(`--base` names the model file whose `backbone.*` tensors produce the features; its features
are cached under .cache/edit-pairs/<base stem>/.) The card records pair accuracy per edit kind
on the held-out groups (other PARA sessions, other files).
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


def make_pairs(group: np.ndarray, kind: np.ndarray, defect: np.ndarray, min_gap: float = 0.1):
    """(better, worse, kind of the worse) index arrays of the ranking pairs inside each group."""
    better, worse, kinds = [], [], []
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = order[a:b]
        originals = idx[kind[idx] == "original"]
        for o in originals:
            for j in idx[kind[idx] != "original"]:
                better.append(o)
                worse.append(j)
                kinds.append(kind[j])
        for k in set(kind[idx]) - {"original"}:
            members = idx[kind[idx] == k]
            for i in members:
                for j in members:
                    if defect[j] - defect[i] >= min_gap:
                        better.append(i)
                        worse.append(j)
                        kinds.append(f"{k}_ladder")
    return np.array(better), np.array(worse), np.array(kinds)


def train_head(
    features: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    hidden: int = 64,
    epochs: int = 400,
    lr: float = 3e-3,
    weight_decay: float = 1e-3,
    seed: int = 0,
) -> Any:
    """Fit a PreferenceHead by full-batch AdamW on the logistic pairwise loss."""
    import torch
    import torch.nn.functional as F

    from photod.models.edit_preference import PreferenceHead

    torch.manual_seed(seed)
    # One thread: a tiny full-batch MLP gains nothing from intra-op threads on a busy machine.
    torch.set_num_threads(1)
    head = PreferenceHead(features.shape[1], hidden)
    x = torch.from_numpy(features.astype(np.float32))
    head.feature_mean.copy_(x.mean(0))
    head.feature_std.copy_(x.std(0).clamp_min(1e-3))
    better, worse = (torch.from_numpy(p.astype(np.int64)) for p in pairs)
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    head.train()
    for _ in range(epochs):
        scores = head(x)
        loss = F.softplus(-(scores[better] - scores[worse])).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return head.eval()


def pair_accuracy(scores: np.ndarray, better, worse, kinds) -> dict[str, float]:
    right = scores[better] > scores[worse]
    out = {str(k): round(float(right[kinds == k].mean()), 4) for k in sorted(set(kinds))}
    out["all"] = round(float(right.mean()), 4)
    return out


# The defects the search must fix (the benchmark's ranges) and what counts as only a nudge.
FIX_RANGE = {
    "exposure": (0.5, 1.6),
    "colour": (0.1, 0.35),
    "margin_flat": (0.25, 1.0),
    "margin_foreign": (0.4, 1.0),
}


def margin_curve(
    scores: np.ndarray, group: np.ndarray, kind: np.ndarray, defect: np.ndarray
) -> list[dict[str, float]]:
    """Held-out trade-off of the "suggest nothing" margin, from cached variants (no new passes).

    - fixed: a photo with a defect in FIX_RANGE gains score(untouched) - score(defective) when
      the search finds the fix; the defect is fixed at margin m when that gain >= m.
    - left alone: a clean photo's best variant (any kind; exposure within 0.3 EV counts as a
      nudge and is ignored) gains max(score(variant)) - score(untouched); it is left alone at
      margin m when that gain < m.
    """
    fixed_gains, clean_gains = [], []
    for g in np.unique(group):
        idx = np.flatnonzero(group == g)
        origin = idx[kind[idx] == "original"]
        if not len(origin):
            continue
        s0 = scores[origin[0]]
        others = [
            i
            for i in idx
            if kind[i] != "original" and not (kind[i] == "exposure" and defect[i] <= 0.3)
        ]
        clean_gains.append(max(scores[i] for i in others) - s0 if others else -np.inf)
        for i in idx:
            lo, hi = FIX_RANGE.get(str(kind[i]), (np.inf, np.inf))
            if lo <= defect[i] <= hi:
                fixed_gains.append(s0 - scores[i])
    fixed_gains, clean_gains = np.array(fixed_gains), np.array(clean_gains)
    curve = []
    for m in np.round(np.arange(0.0, 3.01, 0.1), 2):
        curve.append(
            {
                "margin": float(m),
                "fixed": round(float((fixed_gains >= m).mean()), 3),
                "left_alone": round(float((clean_gains < m).mean()), 3),
            }
        )
    return curve


def choose_margin(curve: list[dict[str, float]], left_alone: float = 0.85) -> float:
    """The smallest margin that leaves at least `left_alone` of the clean photos alone."""
    for point in curve:
        if point["left_alone"] >= left_alone:
            return point["margin"]
    return curve[-1]["margin"]


def write_head(path: Path, tensors: dict[str, Any], card: dict[str, Any]) -> None:
    """Weights and card, each through a temp file and a rename."""
    from safetensors.torch import save_file

    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    card_tmp = path.with_suffix(".json.tmp")
    card_tmp.write_text(json.dumps(card, indent=1) + "\n")
    card_tmp.replace(path.with_suffix(".json"))


def main(argv: list[str] | None = None) -> int:
    import torch

    from photod.models.edit_preference import DEFAULT_HEAD_FILE, WEIGHTS_DIR, head_state
    from photod.training.edit_pairs import build_cache

    parser = argparse.ArgumentParser(prog="python -m photod.training.train_edit_head")
    parser.add_argument("--base", default="photod-aesthetic-v3.safetensors")
    parser.add_argument("--cache", type=Path, default=Path(".cache/edit-pairs"))
    parser.add_argument("--bench-root", type=Path, default=Path(".cache/photod-bench/root"))
    parser.add_argument("--para", type=int, default=120, help="PARA photos (groups)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=400)
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD_FILE)
    parser.add_argument(
        "--cached-only", action="store_true", help="train on the finished shards only"
    )
    args = parser.parse_args(argv)

    base = WEIGHTS_DIR / args.base if not Path(args.base).is_absolute() else Path(args.base)
    started = time.time()
    from photod.training.edit_pairs import load_cache

    data = (
        load_cache(args.cache / base.stem)
        if args.cached_only
        else build_cache(
            args.cache / base.stem,
            n_para=args.para,
            real_repeats=2,
            base_weights=base,
            bench_root=args.bench_root,
            shard_groups=8,
        )
    )
    held = data["held_out"]
    fit = ~held
    pairs_fit = make_pairs(data["group"][fit], data["kind"][fit], data["defect"][fit])
    pairs_val = make_pairs(data["group"][held], data["kind"][held], data["defect"][held])
    head = train_head(data["features"][fit], pairs_fit[:2], args.hidden, args.epochs)
    with torch.inference_mode():
        val_scores = head(torch.from_numpy(data["features"][held])).numpy()
        fit_scores = head(torch.from_numpy(data["features"][fit])).numpy()
    accuracy = pair_accuracy(val_scores, *pairs_val)
    card = {
        "name": args.out.stem,
        "version": args.out.stem,
        "head": "edit_preference",
        "base": base.stem,
        "base_weights": base.name,
        "architecture": f"MLP {data['features'].shape[1]}-{args.hidden}-1 over the MLSP features "
        f"of {base.stem}'s backbone (folded, plain torch), inputs at their own aspect ratio",
        "data": {
            "groups_fit": int(len(set(data["group"][fit]))),
            "groups_held_out": int(len(set(data["group"][held]))),
            "variants_fit": int(fit.sum()),
            "variants_held_out": int(held.sum()),
            "pairs_fit": int(len(pairs_fit[0])),
            "pairs_held_out": int(len(pairs_val[0])),
            "sources": "good PARA photos of v3's training sessions (aesthetic mean above the "
            "median), split again by session; real photos training/edit_pairs.py REAL_TRAIN "
            "(never the benchmark's files)",
        },
        "licence": "trained on PARA: research and learning use only, no commercial use; cite "
        "Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
        "training": {
            "loss": "RankNet logistic pairwise, inside groups only",
            "hidden": args.hidden,
            "epochs": args.epochs,
            "optimiser": "AdamW full batch, lr 3e-3, weight decay 1e-3",
            "recipe": f"python -m photod.training.train_edit_head --base {base.name}",
        },
        "pair_accuracy_held_out": accuracy,
        "pair_accuracy_fit": pair_accuracy(fit_scores, *pairs_fit)["all"],
        "seconds": round(time.time() - started, 1),
    }
    held_idx = np.flatnonzero(held)
    curve = margin_curve(
        val_scores, data["group"][held_idx], data["kind"][held_idx], data["defect"][held_idx]
    )
    chosen = choose_margin(curve)
    card["margin"] = {
        "chosen": chosen,
        "rule": "smallest margin leaving >= 85 % of held-out clean photos alone",
        "step": {"pixel": 0.0, "geometry": 0.0},
        "curve_held_out": curve,
    }
    write_head(args.out, head_state(head), card)
    print(json.dumps(accuracy, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
