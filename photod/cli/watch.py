"""`photod watch`, `photod config` and `photod service`: the daemon, its settings, its user unit.

Settings come from embedded defaults, config.toml, PHOTOD_* variables and these flags, in that
order (see `photod.config`); `photod config` shows the result and where each value came from.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from photod.cli.common import (
    batch_size_option,
    db_option,
    device_option,
    emit_json,
    json_option,
    library_errors,
    model_option,
)

UNIT_NAME = "photod.service"

UNIT_TEMPLATE = """\
# photod user service: watch the import folders and rate every new photo.
# Install with `photod service install` (it fills in the photod path and folders), or copy this
# file to ~/.config/systemd/user/ and run `systemctl --user enable --now photod`.
# Folders, write mode and device come from ~/.config/photod/config.toml (`photod config`).
[Unit]
Description=photod: score, rate and index new photos in the import folders
# Stop retrying after 5 failures in 5 minutes (a missing model or folder will not fix itself).
StartLimitIntervalSec=300
StartLimitBurst=5

[Service]
Type=exec
ExecStart={exec_start}
# SIGTERM: photod finishes the batch in flight, flushes the index and exits 0.
Restart=on-failure
RestartSec=10s
TimeoutStopSec=60s
Environment=PYTHONUNBUFFERED=1
# A background job: give way to interactive work.
Nice=10
IOSchedulingClass=idle
# Hardening that needs no privileges or namespaces (so it works in any user manager) and still
# lets photod write ratings and sidecars next to photos wherever the user may write.
NoNewPrivileges=yes
LockPersonality=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
RestrictNamespaces=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallErrorNumber=EPERM
UMask=0022

