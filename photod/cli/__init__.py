"""The `photod` command: one click group; each capability adds its commands from its own module.

Importing this module (and `photod --help`) loads no torch and no model: command modules import
the heavy library parts inside the command functions.
"""

from __future__ import annotations

import importlib

import click

from photod import __version__
from photod.cli.common import configured_log_level, setup_logging
from photod.config import OPTIONS_BY_NAME

# Modules that each define `register(group)`; keep heavy imports inside their commands.
COMMAND_MODULES = [
    "photod.cli.score",
    "photod.cli.models",
    "photod.cli.train",
    "photod.cli.watch",
    "photod.cli.index",
    "photod.cli.serve",
    "photod.cli.rating",
    "photod.cli.suggest",
    "photod.cli.cull",
    "photod.cli.batch",
]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="photod")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    show_default=f"log_level of `photod config`, {OPTIONS_BY_NAME['log_level'].default}",
    help="Logging detail on stderr.",
)
def cli(log_level: str | None) -> None:
    """photod: score, rate and suggest improvements for your photos with an aesthetic CNN."""
    setup_logging(log_level or configured_log_level())


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(cli)


def main() -> None:
    cli(prog_name="photod")
