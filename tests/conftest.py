"""Shared fixtures: real photos (scikit-image's sample photographs) written as real files.

Helpers for each area live in `tests/photos.py`; fixtures here only wire them to pytest.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests import photos

# Tests never write to the real user folders.
os.environ.setdefault(
    "PHOTOD_DATA_DIR", str(Path(os.environ.get("TMPDIR", "/tmp")) / "photod-test-data")
)


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


REQUIRED_TOOLS_IN_CI = ("exiftool", "exiv2", "darktable-cli", "chromium", "chromedriver")


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI the independent readers are installed by .ci/run: a missing one is a failure there,
    not a reason for the tests that use it to skip."""
    import shutil

    if os.environ.get("CI"):
        missing = [tool for tool in REQUIRED_TOOLS_IN_CI if shutil.which(tool) is None]
        if missing:
            raise pytest.UsageError(f"CI is missing tools the tests need: {', '.join(missing)}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if _cuda_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA device; none on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own data and config folders, never the developer's."""
    base = tmp_path_factory.mktemp("userdirs")
    monkeypatch.setenv("PHOTOD_DATA_DIR", str(base / "data"))
    monkeypatch.setenv("PHOTOD_CONFIG_DIR", str(base / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(base / "xdg-data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(base / "xdg-config"))


@pytest.fixture(scope="session")
def cat_pixels() -> np.ndarray:
    """scikit-image's 'chelsea' photograph (a cat), 451x300 RGB."""
    return photos.real_photo("chelsea")


@pytest.fixture(scope="session")
def scorer():
    """One CPU scorer for the whole session (model loading costs seconds)."""
    from photod.scoring import Scorer

    return Scorer(device="cpu", batch_size=16)


@pytest.fixture()
def jpeg_file(tmp_path: Path) -> Path:
    """A real JPEG photo with camera EXIF."""
    return photos.write_jpeg(tmp_path / "photo.jpg", photos.real_photo("coffee", scale=3))
