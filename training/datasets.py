"""Labelled image sets for training and evaluation, each yielding (image path, target) with a split.

`para_dataset` reads PARA's `labels.csv` (image, session, aesthetic_mean, quality_mean). Splits are
made by `session`, never by image, so near-identical shots of one session cannot sit on both sides;
the split is a pure function of the session name and the seed, hence stable across runs/machines.
"""

from __future__ import annotations

import csv
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PARA_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "para-train"
SPLIT_SEED = 20261129
VALIDATION_SHARE = 0.2


def para_dir() -> Path:
    """`$PHOTOD_PARA_DIR`, else `../shared/data/para-train` beside the source tree."""
    return Path(os.environ.get("PHOTOD_PARA_DIR", DEFAULT_PARA_DIR))


@dataclass(frozen=True)
class Sample:
    path: Path
    target: float
    group: str


def session_split(group: str, seed: int = SPLIT_SEED, share: float = VALIDATION_SHARE) -> str:
    """'val' for about `share` of groups, else 'train': a hash of (seed, group), not a RNG state."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return "val" if int.from_bytes(digest[:8], "big") / 2**64 < share else "train"


def para_dataset(
    root: Path | None = None,
    split: str = "all",
    target: str = "aesthetic_mean",
    seed: int = SPLIT_SEED,
) -> list[Sample]:
    """PARA samples of `split` ('train', 'val' or 'all'), sorted by image name."""
    root = root or para_dir()
    samples = []
    with open(root / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if split != "all" and session_split(row["session"], seed) != split:
                continue
            samples.append(
                Sample(root / "images" / row["image"], float(row[target]), row["session"])
            )
    return sorted(samples, key=lambda s: s.path.name)


# --- Other labelled sets -------------------------------------------------------------------------
# Each loader returns Samples (path, target, group); `split` keeps the rows whose group falls in
# that part of `session_split`, so every set is split by a group (photographer, challenge, session)
# and never by image.


def _resolve(root: Path, name: str, image_dir: Path | None) -> Path:
    """An image named in a CSV: absolute, or relative to `image_dir` (default: the CSV's folder)."""
    path = Path(name)
    if path.is_absolute():
        return path
    return (image_dir or root) / path


def _keep(group: str, split: str, seed: int) -> bool:
    return split == "all" or session_split(group, seed) == split


def popularity_score(views: float, days: float) -> float:
    """The paper's popularity: log2((views + 1) / (days + 1)), days online when crawled."""
    import math

    return math.log2((views + 1.0) / (max(days, 0.0) + 1.0))


def popularity_dataset(
    csv_path: Path,
    split: str = "all",
    share: float = 0.2,
    binary: bool = True,
    image_dir: Path | None = None,
    seed: int = SPLIT_SEED,
) -> list[Sample]:
    """The paper's protocol from a CSV with `image, views, upload_date, crawl_date[, user]`.

    score = log2((views + 1) / (days + 1)) with days = crawl_date - upload_date (ISO dates). With
    `binary`, only the top and bottom `share` of the scores (ranked over the whole CSV, before the
    split) are returned, targets 1.0 and 0.0; otherwise every photo with its score. The group is
    the `user` column when present (one photographer's photos stay on one side), else the image.
    """
    from datetime import date

    csv_path = Path(csv_path)
    rows = []
    with open(csv_path, newline="") as handle:
        for row in csv.DictReader(handle):
            days = (
                date.fromisoformat(row["crawl_date"][:10])
                - date.fromisoformat(row["upload_date"][:10])
            ).days
            score = popularity_score(float(row["views"]), days)
            group = row.get("user") or row["image"]
            rows.append((row["image"], score, group))
    if not rows:
        return []
    scores = sorted(score for _, score, _ in rows)
    n = len(scores)
    cut = max(1, int(round(n * share)))
    low, high = scores[cut - 1], scores[n - cut]
    samples = []
    for image, score, group in rows:
        if not _keep(group, split, seed):
            continue
        if binary:
            if score >= high:
                target = 1.0
            elif score <= low:
                target = 0.0
            else:
                continue
        else:
            target = score
        samples.append(Sample(_resolve(csv_path.parent, image, image_dir), target, group))
    return sorted(samples, key=lambda s: s.path.name)


def csv_dataset(
    csv_path: Path,
    split: str = "all",
    image_column: str = "image",
    score_column: str = "score",
    group_column: str | None = None,
    image_dir: Path | None = None,
    seed: int = SPLIT_SEED,
) -> list[Sample]:
    """A generic mean-opinion CSV (`image, score[, group]`); images relative to the CSV's folder."""
    csv_path = Path(csv_path)
    samples = []
    with open(csv_path, newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        for column in (image_column, score_column):
            if column not in fields:
                raise ValueError(f"{csv_path}: no column {column!r} (columns: {', '.join(fields)})")
        for row in reader:
            group = row[group_column] if group_column else row[image_column]
            if not _keep(group, split, seed):
                continue
            path = _resolve(csv_path.parent, row[image_column], image_dir)
            samples.append(Sample(path, float(row[score_column]), group))
    return sorted(samples, key=lambda s: s.path.name)


def ava_dataset(
    ava_txt: Path,
    image_dir: Path | None = None,
    split: str = "all",
    require_images: bool = True,
    seed: int = SPLIT_SEED,
) -> list[Sample]:
    """AVA's `AVA.txt`: index, image id, ten vote counts (scores 1-10), two tags, challenge id.

    Target: the mean vote (1-10). Group: the challenge, so one contest's photos stay on one side.
    Images are `<image_dir>/<id>.jpg` (default: `images/` beside AVA.txt); with `require_images`,
    rows whose file is missing are skipped (AVA copies usually lack a few).
    """
    ava_txt = Path(ava_txt)
    image_dir = image_dir or ava_txt.parent / "images"
    samples = []
    with open(ava_txt) as handle:
        for line_number, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 15:
                raise ValueError(f"{ava_txt}:{line_number}: expected 15 fields, got {len(fields)}")
            votes = [int(v) for v in fields[2:12]]
            total = sum(votes)
            if total == 0:
                continue
            mean = sum((i + 1) * v for i, v in enumerate(votes)) / total
            group = f"challenge{fields[14]}"
            if not _keep(group, split, seed):
                continue
            path = image_dir / f"{fields[1]}.jpg"
            if require_images and not path.exists():
                continue
            samples.append(Sample(path, mean, group))
    return sorted(samples, key=lambda s: s.path.name)


def user_ratings_dataset(folder: Path, recursive: bool = True) -> list[Sample]:
    """Photos under `folder` with the rating the user set: 1-5 stars, or -1 for a reject.

    Read by `photod.training.ratings.read_user_stars` (darktable and Lightroom sidecars, embedded
    XMP, EXIF; never a rating photod wrote); unrated photos (no rating, or 0) are left out.
    Group: the photo's folder (its shoot).
    """
    from photod.scoring import iter_photo_paths
    from photod.training.ratings import read_user_stars

    samples = []
    for path in iter_photo_paths([folder], recursive):
        rating = read_user_stars(path)
        if rating is not None:
            samples.append(Sample(path, float(rating.stars), str(path.parent)))
    return samples
