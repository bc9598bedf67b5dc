"""Culling: group frames of the same moment, tell bursts from brackets and panoramas, pick the best.

Pure functions on records and arrays; the index (`photod.cull_store`) and the CLI
(`photod.cli.cull`) feed them. Nothing here touches a file.

Grouping
    Two photos are *linked* when they are close in capture time (EXIF DateTimeOriginal +
    SubSecTimeOriginal, same camera) and look alike (cosine similarity of the scorer's 1280-d
    backbone embedding, already computed and stored when a photo is scored). Groups are the
    connected components of the links. Each link has a kind:

    - burst: gap <= `burst_gap_s` and similarity >= `burst_similarity`;
    - bracket: gap <= `bracket_gap_s`, exposure bias differs by >= `bracket_min_ev` (or, with no
      bias recorded, exposure time by >= `bracket_min_ev` stops) and similarity >=
      `bracket_similarity` (a +2 EV frame looks quite different to a CNN: 0.69 measured);
    - panorama: gap <= `panorama_gap_s`, similarity >= `panorama_similarity`, and the two frames
      overlap with a shift of at least `panorama_min_shift` of the frame (ORB features + RANSAC on
      small grayscale previews). Needs pixels, so it is checked only for such candidate pairs;
    - duplicate: no usable capture time on one side, similarity >= `duplicate_similarity`
      (an export, a copy, an edit of the same frame); a bracket when the exposure bias differs.

    A group containing a bracket link is a bracket, else one with a panorama link is a panorama;
    both are kept together and never ranked. Bursts and duplicates are ranked.

    Default thresholds, measured with photod's backbone on scikit-image/scikit-learn photos:
    unrelated photos <= 0.49 (two textures 0.38); a frame vs the same frame shifted 8 px 0.95,
    blurred (sigma 2.5) 0.89, -2 EV 0.90, +2 EV 0.69, cropped 6 % 0.92; a soft (sigma 1.2)
    PNG export 0.96; two halves of a panorama with 50 % overlap 0.92 and 0.63.

Ranking (bursts and duplicates)
    value = aesthetic score
            - focus_weight * (1 - subject sharpness / best subject sharpness in the group)
              (every frame measured over one common subject region: `common_subject`)
            - eyes_weight   if a face shows closed eyes while another frame shows them open
            - motion_weight * max(0, motion blur - median motion blur in group - motion_tolerance)
            - clip_weight   * (clipped share - least clipped share in group), when over 2 %
    The frame with the highest value is the pick. A frame is a *reject candidate* when its eyes
    are closed (as above) or its subject is below `soft_focus_ratio` of the sharpest. Weights are
    in score units: most photos score between 2.8 and 3.6 (photod/stars.py), so a closed-eyes
    frame (-1.0) or a subject at half the sharpest focus (-0.75) loses to a clean frame of the
    same moment unless the model sees a big difference the checks do not.
    Panorama links are looked for between consecutive frames only: a burst that follows a bird
    pans a little each frame, and comparing frames further apart would call it a panorama.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from photod.checks import FrameChecks

log = logging.getLogger("photod")

RANKED_KINDS = ("burst", "duplicate")
KIND_PRIORITY = ("bracket", "panorama", "burst", "duplicate")


@dataclass
class GroupingConfig:
    """Thresholds for linking photos into groups (see the module docstring)."""

    burst_gap_s: float = 2.0
    burst_similarity: float = 0.80
    bracket_gap_s: float = 3.0
    bracket_similarity: float = 0.50
    bracket_min_ev: float = 0.5
    panorama_gap_s: float = 15.0
    panorama_similarity: float = 0.45
    panorama_min_shift: float = 0.15
    # Above this a pair is the same framing; no need to look for a panorama shift.
    panorama_max_similarity: float = 0.95
    duplicate_similarity: float = 0.93
    # How many earlier frames of the same camera each frame is compared with.
    lookback: int = 6

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> GroupingConfig:
        """Build from a config-file section, ignoring unknown keys with a warning."""
        config = cls()
        for key, value in (values or {}).items():
            if hasattr(config, key):
                setattr(config, key, type(getattr(config, key))(value))
            else:
                log.warning("cull: unknown grouping setting %r ignored", key)
        return config


@dataclass
class RankingConfig:
    """Weights of the technical checks against the aesthetic score (score units, PARA 1-5)."""

    focus_weight: float = 1.5
    eyes_weight: float = 1.0
    motion_weight: float = 1.0
    motion_tolerance: float = 0.1
    clip_weight: float = 2.0
    soft_focus_ratio: float = 0.6
    keep: int = 1  # frames marked best per group


@dataclass
class PhotoRecord:
    """What grouping and ranking need about one photo."""

    path: str
    score: float | None = None
    stars: int | None = None
    captured: float | None = None  # seconds (EXIF local time read as UTC: only gaps matter)
    camera: str = ""
    exposure_bias: float | None = None
    exposure_time: float | None = None
    embedding: np.ndarray | None = field(default=None, repr=False)
    checks: FrameChecks | None = None


@dataclass
class Link:
    a: int
    b: int
    kind: str
    similarity: float
    gap_s: float | None
    shift: float | None = None


@dataclass
class Group:
    """Indices into the records list, in capture order, and how they were linked."""

    kind: str
    members: list[int]
    links: list[Link] = field(default_factory=list)

    @property
    def ranked(self) -> bool:
        return self.kind in RANKED_KINDS


@dataclass
class FrameVerdict:
    """Why a frame ranks where it does."""

    index: int
    value: float
    best: bool = False
    reject: bool = False
    reasons: list[str] = field(default_factory=list)
    focus_ratio: float | None = None


@dataclass
class RankedGroup:
    group: Group
    frames: list[FrameVerdict]  # best first for ranked groups, capture order otherwise

    @property
    def best(self) -> list[int]:
        return [f.index for f in self.frames if f.best]


# -- capture time -----------------------------------------------------------------------------


def capture_seconds(when: str | None, subsec: str | int | float | None = None) -> float | None:
    """EXIF DateTimeOriginal ("2026:11:28 10:00:00") or ISO text + SubSecTime -> seconds.

    SubSecTime "12" means .12 s (digits of the fraction), so it is read as a decimal fraction.
    A zone offset, when present, is honoured; naive times are read as UTC (only gaps matter).
    """
    if not when:
        return None
    text = str(when).strip()
    if len(text) >= 10 and text[4] == ":" and text[7] == ":":
        text = text[:4] + "-" + text[5:7] + "-" + text[8:]
    try:
        moment = dt.datetime.fromisoformat(text.replace(" ", "T", 1))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    seconds = moment.timestamp()
    if subsec not in (None, "") and moment.microsecond == 0:
        digits = "".join(ch for ch in str(subsec).strip() if ch.isdigit())
        if digits:
            seconds += int(digits) / 10 ** len(digits)
    return seconds


def record_from_exif(
    path: str,
    exif: dict[str, Any],
    score: float | None = None,
    embedding: np.ndarray | None = None,
    stars: int | None = None,
) -> PhotoRecord:
    """A record from `DecodedImage.exif` / `ScoreResult.exif` fields."""
    return PhotoRecord(
        path=path,
        score=score,
        stars=stars,
        captured=capture_seconds(exif.get("datetime_original"), exif.get("subsec_original")),
        camera=" ".join(str(exif.get(k) or "").strip() for k in ("make", "model")).strip(),
        exposure_bias=_float(exif.get("exposure_bias")),
        exposure_time=_float(exif.get("exposure_time")),
        embedding=embedding,
    )


def record_from_row(row: dict[str, Any]) -> PhotoRecord:
    """A record from a row of the index's `photos` table (embedding as float16 bytes)."""
    blob = row.get("embedding")
    embedding = np.frombuffer(blob, dtype=np.float16).astype(np.float32) if blob else None
    return PhotoRecord(
        path=row["path"],
        score=row.get("score"),
        stars=row.get("stars"),
        captured=capture_seconds(row.get("captured_at"), row.get("capture_subsec")),
        camera=" ".join(
            str(row.get(k) or "").strip() for k in ("camera_make", "camera_model")
        ).strip(),
        exposure_bias=_float(row.get("exposure_bias")),
        exposure_time=_float(row.get("exposure_time")),
        embedding=embedding,
    )


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- similarity and geometry ------------------------------------------------------------------


