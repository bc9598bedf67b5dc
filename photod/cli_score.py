"""`photod score` and `photod models`: score files and folders; list the available models."""

from __future__ import annotations

import sys

import click

from photod.cli_common import (
    batch_size_option,
    device_option,
    emit_json,
    json_option,
    library_errors,
    model_option,
)


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders.")
@json_option
@device_option
@batch_size_option
@model_option
@library_errors
def score(
    paths: tuple[str, ...],
    recursive: bool,
    as_json: bool,
    device: str | None,
    batch_size: int | None,
    model: str | None,
) -> None:
    """Score photos (files or folders) for aesthetic quality; print score and stars.

    Exit status: 0 when every file was scored, 1 when any failed (the rest are still scored).
    """
    from tqdm import tqdm

    from photod.scoring import DEFAULT_MODEL, Scorer, iter_photo_paths

    files = list(iter_photo_paths(paths, recursive))
    if not files:
        raise click.UsageError("no photos found in the given paths")
    scorer = Scorer(
        model=model or DEFAULT_MODEL, device=device or "auto", batch_size=batch_size or 32
    )
    failures = 0
    show_bar = len(files) > 3 and sys.stderr.isatty()
    with tqdm(total=len(files), unit="photo", disable=not show_bar, file=sys.stderr) as bar:
        for result in scorer.score_paths(files, progress=bar.update):
            failures += result.status != "ok"
            if as_json:
                emit_json(result.to_dict())
            elif result.status == "ok":
                stars = "★" * max(result.stars or 0, 0) or "reject"
                click.echo(f"{result.score:6.3f}  {stars:<5}  {result.path}")
            else:
                click.echo(f"{'error':>6}  {'':<5}  {result.path}: {result.error}")
    if failures:
        sys.exit(1)


@click.command()
@json_option
def models(as_json: bool) -> None:
    """List the available aesthetic models, their versions and validation metrics."""
    from photod.models import list_models
    from photod.scoring import DEFAULT_MODEL

    for spec in list_models():
        row = {
            "name": spec.name,
            "version": spec.version,
            "active": spec.name == DEFAULT_MODEL,
            "available": spec.available,
            "description": spec.description,
            "metrics": spec.card.get("metrics", {}),
        }
        if as_json:
            emit_json(row)
        else:
            metrics = ", ".join(f"{k}={v}" for k, v in row["metrics"].items())
            mark = "*" if row["active"] else " "
            click.echo(f"{mark} {spec.name}  {spec.version}  {metrics or spec.description}")


def register(group: click.Group) -> None:
    group.add_command(score)
    group.add_command(models)
