"""`photod rating` and `photod score --write` through click's runner on real files."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from photod.cli import cli
from photod.metadata import RatingInfo, sidecar_paths, write_rating
from tests import photos


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def exif_rating(path: Path) -> str:
    out = subprocess.run(["exiftool", "-s3", "-XMP-xmp:Rating", str(path)],
                         capture_output=True, text=True, check=True)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    card = tmp_path / "card"
    card.mkdir()
    photos.write_jpeg(card / "cat.jpg", photos.real_photo("chelsea", scale=0.6))
    photos.write_heic(card / "coffee.heic", photos.real_photo("coffee", scale=0.4))
    return card


def test_rating_shows_each_reader(folder: Path) -> None:
    jpg, heic = folder / "cat.jpg", folder / "coffee.heic"
    write_rating(jpg, RatingInfo(score=3.5, stars=4, model="m1"))
    write_rating(heic, RatingInfo(score=2.5, stars=2, model="m1"))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-xmp:Rating=1",
                    str(sidecar_paths(heic)[1])], check=True)  # fmt: skip
    result = CliRunner().invoke(cli, ["rating", "--json", str(jpg), str(heic)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert rows[0]["readers"]["lightroom"] == {"rating": 4, "source": "embedded XMP"}
    assert rows[0]["readers"]["windows"] == {"rating": 4}
    assert rows[0]["embedded"]["photod"]["Model"] == "m1"
    assert rows[1]["readers"]["lightroom"] == {"rating": 1, "source": "coffee.xmp"}
    assert rows[1]["readers"]["darktable"] == {"rating": 2, "source": "coffee.heic.xmp"}
    assert rows[1]["user_rating"] == 1
    text = CliRunner().invoke(cli, ["rating", str(heic), str(folder / "missing.jpg")])
    assert text.exit_code == 2  # a mistyped path is a usage error; the others are still shown
    assert "user rating 1: photod keeps it unless --force" in text.output
    assert "coffee.heic.xmp" in text.output and "no such file" in text.output


@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool missing")
def test_score_write_modes_user_rating_and_errors(folder: Path) -> None:
    jpg, heic = folder / "cat.jpg", folder / "coffee.heic"
    user = photos.write_jpeg(folder / "user.jpg", photos.real_photo("astronaut", scale=0.4))
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-XMP-xmp:Rating=5", str(user)],
                   check=True)  # fmt: skip
    locked = photos.write_jpeg(folder / "locked.jpg", photos.real_photo("rocket", scale=0.4))
    locked.chmod(0o444)
    before = {p.name: sha(p) for p in folder.iterdir()}
    runner = CliRunner()

    plain = runner.invoke(cli, ["score", "--json", "--device", "cpu", str(folder)])
    assert plain.exit_code == 0, plain.output
    assert {p.name: sha(p) for p in folder.iterdir()} == before  # plain score only prints

    result = runner.invoke(cli, ["score", "--write", "--json", "--device", "cpu", str(folder)])
    rows = {Path(r["path"]).name: r for r in map(json.loads, result.output.splitlines())}
    assert result.exit_code == 1  # the read-only file failed, the others were still written
    assert rows["cat.jpg"]["metadata"]["written"] == [str(jpg)]
    assert exif_rating(jpg) == str(rows["cat.jpg"]["stars"])
    assert rows["coffee.heic"]["metadata"]["written"] == [str(p) for p in sidecar_paths(heic)]
    assert sha(heic) == before["coffee.heic"]
    assert exif_rating(sidecar_paths(heic)[1]) == str(rows["coffee.heic"]["stars"])
    assert rows["user.jpg"]["metadata"]["user_rating"] == 5
    assert rows["user.jpg"]["metadata"]["written"] == []
    assert exif_rating(user) == "5"
    assert "read-only" in rows["locked.jpg"]["metadata"]["error"]
    assert sha(locked) == before["locked.jpg"]

    locked.chmod(0o644)
    only = folder / "only"
    only.mkdir()
    copy = photos.write_jpeg(only / "copy.jpg", photos.real_photo("coffee", scale=0.4))
    digest = sha(copy)
    side = runner.invoke(cli, ["score", "--sidecar-only", "--device", "cpu", str(copy)])
    assert side.exit_code == 0, side.output
    assert "-> copy.jpg.xmp" in side.output
    assert sha(copy) == digest and sidecar_paths(copy)[0].exists()

    forced = runner.invoke(cli, ["score", "--write", "--force", "--json", "--device", "cpu",
                                 str(user)])  # fmt: skip
    row = json.loads(forced.output)
    assert forced.exit_code == 0 and row["metadata"]["written"] == [str(user)]
    assert exif_rating(user) == str(row["stars"])
