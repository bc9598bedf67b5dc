"""Train photod-aesthetic-v3: fine-tune EfficientNet-Lite0's late stages with the MLSP head.

    python -m photod.training.finetune [--epochs 3] [--resume] [--device auto]

What is trained, and why so:
- Stages 0-4 of the ImageNet backbone stay frozen; their output map (112x14x14) and their MLSP
  mean/std vectors are cached once for every PARA image (`features.cached_trunk`). Stages 5-6, the
  1x1 head convolution and its BatchNorm are fine-tuned at a lower learning rate than the MLP head,
  as in the paper (which fine-tuned an ImageNet CNN with a smaller rate on the pretrained layers).
  This makes a CPU run take minutes per epoch instead of hours; the same code uses CUDA when present.
- The head starts from photod-aesthetic-v2 (same features, a linear head stored as a one-unit
  MLP), so step 0 is the v2 model. A one-unit head trains without dropout: dropping its only
  unit would zero the score.
- Loss: MSE on PARA's aesthetic mean + a margin ranking loss on synthetic preference pairs (a good
  training photo must beat its own blurred, noisy, mis-exposed, colour-cast, flattened, JPEG-damaged,
  tilted, badly cropped or margined version by `--margin`), see `training/degrade.py`.
- Augmentation: horizontal flips only, applied to the cached map (mean/std statistics are flip
  invariant); no random crops, which would change the composition the label refers to.
- BatchNorm running statistics stay frozen (batches are small and mixed with degraded images).
- Deterministic for a seed: the order and flips of each epoch come from generators seeded by
  (seed, epoch). A checkpoint is written every `--checkpoint-every` steps and at each epoch's end;
  `--resume` continues from the latest one, at the same step, with the same data order.

Validation: the session-split val part of para-train (never trained on); learning curves and the
final metrics land in the checkpoint folder (`history.json`) and in the shipped model card.
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
CACHE_DIR = REPO / ".cache" / "features"
TRUNK_CACHE = CACHE_DIR / "para-trunk5"
PAIR_CACHE = CACHE_DIR / "para-pairs-trunk5"
VAL_PAIR_CACHE = CACHE_DIR / "para-valpairs-trunk5-150.npz"
DEFAULT_OUT = REPO / "models" / "weights" / "photod-aesthetic-v3.safetensors"
DEFAULT_CHECKPOINTS = REPO / ".cache" / "checkpoints" / "v3"


def build_tail(init_model: str = "photod-aesthetic-v2"):
    """(AestheticNet with `init_model`'s weights, True) or (fresh head, False) if they are absent."""
    from photod.models.aesthetic import AestheticNet, load_weights
    from photod.models.registry import get_model_spec

    net = AestheticNet()
    try:
        spec = get_model_spec(init_model)
        if spec.weights is not None and spec.weights.exists():
            load_weights(net, spec.weights)
            log.info("head initialised from %s", init_model)
            return net, True
        log.warning("weights of %s are missing; fresh head", init_model)
    except Exception as exc:  # a missing start point only means a cold start
        log.warning("cannot start from %s (%s); fresh head", init_model, exc)
    return net, False


def standardise_head(net, maps: np.ndarray, stats: np.ndarray) -> None:
    """Set a fresh head's feature mean/std buffers from (up to 2000) training rows."""
    import torch

    from photod.training.features import tail_forward

    with torch.inference_mode():
        m = torch.from_numpy(maps[:2000]).float()
        s = torch.from_numpy(stats[:2000])
        features = tail_forward(net.backbone, torch.nn.Identity(), m, s)[0]
    net.head.feature_mean.copy_(features.mean(0))
    std = features.std(0)
    # Features that hardly vary in the training rows would blow up once standardised.
    net.head.feature_std.copy_(std.clamp_min(float(std.median()) * 0.05 + 1e-6))


def trainable_groups(net, backbone_lr: float, head_lr: float) -> list[dict[str, Any]]:
    """Parameter groups: late backbone stages at `backbone_lr`, the MLP at `head_lr`; rest frozen."""
    from photod.training.features import TRUNK_STAGES

    for p in net.parameters():
        p.requires_grad_(False)
    late = [net.backbone.blocks[i] for i in range(TRUNK_STAGES, len(net.backbone.blocks))]
    late += [net.backbone.conv_head, net.backbone.bn2]
    backbone_params = [p for module in late for p in module.parameters()]
    head_params = list(net.head.parameters())
    for p in backbone_params + head_params:
        p.requires_grad_(True)
    return [
        {"params": backbone_params, "lr": backbone_lr, "name": "backbone"},
        {"params": head_params, "lr": head_lr, "name": "head"},
    ]


def set_train_mode(net) -> None:
    """Dropout on (off for a one-unit head), BatchNorm statistics frozen everywhere."""
    import torch

    net.train()
    linear_head = net.head.mlp[0].out_features == 1
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
        if linear_head and isinstance(module, torch.nn.Dropout):
            module.eval()


def predict(net, maps: np.ndarray, stats: np.ndarray, device: str, batch: int = 256):
    """Scores of cached trunk rows through `net`'s tail (eval mode)."""
    import torch

    from photod.training.features import tail_forward

    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(maps), batch):
            m = torch.from_numpy(maps[i : i + batch]).to(device).float()
            s = torch.from_numpy(stats[i : i + batch]).to(device)
            out.append(tail_forward(net.backbone, net.head, m, s)[0].float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def _flip(maps, mask):
    """Flip the chosen rows of a [B, C, H, W] batch horizontally."""
    import torch

    return torch.where(mask[:, None, None, None], maps.flip(-1), maps)


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("step-*.pt"))
    return found[-1] if found else None


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    from photod.scoring import resolve_device
    from photod.training.evaluate import pair_accuracy
    from photod.training.features import sharded_trunk, tail_forward
    from photod.training.metrics import regression_report
    from photod.training.pairs import cached_pairs
    from photod.training.report import val_pair_trunk

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)  # denormals in small gradients slow CPUs down many times
    samples = para_dataset(split="all")
    targets = np.array([s.target for s in samples], np.float32)
    is_val = np.array([session_split(s.group) == "val" for s in samples])
    maps, stats, have = sharded_trunk(
        [s.path for s in samples],
        args.trunk_cache,
        first=np.flatnonzero(is_val),
        compute=not args.cached_only,
        device=device,
    )
    if not have[is_val].all():
        raise SystemExit("the trunk cache lacks validation images; run without --cached-only")
    train_idx, val_idx = np.flatnonzero(~is_val & have), np.flatnonzero(is_val)
    row_of = {s.path.name: i for i, s in enumerate(samples)}
    train_samples = [samples[i] for i in np.flatnonzero(~is_val)]
    pairs = cached_pairs(
        train_samples,
        args.pair_cache,
        n_photos=args.pair_photos,
        compute=not args.cached_only,
        device=device,
    )
    pair_base = np.array([row_of[n] for n in pairs["base_names"]], np.int64)
    usable = have[pair_base]
    pairs = {k: v[usable] for k, v in pairs.items()}
    pair_base = pair_base[usable]
    log.info("%d train, %d val images, %d pairs", len(train_idx), len(val_idx), len(pair_base))
    # Degraded good validation photos at the fixed evaluation strengths (never trained on).
    vp_rows, vp_maps, vp_stats, vp_labels, vp_origin = val_pair_trunk(
        samples, val_idx, args.val_pair_cache
    )
    if len(pair_base) == 0 or len(train_idx) < args.batch_size:
        raise SystemExit("not enough cached training images or pairs to train on")

    torch.manual_seed(args.seed)  # the fresh head's initialisation must not depend on the caches
    net, warm = build_tail(args.init)
    if not warm:
        standardise_head(net, maps[train_idx], stats[train_idx])
    net = net.to(device)
    groups = trainable_groups(net, args.backbone_lr, args.head_lr)
    optimiser = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_idx) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = max(1, total // 30)

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor)
    history: dict[str, list] = {"steps": [], "epochs": []}
    step = 0
    args.checkpoints.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(args.checkpoints) if args.resume else None
    if resume_from is not None:
        state = torch.load(resume_from, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        history, step = state["history"], state["step"]
        torch.set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", resume_from, step)
    else:
        # Building backbones above drew from the global generator (timm initialises layers before
        # the weights are loaded), more or less depending on what was cached: re-seed for dropout.
        torch.manual_seed(args.seed)

    def save(tag_step: int) -> None:
        state = {
            "model": net.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "history": history,
            "step": tag_step,
            "rng": torch.get_rng_state(),
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        path = args.checkpoints / f"step-{tag_step:06d}.pt"
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        for old in sorted(args.checkpoints.glob("step-*.pt"))[:-2]:
            old.unlink()
        (args.checkpoints / "history.json").write_text(json.dumps(history, indent=1))

    def evaluate(epoch: int) -> dict[str, Any]:
        pred = predict(net, maps[val_idx], stats[val_idx], device)
        report = regression_report(pred, targets[val_idx])
        report["val_pairs"] = pair_accuracy(
            predict(net, maps[vp_rows], stats[vp_rows], device),
            predict(net, vp_maps, vp_stats, device),
            vp_labels,
            vp_origin,
        )
        orig = predict(net, maps[pair_base[:512]], stats[pair_base[:512]], device)
        degraded = predict(net, pairs["maps"][:512], pairs["stats"][:512], device)
        train_pred = predict(net, maps[train_idx[:2000]], stats[train_idx[:2000]], device)
        report["train_srcc"] = regression_report(train_pred, targets[train_idx[:2000]])["srcc"]
        report["train_pair_accuracy"] = float(np.mean(orig > degraded))
        report["epoch"] = epoch
        report["val_mse"] = float(np.mean((pred - targets[val_idx]) ** 2))
        return report

    if not history["epochs"]:
        history["epochs"].append(evaluate(0))
        log.info("epoch 0 (start point): %s", history["epochs"][-1])
    n_pair = len(pair_base)
    started = time.time()
    for epoch in range(step // steps_per_epoch, args.epochs):
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(train_idx), generator=gen).numpy()
        flips = torch.rand(steps_per_epoch, args.batch_size, generator=gen) < 0.5
        pair_order = torch.randint(0, n_pair, (steps_per_epoch, args.pair_batch), generator=gen)
        pair_flips = torch.rand(steps_per_epoch, args.pair_batch, generator=gen) < 0.5
        first = step - epoch * steps_per_epoch
        set_train_mode(net)
        bar = tqdm(range(first, steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}")
        running = {"mse": 0.0, "pair": 0.0, "n": 0}
        for k in bar:
            rows = train_idx[order[k * args.batch_size : (k + 1) * args.batch_size]]
            pidx = pair_order[k].numpy()
            base = pair_base[pidx]
            m = torch.from_numpy(np.concatenate([maps[rows], maps[base], pairs["maps"][pidx]]))
            s = torch.from_numpy(np.concatenate([stats[rows], stats[base], pairs["stats"][pidx]]))
            flip = torch.cat([flips[k], pair_flips[k], pair_flips[k]])
            m = _flip(m.to(device).float(), flip.to(device))
            scores, _ = tail_forward(net.backbone, net.head, m, s.to(device))
            nb, npb = len(rows), len(pidx)
            y = torch.from_numpy(targets[rows]).to(device)
            mse = torch.nn.functional.mse_loss(scores[:nb], y)
            gap = scores[nb : nb + npb] - scores[nb + npb :]
            pair = torch.relu(args.margin - gap).mean()
            loss = mse + args.pair_weight * pair
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            running["mse"] += float(mse.detach())
            running["pair"] += float(pair.detach())
            running["n"] += 1
            bar.set_postfix(
                mse=f"{running['mse'] / running['n']:.4f}",
                pair=f"{running['pair'] / running['n']:.3f}",
            )
            if step % 25 == 0:
                history["steps"].append(
                    {
                        "step": step,
                        "mse": float(mse),
                        "pair": float(pair),
                        "lr": schedule.get_last_lr(),
                    }
                )
            if step % args.checkpoint_every == 0:
                save(step)
        history["epochs"].append(evaluate(epoch + 1))
        history["epochs"][-1]["elapsed_s"] = round(time.time() - started, 1)
        log.info("epoch %d: %s", epoch + 1, history["epochs"][-1])
        print(json.dumps(history["epochs"][-1]), flush=True)
        save(step)
        set_train_mode(net)

    pred = predict(net, maps[val_idx], stats[val_idx], device)
    export(
        net, args.out, pred, targets[val_idx], history, args, len(train_idx), len(val_idx), n_pair
    )
    return history["epochs"][-1]


def export(
    net,
    out: Path,
    val_pred: np.ndarray,
    val_target: np.ndarray,
    history: dict[str, Any],
    args: argparse.Namespace,
    n_train: int,
    n_val: int,
    n_pairs: int = 0,
) -> None:
    """Write the safetensors (fp16 backbone and head weights, fp32 buffers) and the model card."""
    import torch

    from photod.stars import thresholds_from_scores
    from photod.training.metrics import regression_report

    state: dict[str, torch.Tensor] = {}
    for key, value in net.backbone.state_dict().items():
        floating = value.is_floating_point() and "running" not in key
        state[f"backbone.{key}"] = (value.half() if floating else value).contiguous().cpu()
    for key, value in net.head.state_dict().items():
        keep32 = key.startswith("feature_") or value.dim() < 2
        state[f"head.{key}"] = (value if keep32 else value.half()).contiguous().cpu()
    report = regression_report(val_pred, val_target)
    card = {
        "name": out.stem,
        "version": out.stem,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "architecture": "EfficientNet-Lite0 (ImageNet; stages 5-6 + head conv fine-tuned) + MLSP "
        + (
            "linear head (stored as a 1-unit MLP head)"
            if net.head.mlp[0].out_features == 1
            else f"MLP head (hidden {net.head.mlp[0].out_features})"
        ),
        "data": f"PARA aesthetic_mean (Yang et al., CVPR 2022), session split seed {SPLIT_SEED}: "
        f"{n_train} train / {n_val} val images; {n_pairs} synthetic preference pairs "
        "from good train photos",
        "licence": "trained on PARA: research and learning use only, no commercial use; "
        "cite Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
        "training": {
            "epochs": args.epochs,
            "seed": args.seed,
            "backbone_lr": args.backbone_lr,
            "head_lr": args.head_lr,
            "margin": args.margin,
            "pair_weight": args.pair_weight,
            "init": args.init,
            "pair_photos": args.pair_photos,
            "pair_batch": args.pair_batch,
            "batch_size": args.batch_size,
            "weight_decay": args.weight_decay,
            "recipe": "python -m photod.training.finetune",
        },
        "metrics": {k: round(v, 4) for k, v in report.items() if isinstance(v, float)},
        "pair_accuracy": {
            k: round(v, 4) for k, v in history["epochs"][-1].get("val_pairs", {}).items()
        },
        "star_thresholds": list(thresholds_from_scores(val_pred)),
        "history": history["epochs"],
    }
    write_model(out, state, card)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=48)
    p.add_argument("--pair-batch", type=int, default=32)
    p.add_argument("--pair-photos", type=int, default=2400)
    p.add_argument("--backbone-lr", type=float, default=1e-4)
    p.add_argument("--head-lr", type=float, default=3e-4)
    p.add_argument("--weight-decay", type=float, default=1e-2)
    p.add_argument("--margin", type=float, default=0.3)
    p.add_argument("--pair-weight", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init", default="photod-aesthetic-v2")
    p.add_argument("--device", default="auto")
    p.add_argument("--trunk-cache", type=Path, default=TRUNK_CACHE)
    p.add_argument("--pair-cache", type=Path, default=PAIR_CACHE)
    p.add_argument("--val-pair-cache", type=Path, default=VAL_PAIR_CACHE)
    p.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS)
    p.add_argument("--checkpoint-every", type=int, default=100)
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--cached-only",
        action="store_true",
        help="train on the cached trunk/pair shards only; extract nothing new",
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return train(parser().parse_args(argv))


if __name__ == "__main__":
    main()
