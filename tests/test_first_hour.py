"""What a new user meets in the first hour (issue 19): progress, the library page after the quick
start, the model loading behind `photod serve`, errors said once, small outputs, relative stars.

Real photos, real processes where the terminal matters (a pseudo-terminal for the progress
bars), a real index written by a real `photod watch --once`.
"""

from __future__ import annotations

import json
import logging
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from photod.cli import cli
from tests import photos

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "immunohistochemistry", "hubble_deep_field")


def _shoot(folder: Path, count: int, scale: float = 0.35) -> list[Path]:
    """`count` distinct real photos (samples at several crops) in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        pixels = photos.real_photo(SAMPLES[i % len(SAMPLES)], scale=scale)
        cut = (i // len(SAMPLES)) * 12
        if cut:
            pixels = pixels[cut:, cut:].copy()
        paths.append(photos.write_jpeg(folder / f"img_{i:02d}.jpg", pixels))
    return paths


def _photod(*args: str, stderr_tty: bool = False, timeout: float = 300) -> tuple[int, str, str]:
    """Run `photod ARGS` in a new process; stderr on a pseudo-terminal when `stderr_tty`."""
    command = [sys.executable, "-m", "photod", *args]
    env = {**os.environ, "COLUMNS": "100"}
    if not stderr_tty:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    out = proc.stdout.read().decode() if proc.stdout else ""
    proc.wait(timeout=timeout)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


# -- 1. progress for suggest and cull ----------------------------------------------------------


def test_cull_progress_moves_photo_by_photo(scorer, tmp_path: Path) -> None:
    from photod.cull_store import analyse_files

    files = _shoot(tmp_path, 5)
    (tmp_path / "empty.jpg").write_bytes(b"")
    calls: list[int] = []
    analysed = analyse_files([*files, tmp_path / "empty.jpg"], scorer, progress=calls.append)
    # One call per photo (bad ones too), not one per model batch of 16 at the very end.
    assert calls == [1] * 6
    assert len(analysed.records) == 5 and len(analysed.errors) == 1


@pytest.mark.slow
def test_suggest_and_cull_show_a_bar_on_a_terminal_only(tmp_path: Path) -> None:
    files = [str(p) for p in _shoot(tmp_path / "shoot", 4, scale=0.25)]
    code, out, err = _photod("suggest", "--preset", "fast", "--device", "cpu", *files,
                             stderr_tty=True)  # fmt: skip
    assert code == 0, err
    assert "4/4" in err and "photo" in err  # tqdm's bar, on the terminal
    assert out.count("img_0") == 4  # one block per photo on stdout, not torn by the bar

    code, out, err = _photod("cull", "--device", "cpu", str(tmp_path / "shoot"), stderr_tty=True)
    assert code == 0, err
    assert "4/4" in err
    assert "4 photos:" in out

    code, out, err = _photod("cull", "--device", "cpu", str(tmp_path / "shoot"))
    assert code == 0 and "4/4" not in err and "it/s" not in err  # quiet in a pipe


# -- 2. the library page after `photod watch DIR`, and 5. errors said once -------------------


@pytest.mark.slow
def test_watch_then_serve_shows_the_indexed_folder(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from photod.web import WebConfig, create_app

    folder = tmp_path / "import"
    good = _shoot(folder, 2)
    (folder / "empty.jpg").write_bytes(b"")
    db = tmp_path / "index.db"
    code, out, err = _photod("--log-level", "info", "watch", "--once", "--device", "cpu",
                             "--write-mode", "none", "--db", str(db), str(folder))  # fmt: skip
    assert code == 0, err
    # The daemon logs each bad file once, with its path once.
    lines = [line for line in err.splitlines() if "empty.jpg" in line]
    assert len(lines) == 1, err
    assert lines[0].count("empty.jpg") == 1 and "empty file" in lines[0]

    # No --library flag: what the index holds is the library.
    client = TestClient(base_url="http://127.0.0.1", app=create_app(WebConfig(db_path=db)))
    listed = client.get("/api/photos", params={"status": "ok"}).json()["photos"]
    assert {Path(p["path"]).name for p in listed} == {p.name for p in good}
    assert all(p["servable"] for p in listed)
    assert client.get("/thumbs", params={"path": str(good[0])}).status_code == 200
    page = client.get("/library").text
    assert "no preview" not in page and str(folder) in page
    # Only what the index holds: a file beside them that was never indexed is not served.
    stranger = photos.write_jpeg(folder / "later.jpg", photos.real_photo("chelsea", 0.2))
    assert client.get("/thumbs", params={"path": str(stranger)}).status_code == 404
    assert client.get("/thumbs", params={"path": "/etc/passwd"}).status_code == 404


@pytest.mark.slow
def test_score_and_cull_say_each_error_once(tmp_path: Path) -> None:
    _shoot(tmp_path, 2)
    (tmp_path / "empty.jpg").write_bytes(b"")
    for command in ("score", "cull"):
        code, out, err = _photod(command, "--device", "cpu", str(tmp_path))
        assert code == 1, (command, out, err)
        lines = [line for line in (out + err).splitlines() if "empty.jpg" in line]
        assert len(lines) == 1, (command, out, err)  # no WARNING on stderr besides the line
        assert lines[0].count("empty.jpg") == 1 and "empty file" in lines[0], lines
        assert "WARNING" not in err, (command, err)


# -- 6. the model loads in the background when `photod serve` starts ---------------------------


def test_serve_loads_the_model_at_start(tmp_path: Path) -> None:
    from starlette.testclient import TestClient

    from photod.scoring import Scorer
    from photod.web import WebConfig, create_app

    scorer = Scorer(device="cpu")
    assert scorer._net is None
    scorer._lock.acquire()  # hold the load where it is, to see the page while it loads
    try:
        client = TestClient(
            base_url="http://127.0.0.1",
            app=create_app(WebConfig(preload_model=True), scorer=scorer),
        )
        assert client.get("/api/status").json()["model"]["state"] == "loading"
        assert "Loading model" in client.get("/").text
    finally:
        scorer._lock.release()
    deadline = time.monotonic() + 120
    while client.get("/api/status").json()["model"]["state"] == "loading":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert client.get("/api/status").json()["model"]["state"] == "ready"
    assert scorer._net is not None  # loaded without any upload
    assert "Loading model" not in client.get("/").text
    # Without preloading (the library API alone), nothing loads until the first upload.
    lazy = TestClient(
        base_url="http://127.0.0.1", app=create_app(WebConfig(), scorer=Scorer(device="cpu"))
    )
    assert lazy.get("/api/status").json()["model"]["state"] == "lazy"


# -- 7. small outputs ----------------------------------------------------------------------------


def test_write_flag_before_or_after_the_paths(tmp_path: Path) -> None:
    runner = CliRunner()
    for i, args in enumerate(
        (["--write", "{p}"], ["{p}", "--write"], ["--write", "sidecar", "{p}"])
    ):
        path = photos.write_jpeg(tmp_path / f"p{i}.jpg", photos.real_photo("coffee", 0.3))
        argv = ["score", "--json", "--device", "cpu", *[a.format(p=path) for a in args]]
        result = runner.invoke(cli, argv)
        assert result.exit_code == 0, (args, result.output)
        row = json.loads(result.stdout.splitlines()[-1])
        assert row["status"] == "ok" and row["metadata"]["written"], (args, row)
        if "sidecar" in args:
            assert all(w.endswith(".xmp") for w in row["metadata"]["written"])


def test_models_and_status_show_a_version_not_the_name() -> None:
    from starlette.testclient import TestClient

    from photod.web import WebConfig, create_app

    rows = [json.loads(line) for line in CliRunner().invoke(cli, ["models", "--json"]).stdout
            .splitlines()]  # fmt: skip
    assert rows and all(r["version"] != r["name"] for r in rows)
    # Shipped cards say no more than the name, so their version is the training date + weights
    # hash (a model another test registered in this process may carry its own version).
    shipped = [r for r in rows if r["name"].startswith("photod-aesthetic-") and r["available"]]
    assert shipped and all(re.search(r"sha256:[0-9a-f]{8}", r["version"]) for r in shipped)
    text = CliRunner().invoke(cli, ["models"]).stdout
    for row in rows:
        assert row["version"] in text
    status = (
        TestClient(base_url="http://127.0.0.1", app=create_app(WebConfig()))
        .get("/api/status")
        .json()["model"]
    )
    assert status["version"] != status["name"] and status["version"]


def test_rating_on_a_text_file_is_an_error(tmp_path: Path) -> None:
    text = tmp_path / "x.jpg"
    text.write_text("not a photo")
    result = CliRunner().invoke(cli, ["rating", str(text)])
    assert result.exit_code == 1
    assert "would write" not in result.output and "not a readable photo" in result.output
    as_json = CliRunner().invoke(cli, ["rating", "--json", str(text)])
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["error"]


def test_mistyped_paths_are_usage_errors(tmp_path: Path) -> None:
    missing = str(tmp_path / "IMG_0001.JGP")
    runner = CliRunner()
    for argv in (["score", missing], ["cull", missing], ["suggest", missing],
                 ["rating", missing]):  # fmt: skip
        result = runner.invoke(cli, argv)
        assert result.exit_code == 2, (argv, result.output)


def test_log_level_default_is_the_configs() -> None:
    help_text = " ".join(CliRunner().invoke(cli, ["--help"]).stdout.split())
    settings = json.loads(CliRunner().invoke(cli, ["config", "--json"]).stdout)["settings"]
    (level,) = [s["value"] for s in settings if s["name"] == "log_level"]
    shown = re.search(
        r"--log-level \S+ Logging detail on stderr\. \[default: ([^\]]*)\]", help_text
    )
    assert shown is not None, help_text
    assert level in shown.group(1) and "warning" not in shown.group(1)


def test_server_log_names_the_upload_not_the_temp_file(
    scorer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.testclient import TestClient

    from photod.web import WebConfig, create_app

    client = TestClient(base_url="http://127.0.0.1", app=create_app(WebConfig(), scorer=scorer))
    with caplog.at_level(logging.DEBUG, logger="photod"):
        response = client.post("/api/score", files={"file": ("notes.jpg", b"plain text")})
    assert response.status_code == 422
    assert response.json()["error"].count("notes.jpg") == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("notes.jpg" in m for m in messages), messages
    assert not any("photod-upload-" in m for m in messages), messages


# -- 8. stars relative to the shoot --------------------------------------------------------------


def test_relative_stars_split() -> None:
    from collections import Counter

    from photod.stars import relative_stars

    assert Counter(relative_stars([float(i) for i in range(100)])) == {
        1: 10, 2: 20, 3: 35, 4: 25, 5: 10,
    }  # fmt: skip
    assert relative_stars([3.1]) == [3]
    assert relative_stars([2.0, 2.0, 2.0]) == [3, 3, 3]  # ties: equal stars
    ten = relative_stars([float(s) for s in (5, 1, 9, 3, 7, 2, 8, 4, 6, 0)])
    assert ten == [3, 2, 5, 3, 4, 2, 4, 3, 4, 1]


def test_score_relative_stars_per_folder(tmp_path: Path) -> None:
    first, second = _shoot(tmp_path / "day1", 10), _shoot(tmp_path / "day2", 10, scale=0.3)
    runner = CliRunner()
    argv = ["score", "--json", "--device", "cpu", "--stars", "relative"]
    result = runner.invoke(cli, [*argv, str(tmp_path / "day1"), str(tmp_path / "day2")])
    assert result.exit_code == 0, result.output
    rows = {json.loads(line)["path"]: json.loads(line) for line in result.stdout.splitlines()}
    for shoot in (first, second):
        stars = sorted(rows[str(p)]["stars"] for p in shoot)
        assert stars == [1, 2, 2, 3, 3, 3, 4, 4, 4, 5]  # 10/20/35/25/10 % of ten photos
        best = max(shoot, key=lambda p: rows[str(p)]["score"])
        assert rows[str(best)]["stars"] == 5 and rows[str(best)]["stars_mode"] == "relative"
        assert all(isinstance(rows[str(p)]["absolute_stars"], int) for p in shoot)
    # Absolute stays the default: the same photos get the model's calibrated stars.
    plain = runner.invoke(cli, [*argv[:4], str(tmp_path / "day1")])
    absolute = {json.loads(line)["path"]: json.loads(line)["stars"] for line in plain.stdout
                .splitlines()}  # fmt: skip
    assert absolute == {str(p): rows[str(p)]["absolute_stars"] for p in first}
    # Files named one by one are one shoot together.
    named = runner.invoke(cli, [*argv, *[str(p) for p in first[:5]]])
    assert sorted(json.loads(line)["stars"] for line in named.stdout.splitlines()) == [
        2, 3, 3, 4, 5,
    ]  # fmt: skip
