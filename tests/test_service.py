"""The systemd user unit: shipped file, `photod service install|uninstall`, `systemd-analyze verify`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from photod.cli import cli
from photod.cli.watch import _systemd_quote, render_unit, user_unit_dir

REPO = Path(__file__).resolve().parents[1]
SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"


def _verify(unit: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """`systemd-analyze --user verify` in a private user environment (no running manager)."""
    runtime = home / "run"
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {**os.environ, "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    env.pop("XDG_CONFIG_HOME", None)
    return subprocess.run(
        [SYSTEMD_ANALYZE, "--user", "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def _assert_clean(result: subprocess.CompletedProcess[str]) -> None:
    # verify only warns (exit 0) about unknown keys or bad values: any output is a failure.
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "" and result.stdout.strip() == "", result.stderr


def test_shipped_unit_is_the_rendered_default() -> None:
    shipped = (REPO / "systemd" / "photod.service").read_text(encoding="utf-8")
    assert shipped == render_unit()
    assert "Restart=on-failure" in shipped
    assert "ExecStart=%h/.local/bin/photod watch" in shipped
    assert "WantedBy=default.target" in shipped


def test_shipped_unit_verifies(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".local" / "bin").mkdir(parents=True)
    # %h/.local/bin/photod must be an executable for verify: point it at this install's photod.
    os.symlink(Path(sys.executable).with_name("photod"), home / ".local/bin/photod")
    unit = tmp_path / "photod.service"
    shutil.copy(REPO / "systemd" / "photod.service", unit)
    _assert_clean(_verify(unit, home))


def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    """The check above can fail: a unit with an unknown key does not pass."""
    home = tmp_path / "home"
    home.mkdir()
    unit = tmp_path / "photod.service"
    unit.write_text(render_unit(["/bin/true"]).replace("Nice=10", "Nice=10\nRestartWhen=sometimes"))
    result = _verify(unit, home)
    assert "RestartWhen" in result.stderr


def test_install_verify_uninstall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "My Photos 100%"
    folder.mkdir()
    runner = CliRunner()
    result = runner.invoke(cli, ["service", "install", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    unit = user_unit_dir() / "photod.service"
    assert unit == tmp_path / "config" / "systemd" / "user" / "photod.service"
    text = unit.read_text(encoding="utf-8")
    executable = str(Path(sys.executable).with_name("photod"))
    assert f"ExecStart={executable} watch " in text
    # The space and the % of the folder name are quoted and escaped for systemd.
    assert '"' + str(folder).replace("%", "%%") + '"' in text
    _assert_clean(_verify(unit, tmp_path / "home"))

    again = runner.invoke(cli, ["service", "install"])
    assert again.exit_code == 1 and "exists" in again.output
    assert runner.invoke(cli, ["service", "install", "--force"]).exit_code == 0

    removed = runner.invoke(cli, ["service", "uninstall"])
    assert removed.exit_code == 0 and not unit.exists()
    assert "no unit" in runner.invoke(cli, ["service", "uninstall"]).output


def test_install_refuses_a_missing_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    result = CliRunner().invoke(cli, ["service", "install", str(tmp_path / "nope")])
    assert result.exit_code != 0
    assert not (user_unit_dir() / "photod.service").exists()


@pytest.mark.parametrize(
    ("arg", "quoted"),
    [
        ("/plain/path", "/plain/path"),
        ("/with space", '"/with space"'),
        ("/50%", "/50%%"),
        ('/say "hi"', '"/say \\"hi\\""'),
        ("/cost$", '"/cost$$"'),
    ],
)
def test_systemd_quoting(arg: str, quoted: str) -> None:
    assert _systemd_quote(arg) == quoted
