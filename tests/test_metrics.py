"""The paper's top-vs-bottom-20 % protocol and the correlation metrics on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from photod.training.evaluate import binary_metrics
from photod.training.metrics import regression_report, top_bottom_metrics


def test_top_bottom_protocol_uses_only_the_extremes() -> None:
    target = np.arange(100, dtype=float)
    perfect = top_bottom_metrics(target * 2, target)
    assert perfect["accuracy"] == 1.0 and perfect["f1"] == 1.0 and perfect["n"] == 40
    reversed_ = top_bottom_metrics(-target, target)
    assert reversed_["accuracy"] == 0.0
    # Noise in the middle 60 % does not matter: only the top and bottom 20 % are judged.
    middle_scrambled = target.copy()
    middle_scrambled[25:75] = np.random.default_rng(0).permutation(middle_scrambled[25:75])
    assert top_bottom_metrics(middle_scrambled, target)["accuracy"] == 1.0


def test_binary_metrics_match_the_protocol_on_labelled_classes() -> None:
    pred = np.array([0.9, 0.8, 0.3, 0.7, 0.2, 0.1])
    truth = np.array([1.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    metrics = binary_metrics(pred, truth)
    assert metrics["top_bottom_accuracy"] == pytest.approx(4 / 6)
    assert metrics["top_bottom_precision"] == pytest.approx(2 / 3)
    assert metrics["top_bottom_recall"] == pytest.approx(2 / 3)


def test_regression_report_correlations() -> None:
    rng = np.random.default_rng(1)
    target = rng.normal(size=500)
    report = regression_report(target + rng.normal(scale=0.1, size=500), target)
    assert report["srcc"] > 0.98 and report["plcc"] > 0.98
    assert regression_report(rng.normal(size=500), target)["srcc"] < 0.15
