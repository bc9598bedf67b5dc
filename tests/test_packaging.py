"""The wheel carries every package, the shipped weights and the web page's files.

Packages are listed by hand in pyproject.toml (the folders map onto `photod.*`), so a new
sub-package that is not listed would work in an editable checkout and be missing when installed.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> tuple[list[str], dict[str, str]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    return config["packages"], config["package-dir"]


def test_every_package_folder_is_declared() -> None:
    packages, package_dir = _declared()
    found = set()
    for name, folder in package_dir.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder).parts
            dotted = ".".join((name, *relative))
            if not any(part.startswith((".", "__")) for part in relative):
                found.add(dotted)
    assert found <= set(packages), f"not in pyproject packages: {sorted(found - set(packages))}"


def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("photod-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for required in (
        "photod/cli/__init__.py",
        "photod/cli/score.py",
        "photod/metadata/writer.py",
        "photod/web/app.py",
        "photod/web/templates/upload.html",
        "photod/web/static/upload.js",
        "photod/models/weights/photod-aesthetic-v1.safetensors",
        "photod/models/weights/photod-aesthetic-v1.json",
        "photod/models/weights/photod-aesthetic-v2.safetensors",
        "photod/models/weights/photod-aesthetic-v3.safetensors",
        "photod/models/weights/photod-aesthetic-v3.json",
        "photod/models/README.md",
        "photod/enhancers/presets.json",
        "photod/training/datasets.py",
    ):
        assert required in names, required
    assert not any(name.startswith(("models/", "training/", "tests/")) for name in names)
