"""Train the edit-preference head on cached search lists (training/edit_pairs.py).

Pairs come only from inside one list (the versions of ONE photo that one search step ranks):
an item beats another when its residual (distance from the good photo: EV left, colour cast
left, 1 - IoU with the true frame, tone or tilt defect) is smaller by at least the kind's gap
(`GAPS`). The loss is RankNet's logistic pairwise loss on the score difference over a
temperature; the head is the multi-head file's MLP head (standardised MLSP features -> hidden
units, GELU -> one score), trained from scratch with AdamW on mini-batches of pairs, with the
epoch kept that ranks the held-out lists best. The features were computed once per item, so
swapping the backbone is one re-run:

    python -m photod.training.train_edit_head --base photod-aesthetic-v4.safetensors

(`--base` names the model file whose `backbone.*` tensors produce the features and which
stores the head; features are cached under .cache/edit-lists/<base stem>/.) The card records
pair accuracy per list kind on the held-out photos (other PARA sessions, other files) and the
margin curve the "suggest nothing" margin is chosen from.
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

# The smallest residual difference that makes a pair, per list kind (EV, cast, 1 - IoU, amount).
GAPS = {
    "exposure": 0.15,
    "ladder": 0.15,
    "grid": 0.05,
    "colour": 0.03,
    "crop": 0.05,
    "margin": 0.05,
    "contrast": 0.1,
    "saturation": 0.1,
    "tilt": 0.1,
}
# The defects the search must fix (the benchmark's ranges, on the list's starting residual).
FIX_RANGE = {
    "exposure_under": (0.5, 1.6),
    "exposure_over": (0.5, 1.6),
    "ladder_under": (0.5, 1.6),
    "ladder_over": (0.5, 1.6),
    "grid_margin": (0.15, 1.0),
    "colour_cast": (0.12, 1.0),
    "margin_flat": (0.15, 1.0),
    "margin_foreign": (0.15, 1.0),
}
# Edits of an untouched photo that are only a nudge (the benchmark's rule): crops keeping >= 80 %.
NUDGE = {"crop_clean": 0.2, "grid_clean": 0.2}


def gap_for(kind: str) -> float:
    return GAPS[kind.split("_")[0]]


def list_indices(group: np.ndarray) -> list[np.ndarray]:
    """The row indices of each list (rows sharing a `group` id), in row order within a list."""
    order = np.argsort(group, kind="stable")
    bounds = np.flatnonzero(np.r_[True, group[order][1:] != group[order][:-1], True])
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def make_pairs(group: np.ndarray, kind: np.ndarray, residual: np.ndarray):
    """(better, worse, kind) index arrays of the ranking pairs inside each list."""
    better, worse, kinds = [], [], []
    for idx in list_indices(group):
        gap = gap_for(str(kind[idx[0]]))
        diff = residual[idx][None, :] - residual[idx][:, None]  # [i, j] = r_j - r_i
        i, j = np.nonzero(diff >= gap)
        better.append(idx[i])
        worse.append(idx[j])
        kinds.append(np.full(len(i), kind[idx[0]]))
    return np.concatenate(better), np.concatenate(worse), np.concatenate(kinds)


# The MLSP statistics (per-stage mean and std, 2 x 784 values) come first in the features; the
# pooled 1,280 head features after them mostly say what the photo shows, and a head reading
# them learnt the training photos' content (held-out pair accuracy 0.848 with them, 0.855
# without, 400 photos): the head reads the statistics only (the others get zero weights).
STATS_DIM = 1568


def train_head(
    features: np.ndarray,
    pairs: tuple[np.ndarray, np.ndarray],
    validation: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
    pair_weights: np.ndarray | None = None,
    columns: int = 1568,
    hidden: int = 128,
    dropout: float = 0.2,
    input_dropout: float = 0.2,
    temperature: float = 0.3,
    epochs: int = 8,
    lr: float = 3e-4,
    weight_decay: float = 1e-2,
    batch: int = 2048,
    seed: int = 0,
) -> tuple[Any, list[dict[str, float]]]:
    """An MLP head over the MLSP statistics fitted on the ranking pairs; (head, history).

    `pair_weights` weigh each pair's loss (real photos count more than PARA's squashed ones);
    `columns`: how many leading feature columns the head reads (STATS_DIM: the statistics).
    Dropout on the standardised inputs and on the hidden units; AdamW at a constant rate. With
    `validation` (features, better, worse) the epoch whose held-out pair accuracy is best is
    kept (the fit overtakes the held-out accuracy within a few epochs). The head is returned in
    the multi-head file's layout over all 2,848 features, zero weights on the pooled ones.
    """
    import torch
    import torch.nn.functional as F

    from photod.models.edit_preference import new_head

    torch.manual_seed(seed)
    full = torch.from_numpy(features.astype(np.float32))
    x = full[:, :columns]
    mean, std = x.mean(0), x.std(0).clamp_min(1e-4)
    z = (x - mean) / std
    from photod.models.aesthetic import AestheticHead

    mlp = AestheticHead(columns, hidden, dropout=dropout).mlp
    better, worse = (torch.from_numpy(p.astype(np.int64)) for p in pairs)
    weight = (
        torch.ones(len(better))
        if pair_weights is None
        else torch.from_numpy(pair_weights.astype(np.float32))
    )
    optimiser = torch.optim.AdamW(mlp.parameters(), lr=lr, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed)
    val_z = None
    if validation is not None:
        val_z = (torch.from_numpy(validation[0][:, :columns].astype(np.float32)) - mean) / std

    def scores(inputs: Any) -> Any:
        if mlp.training:
            inputs = F.dropout(inputs, input_dropout)
        return mlp(inputs).squeeze(1)

    history, best_state, best_accuracy = [], None, -1.0
    for epoch in range(epochs):
        mlp.train()
        order = torch.randperm(len(better), generator=generator)
        for start in range(0, len(order) - batch + 1, batch):
            sel = order[start : start + batch]
            margin = scores(z[better[sel]]) - scores(z[worse[sel]])
            w = weight[sel]
            loss = (F.softplus(-margin / temperature) * w).sum() / w.sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        mlp.eval()
        row = {"epoch": epoch + 1, "loss": round(float(loss.detach()), 4)}
        if val_z is not None:
            with torch.inference_mode():
                held = scores(val_z).numpy()
            row["held_out"] = round(float((held[validation[1]] > held[validation[2]]).mean()), 4)
            if row["held_out"] > best_accuracy:
                best_accuracy = row["held_out"]
                best_state = {k: v.clone() for k, v in mlp.state_dict().items()}
        history.append(row)
        log.info("edit head epoch %s", row)
    if best_state is not None:
        mlp.load_state_dict(best_state)
    head = new_head(full.shape[1], hidden)
    with torch.no_grad():
        head.feature_mean.zero_()
        head.feature_std.fill_(1.0)
        head.feature_mean[:columns] = mean
        head.feature_std[:columns] = std
        head.mlp[0].weight.zero_()
        head.mlp[0].weight[:, :columns] = mlp[0].weight
        head.mlp[0].bias.copy_(mlp[0].bias)
        head.mlp[3].load_state_dict(mlp[3].state_dict())
    return head.eval(), history


def pair_accuracy(scores: np.ndarray, better, worse, kinds) -> dict[str, float]:
    right = scores[better] > scores[worse]
    out = {str(k): round(float(right[kinds == k].mean()), 4) for k in sorted(set(kinds))}
    out["all"] = round(float(right.mean()), 4)
    return out


def list_outcomes(scores: np.ndarray, data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per list: the best edit's gain over the starting image and how much of the defect it left.

    Returns {"fixed": [(kind, gain, fixed?)] for lists with a defect in FIX_RANGE,
    "clean": {photo: the largest gain of its clean lists' best edits, nudges ignored}}.
    """
    fixed: list[tuple[str, float, bool]] = []
    clean: dict[str, float] = {}
    for idx in list_indices(data["group"]):
        base = idx[data["base"][idx]][0]
        kind = str(data["kind"][base])
        edits = idx[~data["base"][idx]]
        if kind in NUDGE:
            edits = edits[data["residual"][edits] > NUDGE[kind]]
        if not len(edits):
            continue
        best = edits[int(np.argmax(scores[edits]))]
        gain = float(scores[best] - scores[base])
        start = float(data["residual"][base])
        lo, hi = FIX_RANGE.get(kind, (np.inf, np.inf))
        if lo <= start <= hi:
            fixed.append((kind, gain, bool(data["residual"][best] <= 0.5 * start)))
        elif start == 0.0:
            photo = str(data["photo"][base])
            clean[photo] = max(clean.get(photo, -np.inf), gain)
    return {"fixed": fixed, "clean": clean}


