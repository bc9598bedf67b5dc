"""`photod batch`: score an archive on Ray Data, resumable and exactly once, into Parquet shards.

The job is the local pipeline's stages laid out on a cluster:

    list photos (driver) -> stat, hash, decode (CPU tasks, `photod.scoring.decode_for_model`)
      -> score (an actor pool; each actor loads the model once, with `num_gpus` when asked,
         `Scorer.score_decoded`) -> write the rating (`photod.pipeline.write_rating_columns`, the
         same atomic metadata writer) and one Parquet shard (CPU tasks)

Exactly once: the driver skips every photo that already has a row in the output folder with the
same size and mtime (or, when those changed, the same content hash), and a shard appears only
whole (written to a temp name, fsynced, then linked into place), so a job killed at any moment
(driver, worker or node) leaves finished shards and nothing half-written; re-running the same
command does the rest. Readers (`read_results`) still keep only the newest row per path, a second
guard for a task that Ray re-ran after its shard was already in place.

Nothing here imports ray or pyarrow at module level: `photod index import` needs pyarrow only, and
plain photod never imports either (`pip install 'photod[ray]'` brings both).
"""

from __future__ import annotations

import glob
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from photod.errors import PhotodError

log = logging.getLogger("photod")

SHARD_PREFIX = "shard-"
SHARD_SUFFIX = ".parquet"
# A SOURCE with one of these suffixes is a text file of photo paths, one per line.
LIST_SUFFIXES = {".txt", ".lst", ".list"}
GLOB_CHARS = ("*", "?", "[")
STAGES = ("decode", "score", "write")
DECODE_MEMORY = 512 * 2**20
# Writing is mostly waiting on storage: a small CPU request so it never waits for a free core.
WRITE_CPUS = 0.25
ACTOR_ROWS = 32
# Photos per call of a DecodeScoreActor.
FUSED_ROWS = 256
# Columns of a shard that are not index columns (bookkeeping and timing).
_BOOKKEEPING = ("recorded_at", "decode_s", "score_s", "write_s")


class BatchError(PhotodError):
    """A batch job cannot start or finish (no ray, bad output folder, cluster failure)."""

    code = "batch"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError as exc:
        raise BatchError("batch results need pyarrow: pip install 'photod[ray]'", None) from exc
    return pyarrow


def shard_schema() -> Any:
    """The columns of every shard: the index's columns for a photo, plus timing per stage.

    `embedding` is the index's blob (1280 float16 values, little-endian; decode with
    `photod.index.embedding_array`).
    """
    pa = _pyarrow()
    text, real, integer = pa.string(), pa.float64(), pa.int64()
    return pa.schema(
        [
            ("path", text),
            ("size", integer),
            ("mtime", real),
            ("mtime_ns", integer),
            ("content_hash", text),
            ("original_hash", text),
            ("status", text),  # ok, error, or skipped (vanished / not a file; not indexed)
            ("error", text),
            ("error_code", text),
            ("score", real),
            ("stars", integer),
            ("model", text),
            ("scored_at", text),
            ("width", integer),
            ("height", integer),
            ("format", text),
            ("captured_at", text),
            ("capture_subsec", text),
            ("camera_make", text),
            ("camera_model", text),
            ("lens", text),
            ("exposure_bias", real),
            ("exposure_time", real),
            ("f_number", real),
            ("iso", integer),
            ("focal_length", real),
            ("user_rating", integer),
            ("written_to", text),
            ("embedding", pa.binary()),
            ("recorded_at", real),
            ("decode_s", real),
            ("score_s", real),
            ("write_s", real),
        ]
    )


# ---------------------------------------------------------------------------------------------
# Listing and resuming (driver side; no ray)


