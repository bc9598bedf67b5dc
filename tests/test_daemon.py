"""`photod watch` as a real process on real folders with real inotify: slow writers, moves,
deletes, catch-up after downtime, SIGTERM, one daemon per index, polling.

`DaemonProcess` is shared with the other test_daemon_* files.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from photod.index import open_index
from tests import photos

PHOTOD = str(Path(sys.executable).with_name("photod"))


class DaemonProcess:
    """`photod watch --json` in a subprocess; collects its JSON lines and its log lines."""

    def __init__(
        self,
        folders: list[Path],
        db: Path,
        *extra: str,
        settle: float = 0.3,
        env: dict[str, str] | None = None,
    ) -> None:
        self.command = [
            PHOTOD, "watch", *map(str, folders), "--db", str(db), "--device", "cpu",
            "--settle-seconds", str(settle), "--log-level", "info", "--json", *extra,
        ]  # fmt: skip
        env = {**os.environ, "PHOTOD_SUMMARY_INTERVAL": "2", "PYTHONUNBUFFERED": "1", **(env or {})}
        self.proc = subprocess.Popen(
            self.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.results: list[dict] = []
        self.log: list[str] = []
        self._lock = threading.Lock()
        self._readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, is_json: bool) -> None:
        for line in stream:
            with self._lock:
                if is_json:
                    self.results.append(json.loads(line))
                else:
                    self.log.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_text(self) -> str:
        with self._lock:
            return "\n".join(self.log)

    def results_for(self, path: Path) -> list[dict]:
        with self._lock:
            return [r for r in self.results if r["path"] == str(path)]

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            if self.proc.poll() is not None:
                time.sleep(0.3)  # let the readers drain
                if predicate():
                    return
                raise AssertionError(f"daemon exited ({self.proc.returncode}) before {what}:\n"
                                     + self.log_text()[-3000:])  # fmt: skip
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}; log:\n" + self.log_text()[-3000:])

    def wait_ready(self, timeout: float = 120) -> None:
        self.wait_for(lambda: "watching " in self.log_text(), timeout, "the daemon to be ready")

    def wait_result(self, path: Path, timeout: float = 60, count: int = 1) -> dict:
        self.wait_for(lambda: len(self.results_for(path)) >= count, timeout, f"a result for {path}")
        return self.results_for(path)[count - 1]

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        code = self.proc.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=5)
        return code

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=30)

    def __enter__(self) -> DaemonProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.kill()


def run_once(*args: str, returncode: int = 0) -> list[dict]:
    """`photod watch --once --json ARGS`: catch up and exit; returns the JSON lines."""
    out = subprocess.run(
        [PHOTOD, "watch", "--once", "--json", "--settle-seconds", "0.2", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == returncode, out.stderr[-3000:]
    return [json.loads(line) for line in out.stdout.splitlines()]


def rows_by_name(db_path: Path) -> dict[str, dict]:
    db = open_index(db_path)
    try:
        return {Path(r["path"]).name: r for r in db.query("SELECT * FROM photos")}
    finally:
        db.close()


def sha256(data: bytes) -> str:
    """The index's content hash, computed independently of photod."""
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory):
    """One daemon for the tests below (a start costs seconds of CPU): each test uses its own
    sub-folder of the watched root; the last test stops it with SIGTERM."""
    root = tmp_path_factory.mktemp("watched")
    db_path = root.parent / (root.name + "-index.db")
    daemon = DaemonProcess([root], db_path, "--group")
    daemon.wait_ready()
    daemon.root = root  # type: ignore[attr-defined]
    daemon.db_path = db_path  # type: ignore[attr-defined]
    yield daemon
    if daemon.proc.poll() is None:
        daemon.kill()


def test_slow_write_is_scored_once_after_it_is_complete(shared, tmp_path: Path) -> None:
    folder = shared.root / "slow"
    folder.mkdir()
    source = photos.write_jpeg(tmp_path / "source.jpg", photos.real_photo("astronaut", 0.6))
    data = source.read_bytes()
    target = folder / "slow.jpg"
    # One handle, six chunks over about 3 s: like a copy from a slow card reader.
    with open(target, "wb") as handle:
        step = len(data) // 6 + 1
        for start in range(0, len(data), step):
            handle.write(data[start : start + step])
            handle.flush()
            time.sleep(0.5)
            assert not shared.results_for(target), "scored while still being written"
    result = shared.wait_result(target)
    assert result["action"] == "scored" and result["status"] == "ok"
    assert result["written"] == [str(target)]
    # photod's own write must not look like a new photo: nothing more arrives.
    time.sleep(3)
    assert len(shared.results_for(target)) == 1, shared.results_for(target)
    row = rows_by_name(shared.db_path)["slow.jpg"]
    assert row["original_hash"] == sha256(data)  # scored as the complete file
    assert row["content_hash"] == sha256(target.read_bytes())
    assert row["status"] == "ok"


