"""Train the first shipped head (photod-aesthetic-v1) on frozen-backbone MLSP features of PARA.

One command reproduces the shipped weights and card:

    python -m photod.training.train_head

Features of all PARA images are extracted once with the ImageNet backbone and cached
(`.cache/features/para-imagenet.npz`); the MLP trains on the session-split train part in seconds
and is measured on the held-out validation sessions, which are never trained on.
"""

from __future__ import annotations

import argparse
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from photod.training.datasets import SPLIT_SEED, para_dataset, session_split
from photod.training.export import write_model
from photod.training.features import cached_features
from photod.training.metrics import regression_report

log = logging.getLogger("photod")

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".cache" / "features" / "para-imagenet.npz"
DEFAULT_OUT = REPO / "models" / "weights" / "photod-aesthetic-v1.safetensors"


def train_mlp_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    hidden: int = 512,
    epochs: int = 60,
    lr: float = 1e-3,
    weight_decay: float = 1e-2,
    seed: int = 0,
):
    """An AestheticHead fitted with AdamW on MSE; feature standardisation stored in its buffers."""
    import torch

    from photod.models.aesthetic import AestheticHead

    torch.manual_seed(seed)
    head = AestheticHead(in_dim=x_train.shape[1], hidden=hidden)
    mean = x_train.mean(0)
    std = x_train.std(0) + 1e-6
    head.feature_mean.copy_(torch.from_numpy(mean))
    head.feature_std.copy_(torch.from_numpy(std))
    x = torch.from_numpy(x_train).float()
    y = torch.from_numpy(y_train).float()
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    generator = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=generator)
        for start in range(0, len(x), 128):
            idx = order[start : start + 128]
            loss = torch.nn.functional.mse_loss(head(x[idx]), y[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
    return head.eval()


def main(argv: list[str] | None = None) -> dict:

    from photod.stars import thresholds_from_scores

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    samples = para_dataset(split="all")
    features, _ = cached_features([s.path for s in samples], args.cache)
    targets = np.array([s.target for s in samples], np.float32)
    is_val = np.array([session_split(s.group) == "val" for s in samples])
    head = train_mlp_head(features[~is_val], targets[~is_val], epochs=args.epochs, seed=args.seed)

    import torch

    with torch.inference_mode():
        pred = head(torch.from_numpy(features[is_val]).float()).numpy()
    report = regression_report(pred, targets[is_val])
    print(json.dumps(report, indent=2))
    state = {f"head.{k}": v.contiguous() for k, v in head.state_dict().items()}
    card = {
        "name": args.out.stem,
        "version": args.out.stem,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "data": f"PARA aesthetic_mean, session split seed {SPLIT_SEED}: "
        f"{int((~is_val).sum())} train / {int(is_val.sum())} val images",
        "metrics": {k: round(v, 4) for k, v in report.items() if isinstance(v, float)},
        "star_thresholds": list(thresholds_from_scores(pred)),
    }
    write_model(args.out, state, card)
    return report


if __name__ == "__main__":
    main()
