"""Personal models: fine-tune the head on the user's own star ratings (`photod train --from-ratings`).

Recipe, chosen for the tens to hundreds of ratings a photographer has:
1. Read the ratings the user set in Lightroom/darktable (`datasets.user_ratings_dataset`; ratings
   photod wrote are ignored, unrated and rejected photos left out).
2. Hold out a fixed part (a hash of the file name, so re-running keeps the same photos out).
3. Extract the base model's MLSP features once (backbone frozen).
4. Start from the base head, with its output mapped affinely onto the user's star scale (fitted on
   the training part), so step 0 *is* the shipped model; fine-tune all head weights with MSE plus an
   L2 pull towards the start weights (L2-SP), which keeps a small rating set from wrecking it.
5. Compare base and personal on the held-out ratings (SRCC; MAE in stars after calibration).
   The personal model is saved either way, and made the active model only when its held-out SRCC
   beats the base model's; `photod models --use default` reverts.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from photod.errors import ModelError, PhotodError
from photod.training.datasets import Sample, session_split, user_ratings_dataset
from photod.training.export import write_model

log = logging.getLogger("photod")

DEFAULT_NAME = "personal"


class NotEnoughRatingsError(PhotodError):
    code = "not_enough_ratings"


def split_ratings(samples: list[Sample], holdout: float, seed: int) -> tuple[list[int], list[int]]:
    """(train indices, held-out indices) by a hash of each file name; both sides non-empty."""
    held = [i for i, s in enumerate(samples) if session_split(s.path.name, seed, holdout) == "val"]
    minimum = max(2, int(round(holdout * len(samples) / 2)))
    if len(held) < minimum or len(samples) - len(held) < minimum:
        order = np.random.default_rng(seed).permutation(len(samples))
        held = sorted(order[: max(minimum, int(round(holdout * len(samples))))].tolist())
    held_set = set(held)
    return [i for i in range(len(samples)) if i not in held_set], held


def base_features(
    net: Any, paths: list[Path], device: str, progress: Callable[[int], None] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(MLSP features [N, D], ok mask [N]) of the photos through the base model's backbone."""
    import torch

    from photod.decode import decode_image
    from photod.models.aesthetic import multilevel_features
    from photod.models.preprocess import to_tensor

    features = []
    ok = np.zeros(len(paths), bool)
    dtype = next(net.parameters()).dtype
    with torch.inference_mode():
        for i, path in enumerate(paths):
            try:
                pixels = decode_image(path, min_side=224).pixels
            except PhotodError as exc:
                log.warning("skipping %s", exc)
                features.append(None)
            else:
                x = to_tensor([pixels]).to(device, dtype=dtype)
                features.append(multilevel_features(net.backbone, x)[0][0].float().cpu().numpy())
                ok[i] = True
            if progress:
                progress(1)
    dim = next(f for f in features if f is not None).shape[0] if ok.any() else 0
    matrix = np.stack([f if f is not None else np.zeros(dim, np.float32) for f in features])
    return matrix.astype(np.float32), ok


def personal_thresholds(pred: np.ndarray, stars: np.ndarray) -> tuple[float, ...]:
    """Star thresholds giving the user's own star distribution on their training photos."""
    shares = [float(np.mean(stars <= k)) for k in (1, 2, 3, 4)]
    values = [float(np.quantile(pred, min(max(s, 0.01), 0.99))) for s in shares]
    if all(b > a for a, b in zip(values, values[1:], strict=False)):
        return tuple(round(v, 4) for v in values)
    return (1.5, 2.5, 3.5, 4.5)


def fit_head(
    head: Any,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int,
    lr: float = 3e-4,
    l2sp: float = 1e-2,
    seed: int = 0,
) -> Any:
    """Fine-tune a copy of `head` on (x, y) with MSE + L2-SP towards its start weights."""
    import torch

    torch.manual_seed(seed)
    head = copy.deepcopy(head).float()
    start = [p.detach().clone() for p in head.parameters()]
    xt, yt = torch.from_numpy(x).float(), torch.from_numpy(y).float()
    optimiser = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=0.0)
    generator = torch.Generator().manual_seed(seed)
    head.train()
    for _ in range(epochs):
        order = torch.randperm(len(xt), generator=generator)
        for begin in range(0, len(xt), 32):
            idx = order[begin : begin + 32]
            loss = torch.nn.functional.mse_loss(head(xt[idx]), yt[idx])
            pull = sum(
                ((p - p0) ** 2).sum() for p, p0 in zip(head.parameters(), start, strict=True)
            )
            optimiser.zero_grad()
            (loss + l2sp * pull).backward()
            optimiser.step()
    return head.eval()


