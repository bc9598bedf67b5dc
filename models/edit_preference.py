"""The edit-preference head: ranks versions of ONE photo, the objective of `photod suggest`.

A mean-opinion head (PARA's 1-5 means over squashed 224 x 224 photos) answers "how good is this
photo"; a search over crops, exposure and colour asks "which of these versions of the same photo
is better" — another task (shared/NOTES.md, "The score as an objective"). This head is trained
only on that second task (training/train_edit_head.py): variants of good photos (exposure
ladders in linear light, white-balance casts, contrast/saturation, tilts, flat or foreign
margins, crops that cut the subject or are too tight) ranked with a pairwise loss, each variant
seen at its own aspect ratio (models/buckets.py).

It reads the same MLSP features (per-stage mean/std + the pooled 1280-d head features) as the
rating head, from the same backbone pass: it is stored as the extra head `edit_preference` of
the multi-head model file it was trained on (`heads.edit_preference.*` beside `head.*`, listed
in the card's "heads" with its pair accuracy and calibrated margin; `models.aesthetic.add_head`).
Swapping the backbone is one re-run of the training script with `--base` (it writes the head
into that model's file).

`load_edit_model` builds the folded plain-torch backbone (models/lite.py: no timm import) and
the head; `EditPreferenceNet.forward_all(x)` gives (scores, embeddings) like AestheticNet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from photod.errors import ModelError

HEAD_NAME = "edit_preference"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# The model file whose backbone the shipped head was trained on, and which stores it.
DEFAULT_MODEL_FILE = WEIGHTS_DIR / "photod-aesthetic-v3.safetensors"
FEATURE_DIM = 2848


def new_head(in_dim: int = FEATURE_DIM, hidden: int = 64) -> nn.Module:
    """An untrained head: standardised features -> MLP (hidden units, GELU) -> one score.

    The multi-head file's own MLP head (`AestheticHead`, dropout off), so `load_weights` and
    `add_head` read and write it like any extra head.
    """
    from photod.models.aesthetic import AestheticHead

    return AestheticHead(in_dim=in_dim, hidden=hidden, dropout=0.0)


class EditPreferenceNet(nn.Module):
    """Folded Lite0 backbone + edit-preference head."""

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.head = head

    def forward_all(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features, embedding = self.backbone.features(x)
        return self.head(features.float()), embedding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_all(x)[0]


def read_card(path: Path = DEFAULT_MODEL_FILE) -> dict[str, Any]:
    """The head's entry in the model card ("heads"/"edit_preference"), plus the model's name."""
    import json

    card_path = path.with_suffix(".json")
    card = json.loads(card_path.read_text()) if card_path.exists() else {}
    entry = dict(card.get("heads", {}).get(HEAD_NAME, {}))
    base = str(card.get("version", path.stem))
    entry.setdefault("base", base)
    entry.setdefault("version", f"{base}+{HEAD_NAME}")
    return entry


def has_head(path: Path = DEFAULT_MODEL_FILE) -> bool:
    """True when the model file exists and lists the edit-preference head in its card."""
    return path.exists() and bool(read_card(path).get("kind"))


def load_edit_model(path: Path = DEFAULT_MODEL_FILE, device: str = "cpu") -> EditPreferenceNet:
    """The model file's backbone (folded, plain torch) + its edit-preference head."""
    from safetensors.torch import load_file

    from photod.models.aesthetic import loaded_head, split_state
    from photod.models.lite import lite0_from_file_state

    if not path.exists():
        raise ModelError(f"model file {path} is missing")
    _, backbone_state, extra = split_state(load_file(str(path)))
    if HEAD_NAME not in extra:
        raise ModelError(f"{path} holds no heads.{HEAD_NAME}.* tensors")
    head = loaded_head(extra[HEAD_NAME])
    net = EditPreferenceNet(lite0_from_file_state(backbone_state), head.eval())
    net = net.eval().to(device).to(memory_format=torch.channels_last)
    if device.startswith("cuda"):
        net.backbone.half()  # the head stays fp32: it standardises the fp32 pooled features
    return net
