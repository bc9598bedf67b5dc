"""The aesthetic network: EfficientNet-Lite0 with multi-level pooled features and a small head.

Features follow MLSP (Hosu et al. 2019): the global mean and standard deviation of every stage's
output plus the pooled 1280-d head features, so the head sees both low-level technical signals
(blur, noise, exposure live in early stages) and semantic ones. The head predicts the human mean
aesthetic score on PARA's 1-5 scale. The pooled 1280-d features double as an embedding for
grouping near-duplicates.
"""

from __future__ import annotations

import json
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


def tail_forward(backbone, head, maps, early_stats, stages: int = TRUNK_STAGES):
    """Scores and embeddings from trunk outputs: blocks[TRUNK_STAGES:], head conv, MLP head.

    Equal to `AestheticNet.forward_all` on the image whenever the network's first `stages`
    stages are the frozen ImageNet ones the trunk cache was made with (true for v1, v2 and v3
    with 5 trunk stages, v4 with 4).
    """
    h = maps
    pooled = [early_stats.float()]
    for stage in backbone.blocks[stages:]:
        h = stage(h)
        pooled += stage_statistics(h)
    h = backbone.bn2(backbone.conv_head(h))
    embedding = h.float().mean(dim=(2, 3))
    pooled.append(embedding)
    return head(torch.cat(pooled, dim=1)), embedding


class AestheticHead(nn.Module):
    """Standardise the features, then a two-layer MLP to one score (or `out_dim` values)."""

    def __init__(
        self, in_dim: int = FEATURE_DIM, hidden: int = 512, dropout: float = 0.2, out_dim: int = 1
    ):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out_dim)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features - self.feature_mean) / self.feature_std
        out = self.mlp(z)
        return out.squeeze(1) if out.shape[1] == 1 else out


