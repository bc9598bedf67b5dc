"""A rating that was not written is reported as such everywhere: `photod score --write`, the
daemon (`photod watch`), `photod cull --apply` and `photod suggest --write-xmp` (human output,
the --json field, the exit status); never a plain ok. The failure is a real one: a read-only
photo (chmod 444; the writer respects it even as root)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from photod.cli import cli
from photod.index import open_index
from tests import cull_set, photos

EXIFTOOL = shutil.which("exiftool")
PHOTOD = str(Path(sys.executable).with_name("photod"))
pytestmark = pytest.mark.skipif(EXIFTOOL is None, reason="exiftool missing: `make system-deps`")


def _lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


@pytest.fixture()
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "card"
    folder.mkdir()
    photos.write_jpeg(folder / "fine.jpg", photos.real_photo("coffee", 0.3))
    locked = photos.write_jpeg(folder / "locked.jpg", photos.real_photo("rocket", 0.3))
    locked.chmod(0o444)
    return folder


def test_score_write_reports_the_failed_rating(folder: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["score", "--write", "--json", "--device", "cpu", str(folder)])
    rows = {Path(r["path"]).name: r for r in _lines(result.output)}
    assert result.exit_code == 1
    assert rows["fine.jpg"]["write_status"] == "written"
    assert rows["locked.jpg"]["write_status"] == "failed"
    assert rows["locked.jpg"]["status"] == "ok"  # the score itself is fine, and printed
    assert "read-only" in rows["locked.jpg"]["metadata"]["error"]
    human = runner.invoke(cli, ["score", "--write", "--device", "cpu", str(folder / "locked.jpg")])
    assert human.exit_code == 1 and "rating NOT written" in human.output


def test_daemon_reports_and_indexes_the_failed_rating(folder: Path, tmp_path: Path) -> None:
    db_path = tmp_path / "index.db"
    out = subprocess.run(
        [PHOTOD, "watch", "--once", "--json", "--settle-seconds", "0.2", "--db", str(db_path),
         "--device", "cpu", str(folder)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr[-3000:]  # --once: a rating was not written
    rows = {Path(r["path"]).name: r for r in _lines(out.stdout)}
    assert rows["fine.jpg"]["write_status"] == "written"
    assert rows["locked.jpg"]["write_status"] == "failed" and rows["locked.jpg"]["write_error"]
    assert "rating NOT written" in out.stderr and "1 ratings not written" in out.stderr
    db = open_index(db_path)
    try:
        indexed = {Path(r["path"]).name: r for r in db.query("SELECT * FROM photos")}
    finally:
        db.close()
    # scored and indexed ok (its score is real), the failure in its own column
    assert indexed["locked.jpg"]["status"] == "ok" and indexed["locked.jpg"]["score"] is not None
    assert "read-only" in indexed["locked.jpg"]["write_error"]
    assert indexed["fine.jpg"]["write_error"] is None


def test_cull_apply_reports_the_photo_it_could_not_mark(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    cull_set.build_cull_set(source)
    folder = tmp_path / "card"
    folder.mkdir()
    for path in sorted(source.iterdir()):
        if path.name.startswith("b"):
            shutil.copy2(path, folder / path.name)
    files = sorted(folder.iterdir())
    for path in files:
        path.chmod(0o444)
    runner = CliRunner()
    result = runner.invoke(cli, ["cull", str(folder), "--apply", "--mark", "stars", "--json"])
    applied = [line for line in _lines(result.output) if line.get("applied")]
    assert result.exit_code == 1 and applied
    assert all(a["write_status"] == "failed" and "read-only" in a["error"] for a in applied)
    human = runner.invoke(cli, ["cull", str(folder), "--apply", "--mark", "stars"])
    assert human.exit_code == 1 and "NOT marked" in human.output


def test_suggest_write_xmp_reports_the_xmp_it_could_not_write(tmp_path: Path) -> None:
    import numpy as np

    pixels = photos.real_photo("chelsea", 0.6)
    dark = (pixels.astype(np.float32) * 0.35).astype(np.uint8)  # under-exposed by ~1.5 EV
    locked = photos.write_jpeg(tmp_path / "dark.jpg", dark)
    locked.chmod(0o444)
    runner = CliRunner()
    args = ["suggest", "--write-xmp", "--margin", "-10", "--device", "cpu", str(locked)]
    result = runner.invoke(cli, [*args, "--json"])
    (row,) = _lines(result.output)
    assert row["edits"], row  # a margin of -10 makes any variant a suggestion
    assert result.exit_code == 1
    assert row["xmp"]["status"] == "failed" and "read-only" in row["xmp"]["error"]
    assert "score_after" in row or "gain" in row  # the suggestion itself is still reported
    human = runner.invoke(cli, args)
    assert human.exit_code == 1 and "XMP NOT written" in human.output
