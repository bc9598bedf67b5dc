"""`photod batch` (an archive on Ray, into Parquet shards) and `photod index import DIR`.

Both need the optional `ray` extra (`pip install 'photod[ray]'`); `--help` works without it and
imports neither ray nor pyarrow.
"""

from __future__ import annotations

import click

from photod.cli.common import (
    batch_size_option,
    db_option,
    emit_json,
    json_option,
    library_errors,
    model_option,
)


@click.command()
@click.argument("sources", nargs=-1, required=True)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Results folder (Parquet shards); re-running with the same one resumes.",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster to join: auto (the one this machine belongs to) or HOST:PORT. "
    "Default: start a local Ray on this machine.",
)
@click.option("-r", "--recursive", is_flag=True, help="Descend into sub-folders (and ** globs).")
@model_option
@click.option(
    "--write",
    "write_mode",
    type=click.Choice(["auto", "embedded", "sidecar", "both", "none"]),
    is_flag=False,
    flag_value="auto",
    default="none",
    show_default=True,
    help="Write the ratings on the workers, as `photod score --write` does.",
)
@click.option("--force", is_flag=True, help="With --write: replace ratings the user set.")
@click.option(
    "--index",
    "index_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Merge the results into this SQLite index at the end (as `photod index import`).",
)
@click.option(
    "--num-gpus",
    type=click.FloatRange(0),
    default=0.0,
    show_default=True,
    help="GPUs per scoring actor (0: score on CPUs).",
)
@batch_size_option
@click.option(
    "--actors", type=click.IntRange(1), default=None, help="Scoring actors (model copies)."
)
@click.option(
    "--decode",
    type=click.Choice(["auto", "actor", "tasks"]),
    default="auto",
    show_default=True,
    help="Where photos are decoded: threads inside the scoring actors (auto on a one-machine "
    "Ray) or CPU tasks before them (auto on a cluster).",
)
@click.option(
    "--decode-batch",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Photos per decode task (--decode tasks).",
)
@click.option(
    "--decode-cpus",
    type=click.FloatRange(0.05),
    default=None,
    help="CPUs each decode task asks Ray for (default: 0.5 on a local Ray, 1 on a cluster).",
)
@click.option(
    "--shard-size", type=click.IntRange(1), default=256, show_default=True, help="Photos per shard."
)
@click.option(
    "--num-cpus", type=click.IntRange(1), default=None, help="Local Ray only: CPUs to use."
)
@click.option("--retry-errors", is_flag=True, help="Redo photos whose earlier row is an error.")
@click.option("--no-progress", is_flag=True, help="No Ray Data progress bars.")
@json_option
@library_errors
def batch(
    sources: tuple[str, ...],
    out_dir: str,
    address: str | None,
    recursive: bool,
    model: str | None,
    write_mode: str,
    force: bool,
    index_path: str | None,
    num_gpus: float,
    batch_size: int | None,
    actors: int | None,
    decode: str,
    decode_batch: int,
    decode_cpus: float | None,
    shard_size: int,
    num_cpus: int | None,
    retry_errors: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    """Score an archive on Ray Data: SOURCES are folders, globs or text files of paths.

    Needs the ray extra: pip install 'photod[ray]' (on every node). Results go to --out as
    Parquet shards (path, stat, hash, score, stars, status, EXIF summary, embedding); a re-run
    skips every photo already there, so a killed job finishes on re-run with each photo once.

    Exit status: 0 when every photo was scored, 1 when any gave an error row.
    """
    import sys

    from photod.batch import BatchOptions, import_results, print_summary, run_batch

    options = BatchOptions(
        address=address,
        num_cpus=num_cpus,
        model=model,
        write_mode=write_mode,
        force=force,
        num_gpus=num_gpus,
        batch_size=batch_size,
        actors=actors,
        decode=decode,
        decode_batch=decode_batch,
        decode_cpus=decode_cpus,
        shard_size=shard_size,
        retry_errors=retry_errors,
        progress=not no_progress,
    )
    summary = run_batch(sources, out_dir, options, recursive=recursive)
    if summary.listed == 0:
        raise click.UsageError("no photos found in the given sources")
    if index_path:
        from photod.index import open_index

        summary.imported = import_results(open_index(index_path), out_dir)
    if as_json:
        emit_json(summary.to_dict())
    else:
        print_summary(summary)
    if summary.errors:
        sys.exit(1)


@click.group("index")
def index_group() -> None:
    """Maintain the SQLite index (e.g. merge the results of `photod batch`)."""


@index_group.command("import")
@click.argument("out_dir", type=click.Path(exists=True, file_okay=False))
@db_option
@json_option
@library_errors
def index_import(out_dir: str, db_path: str | None, as_json: bool) -> None:
    """Merge the Parquet results of `photod batch --out OUT_DIR` into the index.

    Then `photod list/top/cull/serve` show them as if a watched folder had been scored.
    Needs pyarrow (the ray extra).
    """
    from photod.batch import import_results
    from photod.cli.index import _db_path
    from photod.index import open_index

    path = _db_path(db_path)
    counts = import_results(open_index(path), out_dir)
    if as_json:
        emit_json({"db": str(path), **counts})
    else:
        click.echo(
            f"{counts['imported']} imported, {counts['unchanged']} unchanged, "
            f"{counts['kept_newer']} kept (newer in the index) into {path}"
        )


def register(group: click.Group) -> None:
    group.add_command(batch)
    group.add_command(index_group)