def list_photos(sources: Iterable[str], recursive: bool = False) -> list[str]:
    """Absolute photo paths from folders, globs (`**` with recursive) and text files of paths.

    A SOURCE ending in .txt, .lst or .list is read as one path per line (blank lines and lines
    starting with # ignored; relative paths are relative to the current folder, as for xargs).
    Files named explicitly are kept whatever their type: a bad one becomes an error row.
    """
    from photod.decode import is_supported
    from photod.scoring import iter_photo_paths

    found: list[str] = []
    for source in sources:
        path = Path(source)
        if path.is_file() and path.suffix.lower() in LIST_SUFFIXES:
            for line in path.read_text(encoding="utf-8").splitlines():
                line = line.strip()
                if line and not line.startswith("#"):
                    found.append(line)
        elif not path.exists() and any(char in source for char in GLOB_CHARS):
            for match in sorted(glob.glob(source, recursive=recursive)):
                if os.path.isdir(match):
                    found.extend(map(str, iter_photo_paths([match], recursive)))
                elif is_supported(match):
                    found.append(match)
        else:
            found.extend(map(str, iter_photo_paths([path], recursive)))
    return list(dict.fromkeys(os.path.abspath(p) for p in found))


def shard_paths(out_dir: str | os.PathLike[str]) -> list[Path]:
    """The finished shards in `out_dir` (temp files of a shard being written are not shards)."""
    folder = Path(out_dir)
    if not folder.is_dir():
        return []
    return sorted(folder.glob(f"{SHARD_PREFIX}*{SHARD_SUFFIX}"))


def read_results(out_dir: str | os.PathLike[str], columns: Sequence[str] | None = None) -> Any:
    """Every result in `out_dir` as one pyarrow Table, one row per path (the newest wins).

    A shard that cannot be read (a damaged disk) is logged and left out: its photos are simply
    done again by the next run.
    """
    pa = _pyarrow()
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    schema = shard_schema()
    wanted = list(dict.fromkeys([*(columns or schema.names), "path", "recorded_at"]))
    tables = []
    for shard in shard_paths(out_dir):
        try:
            tables.append(pq.read_table(shard, columns=wanted))
        except (OSError, pa.ArrowException) as exc:
            log.warning("%s: cannot read this shard (%s); its photos will be redone", shard, exc)
    if not tables:
        return pa.Table.from_pylist([], schema=pa.schema([schema.field(n) for n in wanted]))
    table = pa.concat_tables(tables)
    if table.num_rows < 2:
        return table
    order = pc.sort_indices(table, sort_keys=[("path", "ascending"), ("recorded_at", "descending")])
    table = table.take(order)
    paths = table.column("path")
    first = pc.not_equal(paths.slice(1), paths.slice(0, len(paths) - 1))
    keep = pa.concat_arrays([pa.array([True]), first.combine_chunks()])
    return table.filter(keep)


@dataclass
class Plan:
    """What a run has to do: `todo` paths, and how many listed photos are already done."""

    todo: list[str]
    done: int
    listed: int


def plan_run(
    paths: Sequence[str], out_dir: str | os.PathLike[str], retry_errors: bool = False
) -> Plan:
    """Leave out the photos `out_dir` already holds: same size and mtime, or same content.

    Error rows count as done (a truncated file stays truncated) unless `retry_errors`; a
    changed file (new size or mtime and new content) is done again and its new row wins.
    """
    from photod.content_hash import file_hash

    columns = ["size", "mtime_ns", "content_hash", "status"]
    known = {row["path"]: row for row in read_results(out_dir, columns).to_pylist()}
    todo: list[str] = []
    for path in paths:
        row = known.get(path)
        if row is None or row["status"] == "skipped" or (retry_errors and row["status"] != "ok"):
            todo.append(path)
            continue
        try:
            st = os.stat(path)
        except OSError:
            todo.append(path)  # gone or unreadable now: the decode task records what it finds
            continue
        if st.st_size == row["size"] and st.st_mtime_ns == row["mtime_ns"]:
            continue
        try:
            same = row["content_hash"] is not None and file_hash(path) == row["content_hash"]
        except OSError:
            same = False
        if not same:
            todo.append(path)
    return Plan(todo=todo, done=len(paths) - len(todo), listed=len(paths))


# ---------------------------------------------------------------------------------------------
# The three stages (run in Ray workers; plain functions and classes, no ray import)


