"""photod-aesthetic-v2 as shipped: a pair-constrained ridge head on frozen Lite0 MLSP features.

    python -m photod.training.train_linear

The report (training/reports) showed the MLP heads overfit PARA's training sessions (train SRCC
0.99, validation 0.77) while ridge regression on the same standardised features reaches 0.81. This
recipe keeps ridge's closed form and adds the synthetic preference pairs as extra least-squares
rows: for every (original, degraded) training pair, (z_orig - z_degraded) . w = `--margin`, with
weight `--pair-weight`. Ridge strength and pair weight are chosen on an inner split of the
training sessions (never on the validation split).

A linear score fits the ordinary head format exactly: one hidden unit whose bias keeps GELU in its
identity range (GELU(h) = h * Phi(h), and Phi(h) > 1 - 1e-12 for h > 7), output weight 1 and the
bias subtracted again; `models/aesthetic.py` loads it like any head.
"""

from __future__ import annotations

import argparse
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from photod.training.datasets import SPLIT_SEED, para_dataset, session_split
from photod.training.export import write_model

log = logging.getLogger("photod")

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "features"
DEFAULT_OUT = REPO / "models" / "weights" / "photod-aesthetic-v2.safetensors"
INNER_SEED = 7


def solve(z: np.ndarray, y: np.ndarray, dz: np.ndarray, margin: float, alpha: float, lam: float):
    """argmin |z w + b - y|^2 + lam |dz w - margin|^2 + alpha |w|^2 (b unpenalised, z centred)."""
    b = float(y.mean())
    yc = y - b
    a = z.T @ z + lam * dz.T @ dz + alpha * np.eye(z.shape[1])
    rhs = z.T @ yc + lam * dz.T @ np.full(len(dz), margin)
    return np.linalg.solve(a, rhs), b


def linear_head(mean: np.ndarray, std: np.ndarray, w: np.ndarray, b: float, lift: float):
    """An AestheticHead (hidden 1) computing exactly ((x - mean) / std) . w + b."""
    import torch

    from photod.models.aesthetic import AestheticHead

    head = AestheticHead(in_dim=len(w), hidden=1)
    with torch.no_grad():
        head.feature_mean.copy_(torch.from_numpy(mean))
        head.feature_std.copy_(torch.from_numpy(std))
        head.mlp[0].weight.copy_(torch.from_numpy(w[None, :]).float())
        head.mlp[0].bias.fill_(lift)
        head.mlp[3].weight.fill_(1.0)
        head.mlp[3].bias.fill_(b - lift)
    return head.eval()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from photod.stars import thresholds_from_scores
    from photod.training.evaluate import pair_accuracy
    from photod.training.features import cached_features
    from photod.training.metrics import regression_report, srcc
    from photod.training.pairs import cached_pairs
    from photod.training.report import val_pair_features
    from photod.training.train_v2 import frozen_pair_features

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--margin", type=float, default=0.5)
    p.add_argument("--pair-photos", type=int, default=600)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = p.parse_args(argv)

    samples = para_dataset(split="all")
    y = np.array([s.target for s in samples], np.float64)
    is_val = np.array([session_split(s.group) == "val" for s in samples])
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    features, _ = cached_features([s.path for s in samples], CACHE / "para-imagenet.npz")
    features = features.astype(np.float64)
    row_of = {s.path.name: i for i, s in enumerate(samples)}
    pairs = cached_pairs(
        [samples[i] for i in tr], CACHE / "para-pairs-trunk5", n_photos=args.pair_photos
    )
    x_deg = frozen_pair_features(pairs, CACHE / "para-pairs-frozen.npz").astype(np.float64)
    base = np.array([row_of[n] for n in pairs["base_names"]])
    mean, std = features[tr].mean(0), features[tr].std(0) + 1e-6

    def z(rows: np.ndarray) -> np.ndarray:
        return (rows - mean) / std

    dz = z(features[base]) - z(x_deg)
    # Inner split of the training sessions for choosing alpha and the pair weight.
    inner = np.array([session_split(samples[i].group, INNER_SEED) == "val" for i in tr])
    fit_rows, check_rows = tr[~inner], tr[inner]
    pair_fit = np.isin(base, fit_rows)
    grid = []
    for alpha in (1e3, 3e3, 1e4):
        for lam in (0.0, 0.3, 1.0):
            w, b = solve(z(features[fit_rows]), y[fit_rows], dz[pair_fit], args.margin, alpha, lam)
            pred = z(features[check_rows]) @ w + b
            pair_acc = float(np.mean(dz[~pair_fit] @ w > 0)) if (~pair_fit).any() else 1.0
            grid.append((alpha, lam, srcc(pred, y[check_rows]), pair_acc))
            log.info("alpha %g pair weight %g: inner SRCC %.4f, pair acc %.4f", *grid[-1])
    # Best inner SRCC among settings that win at least 94 % of the held-out training pairs.
    ok = [g for g in grid if g[3] >= 0.94] or grid
    alpha, lam, _, _ = max(ok, key=lambda g: g[2])
    w, b = solve(z(features[tr]), y[tr], dz, args.margin, alpha, lam)
    lift = float(np.abs(z(features[tr]) @ w).max() * 2 + 10)
    head = linear_head(mean.astype(np.float32), std.astype(np.float32), w, b, lift)

    val_orig, val_deg, labels, origin = val_pair_features(features.astype(np.float32), samples, va)
    with torch.inference_mode():
        pred = head(torch.from_numpy(features[va]).float()).numpy()
        po = head(torch.from_numpy(val_orig).float()).numpy()
        pd = head(torch.from_numpy(val_deg).float()).numpy()
    exact = z(features[va]) @ w + b
    assert np.abs(pred - exact).max() < 1e-3, "the head must reproduce the linear score"
    report = regression_report(pred, y[va])
    pairs_val = pair_accuracy(po, pd, labels, origin)
    log.info("alpha %g, pair weight %g: %s; pairs %s", alpha, lam, report, pairs_val)

    state = {f"head.{k}": v.contiguous() for k, v in head.state_dict().items()}
    card = {
        "name": args.out.stem,
        "version": args.out.stem,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "architecture": "EfficientNet-Lite0 (ImageNet, frozen) + MLSP features + linear head "
        "(ridge with synthetic-pair rows), stored as a 1-unit MLP head",
        "data": f"PARA aesthetic_mean (Yang et al., CVPR 2022), session split seed {SPLIT_SEED}: "
        f"{len(tr)} train / {len(va)} val images; {len(dz)} synthetic preference pairs from "
        f"{args.pair_photos} good train photos",
        "licence": "trained on PARA: research and learning use only, no commercial use; "
        "cite Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
        "training": {
            "recipe": "python -m photod.training.train_linear",
            "alpha": alpha,
            "pair_weight": lam,
            "margin": args.margin,
            "selection": f"inner session split of train (seed {INNER_SEED})",
            "grid": [list(g) for g in grid],
        },
        "metrics": {k: round(v, 4) for k, v in report.items() if isinstance(v, float)},
        "pair_accuracy": {str(k): round(v, 4) for k, v in pairs_val.items()},
        "star_thresholds": list(thresholds_from_scores(pred)),
    }
    write_model(args.out, state, card)
    return {**report, "pairs": pairs_val}


if __name__ == "__main__":
    main()
