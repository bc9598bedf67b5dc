"""Write photod's rating where Lightroom, darktable and file browsers look, without overriding the
user and without ever damaging a photo.

Where a rating goes, per format (`mode="auto"`):

- JPEG, TIFF, PNG, DNG: embedded XMP (Lightroom reads only that for these), written surgically
  (surgical.py: no other byte of EXIF, maker notes or image data changes), plus EXIF
  Rating/RatingPercent patched in place where the photo already has them (never added: see
  surgical.py for why). A darktable sidecar `NAME.EXT.xmp` that already exists is updated too,
  because darktable prefers it over the embedded XMP.
- Camera RAW and HEIC: the file is never modified; sidecars `NAME.EXT.xmp` (darktable) and
  `NAME.xmp` (Lightroom) are created or merged.

`NAME.xmp` is written only for sidecar formats: for a JPEG, Lightroom never reads it and it may be
the sidecar of a RAW of the same name (RAW+JPEG pairs).

A rating is the user's when it differs from the `photod:Stars` next to it (0, a cleared rating,
included), or, where photod never wrote, when it is non-zero; photod then leaves every location
alone unless `force=True`, and reports it in `WriteOutcome.user_rating`.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from photod.errors import MetadataError
from photod.metadata import xmp as X
from photod.metadata.atomic import atomic_create, atomic_rewrite
from photod.metadata.records import MODES, RatingInfo, WriteOutcome

log = logging.getLogger("photod")


def sidecar_paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """(NAME.EXT.xmp as darktable names it, NAME.xmp as Lightroom names it)."""
    p = Path(path)
    return p.with_name(p.name + ".xmp"), p.with_name(p.stem + ".xmp")


@dataclass
class Location:
    """One place a rating can live: the photo itself or one of its sidecars."""

    name: str  # "embedded", "darktable sidecar" or "lightroom sidecar"
    path: Path
    sidecar: bool

    @property
    def exists(self) -> bool:
        return self.path.exists()


def locations(path: Path) -> list[Location]:
    """Every place a reader may take this photo's rating from, the photo first."""
    darktable, lightroom = sidecar_paths(path)
    found = [Location("embedded", path, False), Location("darktable sidecar", darktable, True)]
    if not X.is_embeddable(path):
        found.append(Location("lightroom sidecar", lightroom, True))
    return found


def _targets(path: Path, mode: str, sidecar_only: bool) -> tuple[list[Location], str | None]:
    """Locations to write for `mode`, or a reason why none."""
    if mode not in MODES:
        raise MetadataError(f"unknown write mode {mode!r} (choose from {', '.join(MODES)})")
    if mode == "none":
        return [], "write mode is none"
    all_locations = locations(path)
    embedded = all_locations[0]
    sidecars = all_locations[1:]
    embeddable = X.is_embeddable(path)
    if sidecar_only and mode in ("embedded", "both", "auto"):
        mode = "sidecar"
    if mode == "embedded":
        if not embeddable:
            return [], f"{path.suffix or 'this'} files are never modified (use sidecar mode)"
        return [embedded], None
    if mode == "sidecar":
        return sidecars, None
    if mode == "both":
        return ([embedded] if embeddable else []) + sidecars, None
    # auto
    if embeddable:
        return [embedded] + [s for s in sidecars if s.exists], None
    return sidecars, None


def _state(loc: Location, strict: bool) -> tuple[dict[str, str], dict[str, str]] | None:
    """(xmp, exif) of a location, None when it does not exist. `strict`: unreadable metadata is an
    error (we are about to write there); otherwise logged and treated as empty."""
    if not loc.exists:
        return None
    try:
        return X.read_metadata(loc.path, with_exif=not loc.sidecar)
    except MetadataError as exc:
        if strict:
            raise
        log.warning("ignoring unreadable metadata: %s", exc)
        return None


def _user_rating_in(xmp: dict[str, str], exif: dict[str, str]) -> int | None:
    """The user's rating in this location, else None.

    Where photod wrote its stars here (`photod:Stars`), any xmp:Rating that differs from them is
    the user's, 0 included: clearing the stars in Lightroom or Explorer is a choice, and so is
    removing the rating. Where photod never wrote, a non-zero rating is the user's (or a camera's)
    and 0 means "unrated".
    """
    stars = X.parse_rating(X.photod_fields(xmp).get("Stars"))
    rating = X.parse_rating(xmp.get(X.RATING))
    if stars is not None and rating != stars:
        return 0 if rating is None else rating
    if rating not in (None, 0) and rating != stars:
        return rating
    exif_rating = X.parse_rating(exif.get(X.EXIF_RATING))
    # photod writes a reject as EXIF 0 and a rating as itself; anything else is a camera's or
    # a tool's.
    if exif_rating not in (None, 0) and exif_rating != stars:
        return exif_rating
    return None


def _find_user_rating(path: Path, targets: list[Location]) -> int | None:
    for loc in sorted(locations(path), key=lambda loc: not loc.sidecar):
        state = _state(loc, strict=loc in targets)
        if state is not None:
            rating = _user_rating_in(*state)
            if rating is not None:
                return rating
    return None


