"""The edit-preference head and the search it drives: backbone, shapes, ranking, convergence.

Real photographs (scikit-image samples, tests/photos.py) with injected defects; every test
asserts what the shipped head or the search chooses, so a head or search change that stops
ranking an obvious defect below the photo fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from photod.enhancers.color import LINEAR, linear_to_srgb
from photod.enhancers.geometry import iou
from photod.models.edit_preference import DEFAULT_MODEL_FILE, HEAD_NAME, read_card
from tests import photos


@pytest.fixture(scope="module")
def objective():
    from photod.objective import EditObjective

    return EditObjective(device="cpu", batch_size=16)


def _shift(image: np.ndarray, ev: float) -> np.ndarray:
    return np.round(linear_to_srgb(LINEAR[image] * 2.0**ev) * 255).astype(np.uint8)


def test_plain_torch_backbone_matches_timm_at_any_shape():
    import torch
    from safetensors.torch import load_file

    from photod.models import load_model
    from photod.models.aesthetic import multilevel_features
    from photod.models.lite import Lite0
    from photod.models.preprocess import to_tensor

    net = load_model("photod-aesthetic-v3", device="cpu")
    lite = Lite0.from_timm_state(
        load_file(str(net_weights("photod-aesthetic-v3"))), prefix="backbone."
    )
    image = photos.real_photo("astronaut", scale=0.5)
    for size in (224, 288):
        x = to_tensor([image], size=size)
        x = x[..., : size - 64] if size == 288 else x  # a non-square input (224 x 288 -> 288x224)
        with torch.inference_mode():
            expected, _ = multilevel_features(net.backbone, x)
            got, _ = lite.features(x)
        assert float((expected - got).abs().max()) < 1e-3


def net_weights(name: str):
    from photod.models import get_model_spec

    return get_model_spec(name).weights


def test_shape_buckets_are_few_and_keep_the_aspect_ratio():
    from photod.models.buckets import bucket_size

    shapes = set()
    for h in range(100, 2000, 37):
        for w in range(100, 2000, 41):
            bh, bw = bucket_size(h, w)
            shapes.add((bh, bw))
            assert min(bh, bw) == 224
            if max(h, w) / min(h, w) <= 2:
                # At most 16 px off the true long side.
                true_long = max(h, w) * 224 / min(h, w)
                assert abs(max(bh, bw) - true_long) <= 16.5
            assert bw == bh or (bw > bh) == (w > h)
    assert len(shapes) <= 15


def test_head_is_an_extra_head_of_the_multi_head_model_file():
    from photod.models import load_model

    net = load_model("photod-aesthetic-v3", device="cpu")
    assert HEAD_NAME in net.heads  # read by the multi-head loader like any extra head
    card = read_card(DEFAULT_MODEL_FILE)
    assert card["base"] == "photod-aesthetic-v3"
    accuracy = card["pair_accuracy_held_out"]
    for kind in ("exposure", "colour", "tilt", "margin_flat", "margin_foreign", "cut_subject"):
        assert kind in accuracy
    curve = card["margin"]["curve_held_out"]
    assert curve[0]["margin"] == 0.0 and {"fixed", "left_alone"} <= set(curve[0])
    assert card["margin"]["chosen"] in [p["margin"] for p in curve]


@pytest.mark.parametrize("name", ["coffee"])
def test_head_ranks_a_photo_above_its_own_defects(objective, name):
    from photod.enhancers.geometry import extract

    image = photos.real_photo(name)
    h, w = image.shape[:2]
    padded = np.full((h + 2 * (h // 6), w + 2 * (w // 6), 3), 200, np.uint8)
    padded[h // 6 : h // 6 + h, w // 6 : w // 6 + w] = image
    versions = [
        image,
        _shift(image, -1.5),
        _shift(image, 1.5),
        np.round(linear_to_srgb(LINEAR[image] * (1.3, 1.0, 0.7)) * 255).astype(np.uint8),
        padded,
        extract(image, (0.0, 0.0, 0.55, 0.7)),
    ]
    scores = objective.score_pixels(versions)[0]
    assert (scores[0] > scores[1:]).all(), scores


@pytest.mark.parametrize(("name", "injected"), [("coffee", -1.2)])
def test_exposure_search_converges(objective, name, injected):
    from photod.suggest import suggest_pixels

    image = photos.real_photo(name, scale=0.8)
    suggestion = suggest_pixels(_shift(image, injected), objective, "exposure", margin=0.0)
    assert abs(suggestion.exposure_ev + injected) <= 0.45, suggestion.to_dict()


def test_detected_boxes_find_a_flat_margin_and_a_pasted_strip():
    # Whether the head then prefers these frames is measured in benchmarks/suggest_quality.py
    # (it does not yet for pasted strips: models/README.md).
    from PIL import Image

    from photod.enhancers.crop import detected_boxes

    photo = photos.real_photo("chelsea")
    other = photos.real_photo("coffee")
    h, w = photo.shape[:2]
    pad_y, pad_x = h // 6, w // 7
    padded = np.full((h + 2 * pad_y, w + 2 * pad_x, 3), (90, 120, 90), np.uint8)
    padded[pad_y : pad_y + h, pad_x : pad_x + w] = photo
    H, W = padded.shape[:2]
    truth = (pad_x / W, pad_y / H, (pad_x + w) / W, (pad_y + h) / H)
    assert max(iou(b, truth) for b in detected_boxes(padded)) > 0.97
    strip = np.asarray(Image.fromarray(other).resize((w // 4, h)))
    joined = np.concatenate([photo, strip], axis=1)
    truth = (0.0, 0.0, w / joined.shape[1], 1.0)
    assert max(iou(b, truth) for b in detected_boxes(joined)) > 0.97
    assert detected_boxes(photo) == []


def test_refinement_proposes_steps_around_the_ladder_winner():
    from photod.enhancers import EnhanceContext, get_enhancer, load_presets
    from photod.suggest import _refine

    settings = load_presets()
    params = {**settings["params"]["exposure"], **settings["edit_params"]["exposure"]}
    spec = get_enhancer("exposure")
    image = photos.real_photo("coffee", scale=0.5)
    best = next(
        c for c in spec.candidates(image, EnhanceContext(params=params)) if c.params["ev"] == 1.2
    )
    refined = _refine(spec, image, EnhanceContext(params=params), best, params)
    assert sorted(c.params["ev"] for c in refined) == [1.0, 1.4]


def test_cli_suggest_loads_no_timm_and_uses_the_head(tmp_path):
    path = photos.write_jpeg(tmp_path / "p.jpg", _shift(photos.real_photo("coffee"), -1.2))
    code = (
        "import sys, json; from photod.cli import main; sys.argv = ['photod', 'suggest', "
        f"'--json', '--objective', 'edit-preference', '--device', 'cpu', {str(path)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(m for m in ('timm', 'torchvision') if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    lines = out.stdout.strip().splitlines()
    data = json.loads(lines[0])
    assert json.loads(lines[-1]) == []
    assert data["model"] == read_card()["version"]
    assert data["suggested"] and data["exposure_ev"] > 0.6


def test_the_head_is_opt_in(scorer, tmp_path):
    from photod.config import load_settings, scorer_from_settings
    from photod.objective import EditObjective, objective_for, use_objective
    from photod.scoring import Scorer

    assert objective_for(scorer) is scorer  # the default: the aesthetic score
    assert objective_for(scorer, "aesthetic") is scorer
    assert isinstance(objective_for(scorer, "edit-preference"), EditObjective)
    chosen = use_objective(Scorer(device="cpu"), "edit-preference")
    assert isinstance(objective_for(chosen), EditObjective)
    assert objective_for(chosen, "aesthetic") is chosen
    with pytest.raises(ValueError, match="unknown suggest objective"):
        objective_for(scorer, "edit")
    default = scorer_from_settings(load_settings(env={}, path=tmp_path / "none.toml"))
    assert objective_for(default) is default
    opted = {"PHOTOD_SUGGEST_OBJECTIVE": "edit-preference"}
    settings = load_settings(env=opted, path=tmp_path / "none.toml")
    assert isinstance(objective_for(scorer_from_settings(settings)), EditObjective)


def test_cli_suggest_searches_with_the_aesthetic_score_by_default(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from photod.cli import cli

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("PHOTOD_SUGGEST_OBJECTIVE", raising=False)
    path = photos.write_jpeg(tmp_path / "p.jpg", photos.real_photo("coffee", scale=0.4))
    args = ["suggest", "--json", "--device", "cpu", "--enhancers", "exposure", str(path)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"] != read_card()["version"]
    result = CliRunner().invoke(cli, [*args[:-1], "--objective", "edit-preference", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["model"] == read_card()["version"]
