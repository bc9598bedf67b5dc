"""Options and helpers shared by every photod command (sqlite-utils style: decorators at the edge).

Library errors (`PhotodError`) become `click.ClickException` here and nowhere deeper, so the
library never knows it runs under a CLI.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import click

from photod.errors import PhotodError

F = Callable[..., Any]


def json_option(func: F) -> F:
    return click.option(
        "--json", "as_json", is_flag=True, help="Print results as JSON (one object per line)."
    )(func)


def device_option(func: F) -> F:
    return click.option(
        "--device",
        type=click.Choice(["auto", "cpu", "cuda", "mps"]),
        default=None,
        help="Where the model runs (default: config, else auto: CUDA when present, else CPU).",
    )(func)


def batch_size_option(func: F) -> F:
    return click.option(
        "--batch-size", type=click.IntRange(1, 4096), default=None, help="Photos per model batch."
    )(func)


def model_option(func: F) -> F:
    return click.option("--model", default=None, help="Model name (see `photod models`).")(func)


def db_option(func: F) -> F:
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=None,
        help="SQLite index (default: index.db in the user data folder).",
    )(func)


def index_if_any(settings: Any) -> Any:
    """The index (`db` setting, else the default one) when it exists, else None: a command that
    writes metadata outside the daemon keeps an existing index in step (`record_own_write`), so a
    running daemon does not take photod's own write for the user's and undo it."""
    from pathlib import Path

    from photod.index import open_index
    from photod.paths import default_db_path

    path = Path(settings.db) if settings.db else default_db_path()
    return open_index(path) if path.exists() else None


def library_errors(func: F) -> F:
    """Turn photod's own errors into a clean one-line CLI error (exit 1)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PhotodError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def progress_bar(total: int, unit: str = "photo") -> Any:
    """A tqdm bar on stderr for more than a few items, and only on a terminal (quiet in pipes,
    logs and CI); `echo_above` prints result lines without tearing it."""
    from tqdm import tqdm

    show = total > 3 and sys.stderr.isatty()
    try:
        sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
    except (OSError, ValueError):
        sized = False
    # A terminal that reports no size (a bare pseudo-terminal) would get an empty bar.
    width: dict[str, Any] = {"dynamic_ncols": True} if sized else {"ncols": 80, "nrows": 24}
    return tqdm(total=total, unit=unit, disable=not show, file=sys.stderr, **width)


def above(bar: Any) -> contextlib.AbstractContextManager[Any]:
    """While inside, output goes to the terminal with the bar lifted off it (redrawn after)."""
    if getattr(bar, "disable", True):
        return contextlib.nullcontext()
    return bar.external_write_mode(file=sys.stdout)


def echo_above(bar: Any, text: str) -> None:
    """`click.echo(text)` on stdout without tearing the progress bar on stderr."""
    with above(bar):
        click.echo(text)


def emit_json(obj: Any) -> None:
    """One JSON document per line on stdout."""
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def configured_log_level() -> str:
    """`log_level` as `photod config` shows it (config file, PHOTOD_LOG_LEVEL, default)."""
    from photod.config import OPTIONS_BY_NAME, load_settings

    try:
        return str(load_settings().log_level)
    except PhotodError:  # a broken config file is reported by the command that reads it
        return str(OPTIONS_BY_NAME["log_level"].default)


def setup_logging(level: str) -> None:
    """One handler on stderr for the `photod` logger, journald-friendly (no timestamps twice)."""
    logger = logging.getLogger("photod")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(level.upper())
