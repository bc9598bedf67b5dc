"""`photod cull` and `photod group` end to end: real files, real metadata writes read back by
exiftool, a real SQLite index filled by the real pipeline, incremental and full regrouping."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from photod.cli import cli
from tests import cull_set

EXIFTOOL = shutil.which("exiftool")


@pytest.fixture(scope="module")
def cull_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, cull_set.CullTruth]:
    folder = tmp_path_factory.mktemp("cull_source")
    return folder, cull_set.build_cull_set(folder)


def _subset(source: Path, target: Path, prefixes: tuple[str, ...]) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(source.iterdir()):
        if path.name.startswith(prefixes):
            copied.append(Path(shutil.copy2(path, target / path.name)))
    return copied


def _run(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    lines = [json.loads(line) for line in result.output.splitlines() if line.startswith("{")]
    return result.exit_code, lines


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _exif_labels(paths: list[Path]) -> dict[str, dict]:
    out = subprocess.run(
        [EXIFTOOL, "-j", "-n", "-XMP:Label", "-XMP:Rating", "-IFD0:Rating", *map(str, paths)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {Path(entry["SourceFile"]).name: entry for entry in json.loads(out)}


def test_cull_json_shows_groups_picks_and_reasons_and_writes_nothing(cull_files, tmp_path) -> None:
    source, truth = cull_files
    folder = tmp_path / "card"
    _subset(source, folder, ("a", "k", "p", "s2", "s3"))
    before = _snapshot(folder)
    code, lines = _run("cull", str(folder), "--json")
    assert code == 0
    groups = [line for line in lines if "group" in line]
    summary = lines[-1]
    assert summary["summary"] and summary["photos"] == 13 and summary["groups"] == 3
    assert summary["singles"] == 2 and summary["errors"] == []
    by_kind = {g["kind"]: g for g in groups}
    assert set(by_kind) == {"burst", "bracket", "panorama"}

    burst = by_kind["burst"]
    assert burst["ranked"] and [Path(p).name for p in burst["best"]] == ["a0_clean.jpg"]
    photos = {Path(p["path"]).name: p for p in burst["photos"]}
    assert photos["a0_clean.jpg"]["eyes"] == "open" and photos["a0_clean.jpg"]["focus"] > 0.9
    assert (
        photos["a1_eyes_closed.jpg"]["eyes"] == "closed" and photos["a1_eyes_closed.jpg"]["reject"]
    )
    assert photos["a2_soft.jpg"]["reject"] and photos["a2_soft.jpg"]["focus"] < 0.5
    assert burst["photos"][0]["best"]  # best first

    for kind in ("bracket", "panorama"):
        group = by_kind[kind]
        assert not group["ranked"] and group["best"] == [] and group["size"] == 3
        assert not any(p["best"] or p["reject"] for p in group["photos"])
    # Without --apply nothing is written, no sidecar appears.
    assert _snapshot(folder) == before


@pytest.mark.skipif(EXIFTOOL is None, reason="exiftool is needed to read the labels back")
def test_apply_marks_best_and_rejects_readable_by_exiftool_pixels_untouched(
    cull_files, tmp_path
) -> None:
    source, truth = cull_files
    folder = tmp_path / "card"
    files = _subset(source, folder, ("b", "c"))
    pixels = {p.name: np.asarray(Image.open(p)) for p in files}
    code, lines = _run("cull", str(folder), "--apply", "--mark", "both", "--json")
    assert code == 0
    applied = [line for line in lines if line.get("applied")]
    assert applied and not any("error" in line for line in applied)

    # Never deleted, moved or renamed; pixels identical (metadata-only rewrite).
    assert sorted(p.name for p in folder.iterdir() if p.suffix == ".jpg") == sorted(pixels)
    for path in files:
        assert np.array_equal(np.asarray(Image.open(path)), pixels[path.name]), path.name

    tags = _exif_labels(files)
    groups = {g["group"]: g for g in lines if "group" in g and "kind" in g}
    assert len(groups) == 2
    for group in groups.values():
        best = [p for p in group["photos"] if p["best"]]
        assert len(best) == 1
        best_name = Path(best[0]["path"]).name
        assert best_name in (truth.best["coffee"], truth.best["cat"])
        assert tags[best_name].get("Label") == "Green"
        best_stars = best[0]["stars"]
        assert tags[best_name].get("Rating") == best_stars
        for photo in group["photos"]:
            name = Path(photo["path"]).name
            if photo["best"]:
                continue
            expected = "Red" if photo["reject"] else None
            assert tags[name].get("Label") == expected, name
            # The others end below the pick (at least 1 star).
            assert tags[name].get("Rating") == max(1, min(photo["stars"], best_stars - 1)), name
    # The soft frames are among the rejects.
    assert tags["b1_soft.jpg"].get("Label") == "Red"
    assert tags["c1_head_missed.jpg"].get("Label") == "Red"


def test_unreadable_file_is_reported_and_the_rest_culled(cull_files, tmp_path) -> None:
    source, _ = cull_files
    folder = tmp_path / "card"
    _subset(source, folder, ("d0", "d1", "s1"))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    code, lines = _run("cull", str(folder), "--json")
    assert code == 1
    summary = lines[-1]
    assert [Path(e["path"]).name for e in summary["errors"]] == ["broken.jpg"]
    groups = [line for line in lines if "kind" in line]
    assert [(g["kind"], g["size"]) for g in groups] == [("duplicate", 2)]
    assert [Path(p).name for p in groups[0]["best"]] == ["d0_original.jpg"]

    human = CliRunner().invoke(cli, ["cull", str(folder)])
    assert human.exit_code == 1
    assert "duplicate of 2" in human.output and "error  " in human.output
    assert "best   " in human.output and "1 unreadable" in human.output


def test_index_groups_full_and_incremental_agree(cull_files, tmp_path, scorer) -> None:
    from photod.cull_store import load_groups, rebuild_groups, update_groups_for
    from photod.index import open_index
    from photod.pipeline import process_paths

    source, truth = cull_files
    folder = tmp_path / "card"
    files = _subset(source, folder, ("a", "k", "s2"))
    first, rest = files[:3], files[3:]  # a0..a2 first, then a3, a4, the bracket, the single

    # Incremental, as the daemon does it: two batches, each followed by update_groups_for.
    db = open_index(tmp_path / "incremental.db")
    list(process_paths(first, scorer, db, write_mode="none"))
    touched = update_groups_for(db, first)
    assert [(g.group.kind, len(g.group.members)) for g in touched] == [("burst", 3)]
    list(process_paths(rest, scorer, db, write_mode="none"))
    update_groups_for(db, rest)
    incremental = load_groups(db)

    # A full rebuild from scratch on a copy of the same index (groups wiped first).
    # SQLite's backup API: a plain file copy would miss what is still in the WAL.
    target = sqlite3.connect(tmp_path / "full.db")
    db.conn.backup(target)
    target.close()
    full_db = open_index(tmp_path / "full.db")
    with full_db.atomic():
        full_db.execute("DELETE FROM groups")
        full_db.execute("DELETE FROM cull_frames")
        full_db.execute("UPDATE photos SET group_id = NULL")
    rebuild_groups(full_db)
    full = load_groups(full_db)

    def shape(groups: list[dict]) -> list[tuple]:
        return sorted(
            (g["id"], g["kind"], g["size"], Path(g["best_path"] or "-").name) for g in groups
        )

    assert shape(incremental) == shape(full)
    kinds = {g["kind"]: g for g in full}
    assert set(kinds) == {"burst", "bracket"}
    assert Path(kinds["burst"]["best_path"]).name == truth.best["astronaut"]
    # group_id on photos, checks cached in cull_frames, the old burst of 3 replaced.
    rows = {Path(r["path"]).name: r for r in db.query("SELECT path, group_id FROM photos")}
    assert rows["s2_camera.jpg"]["group_id"] is None
    assert len({rows[n]["group_id"] for n in truth.groups["astronaut"][1]}) == 1
    assert db["groups"].count == 2
    cached = next(db.query("SELECT count(*) AS n FROM cull_frames WHERE checks IS NOT NULL"))
    assert cached["n"] == 5  # the ranked burst's frames

    # `photod group --all` on the incremental index gives the same groups back.
    code, lines = _run("group", "--all", "--db", str(tmp_path / "incremental.db"), "--json")
    assert code == 0
    assert shape([line for line in lines if "kind" in line]) == shape(full)
    code, lines = _run("group", str(folder), "--db", str(tmp_path / "incremental.db"), "--json")
    assert code == 0 and lines[-1]["groups"] == 2


def test_group_needs_a_path_or_all(tmp_path) -> None:
    result = CliRunner().invoke(cli, ["group", "--db", str(tmp_path / "x.db")])
    assert result.exit_code == 2 and "PATH or --all" in result.output


def test_heic_and_raw_frames_join_a_jpeg_burst(tmp_path) -> None:
    import pillow_heif

    from tests.photos import real_photo, write_dng

    pillow_heif.register_heif_opener()
    folder = tmp_path / "card"
    folder.mkdir()
    scene = real_photo("astronaut")
    clean = cull_set.crop(scene, 16, 16, 480, 480)
    cull_set.save_jpeg(folder / "f0.jpg", clean, cull_set.shot_exif(cull_set._t(0)))
    shut = cull_set.crop(cull_set.close_eyes(scene), 14, 18, 480, 480)
    Image.fromarray(shut).save(
        folder / "f1.heic", format="HEIF", quality=90,
        exif=cull_set.shot_exif(cull_set._t(0.2)).tobytes(),
    )  # fmt: skip
    # The camera's RAW of the first frame: no capture time reaches the index from a DNG here,
    # so it joins as a near-duplicate.
    write_dng(folder / "f0.dng", clean)
    code, lines = _run("cull", str(folder), "--json")
    assert code == 0
    groups = [line for line in lines if "kind" in line]
    assert len(groups) == 1 and groups[0]["size"] == 3
    photos = {Path(p["path"]).name: p for p in groups[0]["photos"]}
    assert photos["f1.heic"]["eyes"] == "closed" and photos["f1.heic"]["reject"]
    assert not photos["f1.heic"]["best"]

    # The same closed-eyes frame alone: no group, but flagged.
    lone = cull_set.save_jpeg(tmp_path / "lone.jpg", shut, cull_set.shot_exif(cull_set._t(300)))
    code, lines = _run("cull", str(lone), "--json")
    assert code == 0
    assert [(x["path"], x["flags"]) for x in lines if x.get("single")] == [
        (str(lone), ["eyes closed"])
    ]
    assert lines[-1]["groups"] == 0 and lines[-1]["singles"] == 1
