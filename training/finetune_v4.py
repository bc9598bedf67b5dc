"""Train photod-aesthetic-v4: EfficientNet-Lite0, stages 4-6 fine-tuned, a linear MLSP head.

    python -m photod.training.finetune_v4 [--epochs 3] [--resume] [--cached-only]

The recipe (measured in ../shared/NOTES.md and models/README.md):
- Stages 0-3 of the ImageNet backbone stay frozen; their 80x14x14 output map and their MLSP
  mean/std vectors (320 values) are cached once in fp16 for all PARA images and for the degraded
  copies of the synthetic preference pairs (`features.sharded_trunk`, `pairs.cached_pairs`).
- Stages 4-6, the 1x1 head convolution and its BatchNorm are trained (BatchNorm in train mode: a
  batch holds 64 PARA photos plus the pairs' originals and degraded copies) at `--backbone-lr`; a
  linear head on the full MLSP vector (the frozen stages' statistics from the cache, the trained
  stages' from their outputs, the pooled 1280 features) at `--head-lr`. AdamW, one-cycle
  schedule (warm-up then cosine decay), seed 0.
- Loss: MSE on the standardised PARA aesthetic means + `--pair-weight` x a margin ranking loss
  (a good training photo beats its own blurred, noisy, mis-exposed, colour-cast, flattened,
  JPEG-damaged, tilted, badly cropped or margined copy by `--margin` on the 1-5 scale). Pairs of the
  kinds a frozen model gets wrong most (over-exposure, colour cast) are drawn more often.
- Horizontal flips of the cached maps (no crops: they change the composition the label refers to).
- EMA of the trained weights, evaluated beside the raw weights at the end.
- Checkpoints every `--checkpoint-every` steps and each epoch; `--resume` continues at the same
  step with the same data order. Validation (SRCC, PLCC, top/bottom-20 %, pair accuracy per
  degradation) after every epoch, in `history.json` and in the model card.
"""

from __future__ import annotations

import argparse
import copy
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
STAGES = 4  # blocks[:4] frozen (ImageNet); their 80x14x14 maps are cached once
CACHE_DIR = REPO / ".cache" / "features"
TRUNK_CACHE = CACHE_DIR / "para-trunk4"
PAIR_CACHE = CACHE_DIR / "para-pairs-trunk4"
VAL_PAIR_CACHE = CACHE_DIR / "para-valpairs-trunk4-150.npz"
DEFAULT_OUT = REPO / "models" / "weights" / "photod-aesthetic-v4.safetensors"
DEFAULT_CHECKPOINTS = REPO / ".cache" / "checkpoints" / "v4"
# How often each degradation kind is drawn for the pair loss (relative): the kinds frozen
# ImageNet features miss most get more.
HEAD_FEATURES = 1280  # the pooled head features: the last part of the MLSP vector
KIND_WEIGHT = {"overexposed": 3.0, "colour_cast": 2.0, "underexposed": 1.5, "noise": 1.5}


def load_caches(args: argparse.Namespace, device: str = "cpu") -> dict[str, Any]:
    """Every cached array training needs (computed on first use, shards resumable)."""
    from photod.training.features import sharded_trunk
    from photod.training.pairs import cached_pairs
    from photod.training.report import val_pair_trunk

    samples = para_dataset(split="all")
    targets = np.array([s.target for s in samples], np.float32)
    is_val = np.array([session_split(s.group) == "val" for s in samples])
    maps, stats, have = sharded_trunk(
        [s.path for s in samples],
        args.trunk_cache,
        first=np.flatnonzero(is_val),
        compute=not args.cached_only,
        device=device,
        stages=STAGES,
    )
    val_idx = np.flatnonzero(is_val)
    if not have[val_idx].all():
        raise SystemExit("the trunk cache lacks validation images; run without --cached-only")
    vp = val_pair_trunk(samples, val_idx, args.val_pair_cache, stages=STAGES)
    train_samples = [samples[i] for i in np.flatnonzero(~is_val)]
    pairs = cached_pairs(
        train_samples,
        args.pair_cache,
        n_photos=args.pair_photos,
        device=device,
        stages=STAGES,
    )
    row_of = {s.path.name: i for i, s in enumerate(samples)}
    pair_base = np.array([row_of[n] for n in pairs["base_names"]], np.int64)
    usable = have[pair_base] if len(pair_base) else np.zeros(0, bool)
    pairs = {k: v[usable] for k, v in pairs.items()}
    return {
        "samples": samples,
        "targets": targets,
        "train_idx": np.flatnonzero(~is_val & have),
        "val_idx": val_idx,
        "maps": maps,
        "stats": stats,
        "val_pairs": vp,
        "pairs": pairs,
        "pair_base": pair_base[usable],
    }


