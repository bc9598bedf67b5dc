"""The backbone loads the packaged ImageNet weights correctly; the registry behaves like timm's."""

from __future__ import annotations

import pytest
import torch

from photod.errors import ModelError
from photod.models import get_model_spec, list_models, register_model
from photod.models.backbone import build_backbone, imagenet_weights_path, map_state_dict
from photod.models.preprocess import to_tensor

# ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = set(range(281, 286))


def test_backbone_recognises_a_real_cat(cat_pixels) -> None:
    backbone = build_backbone()
    with torch.inference_mode():
        logits = backbone(to_tensor([cat_pixels]))
    top5 = set(logits[0].topk(5).indices.tolist())
    assert logits[0].argmax().item() in CAT_CLASSES
    assert len(top5 & CAT_CLASSES) >= 2


def test_untrained_backbone_does_not_recognise_the_cat(cat_pixels) -> None:
    """Guards the test above: without the packaged weights the cat is not found."""
    torch.manual_seed(0)
    backbone = build_backbone(pretrained=False)
    with torch.inference_mode():
        logits = backbone(to_tensor([cat_pixels]))
    assert logits[0].argmax().item() not in CAT_CLASSES


def test_mapping_checks_every_shape() -> None:
    source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    target = build_backbone(pretrained=False).state_dict()
    assert len(map_state_dict(source, target)) == len(target)
    broken = dict(source)
    first = next(iter(broken))
    broken[first] = broken[first][:, :1]
    with pytest.raises(ModelError, match="shape mismatch"):
        map_state_dict(broken, target)
    with pytest.raises(ModelError, match="tensors"):
        map_state_dict(dict(list(source.items())[:-1]), target)


def test_registry_rejects_duplicates_and_suggests_names() -> None:
    names = [spec.name for spec in list_models()]
    assert "photod-aesthetic-v1" in names
    with pytest.raises(ValueError, match="already registered"):
        register_model("photod-aesthetic-v1")(lambda **kw: None)
    with pytest.raises(ModelError, match="did you mean .*'photod-aesthetic-v1'"):
        get_model_spec("photod-aesthetik-v1")


def test_shipped_model_card_has_metrics_and_thresholds() -> None:
    spec = get_model_spec("photod-aesthetic-v1")
    assert spec.available, spec.weights
    assert spec.card["metrics"]["srcc"] > 0.7
    thresholds = spec.card["star_thresholds"]
    assert len(thresholds) == 4 and thresholds == sorted(thresholds)
