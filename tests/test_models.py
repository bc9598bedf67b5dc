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


def test_fine_tuned_v3_loads_with_its_own_late_stages_and_prefers_sharp_photos() -> None:
    """v3 ships a fine-tuned backbone tail: stages 5-6 differ from ImageNet, stages 0-4 do not,
    and through the ordinary Scorer a photo beats its own blurred and noisy versions."""
    import numpy as np
    import torch

    from photod.models.aesthetic import AestheticNet, load_weights
    from photod.models.backbone import build_backbone
    from photod.scoring import Scorer
    from photod.training.degrade import degrade
    from tests import photos

    spec = get_model_spec("photod-aesthetic-v3")
    assert spec.available, spec.weights
    assert spec.card["pair_accuracy"]["blur"] >= 0.95
    net = AestheticNet()
    load_weights(net, spec.weights)
    imagenet = build_backbone().state_dict()
    tuned = net.backbone.state_dict()
    assert not torch.allclose(
        tuned["blocks.6.0.conv_pw.weight"], imagenet["blocks.6.0.conv_pw.weight"]
    )
    assert torch.allclose(
        tuned["blocks.3.0.conv_pw.weight"], imagenet["blocks.3.0.conv_pw.weight"], atol=1e-3
    )

    scorer = Scorer(model="photod-aesthetic-v3", device="cpu")
    image = photos.real_photo("chelsea", scale=0.5)
    rng = np.random.default_rng(0)
    versions = [image, degrade(image, "blur", rng, 2.0), degrade(image, "noise", rng, 15.0)]
    original, blurred, noisy = scorer.score_pixels(versions)[0]
    assert original > blurred and original > noisy


def test_a_partly_stored_backbone_module_is_refused(tmp_path) -> None:
    """A file may leave whole backbone modules out (they stay ImageNet's), never half a module."""
    from safetensors.torch import save_file

    from photod.models.aesthetic import AestheticHead, AestheticNet, load_weights

    imagenet = build_backbone().state_dict()
    head = {f"head.{k}": v.contiguous() for k, v in AestheticHead(hidden=4).state_dict().items()}
    tuned = {f"backbone.{k}": v.clone() for k, v in imagenet.items() if k.startswith("blocks.5.")}
    tuned["backbone.blocks.5.0.conv_pw.weight"] += 1.0
    whole = tmp_path / "whole.safetensors"
    save_file({**head, **tuned}, str(whole))
    net = AestheticNet()
    load_weights(net, whole)
    loaded = net.backbone.state_dict()
    assert torch.equal(
        loaded["blocks.5.0.conv_pw.weight"], tuned["backbone.blocks.5.0.conv_pw.weight"]
    )
    assert torch.equal(loaded["blocks.3.0.conv_pw.weight"], imagenet["blocks.3.0.conv_pw.weight"])

    damaged = {k: v for k, v in tuned.items() if k != "backbone.blocks.5.1.conv_pwl.weight"}
    path = tmp_path / "damaged.safetensors"
    save_file({**head, **damaged}, str(path))
    with pytest.raises(ModelError, match="incompletely"):
        load_weights(AestheticNet(), path)
