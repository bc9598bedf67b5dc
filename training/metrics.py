"""Evaluation metrics of the paper and of IQA work: SRCC, PLCC and the top-vs-bottom-20 % protocol."""

from __future__ import annotations

from typing import Any

import numpy as np


def srcc(pred: np.ndarray, target: np.ndarray) -> float:
    """Spearman rank correlation."""
    from scipy.stats import spearmanr

    return float(spearmanr(pred, target).statistic)


def plcc(pred: np.ndarray, target: np.ndarray) -> float:
    """Pearson linear correlation."""
    return float(np.corrcoef(pred, target)[0, 1])


def extremes_mask(target: np.ndarray, share: float = 0.2) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the top `share`, mask of the bottom `share`) of the ground truth, as in the paper."""
    low, high = np.quantile(target, [share, 1 - share])
    return target >= high, target <= low


def median_split_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy/precision/recall/F1 of boolean `truth`, predicting True above the median score.

    The median threshold needs no extra calibration set (the paper's classifiers were trained on
    exactly two balanced classes, top and bottom).
    """
    guess = pred >= np.median(pred)
    tp = float(np.sum(guess & truth))
    precision = tp / max(1.0, float(guess.sum()))
    recall = tp / max(1.0, float(truth.sum()))
    return {
        "accuracy": float(np.mean(guess == truth)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / max(1e-9, precision + recall),
        "n": int(len(truth)),
    }


def top_bottom_metrics(
    pred: np.ndarray, target: np.ndarray, share: float = 0.2
) -> dict[str, float]:
    """Accuracy/precision/recall/F1 of telling the top from the bottom `share` of photos."""
    top, bottom = extremes_mask(target, share)
    keep = top | bottom
    return median_split_metrics(pred[keep], top[keep])


def regression_report(pred: np.ndarray, target: np.ndarray) -> dict[str, Any]:
    """SRCC, PLCC and the top/bottom-20 % metrics in one dict."""
    report: dict[str, Any] = {"srcc": srcc(pred, target), "plcc": plcc(pred, target)}
    report.update({f"top_bottom_{k}": v for k, v in top_bottom_metrics(pred, target).items()})
    return report
