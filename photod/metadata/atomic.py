"""Crash-safe file writes: every change goes to a hidden temp copy in the same folder, then replaces
the original with one `os.replace`.

pyexiv2 (like exiv2) rewrites a file in place; killed mid-write that left 16 of 30 JPEGs corrupted
(NOTES.md). Here the original is never opened for writing: a copy is modified, flushed to disk
(fsync), renamed over the original (atomic on POSIX within one filesystem) and the folder entry is
flushed too, so after a crash at any moment the path holds either the old or the new file, and at
worst a stale `TEMP_PREFIX` file that `clean_stale_temp_files` removes.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from photod.errors import MetadataError, PhotodError
from photod.metadata.records import TEMP_PREFIX

log = logging.getLogger("photod")


def temp_path_for(path: Path) -> Path:
    """A hidden, unique temp name next to `path` that keeps its extension (exiv2 and darktable look
    at content, but people and tools look at extensions)."""
    return path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")


def fsync_dir(folder: Path) -> None:
    """Flush a folder entry (the rename) to disk; some filesystems cannot, which is not an error."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def _flush_folder_after_rename(path: Path) -> None:
    """fsync the folder once the new file is in place. Failing here is no "nothing was
    changed": the change is made and visible, only not yet known to be on disk."""
    try:
        fsync_dir(path.parent)
    except OSError as exc:
        log.warning(
            "%s: written, but the folder could not be flushed to disk (%s); a power cut now "
            "could undo the change",
            path,
            exc.strerror or exc,
        )


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _os_error(exc: OSError, path: Path, action: str) -> MetadataError:
    reasons = {
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.EROFS: "read-only filesystem",
        errno.ENOENT: "file vanished",
        errno.ENOSPC: "disk full",
        errno.EDQUOT: "disk quota exceeded",
    }
    reason = reasons.get(exc.errno or 0, exc.strerror or str(exc))
    return MetadataError(f"cannot {action}: {reason}; nothing was changed", str(path))


def _same_file(before: os.stat_result, path: Path) -> bool:
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False
    return (now.st_ino, now.st_size, now.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def _writable(path: Path, st: os.stat_result | None = None) -> bool:
    """Writable for us and not chmod'ed read-only for everyone (root passes os.access)."""
    try:
        st = st or os.stat(path)
    except OSError:
        return False
    return os.access(path, os.W_OK) and bool(st.st_mode & 0o222)


def _keep_attributes(original: Path, tmp: Path, st: os.stat_result) -> None:
    """The replacement keeps the original's permission bits, extended attributes (e.g. macOS
    tags, SELinux labels where allowed) and its owner and group; the modification time is then
    updated by the write itself, so Lightroom notices the change.

    A replacement photod cannot give the original's owner (only root may give a file away) is
    refused: in a shared folder the photo would silently become photod's user's file.
    """
    shutil.copystat(original, tmp)
    tmp_st = os.stat(tmp)
    if (tmp_st.st_uid, tmp_st.st_gid) == (st.st_uid, st.st_gid):
        return
    try:
        if tmp_st.st_uid == st.st_uid:
            os.chown(tmp, -1, st.st_gid)  # a member of the file's group may set it
        else:
            os.chown(tmp, st.st_uid, st.st_gid)
    except OSError as exc:
        error = MetadataError(
            f"cannot keep the file's owner (uid {st.st_uid}, gid {st.st_gid}): "
            f"{exc.strerror}; the rewritten file would belong to uid {tmp_st.st_uid}; "
            "nothing was changed (use sidecar mode for photos of other users)",
            str(original),
        )
        error.code = "owner"
        raise error from exc


def _cleanup(tmp: Path) -> None:
    with contextlib.suppress(OSError):
        tmp.unlink()


def _copy_contents(src: BinaryIO, dst: BinaryIO) -> None:
    """Copy a whole file in the kernel (copy_file_range: no pass through Python's buffers, a
    reflink where the filesystem shares blocks), else through user space."""
    size = os.fstat(src.fileno()).st_size
    copied = 0
    try:
        while copied < size:
            done = os.copy_file_range(src.fileno(), dst.fileno(), size - copied)
            if done == 0:  # it shrank meanwhile
                break
            copied += done
    except (AttributeError, OSError) as exc:
        if copied or (isinstance(exc, OSError) and exc.errno not in _NO_KERNEL_COPY):
            raise
        src.seek(0)
        shutil.copyfileobj(src, dst, 1 << 20)
    # A file that changed size meanwhile is refused by the identity check before the rename.


# copy_file_range refuses some file pairs (another filesystem on old kernels, special files).
_NO_KERNEL_COPY = {errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF}


def atomic_rewrite(
    path: str | os.PathLike[str],
    modify: Callable[[Path], None],
    verify: Callable[[Path, Path], None] | None = None,
) -> None:
    """Change an existing file through a temp copy: copy, `modify(temp)`, optional
    `verify(original, temp)`, fsync, `os.replace`, fsync the folder.

    Raises MetadataError (the original untouched, the temp file removed) when the file is missing,
    read-only, in a read-only folder, changed by someone else meanwhile, or `modify` fails.
    A symlink is followed: the file it points to is replaced, the link stays.
    """
    real = Path(os.path.realpath(path))
    try:
        before = os.stat(real)
    except FileNotFoundError:
        raise MetadataError("file vanished before writing", str(path)) from None
    except OSError as exc:
        raise _os_error(exc, real, "read file") from exc
    # os.replace would happily swap a read-only file in a writable folder (and root may write
    # anything): respect the user's chmod of the file and of its folder.
    if not _writable(real, before):
        raise MetadataError("file is read-only; nothing was changed", str(path))
    if not _writable(real.parent):
        raise MetadataError("folder is read-only; nothing was changed", str(path))
    if before.st_nlink > 1:
        # A rename puts a new file under this one name; the other names would keep the old file.
        error = MetadataError(
            f"file has {before.st_nlink} hard links; rewriting it would split them; nothing was "
            "changed (use sidecar mode, or break the links)",
            str(path),
        )
        error.code = "hard_link"
        raise error
    tmp = temp_path_for(real)
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, before.st_mode & 0o7777)
        except OSError as exc:
            raise _os_error(exc, real.parent, "create a temp file in the folder") from exc
        with os.fdopen(fd, "wb") as dst, open(real, "rb") as src:
            _copy_contents(src, dst)
        _keep_attributes(real, tmp, before)
        modify(tmp)
        os.utime(tmp)  # a changed file gets a new mtime even if `modify` wrote through mmap
        if verify is not None:
            verify(real, tmp)
        _fsync_file(tmp)
        if not _same_file(before, real):
            raise MetadataError(
                "file changed or vanished while writing; nothing was changed", str(path)
            )
        os.replace(tmp, real)
        _flush_folder_after_rename(real)
    except PhotodError:
        _cleanup(tmp)
        raise
    except OSError as exc:
        _cleanup(tmp)
        raise _os_error(exc, real, "write metadata") from exc
    except Exception as exc:  # pyexiv2 raises RuntimeError for broken metadata
        _cleanup(tmp)
        message = f"cannot write metadata: {exc}; nothing was changed"
        raise MetadataError(message, str(path)) from exc
    except BaseException:
        _cleanup(tmp)
        raise