def normalised_embeddings(records: Sequence[PhotoRecord]) -> tuple[np.ndarray, np.ndarray]:
    """Unit-length embeddings [N, D] (zeros where missing) and a mask of which exist."""
    dims = next((r.embedding.shape[-1] for r in records if r.embedding is not None), 1)
    matrix = np.zeros((len(records), dims), np.float32)
    present = np.zeros(len(records), bool)
    for i, record in enumerate(records):
        if record.embedding is None:
            continue
        vector = np.asarray(record.embedding, np.float32).ravel()
        norm = float(np.linalg.norm(vector))
        if vector.shape[0] == dims and norm > 0 and math.isfinite(norm):
            matrix[i] = vector / norm
            present[i] = True
    return matrix, present


@dataclass
class PairGeometry:
    """How frame b sits relative to frame a: translation as a fraction of the frame size."""

    shift: float  # length of (dx / width, dy / height)
    inliers: int
    matched: bool


def _features(gray: np.ndarray) -> tuple[Any, Any]:
    import cv2

    orb = cv2.ORB_create(nfeatures=1500, fastThreshold=10)
    return orb.detectAndCompute(gray, None)


def _shift_from_features(
    feat_a: tuple[Any, Any], feat_b: tuple[Any, Any], size: tuple[int, int]
) -> PairGeometry:
    import cv2

    (kp_a, des_a), (kp_b, des_b) = feat_a, feat_b
    if des_a is None or des_b is None or len(kp_a) < 8 or len(kp_b) < 8:
        return PairGeometry(0.0, 0, False)
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(des_a, des_b)
    if len(matches) < 8:
        return PairGeometry(0.0, len(matches), False)
    src = np.float32([kp_a[m.queryIdx].pt for m in matches])
    dst = np.float32([kp_b[m.trainIdx].pt for m in matches])
    transform, inlier_mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0
    )
    inliers = int(inlier_mask.sum()) if inlier_mask is not None else 0
    if transform is None or inliers < 10:
        return PairGeometry(0.0, inliers, False)
    scale = math.hypot(transform[0, 0], transform[0, 1])
    if not 0.8 <= scale <= 1.25:  # a zoom, not a pan
        return PairGeometry(0.0, inliers, False)
    h, w = size
    shift = math.hypot(transform[0, 2] / w, transform[1, 2] / h)
    return PairGeometry(float(shift), inliers, True)


