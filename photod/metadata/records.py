"""Plain records of the metadata API: what to write (`RatingInfo`), what happened (`WriteOutcome`).

Kept apart from the writer so that importing them costs nothing (no pyexiv2) and other modules
(index, daemon, web) can type against them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

# Temp files live in the photo's own folder (so os.replace is atomic) and are hidden with this
# prefix, which the folder watcher ignores and `clean_stale_temp_files` removes after a crash.
TEMP_PREFIX = ".photod-tmp-"

# photod's own XMP namespace: its fields tell photod's ratings apart from the user's.
PHOTOD_NS = "http://ns.photod.dev/1.0/"
PHOTOD_PREFIX = "photod"

# Write modes; `auto` picks per format (embedded for JPEG/TIFF/PNG/DNG, sidecars otherwise).
MODES = ("auto", "embedded", "sidecar", "both", "none")


def utc_now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


@dataclass
class RatingInfo:
    """One rating photod wants to record for a photo."""

    score: float
    stars: int  # -1 (reject) or 0..5
    model: str  # model version string
    scored_at: str | None = None  # ISO 8601; None means now (UTC)
    label: str | None = None  # optional xmp:Label (colour label), off by default
    extra: dict[str, str] = field(default_factory=dict)  # more photod:* fields

    def __post_init__(self) -> None:
        if not isinstance(self.stars, int) or not -1 <= self.stars <= 5:
            raise ValueError(f"stars must be an int in -1..5, got {self.stars!r}")
        if self.scored_at is None:
            self.scored_at = utc_now_iso()


@dataclass
class WriteOutcome:
    """What a write did: files written, or why nothing was."""

    path: str
    written: list[str] = field(default_factory=list)  # files actually written
    skipped: str | None = None  # why nothing was written
    user_rating: int | None = None  # a rating found that photod did not write
    # odd but readable metadata met on the way (logged; the rating was still written)
    warnings: list[str] = field(default_factory=list)

    @property
    def status(self) -> str:
        """'written', 'skipped' (with the reason in `skipped`), or 'not_written' (nothing written
        and no reason: never reported as success)."""
        if self.written:
            return "written"
        return "skipped" if self.skipped else "not_written"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": self.status}