def build_net(maps: np.ndarray, stats: np.ndarray):
    """ImageNet AestheticNet with a fresh LinearHead standardised on (up to 512) training rows."""
    import torch

    from photod.models.aesthetic import AestheticNet, LinearHead, tail_forward

    net = AestheticNet(head=LinearHead())
    with torch.inference_mode():
        features = tail_forward(
            net.backbone.eval(),
            torch.nn.Identity(),
            torch.from_numpy(maps[:512]).float(),
            torch.from_numpy(stats[:512]),
            STAGES,
        )[0]
    net.head.feature_mean.copy_(features.mean(0))
    std = features.std(0)
    # Features that hardly vary would blow up once standardised.
    net.head.feature_std.copy_(std.clamp_min(float(std.median()) * 0.05 + 1e-6))
    torch.nn.init.zeros_(net.head.linear.weight)
    torch.nn.init.zeros_(net.head.linear.bias)
    return net


def trained_modules(net) -> list:
    return [*net.backbone.blocks[STAGES:], net.backbone.conv_head, net.backbone.bn2]


def param_groups(net, backbone_lr: float, head_lr: float) -> list[dict[str, Any]]:
    for p in net.parameters():
        p.requires_grad_(False)
    body = [p for m in trained_modules(net) for p in m.parameters()]
    head = list(net.head.parameters())
    for p in body + head:
        p.requires_grad_(True)
    return [
        {"params": body, "lr": backbone_lr, "name": "backbone"},
        {"params": head, "lr": head_lr, "name": "head"},
    ]


def set_train_mode(net) -> None:
    """Trained stages (BatchNorm included) in train mode; the frozen rest in eval mode."""
    net.eval()
    for module in trained_modules(net):
        module.train()


