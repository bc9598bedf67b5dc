"""The v2 recipe end to end on a tiny PARA-shaped set of real photos: caches, training, export.

Real JPEGs in PARA's layout (labels.csv + images/), the real trunk and pair caches, a few real
optimisation steps, checkpoints, resume, and the exported safetensors loaded back through the same
code `Scorer` uses. Kept to ~30 images at 224 px so it runs in seconds on a CPU.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from photod.training.degrade import degrade
from tests import photos


@pytest.fixture(scope="module")
def tiny_para(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 photos: crops of real photographs (good, 3.6-4.4) and degraded copies (poor, 1.6-2.4)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("para")
    (root / "images").mkdir()
    rng = np.random.default_rng(0)
    rows = ["image,session,aesthetic_mean,quality_mean"]
    kinds = ["blur", "underexposed", "noise", "low_contrast", "overexposed"]
    for i in range(16):
        name = ("chelsea", "coffee", "astronaut", "rocket", "cat")[i % 5]
        base = photos.real_photo(name, scale=0.6)
        h, w = base.shape[:2]
        top, left = rng.integers(0, h // 5), rng.integers(0, w // 5)
        crop = base[top : top + 4 * h // 5, left : left + 4 * w // 5]
        pixels = np.asarray(Image.fromarray(crop).resize((224, 224)))
        good = i % 2 == 0
        if not good:
            pixels = degrade(pixels, kinds[i % 5], rng, 2.5 if kinds[i % 5] != "noise" else 30.0)
        score = (4.0 if good else 2.0) + rng.uniform(-0.4, 0.4)
        Image.fromarray(pixels).save(root / "images" / f"p{i:02d}.jpg", quality=92)
        rows.append(f"p{i:02d}.jpg,s{i},{score:.3f},{score:.3f}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _args(tmp: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "--trunk-cache", str(cache / "trunk"),
        "--pair-cache", str(cache / "pairs"),
        "--val-pair-cache", str(cache / "val-pairs.npz"),
        "--checkpoints", str(tmp / "ckpt"),
        "--out", str(tmp / "out" / "test-v2.safetensors"),
        "--batch-size", "4",
        "--pair-batch", "2",
        "--pair-photos", "2",
        "--checkpoint-every", "2",
        "--device", "cpu",
        "--init", "no-such-model",
        *extra,
    ]  # fmt: skip


@pytest.mark.slow
def test_finetune_trains_exports_and_resumes(tiny_para, tmp_path, monkeypatch) -> None:
    import torch
    from safetensors.torch import load_file

    from photod.models.aesthetic import AestheticNet, load_weights
    from photod.models.preprocess import to_tensor
    from photod.training import finetune
    from photod.training.datasets import para_dataset
    from photod.training.features import sharded_trunk, tail_forward

    monkeypatch.setenv("PHOTOD_PARA_DIR", str(tiny_para))
    cache = tmp_path / "cache"
    first = finetune.main(_args(tmp_path, cache, "--epochs", "1"))
    out = tmp_path / "out" / "test-v2.safetensors"
    card = json.loads(out.with_suffix(".json").read_text())
    assert card["version"] == "test-v2"
    assert set(card["metrics"]) >= {"srcc", "plcc", "top_bottom_accuracy"}
    # Pair accuracy on degraded validation photos, per degradation, as the model card shows it.
    assert {"blur", "underexposed", "overexposed", "all"} <= set(card["pair_accuracy"])
    assert all(0.0 <= v <= 1.0 for v in card["pair_accuracy"].values())
    assert (cache / "val-pairs.npz").exists()
    assert card["star_thresholds"] == sorted(card["star_thresholds"])
    assert "research and learning use only" in card["licence"]
    assert out.stat().st_size < 15 * 2**20
    state = load_file(str(out))
    assert state["backbone.blocks.6.0.conv_pw.weight"].dtype == torch.float16
    assert state["head.feature_mean"].dtype == torch.float32
    assert len(list((cache / "trunk").glob("shard-*.npz"))) == 1
    assert len(list((cache / "pairs").glob("shard-*.npz"))) == 1

    # The late stages really moved away from ImageNet; the frozen early stages did not.
    from photod.models.backbone import build_backbone

    imagenet = build_backbone().state_dict()
    for key in ("blocks.6.0.conv_pw.weight", "conv_head.weight"):
        assert not torch.equal(state[f"backbone.{key}"], imagenet[key].half())
    for key in ("blocks.2.0.conv_pw.weight", "blocks.4.2.conv_dw.weight", "conv_stem.weight"):
        assert torch.equal(state[f"backbone.{key}"], imagenet[key].half())

    # Loaded like Scorer loads it, the file scores pixels as the cached-trunk path predicted.
    net = AestheticNet()
    load_weights(net, out)
    net.eval()
    samples = para_dataset(split="all")
    from photod.decode import decode_image

    pixels = [decode_image(s.path).pixels for s in samples[:6]]
    from photod.training.datasets import session_split

    val = [i for i, s in enumerate(samples) if session_split(s.group) == "val"]
    maps, stats, have = sharded_trunk(
        [s.path for s in samples], cache / "trunk", first=val, compute=False
    )
    assert have.all()
    with torch.inference_mode():
        full = net(to_tensor(pixels)).numpy()
        tail = tail_forward(
            net.backbone, net.head, torch.from_numpy(maps[:6]).float(), torch.from_numpy(stats[:6])
        )[0].numpy()
    np.testing.assert_allclose(full, tail, atol=0.03)

    # Same seed, fresh checkpoint folder: bit-identical weights (deterministic).
    finetune.main(_args(tmp_path / "again", cache, "--epochs", "1"))
    again = load_file(str(tmp_path / "again" / "out" / "test-v2.safetensors"))
    assert state.keys() == again.keys()
    assert all(torch.equal(state[k], again[k]) for k in state)

    # Resume: a second epoch continues from the checkpoint instead of starting over.
    second = finetune.main(_args(tmp_path, cache, "--epochs", "2", "--resume"))
    history = json.loads((tmp_path / "ckpt" / "history.json").read_text())
    assert [e["epoch"] for e in history["epochs"]] == [0, 1, 2]
    assert first["epoch"] == 1 and second["epoch"] == 2
    assert len(list((tmp_path / "ckpt").glob("step-*.pt"))) <= 2
