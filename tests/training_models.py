"""A real, small model for training/eval tests: ImageNet backbone + a seeded head in safetensors.

Registered like a shipped model (weights file + JSON card), so tests do not depend on the shipped
weights being present and never modify them.
"""

from __future__ import annotations

import json
from pathlib import Path

TEST_BASE = "test-base-head"


def register_test_head(folder: Path) -> str:
    """Register TEST_BASE once per process (weights written to `folder`); returns its name."""
    import torch
    from safetensors.torch import save_file

    from photod.models.aesthetic import AestheticHead, build_aesthetic
    from photod.models.registry import _REGISTRY, register_model

    if TEST_BASE in _REGISTRY:
        return TEST_BASE
    torch.manual_seed(0)
    head = AestheticHead()
    weights = folder / f"{TEST_BASE}.safetensors"
    save_file({f"head.{k}": v.contiguous() for k, v in head.state_dict().items()}, weights)
    card = {"version": "test-base-1", "star_thresholds": [-0.2, -0.1, 0.1, 0.2]}
    weights.with_suffix(".json").write_text(json.dumps(card))

    @register_model(TEST_BASE, description="test base", weights=weights)
    def _factory(device: str = "cpu", spec=None):
        return build_aesthetic(spec, device)

    return TEST_BASE
