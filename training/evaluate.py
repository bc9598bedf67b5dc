"""Evaluate a model on a labelled set, the paper's way and the way `photod suggest` needs.

- Mean-opinion sets: SRCC, PLCC and the top-vs-bottom-20 % protocol (accuracy, precision, recall,
  F1) of the paper's Tables I/II (`training.metrics`). Binary sets (the popularity protocol, where
  only the two extremes are kept with targets 1/0) get the same four numbers on their own classes.
- Synthetic pairs: the share of good photos (target above the set's median) that score higher than
  their own degraded version, per degradation (`training.degrade`, fixed evaluation strengths;
  exposure at exactly -1 EV and +1 EV).
- Baselines in the same run (`run_baselines`): linear SVM, RBF SVM and random forest on frozen
  ImageNet features, as in the paper's Table II, ridge regressions for SRCC, and the handcrafted
  properties the paper names (saturation, sharpness, contrast, exposure).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from photod.training.datasets import Sample
from photod.training.degrade import EVAL_STRENGTH, KINDS, degrade
from photod.training.metrics import median_split_metrics, regression_report

log = logging.getLogger("photod")

HANDCRAFTED_NAMES = (
    "saturation",
    "sharpness",
    "rms_contrast",
    "exposure",
    "exposure_offset",
    "clipped_dark",
    "clipped_bright",
    "colourfulness",
)


def is_binary(target: np.ndarray) -> bool:
    return bool(len(target)) and set(np.unique(target).tolist()) <= {0.0, 1.0}


def binary_metrics(pred: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """Accuracy/precision/recall/F1 of classes 1 vs 0, thresholded at the median prediction."""
    metrics = median_split_metrics(pred, target == 1.0)
    return {f"top_bottom_{name}": value for name, value in metrics.items()}


def score_report(pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """The paper's and IQA's numbers for predictions of a labelled set."""
    pred, target = np.asarray(pred, float), np.asarray(target, float)
    if is_binary(target):
        from photod.training.metrics import srcc

        return {"srcc": srcc(pred, target), **binary_metrics(pred, target)}
    return regression_report(pred, target)


def eval_conditions() -> list[tuple[str, str, float]]:
    """(label, degradation kind, strength) of every evaluation pair type."""
    return [(kind, kind, EVAL_STRENGTH[kind]) for kind in KINDS]


def pair_images(
    images: Sequence[np.ndarray], seed: int = 0
) -> tuple[list[np.ndarray], list[str], list[int]]:
    """Every evaluation degradation of every image: (degraded arrays, labels, original index)."""
    out, labels, origin = [], [], []
    for i, pixels in enumerate(images):
        for label, kind, strength in eval_conditions():
            rng = np.random.default_rng([seed, i, KINDS.index(kind)])
            out.append(degrade(pixels, kind, rng, strength))
            labels.append(label)
            origin.append(i)
    return out, labels, origin


def pair_accuracy(
    original_scores: np.ndarray, degraded_scores: np.ndarray, labels: Sequence[str], origin
) -> dict[str, float]:
    """Share of pairs where the original wins, per label, plus 'all'."""
    wins = original_scores[np.asarray(origin)] > degraded_scores
    labels = np.asarray(labels)
    result = {label: float(wins[labels == label].mean()) for label in dict.fromkeys(labels)}
    result["all"] = float(wins.mean())
    return result


def good_subset(samples: Sequence[Sample], n: int, seed: int = 0) -> list[int]:
    """Up to `n` indices of samples above the median target (seeded choice)."""
    target = np.array([s.target for s in samples])
    if is_binary(target):
        good = np.flatnonzero(target == 1.0)
    else:
        good = np.flatnonzero(target > np.median(target))
    return sorted(np.random.default_rng(seed).permutation(good)[:n].tolist())


def evaluate_model(
    model: str,
    samples: Sequence[Sample],
    device: str = "auto",
    pair_photos: int = 100,
    batch_size: int = 32,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """End-to-end evaluation of `model` on files: decode, score, metrics, synthetic pairs."""
    from photod.decode import decode_image
    from photod.scoring import Scorer

    scorer = Scorer(model=model, device=device, batch_size=batch_size)
    paths = [s.path for s in samples]
    target = np.array([s.target for s in samples], float)
    results = list(scorer.score_paths(paths, progress=progress))
    ok = np.array([r.status == "ok" for r in results])
    pred = np.array([r.score if r.score is not None else np.nan for r in results], float)
    report: dict[str, Any] = {
        "model": scorer.version,
        "n": int(ok.sum()),
        "failed": int((~ok).sum()),
    }
    if ok.sum() >= 5:
        report.update(score_report(pred[ok], target[ok]))
    chosen = [i for i in good_subset(samples, pair_photos) if ok[i]]
    if chosen:
        originals = [decode_image(paths[i], min_side=224).pixels for i in chosen]
        degraded, labels, origin = pair_images(originals)
        orig_scores, _ = scorer.score_pixels(originals)
        deg_scores, _ = scorer.score_pixels(degraded)
        report["pairs"] = pair_accuracy(orig_scores, deg_scores, labels, origin)
        report["pair_photos"] = len(chosen)
    return report


# --- Handcrafted properties ------------------------------------------------------------------------


def handcrafted_features(pixels: np.ndarray) -> np.ndarray:
    """The paper's named properties of an HxWx3 uint8 image (at whatever size it comes)."""
    import cv2

    rgb = pixels.astype(np.float32) / 255.0
    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    hsv = cv2.cvtColor(pixels, cv2.COLOR_RGB2HSV)
    saturation = float(hsv[..., 1].mean() / 255.0)
    sharpness = float(np.log1p(cv2.Laplacian(grey, cv2.CV_32F).var() * 1e4))
    contrast = float(grey.std())
    exposure = float(grey.mean())
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    return np.array(
        [
            saturation,
            sharpness,
            contrast,
            exposure,
            abs(exposure - 0.46),
            float((grey < 0.02).mean()),
            float((grey > 0.98).mean()),
            colourfulness,
        ],
        np.float32,
    )


