"""`photod models`: list the aesthetic models (shipped, plug-in, personal) and choose the active one."""

from __future__ import annotations

import click

from photod.cli.common import emit_json, json_option, library_errors


@click.command()
@click.option(
    "--use",
    "use",
    metavar="NAME|default",
    default=None,
    help="Make NAME the model photod uses when none is named; 'default' reverts to the shipped one.",
)
@json_option
@library_errors
def models(use: str | None, as_json: bool) -> None:
    """List the available aesthetic models, their versions and validation metrics.

    The active model is marked with '*'. A personal model (`photod train --from-ratings`) becomes
    active by itself only when it beat the shipped model on your held-out ratings.
    """
    from photod.models import active_model_name, list_models, select_model

    if use is not None:
        select_model(use, reason="photod models --use")
        if not as_json:
            click.echo(f"active model: {active_model_name()}")
    active = active_model_name()
    for spec in list_models():
        row = {
            "name": spec.name,
            "version": spec.version,
            "active": spec.name == active,
            "available": spec.available,
            "description": spec.description,
            "metrics": spec.card.get("metrics", {}),
            "heads": list(spec.heads),
        }
        if as_json:
            emit_json(row)
        else:
            shown = {k: v for k, v in row["metrics"].items() if not k.endswith("_n")}
            metrics = ", ".join(f"{k}={v}" for k, v in shown.items())
            mark = "*" if row["active"] else " "
            missing = "" if spec.available else "  (weights missing)"
            extra = [h for h in row["heads"] if h != "rating"]
            heads = f"  heads: rating, {', '.join(extra)}" if extra else ""
            click.echo(
                f"{mark} {spec.name}  {spec.version}  {metrics or spec.description}{heads}{missing}"
            )


def register(group: click.Group) -> None:
    group.add_command(models)
