"""`photod` through click's runner and as a real subprocess: help without torch, score, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from photod.cli import cli
from tests import photos

PHOTOD = [sys.executable, "-m", "photod"]


def test_import_and_help_do_not_load_torch() -> None:
    code = (
        "import sys, photod, photod.cli\n"
        "from click.testing import CliRunner\n"
        "CliRunner().invoke(photod.cli.cli, ['--help'])\n"
        "CliRunner().invoke(photod.cli.cli, ['models'])\n"
        "heavy = sorted(m for m in ('torch', 'timm', 'torchvision', 'cv2') if m in sys.modules)\n"
        "print(','.join(heavy) or 'none')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "none"


def test_version_and_help_as_subprocess() -> None:
    version = subprocess.run([*PHOTOD, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("photod, version ")
    helptext = subprocess.run([*PHOTOD, "--help"], capture_output=True, text=True, check=True)
    assert "score" in helptext.stdout and "models" in helptext.stdout


def test_score_json_and_exit_codes(tmp_path: Path) -> None:
    folder = tmp_path / "card"
    (folder / "sub").mkdir(parents=True)
    photos.write_jpeg(folder / "a.jpg", photos.real_photo("chelsea"))
    photos.write_jpeg(folder / "sub" / "b.jpg", photos.real_photo("coffee"))
    (folder / ".hidden.jpg").write_bytes(b"ignored")
    runner = CliRunner()

    flat = runner.invoke(cli, ["score", "--json", "--device", "cpu", str(folder)])
    assert flat.exit_code == 0, flat.output
    assert [json.loads(line)["path"] for line in flat.output.splitlines()] == [
        str(folder / "a.jpg")
    ]

    deep = runner.invoke(cli, ["score", "-r", "--json", "--device", "cpu", str(folder)])
    rows = [json.loads(line) for line in deep.output.splitlines()]
    assert deep.exit_code == 0 and len(rows) == 2
    for row in rows:
        assert set(row) >= {"path", "score", "stars", "status", "error", "model"}
        assert row["status"] == "ok" and row["error"] is None
        assert isinstance(row["score"], float) and 1 <= row["stars"] <= 5
        assert row["model"].startswith("photod-aesthetic")

    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    mixed = runner.invoke(cli, ["score", "--json", "--device", "cpu", str(folder)])
    assert mixed.exit_code == 1
    statuses = {
        json.loads(line)["path"]: json.loads(line)["status"] for line in mixed.output.splitlines()
    }
    assert statuses[str(folder / "a.jpg")] == "ok"
    assert statuses[str(folder / "broken.jpg")] == "error"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["score"]).exit_code == 2
    assert runner.invoke(cli, ["score", "--device", "tpu", str(tmp_path)]).exit_code == 2
    assert runner.invoke(cli, ["score", str(tmp_path)]).exit_code == 2  # no photos there


def test_score_as_real_subprocess(tmp_path: Path) -> None:
    path = photos.write_jpeg(tmp_path / "cat.jpg", photos.real_photo("chelsea"))
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    out = subprocess.run(
        [*PHOTOD, "score", "--device", "cpu", str(path)], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    score, stars, printed_path = out.stdout.split()
    assert 1.0 < float(score) < 5.0 and printed_path == str(path)
    assert set(stars) == {"★"}


def test_score_follows_config_thresholds_and_env(tmp_path: Path, monkeypatch) -> None:
    """The config file's star thresholds and PHOTOD_* variables reach `photod score`."""
    from photod.config import config_path

    path = photos.write_jpeg(tmp_path / "cat.jpg", photos.real_photo("chelsea"))
    config = config_path()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("star_thresholds = [0.1, 0.2, 0.3, 0.4]\n")  # everything earns 5 stars
    runner = CliRunner()
    rows = runner.invoke(cli, ["score", "--json", str(path)], env={"PHOTOD_DEVICE": "cpu"})
    assert rows.exit_code == 0, rows.output
    assert json.loads(rows.output)["stars"] == 5
    config.write_text("star_thresholds = [8.0, 8.5, 9.0, 9.5]\n")  # nothing reaches 2 stars
    rows = runner.invoke(cli, ["score", "--json", str(path)], env={"PHOTOD_DEVICE": "cpu"})
    assert json.loads(rows.output)["stars"] == 1
    bad = runner.invoke(cli, ["score", str(path)], env={"PHOTOD_DEVICE": "tpu"})
    assert bad.exit_code == 1 and "device" in bad.output
