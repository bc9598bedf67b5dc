"""kill -9 a writer process again and again mid-write: every photo must still decode to the same
pixels and carry parseable, consistent metadata (pyexiv2 alone corrupted 16 of 30, NOTES.md)."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from photod.metadata import TEMP_PREFIX, clean_stale_temp_files, read_photod_fields
from photod.metadata.xmp import read_metadata
from tests import photos

# Writes ratings round and round over the given files until killed; prints "ready" once imported,
# so kills land during writes rather than during Python's start-up.
WRITER = """
import itertools, sys
from photod.metadata import RatingInfo, write_rating
paths = sys.argv[1:]
print("ready", flush=True)
for n, path in enumerate(itertools.cycle(paths)):
    stars = n % 6
    write_rating(path, RatingInfo(score=1.0 + stars / 2, stars=stars, model="kill-test",
                                  extra={"Round": str(n), "Pad": "x" * (n % 700)}))
"""


def _decoded(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        return np.asarray(im.convert("RGB"))


def test_kill_9_mid_write_never_damages_a_photo(tmp_path: Path) -> None:
    rng = random.Random(1234)
    names = ("chelsea", "coffee", "astronaut", "rocket")  # bundled, no download
    files, originals = [], {}
    for i in range(24):
        pixels = photos.real_photo(names[i % len(names)], scale=0.5 if i % 2 else 0.35)
        # a camera's unrated EXIF Rating, so the EXIF patch is part of every write
        path = photos.write_jpeg(tmp_path / f"img_{i:02d}.jpg", pixels, rating=0)
        files.append(path)
        originals[path] = _decoded(path)

    repo = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(repo))
    kills = 0
    deadline = time.monotonic() + 30
    while kills < 20 and time.monotonic() < deadline:
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, *map(str, files)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip() == b"ready", proc.stderr.read() if proc.stderr else line
        time.sleep(rng.uniform(0.01, 0.35))
        if proc.poll() is not None:  # the writer died on its own: that is a bug, show why
            pytest.fail(proc.stderr.read().decode() if proc.stderr else "writer exited")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 10

    stale = clean_stale_temp_files(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in files)
    rated = 0
    for path in files:
        assert np.array_equal(_decoded(path), originals[path]), f"{path.name}: pixels changed"
        xmp, exif = read_metadata(path)
        fields = read_photod_fields(path)
        if fields["source"] is not None:
            rated += 1
            # rating, photod:Stars and EXIF Rating were written together, never half
            assert fields["rating"] == fields["stars"]
            assert exif["Exif.Image.Rating"] == str(max(fields["stars"], 0))
            assert exif["Exif.Image.Model"] == "EOS R5"
    assert rated > 0

    exiftool = shutil.which("exiftool")
    if exiftool:  # an independent reader finds no format errors either
        report = json.loads(
            subprocess.run(
                [exiftool, "-j", "-validate", "-warning", "-error", *map(str, files)],
                capture_output=True,
                text=True,
            ).stdout
        )
        for entry in report:
            assert "Error" not in entry, entry
    print(f"{kills} kills, {stale} stale temp files cleaned, {rated}/24 files rated")
    assert not list(tmp_path.glob(TEMP_PREFIX + "*"))
