"""Where photod keeps its files: XDG data and config folders, the default index, personal models."""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import user_config_path, user_data_path


def data_dir() -> Path:
    """User data folder (`$XDG_DATA_HOME/photod`, or `$PHOTOD_DATA_DIR`)."""
    override = os.environ.get("PHOTOD_DATA_DIR")
    return Path(override) if override else user_data_path("photod")


def config_dir() -> Path:
    """User config folder (`$XDG_CONFIG_HOME/photod`, or `$PHOTOD_CONFIG_DIR`)."""
    override = os.environ.get("PHOTOD_CONFIG_DIR")
    return Path(override) if override else user_config_path("photod")


def default_db_path() -> Path:
    """The SQLite index used when no `--db` is given."""
    return data_dir() / "index.db"


def personal_models_dir() -> Path:
    """Models fine-tuned on the user's own ratings."""
    return data_dir() / "models"
