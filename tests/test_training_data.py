"""Dataset loaders, synthetic degradations, handcrafted features and the paper's baselines.

Every loader reads small files generated here in the formats it targets (PARA's labels.csv, a
generic CSV, AVA.txt, a popularity CSV); degradations run on a real photograph.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from photod.training import datasets
from photod.training.degrade import EVAL_STRENGTH, KINDS, degrade, shift_exposure, srgb_to_linear
from tests import photos


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return photos.real_photo("coffee", scale=0.5)  # 300x200, a real photograph


def test_para_split_is_by_session_and_stable(tmp_path: Path) -> None:
    rows = ["image,session,aesthetic_mean,quality_mean"]
    for i in range(200):
        rows.append(f"img{i:03d}.jpg,session{i // 4},{1 + (i % 40) / 10:.2f},3.0")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    train = datasets.para_dataset(tmp_path, split="train")
    val = datasets.para_dataset(tmp_path, split="val")
    assert len(train) + len(val) == 200
    assert 0.08 < len(val) / 200 < 0.35
    assert not {s.group for s in train} & {s.group for s in val}
    assert [s.path for s in val] == [s.path for s in datasets.para_dataset(tmp_path, split="val")]
    other_seed = datasets.para_dataset(tmp_path, split="val", seed=1)
    assert {s.group for s in other_seed} != {s.group for s in val}
    assert val[0].path == tmp_path / "images" / val[0].path.name


def test_popularity_protocol(tmp_path: Path) -> None:
    assert datasets.popularity_score(1023, 0) == pytest.approx(10.0)
    assert datasets.popularity_score(99, 9) == pytest.approx(math.log2(10))
    lines = ["image,views,upload_date,crawl_date,user"]
    # Ten photos, all online 9 days: popularity rises with views; top/bottom 20 % = 2 each.
    for i in range(10):
        lines.append(f"p{i}.jpg,{(i + 1) * 100 - 1},2026-01-01,2026-01-10,user{i}")
    csv_path = tmp_path / "pop.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    extremes = datasets.popularity_dataset(csv_path)
    assert {s.path.name: s.target for s in extremes} == {
        "p0.jpg": 0.0,
        "p1.jpg": 0.0,
        "p8.jpg": 1.0,
        "p9.jpg": 1.0,
    }
    scores = {s.path.name: s.target for s in datasets.popularity_dataset(csv_path, binary=False)}
    assert scores["p9.jpg"] == pytest.approx(math.log2(1000 / 10))
    assert len(scores) == 10
    # The days matter: the same views over a longer time is less popular.
    csv_path.write_text(
        "image,views,upload_date,crawl_date\n"
        "old.jpg,1000,2020-01-01,2026-01-01\nnew.jpg,1000,2025-12-31,2026-01-01\n"
    )
    ranked = datasets.popularity_dataset(csv_path, binary=False)
    by_name = {s.path.name: s.target for s in ranked}
    assert by_name["new.jpg"] > by_name["old.jpg"]


def test_generic_csv_and_errors(tmp_path: Path) -> None:
    (tmp_path / "set.csv").write_text("image,score,shoot\na.jpg,4.5,x\nsub/b.jpg,2.0,y\n")
    samples = datasets.csv_dataset(tmp_path / "set.csv", group_column="shoot")
    assert [(s.path, s.target, s.group) for s in samples] == [
        (tmp_path / "a.jpg", 4.5, "x"),
        (tmp_path / "sub" / "b.jpg", 2.0, "y"),
    ]
    (tmp_path / "bad.csv").write_text("file,rating\na.jpg,3\n")
    with pytest.raises(ValueError, match="no column 'image'"):
        datasets.csv_dataset(tmp_path / "bad.csv")


def test_ava_txt(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "953619.jpg").write_bytes(b"")
    (images / "953958.jpg").write_bytes(b"")
    (tmp_path / "AVA.txt").write_text(
        "1 953619 0 1 5 17 38 36 15 6 5 1 1 22 1396\n"
        "2 953958 10 0 0 0 0 0 0 0 0 0 0 0 1396\n"
        "3 954184 0 0 0 0 0 0 0 0 0 5 0 0 1396\n"  # image missing on disk: skipped
        "4 954113 0 0 0 0 0 0 0 0 0 0 0 0 1396\n"  # no votes: skipped
    )
    samples = datasets.ava_dataset(tmp_path / "AVA.txt")
    votes = [0, 1, 5, 17, 38, 36, 15, 6, 5, 1]
    expected = sum((i + 1) * v for i, v in enumerate(votes)) / sum(votes)
    assert [s.path.name for s in samples] == ["953619.jpg", "953958.jpg"]
    assert samples[0].target == pytest.approx(expected)
    assert samples[1].target == 1.0
    assert samples[0].group == "challenge1396"
    assert len(datasets.ava_dataset(tmp_path / "AVA.txt", require_images=False)) == 3
    (tmp_path / "broken.txt").write_text("1 2 3\n")
    with pytest.raises(ValueError, match="expected 15 fields"):
        datasets.ava_dataset(tmp_path / "broken.txt")


@pytest.mark.parametrize("kind", KINDS)
def test_each_degradation_changes_the_photo_and_keeps_its_shape(photo, kind: str) -> None:
    rng = np.random.default_rng(0)
    out = degrade(photo, kind, rng, EVAL_STRENGTH[kind])
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.abs(out.astype(int) - photo).mean() > 2.0
    again = degrade(photo, kind, np.random.default_rng(0), EVAL_STRENGTH[kind])
    assert np.array_equal(out, again)  # seeded: reproducible


def test_exposure_is_a_shift_in_linear_light(photo) -> None:
    grey = np.full((8, 8, 3), 100, np.uint8)
    for ev in (-1.0, 1.0):
        shifted = shift_exposure(grey, ev)
        ratio = srgb_to_linear(shifted[0, 0, 0] / 255) / srgb_to_linear(100 / 255)
        assert ratio == pytest.approx(2.0**ev, rel=0.03)
    assert shift_exposure(photo, -1.0).mean() < photo.mean() < shift_exposure(photo, 1.0).mean()
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(photo, "sepia", np.random.default_rng(0))


def test_handcrafted_features_follow_the_defects(photo) -> None:
    from photod.training.evaluate import HANDCRAFTED_NAMES, handcrafted_features

    names = list(HANDCRAFTED_NAMES)
    base = handcrafted_features(photo)
    rng = np.random.default_rng(0)
    blurred = handcrafted_features(degrade(photo, "blur", rng, 3.0))
    dark = handcrafted_features(degrade(photo, "underexposed", rng, 1.5))
    flat = handcrafted_features(degrade(photo, "low_contrast", rng, 0.6))
    assert blurred[names.index("sharpness")] < base[names.index("sharpness")]
    assert dark[names.index("exposure")] < base[names.index("exposure")]
    assert flat[names.index("rms_contrast")] < base[names.index("rms_contrast")]


def test_baselines_learn_a_real_signal_and_not_noise() -> None:
    from photod.training.evaluate import run_baselines

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 12))
    y = x[:, 0] * 2 + x[:, 1] + rng.normal(scale=0.3, size=400)
    hand = x[:, :3] + rng.normal(scale=0.1, size=(400, 3))
    rows, _ = run_baselines(
        x[:300], y[:300], x[300:], y[300:], hand[:300], hand[300:], forest_trees=40
    )
    assert rows["linear SVM (frozen features)"]["top_bottom_accuracy"] > 0.9
    assert rows["random forest (frozen features)"]["top_bottom_accuracy"] > 0.8
    assert rows["ridge (frozen features)"]["srcc"] > 0.9
    # The same pipeline on shuffled targets stays near chance: the numbers above are earned.
    noise, _ = run_baselines(x[:300], rng.permutation(y[:300]), x[300:], y[300:], forest_trees=10)
    assert abs(noise["ridge (frozen features)"]["srcc"]) < 0.3


def test_binary_targets_use_their_own_classes() -> None:
    from photod.training.evaluate import score_report

    target = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    perfect = score_report(np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7]), target)
    assert perfect["top_bottom_accuracy"] == 1.0 and perfect["top_bottom_f1"] == 1.0
    wrong = score_report(np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.3]), target)
    assert wrong["top_bottom_accuracy"] == 0.0