class LinearHead(nn.Module):
    """Standardise the features, then one linear layer to one score (or `out_dim` values)."""

    def __init__(self, in_dim: int = FEATURE_DIM, out_dim: int = 1):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.linear = nn.Linear(in_dim, out_dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        out = self.linear((features - self.feature_mean) / self.feature_std)
        return out.squeeze(1) if out.shape[1] == 1 else out


def head_kind(head: nn.Module) -> str:
    """'linear' or 'mlp': the architecture name the model card lists for a head."""
    return "linear" if isinstance(head, LinearHead) else "mlp"


def head_from_state(state: dict[str, torch.Tensor]) -> nn.Module:
    """An empty head whose architecture matches a head state dict (linear or MLP, any sizes)."""
    if "mlp.0.weight" in state and "mlp.3.weight" in state:
        first, last = state["mlp.0.weight"], state["mlp.3.weight"]
        return AestheticHead(in_dim=first.shape[1], hidden=first.shape[0], out_dim=last.shape[0])
    if "linear.weight" in state:
        weight = state["linear.weight"]
        return LinearHead(in_dim=weight.shape[1], out_dim=weight.shape[0])
    raise ModelError(f"unrecognised head tensors: {sorted(state)[:6]}")


def loaded_head(state: dict[str, torch.Tensor]) -> nn.Module:
    """`head_from_state` with the tensors loaded (strictly, in fp32)."""
    head = head_from_state(state)
    head.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return head


RATING = "rating"  # the name of the `head.*` head in forward_heads and in the card's "heads"


class AestheticNet(nn.Module):
    """Backbone + rating head + any extra heads over the same MLSP features.

    `forward` gives scores, `forward_all` scores and embeddings, `forward_heads` every head's
    output (the rating under "rating") from one backbone pass.
    """

    def __init__(
        self,
        backbone: nn.Module | None = None,
        head: nn.Module | None = None,
        heads: dict[str, nn.Module] | None = None,
    ):
        super().__init__()
        self.backbone = backbone if backbone is not None else build_backbone()
        self.head = head if head is not None else AestheticHead()
        self.heads = nn.ModuleDict(heads or {})

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, embedding = multilevel_features(self.backbone, x)
        return self.head(features), embedding

    def forward_heads(
        self, x: torch.Tensor, names: Any = None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """({"rating": scores, name: output, ...}, embeddings); `names` limits the extra heads."""
        features, embedding = multilevel_features(self.backbone, x)
        return self.head_outputs(features, names), embedding

    def head_outputs(self, features: torch.Tensor, names: Any = None) -> dict[str, torch.Tensor]:
        """{"rating": scores, name: output, ...} of MLSP features (the backbone's, computed here
        or by its ONNX export, photod.models.onnx_backbone); `names` limits the extra heads."""
        out = {RATING: self.head(features)}
        for name in self.heads if names is None else names:
            if name != RATING:
                out[name] = self.heads[name](features)
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


class FoldedAestheticNet(AestheticNet):
    """AestheticNet for CPU inference: the same heads over `photod.models.lite.Lite0`, the
    backbone rebuilt in plain torch with every batch norm folded into its convolution.

    Building it imports neither timm nor torchvision (~3 s of CPU in a new process) and needs
    no fold-and-check passes at load; its outputs equal AestheticNet's to float tolerance
    (tests/test_speed.py). Lite0 keeps timm's attribute layout, so `multilevel_features` and the
    RoI scorers of `photod.suggest` run on it unchanged. Inference only: its convolutions carry
    the folded batch norms.
    """

    folded = True


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict[str, dict]]:
    """(rating head, backbone, {extra head name: its tensors}) of a photod safetensors state."""
    head_state = {k[5:]: v for k, v in state.items() if k.startswith("head.")}
    backbone_state = {k[9:]: v for k, v in state.items() if k.startswith("backbone.")}
    extra: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in state.items():
        if key.startswith("heads."):
            name, _, rest = key[6:].partition(".")
            extra.setdefault(name, {})[rest] = value
    return head_state, backbone_state, extra


def _module_group(key: str) -> str:
    """'blocks.4' for 'blocks.4.0.conv_pw.weight', 'conv_head' for 'conv_head.weight'."""
    parts = key.split(".")
    return ".".join(parts[:2]) if parts[0] == "blocks" else parts[0]


def load_backbone(backbone: nn.Module, state: dict[str, torch.Tensor], path: Any = "") -> None:
    """Load fine-tuned backbone tensors over the ImageNet backbone.

    A file may store only the modules it changed (v4 stores blocks 4-6 and the head convolution;
    the rest stays ImageNet's). A module is either stored whole or not at all: a module with
    some of its tensors missing means a damaged file and fails loudly.
    """
    own = backbone.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise ModelError(f"{path}: backbone tensors the architecture lacks: {unknown[:4]}")
    stored = {_module_group(k) for k in state}
    partial = sorted({_module_group(k) for k in own if k not in state} & stored)
    if partial:
        raise ModelError(f"{path}: backbone modules stored incompletely: {partial}")
    dtypes = {k: own[k].dtype for k in state}
    backbone.load_state_dict({k: v.to(dtypes[k]) for k, v in state.items()}, strict=False)


def load_weights(net: AestheticNet, path: Any) -> None:
    """Load a photod safetensors file into `net`.

    `head.*` (the rating head) always; `backbone.*` when the file was fine-tuned; `heads.NAME.*`
    for each extra head, its architecture read off its tensors. A file without extra heads (a
    personal head over a base model) leaves the extra heads already in `net` in place.
    """
    from safetensors.torch import load_file

    state = load_file(str(path))
    head_state, backbone_state, extra = split_state(state)
    if not head_state:
        raise ModelError(f"{path} holds no head weights")
    net.head = loaded_head(head_state)
    if backbone_state:
        load_backbone(net.backbone, backbone_state, path)
    for name, tensors in extra.items():
        net.heads[name] = loaded_head(tensors)


def add_head(
    path: Any, name: str, module: nn.Module, card_entry: dict[str, Any] | None = None
) -> None:
    """Add (or replace) extra head `name` in the model file `path` and list it in the card.

    The head must consume the model's MLSP features (a `LinearHead` or `AestheticHead`). Its
    matrices are stored in fp16, its standardisation buffers and biases in fp32. Weights and card
    are rewritten atomically (`training.export.write_model`); every other tensor stays as it was.
    """
    from pathlib import Path

    from safetensors.torch import load_file

    from photod.training.export import write_model

    if not name or "." in name or name == RATING:
        raise ModelError(f"invalid head name {name!r} ('rating' is the head.* head)")
    head_from_state(
        dict(module.state_dict())
    )  # an architecture load_weights cannot read fails here
    path = Path(path)
    state = {k: v for k, v in load_file(str(path)).items() if not k.startswith(f"heads.{name}.")}
    for key, value in module.state_dict().items():
        value = value.detach().cpu()
        keep32 = key.startswith("feature_") or value.dim() < 2
        state[f"heads.{name}.{key}"] = (value.float() if keep32 else value.half()).contiguous()
    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    entry = {"kind": head_kind(module), "metrics": {}, **(card_entry or {})}
    card.setdefault("heads", {})[name] = entry
    write_model(path, state, card)


def build_folded(path: Any) -> FoldedAestheticNet:
    """The network of the photod file `path` as a FoldedAestheticNet (CPU inference)."""
    from safetensors.torch import load_file

    from photod.models.lite import lite0_from_file_state

    head_state, backbone_state, extra = split_state(load_file(str(path)))
    if not head_state:
        raise ModelError(f"{path} holds no head weights")
    heads = {name: loaded_head(tensors) for name, tensors in extra.items()}
    net = FoldedAestheticNet(lite0_from_file_state(backbone_state), loaded_head(head_state), heads)
    return net.eval().to(memory_format=torch.channels_last)


def build_aesthetic(spec: ModelSpec, device: str = "cpu", folded: bool = False) -> AestheticNet:
    """Build the network of `spec`, load its weights, move it to `device` in eval mode.

    `folded` (CPU only): the inference-only FoldedAestheticNet, built without timm."""
    if folded and device == "cpu" and spec.weights is not None:
        return build_folded(spec.weights)
    net = AestheticNet()
    if spec.weights is not None:
        load_weights(net, spec.weights)
    net = net.eval().to(device)
    net = net.to(memory_format=torch.channels_last)
    if device.startswith("cuda"):
        net = net.half()
    return net
