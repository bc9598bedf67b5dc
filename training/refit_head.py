"""Refit the linear rating head of a fine-tuned model on its own features, pairs included.

    python -m photod.training.refit_head [--model models/weights/photod-aesthetic-v4.safetensors]

`finetune_v4` trains the backbone's late stages and a linear MLSP head together by SGD; the
head ends where the cosine schedule leaves it. With the backbone fixed, the head alone is a
convex problem that can be solved to the end on every training photo and every synthetic pair:

    min  mean((x w + b - y)^2) + lam * mean(kind_weight * relu(margin - (x_orig - x_deg) w)^2)
         + alpha * |w|^2

(x: the model's standardised MLSP features of the training photos, y: PARA means on the 1-5
scale, the pairs: the cached degraded copies of good training photos). L-BFGS, full batch.
`alpha` and `lam` are chosen on an inner split of the training sessions (never the validation
split): the highest inner SRCC among the settings whose inner pair accuracy is at least
`--pair-target` for every kind, else the setting with the best worst kind. The refit head is
then fitted on all training rows; the validation split measures the old head and the new one,
and the file is rewritten (head, card metrics, star thresholds) only with `--write`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from photod.training.export import write_model

log = logging.getLogger("photod")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_MODEL = REPO / "models" / "weights" / "photod-aesthetic-v4.safetensors"
INNER_SEED = "refit-20261201"
ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1)
LAMS = (0.0, 1.0, 3.0, 10.0)


def tail_features(backbone, maps: np.ndarray, stats: np.ndarray, batch: int = 256) -> np.ndarray:
    """MLSP features [N, 2848] of cached stage-0-3 rows through the model's own later stages."""
    import torch

    from photod.models.aesthetic import tail_forward
    from photod.training.finetune_v4 import STAGES

    out = []
    with torch.inference_mode():
        for i in range(0, len(maps), batch):
            m = torch.from_numpy(maps[i : i + batch]).float()
            s = torch.from_numpy(stats[i : i + batch])
            out.append(tail_forward(backbone, torch.nn.Identity(), m, s, STAGES)[0].numpy())
    return np.concatenate(out).astype(np.float32)