def train_personal(
    folder: Path,
    base: str | None = None,
    epochs: int = 40,
    holdout: float = 0.25,
    seed: int = 0,
    device: str = "auto",
    name: str = DEFAULT_NAME,
    min_photos: int = 20,
    out_dir: Path | None = None,
    progress: Callable[[int], None] | None = None,
    on_count: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Train a personal head from the ratings under `folder`; returns the comparison report."""
    import torch

    from photod.models import get_model_spec, load_model, select_model
    from photod.models.registry import selected_model_name
    from photod.paths import personal_models_dir
    from photod.scoring import DEFAULT_MODEL, resolve_device
    from photod.training.metrics import srcc

    if not name.startswith("personal"):
        raise ModelError(f"a personal model's name must start with 'personal', got {name!r}")
    base = base or DEFAULT_MODEL
    if get_model_spec(base).card.get("base"):
        raise ModelError(f"{base} is itself a personal model; train on top of a shipped model")
    samples = user_ratings_dataset(Path(folder))
    if on_count:
        on_count(len(samples))
    if len(samples) < min_photos:
        raise NotEnoughRatingsError(
            f"found {len(samples)} photos with your own star rating; need at least {min_photos}",
            str(folder),
        )
    device = resolve_device(device)
    net = load_model(base, device=device)
    features, ok = base_features(net, [s.path for s in samples], device, progress)
    samples = [s for s, good in zip(samples, ok, strict=True) if good]
    features = features[ok]
    stars = np.array([s.target for s in samples], np.float32)
    train_idx, held_idx = split_ratings(samples, holdout, seed)
    if len(set(stars[train_idx].tolist())) < 2:
        raise NotEnoughRatingsError(
            "your training ratings are all the same star value", str(folder)
        )

    head = copy.deepcopy(net.head).float().eval()
    with torch.inference_mode():
        base_scores = head(torch.from_numpy(features)).numpy()
    # Affine map from the base score to the user's stars (least squares on the training part).
    a, b = np.polyfit(base_scores[train_idx], stars[train_idx], 1)
    with torch.no_grad():
        last = head.mlp[-1] if hasattr(head, "mlp") else head.linear  # MLP or linear head
        last.weight.mul_(float(a))
        last.bias.mul_(float(a)).add_(float(b))
    personal = fit_head(head, features[train_idx], stars[train_idx], epochs, seed=seed)
    with torch.inference_mode():
        calibrated = head(torch.from_numpy(features)).numpy()
        pred = personal(torch.from_numpy(features)).numpy()

    held = np.asarray(held_idx)
    report: dict[str, Any] = {
        "name": name,
        "base": base,
        "n_rated": len(samples),
        "n_train": len(train_idx),
        "n_holdout": len(held_idx),
        "base_holdout_srcc": round(srcc(base_scores[held], stars[held]), 4),
        "holdout_srcc": round(srcc(pred[held], stars[held]), 4),
        "base_holdout_mae": round(float(np.mean(np.abs(calibrated[held] - stars[held]))), 4),
        "holdout_mae": round(float(np.mean(np.abs(pred[held] - stars[held]))), 4),
    }
    for key in ("base_holdout_srcc", "holdout_srcc"):
        if not np.isfinite(report[key]):
            report[key] = 0.0  # constant predictions or ratings: no rank information
    report["beats_base"] = bool(report["holdout_srcc"] > report["base_holdout_srcc"])

    folder_out = out_dir or personal_models_dir()
    folder_out.mkdir(parents=True, exist_ok=True)
    weights = folder_out / f"{name}.safetensors"
    state = {f"head.{k}": v.detach().contiguous() for k, v in personal.state_dict().items()}
    card = {
        "name": name,
        "version": f"{name}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}",
        "base": base,
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(Path(folder).resolve()),
        "n_train": len(train_idx),
        "n_holdout": len(held_idx),
        "metrics": {
            "holdout_srcc": report["holdout_srcc"],
            "base_holdout_srcc": report["base_holdout_srcc"],
            "holdout_mae": report["holdout_mae"],
            "base_holdout_mae": report["base_holdout_mae"],
        },
        "beats_base": report["beats_base"],
        "star_thresholds": list(personal_thresholds(pred[train_idx], stars[train_idx])),
    }
    write_model(weights, state, card)

    if out_dir is None:
        if report["beats_base"]:
            select_model(name, reason=f"beat {base} on {len(held_idx)} held-out ratings")
        elif selected_model_name() == name:
            select_model(None)  # an older run of this model was active; it no longer wins
    report["active"] = out_dir is None and report["beats_base"]
    report["weights"] = str(weights)
    return report
