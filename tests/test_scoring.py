"""The shipped scorer on real photos: range, determinism, batching, and that damage lowers scores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from photod.stars import StarMapping, thresholds_from_scores
from tests import photos


def _degrade(pixels: np.ndarray) -> np.ndarray:
    """Heavy blur and -3 EV (in linear light)."""
    blurred = np.asarray(Image.fromarray(pixels).filter(ImageFilter.GaussianBlur(6)))
    linear = (blurred / 255.0) ** 2.2 * 2.0**-3
    return (np.clip(linear ** (1 / 2.2), 0, 1) * 255 + 0.5).astype(np.uint8)


def test_scores_are_in_range_deterministic_and_batch_independent(scorer) -> None:
    images = [photos.real_photo(name) for name in ("chelsea", "coffee", "astronaut", "rocket")]
    scores, embeddings = scorer.score_pixels(images)
    assert scores.shape == (4,) and embeddings.shape == (4, 1280)
    assert np.all((scores > 0.5) & (scores < 5.5)), scores
    again, _ = scorer.score_pixels(images)
    np.testing.assert_allclose(scores, again, atol=1e-5)
    one_by_one = np.concatenate([scorer.score_pixels([im])[0] for im in images])
    np.testing.assert_allclose(scores, one_by_one, atol=1e-3)
    assert scores.std() > 0.01  # different photos get different scores


def test_degraded_copies_score_lower(scorer) -> None:
    for name in ("chelsea", "coffee", "astronaut"):
        original = photos.real_photo(name)
        scores, _ = scorer.score_pixels([original, _degrade(original)])
        assert scores[1] < scores[0] - 0.1, (name, scores)


def test_score_paths_keeps_order_and_reports_bad_files(scorer, tmp_path: Path) -> None:
    good = [
        photos.write_jpeg(tmp_path / f"{i}.jpg", photos.real_photo(name))
        for i, name in enumerate(("chelsea", "coffee", "rocket"))
    ]
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    paths = [good[0], bad, good[1], good[2]]
    results = list(scorer.score_paths(paths))
    assert [r.path for r in results] == [str(p) for p in paths]
    assert [r.status for r in results] == ["ok", "error", "ok", "ok"]
    assert results[1].error_code == "not_an_image" and results[1].error
    assert "bad.jpg" not in results[1].error  # the result names the path; the error says why
    direct, _ = scorer.score_pixels([Image.open(good[0]).convert("RGB")])
    assert abs(results[0].score - float(direct[0])) < 0.05
    assert results[0].stars == scorer.star_mapping.stars(results[0].score)
    assert results[0].width == 451 and results[0].format == "JPEG"


def test_star_mapping_spreads_a_collection() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(3.2, 0.3, 5000)
    mapping = StarMapping(thresholds_from_scores(scores))
    stars = np.array([mapping.stars(s) for s in scores])
    shares = np.bincount(stars, minlength=6)[1:] / len(stars)
    np.testing.assert_allclose(shares, [0.10, 0.20, 0.35, 0.25, 0.10], atol=0.01)
    assert StarMapping((2.0, 3.0, 3.5, 4.0), reject_below=1.5).stars(1.2) == -1
