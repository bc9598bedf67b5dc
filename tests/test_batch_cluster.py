"""`photod batch` as real processes: the driver killed mid-run (SIGKILL) and re-run, and a
two-node `ray.cluster_utils.Cluster` losing its worker node mid-run. Every photo ends up with
exactly one row."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import photos

pytestmark = pytest.mark.slow
SAMPLES = ("chelsea", "coffee", "astronaut", "rocket", "camera")
PHOTOS = 24


@pytest.fixture(scope="module")
def ray_module():
    if os.environ.get("CI"):
        import ray  # .ci/run installs the extra: missing is a failure there
    else:
        ray = pytest.importorskip("ray", reason="needs the extra: pip install -e '.[ray]'")
    return ray


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 real photos, big enough (about 1,500 px) that a run takes a few seconds."""
    folder = tmp_path_factory.mktemp("archive")
    for i in range(PHOTOS):
        photos.write_jpeg(folder / f"photo_{i:02d}.jpg", photos.real_photo(SAMPLES[i % 5], 2.5))
    return folder


def _batch_command(archive: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "photod", "batch", str(archive), "--out", str(out),
            "--shard-size", "2", "--decode-batch", "2", "--batch-size", "2", "--json",
            *extra]  # fmt: skip


def _shards(out: Path) -> list[Path]:
    from photod.batch import shard_paths

    return shard_paths(out)


def _wait_for_shards(process: subprocess.Popen, out: Path, count: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = len(_shards(out))
        if found >= count:
            return found
        assert process.poll() is None, "the job ended before it could be interrupted"
        time.sleep(0.05)
    raise AssertionError(f"no {count} shards after {timeout} s")


def _descendants(process: subprocess.Popen) -> list:
    import psutil

    try:
        return psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _signal_all(processes: list, signum: int) -> None:
    import psutil

    for process in processes:
        try:
            process.send_signal(signum)
        except psutil.NoSuchProcess:
            pass


def _kill_all(process: subprocess.Popen, others: list) -> None:
    """SIGKILL whatever is left of the job we started: its process group, and the Ray processes
    it spawned (Ray workers start sessions of their own)."""
    import psutil

    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for child in others:
        try:
            child.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(others, timeout=30)


def _summary(stdout: str) -> dict:
    return json.loads([line for line in stdout.splitlines() if line.startswith('{"out"')][-1])


def _check_exactly_once(out: Path, archive: Path) -> int:
    """Every photo once in the results; returns the raw row count over all shards."""
    import pyarrow.parquet as pq

    from photod.batch import read_results

    rows = read_results(out).to_pylist()
    assert sorted(Path(r["path"]).name for r in rows) == sorted(
        p.name for p in archive.glob("*.jpg")
    )
    assert all(r["status"] == "ok" and r["score"] is not None for r in rows)
    return sum(pq.read_metadata(shard).num_rows for shard in _shards(out))


def test_driver_killed_mid_run_then_rerun_gives_one_row_per_photo(
    ray_module, archive: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    # The decode-task layout, whose shards reach the disk one by one: with the decoding actor
    # (the one-machine default) all 24 photos are one actor call and their shards land close
    # together, so a kill after the first one may find nothing left to resume.
    command = _batch_command(archive, out, "--num-cpus", "2", "--no-progress", "--decode", "tasks")
    job = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True
    )
    ray_processes: list = []
    try:
        at_kill = _wait_for_shards(job, out, 1, timeout=240)
        ray_processes = _descendants(job)
        # Everything frozen at once first: shards written by the workers in the moment between
        # the driver's kill and theirs made a kill after the first shard find all of them done.
        _signal_all(ray_processes, signal.SIGSTOP)
        os.kill(job.pid, signal.SIGKILL)  # the driver, with no chance to clean up
        job.wait(timeout=30)
    finally:
        # The local Ray it started, so that nothing writes behind the re-run's back.
        _kill_all(job, ray_processes)
    assert at_kill < PHOTOS // 2, "the kill came after the job had finished"
    done_before = len(_check_partial(out))
    assert 0 < done_before < PHOTOS

    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    summary = _summary(rerun.stdout)
    assert summary["already_done"] == done_before
    assert summary["photos"] == PHOTOS - done_before
    # Exactly once: not only after de-duplication, but in the shards themselves.
    assert _check_exactly_once(out, archive) == PHOTOS


def _check_partial(out: Path) -> list[dict]:
    from photod.batch import read_results

    rows = read_results(out).to_pylist()
    assert len({r["path"] for r in rows}) == len(rows)
    return rows


def test_two_node_cluster_losing_a_node_mid_run_still_scores_every_photo(
    ray_module, archive: Path, tmp_path: Path
) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 2, "include_dashboard": False},
    )
    try:
        worker = cluster.add_node(num_cpus=2)
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        command = _batch_command(archive, out, "--address", cluster.address, "--actors", "1")
        job = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            _wait_for_shards(job, out, 1, timeout=240)
            cluster.remove_node(worker)  # its raylet, workers and objects are gone at once
            stdout, stderr = job.communicate(timeout=400)
        finally:
            _kill_all(job, [])
        assert job.returncode == 0, stderr[-3000:]
        summary = _summary(stdout)
        assert summary["listed"] == PHOTOS and summary["errors"] == 0
        # Counted from the shards on disk: every photo once, whatever was retried.
        assert summary["photos"] == summary["ok"] == PHOTOS, summary
        assert _check_exactly_once(out, archive) >= PHOTOS  # a retried task may repeat rows
    finally:
        cluster.shutdown()
