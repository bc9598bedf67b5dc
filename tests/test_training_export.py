"""A trained head written by `write_model` loads as a registered photod model would."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from photod.models.aesthetic import AestheticHead, AestheticNet, load_weights
from photod.training.export import write_model


def test_written_head_loads_and_leaves_no_temp_files(tmp_path: Path) -> None:
    torch.manual_seed(3)
    head = AestheticHead(hidden=8)
    state = {f"head.{k}": v.contiguous() for k, v in head.state_dict().items()}
    weights = tmp_path / "models" / "mine.safetensors"
    write_model(weights, state, {"name": "mine", "star_thresholds": [1.0, 2.0, 3.0, 4.0]})
    assert sorted(p.name for p in weights.parent.iterdir()) == ["mine.json", "mine.safetensors"]
    assert json.loads(weights.with_suffix(".json").read_text())["name"] == "mine"
    net = AestheticNet(backbone=torch.nn.Identity())
    load_weights(net, weights)
    for key, value in head.state_dict().items():
        assert torch.equal(net.head.state_dict()[key], value), key
