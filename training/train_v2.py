"""Train photod-aesthetic-v2 as shipped: a pair-aware MLSP head ensemble on frozen Lite0 features.

    python -m photod.training.train_v2    # the shipped run: v1's head + 6 epochs with the pair loss

Why this recipe and not `finetune.py` (which fine-tunes stages 5-6 and is the better recipe on a
machine with time to spare, e.g. a GPU): on the shared 2-core CPU the shipped model was trained on,
the trunk cache that fine-tuning needs (12,000 forward passes) did not fit into the time available.
v2 therefore keeps v1's frozen ImageNet backbone and changes what the head learns:

- start from v1's head (MSE on PARA's means) and keep that MSE term, optionally with an in-batch
  ranking term (`--rank-weight`, a logistic loss on pairs of photos whose means differ by more
  than 0.25; off in the shipped run);
- a margin ranking loss on synthetic preference pairs: a good training photo must beat its own
  blurred, noisy, under/over-exposed, colour-cast, flattened, JPEG-damaged, tilted, badly cropped
  or margined version by `--margin` (training/degrade.py, random strengths); this is what makes the
  score usable as the objective of `photod suggest`;
- `--heads` MLPs from different seeds, averaged. An average of MLPs on the same input is itself one
  MLP (hidden layers side by side, output weights divided by the count), so the ensemble ships in
  the ordinary head format that `models/aesthetic.py` loads.

Features: the cached frozen MLSP features of every PARA image (`features.cached_features`) and,
for the degraded images, the cached trunk of `pairs.cached_pairs` run through the frozen stages 5-6.
Validation: the held-out sessions (never trained on), and degraded good validation photos at the
fixed evaluation strengths.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
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
HISTORY = REPO / ".cache" / "checkpoints" / "v2-head" / "history.json"


def frozen_pair_features(pairs: dict[str, np.ndarray], cache: Path) -> np.ndarray:
    """Frozen ImageNet MLSP features of the degraded images of `pairs` (cached by base names)."""
    from photod.training.report import frozen_features

    names = pairs["base_names"]
    done = np.zeros((0, 2848), np.float32)
    if cache.exists():
        data = np.load(cache)
        n = len(data["base_names"])
        if n <= len(names) and (data["base_names"] == names[:n]).all():
            done = data["features"]  # a prefix of the pair plan: extend it with the new shards
    rest = frozen_features(pairs["maps"][len(done) :], pairs["stats"][len(done) :])
    features = np.concatenate([done, rest]) if len(rest) else done
    np.savez(cache, base_names=names, features=features)
    return features


def ensemble_head(heads: list[Any]):
    """One AestheticHead equal to the mean of `heads` (same standardisation buffers)."""
    import torch

    from photod.models.aesthetic import AestheticHead

    first = heads[0]
    hidden = sum(h.mlp[0].out_features for h in heads)
    merged = AestheticHead(in_dim=first.mlp[0].in_features, hidden=hidden)
    with torch.no_grad():
        merged.feature_mean.copy_(first.feature_mean)
        merged.feature_std.copy_(first.feature_std)
        merged.mlp[0].weight.copy_(torch.cat([h.mlp[0].weight for h in heads]))
        merged.mlp[0].bias.copy_(torch.cat([h.mlp[0].bias for h in heads]))
        merged.mlp[3].weight.copy_(torch.cat([h.mlp[3].weight for h in heads], dim=1) / len(heads))
        merged.mlp[3].bias.copy_(torch.stack([h.mlp[3].bias for h in heads]).mean(0))
    return merged.eval()


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    x_orig: np.ndarray,
    x_deg: np.ndarray,
    epochs: int,
    seed: int,
    margin: float,
    pair_weight: float,
    rank_weight: float,
    evaluate: Any = None,
    hidden: int = 512,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    batch: int = 128,
    init: Any = None,
):
    """One head: AdamW, cosine schedule, MSE + in-batch ranking + synthetic-pair margin loss."""
    import torch
    from tqdm import tqdm

    from photod.models.aesthetic import AestheticHead

    torch.manual_seed(seed)
    if init is not None:
        # Warm start: keep the start head's standardisation and weights, then add the pair loss.
        import copy

        head = copy.deepcopy(init).float()
    else:
        head = AestheticHead(in_dim=x.shape[1], hidden=hidden)
        head.feature_mean.copy_(torch.from_numpy(x.mean(0)))
        head.feature_std.copy_(torch.from_numpy(x.std(0) + 1e-6))
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    ot, dt = torch.from_numpy(x_orig).float(), torch.from_numpy(x_deg).float()
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    gen = torch.Generator().manual_seed(seed)
    pair_batch = max(1, batch * len(ot) // max(1, len(xt)))
    curve = []
    for epoch in tqdm(range(epochs), desc=f"head seed {seed}", unit="epoch"):
        head.train()
        order = torch.randperm(len(xt), generator=gen)
        sums = np.zeros(3)
        n = 0
        for start in range(0, len(xt), batch):
            idx = order[start : start + batch]
            pred = head(xt[idx])
            mse = torch.nn.functional.mse_loss(pred, yt[idx])
            diff_y = yt[idx][:, None] - yt[idx][None, :]
            diff_p = pred[:, None] - pred[None, :]
            ordered = diff_y > 0.25
            rank = torch.nn.functional.softplus(-diff_p[ordered] * 4).mean() / 4
            pidx = torch.randint(0, len(ot), (pair_batch,), generator=gen)
            gap = head(ot[pidx]) - head(dt[pidx])
            pair = torch.relu(margin - gap).mean()
            loss = mse + rank_weight * rank + pair_weight * pair
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            sums += [float(mse.detach()), float(rank.detach()), float(pair.detach())]
            n += 1
        schedule.step()
        row = {"epoch": epoch + 1, "mse": sums[0] / n, "rank": sums[1] / n, "pair": sums[2] / n}
        if evaluate is not None and ((epoch + 1) % 5 == 0 or epoch + 1 == epochs):
            row.update(evaluate(head.eval()))
        curve.append(row)
    return head.eval(), curve


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    from photod.stars import thresholds_from_scores
    from photod.training.evaluate import pair_accuracy
    from photod.training.features import cached_features
    from photod.training.metrics import regression_report
    from photod.training.pairs import cached_pairs
    from photod.training.report import VAL_PAIR_PHOTOS, val_pair_features

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--heads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--margin", type=float, default=0.25)
    p.add_argument("--pair-weight", type=float, default=1.0)
    p.add_argument("--rank-weight", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pair-photos", type=int, default=600)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument(
        "--init",
        default="photod-aesthetic-v1",
        help="start every head from this model's head ('' for a fresh head)",
    )
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--cached-only", action="store_true", help="use the finished pair shards only")
    args = p.parse_args(argv)
    torch.set_flush_denormal(True)

    samples = para_dataset(split="all")
    paths = [s.path for s in samples]
    y = np.array([s.target for s in samples], np.float32)
    is_val = np.array([session_split(s.group) == "val" for s in samples])
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    features, _ = cached_features(paths, CACHE / "para-imagenet.npz")
    row_of = {s.path.name: i for i, s in enumerate(samples)}
    pairs = cached_pairs(
        [samples[i] for i in tr],
        CACHE / "para-pairs-trunk5",
        n_photos=args.pair_photos,
        compute=not args.cached_only,
    )
    x_deg = frozen_pair_features(pairs, CACHE / "para-pairs-frozen.npz")
    x_orig = features[[row_of[n] for n in pairs["base_names"]]]
    log.info("%d train, %d val, %d pairs", len(tr), len(va), len(x_deg))

    val_orig, val_deg, labels, origin = val_pair_features(features, samples, va)

    def evaluate(head) -> dict[str, float]:
        with torch.inference_mode():
            pred = head(torch.from_numpy(features[va])).numpy()
            po = head(torch.from_numpy(val_orig)).numpy()
            pd = head(torch.from_numpy(val_deg)).numpy()
            tp = head(torch.from_numpy(features[tr[:3000]])).numpy()
        report = regression_report(pred, y[va])
        pairs_acc = pair_accuracy(po, pd, labels, origin)
        return {
            "srcc": report["srcc"],
            "top_bottom_accuracy": report["top_bottom_accuracy"],
            "train_srcc": regression_report(tp, y[tr[:3000]])["srcc"],
            "val_pair_accuracy": pairs_acc["all"],
        }

    start_head = None
    if args.init:
        from photod.models.aesthetic import AestheticNet, load_weights
        from photod.models.registry import get_model_spec

        start = AestheticNet(backbone=torch.nn.Identity())
        load_weights(start, get_model_spec(args.init).weights)
        start_head = start.head
        log.info("start point %s: %s", args.init, evaluate(start_head.eval()))
    started = time.time()
    heads, curves = [], []
    for k in range(args.heads):
        head, curve = train_head(
            features[tr],
            y[tr],
            x_orig,
            x_deg,
            args.epochs,
            args.seed + k,
            args.margin,
            args.pair_weight,
            args.rank_weight,
            evaluate=evaluate if k == 0 else None,
            lr=args.lr,
            init=start_head,
        )
        heads.append(head)
        curves.append(curve)
    head = ensemble_head(heads)
    with torch.inference_mode():
        pred = head(torch.from_numpy(features[va])).numpy()
        pairs_val = pair_accuracy(
            head(torch.from_numpy(val_orig)).numpy(),
            head(torch.from_numpy(val_deg)).numpy(),
            labels,
            origin,
        )
    report = regression_report(pred, y[va])
    log.info("ensemble of %d: %s; pairs %s", args.heads, report, pairs_val)

    state = {}
    for key, value in head.state_dict().items():
        keep32 = key.startswith("feature_") or value.dim() < 2
        state[f"head.{key}"] = (value if keep32 else value.half()).contiguous()
    card = {
        "name": args.out.stem,
        "version": args.out.stem,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "architecture": "EfficientNet-Lite0 (ImageNet, frozen) + MLSP features + MLP head "
        f"(ensemble of {args.heads}, hidden {head.mlp[0].out_features})",
        "data": f"PARA aesthetic_mean (Yang et al., CVPR 2022), session split seed {SPLIT_SEED}: "
        f"{len(tr)} train / {len(va)} val images; {len(x_deg)} synthetic preference pairs from "
        f"{args.pair_photos} good train photos",
        "licence": "trained on PARA: research and learning use only, no commercial use; "
        "cite Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
        "training": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "metrics": {k: round(v, 4) for k, v in report.items() if isinstance(v, float)},
        "pair_accuracy": {k: round(v, 4) for k, v in pairs_val.items()},
        "pair_photos": VAL_PAIR_PHOTOS,
        "star_thresholds": list(thresholds_from_scores(pred)),
        "train_seconds": round(time.time() - started, 1),
    }
    write_model(args.out, state, card)
    HISTORY.parent.mkdir(parents=True, exist_ok=True)
    HISTORY.write_text(json.dumps({"curves": curves}, indent=1))
    return {**report, "pairs": pairs_val}


if __name__ == "__main__":
    main()
