"""photod's settings: embedded defaults < config.toml < PHOTOD_* environment < command-line flags.

The file is `config.toml` in the user config folder (`photod.paths.config_dir()`); every key is
optional. Each effective value remembers where it came from, so `photod config` can show it.

    folders = ["~/Pictures/import"]   # watched by `photod watch` when no folder is given
    write_mode = "auto"               # auto, embedded, sidecar, both or none
    device = "auto"                   # auto, cpu, cuda, mps
    suggest = false                   # also compute crop/exposure suggestions
    suggest_objective = "edit-preference"   # or "aesthetic" (the aesthetic score)

Environment variables are the upper-case key with a `PHOTOD_` prefix (`PHOTOD_WRITE_MODE=none`);
lists are separated by `:` for folders and `,` for numbers.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photod.errors import PhotodError

WRITE_MODES = ("auto", "embedded", "sidecar", "both", "none")
DEVICES = ("auto", "cpu", "cuda", "mps")
LOG_LEVELS = ("debug", "info", "warning", "error")


class ConfigError(PhotodError):
    """A setting has a wrong type or value, or the config file cannot be read."""

    code = "config"


@dataclass(frozen=True)
class Option:
    """One setting: its type (`str`, `int`, `float`, `bool`, `paths`, `floats`), default, help."""

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None


OPTIONS: tuple[Option, ...] = (
    Option("folders", "paths", [], "Folders `photod watch` watches when none is given."),
    Option("recursive", "bool", True, "Watch sub-folders too."),
    Option("polling", "bool", False, "Poll instead of inotify (network shares)."),
    Option("db", "path", None, "SQLite index (default: index.db in the user data folder)."),
    Option("write_mode", "str", "auto", "Where ratings go.", WRITE_MODES),
    Option("force", "bool", False, "Overwrite ratings the user set by hand."),
    Option("device", "str", "auto", "Where the model runs.", DEVICES),
    Option("model", "str", None, "Aesthetic model (default: the active one, `photod models`)."),
    Option(
        "batch_size",
        "int",
        None,
        "Photos per model batch (default: 8 on CPU, 64 on GPU).",
        minimum=1,
    ),
    Option("decode_workers", "int", 0, "Decoding threads (0: automatic).", minimum=0),
    Option("torch_threads", "int", 0, "CPU threads for the model (0: automatic).", minimum=0),
    Option("star_thresholds", "floats", None, "Four increasing scores for 2-5 stars."),
    Option("reject_below", "float", None, "Scores below this are rated reject (-1)."),
    Option("suggest", "bool", False, "Also compute crop/exposure suggestions."),
    Option(
        "suggest_objective",
        "str",
        "edit-preference",
        "What suggestions maximise: the edit-preference head, or the aesthetic score.",
        ("aesthetic", "edit-preference"),
    ),
    Option("group", "bool", False, "Group bursts/duplicates after each batch (photod cull)."),
    Option("settle_seconds", "float", 0.25, "A file must be unchanged this long.", minimum=0),
    Option("quiet_seconds", "float", 5.0, "Wait for a file still open this long.", minimum=0),
    Option("queue_size", "int", 512, "Files waiting for the model, at most.", minimum=1),
    Option("summary_interval", "float", 60.0, "Seconds between summary log lines.", minimum=1),
    Option(
        "retry_seconds", "float", 30.0, "First wait before a failed write is retried.", minimum=0.1
    ),
    Option("rescan_interval", "float", 600.0, "Seconds between reconciliation scans.", minimum=1),
    Option(
        "log_level",
        "str",
        "info",
        "Log level on stderr, every command (watch: a line per photo).",
        LOG_LEVELS,
    ),
)
OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass
class Settings:
    """Effective settings; `sources[name]` is default, file, env or cli."""

    values: dict[str, Any]
    sources: dict[str, str]
    config_file: Path
    config_file_exists: bool = False
    env_names: dict[str, str] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(name)

    def describe(self) -> list[dict[str, Any]]:
        """One dict per setting (name, value, source, env variable, help) for `photod config`."""
        rows = []
        for option in OPTIONS:
            value = self.values[option.name]
            rows.append(
                {
                    "name": option.name,
                    "value": [str(v) for v in value] if option.kind == "paths" else value,
                    "source": self.sources[option.name],
                    "env": env_name(option.name),
                    "help": option.help,
                }
            )
        return rows


def env_name(name: str) -> str:
    return "PHOTOD_" + name.upper()


def config_path() -> Path:
    from photod.paths import config_dir

    return config_dir() / "config.toml"


def _coerce(option: Option, value: Any, origin: str) -> Any:
    """Check and convert a value read from TOML, the environment or a flag."""
    where = f"{option.name} ({origin})"
    if value is None:
        return None
    kind = option.kind
    try:
        if kind == "bool":
            if isinstance(value, bool):
                result: Any = value
            elif isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
                result = True
            elif isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
                result = False
            else:
                raise ValueError("expected true or false")
        elif kind == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError("expected a whole number")
            result = int(value)
        elif kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            result = float(value)
        elif kind == "str":
            if not isinstance(value, str):
                raise ValueError("expected text")
            result = value.strip()
            if option.choices and result.lower() not in option.choices:
                raise ValueError(f"expected one of {', '.join(option.choices)}")
            if option.choices:
                result = result.lower()
        elif kind == "path":
            if not isinstance(value, (str, os.PathLike)):
                raise ValueError("expected a path")
            result = Path(os.path.expandvars(os.path.expanduser(str(value))))
        elif kind == "paths":
            if isinstance(value, str):
                value = [v for v in value.split(os.pathsep) if v]
            if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (str, os.PathLike)) for v in value
            ):
                raise ValueError("expected a list of paths")
            result = [Path(os.path.expandvars(os.path.expanduser(str(v)))) for v in value]
        elif kind == "floats":
            if isinstance(value, str):
                value = [v for v in value.replace(" ", "").split(",") if v]
            if not isinstance(value, (list, tuple)):
                raise ValueError("expected a list of numbers")
            result = [float(v) for v in value]
            if len(result) != 4 or result != sorted(result):
                raise ValueError("expected four increasing numbers")
        else:  # pragma: no cover - OPTIONS is fixed above
            raise ValueError(f"unknown kind {kind}")
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value {value!r} for {where}: {exc}") from exc
    if option.minimum is not None and result < option.minimum:
        raise ConfigError(f"bad value {value!r} for {where}: must be at least {option.minimum}")
    return result


def read_config_file(path: Path) -> dict[str, Any]:
    """The TOML file as a dict (empty when the file does not exist)."""
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    # Accept both top-level keys and a [photod] table, so the file can grow sections later.
    if isinstance(data.get("photod"), dict):
        data = {**{k: v for k, v in data.items() if k != "photod"}, **data["photod"]}
    unknown = sorted(k for k in data if k not in OPTIONS_BY_NAME)
    if unknown:
        known = ", ".join(OPTIONS_BY_NAME)
        raise ConfigError(f"{path}: unknown setting(s) {', '.join(unknown)} (known: {known})")
    return data


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    path: str | os.PathLike[str] | None = None,
) -> Settings:
    """Merge defaults, the config file, `PHOTOD_*` variables and CLI values (None = not given)."""
    env = os.environ if env is None else env
    file_path = Path(path) if path is not None else config_path()
    file_values = read_config_file(file_path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        value, source = option.default, "default"
        if isinstance(value, list):
            value = list(value)
        if option.name in file_values:
            value, source = _coerce(option, file_values[option.name], str(file_path)), "file"
        variable = env_name(option.name)
        if env.get(variable, "") != "":
            value, source = _coerce(option, env[variable], variable), "env"
        if cli is not None and cli.get(option.name) not in (None, (), []):
            value, source = _coerce(option, cli[option.name], "command line"), "cli"
        values[option.name] = value
        sources[option.name] = source
    if values["db"] is None:
        from photod.paths import default_db_path

        values["db"] = default_db_path()  # shown by `photod config`; still source "default"
    return Settings(values, sources, file_path, file_path.exists())


def star_mapping(settings: Settings) -> Any:
    """The StarMapping the settings ask for, or None to use the model card's thresholds."""
    if settings.star_thresholds is None and settings.reject_below is None:
        return None
    from photod.stars import FALLBACK_THRESHOLDS, StarMapping

    thresholds = settings.star_thresholds
    if thresholds is None:
        from photod.models import active_model_name, get_model_spec

        thresholds = get_model_spec(settings.model or active_model_name()).card.get(
            "star_thresholds"
        )
    return StarMapping(tuple(thresholds or FALLBACK_THRESHOLDS), settings.reject_below)


