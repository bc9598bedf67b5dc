"""The file types photod reads, by extension: one place for the decoder, the metadata writer,
the folder scanners and the web upload check.

It imports nothing of photod, so both `photod.decode` and `photod.metadata` can depend on it
without depending on each other.
"""

from __future__ import annotations

import os
from pathlib import Path

JPEG_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif"}
# Every still-camera RAW extension LibRaw reads (its supported-camera list, as digiKam's
# LibRaw extension table names them), so a folder scan never silently skips a RAW: a file LibRaw
# then cannot decode (an unsupported variant, GoPro's VC5 without the GPR SDK) gets an error row.
# Left out on purpose: .hdr (Radiance HDR far more often than Leaf), .cine (Phantom video),
# .rwz (needs the Rawzor library) and .eip (a Phase One zip bundle).
RAW_EXTENSIONS = {
    ".3fr", ".arw", ".bay", ".bmq", ".cap", ".cr2", ".cr3", ".crw", ".cs1", ".dc2", ".dcr",
    ".dcs", ".dng", ".drf", ".erf", ".fff", ".gpr", ".ia", ".iiq", ".k25", ".kc2", ".kdc",
    ".mdc", ".mef", ".mos", ".mrw", ".nef", ".nrw", ".orf", ".ori", ".pef", ".ptx", ".pxn",
    ".qtk", ".raf", ".raw", ".rdc", ".rw2", ".rwl", ".sr2", ".srf", ".srw", ".sti", ".x3f",
}  # fmt: skip
HEIF_EXTENSIONS = {".heic", ".heif", ".hif", ".avif"}
PILLOW_EXTENSIONS = {".png", ".tif", ".tiff", ".webp", ".bmp"}
SUPPORTED_EXTENSIONS = JPEG_EXTENSIONS | RAW_EXTENSIONS | HEIF_EXTENSIONS | PILLOW_EXTENSIONS


def is_supported(path: str | os.PathLike[str]) -> bool:
    """True when the file name has an extension photod knows how to decode."""
    return Path(path).suffix.lower() in SUPPORTED_EXTENSIONS
