"""The v4 recipe end to end on a tiny PARA-shaped set of real photos: caches, training, export.

Real JPEGs in PARA's layout, the real stage-0-3 trunk and pair caches, a few real optimisation
steps, checkpoints and resume, and the exported file (only the fine-tuned backbone modules stored)
loaded back through the code `Scorer` uses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.test_training_finetune import tiny_para  # noqa: F401  (the shared fixture)


def _args(tmp: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--trunk-cache", str(cache / "trunk"),
        "--pair-cache", str(cache / "pairs"),
        "--val-pair-cache", str(cache / "val-pairs.npz"),
        "--checkpoints", str(tmp / "ckpt"),
        "--out", str(tmp / "out" / "test-v4.safetensors"),
        "--batch-size", "4",
        "--pair-batch", "2",
        "--pair-photos", "2",
        "--checkpoint-every", "2",
        "--device", "cpu",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_finetune_v4_trains_exports_and_resumes(tiny_para, tmp_path, monkeypatch) -> None:  # noqa: F811
    import torch
    from safetensors.torch import load_file

    from photod.decode import decode_image
    from photod.models.aesthetic import AestheticNet, LinearHead, load_weights, tail_forward
    from photod.models.backbone import build_backbone
    from photod.models.preprocess import to_tensor
    from photod.training import finetune_v4
    from photod.training.datasets import para_dataset, session_split
    from photod.training.features import sharded_trunk

    monkeypatch.setenv("PHOTOD_PARA_DIR", str(tiny_para))
    cache = tmp_path / "cache"
    first = finetune_v4.main(_args(tmp_path, cache, "--epochs", "1"))
    out = tmp_path / "out" / "test-v4.safetensors"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["version"] == "test-v4"
    assert set(card["metrics"]) >= {"srcc", "plcc", "top_bottom_accuracy"}
    assert {"overexposed", "colour_cast", "all"} <= set(card["pair_accuracy"])
    assert card["heads"]["rating"]["kind"] == "linear"
    assert [e["epoch"] for e in card["history"]] == [1]
    assert {"val_pairs", "srcc", "plcc", "train_srcc"} <= set(card["history"][0])
    assert set(card["final"]) >= {"raw", "ema", "chosen"}
    assert card["star_thresholds"] == sorted(card["star_thresholds"])
    assert "research and learning use only" in card["licence"]

    # Only the trained modules are stored; the frozen stages come from the ImageNet package.
    state = load_file(str(out))
    stored = {k.split(".")[1] + ("." + k.split(".")[2] if ".blocks." in k else "") for k in state}
    assert {"blocks.4", "blocks.6", "conv_head", "bn2"} <= stored
    assert not any(k.startswith(("backbone.blocks.3.", "backbone.conv_stem")) for k in state)
    assert not any(k.startswith("backbone.classifier") for k in state)
    assert state["backbone.blocks.6.0.conv_pw.weight"].dtype == torch.float16
    imagenet = build_backbone().state_dict()
    assert not torch.equal(
        state["backbone.blocks.5.0.conv_pw.weight"], imagenet["blocks.5.0.conv_pw.weight"].half()
    )

    # Loaded like Scorer loads it: the full forward on pixels matches the cached-trunk path.
    net = AestheticNet()
    load_weights(net, out)
    assert isinstance(net.head, LinearHead)
    net.eval()
    assert torch.equal(
        net.backbone.blocks[2][0].conv_pw.weight, imagenet["blocks.2.0.conv_pw.weight"]
    )
    samples = para_dataset(split="all")
    val = [i for i, s in enumerate(samples) if session_split(s.group) == "val"]
    maps, stats, have = sharded_trunk(
        [s.path for s in samples], cache / "trunk", first=val, compute=False, stages=4
    )
    assert have.all() and maps.shape[1:] == (80, 14, 14)
    pixels = [decode_image(s.path).pixels for s in samples[:6]]
    with torch.inference_mode():
        full = net(to_tensor(pixels)).numpy()
        tail = tail_forward(
            net.backbone,
            net.head,
            torch.from_numpy(maps[:6]).float(),
            torch.from_numpy(stats[:6]),
            4,
        )[0].numpy()
    np.testing.assert_allclose(full, tail, atol=0.03)
    assert 0.5 < float(np.mean(full)) < 6.0  # on PARA's 1-5 scale, not in z units

    # Resume: a second epoch continues from the checkpoint.
    second = finetune_v4.main(_args(tmp_path, cache, "--epochs", "2", "--resume"))
    history = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [1, 2]
    assert first["epoch"] == 1 and second["epoch"] == 2
    assert len(list((tmp_path / "ckpt").glob("step-*.pt"))) <= 2

    # The head refit on the trained features: a new linear head, the card says so, it loads.
    from photod.training import refit_head

    cache_args = _args(tmp_path, cache)  # where the caches are, how many pair photos
    before = load_file(str(out))
    result = refit_head.main(["--model", str(out), "--write", *cache_args])
    after = load_file(str(out))
    assert not torch.equal(before["head.linear.weight"], after["head.linear.weight"])
    assert torch.equal(
        before["backbone.blocks.5.0.conv_pw.weight"], after["backbone.blocks.5.0.conv_pw.weight"]
    )
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["head_refit"]["alpha"] == result["chosen"]["alpha"]
    assert card["metrics"]["srcc"] == round(result["refit_head"]["srcc"], 4)
    assert card["star_thresholds"] == sorted(card["star_thresholds"])
    refit = AestheticNet()
    load_weights(refit, out)
    with torch.inference_mode():
        rescored = refit.eval()(to_tensor(pixels)).numpy()
    assert 0.5 < float(np.mean(rescored)) < 6.0 and not np.allclose(rescored, full)
