"""`photod eval` end to end on a small generated labelled set (real JPEGs, a real model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from photod.training.degrade import KINDS, degrade
from tests import photos
from tests.training_models import register_test_head


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("set")
    rng = np.random.default_rng(0)
    lines = ["image,score"]
    for i, name in enumerate(("chelsea", "coffee", "astronaut", "rocket", "cat")):
        pixels = photos.real_photo(name, scale=0.4)
        photos.write_jpeg(folder / f"{name}.jpg", pixels)
        photos.write_jpeg(folder / f"{name}-blur.jpg", degrade(pixels, "blur", rng, 3.0))
        lines += [f"{name}.jpg,{4.0 + i / 10}", f"{name}-blur.jpg,{2.0 + i / 10}"]
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    lines.append("broken.jpg,3.0")
    (folder / "set.csv").write_text("\n".join(lines) + "\n")
    return folder / "set.csv"


def test_eval_reports_metrics_and_pairs(labelled_csv: Path, tmp_path: Path) -> None:
    from photod.cli import cli

    model = register_test_head(tmp_path)
    args = ["eval", str(labelled_csv), "--dataset", "csv", "--split", "all", "--model", model]
    result = CliRunner().invoke(cli, [*args, "--pairs", "2", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["n"] == 10 and report["failed"] == 1  # the broken file is reported, not fatal
    assert -1.0 <= report["srcc"] <= 1.0 and -1.0 <= report["plcc"] <= 1.0
    assert 0.0 <= report["top_bottom_accuracy"] <= 1.0
    assert set(report["pairs"]) == {*KINDS, "all"}
    assert report["pair_photos"] == 2
    assert all(0.0 <= v <= 1.0 for v in report["pairs"].values())

    text = CliRunner().invoke(cli, [*args, "--pairs", "0", "--device", "cpu"])
    assert text.exit_code == 0, text.output
    assert "srcc" in text.output and "synthetic pairs" not in text.output


def test_eval_needs_a_path_for_csv_sets() -> None:
    from photod.cli import cli

    result = CliRunner().invoke(cli, ["eval", "--dataset", "csv"])
    assert result.exit_code == 2 and "needs a PATH" in result.output
