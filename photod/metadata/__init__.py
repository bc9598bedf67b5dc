"""photod's metadata writer: star ratings Lightroom, darktable and file browsers read.

Public API (other modules code against exactly this):

- `write_rating(path, RatingInfo, mode, force, sidecar_only) -> WriteOutcome`
- `write_label(path, label, mode, sidecar_only) -> WriteOutcome`
- `read_user_rating(path)`, `read_photod_fields(path)`, `rating_report(path)`
- `atomic_rewrite(path, modify)`, `clean_stale_temp_files(folder)`, `sidecar_paths(path)`

Importing this package is cheap: pyexiv2 loads on the first read or write.
"""

from __future__ import annotations

from photod.metadata.atomic import atomic_rewrite, clean_stale_temp_files
from photod.metadata.records import (
    MODES,
    PHOTOD_NS,
    PHOTOD_PREFIX,
    TEMP_PREFIX,
    RatingInfo,
    WriteOutcome,
)
from photod.metadata.report import rating_report
from photod.metadata.writer import (
    read_photod_fields,
    read_user_rating,
    sidecar_paths,
    write_label,
    write_rating,
)

__all__ = [
    "MODES",
    "PHOTOD_NS",
    "PHOTOD_PREFIX",
    "TEMP_PREFIX",
    "RatingInfo",
    "WriteOutcome",
    "atomic_rewrite",
    "clean_stale_temp_files",
    "rating_report",
    "read_photod_fields",
    "read_user_rating",
    "sidecar_paths",
    "write_label",
    "write_rating",
]
