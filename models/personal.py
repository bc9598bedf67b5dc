"""Personal models' heads: the base head plus a correction learned from the user's ratings.

`photod train --from-ratings` (training/personal.py) fits the correction, a linear function of
the base model's own MLSP features, stored as a `LinearHead` under `heads.<name>.*`;
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
    """The correction head stored as `heads.<name>.*` (any head architecture the multi-head
    layout knows: linear or MLP)."""
    from safetensors.torch import load_file

    from photod.errors import ModelError
    from photod.models.aesthetic import head_from_state, split_state

    _, _, extra = split_state(load_file(str(path)))
    if name not in extra:
        raise ModelError(f"{path} holds no head {name!r} (heads: {', '.join(extra) or 'none'})")
    tensors = {k: v.float() for k, v in extra[name].items()}
    head = head_from_state(tensors)
    head.load_state_dict(tensors, strict=True)
    return head.eval()
