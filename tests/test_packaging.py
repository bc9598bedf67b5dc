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
        "photod/models/weights/photod-aesthetic-v4.safetensors",
        "photod/models/weights/photod-aesthetic-v4.json",
        "photod/models/weights/photod-aesthetic-v2.backbone.onnx",
        "photod/models/weights/photod-aesthetic-v4.backbone.onnx",
        "photod/models/README.md",
        "photod/enhancers/presets.json",
        "photod/training/datasets.py",
    ):
        assert required in names, required
    assert not any(name.startswith(("models/", "training/", "tests/")) for name in names)


# The build backend's hooks, called the way pip calls them; pip shows the user every Python
# warning a hook raises (as "BuildBackendWarning"), so that is what is collected here.
_HOOK = """
import json, sys, warnings
from setuptools import build_meta
with warnings.catch_warnings(record=True) as caught:
    getattr(build_meta, sys.argv[1])(sys.argv[2])
print(json.dumps([[w.category.__name__, str(w.message).splitlines()[0]] for w in caught]))
"""


def _build_warnings(hook: str, out: Path, python_warnings: str | None) -> list[list[str]]:
    import json
    import os

    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    if python_warnings:
        env["PYTHONWARNINGS"] = python_warnings
    done = subprocess.run(
        [sys.executable, "-c", _HOOK, hook, str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _makefile_notice_filter() -> str:
    import re

    makefile = (ROOT / "Makefile").read_text()
    (value,) = re.findall(r"^EDITABLE_NOTICE \?= (.+)$", makefile, re.M)
    install = [line for line in makefile.splitlines() if "pip install -e" in line]
    assert install and all('PYTHONWARNINGS="$(EDITABLE_NOTICE)"' in line for line in install)
    assert all(" -q " not in line for line in install)  # pip shows its progress
    return value.strip()


def test_the_build_prints_no_setuptools_warnings(tmp_path: Path) -> None:
    # The wheel: nothing at all (no licence-table deprecation, no undeclared data package).
    assert _build_warnings("build_wheel", tmp_path, None) == []
    # The editable install `make setup` runs: setuptools always adds its "Editable installation"
    # notice for mapped package folders (every editable strategy does); the Makefile filters
    # exactly that notice, and nothing else may be left.
    raw = _build_warnings("build_editable", tmp_path, None)
    assert [category for category, _ in raw] == ["InformationOnly"], raw
    assert _build_warnings("build_editable", tmp_path, _makefile_notice_filter()) == []