def _decode_one(path: str, max_pixels: int) -> dict[str, Any]:
    from photod.content_hash import bytes_hash
    from photod.errors import DecodeError, FileUnreadableError
    from photod.scoring import decode_for_model

    started = time.perf_counter()
    row: dict[str, Any] = {"path": path, "status": "ok", "pixels": None}

    def fail(exc: PhotodError, status: str = "error") -> dict[str, Any]:
        if status == "error":
            log.warning("%s", exc)
        row.update(status=status, error=str(exc), error_code=exc.code)
        row["decode_s"] = time.perf_counter() - started
        return row

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return fail(PhotodError("vanished before it was read", path), "skipped")
    except OSError as exc:
        return fail(FileUnreadableError(f"cannot stat: {exc.strerror}", path))
    if not os.path.isfile(path):
        return fail(PhotodError("not a regular file", path), "skipped")
    row.update(size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns)
    try:
        # Read once: the hash and the decoder share the bytes (as in photod score's threads).
        with open(path, "rb") as handle:
            data = handle.read()
        row["content_hash"] = row["original_hash"] = bytes_hash(data)
        image = decode_for_model(path, max_pixels, data=data)
    except FileNotFoundError:
        return fail(PhotodError("vanished while it was read", path), "skipped")
    except OSError as exc:
        return fail(FileUnreadableError(f"cannot read: {exc.strerror}", path))
    except PhotodError as exc:
        if not os.path.lexists(path):
            return fail(exc, "skipped")
        return fail(exc)
    except Exception as exc:  # an unexpected library error is still one file's problem
        log.exception("unexpected error decoding %s", path)
        return fail(DecodeError(f"unexpected {type(exc).__name__}: {exc}", path))
    pixels = image.pixels
    row.update(
        pixels=pixels.tobytes(),
        pixels_shape=list(pixels.shape),
        width=image.width,
        height=image.height,
        format=image.format,
        exif=json.dumps(image.exif, default=str),
        decode_s=time.perf_counter() - started,
    )
    return row


def decode_batch(batch: Any, max_pixels: int) -> Any:
    """Ray Data stage 1 (CPU task): stat, hash and decode each path to model-sized pixels."""
    import pyarrow as pa

    rows = [_decode_one(path, max_pixels) for path in batch.column("path").to_pylist()]
    return pa.Table.from_pylist(rows, schema=_decoded_schema())


def _decoded_schema() -> Any:
    import pyarrow as pa

    base = shard_schema()
    keep = ("path", "size", "mtime", "mtime_ns", "content_hash", "original_hash", "status",
            "error", "error_code", "width", "height", "format", "decode_s")  # fmt: skip
    return pa.schema(
        [base.field(name) for name in keep]
        + [
            ("pixels", pa.binary()),
            ("pixels_shape", pa.list_(pa.int32())),
            ("exif", pa.string()),
        ]
    )


class ScoreActor:
    """Ray Data stage 2 (actor pool): the model, loaded once per actor, scores decoded pixels."""

    def __init__(self, scorer_kwargs: dict[str, Any]) -> None:
        from photod.scoring import Scorer

        self.scorer = Scorer(**scorer_kwargs)
        self.scorer.net  # noqa: B018  (load now: the first batch should not pay for it)

    def __call__(self, batch: Any) -> Any:
        return self.score_rows(batch.to_pylist())

    def score_rows(self, rows: list[dict[str, Any]], started: float | None = None) -> Any:
        """Stage-1 rows (pixels or an error) -> stage-2 rows (scored), as an Arrow table."""
        import numpy as np
        import pyarrow as pa

        from photod.decode import DecodedImage
        from photod.index import now_iso
        from photod.pipeline import scored_columns

        started = time.perf_counter() if started is None else started
        outcomes = []
        for row in rows:
            if row["status"] == "ok":
                pixels = np.frombuffer(row["pixels"], np.uint8).reshape(row["pixels_shape"])
                image = DecodedImage(
                    pixels, (row["width"], row["height"]), row["format"], json.loads(row["exif"])
                )
                outcomes.append((row["path"], image))
        results = iter(self.scorer.score_decoded(outcomes))
        scored_at = now_iso()
        per_photo = (time.perf_counter() - started) / max(1, len(rows))
        out = []
        for row in rows:
            for name in ("pixels", "pixels_shape", "exif"):
                row.pop(name, None)  # an error row straight from _decode_one has none of them
            row.update(model=self.scorer.version, scored_at=scored_at, score_s=per_photo)
            if row["status"] == "ok":
                row.update(scored_columns(next(results), scored_at))
            out.append(row)
        return pa.Table.from_pylist(out, schema=_scored_schema())