def estimate_shift(gray_a: np.ndarray, gray_b: np.ndarray) -> PairGeometry:
    """ORB features + RANSAC similarity transform between two small grayscale previews."""
    return _shift_from_features(_features(gray_a), _features(gray_b), gray_a.shape[:2])


class ShiftEstimator:
    """`GeometryFn` over previews fetched on demand by `load(i)`; features computed once each.

    `load` returns a small grayscale preview (`preview_gray`) or None when the file cannot be read
    (then the pair simply gets no panorama verdict).
    """

    def __init__(self, load: Callable[[int], np.ndarray | None]) -> None:
        self._load = load
        self._cache: dict[int, tuple[tuple[Any, Any], tuple[int, int]] | None] = {}

    def _get(self, i: int) -> tuple[tuple[Any, Any], tuple[int, int]] | None:
        if i not in self._cache:
            gray = self._load(i)
            self._cache[i] = None if gray is None else (_features(gray), gray.shape[:2])
        return self._cache[i]

    def __call__(self, i: int, j: int) -> PairGeometry | None:
        a, b = self._get(i), self._get(j)
        if a is None or b is None:
            return None
        return _shift_from_features(a[0], b[0], a[1])


def preview_gray(pixels: np.ndarray, side: int = 480) -> np.ndarray:
    """Small grayscale copy (long side `side`) for `estimate_shift`."""
    import cv2

    h, w = pixels.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = cv2.resize(np.ascontiguousarray(pixels[..., :3]), size, interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)


