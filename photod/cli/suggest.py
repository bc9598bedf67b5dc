"""`photod suggest`: propose crops and exposure/colour tweaks; print, render, or write them as XMP."""

from __future__ import annotations

import sys
from typing import Any

import click

from photod.cli.common import (
    above,
    batch_size_option,
    db_option,
    device_option,
    emit_json,
    index_if_any,
    json_option,
    library_errors,
    model_option,
    progress_bar,
)


def _search_model(fallback: str) -> str:
    """The aesthetic search's objective: photod-aesthetic-v2 (trained so a photo beats its own
    degraded, badly cropped or padded versions) when installed, else the active scoring model."""
    from photod.models import get_model_spec

    try:
        if get_model_spec("photod-aesthetic-v2").available:
            return "photod-aesthetic-v2"
    except Exception:  # a registry problem must not stop suggestions with the fallback
        pass
    try:
        from photod.models.registry import active_model_name

        return active_model_name()
    except ImportError:
        return fallback


def _format_params(params: dict[str, Any]) -> str:
    parts = []
    for key, value in params.items():
        if key in ("gains", "box"):
            continue
        if isinstance(value, float):
            value = f"{value:+.2f}" if key in ("ev", "angle", "contrast") else f"{value:.2f}"
        parts.append(f"{key}={value}")
    return " ".join(parts)


def _print_human(data: dict[str, Any]) -> None:
    click.echo(data["path"])
    if not data["suggested"]:
        best = data["best_score"] - data["score_before"]
        click.echo(
            f"  no suggestion: score {data['score_before']:.3f}; the best variant gained "
            f"{best:+.3f}, below the margin {data['margin']:.3f}"
        )
        return
    click.echo(f"  {'step':<14} {'parameters':<40} {'score':>7} {'gain':>7}")
    click.echo(f"  {'(original)':<14} {'':<40} {data['score_before']:7.3f} {'':>7}")
    score = data["score_before"]
    for edit in data["edits"]:
        score += edit["gain"]
        params = _format_params(edit["params"])
        click.echo(f"  {edit['enhancer']:<14} {params:<40.40} {score:7.3f} {edit['gain']:+7.3f}")
    crop = data["crop"]
    crop_text = "none" if crop is None else "[" + ", ".join(f"{v:.3f}" for v in crop) + "]"
    click.echo(
        f"  total {data['score_before']:.3f} -> {data['score_after']:.3f} "
        f"({data['gain']:+.3f}); crop {crop_text}, angle {data['angle']:+.2f}°, "
        f"exposure {data['exposure_ev']:+.2f} EV"
    )


@click.command()
@click.argument("photos", nargs=-1, type=click.Path(exists=True))
@click.option(
    "--enhancers",
    default=None,
    help="Comma-separated enhancers in search order (default: the preset's; see --list).",
)
@click.option(
    "--preset", default="default", show_default=True, help="Search preset (presets.json)."
)
@click.option(
    "--margin",
    type=float,
    default=None,
    help="Minimum total score gain for a suggestion (default: the preset's).",
)
@click.option(
    "--apply",
    "apply_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Render the full-resolution variant into this folder (never over the original).",
)
@click.option(
    "--write-xmp",
    is_flag=True,
    help="Write the suggestion as Camera Raw settings (crop, exposure…) into the photo's XMP.",
)
@click.option("--force", is_flag=True, help="With --write-xmp: replace the user's crs: settings.")
@click.option("--store", is_flag=True, help="Save each suggestion in the index (--db).")
@click.option(
    "--objective",
    type=click.Choice(["aesthetic", "edit-preference"]),
    default=None,
    help="What the search maximises: the edit-preference head (default, config "
    "suggest_objective) or the aesthetic score (models/README.md).",
)
@click.option("--list", "list_only", is_flag=True, help="List the available enhancers and exit.")
@json_option
@device_option
@batch_size_option
@model_option
@db_option
@library_errors
def suggest(
    photos: tuple[str, ...],
    enhancers: str | None,
    preset: str,
    margin: float | None,
    apply_dir: str | None,
    write_xmp: bool,
    force: bool,
    store: bool,
    objective: str | None,
    list_only: bool,
    as_json: bool,
    device: str | None,
    batch_size: int | None,
    model: str | None,
    db_path: str | None,
) -> None:
    """Suggest a better crop, exposure, white balance and contrast for PHOTOS.

    Every candidate is scored by the aesthetic model (or, with --objective edit-preference, by
    the edit-preference head); a suggestion is made only when the best variant beats the
    original by the margin. Exit status 1 when any photo failed, a failed
    --write-xmp included (its suggestion is still printed, with `xmp.status` "failed").
    """
    from photod.enhancers import list_enhancers, resolve_enhancers

    if list_only:
        for spec in list_enhancers():
            if as_json:
                emit_json({"name": spec.name, "kind": spec.kind, "description": spec.description})
            else:
                click.echo(f"{spec.name:<14} {spec.kind:<9} {spec.description}")
        return
    if not photos:
        raise click.UsageError("give at least one photo (or --list)")
    names = resolve_enhancers(enhancers, preset)  # a typo fails before the model loads

    from photod.scoring import DEFAULT_MODEL, Scorer, iter_photo_paths

    files = list(iter_photo_paths(photos, recursive=False))
    if not files:
        raise click.UsageError("no photos found in the given paths")
    from photod.objective import use_objective

    if objective is None:
        from photod.config import load_settings

        objective = load_settings().suggest_objective
    scorer: Any = None
    if objective == "edit-preference" and model is None:
        from photod.models.edit_preference import has_head

        if has_head():
            # The head (the default); the scoring model is never loaded (nor timm imported).
            from photod.objective import EditObjective

            scorer = EditObjective(device=device or "auto", batch_size=batch_size or 32)
    if scorer is None:
        # The aesthetic search; with --objective edit-preference and an explicit
        # --model, the head runs on that model's device through objective_for.
        scorer = use_objective(
            Scorer(
                model=model or _search_model(DEFAULT_MODEL),
                device=device or "auto",
                batch_size=batch_size or 32,
            ),
            objective,
        )
    db = index_db = None
    if store:
        from photod.index import open_index

        db = index_db = open_index(db_path)
    elif write_xmp:
        from photod.config import load_settings

        index_db = index_if_any(load_settings(cli={"db": db_path}))
    failures = 0
    with progress_bar(len(files)) as bar:
        for path in files:
            failures += _suggest_one(
                path, scorer, names, margin, preset, apply_dir, write_xmp, force, db, index_db,
                as_json, bar,
            )  # fmt: skip
            bar.update(1)
    if failures:
        sys.exit(1)


