"""Train the search's starting points: how many stops a photo is off and which colour cast it
carries (models/edit_offsets.py).

The edit-preference head ranks versions of one photo; asked to climb a ladder of exposures it
still favours brighter versions (README, "Suggestions"). "How far is this photo from the good
one" is a different, easier question with dense labels: every good photo, shifted by a known
EV in linear light (clipped, like a camera) or given a known linear-light cast, says exactly
what undoes it. The search (photod/suggest.py) then spends its few real passes around the
predicted correction instead of over a whole ladder, and the head decides among them.

Data: the sources of `photod.training.edit_pairs` (good PARA training photos, split by session;
the real photos of REAL_TRAIN, never a benchmark file; each real photo drawn 8 times), each
drawn as: clean; `exposures` shifts of +-0.3..2 EV; `casts` random linear-light casts (log
red/green and blue/green gains within +-0.4); one shift and cast together. Targets: the EV
that undoes the shift, the log gains that undo the cast (0 for what was not injected). Inputs:
`image_statistics` of each draw's working copy, what the search computes. Model: a small MLP,
Smooth-L1 loss, the epoch with the lowest held-out error kept. Written into the multi-head
model file (`edit_offsets.*`) and its card (`edit_offsets`).

Run: `python -m photod.training.train_edit_offsets [--para N] [--out FILE] [--dry-run]`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("photod")

CACHE = Path(".cache/edit-offsets")


def draws(image: np.ndarray, rng: np.random.Generator, exposures: int, casts: int):
    """[(pixels, ev that undoes it, log gains (r/g, b/g) that undo it)] of one working copy."""
    from photod.training.edit_pairs import _cast, _linear, _shift

    lin = _linear(image)
    out = [(image, 0.0, (0.0, 0.0))]

    def shift() -> float:
        return float(rng.choice([-1, 1]) * rng.uniform(0.3, 2.0))

    def cast() -> np.ndarray:
        return rng.uniform(-0.4, 0.4, 2)

    for _ in range(exposures):
        ev = shift()
        out.append((_shift(lin, ev), -ev, (0.0, 0.0)))
    for _ in range(casts):
        rb = cast()
        out.append((_cast(lin, np.exp([rb[0], 0.0, rb[1]])), 0.0, (-rb[0], -rb[1])))
    ev, rb = shift(), cast()
    both = _linear(_cast(lin, np.exp([rb[0], 0.0, rb[1]])))
    out.append((_shift(both, ev), -ev, (-rb[0], -rb[1])))
    return out


def build(
    n_para: int, seed: int, bench_root: Path | None, exposures: int = 3, casts: int = 2
) -> dict[str, np.ndarray]:
    """Image statistics and targets of every draw of every source (cached in CACHE)."""
    from photod.models.edit_offsets import STATISTICS
    from photod.training.edit_pairs import held_out, sources, working_copy

    key = f"p{n_para}-s{seed}-e{exposures}-c{casts}-stats{STATISTICS}"
    path = CACHE / f"{key}.npz"
    if path.exists():
        return dict(np.load(path))
    from photod.models.edit_offsets import image_statistics

    stats: list[np.ndarray] = []
    rows: dict[str, list[Any]] = {"photo": [], "held_out": [], "real": [], "ev": [], "cast": []}
    started = time.perf_counter()
    items = sources(n_para, seed, bench_root)
    for k, (name, split_key, origin, item) in enumerate(items):
        rng = np.random.default_rng(
            int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") ^ seed
        )
        image = working_copy(item)
        repeats = 8 if origin == "real" else 1  # few real photos: more draws of each
        made = [d for _ in range(repeats) for d in draws(image, rng, exposures, casts)]
        stats.append(np.stack([image_statistics(pixels) for pixels, _, _ in made]))
        for _, ev, cast in made:
            rows["photo"].append(name)
            rows["held_out"].append(held_out(split_key))
            rows["real"].append(origin == "real")
            rows["ev"].append(ev)
            rows["cast"].append(cast)
        if k % 100 == 0:
            log.info("%d/%d sources, %.0f s", k, len(items), time.perf_counter() - started)
    data = {key: np.array(value) for key, value in rows.items()}
    data["statistics"] = np.concatenate(stats).astype(np.float32)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def evaluate(ev_pred: np.ndarray, cast_pred: np.ndarray, data: dict, mask: np.ndarray) -> dict:
    """Held-out figures: EV error and direction, cast reduction (as the benchmark measures)."""
    ev, cast = data["ev"][mask], data["cast"][mask]
    ev_pred, cast_pred = ev_pred[mask], cast_pred[mask]
    shifted = np.abs(ev) >= 0.5
    clean = (np.abs(ev) == 0) & (np.abs(cast).max(1) == 0)
    has_cast = np.abs(cast).max(1) > 0.1
    size = np.abs(cast).max(1)
    left = np.abs(cast - cast_pred).max(1)
    return {
        "images": int(mask.sum()),
        "ev_median_abs_error": round(float(np.median(np.abs(ev - ev_pred))), 3),
        "ev_right_direction": round(float((np.sign(ev_pred) == np.sign(ev))[shifted].mean()), 3),
        "ev_median_abs_error_shifted": round(float(np.median(np.abs(ev - ev_pred)[shifted])), 3),
        "clean_abs_ev_median": round(float(np.median(np.abs(ev_pred[clean]))), 3),
        "cast_reduced": round(float((left < size)[has_cast].mean()), 3),
        "cast_left_fraction_median": round(float(np.median(left[has_cast] / size[has_cast])), 3),
    }


def fit(
    data: dict[str, np.ndarray], hidden: int = 128, epochs: int = 80, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The MLP (tensors named as `models.edit_offsets.EditOffsets` reads them) and its card
    entry: trained on the fit photos, the epoch with the lowest held-out error kept."""
    import torch

    torch.manual_seed(seed)
    x = data["statistics"].astype(np.float32)
    fit_rows = ~data["held_out"]
    mean, std = x[fit_rows].mean(0), x[fit_rows].std(0) + 1e-6
    z = torch.from_numpy((x - mean) / std)
    # Casts span +-0.4 in log gain, exposures +-2 EV: scaled so both weigh alike in the loss.
    scale = np.array([1.0, 4.0, 4.0], np.float32)
    y = torch.from_numpy(np.concatenate([data["ev"][:, None], data["cast"]], 1) * scale)
    net = torch.nn.Sequential(
        torch.nn.Linear(z.shape[1], hidden), torch.nn.GELU(),
        torch.nn.Linear(hidden, hidden), torch.nn.GELU(),
        torch.nn.Linear(hidden, 3),
    )  # fmt: skip
    optimiser = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, epochs)
    rows = torch.from_numpy(np.where(fit_rows)[0])
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(epochs):
        net.train()
        order = rows[torch.randperm(len(rows))]
        for start in range(0, len(order), 256):
            batch = order[start : start + 256]
            loss = torch.nn.functional.smooth_l1_loss(net(z[batch]), y[batch], beta=0.2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        schedule.step()
        net.eval()
        with torch.no_grad():
            error = float((net(z[~fit_rows]) - y[~fit_rows]).abs().mean())
        if best is None or error < best[0]:
            best = (error, epoch, {k: v.clone() for k, v in net.state_dict().items()})
    assert best is not None
    net.load_state_dict(best[2])
    with torch.no_grad():
        predicted = net(z).numpy() / scale
    ev_pred, cast_pred = predicted[:, 0], predicted[:, 1:]
    card = {
        "fit": f"MLP {z.shape[1]}-{hidden}-{hidden}-3 (GELU) on standardised image statistics",
        "epoch_kept": best[1],
        "held_out": evaluate(ev_pred, cast_pred, data, ~fit_rows),
        "held_out_real": evaluate(ev_pred, cast_pred, data, ~fit_rows & data["real"]),
        "fit_images": int(fit_rows.sum()),
        "sources": int(len(set(data["photo"]))),
    }
    model = {"input_mean": mean, "input_std": std, "output_scale": scale}
    for i, layer in enumerate(m for m in net if isinstance(m, torch.nn.Linear)):
        model[f"{i}.weight"] = layer.weight.detach().numpy()
        model[f"{i}.bias"] = layer.bias.detach().numpy()
    return model, card


def write(model_file: Path, model: dict[str, np.ndarray], card: dict[str, Any]) -> None:
    """Store the model in the multi-head model file under `edit_offsets.*` and describe it in
    the card's `edit_offsets` entry (`training.export.write_model`: both rewritten atomically,
    every other tensor kept)."""
    import torch
    from safetensors.torch import load_file

    from photod.models import edit_offsets
    from photod.training.export import write_model

    state = {
        k: v for k, v in load_file(str(model_file)).items() if not k.startswith(edit_offsets.PREFIX)
    }
    state.update({k: torch.from_numpy(v) for k, v in edit_offsets.state_dict(model).items()})
    full = json.loads(model_file.with_suffix(".json").read_text())
    full["edit_offsets"] = {"outputs": list(edit_offsets.OUTPUTS), **card}
    write_model(model_file, state, full)


def main(argv: list[str] | None = None) -> int:
    from photod.models.edit_preference import DEFAULT_MODEL_FILE

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--para", type=int, default=3000, help="good PARA photos to draw from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench-root", type=Path, default=Path(".cache/photod-bench/root"))
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_FILE, help="model file")
    parser.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = build(args.para, args.seed, args.bench_root)
    model, card = fit(data)
    print(json.dumps(card, indent=2))
    if not args.dry_run:
        write(args.out, model, card)
        print(f"wrote the offsets model into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