class DecodeScoreActor(ScoreActor):
    """Stages 1 and 2 in one actor, for a local Ray (one machine): decode threads inside the
    actor feed its model, as in `photod score`, and only paths and results cross processes.

    On one machine, decoding in separate tasks buys nothing (the same cores) and costs every
    photo's pixels through the object store plus Ray's scheduling of each task: measured on 2
    cores, that pipeline ran at about half of `photod score`'s photos/s (README, "photod
    batch"). The decode threads are `_decode_one` (the decode tasks' own code) at a lower
    priority than the model's thread (`photod.scoring.DECODE_NICE`); the forward passes start
    as soon as their photos are decoded, while the rest of the call's photos decode.
    """

    def __init__(self, scorer_kwargs: dict[str, Any], decode_threads: int) -> None:
        from concurrent.futures import ThreadPoolExecutor

        from photod.scoring import _yield_to_the_model

        super().__init__(scorer_kwargs)
        self.max_pixels = scorer_kwargs["max_pixels"]
        self.pool = ThreadPoolExecutor(
            max(1, decode_threads), "photod-decode", initializer=_yield_to_the_model
        )

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        paths = batch.column("path").to_pylist()
        decoding = [self.pool.submit(_decode_one, path, self.max_pixels) for path in paths]
        step = self.scorer.batch_size
        tables = []
        for start in range(0, len(decoding), step):
            rows = [future.result() for future in decoding[start : start + step]]
            tables.append(self.score_rows(rows, time.perf_counter()))
        # Stage times stay per photo: decode_s in its thread, score_s from the moment its
        # forward pass had all its photos.
        return pa.concat_tables(tables) if tables else pa.Table.from_pylist([], _scored_schema())


def _scored_schema() -> Any:
    import pyarrow as pa

    return pa.schema([f for f in shard_schema() if f.name not in ("recorded_at", "write_s")])


def write_batch(batch: Any, out_dir: str, write_mode: str, force: bool) -> Any:
    """Ray Data stage 3 (CPU task): write each rating (or read the user's), then one shard.

    The shard is the commit: a photo whose rating was written but whose shard never appeared is
    simply done again (the metadata writer is atomic and idempotent).
    """
    import pyarrow as pa

    from photod.pipeline import write_rating_columns

    rows = batch.to_pylist()
    for row in rows:
        started = time.perf_counter()
        if row["status"] == "ok":
            try:
                row.update(
                    write_rating_columns(
                        row["path"],
                        row["score"],
                        row["stars"],
                        row["model"],
                        row["scored_at"],
                        row["content_hash"],
                        write_mode,
                        force,
                    )  # fmt: skip
                )
            except FileNotFoundError:
                row.update(status="skipped", error="vanished after scoring", error_code="vanished")
            except PhotodError as exc:
                # The score is known but the rating could not be written: an error row that
                # keeps the score, with the file's stat as it is now (as `photod watch` does).
                log.warning("cannot write rating: %s", exc)
                row.update(status="error", error=str(exc), error_code=exc.code)
                try:
                    st = os.stat(row["path"])
                    row.update(size=st.st_size, mtime=st.st_mtime, mtime_ns=st.st_mtime_ns)
                except OSError:
                    pass
        row["write_s"] = time.perf_counter() - started
    shard_started = time.perf_counter()
    name = write_shard(out_dir, rows)
    shard_s = (time.perf_counter() - shard_started) / max(1, len(rows))
    summary = {
        "shard": name,
        "photos": len(rows),
        "ok": sum(row["status"] == "ok" for row in rows),
        "errors": sum(row["status"] == "error" for row in rows),
        "skipped": sum(row["status"] == "skipped" for row in rows),
        "decode_s": sum(row["decode_s"] or 0.0 for row in rows),
        "score_s": sum(row["score_s"] or 0.0 for row in rows),
        "write_s": sum(row["write_s"] for row in rows) + shard_s * len(rows),
    }
    return pa.Table.from_pylist([summary])