def _write(
    loc: Location,
    xmp: dict[str, str | None],
    exif: dict[str, str] | None,
    warnings: list[str] | None = None,
) -> bool:
    """Write one location atomically; False when a new sidecar lost a race to another writer.
    Warnings met (odd but readable metadata) are appended to `warnings`; they never block."""

    def change(tmp: Path) -> None:
        met = X.modify(tmp, xmp, exif)
        if warnings is not None:
            warnings.extend(met)

    try:
        if loc.sidecar and not loc.exists:
            return atomic_create(loc.path, X.MINIMAL_PACKET, change)
        verify = None if loc.sidecar else X.verify_image_data
        atomic_rewrite(loc.path, change, verify)
        return True
    except MetadataError as exc:
        if exc.path is None:
            exc.path = str(loc.path)
        raise


def _write_all(
    path: Path,
    targets: list[Location],
    xmp: dict[str, str | None],
    exif: dict[str, str] | None,
    outcome: WriteOutcome,
) -> WriteOutcome:
    for loc in targets:
        exif_here = exif if (not loc.sidecar and X.carries_exif(path)) else None
        try:
            done = _write(loc, xmp, exif_here, outcome.warnings)
            if not done:  # someone created the sidecar a moment ago: merge into theirs
                done = _write(Location(loc.name, loc.path, True), xmp, None, outcome.warnings)
        except MetadataError as exc:
            exc.written = list(outcome.written)  # type: ignore[attr-defined]
            if outcome.written:
                log.error("%s; already written: %s", exc, ", ".join(outcome.written))
            raise
        outcome.written.append(str(loc.path))
        log.debug("wrote rating metadata to %s", loc.path)
    return outcome


def write_rating(
    path: str | os.PathLike[str],
    info: RatingInfo,
    mode: str = "auto",
    force: bool = False,
    sidecar_only: bool = False,
) -> WriteOutcome:
    """Record `info` as xmp:Rating (+ EXIF Rating where the format has EXIF) and photod:* fields.

    Returns what was written, or why nothing was (`skipped`), with any user rating found.
    Raises MetadataError when a location cannot be read or written; each file is either fully
    written or untouched (`exc.written` lists files done before the failure).
    """
    from photod import __version__

    photo = Path(path)
    outcome = WriteOutcome(path=str(photo), written=[])
    if not photo.is_file():
        raise MetadataError("file vanished or is not a file; nothing was written", str(photo))
    targets, reason = _targets(photo, mode, sidecar_only)
    if not targets:
        outcome.skipped = reason
        return outcome
    outcome.user_rating = _find_user_rating(photo, targets)
    if outcome.user_rating is not None and not force:
        outcome.skipped = f"user rating {outcome.user_rating} kept (use --force)"
        log.debug("%s: %s", photo, outcome.skipped)  # the caller reports it with the photo
        return outcome
    fields = X.rating_fields(
        info.score,
        info.stars,
        info.model,
        info.scored_at or "",
        info.label,
        info.extra,
        __version__,
    )
    return _write_all(photo, targets, fields, X.exif_rating_fields(info.stars), outcome)


def write_label(
    path: str | os.PathLike[str],
    label: str | None,
    mode: str = "auto",
    sidecar_only: bool = False,
) -> WriteOutcome:
    """Set the colour label (xmp:Label, e.g. "Red") or remove it with None; nothing else changes.

    A label is an explicit user action (culling), so an existing rating does not stop it.
    """
    photo = Path(path)
    outcome = WriteOutcome(path=str(photo), written=[])
    if not photo.is_file():
        raise MetadataError("file vanished or is not a file; nothing was written", str(photo))
    targets, reason = _targets(photo, mode, sidecar_only)
    if label is None:  # removing needs no new sidecar
        targets = [t for t in targets if t.exists]
    if not targets:
        outcome.skipped = reason or "no label to remove"
        return outcome
    for loc in targets:
        _state(loc, strict=True)  # refuse before writing anything when one target is broken
    return _write_all(photo, targets, {X.LABEL: label}, None, outcome)


def read_user_rating(path: str | os.PathLike[str]) -> int | None:
    """The rating the user set (not photod), from sidecars first, then embedded XMP and EXIF;
    None when there is none; 0 is the user's "no stars" where photod had written stars.
    Unreadable metadata is logged and skipped."""
    return _find_user_rating(Path(path), targets=[])


def read_photod_fields(path: str | os.PathLike[str]) -> dict:
    """photod's fields and the xmp:Rating next to them, from the first location that has photod
    fields (embedded, then darktable sidecar, then Lightroom sidecar).

    Keys: rating, label, score, stars, model, version, scored_at (None when absent), extra (other
    photod:* fields), source (the file they came from, None when photod never wrote this photo).
    """
    photo = Path(path)
    result: dict = {
        "rating": None,
        "label": None,
        "score": None,
        "stars": None,
        "model": None,
        "version": None,
        "scored_at": None,
        "extra": {},
        "source": None,
    }
    for loc in locations(photo):
        state = _state(loc, strict=False)
        if state is None:
            continue
        xmp, _exif = state
        fields = X.photod_fields(xmp)
        if not fields:
            continue
        score = fields.pop("Score", None)
        try:
            result["score"] = None if score is None else float(score)
        except ValueError:
            result["score"] = None
        result["stars"] = X.parse_rating(fields.pop("Stars", None))
        result["model"] = fields.pop("Model", None)
        result["version"] = fields.pop("Version", None)
        result["scored_at"] = fields.pop("ScoredAt", None)
        result["extra"] = fields
        result["rating"] = X.parse_rating(xmp.get(X.RATING))
        result["label"] = xmp.get(X.LABEL)
        result["source"] = str(loc.path)
        break
    return result