def test_moves_deletes_and_status(shared, tmp_path: Path) -> None:
    folder = shared.root / "moves"
    folder.mkdir()
    first = photos.write_jpeg(folder / "first.jpg", photos.real_photo("chelsea", 0.4))
    second = photos.write_jpeg(folder / "second.jpg", photos.real_photo("coffee", 0.4))
    scored = shared.wait_result(first)
    shared.wait_result(second)

    status = subprocess.run(
        [PHOTOD, "status", "--db", str(shared.db_path), "--json"], capture_output=True, text=True
    )
    report = json.loads(status.stdout)
    assert report["daemon"]["running"] and report["daemon"]["pid"] == shared.pid
    assert report["daemon"]["folders"] == [str(shared.root)]

    renamed = folder / "renamed.jpg"
    os.rename(first, renamed)
    moved = shared.wait_result(renamed)
    assert moved["action"] == "moved" and moved["moved_from"] == str(first)
    assert moved["score"] == scored["score"]
    os.unlink(second)
    assert shared.wait_result(second, count=2)["action"] == "missing"

    # A folder of photos moved in from elsewhere (no close events come for its files).
    outside = tmp_path / "card" / "DCIM"
    outside.mkdir(parents=True)
    for i, name in enumerate(("rocket", "astronaut")):
        photos.write_jpeg(outside / f"IMG_{i}.JPG", photos.real_photo(name, 0.3))
    os.rename(outside, folder / "DCIM")
    for i in range(2):
        assert shared.wait_result(folder / "DCIM" / f"IMG_{i}.JPG")["action"] == "scored"

    # Hidden files, sidecars and non-photos are ignored entirely.
    photos.write_jpeg(folder / ".hidden.jpg", photos.real_photo("chelsea", 0.35))
    (folder / "notes.txt").write_text("not a photo")
    (folder / "IMG_9.JPG.xmp").write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    time.sleep(3)
    for name in (".hidden.jpg", "notes.txt", "IMG_9.JPG.xmp"):
        assert not shared.results_for(folder / name)

    rows = {n: r for n, r in rows_by_name(shared.db_path).items() if "/moves/" in r["path"]}
    assert {n: r["status"] for n, r in rows.items()} == {
        "renamed.jpg": "ok", "second.jpg": "missing", "IMG_0.JPG": "ok", "IMG_1.JPG": "ok",
    }  # fmt: skip


def test_bursts_are_grouped_as_they_arrive(shared) -> None:
    folder = shared.root / "burst"
    folder.mkdir()
    base = photos.real_photo("chelsea", 0.5)
    # Three frames of one moment (same camera and capture time), the subject shifting a little.
    frames = [folder / f"frame_{i}.jpg" for i in range(3)]
    for i, path in enumerate(frames):
        photos.write_jpeg(path, np.ascontiguousarray(np.roll(base, 3 * i, axis=1)))
    single = photos.write_jpeg(folder / "other.jpg", photos.real_photo("rocket", 0.4),
                               model="Other Camera")  # fmt: skip
    for path in [*frames, single]:
        shared.wait_result(path)

    def grouped() -> dict[str, str | None]:
        db = open_index(shared.db_path)
        try:
            if "group_id" not in db["photos"].columns_dict:
                return {}
            rows = db.query("SELECT path, group_id FROM photos WHERE folder = ?", [str(folder)])
            return {Path(r["path"]).name: r["group_id"] for r in rows}
        finally:
            db.close()

    shared.wait_for(lambda: len({grouped().get(p.name) for p in frames} - {None}) == 1, 60,
                    "the three frames to share a group")  # fmt: skip
    groups = grouped()
    assert groups["other.jpg"] != groups["frame_0.jpg"]