def predict(net, maps, stats, device: str, flip: bool = False, batch: int = 256) -> np.ndarray:
    """Head outputs (z units) of cached trunk rows, eval mode; `flip` averages with the mirror."""
    import torch

    from photod.models.aesthetic import tail_forward

    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(maps), batch):
            m = torch.from_numpy(maps[i : i + batch]).to(device).float()
            s = torch.from_numpy(stats[i : i + batch]).to(device)
            p = tail_forward(net.backbone, net.head, m, s, STAGES)[0]
            if flip:
                p = 0.5 * (p + tail_forward(net.backbone, net.head, m.flip(-1), s, STAGES)[0])
            out.append(p.float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def evaluate(net, data: dict[str, Any], device: str, flip: bool = False) -> dict[str, Any]:
    from photod.training.evaluate import pair_accuracy
    from photod.training.metrics import regression_report

    maps, stats, targets = data["maps"], data["stats"], data["targets"]
    va = data["val_idx"]
    pred = predict(net, maps[va], stats[va], device, flip)
    report = regression_report(pred, targets[va])
    rows, vp_maps, vp_stats, labels, origin = data["val_pairs"]
    report["val_pairs"] = pair_accuracy(
        predict(net, maps[rows], stats[rows], device, flip),
        predict(net, vp_maps, vp_stats, device, flip),
        labels,
        origin,
    )
    tr = data["train_idx"][:500]
    report["train_srcc"] = regression_report(
        predict(net, maps[tr], stats[tr], device), targets[tr]
    )["srcc"]
    report["_pred"] = pred
    return report


def latest_checkpoint(folder: Path) -> Path | None:
    found = sorted(folder.glob("step-*.pt"))
    return found[-1] if found else None


def train(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    from photod.models.aesthetic import tail_forward
    from photod.scoring import resolve_device

    device = resolve_device(args.device)
    torch.manual_seed(args.seed)
    torch.set_flush_denormal(True)  # denormals in small gradients slow CPUs down many times
    if args.threads:
        # On a crowded CPU, intra-op threads that wait for each other at every layer cost more
        # than they bring.
        torch.set_num_threads(args.threads)
    data = load_caches(args, device)
    if args.cache_only:
        return {}
    maps, stats, targets = data["maps"], data["stats"], data["targets"]
    train_idx = data["train_idx"]
    if args.max_train:
        train_idx = train_idx[: args.max_train]
    pairs, pair_base = data["pairs"], data["pair_base"]
    y_mean, y_std = float(targets[train_idx].mean()), float(targets[train_idx].std())
    margin_z = args.margin / y_std
    log.info(
        "%d train, %d val images, %d pairs; target mean %.3f std %.3f",
        len(train_idx),
        len(data["val_idx"]),
        len(pair_base),
        y_mean,
        y_std,
    )
    kind_p = np.array([KIND_WEIGHT.get(str(k), 1.0) for k in pairs["kinds"]], np.float64)
    kind_p /= kind_p.sum() if len(kind_p) else 1.0

    torch.manual_seed(args.seed)
    net = build_net(maps[train_idx], stats[train_idx]).to(device)
    if args.head_features == "pooled":
        # The head reads only the pooled 1280 features (the MLSP statistics get zero weight and
        # zero gradient): the file format stays the same, `refit_head` may use them later.
        mask = torch.zeros(net.head.linear.weight.shape[1], device=device)
        mask[-HEAD_FEATURES:] = 1.0
        with torch.no_grad():
            net.head.linear.weight.mul_(mask)
        net.head.linear.weight.register_hook(lambda grad: grad * mask)
    groups = param_groups(net, args.backbone_lr, args.head_lr)
    optimiser = torch.optim.AdamW(groups, weight_decay=args.weight_decay)
    steps_per_epoch = len(train_idx) // args.batch_size
    total = steps_per_epoch * args.epochs
    warmup = max(1, int(total * args.warmup))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return 0.1 + 0.9 * (step + 1) / warmup
        return 0.5 * (1 + np.cos(np.pi * (step - warmup) / max(1, total - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_factor)
    trained = [p for g in groups for p in g["params"]]
    ema = [p.detach().clone() for p in trained]
    history: dict[str, Any] = {"steps": [], "epochs": []}
    step = 0
    args.checkpoints.mkdir(parents=True, exist_ok=True)
    resume_from = latest_checkpoint(args.checkpoints) if args.resume else None
    if resume_from is not None:
        state = torch.load(resume_from, map_location=device, weights_only=False)
        net.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        for e, v in zip(ema, state["ema"], strict=True):
            e.copy_(v)
        history, step = state["history"], state["step"]
        torch.set_rng_state(state["rng"])
        log.info("resumed from %s at step %d", resume_from, step)

    def save(tag_step: int) -> None:
        state = {
            "model": net.state_dict(),
            "optimiser": optimiser.state_dict(),
            "schedule": schedule.state_dict(),
            "ema": ema,
            "history": history,
            "step": tag_step,
            "rng": torch.get_rng_state(),
            "y": (y_mean, y_std),
            "args": {k: str(v) for k, v in vars(args).items()},
        }
        path = args.checkpoints / f"step-{tag_step:06d}.pt"
        torch.save(state, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").replace(path)
        for old in sorted(args.checkpoints.glob("step-*.pt"))[:-2]:
            old.unlink()
        (args.checkpoints / "history.json").write_text(json.dumps(history, indent=1))

    last: dict[str, Any] = {}

    def epoch_report(epoch: int) -> dict[str, Any]:
        last.clear()
        last.update(evaluate(net, data, device))
        report = {k: v for k, v in last.items() if k != "_pred"}
        report["epoch"] = epoch
        return report

    started = time.time()
    n_pair = len(pair_base)
    for epoch in range(step // steps_per_epoch, args.epochs):
        gen = torch.Generator().manual_seed(args.seed * 1000 + epoch)
        order = torch.randperm(len(train_idx), generator=gen).numpy()
        flips = torch.rand(steps_per_epoch, args.batch_size, generator=gen) < 0.5
        rng = np.random.default_rng([args.seed, epoch])
        pair_order = (
            rng.choice(n_pair, (steps_per_epoch, args.pair_batch), p=kind_p)
            if n_pair and args.pair_batch
            else np.zeros((steps_per_epoch, 0), np.int64)
        )
        pair_flips = torch.rand(steps_per_epoch, args.pair_batch, generator=gen) < 0.5
        set_train_mode(net)
        first = step - epoch * steps_per_epoch
        bar = tqdm(
            range(first, steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", mininterval=30
        )
        running = {"mse": 0.0, "pair": 0.0, "n": 0}
        for k in bar:
            rows = train_idx[order[k * args.batch_size : (k + 1) * args.batch_size]]
            pidx = pair_order[k]
            base = pair_base[pidx]
            m = np.concatenate([maps[rows], maps[base], pairs["maps"][pidx]])
            s = np.concatenate([stats[rows], stats[base], pairs["stats"][pidx]])
            flip = torch.cat([flips[k], pair_flips[k], pair_flips[k]]).to(device)
            m = torch.from_numpy(m).to(device).float()
            m = torch.where(flip[:, None, None, None], m.flip(-1), m)
            z, _ = tail_forward(net.backbone, net.head, m, torch.from_numpy(s).to(device), STAGES)
            nb, npb = len(rows), len(pidx)
            y = (torch.from_numpy(targets[rows]).to(device) - y_mean) / y_std
            mse = torch.nn.functional.mse_loss(z[:nb], y)
            if npb:
                pair = torch.relu(margin_z - (z[nb : nb + npb] - z[nb + npb :])).mean()
            else:
                pair = torch.zeros((), device=device)
            loss = mse + args.pair_weight * pair
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            step += 1
            with torch.no_grad():
                for e, p in zip(ema, trained, strict=True):
                    e.lerp_(p.detach(), 1 - args.ema)
            running["mse"] += float(mse.detach())
            running["pair"] += float(pair.detach())
            running["n"] += 1
            if step % 25 == 0:
                history["steps"].append(
                    {
                        "step": step,
                        "mse": running["mse"] / running["n"],
                        "pair": running["pair"] / running["n"],
                        "elapsed_s": round(time.time() - started, 1),
                    }
                )
                log.info("step %d %s", step, history["steps"][-1])
            if step % args.checkpoint_every == 0:
                save(step)
        history["epochs"].append(epoch_report(epoch + 1))
        history["epochs"][-1]["elapsed_s"] = round(time.time() - started, 1)
        log.info("epoch %d: %s", epoch + 1, history["epochs"][-1])
        print(json.dumps(history["epochs"][-1]), flush=True)
        save(step)

    # The EMA weights, and flip test-time averaging, measured beside the raw weights.
    ema_net = copy.deepcopy(net)
    ema_params = [p for g in param_groups(ema_net, 0, 0) for p in g["params"]]
    with torch.no_grad():
        for p, e in zip(ema_params, ema, strict=True):
            p.copy_(e)
    raw = dict(last) if last else evaluate(net, data, device)
    averaged = evaluate(ema_net, data, device) if args.ema_eval else {}
    history["final"] = {
        "raw": {k: v for k, v in raw.items() if k != "_pred"},
        "ema": {k: v for k, v in averaged.items() if k != "_pred"},
    }
    if args.flip_eval:
        history["final"]["raw_flip"] = {
            k: v for k, v in evaluate(net, data, device, flip=True).items() if k != "_pred"
        }
    log.info("final: %s", history["final"])
    use_ema = bool(averaged) and averaged["srcc"] > raw["srcc"]
    chosen, report = (ema_net, averaged) if use_ema else (net, raw)
    history["final"]["chosen"] = "ema" if chosen is ema_net else "raw"
    (args.checkpoints / "history.json").write_text(json.dumps(history, indent=1, default=float))
    export(chosen, args.out, report, history, args, y_mean, y_std, len(train_idx), n_pair, data)
    return history["epochs"][-1]


def to_scale(head, y_mean: float, y_std: float):
    """A copy of a z-unit LinearHead that outputs PARA's 1-5 scale directly."""
    import torch

    head = copy.deepcopy(head).float().cpu()
    with torch.no_grad():
        head.linear.weight.mul_(y_std)
        head.linear.bias.mul_(y_std).add_(y_mean)
    return head


def export(net, out, report, history, args, y_mean, y_std, n_train, n_pairs, data) -> None:
    """Safetensors with the changed backbone modules (fp16) and the head; the model card."""
    import torch

    from photod.stars import thresholds_from_scores

    head = to_scale(net.head, y_mean, y_std)
    state: dict[str, torch.Tensor] = {}
    keep = ("blocks.4.", "blocks.5.", "blocks.6.", "conv_head.", "bn2.")
    for key, value in net.backbone.state_dict().items():
        if not key.startswith(keep):
            continue  # frozen ImageNet modules: the loader takes them from the backbone package
        floating = value.is_floating_point() and "running" not in key
        state[f"backbone.{key}"] = (value.half() if floating else value).contiguous().cpu()
    for key, value in head.state_dict().items():
        keep32 = key.startswith("feature_") or value.dim() < 2
        state[f"head.{key}"] = (value if keep32 else value.half()).contiguous()
    pred = report["_pred"] * y_std + y_mean
    metrics = {k: round(v, 4) for k, v in report.items() if isinstance(v, float)}
    pair_acc = {k: round(v, 4) for k, v in report["val_pairs"].items()}
    card = {
        "name": out.stem,
        "version": out.stem,
        "trained_at": datetime.now(UTC).strftime("%Y-%m-%d"),
        "architecture": "EfficientNet-Lite0 (ImageNet; stages 4-6 + head conv fine-tuned, "
        "stages 0-3 frozen) + linear head on the MLSP features (2,848 values)",
        "data": f"PARA aesthetic_mean (Yang et al., CVPR 2022), all 18,000 para-train images, "
        f"session split seed {SPLIT_SEED}: {n_train} train / {len(data['val_idx'])} val images; "
        f"{n_pairs} synthetic preference pairs from good train photos",
        "licence": "trained on PARA: research and learning use only, no commercial use; "
        "cite Yang et al., Personalized Image Aesthetics Assessment with Rich Attributes, CVPR 2022",
        "training": {
            "recipe": "python -m photod.training.finetune_v4",
            **{
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in vars(args).items()
                if k not in ("cached_only", "cache_only", "resume")
            },
            "kind_weight": KIND_WEIGHT,
            "target_mean": round(y_mean, 4),
            "target_std": round(y_std, 4),
            "weights_used": history["final"]["chosen"],
        },
        "metrics": metrics,
        "pair_accuracy": pair_acc,
        "heads": {"rating": {"kind": "linear", "metrics": {**metrics, "pairs": pair_acc}}},
        "star_thresholds": list(thresholds_from_scores(pred)),
        "history": history["epochs"],
        "steps": history["steps"],
        "final": history["final"],
    }
    write_model(out, state, card)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--pair-batch", type=int, default=16)
    p.add_argument("--pair-photos", type=int, default=2000)
    p.add_argument("--backbone-lr", type=float, default=3e-4)
    p.add_argument("--head-lr", type=float, default=1.5e-3)
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.1, help="share of the steps warming up")
    p.add_argument(
        "--head-features",
        choices=("mlsp", "pooled"),
        default="mlsp",
        help="what the linear head reads while the backbone trains: the whole MLSP vector, "
        "or the pooled 1280 features only",
    )
    p.add_argument("--margin", type=float, default=0.3)
    p.add_argument("--pair-weight", type=float, default=1.0)
    p.add_argument("--ema", type=float, default=0.995)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-train", type=int, default=0, help="train on the first N rows (tests)")
    p.add_argument("--flip-eval", action="store_true")
    p.add_argument("--no-ema-eval", dest="ema_eval", action="store_false")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    p.add_argument("--trunk-cache", type=Path, default=TRUNK_CACHE)
    p.add_argument("--pair-cache", type=Path, default=PAIR_CACHE)
    p.add_argument("--val-pair-cache", type=Path, default=VAL_PAIR_CACHE)
    p.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--resume", action="store_true")
    p.add_argument(
        "--cached-only",
        action="store_true",
        help="train on the trunk shards already cached (pairs are still made up to --pair-photos)",
    )
    p.add_argument("--cache-only", action="store_true", help="fill the caches, train nothing")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return p


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    return train(parser().parse_args(argv))


if __name__ == "__main__":
    main()