# -- grouping ---------------------------------------------------------------------------------


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _exposure_differs(a: PhotoRecord, b: PhotoRecord, min_ev: float) -> bool:
    if a.exposure_bias is not None and b.exposure_bias is not None:
        return abs(a.exposure_bias - b.exposure_bias) >= min_ev - 1e-6
    if a.exposure_time and b.exposure_time and a.exposure_time > 0 and b.exposure_time > 0:
        return abs(math.log2(a.exposure_time / b.exposure_time)) >= min_ev - 1e-6
    return False


GeometryFn = Callable[[int, int], PairGeometry | None]


def find_links(
    records: Sequence[PhotoRecord],
    config: GroupingConfig | None = None,
    geometry: GeometryFn | None = None,
) -> list[Link]:
    """All links between records (see the module docstring); `geometry(i, j)` measures the
    shift between two frames for panorama detection (None: no pixels, no panorama links)."""
    config = config or GroupingConfig()
    matrix, present = normalised_embeddings(records)
    links: list[Link] = []

    timed = [i for i, r in enumerate(records) if r.captured is not None]
    timed.sort(key=lambda i: (records[i].camera, records[i].captured, records[i].path))
    window = max(config.burst_gap_s, config.bracket_gap_s, config.panorama_gap_s)
    floor = min(config.burst_similarity, config.bracket_similarity, config.panorama_similarity)
    order = np.asarray(timed, dtype=np.int64)
    times = np.array([records[i].captured for i in timed], dtype=np.float64)
    cameras = np.unique([records[i].camera for i in timed], return_inverse=True)[1]
    # Each frame against its `lookback` predecessors of the same camera, vectorised per offset
    # (10,000 photos: one pass of numpy per offset instead of 60,000 Python dot products).
    for step in range(1, config.lookback + 1):
        if step >= order.size:
            break
        a, b = order[:-step], order[step:]
        gaps = times[step:] - times[:-step]
        sims = np.einsum("ij,ij->i", matrix[a], matrix[b])
        ok = (
            (cameras[step:] == cameras[:-step])
            & (gaps <= window)
            & present[a]
            & present[b]
            & (sims >= floor)
        )
        for k in np.flatnonzero(ok):
            i, j = int(a[k]), int(b[k])
            # Panoramas are chains of neighbours: a burst that follows a bird pans a little each
            # frame, so comparing frames further apart would call it a panorama.
            link = _classify_pair(
                records[i], records[j], i, j, float(sims[k]), float(gaps[k]), config,
                geometry if step == 1 else None,
            )  # fmt: skip
            if link is not None:
                links.append(link)

    links.extend(_duplicate_links(records, matrix, present, config, geometry))
    return links


