"""The paper's experiments on PARA, rebuilt: tables, learning curves (Fig. 3), contact sheets (Fig. 4).

    python -m photod.training.report [--out training/reports]

Everything is measured on the validation sessions of para-train (never trained on):
- photod-aesthetic-v4 (the default), -v2, -v3 (fine-tuned stages run on the cached stage-0-3
  trunk) and -v1 (SRCC, PLCC, top-vs-bottom-20 % accuracy/precision/recall/F1);
- the paper's baselines (Table I/II): linear SVM, RBF SVM and random forest on frozen ImageNet
  MLSP features, trained on the top/bottom 20 % of the training sessions; ridge regressions on the
  same features and on handcrafted properties (saturation, sharpness, contrast, exposure, ...);
  a small MLP (one hidden layer of 512) regressing the means on the same frozen features;
- synthetic-pair accuracy per degradation on good validation photos, for every model above that
  gives a score;
- an end-to-end check: the shipped v2 file loaded by `Scorer` and run on decoded pixels must agree
  with the cached-trunk numbers; and the score's flip noise, the gain margin `photod suggest` needs.

Scores come from one cache of ImageNet stages 0-3 (`para-trunk4` shards, shared with
`finetune_v4`; the frozen features of v1/v2 and the baselines are computed from it), so the
report takes minutes on an idle CPU once that cache exists.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from photod.training.datasets import para_dataset, session_split

log = logging.getLogger("photod")

REPO = Path(__file__).resolve().parent.parent
CACHE = REPO / ".cache" / "features"
# Every model is scored from one cache of ImageNet stages 0-3 (v4's trunk): v1/v2 through frozen
# ImageNet stages 4-6, v3 and v4 through their own (v3's stage 4 is ImageNet's).
TRUNK_STAGES = 4
TRUNK_CACHE = CACHE / "para-trunk4"
VAL_PAIR_CACHE = CACHE / "para-valpairs-trunk4-150.npz"
DEFAULT_OUT = REPO / "training" / "reports"
VAL_PAIR_PHOTOS = 150


# --- Figures ---------------------------------------------------------------------------------------


def fine_tune_card(model: str) -> dict[str, Any]:
    """The model card of `model` (its per-epoch validation is `history`, its losses `steps`)."""
    from photod.models.registry import get_model_spec

    card_path = Path(get_model_spec(model).weights).with_suffix(".json")
    return json.loads(card_path.read_text()) if card_path.exists() else {}


def fine_tune_curves_png(card: dict[str, Any], out: Path) -> None:
    """Fig. 3 for a fine-tuned model: training losses by step, validation metrics by epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=80)
    steps = card.get("steps", [])
    if steps:
        x = [r["step"] for r in steps]
        axes[0].plot(x, [r["mse"] for r in steps], "C0-", lw=1, label="MSE (z units)")
        axes[0].plot(x, [r["pair"] for r in steps], "C1-", lw=1, label="pair margin loss")
        axes[0].set_xlabel("step (batch of 64 + 16 pairs)")
        axes[0].legend(fontsize=8)
    axes[0].set_title(f"{card.get('name', '')}: training losses")
    epochs = card["history"]
    e = [r["epoch"] for r in epochs]
    axes[1].plot(e, [r["srcc"] for r in epochs], "o-", label="val SRCC")
    axes[1].plot(e, [r["plcc"] for r in epochs], "o-", label="val PLCC")
    axes[1].plot(e, [r["train_srcc"] for r in epochs], "o--", label="train SRCC (500 photos)")
    axes[1].plot(e, [r["top_bottom_accuracy"] for r in epochs], "s-", label="val top/bottom acc")
    axes[1].plot(e, [r["val_pairs"]["all"] for r in epochs], "^-", label="val pair acc")
    axes[1].set_xlabel("epoch")
    axes[1].set_title("validation after each epoch (raw weights)")
    axes[1].legend(fontsize=7)
    axes[1].grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)