def fit(
    x: np.ndarray,
    y: np.ndarray,
    dx: np.ndarray,
    pair_weight: np.ndarray,
    margin: float,
    alpha: float,
    lam: float,
    w0: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """(w, b) minimising the objective of the module docstring (x already standardised)."""
    import torch

    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    dxt, pw = torch.from_numpy(dx).double(), torch.from_numpy(pair_weight).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    if w0 is not None:
        w.data.copy_(torch.from_numpy(w0))
    b = torch.tensor(float(y.mean()), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=300, tolerance_grad=1e-9, line_search_fn="strong_wolfe"
    )

    def closure():
        optimiser.zero_grad()
        loss = ((xt @ w + b - yt) ** 2).mean() + alpha * (w @ w)
        if lam and len(dxt):
            loss = loss + lam * (pw * torch.relu(margin - dxt @ w) ** 2).mean()
        loss.backward()
        return loss

    optimiser.step(closure)
    return w.detach().numpy(), float(b.detach())


def inner_split(groups: list[str]) -> np.ndarray:
    """True for the training sessions held out to choose alpha and lam (a fifth, by hash)."""
    return np.array(
        [hashlib.sha256(f"{INNER_SEED}:{g}".encode()).digest()[0] < 52 for g in groups], bool
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from photod.models.aesthetic import AestheticNet, LinearHead, load_weights
    from photod.stars import thresholds_from_scores
    from photod.training.evaluate import pair_accuracy
    from photod.training.finetune_v4 import KIND_WEIGHT, load_caches
    from photod.training.finetune_v4 import parser as finetune_parser
    from photod.training.metrics import regression_report, srcc

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    p.add_argument("--margin", type=float, default=0.3, help="on the 1-5 scale")
    p.add_argument("--pair-target", type=float, default=0.95)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--write", action="store_true", help="rewrite the model's head and card")
    # Anything else goes to finetune_v4's parser: where its caches are (--trunk-cache, ...).
    args, cache_argv = p.parse_known_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cache_args = finetune_parser().parse_args(["--cached-only", *cache_argv])
    data = load_caches(cache_args)

    net = AestheticNet(head=LinearHead())
    load_weights(net, args.model)
    net.eval()
    head = net.head
    mean = head.feature_mean.numpy().astype(np.float64)
    std = head.feature_std.numpy().astype(np.float64)
    maps, stats, targets = data["maps"], data["stats"], data["targets"]
    tr, va = data["train_idx"], data["val_idx"]
    log.info("features: %d train, %d val images", len(tr), len(va))
    x_tr = (tail_features(net.backbone, maps[tr], stats[tr]) - mean) / std
    x_va = (tail_features(net.backbone, maps[va], stats[va]) - mean) / std
    pairs, base = data["pairs"], data["pair_base"]
    log.info("features: %d training pairs", len(base))
    x_orig = (tail_features(net.backbone, maps[base], stats[base]) - mean) / std
    x_deg = (tail_features(net.backbone, pairs["maps"], pairs["stats"]) - mean) / std
    dx = x_orig - x_deg
    kinds = np.asarray([str(k) for k in pairs["kinds"]])
    pair_w = np.array([KIND_WEIGHT.get(k, 1.0) for k in kinds])
    rows, vp_maps, vp_stats, labels, origin = data["val_pairs"]
    xv_orig = (tail_features(net.backbone, maps[rows], stats[rows]) - mean) / std
    xv_deg = (tail_features(net.backbone, vp_maps, vp_stats) - mean) / std
    labels, origin = np.asarray([str(k) for k in labels]), np.asarray(origin)

    y_tr = targets[tr].astype(np.float64)
    samples = data["samples"]
    held = inner_split([samples[i].group for i in tr])
    row_of = {int(i): k for k, i in enumerate(tr)}
    pair_held = np.array([held[row_of[int(b)]] for b in base], bool)
    grid = []
    if held.sum() < 10 or pair_held.sum() < 5 or pair_held.all():
        held[:] = pair_held[:] = False  # too few photos to hold any out: fit all, middle setting
    for alpha in ALPHAS if held.any() else ALPHAS[1:2]:
        for lam in LAMS if held.any() else LAMS[1:2]:
            w, b = fit(x_tr[~held], y_tr[~held], dx[~pair_held], pair_w[~pair_held],
                       args.margin, alpha, lam)  # fmt: skip
            check, pair_check = (held, pair_held) if held.any() else (~held, ~pair_held)
            inner = srcc(x_tr[check] @ w + b, y_tr[check])
            # A pair's margin dx . w against 0: the original wins when it is positive.
            n_check = int(pair_check.sum())
            acc = pair_accuracy(
                dx[pair_check] @ w, np.zeros(n_check), kinds[pair_check], np.arange(n_check)
            )
            worst = min(v for k, v in acc.items() if k != "all")
            grid.append({"alpha": alpha, "lam": lam, "inner_srcc": inner, "inner_pairs": acc,
                         "worst_kind": worst})  # fmt: skip
            log.info("alpha %g lam %g: inner SRCC %.4f, worst pair kind %.3f", alpha, lam,
                     inner, worst)  # fmt: skip
    meeting = [g for g in grid if g["worst_kind"] >= args.pair_target]
    best = (
        max(meeting, key=lambda g: g["inner_srcc"])
        if meeting
        else max(grid, key=lambda g: g["worst_kind"])
    )
    w, b = fit(x_tr, y_tr, dx, pair_w, args.margin, best["alpha"], best["lam"])

    def report(pred_va, pred_orig, pred_deg) -> dict[str, Any]:
        out = regression_report(pred_va, targets[va])
        out["val_pairs"] = pair_accuracy(pred_orig, pred_deg, labels, origin)
        return out

    with torch.inference_mode():
        # The exported head already outputs the 1-5 scale (finetune_v4.to_scale).
        def old_head(x: np.ndarray) -> np.ndarray:
            return head.linear(torch.from_numpy(x).float()).squeeze(-1).numpy()

        old = report(old_head(x_va), old_head(xv_orig), old_head(xv_deg))
    new = report(x_va @ w + b, xv_orig @ w + b, xv_deg @ w + b)
    result = {"chosen": best, "grid": grid, "old_head": old, "refit_head": new}
    print(json.dumps({"old": _brief(old), "refit": _brief(new), "chosen": best}, default=float))
    if args.write:
        _write(args.model, mean, std, w, b, new, best, thresholds_from_scores(x_va @ w + b))
    return result


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    keep = ("srcc", "plcc", "top_bottom_accuracy")
    return {**{k: round(report[k], 4) for k in keep}, "pairs": report["val_pairs"]}


def _write(model: Path, mean, std, w, b, metrics, chosen, thresholds) -> None:
    import torch
    from safetensors.torch import load_file

    state = {k: v for k, v in load_file(str(model)).items() if not k.startswith("head.")}
    state["head.feature_mean"] = torch.from_numpy(mean).float()
    state["head.feature_std"] = torch.from_numpy(std).float()
    state["head.linear.weight"] = torch.from_numpy(w[None, :]).half()
    state["head.linear.bias"] = torch.tensor([b], dtype=torch.float32)
    card_path = model.with_suffix(".json")
    card = json.loads(card_path.read_text())
    card["head_refit"] = {
        "recipe": "python -m photod.training.refit_head --write",
        "alpha": chosen["alpha"],
        "pair_weight": chosen["lam"],
        "inner_srcc": round(chosen["inner_srcc"], 4),
        "sgd_head_metrics": card.get("metrics"),
        "sgd_head_pairs": card.get("pair_accuracy"),
    }
    card["metrics"] = {k: round(v, 4) for k, v in metrics.items() if isinstance(v, float)}
    card["pair_accuracy"] = {k: round(v, 4) for k, v in metrics["val_pairs"].items()}
    card["heads"]["rating"] = {
        "kind": "linear",
        "metrics": {**card["metrics"], "pairs": card["pair_accuracy"]},
    }
    card["star_thresholds"] = [round(float(t), 4) for t in thresholds]
    write_model(model, state, card)


if __name__ == "__main__":
    main()
