"""Personal models' heads: the base head plus a correction learned from the user's ratings.

`photod train --from-ratings` (training/personal.py) fits the correction, a linear function of
the base model's own MLSP features stored as a one-unit head under `heads.<name>.*`;
`models.zoo.build_personal` builds the base model and swaps in `CorrectedHead`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn


class CorrectedHead(nn.Module):
    """A base head plus a personal correction head on the same MLSP features.

    Swapped in as the network's `head`, so everything that runs a head (scoring, the suggestion
    search's RoI scorers, batch-norm folding) scores with the personal model unchanged.
    """

    def __init__(self, base: Any, correction: Any) -> None:
        super().__init__()
        self.base = base
        self.correction = correction

    def forward(self, features: Any) -> Any:
        return self.base(features) + self.correction(features)


def load_personal_head(path: Path, name: str) -> Any:
    """The correction head stored as `heads.<name>.*` (an AestheticHead state dict)."""
    from safetensors.torch import load_file

    from photod.errors import ModelError
    from photod.models.aesthetic import AestheticHead

    prefix = f"heads.{name}."
    state = {k[len(prefix) :]: v.float() for k, v in load_file(str(path)).items()}
    state = {k: v for k, v in state.items() if not k.startswith("heads.")}
    if "mlp.0.weight" not in state:
        raise ModelError(f"{path} holds no head {name!r}")
    hidden, in_dim = state["mlp.0.weight"].shape
    head = AestheticHead(in_dim=in_dim, hidden=hidden)
    head.load_state_dict(state, strict=True)
    return head.eval()