def mlp_baseline(
    x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, y_test: np.ndarray
) -> dict[str, Any]:
    """A small MLP on the frozen MLSP features (512 hidden units, early stopping, seed 0)."""
    from sklearn.neural_network import MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from photod.training.evaluate import score_report

    model = make_pipeline(
        StandardScaler(),
        MLPRegressor(
            hidden_layer_sizes=(512,),
            alpha=1e-2,
            learning_rate_init=1e-3,
            batch_size=256,
            early_stopping=True,
            max_iter=60,
            random_state=0,
        ),
    )
    model.fit(x_train, y_train)
    return score_report(model.predict(x_test), y_test)


def contact_sheet(paths: list[Path], out: Path, thumb: int = 56, columns: int = 10) -> None:
    """Fig. 4: a grid of thumbnails (as PNG with a 256-colour palette, to keep the file small)."""
    from PIL import Image

    rows = (len(paths) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * thumb, rows * thumb), "white")
    for i, path in enumerate(paths):
        with Image.open(path) as image:
            tile = image.convert("RGB").resize((thumb - 2, thumb - 2))
        sheet.paste(tile, ((i % columns) * thumb + 1, (i // columns) * thumb + 1))
    sheet.quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)


# --- Tables ----------------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "–" if value is None else str(value)


def markdown_table(rows: dict[str, dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    head = "| model | " + " | ".join(title for _, title in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    body = [
        f"| {name} | " + " | ".join(_cell(row.get(key)) for key, _ in columns) + " |"
        for name, row in rows.items()
    ]
    return "\n".join([head, rule, *body])


# --- The run ---------------------------------------------------------------------------------------


def frozen_features(maps: np.ndarray, stats: np.ndarray, stages: int = TRUNK_STAGES) -> np.ndarray:
    """ImageNet (frozen) MLSP features of trunk rows: the later stages and head conv run here."""
    import torch

    from photod.models.backbone import build_backbone
    from photod.training.features import tail_forward

    backbone = build_backbone()
    out = []
    with torch.inference_mode():
        for i in range(0, len(maps), 128):
            m = torch.from_numpy(maps[i : i + 128]).float()
            s = torch.from_numpy(stats[i : i + 128])
            out.append(tail_forward(backbone, torch.nn.Identity(), m, s, stages)[0].numpy())
    return np.concatenate(out) if out else np.zeros((0, 2848), np.float32)


def val_pair_choice(samples: list[Any], va: np.ndarray) -> np.ndarray:
    """The good validation photos (above the validation median) that get degraded, seeded."""
    y = np.array([samples[i].target for i in va])
    good = va[y > np.median(y)]
    return np.sort(np.random.default_rng(0).permutation(good)[:VAL_PAIR_PHOTOS])


def val_pair_layout(n_photos: int) -> tuple[list[str], list[int]]:
    """(label, origin) of every validation pair: each photo's evaluation degradations in order."""
    from photod.training.evaluate import pair_images

    kinds = pair_images([np.zeros((8, 8, 3), np.uint8)])[1]
    return kinds * n_photos, [i for i in range(n_photos) for _ in kinds]


def val_pair_trunk(
    samples: list[Any], va: np.ndarray, cache: Path | None = None, stages: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str], list[int]]:
    """The validation pairs as trunk rows: (chosen original rows, degraded maps, their early stats,
    labels, origin index into chosen), cached in `cache` (default under .cache/features)."""
    from photod.decode import decode_image
    from photod.training.evaluate import pair_images
    from photod.training.features import extract_trunk

    chosen = val_pair_choice(samples, va)
    cache = cache or VAL_PAIR_CACHE
    labels, origin = val_pair_layout(len(chosen))
    if cache.exists():
        data = np.load(cache)
        maps, stats = data["maps"], data["stats"]
    else:
        originals = [decode_image(samples[i].path).pixels for i in chosen]
        maps, stats = extract_trunk(
            pair_images(originals)[0],
            batch_size=32,
            desc="val pairs",
            **({"stages": stages} if stages else {}),
        )
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, maps=maps, stats=stats)
    return chosen, maps, stats, labels, origin


def val_pair_features(
    features: np.ndarray, samples: list[Any], va: np.ndarray
) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    """(frozen features of the chosen originals, of their degraded versions, labels, origin)."""
    frozen_cache = CACHE / f"para-valpairs-frozen-t{TRUNK_STAGES}-{VAL_PAIR_PHOTOS}.npz"
    if frozen_cache.exists():
        chosen = val_pair_choice(samples, va)
        labels, origin = val_pair_layout(len(chosen))
        deg = np.load(frozen_cache)["features"]
    else:
        chosen, maps, stats, labels, origin = val_pair_trunk(samples, va, stages=TRUNK_STAGES)
        deg = frozen_features(maps, stats)
        np.savez(frozen_cache, features=deg)
    return features[chosen], deg, labels, origin


def head_scores(model: str, rows: np.ndarray) -> np.ndarray:
    """Scores of frozen-feature rows by a head-only model (its backbone is the ImageNet one)."""
    import torch

    from photod.models.aesthetic import AestheticNet, load_weights
    from photod.models.registry import get_model_spec

    spec = get_model_spec(model)
    if fine_tuned(model):
        raise SystemExit(f"{model} has a fine-tuned backbone; its scores need the trunk path")
    net = AestheticNet(backbone=torch.nn.Identity())
    load_weights(net, spec.weights)
    with torch.inference_mode():
        return net.head.eval()(torch.from_numpy(rows).float()).numpy()


def fine_tuned(model: str) -> bool:
    """True when the model's file carries backbone weights (its late stages were fine-tuned)."""
    from safetensors import safe_open

    from photod.models.registry import get_model_spec

    with safe_open(str(get_model_spec(model).weights), "pt") as weights:
        return any(key.startswith("backbone.") for key in weights.keys())  # noqa: SIM118


def trunk_scores(model: str, maps: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Scores of cached trunk rows (frozen stages 0-3) through the model's own later stages."""
    import torch

    from photod.models.aesthetic import AestheticNet, load_weights, tail_forward
    from photod.models.registry import get_model_spec

    net = AestheticNet()
    load_weights(net, get_model_spec(model).weights)
    net.eval()
    out = []
    with torch.inference_mode():
        for i in range(0, len(maps), 256):
            m = torch.from_numpy(maps[i : i + 256]).float()
            s = torch.from_numpy(stats[i : i + 256])
            out.append(tail_forward(net.backbone, net.head, m, s, TRUNK_STAGES)[0].numpy())
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def imagenet_features(paths: list[Path], maps: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """Frozen ImageNet MLSP features of every image, from the trunk cache (cached by name)."""
    names = np.array([p.name for p in paths])
    cache = CACHE / f"para-imagenet-t{TRUNK_STAGES}.npz"
    if cache.exists():
        data = np.load(cache)
        if data["names"].shape == names.shape and (data["names"] == names).all():
            return data["features"]
    features = frozen_features(maps, stats)
    np.savez(cache, names=names, features=features)
    return features


def run(out: Path, models: list[str]) -> dict[str, Any]:
    from photod.decode import decode_image
    from photod.models.registry import get_model_spec
    from photod.training.evaluate import (
        HANDCRAFTED_NAMES,
        handcrafted_matrix,
        pair_accuracy,
        pair_images,
        run_baselines,
        score_report,
    )

    missing = [m for m in models if not get_model_spec(m).available]
    for name in missing:
        log.warning("skipping %s: its weights are missing", name)
    models = [m for m in models if m not in missing]
    out.mkdir(parents=True, exist_ok=True)
    samples = para_dataset(split="all")
    paths = [s.path for s in samples]
    y = np.array([s.target for s in samples], np.float32)
    is_val = np.array([session_split(s.group) == "val" for s in samples])
    tr, va = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    log.info("loading caches")
    from photod.training.features import sharded_trunk

    maps, stats, have = sharded_trunk(paths, TRUNK_CACHE, first=va, stages=TRUNK_STAGES)
    frozen = imagenet_features(paths, maps, stats)
    hand_cache = CACHE / f"para-handcrafted-{len(paths)}.npz"
    if hand_cache.exists():
        hand = np.load(hand_cache)["hand"]
    else:
        hand = handcrafted_matrix([decode_image(p).pixels for p in paths])
        np.savez(hand_cache, hand=hand)
    chosen = val_pair_choice(samples, va)
    val_orig, val_deg, labels, origin = val_pair_features(frozen, samples, va)
    originals = [decode_image(paths[i]).pixels for i in chosen]
    degraded = pair_images(originals)[0]
    hand_deg = handcrafted_matrix(degraded)

    rows: dict[str, dict[str, Any]] = {}
    pairs: dict[str, dict[str, float]] = {}
    val_pred: dict[str, np.ndarray] = {}
    pair_scores: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    _, vp_maps, vp_stats, _, _ = val_pair_trunk(samples, va, stages=TRUNK_STAGES)
    for name in models:
        if fine_tuned(name):
            pred = trunk_scores(name, maps[va], stats[va])
            po = trunk_scores(name, maps[chosen], stats[chosen])
            pd = trunk_scores(name, vp_maps, vp_stats)
        else:
            pred = head_scores(name, frozen[va])
            po, pd = head_scores(name, val_orig), head_scores(name, val_deg)
        val_pred[name] = pred
        rows[name] = score_report(pred, y[va])
        pairs[name] = pair_accuracy(po, pd, labels, origin)
        pair_scores[name] = (po, pd)

    log.info("baselines")
    import pickle

    baseline_cache = CACHE / f"para-baselines-t{TRUNK_STAGES}-{VAL_PAIR_PHOTOS}.pkl"
    if baseline_cache.exists():
        # The baselines depend only on the cached features: fit them once (minutes of CPU).
        base_rows, extra = pickle.loads(baseline_cache.read_bytes())
    else:
        base_rows, extra = run_baselines(
            frozen[tr],
            y[tr],
            frozen[va],
            y[va],
            hand[tr],
            hand[va],
            extra_test={
                "orig_frozen": val_orig,
                "deg_frozen": val_deg,
                "orig_hand": hand[chosen],
                "deg_hand": hand_deg,
            },
            forest_trees=100,
        )
    baseline_cache.write_bytes(pickle.dumps((base_rows, extra)))
    rows.update(base_rows)
    mlp_cache = CACHE / f"para-mlp-baseline-t{TRUNK_STAGES}.pkl"
    if mlp_cache.exists():
        rows["MLP (frozen features)"] = pickle.loads(mlp_cache.read_bytes())
    else:
        rows["MLP (frozen features)"] = mlp_baseline(frozen[tr], y[tr], frozen[va], y[va])
        mlp_cache.write_bytes(pickle.dumps(rows["MLP (frozen features)"]))
    for name in ("ridge (frozen features)", "ridge (handcrafted)"):
        kind = "frozen" if "frozen" in name else "hand"
        orig = extra[f"orig_{kind}"][name]
        pairs[name] = pair_accuracy(orig, extra[f"deg_{kind}"][name], labels, origin)

    checks = end_to_end_check(models[0], [paths[i] for i in chosen[:32]], degraded, origin)
    # The same pairs through the cached features, scored once above, for comparison.
    orig_scores, deg_scores = pair_scores[models[0]]
    first = np.asarray(origin) < 32
    checks["cached_pair_accuracy_same_photos"] = float(
        np.mean(orig_scores[np.asarray(origin)[first]] > deg_scores[first])
    )
    order = np.argsort(val_pred[models[0]])
    contact_sheet([paths[va[i]] for i in order[::-1][:100]], out / "best-100.png")
    contact_sheet([paths[va[i]] for i in order[:100]], out / "worst-100.png")
    card = fine_tune_card(models[0])
    if card.get("history"):
        fine_tune_curves_png(card, out / "learning-curves.png")
        (out / "history.json").write_text(
            json.dumps({"epochs": card["history"], "steps": card.get("steps", [])}, indent=1)
        )

    result = {
        "split": {"train_images": int(len(tr)), "val_images": int(len(va))},
        "rows": rows,
        "pairs": pairs,
        "pair_photos": int(len(chosen)),
        "checks": checks,
        "handcrafted": list(HANDCRAFTED_NAMES),
    }
    (out / "results.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    (out / "README.md").write_text(render_markdown(result, models))
    return result


def end_to_end_check(
    model: str, paths: list[Path], degraded: list[np.ndarray], origin: list[int]
) -> dict[str, Any]:
    """The shipped file through `Scorer` on decoded pixels: flip noise and pair wins, end to end."""
    from photod.decode import decode_image
    from photod.scoring import Scorer

    scorer = Scorer(model=model, device="cpu", batch_size=32)
    pixels = [decode_image(p).pixels for p in paths]
    plain, _ = scorer.score_pixels(pixels)
    flipped, _ = scorer.score_pixels([p[:, ::-1].copy() for p in pixels])
    noise = np.abs(plain - flipped)
    n = len(paths)
    keep = [j for j, o in enumerate(origin) if o < n]
    deg_scores, _ = scorer.score_pixels([degraded[j] for j in keep])
    wins = plain[np.asarray([origin[j] for j in keep])] > deg_scores
    return {
        "e2e_photos": n,
        "e2e_pair_accuracy": float(wins.mean()),
        "flip_noise_median": float(np.median(noise)),
        "flip_noise_p95": float(np.quantile(noise, 0.95)),
    }


def render_markdown(result: dict[str, Any], models: list[str]) -> str:
    cols = [
        ("srcc", "SRCC"),
        ("plcc", "PLCC"),
        ("top_bottom_accuracy", "top/bottom-20 % acc"),
        ("top_bottom_precision", "precision"),
        ("top_bottom_recall", "recall"),
        ("top_bottom_f1", "F1"),
    ]
    pair_labels = list(next(iter(result["pairs"].values())).keys())
    pair_cols = [(k, k.replace("_", " ")) for k in pair_labels]
    checks = result["checks"]
    split = result["split"]
    return f"""# photod on PARA: the paper's experiments, rebuilt

Generated by `python -m photod.training.report` from the committed weights and the feature caches.
Validation = the sessions of para-train that `training/datasets.py` puts in `val` (seed 20261129,
20 % of sessions; {split["val_images"]} images), never trained on; training = the other
{split["train_images"]} images. PARA: Yang et al., CVPR 2022 — research/learning use only.

## Table I/II protocol and correlation (validation split)

Classifier rows (SVM, random forest, logistic) are trained on the top and bottom 20 % of the
training split and tested on those of the validation split, as in the paper; they give no
correlation. Model and ridge rows rank all validation photos; their top/bottom accuracy
thresholds the score at the median over the two extremes.

{markdown_table(result["rows"], cols)}

## Synthetic pairs: the original beats its degraded version

{result["pair_photos"]} good validation photos (aesthetic mean above the validation median), each
degraded ten ways at the fixed strengths of `training/degrade.py` (`EVAL_STRENGTH`: blur sigma 2 px
at 224, noise std 15, exposure exactly -1 / +1 EV in linear light, colour cast 0.25, contrast
halved, JPEG quality 10, tilt 6°, a crop keeping 45 % of the area against an edge, 20 % margins).

{markdown_table(result["pairs"], pair_cols)}

## End-to-end checks of {models[0]}

The shipped safetensors file loaded through `Scorer`, scoring decoded pixels (not caches):
- pair accuracy on {checks["e2e_photos"]} photos × 10 degradations: {checks["e2e_pair_accuracy"]:.3f}
- score change when a photo is mirrored (should be ~0): median {checks["flip_noise_median"]:.4f},
  95th percentile {checks["flip_noise_p95"]:.4f} — the smallest gain `photod suggest` should trust.

## Figures

- `learning-curves.png` (as the paper's Fig. 3): {models[0]}'s training losses by step and its
  validation SRCC, PLCC, top/bottom accuracy and pair accuracy after each epoch, beside its
  training SRCC (from the model card; `history.json` holds the numbers).
- `best-100.png`, `worst-100.png` (as Fig. 4): the 100 best and 100 worst validation photos by
  {models[0]}.

![learning curves](learning-curves.png)

Best 100:

![best](best-100.png)

Worst 100:

![worst](worst-100.png)
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--models",
        nargs="+",
        default=[
            "photod-aesthetic-v4",
            "photod-aesthetic-v2",
            "photod-aesthetic-v3",
            "photod-aesthetic-v1",
        ],
    )
    args = parser.parse_args(argv)
    return run(args.out, args.models)


if __name__ == "__main__":
    main()