def write_shard(out_dir: str | os.PathLike[str], rows: list[dict[str, Any]]) -> str:
    """Write `rows` as a new shard, atomically (temp file, fsync, link into place, fsync folder)."""
    pa = _pyarrow()
    import pyarrow.parquet as pq

    from photod.metadata.atomic import atomic_create

    now = time.time()
    for row in rows:
        row["recorded_at"] = now
    table = pa.Table.from_pylist(rows, schema=shard_schema())
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    name = f"{SHARD_PREFIX}{stamp}-{uuid.uuid4().hex[:12]}{SHARD_SUFFIX}"
    if not atomic_create(Path(out_dir) / name, sink.getvalue().to_pybytes()):
        raise BatchError("shard name already taken (uuid clash)", name)
    return name


# ---------------------------------------------------------------------------------------------
# The driver


@dataclass
class BatchSummary:
    """The end of a run: what `photod batch` prints (`to_dict` is its `--json`)."""

    listed: int = 0
    already_done: int = 0
    photos: int = 0
    ok: int = 0
    errors: int = 0
    skipped: int = 0
    shards: int = 0
    attempts: int = 0
    wall_s: float = 0.0
    stage_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    out_dir: str = ""
    imported: dict[str, int] | None = None
    # Start-up (actors loading the model, first blocks) vs the rate once shards flow.
    first_shard_s: float | None = None
    steady_photos_per_s: float | None = None

    @property
    def photos_per_s(self) -> float:
        return self.photos / self.wall_s if self.wall_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": self.out_dir,
            "listed": self.listed,
            "already_done": self.already_done,
            "photos": self.photos,
            "ok": self.ok,
            "errors": self.errors,
            "skipped": self.skipped,
            "shards": self.shards,
            "attempts": self.attempts,
            "wall_s": round(self.wall_s, 3),
            "photos_per_s": round(self.photos_per_s, 3),
            "stage_s": {k: round(v, 3) for k, v in self.stage_s.items()},
            "first_shard_s": None if self.first_shard_s is None else round(self.first_shard_s, 3),
            "steady_photos_per_s": None
            if self.steady_photos_per_s is None
            else round(self.steady_photos_per_s, 3),
            "imported": self.imported,
        }


@dataclass
class BatchOptions:
    """How to run: where, which model, what to write, how wide."""

    address: str | None = None  # None: start a local Ray; "auto" or HOST:PORT: join a cluster
    num_cpus: int | None = None  # local Ray only
    model: str | None = None
    write_mode: str = "none"
    force: bool = False
    num_gpus: float = 0.0  # per scoring actor
    batch_size: int | None = None  # photos per model batch
    actors: int | None = None  # scoring actors (default: one per GPU share, or CPUs // 4)
    actor_cpus: float = 1.0
    decode_batch: int = 16  # photos per decode task
    # CPUs a decode task asks for; None: 0.5 on a local Ray (two decoders per core keep a small
    # machine busy while the actor waits for batches, measured in benchmarks/batch_speed.py),
    # 1 on a cluster.
    decode_cpus: float | None = None
    # Where photos are decoded: "tasks" (CPU tasks, then the scoring actors), "actor" (threads
    # inside the scoring actors, DecodeScoreActor) or "auto": the actor when the cluster is one
    # machine, tasks otherwise.
    decode: str = "auto"
    shard_size: int = 256  # photos per shard
    retry_errors: bool = False
    progress: bool = True
    attempts: int = 3  # whole-job retries after a cluster failure (each resumes)


