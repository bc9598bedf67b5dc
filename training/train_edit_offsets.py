"""Train the search's starting points: how many stops a photo is off and which colour cast it
carries (models/edit_offsets.py), and the noise floors under which the search proposes nothing.

The edit-preference head ranks versions of one photo; asked to climb a ladder of exposures it
favours brighter versions, and among white-balance candidates it does no better than chance on
real photos (README, "Suggestions"). "How far is this photo from the good one" is a different,
easier question with dense labels: every good photo, shifted by a known EV in linear light
(clipped, like a camera) or given a known linear-light cast, says exactly what undoes it.

Data: the sources of `photod.training.edit_pairs` (good PARA training photos, split by session;
the real photos of REAL_TRAIN, never a benchmark file).
- Exposure (and the MLP's cast outputs, which the colour model supersedes): each source drawn
  clean, `exposures` shifts of +-0.3..2 EV, `casts` random casts (log red/green and blue/green
  gains within +-0.4), one shift and cast together; real photos 8 times. Inputs:
  `image_statistics` of each draw's working copy. A small MLP, Smooth-L1 loss, the epoch with
  the lowest held-out error kept.
- Colour: each source clean and with 4 random casts (`build_histograms`: real casts of the
  pixels, not shifted histograms); inputs `chroma_histograms`; `fit_colour` trains the
  FFCC-like colour model, the step with the lowest held-out error kept.
- Gates (`gates`): the 75th percentile of |prediction| on held-out clean photos, per output.
Written into the multi-head model file (`edit_offsets.*`) and its card (`edit_offsets`).

Run: `python -m photod.training.train_edit_offsets [--para N] [--out FILE] [--dry-run]
[--keep-colour]` (the two caches take ~20 and ~10 min to build on 2 cores, the fits ~3 and ~2
min; `--keep-colour` refits the exposure MLP alone, keeping the file's colour model).
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


def _source_rng(name: str, seed: int) -> np.random.Generator:
    """The draws' generator of one source: the same draws whatever the other sources."""
    return np.random.default_rng(
        int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") ^ seed
    )


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
        rng = _source_rng(name, seed)
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


