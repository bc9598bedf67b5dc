"""Typed errors raised by the photod library.

Every failure a user can cause with a bad file or a bad setting is a `PhotodError` with a short
machine-readable `code`, so the CLI, the daemon and the web page can report it the same way and the
index can store it in the `error` column without parsing messages.
"""

from __future__ import annotations

import os


class PhotodError(Exception):
    """Base class of every error photod raises on purpose."""

    code = "error"

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        message = super().__str__()
        return f"{self.path}: {message}" if self.path else message

    @property
    def message(self) -> str:
        """The message without the path (for a report that shows the path already)."""
        return super().__str__()

    def message_for(self, path: str | os.PathLike[str] | None) -> str:
        """The message for a line or row that already names `path`: the path is not repeated,
        but another file's path (a sidecar, a temp copy) is kept."""
        if self.path and (path is None or os.fspath(self.path) != os.fspath(path)):
            return str(self)
        return self.message


class DecodeError(PhotodError):
    """A file could not be turned into pixels."""

    code = "decode"


class EmptyFileError(DecodeError):
    code = "empty"


class TruncatedImageError(DecodeError):
    code = "truncated"


class NotAnImageError(DecodeError):
    code = "not_an_image"


class UnsupportedFormatError(DecodeError):
    code = "unsupported"


class ImageTooLargeError(DecodeError):
    code = "too_large"


class FileUnreadableError(DecodeError):
    code = "unreadable"


class FileVanishedError(DecodeError):
    code = "vanished"


class ModelError(PhotodError):
    """A model could not be found, built or loaded."""

    code = "model"


class MetadataError(PhotodError):
    """Ratings or other metadata could not be read or written; the photo itself is unchanged."""

    code = "metadata"
