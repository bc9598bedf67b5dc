"""`make test`'s system step (scripts/install-system-deps) says what it installs and why before
installing, asks on a terminal, and runs unattended in CI — with stand-ins for apt-get and sudo
that record what they were asked, and a PATH where every tool the tests use is missing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install-system-deps"


@pytest.fixture()
def bare_path(tmp_path: Path) -> tuple[Path, Path]:
    """A bin folder with only `id` (answers: not root), `sudo` and `apt-get` that log calls."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stubs = {
        "id": "#!/bin/sh\necho 1000\n",
        "sudo": '#!/bin/sh\necho "sudo $*" >> "$CALLS"\nexec "$@"\n',
        "apt-get": '#!/bin/sh\necho "apt-get $*" >> "$CALLS"\n',
    }
    for name, text in stubs.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    return bin_dir, log


def _run(bin_dir: Path, log: Path, env: dict[str, str], stdin: str | None = None):
    bash = shutil.which("bash")
    assert bash
    base = {"PATH": str(bin_dir), "CALLS": str(log), "HOME": str(bin_dir)}
    return subprocess.run([bash, str(SCRIPT)], env={**base, **env}, input=stdin,
                          capture_output=True, text=True, timeout=60)  # fmt: skip


def test_ci_installs_unattended_after_saying_what_and_why(bare_path) -> None:
    bin_dir, log = bare_path
    done = _run(bin_dir, log, {"CI": "true"})
    assert done.returncode == 0, done.stderr
    said = done.stderr
    for package in ("libimage-exiftool-perl", "darktable", "chromium", "chromium-driver", "xvfb"):
        assert package in said
    assert "checks every rating photod writes" in said  # why, not only what
    assert "sudo" in said  # and as whom
    calls = log.read_text().splitlines()
    assert any(c.startswith("apt-get install") and "darktable" in c for c in calls), calls
    # What and why came first: the explanation is printed before the first apt-get call returns.
    assert said.index("checks every rating") < said.index("apt-get update")


def test_a_terminal_is_asked_first(bare_path) -> None:
    bin_dir, log = bare_path
    if not os.path.exists("/dev/ptmx"):
        pytest.skip("no pseudo-terminals here")
    import pty

    # stdin on a pseudo-terminal: the script asks; the answer "n" installs nothing.
    master, slave = pty.openpty()
    bash = shutil.which("bash")
    assert bash
    env = {"PATH": str(bin_dir), "CALLS": str(log), "HOME": str(bin_dir)}
    proc = subprocess.Popen([bash, str(SCRIPT)], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)  # fmt: skip
    os.write(master, b"n\n")
    _, err = proc.communicate(timeout=60)
    os.close(slave)
    os.close(master)
    assert proc.returncode == 0, err
    assert "not installing" in err
    assert not log.exists() or "apt-get" not in log.read_text()
