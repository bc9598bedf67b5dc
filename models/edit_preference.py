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

import math
from pathlib import Path
from typing import Any

import numpy as np

from photod.errors import ModelError

HEAD_NAME = "edit_preference"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# The model file whose backbone the shipped head was trained on, and which stores it.
DEFAULT_MODEL_FILE = WEIGHTS_DIR / "photod-aesthetic-v4.safetensors"
FEATURE_DIM = 2848


def new_head(in_dim: int = FEATURE_DIM, hidden: int = 64) -> Any:
    """An untrained head: standardised features -> MLP (hidden units, GELU) -> one score.

    The multi-head file's own MLP head (`AestheticHead`, dropout off), so `load_weights` and
    `add_head` read and write it like any extra head.
    """
    from photod.models.aesthetic import AestheticHead

    return AestheticHead(in_dim=in_dim, hidden=hidden, dropout=0.0)


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


class NumpyHead:
    """The edit-preference head (the multi-head file's MLP head) in numpy, for the torch-free
    path: standardise, Linear, exact GELU, Linear. Equal to the torch head to float tolerance."""

    def __init__(self, state: dict[str, np.ndarray]) -> None:
        def get(key: str) -> np.ndarray:
            return np.asarray(state[key], dtype=np.float32)

        w1 = get("mlp.0.weight").T
        # The features the head reads: the shipped head gives the pooled head features zero
        # weights (models/README.md), so they are neither standardised nor multiplied here.
        self.columns = np.flatnonzero(np.abs(w1).sum(1))
        self.mean = get("feature_mean")[self.columns]
        self.std = get("feature_std")[self.columns]
        self.w1, self.b1 = w1[self.columns].copy(), get("mlp.0.bias")
        self.w2, self.b2 = get("mlp.3.weight").T.copy(), get("mlp.3.bias")

    def __call__(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float32)[:, self.columns] - self.mean) / self.std
        hidden = z @ self.w1 + self.b1
        return (gelu(hidden) @ self.w2 + self.b2).reshape(-1)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU (torch's default), in numpy."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to about 1e-7 (Abramowitz & Stegun 7.1.26); numpy has none and scipy costs an import."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def load_numpy_head(path: Path = DEFAULT_MODEL_FILE) -> NumpyHead:
    """The model file's edit-preference head, read without torch."""
    from safetensors.numpy import load_file

    if not path.exists():
        raise ModelError(f"model file {path} is missing")
    prefix = f"heads.{HEAD_NAME}."
    state = {k[len(prefix) :]: v for k, v in load_file(str(path)).items() if k.startswith(prefix)}
    if "mlp.0.weight" not in state:
        raise ModelError(f"{path} holds no MLP {prefix}* tensors")
    return NumpyHead(state)


def load_edit_model(path: Path = DEFAULT_MODEL_FILE, device: str = "cpu") -> Any:
    """The model file's backbone (folded, plain torch) + its edit-preference head."""
    import torch
    from safetensors.torch import load_file
    from torch import nn

    from photod.models.aesthetic import loaded_head, split_state
    from photod.models.lite import lite0_from_file_state

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
