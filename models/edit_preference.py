"""The edit-preference head: ranks versions of ONE photo, the objective of `photod suggest`.

A mean-opinion head (PARA's 1-5 means over squashed 224 x 224 photos) answers "how good is this
photo"; a search over crops, exposure and colour asks "which of these versions of the same photo
is better" — another task (shared/NOTES.md, "The score as an objective"). This head is trained
only on that second task (training/train_edit_head.py): variants of good photos (exposure
ladders in linear light, white-balance casts, contrast/saturation, tilts, flat or foreign
margins, crops that cut the subject or are too tight) ranked with a pairwise loss, each variant
seen at its own aspect ratio (models/buckets.py).

It reads the same MLSP features (per-stage mean/std + the pooled 1280-d head features) as the
aesthetic head, from one pass of a shipped model's backbone; the backbone is named in the card
(`base`), so swapping the backbone is one re-run of the training script. Tensors are stored as
`heads.edit_preference.*`, the multi-head model file layout (a head over the shared features).

`load_edit_model` builds the folded plain-torch backbone (models/lite.py: no timm import) and
the head; `EditPreferenceNet.forward_all(x)` gives (scores, embeddings) like AestheticNet.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from photod.errors import ModelError

HEAD_NAME = "edit_preference"
WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_HEAD_FILE = WEIGHTS_DIR / "photod-edit-preference-v1.safetensors"
FEATURE_DIM = 2848


class PreferenceHead(nn.Module):
    """Standardised MLSP features -> one hidden layer -> a preference score (higher = better)."""

    def __init__(self, in_dim: int = FEATURE_DIM, hidden: int = 64):
        super().__init__()
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))
        self.hidden = hidden
        if hidden:
            self.mlp = nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), nn.Linear(hidden, 1))
        else:
            self.mlp = nn.Sequential(nn.Linear(in_dim, 1))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        z = (features.float() - self.feature_mean) / self.feature_std
        return self.mlp(z).squeeze(1)


class EditPreferenceNet(nn.Module):
    """Folded Lite0 backbone + edit-preference head."""

    def __init__(self, backbone: nn.Module, head: PreferenceHead):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, embedding = self.backbone.features(x)
        return self.head(features), embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def head_state(head: PreferenceHead) -> dict[str, torch.Tensor]:
    """The head's tensors under the multi-head file's names."""
    return {
        f"heads.{HEAD_NAME}.{k}": v.detach().cpu().contiguous()
        for k, v in head.state_dict().items()
    }


def read_card(path: Path = DEFAULT_HEAD_FILE) -> dict[str, Any]:
    card = path.with_suffix(".json")
    return json.loads(card.read_text()) if card.exists() else {}


def load_head(path: Path = DEFAULT_HEAD_FILE) -> PreferenceHead:
    """The edit-preference head stored in `path` (`heads.edit_preference.*`)."""
    from safetensors.torch import load_file

    if not path.exists():
        raise ModelError(f"edit-preference head {path} is missing")
    prefix = f"heads.{HEAD_NAME}."
    state = {
        k[len(prefix) :]: v.float() for k, v in load_file(str(path)).items() if k.startswith(prefix)
    }
    if not state:
        raise ModelError(f"{path} holds no {prefix}* tensors")
    hidden = state["mlp.0.weight"].shape[0] if "mlp.2.weight" in state else 0
    head = PreferenceHead(state["feature_mean"].shape[0], hidden)
    head.load_state_dict(state, strict=True)
    return head.eval()


def base_weights(card: dict[str, Any]) -> Path:
    """The model file whose `backbone.*` tensors the head was trained on."""
    base = card.get("base_weights") or f"{card.get('base', 'photod-aesthetic-v3')}.safetensors"
    path = Path(base)
    return path if path.is_absolute() else WEIGHTS_DIR / path


def load_backbone(path: Path) -> nn.Module:
    """The folded plain-torch Lite0 from a model file's `backbone.*` tensors (or ImageNet's)."""
    from safetensors.torch import load_file

    from photod.models.lite import Lite0

    state = load_file(str(path))
    if any(k.startswith("backbone.") for k in state):
        return Lite0.from_timm_state(state, "backbone.")
    # A head-only file over the frozen ImageNet backbone: pair the packaged weights by order.
    from photod.models.backbone import imagenet_weights_path

    source = torch.load(imagenet_weights_path(), map_location="cpu", weights_only=True)
    return Lite0.from_timm_state(_timm_names(source))


def _timm_names(source: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """lukemelas-style ImageNet tensors renamed to timm's names (same order and count)."""
    import timm  # only for a head over the frozen ImageNet backbone (not the shipped one)

    from photod.models.backbone import map_state_dict

    return map_state_dict(source, timm.create_model("tf_efficientnet_lite0").state_dict())


def load_edit_model(head_file: Path = DEFAULT_HEAD_FILE, device: str = "cpu") -> EditPreferenceNet:
    """Backbone of the card's base model + the edit-preference head, eval mode on `device`."""
    card = read_card(head_file)
    net = EditPreferenceNet(load_backbone(base_weights(card)), load_head(head_file))
    net = net.eval().to(device).to(memory_format=torch.channels_last)
    if device.startswith("cuda"):
        net.backbone.half()  # the head stays fp32: it standardises the fp32 pooled features
    return net