def atomic_create(
    path: str | os.PathLike[str], data: bytes, modify: Callable[[Path], None] | None = None
) -> bool:
    """Create a new file with `data` (then `modify(temp)`), never clobbering one that appeared
    meanwhile. Returns False, writing nothing, when `path` already exists."""
    target = Path(path)
    if not _writable(target.parent):
        raise MetadataError("folder is read-only; nothing was written", str(target))
    tmp = temp_path_for(target)
    try:
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError as exc:
            raise _os_error(exc, target.parent, "create a file in the folder") from exc
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if modify is not None:
            modify(tmp)
        _fsync_file(tmp)
        try:
            # link() is an atomic "create if absent": a sidecar Lightroom or darktable wrote a
            # moment ago is never replaced by our fresh one.
            os.link(tmp, target)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if target.exists():  # filesystem without hard links (FAT, some FUSE)
                return False
            os.replace(tmp, target)
        _flush_folder_after_rename(target)
        return True
    except PhotodError:
        raise
    except OSError as exc:
        raise _os_error(exc, target, "write file") from exc
    except Exception as exc:
        message = f"cannot write metadata: {exc}; nothing was changed"
        raise MetadataError(message, str(target)) from exc
    finally:
        _cleanup(tmp)


def clean_stale_temp_files(folder: str | os.PathLike[str], min_age_s: float = 0.0) -> int:
    """Remove `TEMP_PREFIX` leftovers of a crashed write in `folder` (not recursive).

    `min_age_s` spares temp files younger than that, for when another photod process may be
    writing right now. Returns how many were removed.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(folder))
    except OSError as exc:
        log.warning("cannot list %s for stale temp files: %s", folder, exc)
        return 0
    for entry in entries:
        if not entry.name.startswith(TEMP_PREFIX):
            continue
        try:
            if not entry.is_file(follow_symlinks=False):
                continue
            if min_age_s and now - entry.stat(follow_symlinks=False).st_mtime < min_age_s:
                continue
            os.unlink(entry.path)
            removed += 1
            log.info("removed stale temp file %s", entry.path)
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.warning("cannot remove stale temp file %s: %s", entry.path, exc)
    return removed