def _suggest_one(
    path: Any,
    scorer: Any,
    names: list[str],
    margin: float | None,
    preset: str,
    apply_dir: str | None,
    write_xmp: bool,
    force: bool,
    db: Any,
    index_db: Any,
    as_json: bool,
    bar: Any,
) -> int:
    """Suggest for one photo and print it; 1 when it failed (reported), else 0. `db`: where the
    suggestion is stored (--store); `index_db`: the index kept in step with an XMP write."""
    from photod.errors import PhotodError
    from photod.suggest import suggest_photo

    failed = 0
    try:
        suggestion = suggest_photo(path, scorer, names, margin, preset)
        data = suggestion.to_dict()
        if apply_dir and suggestion.worthwhile:
            from photod.render import render_suggestion

            data["rendered"] = str(render_suggestion(path, suggestion, apply_dir))
        if write_xmp:
            from photod.metadata.develop import write_develop

            try:
                outcome = write_develop(path, suggestion, force=force)
                data["xmp"] = {**outcome.to_dict(), "error": None}
                data["xmp"]["status"] = "written" if outcome.written else "skipped"
                if index_db is not None:
                    from photod.pipeline import record_own_write

                    record_own_write(index_db, path, outcome.written)
            except PhotodError as exc:  # the suggestion stands; only its XMP is missing
                failed = 1
                data["xmp"] = {"path": str(path), "written": [], "skipped": None,
                               "error": str(exc), "status": "failed"}  # fmt: skip
        if db is not None:
            from photod.suggest_store import save_suggestion

            save_suggestion(db, str(path.resolve()), suggestion)
    except PhotodError as exc:
        message = exc.message_for(path)
        with above(bar):
            if as_json:
                emit_json(
                    {"path": str(path), "status": "error", "error": message, "code": exc.code}
                )
            else:
                click.echo(f"{path}: error: {message}", err=True)
        return 1
    with above(bar):
        if as_json:
            emit_json(data)
        else:
            _print_human(data)
            if data.get("rendered"):
                click.echo(f"  rendered to {data['rendered']}")
            if data.get("xmp"):
                xmp = data["xmp"]
                if xmp["error"]:
                    click.echo(f"  XMP NOT written: {xmp['error']}")
                else:
                    where = ", ".join(xmp["written"]) or f"nothing ({xmp['skipped']})"
                    click.echo(f"  XMP: {where}")
    return failed


@click.command()
@click.option("--min-gain", type=float, default=0.0, show_default=True, help="Smallest gain.")
@json_option
@db_option
@library_errors
def suggestions(min_gain: float, as_json: bool, db_path: str | None) -> None:
    """List indexed photos with a worthwhile stored suggestion (daemon --suggest, suggest --store)."""
    from photod.index import open_index_readonly
    from photod.suggest_store import suggested_paths

    db = open_index_readonly(db_path)
    rows = suggested_paths(db, min_gain)
    for row in rows:
        if as_json:
            emit_json(row)
        else:
            crop = "crop" if row["crop"] else "    "
            click.echo(
                f"{row['score_before']:6.3f} -> {row['score_after']:6.3f} "
                f"({row['gain']:+.3f})  {crop}  {row['exposure_ev']:+.2f} EV  {row['path']}"
            )
    if not rows and not as_json:
        click.echo("no stored suggestions above the margin", err=True)


def register(group: click.Group) -> None:
    group.add_command(suggest)
    group.add_command(suggestions)
