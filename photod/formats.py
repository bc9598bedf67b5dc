"""The file types photod reads, by extension: one place for the decoder, the metadata writer,
the folder scanners and the web upload check.

It imports nothing of photod, so both `photod.decode` and `photod.metadata` can depend on it
without depending on each other.
"""

from __future__ import annotations

import os
from pathlib import Path

JPEG_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif"}
RAW_EXTENSIONS = {
    ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".srf", ".sr2", ".raf", ".orf", ".rw2", ".dng",
    ".pef", ".srw", ".x3f", ".3fr", ".iiq", ".erf", ".kdc", ".mos", ".mrw",
}  # fmt: skip
HEIF_EXTENSIONS = {".heic", ".heif", ".hif", ".avif"}
PILLOW_EXTENSIONS = {".png", ".tif", ".tiff", ".webp", ".bmp"}
SUPPORTED_EXTENSIONS = JPEG_EXTENSIONS | RAW_EXTENSIONS | HEIF_EXTENSIONS | PILLOW_EXTENSIONS


def is_supported(path: str | os.PathLike[str]) -> bool:
    """True when the file name has an extension photod knows how to decode."""
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS
