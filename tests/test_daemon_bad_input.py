"""Bad input dropped into a watched folder: each gets an error row or a skip log line, and the
daemon keeps running and scoring good photos (real process, real inotify, real files)."""

from __future__ import annotations

import os
import struct
import time
import zlib
from pathlib import Path

from PIL import Image

from tests import photos
from tests.test_daemon import DaemonProcess, rows_by_name


def _huge_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A real PNG whose header claims width x height (a decompression bomb's calling card)."""
    Image.new("RGB", (1, 1)).save(path, "PNG")
    data = bytearray(path.read_bytes())
    # IHDR starts at byte 8: length(4) 'IHDR'(4) width(4) height(4) ...; its CRC covers type+data.
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def test_bad_input_never_stops_the_daemon(tmp_path: Path) -> None:
    folder = tmp_path / "import"
    folder.mkdir()
    db_path = tmp_path / "index.db"
    good_source = photos.write_jpeg(tmp_path / "good.jpg", photos.real_photo("chelsea", 0.4))
    good_bytes = good_source.read_bytes()

    with DaemonProcess([folder], db_path) as daemon:
        daemon.wait_ready()
        (folder / "empty.jpg").write_bytes(b"")
        (folder / "cut.jpg").write_bytes(good_bytes[:200])
        (folder / "notes.jpg").write_text("a shopping list, not a photo")
        photos.write_jpeg(folder / "really a jpeg.png", photos.real_photo("coffee", 0.3))
        _huge_png(folder / "huge.png")
        locked = photos.write_jpeg(folder / "locked.jpg", photos.real_photo("rocket", 0.3))
        locked.chmod(0o000)
        (folder / "album.jpg").mkdir()
        inside = photos.write_jpeg(folder / "album.jpg" / "inside.jpg",
                                   photos.real_photo("astronaut", 0.3))  # fmt: skip
        os.symlink(folder / "loop.jpg", folder / "loop.jpg")
        ephemeral = folder / "ephemeral.jpg"
        ephemeral.write_bytes(good_bytes)
        ephemeral.unlink()
        odd = folder / "Ünïcödé  photo 🌅 (1).jpg"
        photos.write_jpeg(odd, photos.real_photo("coffee", 0.35))
        not_utf8 = os.path.join(os.fsencode(folder), b"caf\xe9.jpg")
        with open(not_utf8, "wb") as handle:
            handle.write(good_bytes)

        expected_errors = {
            "empty.jpg": "empty",
            "cut.jpg": "truncated",
            "notes.jpg": "not_an_image",
            "huge.png": "too_large",
            "loop.jpg": "unreadable",
        }
        for name in expected_errors:
            daemon.wait_result(folder / name)
        for path in (folder / "really a jpeg.png", inside, odd, locked):
            daemon.wait_result(path)
        daemon.wait_for(lambda: "not valid UTF-8" in daemon.log_text(), 30, "the UTF-8 skip")

        # Still alive and scoring: a good photo dropped after all that.
        after = folder / "after.jpg"
        after.write_bytes(good_bytes)
        assert daemon.wait_result(after)["action"] == "scored"
        assert daemon.proc.poll() is None
        time.sleep(1)
        log = daemon.log_text()
        assert daemon.stop() == 0

    rows = rows_by_name(db_path)
    for name, code in expected_errors.items():
        assert rows[name]["status"] == "error", name
        assert rows[name]["error_code"] == code, (name, rows[name]["error"])
        assert rows[name]["error"], name
    for name in ("inside.jpg", odd.name, "after.jpg"):
        assert rows[name]["status"] == "ok", name
    # A JPEG named .png decodes and is scored; the metadata writer refuses to write PNG chunks
    # into it: the score is indexed (status ok) and the refusal recorded in write_error (not a
    # crash, not a damaged file, not a lost score).
    fake = rows["really a jpeg.png"]
    assert fake["score"] is not None and fake["status"] == "ok"
    assert "photod writes no metadata into it" in fake["write_error"]
    # Mode 000: unreadable for a user (an error row that says why); root can read and score it,
    # but the writer respects the read-only mode: an ok row with the score and the write failure.
    locked_row = rows["locked.jpg"]
    if locked_row["status"] == "error":
        assert locked_row["error_code"] == "unreadable"
    else:
        assert locked_row["status"] == "ok" and locked_row["score"] is not None
        assert "read-only" in locked_row["write_error"]
    assert "album.jpg" not in rows
    assert "skipped " + str(folder / "album.jpg") + ": a folder" in log
    assert "ephemeral.jpg" not in rows
    assert str(ephemeral) in log  # said why it was skipped
    assert "Traceback" not in log
    assert not [r for r in daemon.results if r["action"] == "error" and r["error_code"] == "bug"]
