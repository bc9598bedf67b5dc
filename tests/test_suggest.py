"""The suggestion search with the shipped model: contract, preferences on injected defects, CLI.

Defects are injected into real photographs (scikit-image samples) at sizes the search really
works at; a test asserts what the search chooses, so a model or search change that stops fixing
an obvious defect fails here.
"""

from __future__ import annotations

import hashlib
import json
import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from photod.cli import cli
from photod.enhancers.color import LINEAR, linear_to_srgb
from photod.enhancers.geometry import iou
from photod.models import get_model_spec
from photod.suggest import suggest_photo, suggest_pixels
from tests import photos

# The search is meant to run on the preference-trained model (v2); v1 (PARA means only) is the
# fallback when v2's weights are absent.
MODEL = next(
    (
        name
        for name in ("photod-aesthetic-v2", "photod-aesthetic-v1")
        if get_model_spec(name).available
    ),
    "photod-aesthetic-v2",
)


@pytest.fixture(scope="module")
def scorer():
    from photod.scoring import Scorer

    return Scorer(model=MODEL, device="cpu", batch_size=16)


def _shift(image: np.ndarray, ev: float) -> np.ndarray:
    return np.round(linear_to_srgb(LINEAR[image] * 2.0**ev) * 255).astype(np.uint8)


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_suggest_photo_json_contract(tmp_path, scorer):
    # Stored sideways: the crop must be in fractions of the upright (displayed) photo.
    path = photos.write_jpeg(tmp_path / "p.jpg", photos.real_photo("coffee"), orientation=6)
    suggestion = suggest_photo(path, scorer, margin=0.0)
    data = suggestion.to_dict()
    json.dumps(data)
    assert data["path"] == str(path)
    assert (data["width"], data["height"]) == (600, 400)
    assert data["score_after"] >= data["score_before"]
    assert isinstance(data["exposure_ev"], float)
    assert data["candidates"] >= 100
    # Every candidate got a score (crops from one RoI pass), but far fewer full passes ran.
    assert data["scored"] == data["candidates"]
    assert data["full_passes"] <= 60 < data["candidates"]
    for edit in data["edits"]:
        assert set(edit) == {"enhancer", "params", "gain"} and edit["gain"] > 0
    total = sum(e["gain"] for e in data["edits"])
    assert data["score_after"] - data["score_before"] == pytest.approx(total, abs=2e-3)
    if data["crop"] is not None:
        left, top, right, bottom = data["crop"]
        assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
    ev = sum(e["params"]["ev"] for e in data["edits"] if e["enhancer"] == "exposure")
    assert data["exposure_ev"] == pytest.approx(ev)


def test_a_large_margin_leaves_the_photo_alone(scorer):
    image = photos.real_photo("chelsea")
    suggestion = suggest_pixels(image, scorer, margin=5.0)
    assert not suggestion.worthwhile
    assert suggestion.edits == [] and suggestion.crop is None and suggestion.exposure_ev == 0
    assert suggestion.score_after == suggestion.score_before
    assert suggestion.best_score >= suggestion.score_before


@pytest.mark.parametrize(
    ("name", "injected"),
    # Over-exposure of the coffee photo clips so much that no global darkening scores better
    # with v2 (measured 2026-11-29): a model limit, reported in the README, not tested away.
    [("coffee", -1.5), ("astronaut", -1.5), ("astronaut", 1.5), ("chelsea", 1.5)],
)
def test_search_undoes_an_injected_exposure_error(scorer, name, injected):
    image = photos.real_photo(name, scale=0.8)
    suggestion = suggest_pixels(_shift(image, injected), scorer, "exposure", margin=0.0)
    assert np.sign(suggestion.exposure_ev) == -np.sign(injected), suggestion.to_dict()
    assert suggestion.score_after > suggestion.score_before


def test_search_crops_away_a_flat_margin(scorer):
    photo = photos.real_photo("chelsea")
    h, w = photo.shape[:2]
    pad_y, pad_x = h // 5, w // 5
    padded = np.full((h + 2 * pad_y, w + 2 * pad_x, 3), (90, 90, 90), np.uint8)
    padded[pad_y : pad_y + h, pad_x : pad_x + w] = photo
    H, W = padded.shape[:2]
    truth = (pad_x / W, pad_y / H, (pad_x + w) / W, (pad_y + h) / H)
    suggestion = suggest_pixels(padded, scorer, "crop", margin=0.0)
    assert suggestion.crop is not None
    assert iou(suggestion.crop, truth) > iou((0, 0, 1, 1), truth) + 0.15


