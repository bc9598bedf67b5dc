"""Personal models from the user's own star ratings, the active-model switch and `photod models`.

Real JPEGs rated by an independent writer (exiftool writes xmp:Rating, as Lightroom would), one
rated by photod itself (must be ignored), one unrated; the base model is a real ImageNet backbone
with a head saved to a real safetensors file and registered like a shipped model.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from photod.training.degrade import degrade
from tests import photos
from tests.training_models import TEST_BASE as BASE
from tests.training_models import register_test_head


@pytest.fixture(scope="module")
def base_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A head-only model registered under BASE: ImageNet backbone + a seeded MLP head."""
    return register_test_head(tmp_path_factory.mktemp("base"))


@pytest.fixture(scope="module")
def rated_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 photos rated by 'the user' (exiftool): sharp originals 5★/4★, damaged copies 1★/2★."""
    folder = tmp_path_factory.mktemp("library")
    rng = np.random.default_rng(0)
    by_rating: dict[int, list[str]] = {1: [], 2: [], 4: [], 5: []}
    names = ("chelsea", "coffee", "astronaut", "rocket", "cat", "camera")
    for name in names:
        pixels = photos.real_photo(name, scale=0.45)
        if pixels.shape[0] > 260:
            pixels = pixels[:260]
        variants = {
            5: pixels,
            4: pixels[:, ::-1].copy(),
            2: degrade(pixels, "blur", rng, 3.5),
            1: degrade(pixels, "underexposed", rng, 2.0),
        }
        for stars, variant in variants.items():
            path = folder / f"{name}-{stars}.jpg"
            photos.write_jpeg(path, variant)
            by_rating[stars].append(str(path))
    for stars, files in by_rating.items():
        subprocess.run(
            ["exiftool", "-q", "-overwrite_original", f"-XMP-xmp:Rating={stars}", *files],
            check=True,
        )
    photos.write_jpeg(folder / "unrated.jpg", photos.real_photo("coffee", scale=0.3))
    return folder


def test_ratings_photod_wrote_are_ignored(rated_folder: Path, tmp_path: Path) -> None:
    import shutil

    from photod.metadata import RatingInfo, write_rating
    from photod.training.datasets import user_ratings_dataset

    shutil.copytree(rated_folder, tmp_path / "lib")
    ours = tmp_path / "lib" / "scored-by-photod.jpg"
    photos.write_jpeg(ours, photos.real_photo("chelsea", scale=0.3))
    write_rating(ours, RatingInfo(score=3.9, stars=5, model="photod-aesthetic-v1"), "embedded")
    read_back = subprocess.run(
        ["exiftool", "-s3", "-XMP-xmp:Rating", str(ours)], capture_output=True, text=True
    )
    assert read_back.stdout.strip() == "5"  # photod really wrote a rating there
    samples = user_ratings_dataset(tmp_path / "lib")
    names = {s.path.name: s.target for s in samples}
    assert "scored-by-photod.jpg" not in names
    assert "unrated.jpg" not in names
    assert len(names) == 24
    assert names["cat-5.jpg"] == 5.0 and names["cat-1.jpg"] == 1.0


@pytest.mark.slow
def test_personal_model_is_compared_saved_and_switched(base_model, rated_folder) -> None:
    from photod.cli import cli
    from photod.models import active_model_name, get_model_spec, list_models
    from photod.paths import personal_models_dir
    from photod.scoring import DEFAULT_MODEL, Scorer
    from photod.training.personal import train_personal

    report = train_personal(rated_folder, base=base_model, epochs=30, min_photos=10, device="cpu")
    assert report["n_rated"] == 24
    assert report["n_train"] + report["n_holdout"] == 24 and report["n_holdout"] >= 4
    for key in ("holdout_srcc", "base_holdout_srcc", "holdout_mae", "base_holdout_mae"):
        assert np.isfinite(report[key])
    weights = personal_models_dir() / "personal.safetensors"
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["base"] == base_model and card["metrics"]["holdout_srcc"] == report["holdout_srcc"]
    assert card["star_thresholds"] == sorted(card["star_thresholds"])
    assert "personal" in [spec.name for spec in list_models()]
    # The rule: active only when it beat the base model on the held-out ratings.
    expected = "personal" if report["holdout_srcc"] > report["base_holdout_srcc"] else DEFAULT_MODEL
    assert active_model_name() == expected
    assert report["active"] == (expected == "personal")

    # The personal model loads like any model and scores with its own head on the base backbone.
    pixels = [photos.real_photo("chelsea", scale=0.5), photos.real_photo("rocket", scale=0.5)]
    personal_scores, personal_emb = Scorer("personal", device="cpu").score_pixels(pixels)
    base_scores, base_emb = Scorer(base_model, device="cpu").score_pixels(pixels)
    np.testing.assert_allclose(personal_emb, base_emb, atol=1e-4)
    assert not np.allclose(personal_scores, base_scores, atol=1e-3)
    assert get_model_spec("personal").card["base"] == base_model

    # `photod models --use` switches, `--use default` reverts, unknown names fail cleanly.
    runner = CliRunner()
    result = runner.invoke(cli, ["models", "--use", "personal", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["name"] for r in rows if r["active"]] == ["personal"]
    assert Scorer(device="cpu").model_name == "personal"
    assert runner.invoke(cli, ["models", "--use", "default"]).exit_code == 0
    assert active_model_name() == DEFAULT_MODEL
    bad = runner.invoke(cli, ["models", "--use", "no-such-model"])
    assert bad.exit_code == 1 and "unknown model" in bad.output
    # A selection whose weights disappeared falls back to the default instead of failing.
    runner.invoke(cli, ["models", "--use", "personal"])
    weights.unlink()
    assert active_model_name() == DEFAULT_MODEL


def test_too_few_ratings_is_a_clear_error(base_model, tmp_path: Path) -> None:
    from photod.cli import cli

    folder = tmp_path / "few"
    folder.mkdir()
    for i in range(3):
        path = photos.write_jpeg(folder / f"p{i}.jpg", photos.real_photo("coffee", scale=0.2))
        subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-xmp:Rating=3", str(path)])
    result = CliRunner().invoke(cli, ["train", "--from-ratings", str(folder), "--base", BASE])
    assert result.exit_code == 1
    assert "found 3 photos with your own star rating" in result.output
