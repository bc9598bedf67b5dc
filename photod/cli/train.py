"""`photod train` (the shipped model's recipe, or a personal model from your ratings) and `photod eval`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from photod.cli.common import device_option, emit_json, json_option, library_errors, model_option

DATASETS = ("para", "csv", "ava", "popularity")


@click.command()
@click.option(
    "--from-ratings",
    "ratings_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Train a personal model from the star ratings you set on the photos in this folder.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 1000),
    default=None,
    help="Training epochs (the PARA recipes; --from-ratings has a closed form).",
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--folds",
    type=click.IntRange(2, 20),
    default=5,
    show_default=True,
    help="With --from-ratings: folds of the cross-validation that compares the models.",
)
@click.option(
    "--repeats",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="With --from-ratings: repetitions of the cross-validation (new random folds each).",
)
@click.option(
    "--min-gain",
    type=click.FloatRange(0.0, 1.0),
    default=0.02,
    show_default=True,
    help="With --from-ratings: the SRCC gain the personal model needs (and a 95 % lower bound "
    "above 0) to become active.",
)
@click.option("--name", default="personal", show_default=True, help="Personal model name.")
@click.option("--base", default=None, help="Shipped model to start from (default: the default).")
@click.option(
    "--recipe",
    type=click.Choice(["linear", "mlp", "finetune"]),
    default="linear",
    show_default=True,
    help="Without --from-ratings: 'linear' reproduces the shipped v2 (pair-constrained ridge head "
    "on frozen features); 'mlp' the pair-aware MLP head; 'finetune' trains photod-aesthetic-v3: "
    "stages 5-6 fine-tuned from v2 (about 50 minutes on 2 CPU cores, caches included).",
)
@click.option(
    "--resume", is_flag=True, help="--recipe finetune: continue from the last checkpoint."
)
@json_option
@device_option
@library_errors
def train(
    ratings_dir: Path | None,
    epochs: int | None,
    seed: int,
    folds: int,
    repeats: int,
    min_gain: float,
    name: str,
    base: str | None,
    recipe: str,
    resume: bool,
    as_json: bool,
    device: str | None,
) -> None:
    """Train a model: your personal one (--from-ratings DIR), or the shipped one on PARA.

    Without --from-ratings this reproduces photod-aesthetic-v2 from PARA (../shared/data/para-train
    or $PHOTOD_PARA_DIR) and overwrites models/weights/photod-aesthetic-v2.* (--recipe finetune:
    photod-aesthetic-v3.*).

    With --from-ratings, photod reads the ratings you set in darktable, Lightroom, the camera or
    Windows (never the ones photod wrote; rejects count as below 1 star, 0 is unrated) and learns
    a correction to the shipped model's score from the pairs of photos you rated differently.
    Cross-validation over your ratings compares both models; the personal one becomes active only
    when it wins clearly. `photod models --use default` reverts.
    """
    if ratings_dir is None:
        argv = ["--seed", str(seed)] + (["--epochs", str(epochs)] if epochs else [])
        if recipe == "linear":
            from photod.training.train_linear import main as recipe_main

            argv = []  # closed form: no epochs, no seed
        elif recipe == "mlp":
            from photod.training.train_v2 import main as recipe_main
        else:
            from photod.training.finetune import main as recipe_main

            argv += ["--device", device or "auto"] + (["--resume"] if resume else [])
        result = recipe_main(argv)
        if as_json:
            emit_json(result)
        return

    from tqdm import tqdm

    from photod.training.personal import train_personal

    bar = tqdm(unit="photo", file=sys.stderr, disable=as_json or not sys.stderr.isatty())
    report = train_personal(
        ratings_dir,
        base=base,
        folds=folds,
        repeats=repeats,
        min_gain=min_gain,
        seed=seed,
        device=device or "auto",
        name=name,
        progress=bar.update,
        on_count=lambda n: setattr(bar, "total", n),
    )
    bar.close()
    if as_json:
        emit_json(report)
        return
    counts = ", ".join(
        f"{'reject' if k == '-1' else k + chr(0x2605)} {v}" for k, v in report["ratings"].items()
    )
    click.echo(f"{report['n_ratings']} rated photos ({counts})")
    click.echo(
        f"cross-validated SRCC ({report['folds']} folds x {report['repeats']}, whole "
        f"{report['grouped_by']}s held out):"
    )
    click.echo(f"  {report['base']:<24} {report['base_srcc']:.3f} ± {report['base_srcc_se']:.3f}")
    click.echo(f"  {report['name']:<24} {report['srcc']:.3f} ± {report['srcc_se']:.3f}")
    click.echo(f"  {report['decision']}")
    if report["active"]:
        click.echo(
            f"{report['name']} is now the active model (`photod models --use default` reverts)"
        )
    else:
        click.echo(
            f"{report['name']} did not clearly beat {report['base']}; the active model is "
            f"unchanged (saved; `photod models --use {report['name']}` to use it anyway)"
        )


def load_dataset(kind: str, path: Path | None, split: str) -> list[Any]:
    """Samples of a labelled set (see photod.training.datasets)."""
    from photod.training import datasets

    if kind == "para":
        return datasets.para_dataset(root=path, split=split)
    if path is None:
        raise click.UsageError(f"--dataset {kind} needs a PATH (the CSV or AVA.txt)")
    if kind == "csv":
        return datasets.csv_dataset(path, split=split)
    if kind == "ava":
        return datasets.ava_dataset(path, split=split)
    return datasets.popularity_dataset(path, split=split)


def _baselines(kind: str, path: Path | None, split: str, device: str) -> dict[str, Any]:
    """The paper's baselines, fitted on the set's train split and measured on `split`."""
    import numpy as np

    from photod.decode import decode_image
    from photod.training.evaluate import handcrafted_matrix, run_baselines
    from photod.training.features import extract_features

    train = load_dataset(kind, path, "train")
    test = load_dataset(kind, path, split)
    if len(train) < 10 or len(test) < 5:
        raise click.UsageError("baselines need at least 10 training and 5 evaluation photos")
    x_train, _ = extract_features([s.path for s in train], device=device)
    x_test, _ = extract_features([s.path for s in test], device=device)
    hand_train = handcrafted_matrix([decode_image(s.path).pixels for s in train])
    hand_test = handcrafted_matrix([decode_image(s.path).pixels for s in test])
    y_train = np.array([s.target for s in train], float)
    y_test = np.array([s.target for s in test], float)
    results, _ = run_baselines(x_train, y_train, x_test, y_test, hand_train, hand_test)
    return results


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


@click.command(name="eval")
@click.argument("path", required=False, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--dataset",
    "kind",
    type=click.Choice(DATASETS),
    default="para",
    show_default=True,
    help="para: PARA's labels.csv folder (default ../shared/data/para-train); csv: image,score; "
    "ava: AVA.txt; popularity: image,views,upload_date,crawl_date.",
)
@click.option(
    "--split",
    type=click.Choice(["val", "train", "all"]),
    default="val",
    show_default=True,
    help="Part of the set to evaluate on (split by session/group with a fixed seed).",
)
@click.option(
    "--pairs",
    "pair_photos",
    type=click.IntRange(0, 100000),
    default=100,
    show_default=True,
    help="Good photos to degrade for the synthetic-pair accuracy (0: none).",
)
@click.option(
    "--baselines", is_flag=True, help="Also fit and measure the paper's baselines on the set."
)
@model_option
@json_option
@device_option
@library_errors
def evaluate(
    path: Path | None,
    kind: str,
    split: str,
    pair_photos: int,
    baselines: bool,
    model: str | None,
    as_json: bool,
    device: str | None,
) -> None:
    """Measure a model on a labelled set: SRCC, PLCC, top/bottom-20 % and synthetic pairs."""
    from tqdm import tqdm

    from photod.models import active_model_name
    from photod.training.evaluate import evaluate_model

    samples = load_dataset(kind, path, split)
    if not samples:
        raise click.UsageError(f"no labelled photos in the {split} split")
    name = model or active_model_name()
    show = not as_json and sys.stderr.isatty()
    with tqdm(total=len(samples), unit="photo", file=sys.stderr, disable=not show) as bar:
        report = evaluate_model(
            name, samples, device=device or "auto", pair_photos=pair_photos, progress=bar.update
        )
    report["dataset"], report["split"] = kind, split
    if baselines:
        report["baselines"] = _baselines(kind, path, split, device or "cpu")
    if as_json:
        emit_json(report)
        return
    click.echo(f"{name} on {kind} ({split}): {report['n']} photos, {report['failed']} failed")
    for key, value in report.items():
        if key in ("pairs", "baselines", "model", "n", "failed", "dataset", "split"):
            continue
        click.echo(f"  {key:<24} {_fmt(value)}")
    if "pairs" in report:
        click.echo(f"synthetic pairs ({report['pair_photos']} good photos): original wins")
        for label, value in report["pairs"].items():
            click.echo(f"  {label:<24} {value:.1%}")
    for row_name, row in report.get("baselines", {}).items():
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if not k.endswith("_n"))
        click.echo(f"baseline {row_name}: {shown}")


def register(group: click.Group) -> None:
    group.add_command(train)
    group.add_command(evaluate)