def _classify_pair(
    ri: PhotoRecord,
    rj: PhotoRecord,
    i: int,
    j: int,
    sim: float,
    gap: float,
    config: GroupingConfig,
    geometry: GeometryFn | None,
) -> Link | None:
    if gap <= config.bracket_gap_s and sim >= config.bracket_similarity:
        if _exposure_differs(ri, rj, config.bracket_min_ev):
            return Link(i, j, "bracket", sim, gap)
    pano_candidate = (
        geometry is not None
        and gap <= config.panorama_gap_s
        and config.panorama_similarity <= sim < config.panorama_max_similarity
    )
    if pano_candidate:
        measured = geometry(i, j)  # type: ignore[misc]
        if measured is not None and measured.matched:
            if measured.shift >= config.panorama_min_shift:
                return Link(i, j, "panorama", sim, gap, measured.shift)
            if gap <= config.burst_gap_s and sim >= config.burst_similarity:
                return Link(i, j, "burst", sim, gap, measured.shift)
            return None
    if gap <= config.burst_gap_s and sim >= config.burst_similarity:
        return Link(i, j, "burst", sim, gap)
    return None


def _duplicate_links(
    records: Sequence[PhotoRecord],
    matrix: np.ndarray,
    present: np.ndarray,
    config: GroupingConfig,
    geometry: GeometryFn | None = None,
) -> list[Link]:
    """Near-duplicates among photos where at least one side has no capture time.

    Two halves of a panorama can look as alike as a copy (0.92 measured), so with pixels at hand
    a pair below `panorama_max_similarity` is checked for a shift first.
    """
    untimed = np.array([i for i, r in enumerate(records) if r.captured is None and present[i]])
    if untimed.size == 0:
        return []
    everyone = np.flatnonzero(present)
    links: list[Link] = []
    # Chunked so 10,000 photos never need a 10,000 x 10,000 matrix at once.
    for start in range(0, untimed.size, 512):
        rows = untimed[start : start + 512]
        sims = matrix[rows] @ matrix[everyone].T
        for r, c in zip(*np.nonzero(sims >= config.duplicate_similarity), strict=True):
            i, j = int(rows[r]), int(everyone[c])
            # Each untimed pair once (from its lower index); untimed-timed pairs from the untimed side.
            if i == j or (records[j].captured is None and j < i):
                continue
            a, b = min(i, j), max(i, j)
            sim = float(sims[r, c])
            shift = None
            if geometry is not None and sim < config.panorama_max_similarity:
                measured = geometry(a, b)
                if measured is not None and measured.matched:
                    shift = measured.shift
            if shift is not None and shift >= config.panorama_min_shift:
                kind = "panorama"
            elif _exposure_differs(records[a], records[b], config.bracket_min_ev):
                # Known, differing exposure bias still means a bracket, even with no time.
                kind = "bracket"
            else:
                kind = "duplicate"
            links.append(Link(a, b, kind, sim, None, shift))
    return links


def group_photos(
    records: Sequence[PhotoRecord],
    config: GroupingConfig | None = None,
    geometry: GeometryFn | None = None,
) -> list[Group]:
    """Groups of two or more linked photos, each in capture order, earliest group first."""
    links = find_links(records, config, geometry)
    union = _UnionFind(len(records))
    for link in links:
        union.union(link.a, link.b)
    members: dict[int, list[int]] = {}
    for i in range(len(records)):
        members.setdefault(union.find(i), []).append(i)
    by_root: dict[int, list[Link]] = {}
    for link in links:
        by_root.setdefault(union.find(link.a), []).append(link)

    def order(i: int) -> tuple[float, str]:
        captured = records[i].captured
        return (captured if captured is not None else math.inf, records[i].path)

    groups = []
    for root, indices in members.items():
        if len(indices) < 2:
            continue
        group_links = by_root.get(root, [])
        kinds = {link.kind for link in group_links}
        kind = next(k for k in KIND_PRIORITY if k in kinds)
        groups.append(Group(kind, sorted(indices, key=order), group_links))
    groups.sort(key=lambda g: order(g.members[0]))
    return groups


def group_key(paths: Sequence[str]) -> str:
    """A stable id for a group: the same members give the same id, whatever their order."""
    digest = hashlib.blake2b("\0".join(sorted(paths)).encode(), digest_size=8)
    return digest.hexdigest()


# -- ranking ----------------------------------------------------------------------------------


