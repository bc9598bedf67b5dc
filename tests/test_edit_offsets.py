"""The offsets model (models/edit_offsets.py): its statistics, its training, and its place in
the multi-head model file (written beside the heads, every other tensor untouched)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from photod.models import edit_offsets
from photod.models.edit_preference import DEFAULT_MODEL_FILE
from tests import photos


def test_statistics_see_exposure_and_colour():
    from photod.enhancers.color import LINEAR, linear_to_srgb

    image = photos.real_photo("coffee")
    darker = np.round(linear_to_srgb(LINEAR[image] * 0.5) * 255).astype(np.uint8)
    warm = np.round(linear_to_srgb(LINEAR[image] * (1.3, 1.0, 0.75)) * 255).astype(np.uint8)
    base, dark, hot = (edit_offsets.image_statistics(x) for x in (image, darker, warm))
    assert base.shape == (edit_offsets.STATISTICS,) and np.isfinite(base).all()
    median = edit_offsets._PERCENTILES.index(50)
    assert dark[median] == pytest.approx(base[median] - 1.0, abs=0.1)  # one stop, in log2
    # Mean log red/green rises and blue/green falls with a warm cast (the chroma means).
    chroma = 9 + 4 + edit_offsets._LUMA_BINS + edit_offsets._TOP_BINS + 3
    assert hot[chroma] > base[chroma] + 0.2 and hot[chroma + 1] < base[chroma + 1] - 0.2


def test_highlight_statistics_see_half_a_stop():
    """The white point falls with the exposure; half a stop over, clipping spreads into solid
    patches (more wholly clipped blocks, a larger largest patch) where the photo had few."""
    from photod.enhancers.color import LINEAR, linear_to_srgb

    image = photos.real_photo("astronaut")

    def shifted(ev: float) -> np.ndarray:
        return np.round(linear_to_srgb(LINEAR[image] * 2.0**ev) * 255).astype(np.uint8)

    start = edit_offsets.STATISTICS - sum(
        np.size(part) for part in edit_offsets._highlight_statistics(image)
    )
    base, under, over = (
        edit_offsets.image_statistics(x)[start:] for x in (image, shifted(-0.5), shifted(0.5))
    )
    white_point = 4  # the 99.9th percentile of the brightest channel, log2
    assert under[white_point] == pytest.approx(base[white_point] - 0.5, abs=0.08)
    wholly_clipped, largest_patch = 57, 59
    assert over[wholly_clipped] > base[wholly_clipped] + 0.01
    assert over[largest_patch] > base[largest_patch] * 1.5


def _synthetic(rows: int = 3000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    stats = rng.normal(size=(rows, edit_offsets.STATISTICS)).astype(np.float32)
    stats[::6, :3] = 0.0  # clean draws: nothing to correct
    return {
        "statistics": stats,
        "ev": stats[:, 0] * 0.8,
        "cast": np.stack([stats[:, 1] * 0.1, -stats[:, 2] * 0.1], 1),
        "held_out": np.arange(rows) % 5 == 0,
        "real": np.arange(rows) % 10 == 0,
        "photo": np.array([f"p{i // 6}" for i in range(rows)]),
    }


def test_training_learns_and_numpy_inference_equals_torch(tmp_path: Path):
    from photod.training.train_edit_offsets import evaluate, fit, write

    data = _synthetic()
    model, card = fit(data, hidden=64, epochs=30)
    predicted = edit_offsets.EditOffsets(model).predict(data["statistics"])
    held = data["held_out"]
    # The card's figures came from torch; numpy's predictions give the same ones (to rounding).
    figures = evaluate(predicted[:, 0], predicted[:, 1:], data, held)
    assert figures == pytest.approx(card["held_out"], abs=0.003)
    assert card["held_out"]["ev_right_direction"] > 0.9  # a learnable target was learnt
    # Written into a copy of the shipped file: loadable without torch, the rest untouched.
    from safetensors.numpy import load_file

    target = tmp_path / DEFAULT_MODEL_FILE.name
    shutil.copy(DEFAULT_MODEL_FILE, target)
    shutil.copy(DEFAULT_MODEL_FILE.with_suffix(".json"), target.with_suffix(".json"))
    before = {k: v for k, v in load_file(str(target)).items() if not k.startswith("edit_")}
    write(target, model, card)
    after = load_file(str(target))
    assert all(np.array_equal(after[k], v) for k, v in before.items())
    loaded = edit_offsets.load(target)
    assert np.allclose(loaded.predict(data["statistics"]), predicted, atol=1e-5)
    entry = json.loads(target.with_suffix(".json").read_text())["edit_offsets"]
    assert entry["outputs"] == list(edit_offsets.OUTPUTS) and entry["held_out"] == card["held_out"]


def test_the_shipped_file_carries_the_model_and_its_extra_heads_still_load():
    from photod.models import load_model

    assert edit_offsets.load(DEFAULT_MODEL_FILE) is not None
    net = load_model("photod-aesthetic-v4", device="cpu")
    assert "edit_offsets" not in net.heads  # not an extra head: it reads statistics, not MLSP
    card = json.loads(DEFAULT_MODEL_FILE.with_suffix(".json").read_text())["edit_offsets"]
    assert card["held_out"]["images"] > 1000 and "held_out_real" in card


def test_a_model_of_other_statistics_is_refused_by_name():
    from photod.errors import ModelError

    state = {"input_mean": np.zeros(7), "input_std": np.ones(7), "output_scale": np.ones(3)}
    with pytest.raises(ModelError, match="retrain"):
        edit_offsets.EditOffsets(state)
