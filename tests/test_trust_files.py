"""File identity in the atomic writer (issue 16, finding 11): hard links are never split, an owner
photod cannot keep is never silently changed, and a folder flush that fails after the rename is not
reported as "nothing was changed". Real files, real links, real owners (root drops to nobody)."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest

from photod.errors import MetadataError
from photod.index import get_by_path, open_index
from photod.metadata import RatingInfo, read_photod_fields, write_rating
from photod.pipeline import process_paths
from tests import photos

INFO = RatingInfo(score=3.4, stars=4, model="test", scored_at="2026-12-01T00:00:00+00:00")


def test_hard_linked_photo_is_refused_not_split(tmp_path: Path, scorer):
    photo = photos.write_jpeg(tmp_path / "cat.jpg", photos.real_photo("chelsea", 0.5))
    other = tmp_path / "backup" / "cat.jpg"
    other.parent.mkdir()
    os.link(photo, other)
    before = photo.read_bytes()
    db = open_index(tmp_path / "index.db")
    try:
        (result,) = list(process_paths([photo], scorer, db))
        # Scored and indexed; the rating write was refused (issue 15: ok row + write_error).
        assert result.write_error_code == "hard_link", result.to_dict()
        assert "hard links" in result.write_error and "nothing was changed" in result.write_error
        assert os.stat(photo).st_ino == os.stat(other).st_ino  # still one file under two names
        assert os.stat(photo).st_nlink == 2
        assert photo.read_bytes() == before
        assert get_by_path(db, str(photo))["write_error_code"] == "hard_link"
        from photod.index import counts

        assert counts(db)["write_pending"] == 0  # not a transient failure: no retry loop
    finally:
        db.close()
    # A sidecar is fine: the photo itself is not rewritten.
    assert write_rating(photo, INFO, mode="sidecar").written


@pytest.fixture()
def shared_folder():
    """A world-writable folder outside pytest's private tmp (which nobody may not enter)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to hand a file to another user")
    folder = Path(tempfile.mkdtemp(prefix="photod-shared-", dir="/tmp"))
    folder.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_photo_of_another_user_is_not_handed_to_photods_user(shared_folder: Path):
    photo = photos.write_jpeg(shared_folder / "theirs.jpg", photos.real_photo("coffee", 0.4))
    photo.chmod(0o666)  # writable by all: only the owner change would be lost
    os.chown(photo, 0, 0)
    warm = photos.write_jpeg(shared_folder / "warm.jpg", photos.real_photo("coffee", 0.3))
    write_rating(warm, INFO)  # import everything the writer needs while still root
    before = photo.read_bytes()
    os.setegid(65534)
    os.seteuid(65534)  # photod running as another user (nobody)
    try:
        with pytest.raises(MetadataError) as caught:
            write_rating(photo, INFO)
    finally:
        os.seteuid(0)
        os.setegid(0)
    assert caught.value.code == "owner"
    assert "nothing was changed" in str(caught.value)
    st = os.stat(photo)
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert photo.read_bytes() == before
    assert not [p for p in shared_folder.iterdir() if p.name.startswith(".photod")]


def test_failed_folder_flush_after_rename_is_not_nothing_changed(
    tmp_path: Path, monkeypatch, caplog
):
    """fsync of the folder fails (EIO from a failing disk): the rating is in the file, and the
    writer says so instead of "nothing was changed"."""
    photo = photos.write_jpeg(tmp_path / "cat.jpg", photos.real_photo("chelsea", 0.5))
    real_fsync = os.fsync

    def failing_folder_fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_folder_fsync)
    with caplog.at_level(logging.WARNING, logger="photod"):
        outcome = write_rating(photo, INFO)
    assert outcome.written == [str(photo)]
    assert read_photod_fields(photo)["stars"] == 4
    assert "could not be flushed" in caplog.text
    assert "nothing was changed" not in caplog.text
