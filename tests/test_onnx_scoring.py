"""The scorer's ONNX Runtime backbone: the same scores, embeddings and heads as torch, and a
graph that does not match the model's backbone (its file's tensors or the ImageNet weights
under them) is never used.

Its speed is measured by `python -m benchmarks throughput`, never asserted here.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from tests import photos


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx-scoring")
    names = ("chelsea", "coffee", "astronaut", "rocket", "camera", "cat")
    paths = []
    for i, name in enumerate(names):
        pixels = photos.real_photo(name, scale=0.6)
        orientation = 6 if i % 3 == 0 else 1  # the decode threads' rotations too
        paths.append(photos.write_jpeg(folder / f"{name}.jpg", pixels, orientation=orientation))
    paths.append(folder / "broken.jpg")
    paths[-1].write_bytes(paths[0].read_bytes()[:5000])  # truncated: an error row on both
    return paths


@pytest.mark.parametrize("model", ["photod-aesthetic-v2", "photod-aesthetic-v4"])
def test_onnx_backbone_scores_like_torch_through_score_paths(photo_files, model) -> None:
    from photod.scoring import Scorer

    on_onnx = Scorer(model=model, device="cpu")
    on_torch = Scorer(model=model, device="cpu", backend="torch")
    assert on_onnx.backend == "onnx" and on_torch.backend == "torch"
    heads = [h for h in on_onnx.head_names if h != "rating"]
    a = list(on_onnx.score_paths(photo_files))
    b = list(on_torch.score_paths(photo_files))
    assert [r.status for r in a] == [r.status for r in b]
    assert a[-1].status == "error" and sum(r.status == "ok" for r in a) == len(a) - 1
    for x, y in zip(a, b, strict=True):
        if x.status == "ok":
            assert abs(x.score - y.score) < 1e-4, (x.path, x.score, y.score)
            assert x.stars == y.stars
    ok = [r for r in a if r.status == "ok"]
    assert len({round(r.score, 3) for r in ok}) > 1  # real, different photos score differently
    # Embeddings and every extra head from the same pass.
    images = [on_torch.decode(r.path).pixels for r in ok]
    out_a, emb_a = on_onnx.score_heads(images, heads)
    out_b, emb_b = on_torch.score_heads(images, heads)
    assert emb_a.shape == emb_b.shape == (len(ok), 1280)
    assert float(np.abs(emb_a - emb_b).max()) < 1e-3
    assert set(out_a) == set(out_b) == {"rating", *heads}
    for name in out_a:
        assert float(np.abs(out_a[name] - out_b[name]).max()) < 1e-4, name


def test_a_graph_of_other_weights_is_refused_and_torch_scores(monkeypatch, tmp_path) -> None:
    import photod.models.backbone as backbone
    from photod.errors import ModelError
    from photod.models import onnx_backbone
    from photod.models.registry import get_model_spec
    from photod.scoring import Scorer

    image = photos.real_photo("chelsea", scale=0.5)
    expected = Scorer(model="photod-aesthetic-v2", device="cpu", backend="torch")
    expected_score = expected.score_pixels([image])[0][0]
    # v2's graph is an export of the ImageNet backbone: another ImageNet weights file (one byte
    # changed) makes it stale, although v2's own file is unchanged.
    changed = tmp_path / "imagenet.pth"
    shutil.copy(backbone.imagenet_weights_path(), changed)
    with open(changed, "r+b") as handle:
        handle.seek(-1, 2)
        last = handle.read(1)
        handle.seek(-1, 2)
        handle.write(bytes([last[0] ^ 1]))
    v2_file = get_model_spec("photod-aesthetic-v2").weights
    good = onnx_backbone.backbone_digest(v2_file)
    monkeypatch.setattr(backbone, "imagenet_weights_path", lambda: changed)
    assert onnx_backbone.backbone_digest(v2_file) != good
    with pytest.raises(ModelError, match="other backbone tensors"):
        onnx_backbone.load(v2_file)
    monkeypatch.undo()
    # v4's graph beside v2's file: refused; `auto` scores with torch, `onnx` says why.
    monkeypatch.setattr(
        onnx_backbone,
        "onnx_path",
        lambda model_file: model_file.with_name("photod-aesthetic-v4.backbone.onnx"),
    )
    fallback = Scorer(model="photod-aesthetic-v2", device="cpu")
    assert fallback.backend == "torch"
    assert abs(fallback.score_pixels([image])[0][0] - expected_score) < 1e-6
    with pytest.raises(ModelError, match="other backbone tensors"):
        Scorer(model="photod-aesthetic-v2", device="cpu", backend="onnx").score_pixels([image])


def test_models_without_an_export_score_on_torch() -> None:
    from photod.errors import ModelError
    from photod.scoring import Scorer

    assert Scorer(model="photod-aesthetic-v3", device="cpu").backend == "torch"
    with pytest.raises(ModelError, match="no ONNX export"):
        Scorer(model="photod-aesthetic-v3", device="cpu", backend="onnx").backend  # noqa: B018
    with pytest.raises(ModelError, match="unknown backend"):
        Scorer(backend="tensorrt")


def test_onnx_export_of_the_default_model_reproduces_the_shipped_graph(tmp_path) -> None:
    import onnxruntime as ort

    from photod.models.onnx_backbone import EXPORTED, OnnxBackbone, export, load
    from photod.models.registry import get_model_spec
    from photod.scoring import DEFAULT_MODEL

    assert DEFAULT_MODEL in EXPORTED
    model_file = get_model_spec(DEFAULT_MODEL).weights
    out = export(model_file, tmp_path / "backbone.onnx")
    fresh = OnnxBackbone(ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]))
    shipped = load(model_file, threads=1)
    pixels = np.stack([photos.real_photo("coffee", scale=0.6)[:224, :224]] * 2)
    assert float(np.abs(fresh.features(pixels) - shipped.features(pixels)).max()) < 1e-4
