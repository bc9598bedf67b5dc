"""Pipeline trust (issue 16): a photo replaced mid-way never keeps the old score, failed writes are
retried, the user's cleared rating stays cleared, every write keeps the index in step.

Real photos, the real model, real metadata writes read back with exiftool, a real SQLite index.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from photod.index import get_by_path, open_index
from photod.pipeline import process_paths
from tests import photos

EXIFTOOL = shutil.which("exiftool") or "/usr/bin/exiftool"


@pytest.fixture()
def db(tmp_path: Path):
    database = open_index(tmp_path / "index.db")
    yield database
    database.close()


def _ratings(path: Path) -> dict:
    out = subprocess.run(
        [EXIFTOOL, "-json", "-G1", "-XMP-xmp:Rating", "-IFD0:Rating", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(out)[0]


def _one(paths, scorer, db, **kw):
    (outcome,) = list(process_paths(paths, scorer, db, **kw))
    return outcome


# ---------------------------------------------------------------------------------------------
# Finding 6: the user's "no stars"


@pytest.mark.parametrize("cleared_by", ["lightroom", "explorer"])
def test_a_rating_cleared_by_the_user_is_never_undone(tmp_path, scorer, db, cleared_by):
    photo = photos.write_jpeg(tmp_path / "cat.jpg", photos.real_photo("chelsea"))
    first = _one([photo], scorer, db)
    assert first.action == "scored" and first.stars >= 1
    assert _ratings(photo)["XMP-xmp:Rating"] == first.stars
    # The user clears the stars: Lightroom writes xmp:Rating 0; Explorer also sets EXIF Rating 0.
    args = ["-XMP-xmp:Rating=0"] + (["-IFD0:Rating=0"] if cleared_by == "explorer" else [])
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", *args, str(photo)], check=True)
    again = _one([photo], scorer, db)  # the edit changed the file: photod looks at it again
    assert again.action == "scored"
    assert again.user_rating == 0
    assert again.written == []
    assert _ratings(photo)["XMP-xmp:Rating"] == 0
    assert get_by_path(db, str(photo))["user_rating"] == 0
    # And it stays that way on the next pass.
    assert _one([photo], scorer, db).action == "unchanged"
    assert _ratings(photo)["XMP-xmp:Rating"] == 0


def test_zero_rating_on_a_photo_photod_never_rated_is_not_a_choice(tmp_path, scorer, db):
    """A camera's EXIF Rating 0 means "unrated": photod still rates the photo."""
    photo = photos.write_jpeg(tmp_path / "cam.jpg", photos.real_photo("coffee"))
    subprocess.run([EXIFTOOL, "-q", "-overwrite_original", "-IFD0:Rating=0", str(photo)], check=True)
    outcome = _one([photo], scorer, db)
    assert outcome.user_rating is None and outcome.written
    assert _ratings(photo)["XMP-xmp:Rating"] == outcome.stars