def run_batch(
    sources: Sequence[str],
    out_dir: str | os.PathLike[str],
    options: BatchOptions | None = None,
    recursive: bool = False,
) -> BatchSummary:
    """List, skip what `out_dir` already holds, and score the rest on Ray; returns the summary.

    Joins the Ray session already initialised in this process if there is one, else starts one
    (local, or connected to `options.address`) and shuts it down at the end. A failure of the
    cluster itself (a node lost beyond what Ray Data retries) restarts the job, which resumes from
    the shards written so far, up to `options.attempts` times.
    """
    options = options or BatchOptions()
    started = time.perf_counter()
    folder = Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BatchError(f"cannot create the output folder: {exc.strerror}", str(folder)) from exc
    from photod.metadata.atomic import clean_stale_temp_files

    # Leftovers of a shard a killed job was writing; young ones may belong to a running job.
    clean_stale_temp_files(folder, min_age_s=600)
    summary = BatchSummary(out_dir=str(folder.resolve()))
    paths = list_photos(sources, recursive)
    summary.listed = len(paths)
    plan = plan_run(paths, folder, options.retry_errors)
    summary.already_done = plan.done
    if not plan.todo:
        summary.wall_s = time.perf_counter() - started
        return summary
    todo = plan.todo
    scorer_kwargs = _scorer_kwargs(options)
    ray = _ray()
    started_ray = not ray.is_initialized()
    if started_ray:
        init_ray(ray, options)
    try:
        while True:
            summary.attempts += 1
            try:
                _execute(ray, plan.todo, folder, options, scorer_kwargs, summary)
                break
            except (ray.exceptions.RayError, RuntimeError) as exc:
                if isinstance(exc, ray.exceptions.UserCodeException) or (
                    summary.attempts >= options.attempts
                ):
                    # A bug in photod's own stage code fails the same way again: no retry.
                    raise BatchError(
                        f"the job failed {summary.attempts} times ({exc}); re-run the same "
                        "command to resume from the shards written so far",
                        str(folder),
                    ) from exc
                log.warning("the job failed (%s); resuming from the shards written so far", exc)
                plan = plan_run(paths, folder, options.retry_errors)
                if not plan.todo:
                    break
    finally:
        if started_ray:
            ray.shutdown()
    _recount(summary, folder, todo)
    summary.wall_s = time.perf_counter() - started
    return summary


def _recount(summary: BatchSummary, folder: Path, todo: Sequence[str]) -> None:
    """Count this run's photos from the shards on disk, not from the shard reports that reached
    the driver: after a job restart, a shard the failed attempt wrote may never have been
    reported (and is not done again), and a task Ray retried may have written its photos twice.
    Stage times stay as reported."""
    wanted = set(todo)
    rows = [r for r in read_results(folder, ["status"]).to_pylist() if r["path"] in wanted]
    summary.photos = len(rows)
    summary.ok = sum(r["status"] == "ok" for r in rows)
    summary.errors = sum(r["status"] == "error" for r in rows)
    summary.skipped = sum(r["status"] == "skipped" for r in rows)


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise BatchError(
            "photod batch needs Ray: pip install 'photod[ray]' (on every node of the cluster)"
        ) from exc
    return ray


def init_ray(ray: Any, options: BatchOptions) -> None:
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    if options.address:
        kwargs["address"] = options.address
    else:
        # A new Ray of its own: without an address, ray.init joins a Ray already running on
        # this machine (another job's, a test's), whose workers do not stop with this driver.
        kwargs["address"] = "local"
        kwargs["include_dashboard"] = False  # nothing to look at for a one-machine run
        # Ray starts workers at nice 15 to keep its own processes responsive; on a machine
        # that runs only this job, that handed CPU to any other process and cost ~10 % of
        # photos/s (benchmarks/batch_speed.py).
        kwargs["_system_config"] = {"worker_niceness": 0}
        if options.num_cpus:
            kwargs["num_cpus"] = options.num_cpus
    try:
        ray.init(**kwargs)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = options.address or "a local Ray"
        raise BatchError(f"cannot start or join {where}: {exc}") from exc