def build_histograms(
    n_para: int, seed: int, bench_root: Path | None, casts: int = 4, max_cast: float = 0.4
) -> dict[str, np.ndarray]:
    """The colour model's data: `chroma_histograms` of every source's working copy, clean and
    with `casts` random linear-light casts (log r/g and b/g uniform within +-max_cast), each
    with the cast it carries (cached in CACHE). Real casts, not shifted histograms: a cast
    moves a histogram's bulk but not what the sRGB gamut, clipping and the dark floor cut
    from it, and a model trained on shifted histograms reads those edges as neutral."""
    from photod.models.edit_offsets import HIST_BINS, HIST_WIDTH, chroma_histograms
    from photod.training.edit_pairs import _cast, _linear, held_out, sources, working_copy

    key = f"hist3-p{n_para}-s{seed}-c{casts}-m{max_cast}-b{HIST_BINS}-w{HIST_WIDTH}"
    path = CACHE / f"{key}.npz"
    if path.exists():
        return dict(np.load(path))
    rows: dict[str, list[Any]] = {
        "photo": [], "held_out": [], "real": [], "cast": [], "histograms": []
    }  # fmt: skip
    started = time.perf_counter()
    items = sources(n_para, seed, bench_root)
    for k, (name, split_key, origin, item) in enumerate(items):
        rng = _source_rng(name, seed)
        image = working_copy(item)
        lin = _linear(image)
        draws = [(image, np.zeros(2))]
        for _ in range(casts):
            log_gains = rng.uniform(-max_cast, max_cast, 2)
            draws.append((_cast(lin, np.exp([log_gains[0], 0.0, log_gains[1]])), log_gains))
        for pixels, log_gains in draws:
            rows["photo"].append(name)
            rows["held_out"].append(held_out(split_key))
            rows["real"].append(origin == "real")
            rows["cast"].append(log_gains)
            rows["histograms"].append(chroma_histograms(pixels).astype(np.float16))
        if k % 200 == 0:
            log.info(
                "%d/%d sources' histograms, %.0f s", k, len(items), time.perf_counter() - started
            )
    data = {key: np.array(value) for key, value in rows.items()}
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def fit_colour(
    data: dict[str, np.ndarray], steps: int = 5000, seed: int = 0
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The colour model (`models.edit_offsets.ColourModel`): two filters and a prior trained on
    the fit photos' draws (`build_histograms`: clean and cast), Smooth-L1 on the estimated
    cast, total-variation smoothing of filters and prior; the step with the lowest held-out
    median error kept (checked every 100 steps)."""
    import torch

    from photod.models.edit_offsets import HIST_BINS, HIST_WIDTH

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    hist = torch.from_numpy(np.nan_to_num(data["histograms"].astype(np.float32)))
    cast = torch.from_numpy(data["cast"].astype(np.float32))
    fit_rows = np.where(~data["held_out"])[0]
    held_rows = np.where(data["held_out"])[0]
    # Real photos are few and nearer what photod sees: drawn 8 times as often.
    weights = np.where(data["real"][fit_rows], 8.0, 1.0)
    weights /= weights.sum()
    n = HIST_BINS
    filters = torch.zeros(2, n, n, requires_grad=True)
    prior = torch.zeros(n, n, requires_grad=True)
    coords = torch.from_numpy(((np.arange(n) + n // 2) % n - n // 2).astype(np.float32))
    coords = coords * HIST_WIDTH
    optimiser = torch.optim.Adam([filters, prior], lr=0.05)

    def estimate(h: torch.Tensor) -> torch.Tensor:
        spectra = torch.fft.rfft2(h) * torch.fft.rfft2(filters)[None]
        scores = torch.fft.irfft2(spectra.sum(1), s=(n, n)) + prior
        p = torch.softmax(scores.reshape(len(h), -1), 1).reshape(-1, n, n)
        return torch.stack([(p.sum(2) * coords).sum(1), (p.sum(1) * coords).sum(1)], 1)

    def tv(x: torch.Tensor) -> torch.Tensor:
        return ((x - torch.roll(x, 1, -1)) ** 2).mean() + ((x - torch.roll(x, 1, -2)) ** 2).mean()

    def held_error() -> tuple[float, float]:
        with torch.no_grad():
            predicted = torch.cat(
                [estimate(hist[held_rows[i : i + 512]]) for i in range(0, len(held_rows), 512)]
            )
        truth = cast[held_rows]
        error = (predicted - truth).abs().max(1)[0]
        size = truth.abs().max(1)[0]
        has_cast = size > 0.1
        return float(error.median()), float((error[has_cast] / size[has_cast]).median())

    best: tuple[float, int, torch.Tensor, torch.Tensor, float] | None = None
    for step in range(steps):
        rows = torch.from_numpy(rng.choice(fit_rows, 256, p=weights))
        loss = torch.nn.functional.smooth_l1_loss(estimate(hist[rows]), cast[rows], beta=0.05)
        loss = loss + 1e-3 * tv(filters) + 1e-3 * tv(prior)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        if step % 100 == 99 or step == steps - 1:
            error, left = held_error()
            log.info("colour step %d: loss %.4f, held-out median error %.4f, left %.3f",
                     step + 1, loss.item(), error, left)  # fmt: skip
            if best is None or error < best[0]:
                best = (error, step + 1, filters.detach().clone(), prior.detach().clone(), left)
    assert best is not None
    model = {
        "colour.filters": best[2].numpy(),
        "colour.prior": best[3].numpy(),
        "colour.temperature": np.ones(1, np.float32),
    }
    card = {
        "fit": f"FFCC-like: 2 learnt {n}x{n} filters over log-chroma histograms (pixels, local "
        f"contrast; bins of {HIST_WIDTH}) and a prior, softmax-weighted mean shift",
        "step_kept": best[1],
        "held_out_median_error": round(best[0], 4),
        "held_out_cast_left_fraction_median": round(best[4], 3),
        "fit_draws": int(len(fit_rows)),
        "held_out_draws": int(len(held_rows)),
    }
    return model, card


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


def gates(
    data: dict[str, np.ndarray],
    histograms: dict[str, np.ndarray] | None,
    model: dict[str, np.ndarray],
) -> dict[str, Any]:
    """The search's noise floors (photod/suggest.py `around_prediction`): the 75th percentile of
    |predicted EV| and of the predicted cast's largest |log gain| on held-out clean photos. A
    prediction under them is what a clean photo reads as: the search proposes no such edit."""
    from photod.models.edit_offsets import EditOffsets

    offsets = EditOffsets(model)
    clean = data["held_out"] & (data["ev"] == 0) & (np.abs(data["cast"]).max(1) == 0)
    ev = np.abs(offsets.predict(data["statistics"][clean])[:, 0])
    out = {"ev": round(float(np.percentile(ev, 75)), 3)}
    if offsets.colour is not None and histograms is not None:
        clean = histograms["held_out"] & (np.abs(histograms["cast"]).max(1) == 0)
        cast = offsets.colour.cast(
            np.nan_to_num(histograms["histograms"][clean].astype(np.float32))
        )
        out["cast"] = round(float(np.percentile(np.abs(cast).max(1), 75)), 3)
    out["rule"] = "75th percentile of |prediction| on held-out clean photos"
    return out


def kept_colour(model_file: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The model file's colour model (`colour.*` tensors, without the prefix) and its card's
    `edit_offsets` entry, for a refit of the exposure MLP alone (`--keep-colour`)."""
    from safetensors import safe_open

    from photod.models import edit_offsets

    prefix = edit_offsets.PREFIX + "colour."
    with safe_open(str(model_file), "np") as handle:
        model = {
            k[len(edit_offsets.PREFIX) :]: handle.get_tensor(k)
            for k in handle.keys()
            if k.startswith(prefix)
        }
    card = json.loads(model_file.with_suffix(".json").read_text()).get("edit_offsets", {})
    if not model or "colour" not in card or "cast" not in card.get("gates", {}):
        raise SystemExit(f"{model_file} has no colour model to keep: train without --keep-colour")
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
    parser.add_argument("--para", type=int, default=6000, help="good PARA photos to draw from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--bench-root", type=Path, default=Path(".cache/photod-bench/root"))
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL_FILE, help="model file")
    parser.add_argument("--dry-run", action="store_true", help="fit and report, write nothing")
    parser.add_argument(
        "--keep-colour",
        action="store_true",
        help="refit the exposure MLP only: keep the model file's colour model and its gate",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = build(args.para, args.seed, args.bench_root, exposures=4, casts=3)
    model, card = fit(data, hidden=256, epochs=60)
    if args.keep_colour:
        colour_model, old_card = kept_colour(args.out)
        model.update(colour_model)
        card["colour"] = old_card["colour"]
        card["gates"] = {**gates(data, None, model), "cast": old_card["gates"]["cast"]}
    else:
        histograms = build_histograms(args.para, args.seed, args.bench_root)
        colour_model, card["colour"] = fit_colour(histograms)
        model.update(colour_model)
        card["gates"] = gates(data, histograms, model)
    print(json.dumps(card, indent=2))
    if not args.dry_run:
        write(args.out, model, card)
        print(f"wrote the offsets model into {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
