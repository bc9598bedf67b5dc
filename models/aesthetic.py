"""The aesthetic network: EfficientNet-Lite0 with multi-level pooled features and a small head.

Features follow MLSP (Hosu et al. 2019): the global mean and standard deviation of every stage's
output plus the pooled 1280-d head features, so the head sees both low-level technical signals
(blur, noise, exposure live in early stages) and semantic ones. The head predicts the human mean
aesthetic score on PARA's 1-5 scale. The pooled 1280-d features double as an embedding for
grouping near-duplicates.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from photod.errors import ModelError
from photod.models.backbone import HEAD_CHANNELS, STAGE_CHANNELS, build_backbone
from photod.models.registry import ModelSpec

log = logging.getLogger("photod")

FEATURE_DIM = 2 * sum(STAGE_CHANNELS) + HEAD_CHANNELS


def stage_statistics(h: torch.Tensor) -> list[torch.Tensor]:
    """[mean, std] over the spatial positions of a [B, C, H, W] stage output (fp32)."""
    flat = h.float().flatten(2)
    return [flat.mean(dim=2), flat.std(dim=2)]


def multilevel_features(backbone: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(MLSP features [B, FEATURE_DIM], pooled head embedding [B, 1280]) of a normalised batch."""
    h = backbone.bn1(backbone.conv_stem(x))
    pooled = []
    for stage in backbone.blocks:
        h = stage(h)
        pooled += stage_statistics(h)
    h = backbone.bn2(backbone.conv_head(h))
    embedding = h.float().mean(dim=(2, 3))
    pooled.append(embedding)
    return torch.cat(pooled, dim=1), embedding


# The split used to fine-tune only the late stages (training/finetune.py) and to score many crop
# windows from one early-stage pass (photod.suggest.roi_tail_scores): blocks[:TRUNK_STAGES] are
# the frozen ImageNet "trunk", the rest is the "tail".
TRUNK_STAGES = 5


def trunk_forward(backbone, x, stages: int = TRUNK_STAGES):
    """(output map of blocks[:stages], their MLSP [mean, std] vectors in multilevel order)."""
    h = backbone.bn1(backbone.conv_stem(x))
    pooled = []
    for stage in backbone.blocks[:stages]:
        h = stage(h)
        pooled += stage_statistics(h)
    return h, torch.cat(pooled, dim=1)


def tail_forward(backbone, head, maps, early_stats):
    """Scores and embeddings from trunk outputs: blocks[TRUNK_STAGES:], head conv, MLP head.

    Equal to `AestheticNet.forward_all` on the image whenever the network's first TRUNK_STAGES
    stages are the frozen ImageNet ones the trunk cache was made with (true for v1, v2 and v3:
    v3 fine-tuned the tail only).
    """
    h = maps
    pooled = [early_stats.float()]
    for stage in backbone.blocks[TRUNK_STAGES:]:
        h = stage(h)
        pooled += stage_statistics(h)
    h = backbone.bn2(backbone.conv_head(h))
    embedding = h.float().mean(dim=(2, 3))
    pooled.append(embedding)
    return head(torch.cat(pooled, dim=1)), embedding


class AestheticHead(nn.Module):
    """Standardise the features, then a two-layer MLP to one score."""

    def __init__(self, in_dim: int = FEATURE_DIM, hidden: int = 512, dropout: float = 0.2):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features - self.feature_mean) / self.feature_std
        return self.mlp(z).squeeze(1)


class AestheticNet(nn.Module):
    """Backbone + head; `forward` gives scores, `forward_all` scores and embeddings."""

    def __init__(self, backbone: nn.Module | None = None, head: AestheticHead | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else build_backbone()
        self.head = head if head is not None else AestheticHead()

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, embedding = multilevel_features(self.backbone, x)
        return self.head(features), embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def load_weights(net: AestheticNet, path: Any) -> None:
    """Load a photod safetensors file: `head.*` always, `backbone.*` when it was fine-tuned."""
    from safetensors.torch import load_file

    state = load_file(str(path))
    head_state = {k[5:]: v.float() for k, v in state.items() if k.startswith("head.")}
    backbone_state = {k[9:]: v.float() for k, v in state.items() if k.startswith("backbone.")}
    if not head_state:
        raise ModelError(f"{path} holds no head weights")
    hidden = head_state["mlp.0.weight"].shape[0]
    if hidden != net.head.mlp[0].out_features:
        net.head = AestheticHead(hidden=hidden)
    net.head.load_state_dict(head_state, strict=True)
    if backbone_state:
        net.backbone.load_state_dict(backbone_state, strict=True)


def build_aesthetic(spec: ModelSpec, device: str = "cpu") -> AestheticNet:
    """Build the network of `spec`, load its weights, move it to `device` in eval mode."""
    net = AestheticNet()
    if spec.weights is not None:
        load_weights(net, spec.weights)
    net = net.eval().to(device)
    net = net.to(memory_format=torch.channels_last)
    if device.startswith("cuda"):
        net = net.half()
    return net
