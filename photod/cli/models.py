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
            "version": spec.release,
            "active": spec.name == active,
            "available": spec.available,
            "description": spec.description,
            "metrics": spec.card.get("metrics", {}),
            "heads": list(spec.heads),
        }
        if spec.card.get("base"):
            row["personal"] = personal_summary(spec.card)
        if as_json:
            emit_json(row)
            continue
        mark = "*" if row["active"] else " "
        missing = "" if spec.available else "  (weights missing)"
        if "personal" in row:
            shown = row["personal"]["text"]
        else:
            metrics = {k: v for k, v in row["metrics"].items() if not k.endswith("_n")}
            shown = ", ".join(f"{k}={v}" for k, v in metrics.items()) or spec.description
        # A personal model's own head is part of its rating, not an extra output.
        extra = [h for h in row["heads"] if h not in ("rating", spec.card.get("head"))]
        heads = f"  heads: rating, {', '.join(extra)}" if extra else ""
        click.echo(f"{mark} {spec.name}  {spec.release}  {shown}{heads}{missing}")


def personal_summary(card: dict) -> dict:
    """Both models' cross-validated SRCC on the user's ratings, how many, and the decision."""
    metrics = card.get("metrics", {})
    n = metrics.get("n_ratings", card.get("n_ratings", card.get("n_train")))
    summary = {
        "base": card.get("base"),
        "n_ratings": n,
        "srcc": metrics.get("srcc", metrics.get("holdout_srcc")),
        "srcc_se": metrics.get("srcc_se"),
        "base_srcc": metrics.get("base_srcc", metrics.get("base_holdout_srcc")),
        "base_srcc_se": metrics.get("base_srcc_se"),
        "beats_base": card.get("beats_base"),
        "decision": card.get("selection", {}).get("decision"),
    }

    def shown(value: object, se: object) -> str:
        if not isinstance(value, int | float):
            return "?"
        return f"{value:.3f}" + (f" ± {se:.3f}" if isinstance(se, int | float) else "")

    verdict = "wins" if summary["beats_base"] else "does not clearly win"
    summary["text"] = (
        f"SRCC on your {n} ratings (cross-validated): {shown(summary['srcc'], summary['srcc_se'])}"
        f" vs {summary['base']} {shown(summary['base_srcc'], summary['base_srcc_se'])}; {verdict}"
    )
    return summary


def register(group: click.Group) -> None:
    group.add_command(models)
