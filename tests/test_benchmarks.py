"""Smoke test of `python -m benchmarks` on tiny inputs: every benchmark runs and reports sanely.

No timing is asserted (speed is the benchmark's business, not a unit test's); what is checked is
that the benchmarks measure what they claim: every photo was really scored, rated (read back by
exiftool) and indexed, the daemon really rated the dropped photos, the JSON file holds the table.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest

from benchmarks import inputs


def test_generated_jpegs_are_distinct_camera_files(tmp_path: Path) -> None:
    jpegs = inputs.make_jpeg_set((320, 213), distinct=2)
    paths = [jpegs.write(i, tmp_path) for i in range(5)]
    data = [p.read_bytes() for p in paths]
    assert len(set(data)) == 5  # distinct bytes: the index must not treat them as copies
    out = subprocess.run(
        ["exiftool", "-j", "-Make", "-Orientation#", "-ImageUniqueID", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    tags = json.loads(out)
    assert [t["Make"] for t in tags] == ["Canon"] * 5
    assert [t["Orientation"] for t in tags] == [1, 1, 1, 1, 6]
    assert len({t["ImageUniqueID"] for t in tags}) == 5
    from photod.decode import decode_image

    upright = decode_image(paths[4])
    assert upright.original_size == (213, 320)  # orientation 6 applied


def test_throughput_scoring_and_formats_quick(tmp_path: Path) -> None:
    from benchmarks.__main__ import main

    out = tmp_path / "results.json"
    rc = main(
        [
            "throughput",
            "scoring",
            "formats",
            "--quick",
            "--workdir",
            str(tmp_path),
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    results = json.loads(out.read_text())
    assert results["machine"]["cores"] >= 1
    throughput = results["throughput"]
    assert throughput["actions_last_run"] == {"ok": 6}  # `photod score`: six scored
    for kind in ("smooth", "grainy"):
        pipelines = throughput["kinds"][kind]["pipelines"]
        assert pipelines["auto"]["actions_last_run"] == {"scored": 6}
        assert pipelines["auto"]["speedup"] > 0
    assert throughput["photod_photos_per_s"]["median"] > 0
    assert throughput["naive_photos_per_s"]["median"] > 0
    assert throughput["speedup"] > 0
    stages = throughput["breakdown_ms_per_photo"]
    for key in ("decode_dct_scaled", "preprocess", "inference_batch1", "index_upsert"):
        assert stages[key] > 0
    # Both pipelines score the same photos with the same model: close, though not identical.
    assert throughput["score_difference_vs_naive"]["photos"] == 2
    assert throughput["score_difference_vs_naive"]["max_abs"] < 0.5
    # The last photod run really wrote ratings (exiftool reads them) and an index row each.
    folder = tmp_path / "runs" / "grainy-auto"
    out = subprocess.run(
        ["exiftool", "-j", "-XMP:Rating", *map(str, sorted(folder.glob("*.jpg")))],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ratings = [tags.get("Rating") for tags in json.loads(out)]
    assert len(ratings) == 6 and all(isinstance(r, int) and -1 <= r <= 5 for r in ratings)
    db = sqlite3.connect(tmp_path / "runs" / "grainy-auto-0.db")
    assert db.execute("SELECT count(*) FROM photos WHERE status = 'ok'").fetchone()[0] == 6
    # RAW: both layouts were rated in sidecars, and the camera layout scores like its JPEG.
    raw = throughput["raw"]
    assert raw["actions_last_run"] == {"scored": 6}
    assert raw["score_difference_medium_vs_full"]["photos"] == 6
    assert raw["score_difference_medium_vs_full"]["max_abs"] < 0.5
    for layout in ("camera", "full_only"):
        sidecars = sorted((tmp_path / "runs" / f"raw-{layout}").glob("*.dng.xmp"))
        assert len(sidecars) == 6, layout
    assert results["scoring"]["max_score_difference_between_configs"] < 1e-3
    assert set(results["formats"]["formats"]) == {"dng", "heic", "png", "tiff"}


@pytest.mark.slow
def test_daemon_latency_and_burst_memory_quick(tmp_path: Path) -> None:
    from benchmarks import latency, memory

    jpegs = inputs.make_jpeg_set((480, 320), distinct=1)
    result = latency.daemon_latency(
        tmp_path, jpegs, samples=1, extra=["--settle-seconds", "0.1", "--batch-size", "2"],
        label="smoke", idle=0.2,
    )  # fmt: skip
    assert result["seconds"]["runs"] == 1 and result["seconds"]["median"] > 0
    burst = memory.run(tmp_path, files=6, size=(480, 320), batch_size=2)
    assert burst["files"] == 6
    assert 100 < burst["peak_rss_mb_sampled"] <= burst["peak_rss_mb_vmhwm"] + 50
    db = sqlite3.connect(tmp_path / "burst.db")
    assert db.execute("SELECT count(*) FROM photos WHERE status = 'ok'").fetchone()[0] == 7


def test_metadata_write_benchmark_quick(tmp_path: Path, capsys) -> None:
    """The before/after rating-write benchmark runs, both paths write, and it prints them."""
    from benchmarks import metadata_write

    out = tmp_path / "meta.json"
    assert metadata_write.main(["--runs", "1", "--size", "640x427", "--megabytes", "0.1",
                                "--no-fidelity", "--out", str(out)]) == 0  # fmt: skip
    result = json.loads(out.read_text())["cost"]
    assert result["old_write_ms"]["runs"] == result["new_write_ms"]["runs"] == 1
    assert "pyexiv2 (before)" in capsys.readouterr().out
