"""Culling on real photos: frame checks, grouping and ranking (the library, no CLI).

The photos are scikit-image/scikit-learn sample photographs degraded the way bursts differ
(tests/cull_set.py); embeddings and scores come from the shipped scorer.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from photod.checks import analyse_frame
from photod.cull import (
    GroupingConfig,
    capture_seconds,
    common_subject,
    group_photos,
    rank_group,
)
from tests import cull_set
from tests.photos import real_photo


@pytest.fixture(scope="module")
def astronaut_frames() -> dict[str, np.ndarray]:
    scene = real_photo("astronaut")
    frame = cull_set.crop(scene, 16, 16, 480, 480)
    return {
        "clean": frame,
        "closed": cull_set.crop(cull_set.close_eyes(scene), 16, 16, 480, 480),
        "soft": cull_set.gaussian_blur(frame, 2.0),
        "shake": cull_set.motion_blur(frame, 11),
        "bright": cull_set.exposure(frame, 1.3),
        "dark": cull_set.exposure(frame, -0.7),
    }


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory, scorer):
    """The burst, bracket and panorama parts of the test set, decoded, checked and scored."""
    from photod.cull_store import analyse_files

    folder = tmp_path_factory.mktemp("cullset")
    truth = cull_set.build_cull_set(folder)
    result = analyse_files(sorted(folder.iterdir()), scorer)
    assert not result.errors
    return folder, truth, result


def test_capture_seconds_reads_exif_and_iso_times_with_subseconds() -> None:
    base = capture_seconds("2026:11:28 14:30:00")
    assert base is not None
    assert capture_seconds("2026:11:28 14:30:00", "12") == pytest.approx(base + 0.12)
    assert capture_seconds("2026:11:28 14:30:00", "5") == pytest.approx(base + 0.5)
    assert capture_seconds("2026-11-28T14:30:01", "250") == pytest.approx(base + 1.25)
    # A zone offset is honoured.
    assert capture_seconds("2026-11-28T15:30:00+01:00") == pytest.approx(base)
    assert capture_seconds("0000:00:00 00:00:00") is None
    assert capture_seconds("") is None and capture_seconds(None) is None


def test_checks_see_closed_eyes_on_the_astronaut(astronaut_frames) -> None:
    clean = analyse_frame(astronaut_frames["clean"])
    closed = analyse_frame(astronaut_frames["closed"])
    assert len(clean.faces) == 1 and clean.eyes_open and not clean.eyes_closed
    assert clean.faces[0].eyes_found == 2
    assert len(closed.faces) == 1 and closed.eyes_closed
    assert clean.subject == "faces"


def test_checks_measure_focus_motion_and_clipping(astronaut_frames) -> None:
    checks = {name: analyse_frame(pixels) for name, pixels in astronaut_frames.items()}
    clean = checks["clean"]
    assert checks["soft"].subject_sharpness < 0.4 * clean.subject_sharpness
    assert checks["shake"].subject_sharpness < 0.7 * clean.subject_sharpness
    assert checks["shake"].motion_blur > clean.motion_blur + 0.2
    # Gaussian blur is not directional.
    assert checks["soft"].motion_blur < checks["shake"].motion_blur
    assert checks["bright"].clipped_highlights > 0.3 > clean.clipped_highlights
    # Contrast-normalised: a darker frame of the same moment is not "softer".
    assert checks["dark"].subject_sharpness == pytest.approx(clean.subject_sharpness, rel=0.15)
    data = clean.to_dict()
    again = type(clean).from_dict(data)
    assert again.eyes_open and again.region_sharpness((0, 0, 1, 1)) > 0


def test_missed_focus_on_the_subject_is_seen_where_the_whole_frame_hides_it(analysed) -> None:
    _, _, result = analysed
    by_name = {Path(r.path).name: r for r in result.records}
    clean, missed = by_name["c0_clean.jpg"].checks, by_name["c1_head_missed.jpg"].checks
    region, _ = common_subject([clean, missed])
    subject_ratio = missed.region_sharpness(region) / clean.region_sharpness(region)
    frame_ratio = missed.frame_sharpness / clean.frame_sharpness
    assert subject_ratio < 0.5
    assert subject_ratio < frame_ratio - 0.15


def test_grouping_and_best_frames_match_the_truth(analysed) -> None:
    folder, truth, result = analysed
    records = result.records
    from photod.cull import ShiftEstimator

    groups = group_photos(records, geometry=ShiftEstimator(lambda i: result.previews[i]))
    predicted = [[Path(records[i].path).name for i in g.members] for g in groups]
    metrics = cull_set.pair_metrics(predicted, [m for _, m in truth.groups.values()])
    print("grouping", metrics)
    assert metrics["precision"] == 1.0 and metrics["recall"] == 1.0

    by_members = {frozenset(m): (name, kind) for name, (kind, m) in truth.groups.items()}
    hits = score_only_hits = 0
    bare = [dataclasses.replace(r, checks=None) for r in records]
    for group in groups:
        name, kind = by_members[frozenset(Path(records[i].path).name for i in group.members)]
        assert group.kind == kind, (name, group.kind)
        ranked = rank_group(group, records)
        if not group.ranked:
            assert not any(f.best or f.reject for f in ranked.frames)
            continue
        best = [Path(records[i].path).name for i in ranked.best]
        hits += best == [truth.best[name]]
        plain = [Path(records[i].path).name for i in rank_group(group, bare).best]
        score_only_hits += plain == [truth.best[name]]
        print(name, [(Path(records[f.index].path).name, round(f.value, 3)) for f in ranked.frames])
    print(f"best-frame accuracy {hits}/{len(truth.best)} (score alone: {score_only_hits})")
    assert hits == len(truth.best)


def test_rejects_and_reasons_name_the_defect(analysed) -> None:
    _, truth, result = analysed
    records = result.records
    index = {Path(r.path).name: i for i, r in enumerate(records)}
    burst = group_photos([records[index[n]] for n in truth.groups["astronaut"][1]])
    assert len(burst) == 1 and burst[0].kind == "burst"
    subset = [records[index[n]] for n in truth.groups["astronaut"][1]]
    ranked = rank_group(burst[0], subset)
    verdicts = {Path(subset[f.index].path).name: f for f in ranked.frames}
    assert verdicts["a1_eyes_closed.jpg"].reject
    assert "eyes closed" in verdicts["a1_eyes_closed.jpg"].reasons
    assert verdicts["a2_soft.jpg"].reject
    assert any(r.startswith("soft faces") for r in verdicts["a2_soft.jpg"].reasons)
    assert any(r.startswith("motion blur") for r in verdicts["a3_shake.jpg"].reasons)
    assert any(r.startswith("clipped") for r in verdicts["a4_overexposed.jpg"].reasons)
    assert verdicts["a0_clean.jpg"].best and not verdicts["a0_clean.jpg"].reject


def test_time_gap_camera_and_thresholds_split_groups(analysed) -> None:
    _, truth, result = analysed
    index = {Path(r.path).name: i for i, r in enumerate(result.records)}
    names = truth.groups["coffee"][1]
    burst = [dataclasses.replace(result.records[index[n]]) for n in names]
    assert [len(g.members) for g in group_photos(burst)] == [4]

    # The last frame 5 s later: over the 2 s gap, it stands alone; a longer gap takes it back.
    late = [dataclasses.replace(r) for r in burst]
    late[-1].captured += 5.0  # type: ignore[operator]
    assert [len(g.members) for g in group_photos(late)] == [3]
    assert [len(g.members) for g in group_photos(late, GroupingConfig(burst_gap_s=6))] == [4]

    # A second camera at the same moment is another photographer's shot, not this burst.
    other = [dataclasses.replace(r) for r in burst]
    other[1].camera = "Nikon Z 6"
    assert sorted(len(g.members) for g in group_photos(other)) == [3]

    # A similarity bar above every pair groups nothing.
    assert group_photos(burst, GroupingConfig(burst_similarity=0.999)) == []


def test_bracket_is_found_from_exposure_time_when_bias_is_missing(analysed) -> None:
    _, truth, result = analysed
    index = {Path(r.path).name: i for i, r in enumerate(result.records)}
    frames = [dataclasses.replace(result.records[index[n]]) for n in truth.groups["bracket"][1]]
    for frame in frames:
        frame.exposure_bias = None
    groups = group_photos(frames)
    assert [(g.kind, len(g.members)) for g in groups] == [("bracket", 3)]
    for frame in frames:
        frame.exposure_time = None
    # No exposure data: the frames are too different for a burst (+2 EV looks different).
    assert all(g.kind != "bracket" for g in group_photos(frames))


def test_untimed_copies_are_near_duplicates_and_unrelated_photos_are_not(analysed) -> None:
    _, _, result = analysed
    from photod.cull import ShiftEstimator

    records = [dataclasses.replace(r, captured=None) for r in result.records]
    groups = group_photos(records, geometry=ShiftEstimator(lambda i: result.previews[i]))
    names = [sorted(Path(records[i].path).name for i in g.members) for g in groups]
    assert ["d0_original.jpg", "d1_export.png"] in names
    kinds = {tuple(n): g.kind for n, g in zip(names, groups, strict=True)}
    assert kinds[("d0_original.jpg", "d1_export.png")] == "duplicate"
    # Known, differing exposure bias still makes a bracket.
    assert all(k == "bracket" for n, k in kinds.items() if n[0].startswith("k"))
    # The two panorama halves that look alike are told apart by their shift.
    assert all(k == "panorama" for n, k in kinds.items() if n[0].startswith("p"))
    assert all(k == "duplicate" for n, k in kinds.items() if n[0][0] not in "kp")
    # Without time only near-identical frames join: no unrelated single.
    flat = {n for group in names for n in group}
    assert not flat & {"s2_camera.jpg", "s3_hubble.jpg"}
    assert not flat & {"s1_flower.jpg", "s4_coffee_upside_down.jpg"}
