"""`photod serve`: the local web page (upload and score, library browser) on uvicorn."""

from __future__ import annotations

import ipaddress
import logging
import signal
import socket
from pathlib import Path

import click

from photod.cli.common import db_option, device_option, emit_json, json_option, library_errors

log = logging.getLogger("photod")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="TCP port (0: any free port, printed at start).",
)
@db_option
@click.option(
    "--library",
    "libraries",
    multiple=True,
    type=click.Path(file_okay=False, exists=True),
    help="Folder whose photos the library pages may show besides the indexed ones, which are "
    "always shown (repeatable; default: the watched folders from the config).",
)
@device_option
@click.option("--model", default=None, help="Model name (see `photod models`).")
@click.option(
    "--max-upload-mb",
    type=click.FloatRange(0.1, 4096),
    default=64.0,
    show_default=True,
    help="Largest upload accepted.",
)
@click.option(
    "--max-megapixels",
    type=click.FloatRange(0.1, 1000),
    default=100.0,
    show_default=True,
    help="Largest decoded image accepted (decompression-bomb guard).",
)
@click.option(
    "--resize",
    "resize_px",
    type=click.IntRange(224, 8192),
    default=1024,
    show_default=True,
    help="Long side the page shrinks photos to in the browser before upload.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    envvar="PHOTOD_CONFIG",
    help="Config file (default: config.toml in the user config folder).",
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --host other than localhost; every request then needs the access token "
    "(generated once, kept in the config folder, printed when it is made).",
)
@json_option
@library_errors
def serve(
    host: str,
    port: int,
    db_path: str | None,
    libraries: tuple[str, ...],
    device: str | None,
    model: str | None,
    max_upload_mb: float,
    max_megapixels: float,
    resize_px: int,
    config_file: str | None,
    allow_remote: bool,
    as_json: bool,
) -> None:
    """Serve the web page: upload photos to score them, browse the index's best and worst.

    Binds to localhost by default and answers only requests for its own address (Host and
    Origin checked). Another --host needs --allow-remote, and then an access token.
    """
    import uvicorn

    from photod.config import load_settings, star_mapping
    from photod.paths import default_db_path
    from photod.web import WebConfig, create_app

    settings = load_settings(
        cli={"db": db_path, "device": device, "model": model}, path=config_file
    )
    roots = [Path(p) for p in libraries] or [Path(p) for p in settings.folders]
    config = WebConfig(
        db_path=Path(settings.db) if settings.db else None,
        library_roots=roots,
        model=settings.model,
        device=settings.device,
        max_upload_bytes=int(max_upload_mb * 1_000_000),
        max_pixels=int(max_megapixels * 1_000_000),
        resize_long_side=resize_px,
        star_mapping=star_mapping(settings),
        suggest_objective=settings.suggest_objective,
        preload_model=True,  # the first upload should not wait seconds for the model
    )
    remote = not _is_loopback(host)
    new_token = False
    if remote:
        if not allow_remote:
            raise click.ClickException(
                f"--host {host} would expose your photo library to the network; add "
                "--allow-remote to serve it there (every request then needs an access token)"
            )
        config.token, new_token = _access_token()
    # Bind here rather than in uvicorn so that the real port (with --port 0, a free one the OS
    # picked) is known and announced before the first request can arrive.
    sock = _bind(host, port)
    bound = sock.getsockname()
    config.hosts = [host]
    config.port = bound[1]
    app = create_app(config)
    url = f"http://{'[' + bound[0] + ']' if ':' in bound[0] else bound[0]}:{bound[1]}/"
    db_shown = str(config.db_path or default_db_path())
    info = {"url": url, "host": bound[0], "port": bound[1], "db": db_shown}
    if remote:
        # The token is shown once, when it is made; afterwards it is read from its file.
        info["token_file"] = str(_token_path())
        if new_token:
            info["token"] = config.token
            info["url"] = f"{url}?token={config.token}"
        log.warning("serving on %s: only requests with the access token are answered", host)
    if as_json:
        emit_json(info)
    else:
        click.echo(f"photod serving on {info['url']}  (index {db_shown}; Ctrl+C to stop)")
        if remote:
            where = "new access token, shown only now" if new_token else "access token"
            click.echo(f"{where}: kept in {info['token_file']} (open the page with ?token=TOKEN)")
    click.get_text_stream("stdout").flush()
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    )
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to whatever
    # handler was there before; with these no-op handlers in place `photod serve` exits 0 (as
    # `photod watch` does) instead of "Aborted!" or death by signal.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: None)
    server.run(sockets=[sock])
    log.info("photod serve stopped")


def _token_path() -> Path:
    from photod.paths import config_dir

    return config_dir() / "web-token"


def _access_token() -> tuple[str, bool]:
    """The access token of a non-loopback server and whether it was just made (file mode 600)."""
    import os
    import secrets

    path = _token_path()
    try:
        token = path.read_text(encoding="ascii").strip()
        if len(token) >= 32:
            return token, False
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise click.ClickException(f"cannot read the access token {path}: {exc.strerror}") from exc
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return token, True


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        reason = exc.strerror or exc
        raise click.ClickException(f"cannot listen on {host}:{port}: {reason}") from exc
    sock.set_inheritable(True)
    return sock


def register(group: click.Group) -> None:
    group.add_command(serve)
