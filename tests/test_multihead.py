"""One backbone, several heads: the model file format, `add_head`, and the Scorer's head outputs.

A real small model file: the ImageNet backbone (not stored, as in v1/v2), a seeded MLP rating
head, then a linear and an MLP extra head added with `add_head`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from photod.errors import ModelError
from photod.models.aesthetic import (
    FEATURE_DIM,
    AestheticHead,
    AestheticNet,
    LinearHead,
    add_head,
    build_aesthetic,
    load_weights,
    multilevel_features,
)
from photod.models.registry import _REGISTRY, get_model_spec, register_model
from photod.scoring import Scorer
from tests import photos

NAME = "test-multihead"


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("multihead")
    torch.manual_seed(0)
    rating = AestheticHead(hidden=8)
    weights = folder / f"{NAME}.safetensors"
    save_file({f"head.{k}": v.contiguous() for k, v in rating.state_dict().items()}, weights)
    weights.with_suffix(".json").write_text(
        json.dumps({"version": "mh-1", "metrics": {"srcc": 0.5}})
    )
    preference = LinearHead()
    with torch.no_grad():
        preference.feature_mean.normal_()
        preference.feature_std.uniform_(0.5, 2.0)
    defects = AestheticHead(hidden=16, out_dim=3)
    add_head(weights, "preference", preference, {"metrics": {"pair_accuracy": 0.9}})
    add_head(weights, "defects", defects, {"kind": "mlp", "metrics": {}})
    if NAME not in _REGISTRY:
        register_model(NAME, weights=weights)(lambda device="cpu", spec=None: build_aesthetic(spec))
    return weights, rating, preference, defects


def test_file_layout_and_card(model_file) -> None:
    weights, rating, preference, _ = model_file
    state = load_file(str(weights))
    assert {k.split(".")[0] for k in state} == {"head", "heads"}
    assert state["heads.preference.linear.weight"].dtype == torch.float16
    assert state["heads.preference.feature_mean"].dtype == torch.float32
    # the rating head is untouched by add_head
    for key, value in rating.state_dict().items():
        assert torch.equal(state[f"head.{key}"], value), key
    card = json.loads(weights.with_suffix(".json").read_text())
    assert card["version"] == "mh-1"  # the rest of the card stays
    assert card["heads"]["preference"] == {"kind": "linear", "metrics": {"pair_accuracy": 0.9}}
    assert card["heads"]["defects"]["kind"] == "mlp"
    spec = get_model_spec(NAME)
    assert list(spec.heads) == ["rating", "preference", "defects"]


def test_load_weights_infers_each_head_architecture(model_file) -> None:
    weights, _, preference, defects = model_file
    net = AestheticNet()
    load_weights(net, weights)
    assert isinstance(net.heads["preference"], LinearHead)
    assert isinstance(net.heads["defects"], AestheticHead)
    assert net.heads["defects"].mlp[0].out_features == 16
    expected = preference.linear.weight.detach().half().float()
    assert torch.equal(net.heads["preference"].linear.weight, expected)
    assert torch.equal(net.heads["preference"].feature_std, preference.feature_std)


def test_scorer_returns_every_head_from_one_backbone_pass(model_file) -> None:
    weights, _, _, _ = model_file
    images = [photos.real_photo("chelsea", scale=0.5), photos.real_photo("coffee", scale=0.5)]
    scorer = Scorer(model=NAME, device="cpu")
    plain, plain_emb = scorer.score_pixels(images)
    calls = []
    stem = scorer.net.backbone.conv_stem
    handle = stem.register_forward_hook(lambda *_: calls.append(1))
    try:
        outputs, embeddings = scorer.score_heads(images, heads=("preference", "defects"))
    finally:
        handle.remove()
    assert len(calls) == 1  # one batch, one backbone pass, three heads
    assert set(outputs) == {"rating", "preference", "defects"}
    np.testing.assert_allclose(outputs["rating"], plain, atol=1e-5)
    np.testing.assert_allclose(embeddings, plain_emb, atol=1e-5)
    assert outputs["defects"].shape == (2, 3)
    # the preference head's output is that head applied to the MLSP features of the photos
    reference = AestheticNet()
    load_weights(reference, weights)
    from photod.models.preprocess import to_tensor

    with torch.inference_mode():
        features, _ = multilevel_features(reference.eval().backbone, to_tensor(images))
        expected = reference.heads["preference"](features).numpy()
    assert features.shape[1] == FEATURE_DIM
    np.testing.assert_allclose(outputs["preference"], expected, rtol=1e-3, atol=1e-3)
    assert not np.allclose(outputs["preference"], outputs["rating"])


def test_score_paths_fills_head_outputs(model_file, tmp_path) -> None:
    path = tmp_path / "a.jpg"
    from PIL import Image

    Image.fromarray(photos.real_photo("chelsea", scale=0.5)).save(path, quality=92)
    (result,) = Scorer(model=NAME, device="cpu", heads=("preference",)).score_paths([path])
    assert result.status == "ok"
    assert set(result.head_outputs) == {"preference"}
    assert isinstance(result.head_outputs["preference"], float)
    assert result.to_dict()["heads"] == result.head_outputs
    (plain,) = Scorer(model=NAME, device="cpu").score_paths([path])
    assert "heads" not in plain.to_dict()
    assert plain.score == pytest.approx(result.score, abs=1e-5)


def test_unknown_head_and_bad_names_fail(model_file) -> None:
    weights, _, preference, _ = model_file
    with pytest.raises(ModelError, match="did you mean 'preference'"):
        Scorer(model=NAME, device="cpu", heads=("preferenc",))
    with pytest.raises(ModelError, match="invalid head name"):
        add_head(weights, "rating", preference)
    with pytest.raises(ModelError, match="unrecognised head"):
        add_head(weights, "odd", torch.nn.Linear(3, 1))


def test_add_head_replaces_a_head_of_the_same_name(model_file, tmp_path) -> None:
    weights, _, _, _ = model_file
    copy = tmp_path / "copy.safetensors"
    copy.write_bytes(weights.read_bytes())
    copy.with_suffix(".json").write_text(weights.with_suffix(".json").read_text())
    add_head(copy, "defects", LinearHead(out_dim=2), {"metrics": {"acc": 1.0}})
    state = load_file(str(copy))
    assert not any(k.startswith("heads.defects.mlp") for k in state)
    assert state["heads.defects.linear.weight"].shape == (2, FEATURE_DIM)
    card = json.loads(copy.with_suffix(".json").read_text())
    assert card["heads"]["defects"] == {"kind": "linear", "metrics": {"acc": 1.0}}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temp file