TEMPLATE = """\
# photod configuration. Every key is optional; `photod config` shows the effective values.
# PHOTOD_* environment variables (PHOTOD_WRITE_MODE=none) override this file; flags override both.

# folders = ["~/Pictures/import"]   # watched by `photod watch` when no folder is given
# recursive = true
# polling = false                    # for network shares where inotify does not fire
# db = "~/.local/share/photod/index.db"
# write_mode = "auto"                # auto, embedded, sidecar, both, none
# force = false                      # overwrite ratings you set by hand
# device = "auto"                    # auto, cpu, cuda, mps
# batch_size = 8                    # default: 8 on the CPU, 64 on a GPU
# star_thresholds = [2.6, 2.9, 3.3, 3.6]   # lowest score for 2, 3, 4 and 5 stars
# reject_below = 2.0
# suggest = false
# suggest_objective = "edit-preference"   # or "aesthetic" (see models/README.md)
# group = false                      # group bursts and near-duplicates as photos arrive
# settle_seconds = 0.25
# log_level = "info"
"""


def write_template(path: Path | None = None) -> Path:
    """Create a commented config file (refuses to overwrite an existing one)."""
    target = path or config_path()
    if target.exists():
        raise ConfigError(f"{target} already exists; edit it instead")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(TEMPLATE)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)
    return target


def scorer_from_settings(settings: Settings, **overrides: Any) -> Any:
    """The Scorer the settings describe (model, device, batch size, threads, star thresholds);
    `overrides` replace single Scorer arguments, e.g. a command's own model choice."""
    from photod.scoring import Scorer

    arguments = {
        "model": settings.model,
        "device": settings.device,
        "batch_size": settings.batch_size,
        "decode_workers": settings.decode_workers or None,
        "torch_threads": settings.torch_threads or None,
        "star_mapping": star_mapping(settings),
    }
    arguments.update(overrides)
    from photod.objective import use_objective

    # Which objective its suggestions search with (the daemon's --suggest): aesthetic unless
    # the settings opt in to the edit-preference head.
    return use_objective(Scorer(**arguments), settings.suggest_objective)
