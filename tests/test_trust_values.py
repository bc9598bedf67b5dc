"""NaN and infinity never reach JSON, the index or a rating (issue 16, finding 2).

Manual lenses write EXIF ExposureTime / FNumber as 0/0; Pillow reads that as NaN. Real JPEGs with
those tags go through the real web app, the real pipeline and a real SQLite index.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, TiffImagePlugin
from starlette.testclient import TestClient

from photod.stars import StarMapping
from photod.web import WebConfig, create_app
from tests import photos


def write_manual_lens_jpeg(path: Path, pixels: np.ndarray) -> Path:
    """A JPEG whose EXIF ExposureTime and FNumber are 0/0, as manual lenses leave them."""
    exif = photos.camera_exif()
    ifd = exif.get_ifd(0x8769)
    ifd[0x829A] = TiffImagePlugin.IFDRational(0, 0)  # ExposureTime
    ifd[0x829D] = TiffImagePlugin.IFDRational(0, 0)  # FNumber
    Image.fromarray(pixels).save(path, "JPEG", quality=90, exif=exif)
    return path


def test_score_upload_with_zero_over_zero_exif_is_json(scorer, tmp_path: Path, cat_pixels):
    photo = write_manual_lens_jpeg(tmp_path / "manual.jpg", cat_pixels)
    client = TestClient(create_app(WebConfig(), scorer=scorer), base_url="http://127.0.0.1")
    response = client.post("/api/score", files={"file": ("manual.jpg", photo.read_bytes())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert "exposure_time" not in body["exif"] and "f_number" not in body["exif"]
    assert body["exif"]["model"] == "EOS R5"  # the rest of the EXIF is still there
    assert math.isfinite(body["score"])


def test_index_row_of_manual_lens_photo_has_no_nan(scorer, tmp_path: Path, cat_pixels):
    from photod.index import get_by_path, open_index
    from photod.pipeline import process_paths

    photo = write_manual_lens_jpeg(tmp_path / "manual.jpg", cat_pixels)
    db = open_index(tmp_path / "index.db")
    try:
        (result,) = list(process_paths([photo], scorer, db, write_mode="none"))
        assert result.status == "ok"
        row = get_by_path(db, str(photo))
        assert row["exposure_time"] is None and row["f_number"] is None
        # Nothing non-finite anywhere in the row (SQLite would store NaN as NULL or a REAL nan).
        nonfinite = db.execute(
            "SELECT count(*) FROM photos WHERE exposure_time != exposure_time "
            "OR f_number != f_number OR score != score"
        ).fetchone()[0]
        assert nonfinite == 0
    finally:
        db.close()


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_star_mapping_refuses_non_finite_scores(value):
    # A NaN used to compare as "above every threshold": 5 stars written into the photo.
    with pytest.raises(ValueError, match="finite"):
        StarMapping().stars(value)


def test_scorer_turns_a_non_finite_score_into_an_error(scorer, tmp_path: Path, cat_pixels):
    """A model output that is not finite is a per-file error, never a score or stars."""
    from photod.scoring import ScoreResult

    result = ScoreResult(path=str(tmp_path / "x.jpg"), model=scorer.version)
    scorer._set_score(result, float("nan"), None)
    assert result.status == "error" and result.error_code == "model"
    assert result.score is None and result.stars is None
    scorer._set_score(result, 3.2, None)  # a finite score goes through unchanged
    assert result.status == "ok" and result.stars == StarMapping(
        scorer.star_mapping.thresholds
    ).stars(3.2)


def test_json_response_never_sends_nan():
    from photod.web.app import PhotodJSONResponse

    body = PhotodJSONResponse({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": 2.5}}).body
    assert body == b'{"a": null, "b": [1.0, null], "c": {"d": 2.5}}'