def test_one_daemon_per_index(shared) -> None:
    second = subprocess.run(
        [PHOTOD, "watch", str(shared.root), "--db", str(shared.db_path), "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert f"pid {shared.pid}" in second.stderr and "already" in second.stderr
    assert shared.proc.poll() is None


def test_sigterm_finishes_flushes_and_exits_0(shared) -> None:
    folder = shared.root / "last"
    folder.mkdir()
    path = photos.write_jpeg(folder / "last.jpg", photos.real_photo("coffee", 0.3))
    shared.wait_result(path)
    assert shared.stop(signal.SIGTERM) == 0
    assert "SIGTERM received" in shared.log_text() and "stopped" in shared.log_text()
    assert "summary:" in shared.log_text()
    status = subprocess.run(
        [PHOTOD, "status", "--db", str(shared.db_path), "--json"], capture_output=True, text=True
    )
    report = json.loads(status.stdout)
    assert not report["daemon"]["running"] and report["daemon"]["stopped_at"]
    # The WAL was folded back into the database on exit.
    wal = shared.db_path.with_name(shared.db_path.name + "-wal")
    assert not wal.exists() or wal.stat().st_size == 0


def test_catch_up_after_downtime_with_embedded_defaults(tmp_path: Path) -> None:
    """No flags: folders from config.toml, the shipped model, the index in the user data dir."""
    from photod.config import config_path
    from photod.paths import default_db_path

    folder = tmp_path / "import"
    (folder / "sub").mkdir(parents=True)
    config_path().parent.mkdir(parents=True, exist_ok=True)
    config_path().write_text(f"folders = [{json.dumps(str(folder))}]\n")
    names = {"a.jpg": "chelsea", "b.jpg": "coffee", "sub/c.jpg": "rocket", "d.jpg": "astronaut"}
    for name, sample in names.items():
        photos.write_jpeg(folder / name, photos.real_photo(sample, 0.3))
    (folder / ".hidden.jpg").write_bytes((folder / "a.jpg").read_bytes())
    (folder / "notes.txt").write_text("not a photo")
    first = {Path(r["path"]).name: r["action"] for r in run_once()}
    assert first == {"a.jpg": "scored", "b.jpg": "scored", "c.jpg": "scored", "d.jpg": "scored"}
    db_path = default_db_path()
    before = rows_by_name(db_path)

    # While the daemon is down: a new photo, a deleted one, a renamed one, an edited one.
    photos.write_jpeg(folder / "new.jpg", photos.real_photo("chelsea", 0.45))
    os.unlink(folder / "b.jpg")
    os.rename(folder / "sub" / "c.jpg", folder / "c-renamed.jpg")
    photos.write_jpeg(folder / "d.jpg", photos.real_photo("chelsea", 0.5))
    second = {Path(r["path"]).name: r["action"] for r in run_once()}
    assert second == {"new.jpg": "scored", "c-renamed.jpg": "moved", "d.jpg": "scored"}
    after = rows_by_name(db_path)
    assert set(after) == {"a.jpg", "b.jpg", "c-renamed.jpg", "d.jpg", "new.jpg"}
    assert after["b.jpg"]["status"] == "missing"
    assert after["c-renamed.jpg"]["id"] == before["c.jpg"]["id"]
    assert after["c-renamed.jpg"]["scored_at"] == before["c.jpg"]["scored_at"]
    assert after["d.jpg"]["id"] == before["d.jpg"]["id"]
    assert after["d.jpg"]["score"] != before["d.jpg"]["score"]
    assert after["a.jpg"]["updated_at"] == before["a.jpg"]["updated_at"]  # untouched

    # A third run finds nothing to do: each photo was processed exactly once.
    assert run_once() == []


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [PHOTOD, "watch", str(tmp_path / "nope"), "--db", str(tmp_path / "i.db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "nope" in result.stderr and "Traceback" not in result.stderr
    no_folders = subprocess.run(
        [PHOTOD, "watch", "--db", str(tmp_path / "i.db")], capture_output=True, text=True
    )
    assert no_folders.returncode == 1 and "no folder to watch" in no_folders.stderr


def test_polling_mode_watches_several_folders(tmp_path: Path) -> None:
    shares = [tmp_path / "share-a", tmp_path / "share-b"]
    for share in shares:
        share.mkdir()
    with DaemonProcess(shares, tmp_path / "index.db", "--polling") as daemon:
        daemon.wait_ready()
        dropped = [
            photos.write_jpeg(shares[0] / "polled.jpg", photos.real_photo("rocket", 0.3)),
            photos.write_jpeg(shares[1] / "also.jpg", photos.real_photo("coffee", 0.3)),
        ]
        for path in dropped:
            assert daemon.wait_result(path)["action"] == "scored"
        assert "polling" in daemon.log_text()
        assert daemon.stop() == 0