def _scorer_kwargs(options: BatchOptions) -> dict[str, Any]:
    """The Scorer every actor builds: the one `photod score` would build from the settings, with
    the model name resolved here (workers do not see this machine's personal models)."""
    from photod.config import load_settings, scorer_from_settings

    settings = load_settings(cli={"batch_size": options.batch_size, "model": options.model})
    scorer = scorer_from_settings(settings)
    return {
        "model": scorer.model_name,
        "device": "cuda" if options.num_gpus else "cpu",
        "batch_size": settings.batch_size,  # None: the actor's Scorer picks for its device
        "max_pixels": scorer.max_pixels,
        "star_mapping": scorer.star_mapping,
        # Ray gives the actor `actor_cpus` cores; more torch threads would fight over them.
        "torch_threads": max(1, int(options.actor_cpus)),
    }


def _actor_count(ray: Any, options: BatchOptions) -> int:
    if options.actors:
        return options.actors
    resources = ray.cluster_resources()
    if options.num_gpus:
        return max(1, int(resources.get("GPU", 0) // options.num_gpus))
    return max(1, int(resources.get("CPU", 1) // 4))


def _decode_in_actor(ray: Any, options: BatchOptions) -> bool:
    """Decode inside the scoring actors when asked, or by default when the cluster is one
    machine (a local Ray): see DecodeScoreActor."""
    if options.decode != "auto":
        return options.decode == "actor"
    return sum(1 for node in ray.nodes() if node.get("Alive")) == 1


def _decode_and_score_in_actors(
    ray: Any, todo: list[str], options: BatchOptions, scorer_kwargs: dict[str, Any]
) -> Any:
    """paths -> DecodeScoreActor (one per node unless --actors; decode threads + the model)."""
    cpus = float(ray.cluster_resources().get("CPU", 1))
    actors = options.actors or 1
    # Each actor takes its share of the CPUs but leaves room for the shard writers.
    actor_cpus = max(0.5, cpus / actors - WRITE_CPUS)
    threads = max(1, int(cpus / actors))  # what the actor really runs on: its share of cores
    kwargs = {**scorer_kwargs}
    if not options.num_gpus:
        # photod score's split of a machine: decoders on every core, the model's thread(s) on
        # what they leave (at least one), the decoders yielding to it.
        kwargs["torch_threads"] = max(1, threads - min(8, threads))
    blocks = max(1, -(-len(todo) // FUSED_ROWS))
    dataset = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=blocks)
    return dataset.map_batches(
        DecodeScoreActor,
        batch_format="pyarrow",
        # Big calls: the decode threads idle only while a call's last forward pass runs.
        batch_size=FUSED_ROWS,
        fn_constructor_kwargs={"scorer_kwargs": kwargs, "decode_threads": min(8, threads)},
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=actor_cpus,
        num_gpus=options.num_gpus or None,
    )


def _decode_tasks_then_actors(
    ray: Any, todo: list[str], options: BatchOptions, scorer_kwargs: dict[str, Any]
) -> Any:
    """paths -> decode_batch (CPU tasks spread over the cluster) -> ScoreActor pool."""
    blocks = max(1, -(-len(todo) // options.decode_batch))
    dataset = ray.data.from_items([{"path": p} for p in todo], override_num_blocks=blocks)
    dataset = dataset.map_batches(
        decode_batch,
        batch_format="pyarrow",
        batch_size=options.decode_batch,
        fn_kwargs={"max_pixels": scorer_kwargs["max_pixels"]},
        num_cpus=options.decode_cpus or (1.0 if options.address else 0.5),
        # A decode worker holds up to ~400 MB (a RAW's half-size demosaic). Asking for it also
        # keeps Ray Data from fusing decoding into the scoring actors (fusion needs equal
        # resource requests): decode tasks spread over every CPU of the cluster while the
        # actors only run the model.
        memory=DECODE_MEMORY,
    )
    dataset = dataset.map_batches(
        ScoreActor,
        batch_format="pyarrow",
        # Rows per actor call; the Scorer runs them in forward passes of its own batch size.
        batch_size=max(ACTOR_ROWS, scorer_kwargs["batch_size"] or 0),
        fn_constructor_kwargs={"scorer_kwargs": scorer_kwargs},
        compute=ray.data.ActorPoolStrategy(size=_actor_count(ray, options)),
        num_cpus=options.actor_cpus,
        num_gpus=options.num_gpus or None,
    )
    return dataset


def _execute(
    ray: Any,
    todo: list[str],
    folder: Path,
    options: BatchOptions,
    scorer_kwargs: dict[str, Any],
    summary: BatchSummary,
) -> None:
    from ray.data import DataContext

    context = DataContext.get_current()
    context.enable_progress_bars = options.progress
    if _decode_in_actor(ray, options):
        dataset = _decode_and_score_in_actors(ray, todo, options, scorer_kwargs)
    else:
        dataset = _decode_tasks_then_actors(ray, todo, options, scorer_kwargs)
    dataset = dataset.map_batches(
        write_batch,
        batch_format="pyarrow",
        batch_size=options.shard_size,
        fn_kwargs={
            "out_dir": str(folder.resolve()),
            "write_mode": options.write_mode,
            "force": options.force,
        },
        num_cpus=WRITE_CPUS,
    )
    started = time.perf_counter()
    first_at, first_photos = None, 0
    for shard in dataset.iter_rows():
        if first_at is None:
            first_at, first_photos = time.perf_counter(), shard["photos"]
            summary.first_shard_s = first_at - started
        summary.shards += 1
        for key in ("photos", "ok", "errors", "skipped"):
            setattr(summary, key, getattr(summary, key) + shard[key])
        for stage in STAGES:
            summary.stage_s[stage] += shard[f"{stage}_s"]
        log.info("shard %s: %d photos", shard["shard"], shard["photos"])
    if first_at is not None and summary.shards > 1:
        after_first = time.perf_counter() - first_at
        summary.steady_photos_per_s = (summary.photos - first_photos) / max(after_first, 1e-9)


# ---------------------------------------------------------------------------------------------
# Into the SQLite index


def import_results(db: Any, out_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Merge the results in `out_dir` into the photod index `db` (one upsert per photo).

    A row the index already holds for a newer version of the file (a larger mtime, e.g. the
    daemon saw a later edit) is kept; skipped rows (vanished files) are not indexed. Idempotent.
    """
    from photod.index import upsert_photo

    counts = {"imported": 0, "unchanged": 0, "kept_newer": 0, "not_indexed": 0}
    index_columns = [name for name in shard_schema().names if name not in _BOOKKEEPING]
    known = {
        row["path"]: row
        for row in db.query("SELECT path, mtime_ns, content_hash, score, status FROM photos")
    }
    for row in read_results(out_dir).to_pylist():
        if row["status"] == "skipped":
            counts["not_indexed"] += 1
            continue
        existing = known.get(row["path"])
        if existing is not None:
            if (existing["mtime_ns"] or 0) > (row["mtime_ns"] or 0):
                counts["kept_newer"] += 1
                continue
            same = ("mtime_ns", "content_hash", "score", "status")
            if all(existing[key] == row[key] for key in same):
                counts["unchanged"] += 1
                continue
        upsert_photo(db, {name: row[name] for name in index_columns})
        counts["imported"] += 1
    return counts


def print_summary(summary: BatchSummary, stream: Any = None) -> None:
    """The human summary of a run, on `stream` (default stdout)."""
    stream = stream or sys.stdout
    stages = ", ".join(f"{name} {summary.stage_s[name]:.1f} s" for name in STAGES)
    lines = [
        f"photos:   {summary.photos} done now ({summary.ok} ok, {summary.errors} errors, "
        f"{summary.skipped} skipped), {summary.already_done} already in {summary.out_dir}",
        f"speed:    {summary.photos_per_s:.1f} photos/s ({summary.wall_s:.1f} s wall, "
        f"{summary.shards} shards, {summary.attempts} attempt(s))",
        f"stages:   {stages} (worker time, summed over workers)",
    ]
    if summary.imported is not None:
        imported = summary.imported
        lines.append(
            f"index:    {imported['imported']} imported, {imported['unchanged']} unchanged, "
            f"{imported['kept_newer']} kept (newer in the index)"
        )
    print("\n".join(lines), file=stream)