def margin_curve(scores: np.ndarray, data: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Held-out trade-off of the "suggest nothing" margin, from cached lists (no new passes).

    The margin is a step margin (the card's "step" and "chosen"): a search step moves only when
    its best edit gains at least m. At margin m a defect counts as fixed when its list's best
    edit leaves at most half of it and gains >= m; a clean photo is left alone when none of its
    steps' best edits gains m.
    """
    outcomes = list_outcomes(scores, data)
    gains = np.array([g for _, g, _ in outcomes["fixed"]])
    right = np.array([r for _, _, r in outcomes["fixed"]])
    clean = np.array(list(outcomes["clean"].values()))
    top = float(np.quantile(clean, 0.99)) if len(clean) else 1.0
    curve = []
    for m in np.round(np.linspace(0.0, max(top, 0.05), 41), 3):
        curve.append(
            {
                "margin": float(m),
                "fixed": round(float(((gains >= m) & right).mean()), 3),
                "left_alone": round(float((clean < m).mean()), 3),
            }
        )
    return curve


def choose_margin(curve: list[dict[str, float]], left_alone: float = 0.85) -> float:
    """The smallest margin that leaves at least `left_alone` of the clean photos alone."""
    for point in curve:
        if point["left_alone"] >= left_alone:
            return point["margin"]
    return curve[-1]["margin"]


def main(argv: list[str] | None = None) -> int:
    from photod.models.aesthetic import add_head
    from photod.models.edit_preference import HEAD_NAME, WEIGHTS_DIR
    from photod.training.edit_pairs import build_cache, load_cache

    parser = argparse.ArgumentParser(prog="python -m photod.training.train_edit_head")
    parser.add_argument("--base", default="photod-aesthetic-v4.safetensors")
    parser.add_argument("--cache", type=Path, default=Path(".cache/edit-lists"))
    parser.add_argument("--bench-root", type=Path, default=Path(".cache/photod-bench/root"))
    parser.add_argument("--para", type=int, default=480, help="PARA photos")
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--weight-decay", type=float, default=1e-2)
    parser.add_argument(
        "--real-weight", type=float, default=4.0, help="weight of real photos' pairs"
    )
    parser.add_argument(
        "--all-features", action="store_true", help="read the pooled features too (not only stats)"
    )
    parser.add_argument("--left-alone", type=float, default=0.85, help="margin rule")
    parser.add_argument("--cached-only", action="store_true", help="train on finished shards")
    parser.add_argument("--dry-run", action="store_true", help="print, do not write the head")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    import torch

    torch.set_num_threads(2)
    base = WEIGHTS_DIR / args.base if not Path(args.base).is_absolute() else Path(args.base)
    started = time.time()
    folder = args.cache / base.stem
    if args.cached_only:
        data = load_cache(folder)
    else:
        data = build_cache(folder, n_para=args.para, base_weights=base, bench_root=args.bench_root)
    held = data["held_out"]
    fit_data = {k: v[~held] for k, v in data.items()}
    val_data = {k: v[held] for k, v in data.items()}
    pairs_fit = make_pairs(fit_data["group"], fit_data["kind"], fit_data["residual"])
    pairs_val = make_pairs(val_data["group"], val_data["kind"], val_data["residual"])
    real = np.array([not str(p).startswith("para:") for p in fit_data["photo"]])
    weights = np.where(real[pairs_fit[0]], args.real_weight, 1.0)
    head, history = train_head(
        fit_data["features"],
        pairs_fit[:2],
        validation=(val_data["features"], pairs_val[0], pairs_val[1]),
        pair_weights=weights,
        columns=fit_data["features"].shape[1] if args.all_features else STATS_DIM,
        hidden=args.hidden,
        temperature=args.temperature,
        epochs=args.epochs,
        weight_decay=args.weight_decay,
    )
    with torch.inference_mode():
        val_scores = head(torch.from_numpy(val_data["features"])).numpy()
        fit_scores = head(torch.from_numpy(fit_data["features"])).numpy()
    accuracy = pair_accuracy(val_scores, *pairs_val)
    real_held = np.array([not str(p).startswith("para:") for p in val_data["photo"]])
    accuracy_real = pair_accuracy(val_scores, *[p[real_held[pairs_val[0]]] for p in pairs_val])
    curve = margin_curve(val_scores, val_data)
    chosen = choose_margin(curve, args.left_alone)
    at_chosen = next(p for p in curve if p["margin"] == chosen)
    card = {
        "version": f"{base.stem}+{HEAD_NAME}",
        "base": base.stem,
        "architecture": f"MLP head (hidden {args.hidden}, GELU) over the MLSP statistics "
        f"(per-stage mean/std; zero weights on the pooled features) of {base.stem}'s backbone, "
        "inputs at their own aspect ratio (shape buckets)",
        "data": {
            "photos_fit": int(len(set(fit_data["photo"]))),
            "photos_held_out": int(len(set(val_data["photo"]))),
            "lists_fit": int(len(set(fit_data["group"]))),
            "lists_held_out": int(len(set(val_data["group"]))),
            "images_fit": int(len(fit_data["group"])),
            "images_held_out": int(len(val_data["group"])),
            "pairs_fit": int(len(pairs_fit[0])),
            "pairs_held_out": int(len(pairs_val[0])),
            "sources": "good PARA photos of the training sessions (aesthetic mean above the "
            "median), split again by session; real photos training/edit_pairs.py REAL_TRAIN "
            "(never the benchmark's files); lists made by training/edit_pairs.search_lists",
        },
        "licence": "trained on PARA: research and learning use only, no commercial use; cite "
        "Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
        "training": {
            "loss": f"RankNet logistic pairwise inside lists only, temperature {args.temperature}"
            f", pairs where the residual differs by at least {GAPS}",
            "optimiser": f"AdamW lr 3e-4, weight decay {args.weight_decay}, dropout 0.2 on "
            f"inputs and hidden units, batch 2048 pairs, {args.epochs} epochs, best held-out "
            "epoch kept",
            "history": history,
            "recipe": f"python -m photod.training.train_edit_head --base {base.name}",
        },
        "metrics": {"pair_accuracy_held_out": accuracy["all"]},
        "pair_accuracy_held_out": accuracy,
        "pair_accuracy_held_out_real_photos": accuracy_real,
        "pair_accuracy_fit": pair_accuracy(fit_scores, *pairs_fit)["all"],
        "seconds": round(time.time() - started, 1),
        "margin": {
            "chosen": chosen,
            "rule": f"smallest step margin leaving >= {args.left_alone:.0%} of held-out clean "
            "photos alone (no search step's best edit gains it)",
            "at_chosen": at_chosen,
            "step": {"pixel": chosen, "geometry": chosen},
            "curve_held_out": curve,
        },
    }
    summary = {"accuracy": accuracy, "real_photos": accuracy_real, "margin": at_chosen}
    print(json.dumps(summary, indent=1))
    if not args.dry_run:
        # Stored as an extra head of the base model's own file (the multi-head layout).
        add_head(base, HEAD_NAME, head, card)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
