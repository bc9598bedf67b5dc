"""darktable itself reads the ratings photod writes: embedded XMP (JPEG, PNG, TIFF), sidecars (HEIC,
DNG), reject, a Lightroom-only NAME.xmp, and a darktable history that survives photod's write.

darktable 4.2 runs headless through `darktable-cli --core`: given a folder it imports every image
into the library named by `--library` (a real SQLite file, where `images.flags & 7` is the star
rating and `flags & 8` the reject flag) and exports each, applying the history stack it read.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from photod.metadata import RatingInfo, sidecar_paths, write_rating
from tests import photos
from tests.test_metadata import FOREIGN_SIDECAR

DARKTABLE_CLI = shutil.which("darktable-cli")
pytestmark = pytest.mark.skipif(
    DARKTABLE_CLI is None, reason="darktable-cli missing: `make system-deps` installs it"
)


def run_darktable(source: Path, *args: str, work: Path) -> Path:
    """Import/export `source` (a file or a folder) with a throw-away config; returns the library.

    The config makes an unrated import 0 stars (darktable's default is 1), so every star in the
    library comes from what darktable read.
    """
    config = work / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "darktablerc").write_text("ui_last/import_initial_rating=0\n")
    library = work / "library.db"
    cmd = [DARKTABLE_CLI, str(source), *args, "--core", "--configdir", str(config),
           "--cachedir", str(work / "cache"), "--library", str(library)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return library


def library_ratings(library: Path) -> dict[str, tuple[int, bool]]:
    with sqlite3.connect(library) as db:
        rows = db.execute("SELECT filename, flags FROM images").fetchall()
    return {name: (flags & 7, bool(flags & 8)) for name, flags in rows}


def rating(stars: int) -> RatingInfo:
    return RatingInfo(score=3.0, stars=stars, model="photod-aesthetic-v1")


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One folder of photos rated by photod every way it writes, imported by darktable once."""
    work = tmp_path_factory.mktemp("darktable")
    folder = work / "import"
    folder.mkdir()
    pixels = photos.real_photo("chelsea", scale=0.4)  # 180x120
    written = {}
    jpg = photos.write_jpeg(folder / "embedded.jpg", pixels)
    written["embedded.jpg"] = write_rating(jpg, rating(3))
    png = folder / "embedded.png"
    Image.fromarray(pixels).save(png)
    written["embedded.png"] = write_rating(png, rating(2))
    tif = folder / "embedded.tif"
    Image.fromarray(pixels).save(tif)
    written["embedded.tif"] = write_rating(tif, rating(4))
    written["reject.jpg"] = write_rating(
        photos.write_jpeg(folder / "reject.jpg", pixels), rating(-1)
    )
    written["phone.heic"] = write_rating(
        photos.write_heic(folder / "phone.heic", pixels), rating(4)
    )
    dng = photos.write_dng(folder / "raw.dng", pixels)
    written["raw.dng"] = write_rating(dng, rating(1), sidecar_only=True)
    # Only Lightroom's NAME.xmp: darktable imports it when it has no sidecar of its own.
    lr_only = photos.write_heic(folder / "lightroom.heic", pixels)
    write_rating(lr_only, rating(5))
    sidecar_paths(lr_only)[0].unlink()
    # An edit made in darktable earlier (history: rotate 90°) that photod's write must keep.
    edited = photos.write_jpeg(folder / "edited.jpg", pixels)
    sidecar_paths(edited)[0].write_text(FOREIGN_SIDECAR.replace("photo.heic", "edited.jpg"))
    written["edited.jpg"] = write_rating(edited, rating(5))
    photos.write_jpeg(folder / "unrated.jpg", pixels)  # control: nothing written
    # The evidence for not adding EXIF Rating (surgical.py): darktable takes xmp:Rating over a
    # disagreeing EXIF Rating, and reads photod's XMP-only rating (embedded.jpg) on its own.
    both = photos.write_jpeg(folder / "xmp_over_exif.jpg", pixels)
    subprocess.run(["exiftool", "-q", "-overwrite_original", "-IFD0:Rating=1",
                    "-XMP-xmp:Rating=4", str(both)], check=True)  # fmt: skip
    # A camera JPEG with its own (unrated) EXIF Rating: photod patches it in place.
    written["camera.jpg"] = write_rating(
        photos.write_jpeg(folder / "camera.jpg", pixels, rating=0), rating(2)
    )
    out = work / "export"
    out.mkdir()
    library = run_darktable(folder, str(out), work=work)
    return {"ratings": library_ratings(library), "library": library, "out": out,
            "written": written, "folder": folder}  # fmt: skip


def test_darktable_imports_embedded_ratings(imported):
    ratings = imported["ratings"]
    assert ratings["embedded.jpg"] == (3, False)
    assert ratings["embedded.png"] == (2, False)
    assert ratings["embedded.tif"] == (4, False)
    assert ratings["reject.jpg"][1] is True
    assert ratings["unrated.jpg"] == (0, False)  # the control: stars above come from photod
    assert ratings["xmp_over_exif.jpg"] == (4, False)  # XMP wins over EXIF in darktable
    assert ratings["camera.jpg"] == (2, False)
    out = subprocess.run(["exiftool", "-j", "-IFD0:Rating", str(imported["folder"] / "embedded.jpg"),
                          str(imported["folder"] / "camera.jpg")], capture_output=True, text=True,
                         check=True).stdout  # fmt: skip
    embedded, camera = json.loads(out)
    assert "Rating" not in embedded  # photod's rating reached darktable through XMP alone
    assert camera["Rating"] == 2


def test_darktable_imports_sidecar_ratings_of_untouched_files(imported):
    ratings, folder, written = imported["ratings"], imported["folder"], imported["written"]
    assert ratings["phone.heic"] == (4, False)
    assert ratings["raw.dng"] == (1, False)
    assert written["raw.dng"].written == [str(folder / "raw.dng.xmp")]
    assert ratings["lightroom.heic"] == (5, False)


def test_darktable_history_survives_photod_write(imported):
    assert imported["ratings"]["edited.jpg"] == (5, False)
    assert imported["written"]["edited.jpg"].written == [
        str(imported["folder"] / "edited.jpg"),
        str(imported["folder"] / "edited.jpg.xmp"),
    ]
    with sqlite3.connect(imported["library"]) as db:
        flips = db.execute(
            "SELECT hex(h.op_params) FROM history h JOIN images i ON i.id = h.imgid "
            "WHERE i.filename = 'edited.jpg' AND h.operation = 'flip'"
        ).fetchall()
    assert flips == [("06000000",)]
    # the export applied it: 180x120 became 120x180
    with Image.open(imported["out"] / "edited.jpg") as im:
        assert im.size == (120, 180)
    with Image.open(imported["out"] / "embedded.jpg") as im:
        assert im.size == (180, 120)


def test_darktable_cli_exports_with_the_sidecar_rating(tmp_path):
    photo = photos.write_heic(tmp_path / "single.heic", photos.real_photo("coffee", scale=0.3))
    write_rating(photo, rating(2))
    out = tmp_path / "out.jpg"
    library = run_darktable(photo, str(sidecar_paths(photo)[0]), str(out), work=tmp_path / "dt")
    assert library_ratings(library)["single.heic"] == (2, False)
    tags = subprocess.run(["exiftool", "-s3", "-XMP-xmp:Rating", str(out)],
                          capture_output=True, text=True, check=True)  # fmt: skip
    assert tags.stdout.strip() == "2"
