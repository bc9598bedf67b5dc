"""Settings: defaults < config.toml < PHOTOD_* environment < flags, and `photod config`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from photod.cli import cli
from photod.config import ConfigError, config_path, load_settings, star_mapping, write_template


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file(tmp_path: Path) -> None:
    settings = load_settings(env={}, path=tmp_path / "none.toml")
    assert settings.write_mode == "auto"
    assert settings.device == "auto"
    assert settings.folders == []
    assert settings.suggest is False
    assert settings.batch_size is None  # the Scorer picks: 8 on the CPU, 64 on a GPU
    assert set(settings.sources.values()) == {"default"}
    assert not settings.config_file_exists


def test_file_env_and_cli_override_in_order(tmp_path: Path) -> None:
    file = _write(
        tmp_path / "config.toml",
        'folders = ["~/Pictures/import", "/srv/card"]\nwrite_mode = "sidecar"\n'
        'device = "cpu"\nbatch_size = 8\nsuggest = true\n'
        "star_thresholds = [2.0, 2.5, 3.0, 3.5]\n",
    )
    env = {"PHOTOD_WRITE_MODE": "both", "PHOTOD_BATCH_SIZE": "16", "PHOTOD_SUGGEST": "no"}
    settings = load_settings(cli={"batch_size": 4, "device": None}, env=env, path=file)
    assert settings.folders == [Path.home() / "Pictures/import", Path("/srv/card")]
    assert settings.sources["folders"] == "file"
    assert (settings.write_mode, settings.sources["write_mode"]) == ("both", "env")
    assert (settings.device, settings.sources["device"]) == ("cpu", "file")
    assert (settings.batch_size, settings.sources["batch_size"]) == (4, "cli")
    assert (settings.suggest, settings.sources["suggest"]) == (False, "env")
    assert settings.star_thresholds == [2.0, 2.5, 3.0, 3.5]
    mapping = star_mapping(settings)
    assert [mapping.stars(s) for s in (1.9, 2.2, 2.7, 3.2, 3.9)] == [1, 2, 3, 4, 5]


def test_env_list_of_folders(tmp_path: Path) -> None:
    env = {"PHOTOD_FOLDERS": os.pathsep.join(["/a", "/b c"])}
    settings = load_settings(env=env, path=tmp_path / "none.toml")
    assert settings.folders == [Path("/a"), Path("/b c")]


def test_photod_table_is_accepted(tmp_path: Path) -> None:
    file = _write(tmp_path / "c.toml", '[photod]\nwrite_mode = "none"\n')
    assert load_settings(env={}, path=file).write_mode == "none"


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ('write_mode = "everywhere"\n', {}, "write_mode"),
        ("batch_size = 0\n", {}, "at least 1"),
        ('batch_size = "many"\n', {}, "batch_size"),
        ("star_thresholds = [3.0, 2.0, 3.5, 4.0]\n", {}, "four increasing"),
        ("folders = 3\n", {}, "list of paths"),
        ("colour = 1\n", {}, "unknown setting"),
        ("write_mode = \n", {}, "not valid TOML"),
        ("", {"PHOTOD_POLLING": "maybe"}, "PHOTOD_POLLING"),
    ],
)
def test_bad_values_are_clear_errors(tmp_path: Path, text: str, env: dict, message: str) -> None:
    file = _write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError, match=message):
        load_settings(env=env, path=file)


def test_template_is_valid_and_changes_nothing(tmp_path: Path) -> None:
    target = write_template(tmp_path / "config.toml")
    settings = load_settings(env={}, path=target)
    assert settings.config_file_exists
    assert set(settings.sources.values()) == {"default"}
    with pytest.raises(ConfigError, match="already exists"):
        write_template(target)


def test_config_command_shows_values_and_sources(monkeypatch: pytest.MonkeyPatch) -> None:
    _write(config_path(), 'write_mode = "sidecar"\nfolders = ["/srv/import"]\n')
    monkeypatch.setenv("PHOTOD_DEVICE", "cpu")
    result = CliRunner().invoke(cli, ["config", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    rows = {row["name"]: row for row in report["settings"]}
    assert report["config_file"] == str(config_path()) and report["config_file_exists"]
    assert (rows["write_mode"]["value"], rows["write_mode"]["source"]) == ("sidecar", "file")
    assert (rows["device"]["value"], rows["device"]["source"]) == ("cpu", "env")
    assert (rows["folders"]["value"], rows["folders"]["source"]) == (["/srv/import"], "file")
    assert rows["suggest"]["source"] == "default"
    assert rows["db"]["value"].endswith("index.db")

    text = CliRunner().invoke(cli, ["config"]).output
    assert "sidecar" in text and "[file]" in text and "[env]" in text


def test_config_command_reports_a_broken_file_cleanly() -> None:
    _write(config_path(), "batch_size = -3\n")
    result = CliRunner().invoke(cli, ["config"])
    assert result.exit_code == 1
    assert "batch_size" in result.output and "Traceback" not in result.output


def test_config_init_and_path() -> None:
    result = CliRunner().invoke(cli, ["config", "--init", "--path"])
    assert result.exit_code == 0, result.output
    assert config_path().exists()
    assert str(config_path()) in result.output