[Install]
WantedBy=default.target
"""

DEFAULT_EXEC = "%h/.local/bin/photod watch"


def _systemd_quote(arg: str) -> str:
    """Quote one ExecStart argument the way systemd parses it (and escape its % specifiers)."""
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in " \t\"'\\;$"):
        return arg
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$")
    return f'"{escaped}"'


def render_unit(exec_args: list[str] | None = None) -> str:
    """The unit text; `exec_args` is the full command (default: the pipx/pip --user location)."""
    exec_start = DEFAULT_EXEC if exec_args is None else " ".join(map(_systemd_quote, exec_args))
    return UNIT_TEMPLATE.format(exec_start=exec_start)


def user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "systemd" / "user"


def photod_executable() -> str:
    """The `photod` script of this installation (next to this Python first)."""
    beside = Path(sys.executable).with_name("photod")
    if beside.exists():
        return str(beside)
    found = shutil.which("photod")
    if found:
        return str(Path(found).resolve())
    raise click.ClickException("cannot find the photod executable to run from the unit")


def _load_settings(config_file: str | None, **cli: Any) -> Any:
    from photod.config import load_settings

    return load_settings(cli=cli, path=config_file)


config_file_option = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="PHOTOD_CONFIG",
    help="Config file (default: config.toml in the user config folder).",
)


@click.command()
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@click.option("--polling/--inotify", default=None, help="Poll (network shares) or use inotify.")
@click.option("--recursive/--no-recursive", default=None, help="Watch sub-folders (default on).")
@click.option(
    "--write-mode",
    type=click.Choice(["auto", "embedded", "sidecar", "both", "none"]),
    default=None,
    help="Where ratings go (none: only score and index).",
)
@click.option("--force/--no-force", default=None, help="Overwrite ratings set by hand.")
@click.option("--suggest/--no-suggest", default=None, help="Also compute edit suggestions.")
@click.option("--group/--no-group", default=None, help="Group bursts and duplicates on arrival.")
@click.option("--settle-seconds", type=float, default=None, help="A file must be stable this long.")
@click.option("--once", is_flag=True, help="Catch up on the folders, then exit (no watching).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default=None,
    help="Log detail on stderr (default: info, or the config).",
)
@db_option
@device_option
@batch_size_option
@model_option
@config_file_option
@json_option
@library_errors
def watch(
    folders: tuple[str, ...],
    polling: bool | None,
    recursive: bool | None,
    write_mode: str | None,
    force: bool | None,
    suggest: bool | None,
    group: bool | None,
    settle_seconds: float | None,
    once: bool,
    log_level: str | None,
    db_path: str | None,
    device: str | None,
    batch_size: int | None,
    model: str | None,
    config_file: str | None,
    as_json: bool,
) -> None:
    """Watch FOLDERS (default: `folders` of the config) and score, rate and index new photos.

    Photos already there are reconciled with the index first. Runs until SIGTERM or Ctrl-C
    (exit 0); with --once, exits when the catch-up is done (exit 1 when a rating could not be
    written). With --json, one line per photo.
    """
    from photod.cli.common import setup_logging
    from photod.config import scorer_from_settings
    from photod.daemon import Daemon

    settings = _load_settings(
        config_file,
        folders=list(folders),
        polling=polling,
        recursive=recursive,
        write_mode=write_mode,
        force=force,
        suggest=suggest,
        group=group,
        settle_seconds=settle_seconds,
        log_level=log_level,
        db=db_path,
        device=device,
        batch_size=batch_size,
        model=model,
    )
    # `photod --log-level X watch` still wins over the config's level when given explicitly.
    root = click.get_current_context().find_root()
    source = root.get_parameter_source("log_level")
    root_explicit = source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP")
    setup_logging(
        root.params["log_level"] if root_explicit and not log_level else settings.log_level
    )
    scorer = scorer_from_settings(settings)
    logging.getLogger("photod").info("model %s on %s", scorer.model_name, scorer.requested_device)

    def on_result(outcome: Any) -> None:
        row = outcome.to_dict()
        # A file name that is not UTF-8 still prints, with its odd bytes escaped.
        row["path"] = os.fsencode(row["path"]).decode("utf-8", "backslashreplace")
        emit_json(row)
        sys.stdout.flush()

    daemon = Daemon(
        settings.folders,
        scorer,
        settings.db,
        recursive=settings.recursive,
        polling=settings.polling,
        write_mode=settings.write_mode,
        force=settings.force,
        suggest=settings.suggest,
        group=settings.group,
        settle_seconds=settings.settle_seconds,
        quiet_seconds=settings.quiet_seconds,
        queue_size=settings.queue_size,
        summary_interval=settings.summary_interval,
        retry_seconds=settings.retry_seconds,
        rescan_interval=settings.rescan_interval,
        once=once,
        on_result=on_result if as_json else None,
    )
    sys.exit(daemon.run())


@click.command("config")
@click.option("--path", "show_path", is_flag=True, help="Print the config file path and exit.")
@click.option("--init", is_flag=True, help="Create a commented config file if there is none.")
@config_file_option
@json_option
@library_errors
def config_command(show_path: bool, init: bool, config_file: str | None, as_json: bool) -> None:
    """Show the effective settings and where each comes from (default, file, env)."""
    from photod.config import config_path, write_template

    target = Path(config_file) if config_file else config_path()
    if init:
        created = write_template(target)
        click.echo(f"created {created}", err=as_json)
    if show_path:
        click.echo(str(target))
        return
    settings = _load_settings(config_file)
    rows = settings.describe()
    if as_json:
        emit_json(
            {
                "config_file": str(settings.config_file),
                "config_file_exists": settings.config_file_exists,
                "settings": rows,
            }
        )
        return
    state = "" if settings.config_file_exists else " (not there: defaults apply)"
    click.echo(f"# config file: {settings.config_file}{state}")
    width = max(len(row["name"]) for row in rows)
    for row in rows:
        value = row["value"]
        shown = "-" if value is None or value == [] else value
        if isinstance(shown, list):
            shown = ", ".join(str(v) for v in shown)
        click.echo(f"{row['name']:<{width}}  {shown!s:<28}  [{row['source']}]  {row['env']}")


@click.group()
def service() -> None:
    """Install or remove the systemd user unit that runs `photod watch` at login."""


@service.command("install")
@click.argument("folders", nargs=-1, type=click.Path(file_okay=False))
@click.option("--start", is_flag=True, help="Also run `systemctl --user enable --now photod`.")
@click.option("--force", is_flag=True, help="Replace an existing unit.")
@json_option
@library_errors
def service_install(folders: tuple[str, ...], start: bool, force: bool, as_json: bool) -> None:
    """Write ~/.config/systemd/user/photod.service running this photod on FOLDERS.

    Without FOLDERS the daemon watches the `folders` of the config file.
    """
    target = user_unit_dir() / UNIT_NAME
    if target.exists() and not force:
        raise click.ClickException(f"{target} exists (use --force to replace it)")
    args = [photod_executable(), "watch"]
    for folder in folders:
        absolute = Path(folder).expanduser().resolve()
        if not absolute.is_dir():
            raise click.ClickException(f"not a folder: {folder}")
        args.append(str(absolute))
    _write_atomic(target, render_unit(args))
    steps = ["systemctl --user daemon-reload", "systemctl --user enable --now photod"]
    if start:
        for step in steps:
            _systemctl(step)
    if as_json:
        emit_json({"unit": str(target), "exec_start": args, "started": start})
    else:
        click.echo(f"wrote {target}")
        if not start:
            click.echo("start it with:\n  " + "\n  ".join(steps))


@service.command("uninstall")
@click.option("--stop", is_flag=True, help="Also run `systemctl --user disable --now photod`.")
@json_option
@library_errors
def service_uninstall(stop: bool, as_json: bool) -> None:
    """Remove the user unit (stop and disable it first with --stop)."""
    target = user_unit_dir() / UNIT_NAME
    if stop:
        _systemctl("systemctl --user disable --now photod")
    existed = target.exists()
    if existed:
        target.unlink()
    if stop:
        _systemctl("systemctl --user daemon-reload")
    if as_json:
        emit_json({"unit": str(target), "removed": existed})
    else:
        click.echo(f"removed {target}" if existed else f"no unit at {target}")


@service.command("show")
def service_show() -> None:
    """Print the unit `install` would write."""
    click.echo(render_unit([photod_executable(), "watch"]), nl=False)


def _systemctl(command: str) -> None:
    if shutil.which("systemctl") is None:
        raise click.ClickException("systemctl not found: run the steps by hand")
    result = subprocess.run(command.split(), capture_output=True, text=True)
    if result.returncode != 0:
        raise click.ClickException(f"`{command}` failed: {result.stderr.strip()}")


def _write_atomic(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.tmp")
    with open(temp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, target)


def register(group: click.Group) -> None:
    group.add_command(watch)
    group.add_command(config_command)
    group.add_command(service)
