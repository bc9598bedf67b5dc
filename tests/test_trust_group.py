"""`watch --group` on a large index (issue 16, finding 12): a new photo without capture time is
compared with a bounded number of stored embeddings, a page at a time, never with every row's
embedding loaded at once. A real SQLite index with 20,000 rows."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np

from photod.index import embedding_blob, open_index


def test_untimed_new_photo_loads_a_bounded_number_of_embeddings(tmp_path: Path):
    from photod.cull_store import update_groups_for

    db = open_index(tmp_path / "index.db")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(20_000):
        rows.append(
            {
                "path": f"/photos/old/{i:05d}.jpg",
                "folder": "/photos/old",
                "filename": f"{i:05d}.jpg",
                "status": "ok",
                "score": 3.0,
                "stars": 3,
                "content_hash": f"{i:032x}",
                "embedding": embedding_blob(rng.standard_normal(1280)),
            }
        )
    db["photos"].insert_all(rows, batch_size=2000)
    new = rows[0]["embedding"]  # a near-duplicate of one of the most recent old photos...
    db["photos"].insert(
        {"path": "/photos/new.jpg", "status": "ok", "score": 3.5, "stars": 4, "embedding": new,
         "content_hash": "f" * 32}
    )  # fmt: skip
    old_duplicate = db["photos"].insert(
        {"path": "/photos/old/twin.jpg", "status": "ok", "score": 3.0, "stars": 3,
         "embedding": new, "content_hash": "e" * 32}
    ).last_pk  # fmt: skip
    assert old_duplicate
    tracemalloc.start()
    try:
        update_groups_for(db, ["/photos/new.jpg"], rank=False, geometry=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        # 20,000 embeddings as rows are ~70 MB in Python; a bounded page of them is a few MB.
        assert peak < 30_000_000, f"peak {peak / 1e6:.0f} MB"
        # The near-duplicate among the recent photos is still found.
        ids = {
            row["path"]: row["group_id"]
            for row in db.query(
                "SELECT path, group_id FROM photos WHERE path IN (?, ?)",
                ["/photos/new.jpg", "/photos/old/twin.jpg"],
            )
        }
        assert ids["/photos/new.jpg"] is not None
        assert ids["/photos/new.jpg"] == ids["/photos/old/twin.jpg"]
    finally:
        db.close()
