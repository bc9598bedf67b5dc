"""Where culling gets its records and keeps its groups: photo files, and the index.

Files: `analyse_files` decodes each photo once at a working size (short side <= 640 px), runs the
technical checks (`photod.checks`), keeps a small grayscale preview for panorama geometry, and
scores the pixels with the aesthetic model in batches, for `photod cull` on any folder, with or
without an index.

Index: own migration set `Migrations("photod.cull")`, applied after the index's own:

- table `groups`: one row per group (id = `cull.group_key` of its members, kind, size, best path);
- column `photos.group_id`: the group a photo belongs to (NULL for a single photo);
- table `cull_frames`: per grouped photo its rank, best/reject flags, reasons and the cached
  technical checks (JSON, keyed by content hash so an edited file is measured again).

`update_groups_for(db, paths)` regroups only the neighbourhood of new photos (same camera, within
the longest link gap, chained; plus their old groups and untimed near-duplicates), so the daemon
can call it after each batch. `rebuild_groups(db, folder=None)` regroups everything (or a folder).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlite_utils
from sqlite_utils.migrations import Migrations

from photod.checks import FrameChecks, analyse_frame
from photod.cull import (
    GroupingConfig,
    PhotoRecord,
    RankedGroup,
    RankingConfig,
    ShiftEstimator,
    group_key,
    group_photos,
    preview_gray,
    rank_group,
    record_from_exif,
    record_from_row,
)
from photod.errors import PhotodError

if TYPE_CHECKING:
    from photod.scoring import Scorer

log = logging.getLogger("photod")

migrations = Migrations("photod.cull")

# Decode size for checks: the decoder keeps the short side <= 2 x this (640 px).
CHECK_MIN_SIDE = 320
PREVIEW_SIDE = 480


@migrations()
def m001_groups(db: sqlite_utils.Database) -> None:
    db["groups"].create(
        {
            "id": str,
            "kind": str,  # burst, duplicate (ranked), bracket, panorama (kept together)
            "size": int,
            "best_path": str,
            "first_captured": str,
            "links": str,  # JSON: [[path_a, path_b, kind, similarity, gap_s], ...]
            "updated_at": str,
        },
        pk="id",
        not_null={"id", "kind"},
    )
    db["groups"].create_index(["kind"])
    if "group_id" not in db["photos"].columns_dict:
        db["photos"].add_column("group_id", str)
    db["photos"].create_index(["group_id"], if_not_exists=True)
    db["cull_frames"].create(
        {
            "path": str,
            "group_id": str,
            "rank": int,  # 0 = best; NULL in unranked groups
            "best": int,
            "reject": int,
            "value": float,
            "focus_ratio": float,
            "reasons": str,  # JSON list
            "checks": str,  # JSON FrameChecks.to_dict(), cached
            "checks_hash": str,  # content_hash the checks were measured on
            "updated_at": str,
        },
        pk="path",
        not_null={"path"},
    )
    db["cull_frames"].create_index(["group_id"])


def ensure_schema(db: sqlite_utils.Database) -> None:
    """The index's own migrations, then this feature's."""
    from photod.index import migrations as index_migrations

    index_migrations.apply(db)
    migrations.apply(db)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# -- files ------------------------------------------------------------------------------------


@dataclass
class AnalysedFiles:
    """Records of the files that could be read, their previews, and the ones that could not."""

    records: list[PhotoRecord] = field(default_factory=list)
    previews: list[np.ndarray] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, message)


def _analyse_one(path: str) -> tuple[dict[str, Any], FrameChecks, np.ndarray, np.ndarray]:
    from photod.decode import decode_image
    from photod.models.preprocess import resize_for_model

    image = decode_image(path, min_side=CHECK_MIN_SIDE)
    checks = analyse_frame(image.pixels)
    preview = preview_gray(image.pixels, PREVIEW_SIDE)
    # Only the 224 px model input is kept; the working copy is dropped at once.
    return image.exif, checks, preview, resize_for_model(image.pixels)


def analyse_files(
    paths: Iterable[str | os.PathLike[str]],
    scorer: Scorer,
    progress: Callable[[int], None] | None = None,
    workers: int | None = None,
) -> AnalysedFiles:
    """Decode, check and score every file; a file that fails is listed in `errors`, never raised.

    `progress(n)` is called as photos are done (one by one as their checks finish: the checks,
    not the batched scoring, are most of the time), so a bar moves even for a handful of photos.
    """
    out = AnalysedFiles()
    paths = [str(p) for p in paths]
    batch = max(1, scorer.batch_size)
    with ThreadPoolExecutor(workers or min(4, os.cpu_count() or 2)) as pool:
        for start in range(0, len(paths), batch):
            chunk = paths[start : start + batch]
            futures = [(p, pool.submit(_analyse_one, p)) for p in chunk]
            ready: list[tuple[str, Any]] = []
            for path, future in futures:
                try:
                    ready.append((path, future.result()))
                    if progress:
                        progress(1)
                except PhotodError as exc:
                    # Reported once, by the caller (`photod cull` prints its errors).
                    log.debug("%s", exc)
                    out.errors.append((path, exc.message_for(path)))
                    if progress:
                        progress(1)
                except Exception as exc:  # one odd file must not stop the cull
                    log.exception("unexpected error analysing %s", path)
                    out.errors.append((path, f"unexpected {type(exc).__name__}: {exc}"))
                    if progress:
                        progress(1)
            if ready:
                scores, embeddings = scorer.score_pixels([item[3] for _, item in ready])
                for (path, (exif, checks, preview, _)), score, emb in zip(
                    ready, scores, embeddings, strict=True
                ):
                    record = record_from_exif(
                        path, exif, float(score), emb, scorer.star_mapping.stars(float(score))
                    )
                    record.checks = checks
                    out.records.append(record)
                    out.previews.append(preview)
    return out


def cull_analysed(
    analysed: AnalysedFiles,
    grouping: GroupingConfig | None = None,
    ranking: RankingConfig | None = None,
) -> list[RankedGroup]:
    """Group and rank analysed files (panorama geometry from their previews)."""
    previews = analysed.previews
    geometry = ShiftEstimator(lambda i: previews[i])
    groups = group_photos(analysed.records, grouping, geometry)
    return [rank_group(g, analysed.records, ranking) for g in groups]


# -- index ------------------------------------------------------------------------------------

_ROW_COLUMNS = (
    "path, content_hash, score, stars, captured_at, capture_subsec, camera_make, camera_model, "
    "exposure_bias, exposure_time, embedding, group_id"
)


# Stored photos a new photo is compared with for near-duplicates (most recent first).
DUPLICATE_POOL_LIMIT = 5000
_PAGE = 1024


def _row_pages(db: sqlite_utils.Database, where: str = "") -> Iterator[list[dict]]:
    """The most recent DUPLICATE_POOL_LIMIT rows matching `where`, `_PAGE` rows at a time."""
    sql = f"SELECT {_ROW_COLUMNS} FROM photos WHERE status = 'ok' AND embedding IS NOT NULL"
    if where:
        sql += f" AND ({where})"
    sql += " ORDER BY id DESC LIMIT ? OFFSET ?"
    for offset in range(0, DUPLICATE_POOL_LIMIT, _PAGE):
        page = list(db.query(sql, [min(_PAGE, DUPLICATE_POOL_LIMIT - offset), offset]))
        if not page:
            return
        yield page


def _rows(db: sqlite_utils.Database, where: str = "", params: Sequence[Any] = ()) -> list[dict]:
    sql = f"SELECT {_ROW_COLUMNS} FROM photos WHERE status = 'ok' AND embedding IS NOT NULL"
    if where:
        sql += f" AND ({where})"
    return list(db.query(sql, list(params)))


def _preview_loader(records: Sequence[PhotoRecord]) -> Callable[[int], np.ndarray | None]:
    def load(i: int) -> np.ndarray | None:
        from photod.decode import decode_image

        try:
            image = decode_image(records[i].path, min_side=PREVIEW_SIDE // 2)
        except PhotodError as exc:
            log.info("cull: no preview for panorama check: %s", exc)
            return None
        return preview_gray(image.pixels, PREVIEW_SIDE)

    return load


def _cached_checks(
    db: sqlite_utils.Database, rows: dict[str, dict], paths: Sequence[str]
) -> dict[str, FrameChecks]:
    """Checks for `paths`: from `cull_frames` when measured on the same content, else measured
    now (decoded at working size) and cached."""
    from photod.decode import decode_image

    found: dict[str, FrameChecks] = {}
    if not paths:
        return found
    marks = ",".join("?" * len(paths))
    for row in db.query(
        f"SELECT path, checks, checks_hash FROM cull_frames WHERE path IN ({marks})", list(paths)
    ):
        if row["checks"] and row["checks_hash"] == rows[row["path"]].get("content_hash"):
            found[row["path"]] = FrameChecks.from_dict(json.loads(row["checks"]))
    for path in paths:
        if path in found:
            continue
        try:
            image = decode_image(path, min_side=CHECK_MIN_SIDE)
        except PhotodError as exc:
            log.warning("cull: cannot check %s", exc)
            continue
        found[path] = analyse_frame(image.pixels)
    return found


def _regroup(
    db: sqlite_utils.Database,
    rows: list[dict],
    grouping: GroupingConfig | None,
    ranking: RankingConfig | None,
    rank: bool,
    geometry: bool,
    wipe_all: bool = False,
) -> list[RankedGroup]:
    """Group `rows`, replace whatever groups they were in (every group: `wipe_all`), store the
    new ones."""
    records = [record_from_row(row) for row in rows]
    by_path = {row["path"]: row for row in rows}
    estimator = ShiftEstimator(_preview_loader(records)) if geometry else None
    groups = group_photos(records, grouping, estimator)

    if rank:
        ranked_paths = [records[i].path for g in groups if g.ranked for i in g.members]
        checks = _cached_checks(db, by_path, ranked_paths)
        for record in records:
            record.checks = checks.get(record.path)
    results = [rank_group(g, records, ranking) for g in groups]

    stamp = _now()
    old_ids = {row["group_id"] for row in rows if row.get("group_id")}
    paths = [row["path"] for row in rows]
    from photod.index import write_transaction

    with write_transaction(db):
        if wipe_all:
            # Also drops groups of photos since gone missing or failed.
            db.execute("UPDATE photos SET group_id = NULL WHERE group_id IS NOT NULL")
            db.execute("DELETE FROM cull_frames")
            db.execute("DELETE FROM groups")
            paths = []
            old_ids = set()
        for start in range(0, len(paths), 500):
            part = paths[start : start + 500]
            marks = ",".join("?" * len(part))
            db.execute(f"UPDATE photos SET group_id = NULL WHERE path IN ({marks})", part)
            db.execute(f"DELETE FROM cull_frames WHERE path IN ({marks})", part)
        old = sorted(old_ids)
        for start in range(0, len(old), 500):
            part = old[start : start + 500]
            db.execute(f"DELETE FROM groups WHERE id IN ({','.join('?' * len(part))})", part)
        group_rows, frame_rows, assignments = [], [], []
        for result in results:
            group = result.group
            members = [records[i].path for i in group.members]
            gid = group_key(members)
            best = [records[i].path for i in result.best]
            group_rows.append(
                {
                    "id": gid,
                    "kind": group.kind,
                    "size": len(members),
                    "best_path": best[0] if best else None,
                    "first_captured": by_path[members[0]].get("captured_at"),
                    "links": json.dumps(
                        [
                            [
                                records[lk.a].path,
                                records[lk.b].path,
                                lk.kind,
                                round(lk.similarity, 4),
                                lk.gap_s,
                            ]
                            for lk in group.links
                        ]
                    ),  # fmt: skip
                    "updated_at": stamp,
                }
            )
            for position, frame in enumerate(result.frames):
                record = records[frame.index]
                assignments.append((gid, record.path))
                frame_rows.append(
                    {
                        "path": record.path,
                        "group_id": gid,
                        "rank": position if group.ranked else None,
                        "best": int(frame.best),
                        "reject": int(frame.reject),
                        "value": round(frame.value, 4) if group.ranked else None,
                        "focus_ratio": frame.focus_ratio,
                        "reasons": json.dumps(frame.reasons),
                        "checks": json.dumps(record.checks.to_dict()) if record.checks else None,
                        "checks_hash": by_path[record.path].get("content_hash")
                        if record.checks
                        else None,
                        "updated_at": stamp,
                    }
                )
        # Plain executemany: sqlite-utils' upsert_all costs ~1.7 s per 10,000 rows here.
        _insert_or_replace(db, "groups", group_rows)
        _insert_or_replace(db, "cull_frames", frame_rows)
        db.conn.executemany("UPDATE photos SET group_id = ? WHERE path = ?", assignments)
    return results


def _insert_or_replace(db: sqlite_utils.Database, table: str, rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    sql = (
        f"INSERT OR REPLACE INTO [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
        f"VALUES ({', '.join('?' * len(columns))})"
    )
    db.conn.executemany(sql, [[row[c] for c in columns] for row in rows])


def rebuild_groups(
    db: sqlite_utils.Database,
    folder: str | os.PathLike[str] | None = None,
    grouping: GroupingConfig | None = None,
    ranking: RankingConfig | None = None,
    rank: bool = True,
    geometry: bool = True,
) -> list[RankedGroup]:
    """Regroup every scored photo of the index (or those under `folder`) from stored embeddings."""
    ensure_schema(db)
    if folder is None:
        return _regroup(db, _rows(db), grouping, ranking, rank, geometry, wipe_all=True)
    else:
        prefix = os.path.abspath(folder).rstrip(os.sep) + os.sep
        rows = _rows(db, "substr(path, 1, ?) = ?", [len(prefix), prefix])
        # Groups that straddle the folder boundary are regrouped whole.
        rows = _with_group_mates(db, rows)
    return _regroup(db, rows, grouping, ranking, rank, geometry)


def _with_group_mates(db: sqlite_utils.Database, rows: list[dict]) -> list[dict]:
    have = {row["path"] for row in rows}
    ids = sorted({row["group_id"] for row in rows if row.get("group_id")})
    for start in range(0, len(ids), 500):
        part = ids[start : start + 500]
        marks = ",".join("?" * len(part))
        for row in _rows(db, f"group_id IN ({marks})", part):
            if row["path"] not in have:
                have.add(row["path"])
                rows.append(row)
    return rows


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def update_groups_for(
    db: sqlite_utils.Database,
    paths: Iterable[str | os.PathLike[str]],
    grouping: GroupingConfig | None = None,
    ranking: RankingConfig | None = None,
    rank: bool = True,
    geometry: bool = True,
) -> list[RankedGroup]:
    """Regroup the neighbourhood of newly indexed `paths` (for the daemon, after each batch).

    The neighbourhood: photos of the same camera within the longest link gap of a new photo,
    chained until no new photo joins; the other members of their current groups; and, for
    near-duplicates, untimed photos (or any photo, for an untimed new one) similar enough.
    Returns the groups that now contain a new photo.
    """
    ensure_schema(db)
    config = grouping or GroupingConfig()
    wanted = [os.path.abspath(p) for p in paths]
    if not wanted:
        return []
    new_rows: dict[str, dict] = {}
    for start in range(0, len(wanted), 500):
        part = wanted[start : start + 500]
        marks = ",".join("?" * len(part))
        for row in _rows(db, f"path IN ({marks})", part):
            new_rows[row["path"]] = row
    if not new_rows:
        return []
    window = max(config.burst_gap_s, config.bracket_gap_s, config.panorama_gap_s) + 1.0

    rows: dict[str, dict] = dict(new_rows)
    frontier = list(new_rows.values())
    while frontier:
        grown: list[dict] = []
        for row in frontier:
            record = record_from_row({**row, "embedding": None})
            if record.captured is None:
                continue
            lo, hi = _iso(record.captured - window), _iso(record.captured + window)
            near = _rows(
                db,
                "captured_at BETWEEN ? AND ? AND coalesce(camera_make, '') = ? "
                "AND coalesce(camera_model, '') = ?",
                [lo, hi, row.get("camera_make") or "", row.get("camera_model") or ""],
            )
            for other in near:
                if other["path"] not in rows:
                    rows[other["path"]] = other
                    grown.append(other)
        frontier = grown

    # Near-duplicates: untimed photos for any new photo; every photo for an untimed new one —
    # the most recent DUPLICATE_POOL_LIMIT of them, read a page at a time, so a large index
    # costs neither all its embeddings in memory nor a full scan per batch.
    untimed_new = any(row.get("captured_at") is None for row in new_rows.values())
    pages = _row_pages(db, "" if untimed_new else "captured_at IS NULL")
    new_records = [record_from_row(row) for row in new_rows.values()]
    size = new_records[0].embedding.shape[0]  # type: ignore[union-attr]
    mine = np.stack([r.embedding for r in new_records if r.embedding.shape[0] == size])  # type: ignore[union-attr]
    mine /= np.linalg.norm(mine, axis=1, keepdims=True) + 1e-12
    for page in pages:
        # Rows embedded by another backbone (a different size) cannot be compared.
        part = [
            row
            for row in page
            if row["path"] not in rows and len(row["embedding"]) == mine.shape[1] * 2
        ]
        if not part:
            continue
        theirs = np.stack([record_from_row(row).embedding for row in part])
        theirs /= np.linalg.norm(theirs, axis=1, keepdims=True) + 1e-12
        close = (theirs @ mine.T).max(axis=1) >= config.duplicate_similarity
        for row, hit in zip(part, close, strict=True):
            if hit:
                rows[row["path"]] = row

    all_rows = _with_group_mates(db, list(rows.values()))
    results = _regroup(db, all_rows, grouping, ranking, rank, geometry)
    touched = set(new_rows)
    return [r for r in results if any(all_rows[i]["path"] in touched for i in r.group.members)]


def load_groups(
    db: sqlite_utils.Database, folder: str | os.PathLike[str] | None = None
) -> list[dict[str, Any]]:
    """Stored groups with their frames (best first in ranked groups), for display."""
    if not db["groups"].exists():
        return []
    groups = {row["id"]: {**row, "frames": []} for row in db.query("SELECT * FROM groups")}
    frames = db.query(
        "SELECT f.*, p.score, p.stars FROM cull_frames f LEFT JOIN photos p ON p.path = f.path "
        "ORDER BY f.group_id, f.rank IS NULL, f.rank, f.path"
    )
    for frame in frames:
        group = groups.get(frame["group_id"])
        if group is not None:
            frame["reasons"] = json.loads(frame["reasons"] or "[]")
            frame.pop("checks", None)
            group["frames"].append(frame)
    out = list(groups.values())
    if folder is not None:
        prefix = os.path.abspath(folder).rstrip(os.sep) + os.sep
        out = [g for g in out if any(f["path"].startswith(prefix) for f in g["frames"])]
    out.sort(key=lambda g: (g["first_captured"] or "~", g["id"]))
    return out