def handcrafted_matrix(images: Sequence[np.ndarray]) -> np.ndarray:
    return np.stack([handcrafted_features(p) for p in images]) if len(images) else np.zeros((0, 8))


# --- Baselines -------------------------------------------------------------------------------------


def run_baselines(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    hand_train: np.ndarray | None = None,
    hand_test: np.ndarray | None = None,
    extra_test: dict[str, np.ndarray] | None = None,
    seed: int = 0,
    forest_trees: int = 200,
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Fit the paper's baselines on train features; metrics on test.

    Classifiers (linear SVM, RBF SVM, random forest) follow Table I/II: trained on the top and
    bottom 20 % of the training targets, tested on those of the test set. Ridge regressions give the
    SRCC/PLCC rows. `extra_test` maps a name to more test rows (e.g. degraded images) to score with
    the fitted ridge models; returns (metrics per baseline, {name: {model: scores}}).
    """
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression, RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC, LinearSVC

    from photod.training.metrics import extremes_mask

    results: dict[str, dict[str, Any]] = {}
    extra_scores: dict[str, Any] = {}
    binary = is_binary(y_train)
    if binary:
        tr_mask = np.ones(len(y_train), bool)
        cls_train = y_train == 1.0
        test_keep = np.ones(len(y_test), bool)
        cls_test = y_test == 1.0
    else:
        top, bottom = extremes_mask(y_train)
        tr_mask = top | bottom
        cls_train = top[tr_mask]
        ttop, tbottom = extremes_mask(y_test)
        test_keep = ttop | tbottom
        cls_test = ttop[test_keep]

    def classifier_row(name: str, model: Any, xtr: np.ndarray, xte: np.ndarray) -> None:
        model.fit(xtr[tr_mask], cls_train)
        guess = model.predict(xte[test_keep]).astype(bool)
        tp = float(np.sum(guess & cls_test))
        precision = tp / max(1.0, float(guess.sum()))
        recall = tp / max(1.0, float(cls_test.sum()))
        results[name] = {
            "top_bottom_accuracy": float(np.mean(guess == cls_test)),
            "top_bottom_precision": precision,
            "top_bottom_recall": recall,
            "top_bottom_f1": 2 * precision * recall / max(1e-9, precision + recall),
            "top_bottom_n": int(test_keep.sum()),
        }

    def regression_row(name: str, xtr: np.ndarray, xte: np.ndarray, extra_key: str) -> None:
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-1, 4, 11)))
        model.fit(xtr, y_train)
        results[name] = score_report(model.predict(xte), y_test)
        for key, rows in (extra_test or {}).items():
            if rows.shape[1] == xte.shape[1]:
                extra_scores.setdefault(key, {})[name] = model.predict(rows)
        if extra_key:
            extra_scores.setdefault("test", {})[name] = model.predict(xte)

    scaled = make_pipeline(StandardScaler(), LinearSVC(C=0.01, max_iter=5000))
    classifier_row("linear SVM (frozen features)", scaled, x_train, x_test)
    rbf = make_pipeline(StandardScaler(), SVC(C=1.0, kernel="rbf", gamma="scale"))
    classifier_row("RBF SVM (frozen features)", rbf, x_train, x_test)
    forest = RandomForestClassifier(
        n_estimators=200, max_features="sqrt", n_jobs=1, random_state=seed
    )
    classifier_row("random forest (frozen features)", forest, x_train, x_test)
    regression_row("ridge (frozen features)", x_train, x_test, "test")
    if hand_train is not None and hand_test is not None:
        logistic = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        classifier_row("logistic (handcrafted)", logistic, hand_train, hand_test)
        regression_row("ridge (handcrafted)", hand_train, hand_test, "test")
    return results, extra_scores
