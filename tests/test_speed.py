"""The scoring path's speed measures keep behaviour: folded batch norm scores like the original.

Speed itself is measured by `python -m benchmarks`, never asserted here.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests import photos


@pytest.fixture(scope="module")
def imagenet_net():
    """The real backbone (ImageNet weights, real batch-norm statistics) with a seeded head."""
    import torch

    from photod.models.aesthetic import AestheticNet

    torch.manual_seed(0)
    return AestheticNet().eval().to(memory_format=torch.channels_last)


def test_folded_batchnorm_gives_the_same_scores_and_embeddings(imagenet_net) -> None:
    import torch

    from photod.models.preprocess import to_tensor
    from photod.scoring import fold_batchnorm

    folded = fold_batchnorm(imagenet_net)
    assert folded is not imagenet_net
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in imagenet_net.modules()) == 49
    images = [photos.real_photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket")]
    x = to_tensor(images)
    with torch.inference_mode():
        scores, embeddings = imagenet_net.forward_all(x)
        f_scores, f_embeddings = folded.forward_all(x)
        # The layer-by-layer path the suggestion search uses still works on the folded tree.
        stem = folded.backbone.bn1(folded.backbone.conv_stem(x))
        ref_stem = imagenet_net.backbone.bn1(imagenet_net.backbone.conv_stem(x))
    np.testing.assert_allclose(f_scores.numpy(), scores.numpy(), atol=1e-4)
    np.testing.assert_allclose(f_embeddings.numpy(), embeddings.numpy(), atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(stem.numpy(), ref_stem.numpy(), atol=1e-4)
    assert float(scores.std()) > 1e-3  # the photos do differ, so equality above means something


def test_folding_refuses_a_network_it_would_change(imagenet_net) -> None:
    """A BatchNorm that is not applied right after its neighbouring conv must not be folded."""
    import torch
    from torch import nn

    from photod.scoring import fold_batchnorm

    class Swapped(nn.Module):
        """conv and bn registered next to each other but applied the other way round."""

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1, bias=False)
            self.bn = nn.BatchNorm2d(3)
            self.bn.running_mean.fill_(0.5)
            self.bn.running_var.fill_(4.0)

        def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            y = self.conv(self.bn(x)) + 1.0
            return y.mean(dim=(1, 2, 3)), y.flatten(1)

    net = Swapped().eval()
    assert fold_batchnorm(net) is net


def test_to_tensor_accepts_pillow_images_and_is_channels_last() -> None:
    import torch
    from PIL import Image

    from photod.models.preprocess import to_tensor

    pixels = photos.real_photo("chelsea")
    a = to_tensor([pixels, pixels])
    b = to_tensor([Image.fromarray(pixels), pixels])
    assert a.shape == (2, 3, 224, 224)
    assert a.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(a, b)
    assert -1.0 <= float(a.min()) < -0.5 and 0.5 < float(a.max()) <= 1.0


@pytest.mark.parametrize("name", ["photod-aesthetic-v2", "photod-aesthetic-v4"])
def test_the_timm_free_cpu_network_scores_like_the_timm_one(name) -> None:
    """v2 stores only heads (backbone = ImageNet), v4 its fine-tuned stages 4-6: both kinds of
    file give the folded plain-torch network the scores, embeddings and RoI windows of timm's."""
    import torch

    from photod.models import load_model
    from photod.models.aesthetic import trunk_forward
    from photod.models.preprocess import to_tensor

    reference = load_model(name, device="cpu")
    folded = load_model(name, device="cpu", folded=True)
    assert getattr(folded, "folded", False) and not getattr(reference, "folded", False)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    images = [photos.real_photo(n) for n in ("chelsea", "coffee", "astronaut", "rocket")]
    x = to_tensor(images)
    with torch.inference_mode():
        scores, embeddings = reference.forward_all(x)
        f_scores, f_embeddings = folded.forward_all(x)
        _, stats = trunk_forward(reference.backbone, x[..., :160])  # any shape, timm's layout
        _, f_stats = trunk_forward(folded.backbone, x[..., :160])
    np.testing.assert_allclose(f_scores.numpy(), scores.numpy(), atol=1e-4)
    np.testing.assert_allclose(f_embeddings.numpy(), embeddings.numpy(), atol=1e-3, rtol=1e-4)
    np.testing.assert_allclose(f_stats.numpy(), stats.numpy(), atol=1e-3, rtol=1e-4)
    assert float(scores.std()) > 1e-2


def test_scoring_on_the_cpu_imports_no_timm(tmp_path) -> None:
    """`photod score` builds the folded network: timm (which pulls in torchvision, dynamo and
    sympy, seconds of CPU in a new process) is never imported to score a photo."""
    import json
    import subprocess
    import sys

    path = photos.write_jpeg(tmp_path / "p.jpg", photos.real_photo("coffee"))
    code = (
        "import sys, json\nfrom photod.scoring import Scorer\n"
        "s = Scorer(device='cpu')\nr = list(s.score_paths([sys.argv[1]]))[0]\n"
        "print(json.dumps([r.status, type(s.net).__name__, "
        "sorted(m for m in ('timm', 'torchvision') if m in sys.modules)]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == ["ok", "FoldedAestheticNet", []]