def common_subject(
    checks: Sequence[FrameChecks],
) -> tuple[tuple[float, float, float, float], str]:
    """One subject region (fractions x0, y0, x1, y1) for every frame of a group, and its source.

    Frames of a burst differ by a few pixels, so they are compared over the same region: the union
    of the faces any frame shows (a face missed in the blurred frame is still where it was), else
    the median of the frames' salient boxes, else the central half.
    """
    faces = [c.box_fraction(f.box) for c in checks for f in c.faces]
    if faces:
        x0, y0 = min(b[0] for b in faces), min(b[1] for b in faces)
        x1, y1 = max(b[2] for b in faces), max(b[3] for b in faces)
        return (x0, y0, x1, y1), "faces"
    salient = [c.box_fraction(c.subject_box) for c in checks if c.subject == "saliency"]
    if salient:
        median = np.median(np.asarray(salient), axis=0)
        return (float(median[0]), float(median[1]), float(median[2]), float(median[3])), "subject"
    return (0.25, 0.25, 0.75, 0.75), "centre"


def rank_group(
    group: Group, records: Sequence[PhotoRecord], config: RankingConfig | None = None
) -> RankedGroup:
    """Order a burst/duplicate group best first with reasons; brackets/panoramas stay unranked."""
    config = config or RankingConfig()
    if not group.ranked:
        return RankedGroup(
            group, [FrameVerdict(i, 0.0, reasons=[group.kind]) for i in group.members]
        )

    checks = {i: records[i].checks for i in group.members}
    known = [c for c in checks.values() if c is not None]
    region, subject = common_subject(known)
    focus = {i: c.region_sharpness(region) for i, c in checks.items() if c is not None}
    best_focus = max(focus.values(), default=0.0)
    # The median, not the least: a frame blurred all round has *less* directional blur than a
    # sharp one, and must not make the sharp frames look shaken.
    usual_motion = float(np.median([c.motion_blur for c in known])) if known else 0.0
    least_clip = min((c.clipped_highlights for c in known), default=0.0)
    someone_open = any(c.eyes_open for c in known)

    frames = []
    for i in group.members:
        record, check = records[i], checks[i]
        value = record.score if record.score is not None else 0.0
        verdict = FrameVerdict(i, value)
        if check is not None:
            ratio = focus[i] / best_focus if best_focus > 0 else 1.0
            verdict.focus_ratio = ratio
            verdict.value -= config.focus_weight * (1.0 - ratio)
            if ratio < config.soft_focus_ratio:
                verdict.reject = True
                verdict.reasons.append(f"soft {subject} ({ratio:.0%} of sharpest)")
            if check.eyes_closed and someone_open:
                verdict.value -= config.eyes_weight
                verdict.reject = True
                verdict.reasons.append("eyes closed")
            excess_motion = check.motion_blur - usual_motion - config.motion_tolerance
            if excess_motion > 0:
                verdict.value -= config.motion_weight * excess_motion
                verdict.reasons.append(f"motion blur {check.motion_blur:.2f}")
            excess_clip = check.clipped_highlights - least_clip
            if excess_clip > 0.02:
                verdict.value -= config.clip_weight * excess_clip
                verdict.reasons.append(f"clipped highlights {check.clipped_highlights:.1%}")
        frames.append(verdict)

    frames.sort(key=lambda f: (-f.value, f.index))
    for position, verdict in enumerate(frames):
        if position < config.keep:
            verdict.best = True
            verdict.reject = False
            verdict.reasons.insert(0, "best of group")
    return RankedGroup(group, frames)


def cull(
    records: Sequence[PhotoRecord],
    grouping: GroupingConfig | None = None,
    ranking: RankingConfig | None = None,
    geometry: GeometryFn | None = None,
) -> list[RankedGroup]:
    """Group, then rank every group."""
    return [rank_group(g, records, ranking) for g in group_photos(records, grouping, geometry)]