def test_roi_scores_track_the_pooled_features_of_a_full_frame(scorer):
    """RoI pooling over the whole frame reproduces the real score of the (squashed) image.

    (How well RoI scores rank *crops* is measured, not asserted: benchmarks/suggest_quality.py;
    it is rough, which is why they only shortlist crops for real passes.)
    """
    from photod.suggest import roi_scores

    image = photos.real_photo("astronaut", scale=0.8)
    real = scorer.score_pixels([image])[0][0]
    approx = roi_scores(scorer, image, [(0.0, 0.0, 1.0, 1.0)], size=224)
    assert approx is not None and approx.shape == (1,)
    assert approx[0] == pytest.approx(real, abs=0.02)


def test_roi_tail_scores_equal_real_passes_where_the_grids_match(scorer):
    """Early stages once + RoIAlign + real late stages: over the whole frame at 224 px the window
    is exactly the 14 x 14 stage-4 map, so the score equals a real pass; a half-frame window at
    448 px sees the same cells a real 224-px crop would (up to border effects)."""
    from photod.suggest import roi_tail_scores

    image = photos.real_photo("astronaut", scale=0.8)
    real = scorer.score_pixels([image])[0][0]
    whole = roi_tail_scores(scorer, image, [(0.0, 0.0, 1.0, 1.0)], size=224)
    assert whole is not None and whole.shape == (1,)
    assert whole[0] == pytest.approx(real, abs=0.01)
    crops = [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0), (0.25, 0.0, 0.75, 0.5)]
    from photod.enhancers.geometry import extract

    real_crops = scorer.score_pixels([extract(image, box) for box in crops])[0]
    approx = roi_tail_scores(scorer, image, crops, size=448)
    assert approx is not None and approx.shape == (3,)
    # Not equal (a real crop's stages see zero padding at its borders, the window sees the
    # neighbouring pixels), but close on the model's 1-5 scale.
    assert np.abs(approx - real_crops).max() < 0.3


def test_cli_suggest_json_apply_write_xmp_and_store(tmp_path):
    from photod.suggest_store import load_suggestion

    photo = photos.write_jpeg(tmp_path / "dark.jpg", _shift(photos.real_photo("coffee"), -1.5))
    before = _sha(photo)
    db = tmp_path / "index.db"
    result = CliRunner().invoke(
        cli,
        ["suggest", "--json", "--margin", "0", "--apply", str(tmp_path / "out"), "--store",
         "--db", str(db), "--device", "cpu", "--model", MODEL, str(photo)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.strip().splitlines()[-1])
    assert data["suggested"] and data["exposure_ev"] > 0
    assert _sha(photo) == before  # --apply never touches the original
    rendered = tmp_path / "out" / "dark.photod.jpg"
    assert data["rendered"] == str(rendered) and rendered.exists()
    assert load_suggestion(str(db), str(photo.resolve()))["exposure_ev"] == data["exposure_ev"]
    listed = CliRunner().invoke(cli, ["suggestions", "--json", "--db", str(db)])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output.splitlines()[0])["path"] == str(photo.resolve())

    result = CliRunner().invoke(
        cli,
        [
            "suggest",
            "--margin",
            "0",
            "--write-xmp",
            "--device",
            "cpu",
            "--model",
            MODEL,
            str(photo),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "step" in result.output and "exposure" in result.output
    out = subprocess.run(
        ["exiftool", "-json", "-XMP-crs:Exposure2012", str(photo)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(json.loads(out.stdout)[0]["Exposure2012"]) > 0


def test_cli_reports_bad_input_and_typos(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    result = CliRunner().invoke(cli, ["suggest", "--device", "cpu", "--model", MODEL, str(broken)])
    assert result.exit_code == 1 and "broken.jpg" in result.output
    result = CliRunner().invoke(cli, ["suggest", "--enhancers", "crop,exposre", str(broken)])
    assert result.exit_code == 1 and "did you mean 'exposure'" in result.output
