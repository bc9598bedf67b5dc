"""The `suggestions` table of the index: one stored suggestion per photo path.

It has its own migration set, `Migrations("photod.suggest")`, applied by `ensure_schema` on the
first save, so the index works without it and this feature adds it only when used. Rows keep the
searchable numbers in columns (gain, suggested, exposure_ev, crop) and the whole `--json` object
in `payload`, so `load_suggestion` gives back exactly what `photod suggest --json` printed.
Readers never create the table: on an index without suggestions they get None.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import sqlite_utils
from sqlite_utils.migrations import Migrations

if TYPE_CHECKING:
    from photod.suggest import Suggestion

migrations = Migrations("photod.suggest")
TABLE = "suggestions"


@migrations()
def m001_suggestions(db: sqlite_utils.Database) -> None:
    db[TABLE].create(
        {
            "path": str,
            "model": str,
            "score_before": float,
            "score_after": float,
            "gain": float,
            "suggested": int,
            "exposure_ev": float,
            "angle": float,
            "crop": str,  # JSON [l, t, r, b] or NULL
            "edits": str,  # JSON list of {enhancer, params, gain}
            "crs": str,  # JSON Camera Raw settings
            "payload": str,  # the whole Suggestion.to_dict()
            "created_at": str,
        },
        pk="path",
        not_null={"path", "payload"},
    )
    db[TABLE].create_index(["suggested", "gain"])


def _database(db: sqlite_utils.Database | str | os.PathLike[str]) -> sqlite_utils.Database:
    if isinstance(db, sqlite_utils.Database):
        return db
    from photod.index import open_index

    return open_index(db)


def ensure_schema(db: sqlite_utils.Database) -> None:
    """Apply the pending migrations of the `photod.suggest` set."""
    migrations.apply(db)


def save_suggestion(
    db: sqlite_utils.Database | str | os.PathLike[str], path: str, suggestion: Suggestion
) -> None:
    """Store (replace) the suggestion for `path`; `db` is an open index or its file path."""
    from photod.index import now_iso

    database = _database(db)
    ensure_schema(database)
    payload = suggestion.to_dict()
    payload["path"] = str(path)
    row = {
        "path": str(path),
        "model": payload["model"],
        "score_before": payload["score_before"],
        "score_after": payload["score_after"],
        "gain": payload["gain"],
        "suggested": int(bool(payload["suggested"])),
        "exposure_ev": payload["exposure_ev"],
        "angle": payload["angle"],
        "crop": None if payload["crop"] is None else json.dumps(payload["crop"]),
        "edits": json.dumps(payload["edits"]),
        "crs": json.dumps(payload["crs"]),
        "payload": json.dumps(payload),
        "created_at": now_iso(),
    }
    with database.conn:
        database[TABLE].upsert(row, pk="path")


class StoredSuggestion(dict):
    """A stored suggestion: the `--json` object as a dict, with the same `to_dict` as the live one."""

    def to_dict(self) -> dict[str, Any]:
        return dict(self)

    @property
    def worthwhile(self) -> bool:
        return bool(self.get("suggested"))


def load_suggestion(
    db: sqlite_utils.Database | str | os.PathLike[str], path: str
) -> StoredSuggestion | None:
    """The stored suggestion for `path` (with `created_at`), or None (also on an old index)."""
    database = _database(db)
    if not database[TABLE].exists():
        return None
    rows = list(database.query(f"select payload, created_at from {TABLE} where path = ?", [path]))
    if not rows:
        return None
    stored = StoredSuggestion(json.loads(rows[0]["payload"]))
    stored["created_at"] = rows[0]["created_at"]
    return stored


def suggested_paths(db: sqlite_utils.Database, min_gain: float = 0.0) -> list[dict[str, Any]]:
    """Photos with a worthwhile suggestion (gain above the margin it was made with), best first."""
    if not db[TABLE].exists():
        return []
    sql = (
        f"select path, gain, score_before, score_after, exposure_ev, crop, model from {TABLE} "
        "where suggested = 1 and gain >= ? order by gain desc"
    )
    rows = []
    for row in db.query(sql, [min_gain]):
        row = dict(row)
        row["crop"] = None if row["crop"] is None else json.loads(row["crop"])
        rows.append(row)
    return rows


def attach_suggestions(
    db: sqlite_utils.Database, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Add `suggestion` (gain, scores, exposure EV, crop; None when there is none) to index rows.

    Lives here, not in `photod.index`, so the index knows nothing of this feature's table.
    """
    by_path = {row.pop("path"): row for row in suggested_paths(db)}
    for row in rows:
        row["suggestion"] = by_path.get(row["path"])
    return rows
