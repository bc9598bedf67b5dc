"""Index writes from several processes at once wait for each other instead of failing with
"database is locked" (issue 16, finding 8): real processes on one real SQLite file in WAL mode."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

WRITER = textwrap.dedent(
    """
    import sys, time
    from photod.index import mark_missing, move_photo, open_index, upsert_photo, get_by_path
    db_path, role, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
    db = open_index(db_path)
    while time.time() < start_at:
        time.sleep(0.001)
    for i in range(300):
        path = f"/photos/p{i % 7}.jpg"
        # Each of these reads, then writes, in one transaction.
        upsert_photo(db, {"path": path, "status": "ok", "score": float(i), "size": i})
        if role == "daemon" and i % 5 == 0:
            row = get_by_path(db, path)
            move_photo(db, row["id"], f"/photos/moved-{i}.jpg", {"status": "ok"})
        if role == "cli" and i % 3 == 0:
            mark_missing(db, [path])
    db.close()
    print("done")
    """
)


def test_concurrent_writers_never_see_database_locked(tmp_path: Path):
    from photod.index import open_index

    db_path = tmp_path / "index.db"
    open_index(db_path).close()  # migrations applied once, before the race
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    start_at = time.time() + 3.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(db_path), role, str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for role in ("daemon", "cli", "web", "cli")
    ]
    outputs = [proc.communicate(timeout=180) for proc in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert "database is locked" not in err, err[-2000:]
        assert proc.returncode == 0, err[-2000:]
        assert out.strip() == "done"
