"""RAW files decoded from their smallest sufficient embedded preview, and their EXIF read from
their IFDs: real DNGs (a real mosaic, real JPEG previews) laid out as cameras write them."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import inputs
from photod import decode, raw_previews
from photod.decode import decode_image
from tests import photos

MAKERS = Path(__file__).resolve().parents[2] / "shared" / "data" / "makers"


def _camera_dng(path: Path, orientation: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A DNG whose full-size preview is one picture and whose medium preview another, so the
    pixels tell which preview was decoded."""
    full = photos.real_photo("chelsea", scale=3)  # 1353x900
    medium = photos.real_photo("rocket")  # 640x427
    mosaic = inputs.bayer_mosaic(photos.real_photo("coffee"))
    data = inputs.dng_with_preview(
        inputs.encode_jpeg(full), mosaic, orientation, inputs.encode_jpeg(medium)
    )
    path.write_bytes(data)
    return full, medium


def _error(pixels: np.ndarray, picture: np.ndarray) -> float:
    h, w = pixels.shape[:2]
    expected = np.asarray(Image.fromarray(picture).resize((w, h), Image.Resampling.BILINEAR))
    return float(np.abs(pixels.astype(float) - expected).mean())


def test_the_smallest_preview_that_is_large_enough_is_decoded(tmp_path: Path) -> None:
    path = tmp_path / "DSC_0001.dng"
    full, medium = _camera_dng(path)
    data = path.read_bytes()
    found = raw_previews.previews(data)
    assert [(p.width, p.height) for p in found] == [(640, 427), (1353, 900)]
    import io

    import rawpy

    with rawpy.imread(str(path)) as raw:  # what LibRaw alone would decode: the largest
        assert Image.open(io.BytesIO(raw.extract_thumb().data)).size == (1353, 900)

    small = decode_image(path, min_side=224, data=data)
    assert _error(small.pixels, medium) < 8 < _error(small.pixels, full)
    # DCT-scaled like a JPEG: 427 / 2 >= 200, not 224.
    assert decode_image(path, min_side=200, data=data).pixels.shape[:2] == (214, 320)
    large = decode_image(path, min_side=600, data=data)  # more than the medium one has
    assert _error(large.pixels, full) < 8 < _error(large.pixels, medium)
    # Read from the path, the file gives the same pixels as from its bytes.
    assert np.array_equal(decode_image(path, min_side=224).pixels, small.pixels)
    assert small.original_size == large.original_size == (600, 400)  # the mosaic's (coffee)


def test_a_medium_preview_without_exif_takes_the_raw_files_orientation(tmp_path: Path) -> None:
    path = tmp_path / "portrait.dng"
    _, medium = _camera_dng(path, orientation=6)
    decoded = decode_image(path, min_side=224)
    assert decoded.original_size == (400, 600)  # LibRaw's flip: upright
    upright = np.ascontiguousarray(np.rot90(medium, k=-1))  # orientation 6: 90° clockwise
    assert _error(decoded.pixels, upright) < 8 < _error(decoded.pixels, np.rot90(medium))


def test_a_broken_medium_preview_falls_back_to_libraw(tmp_path: Path) -> None:
    path = tmp_path / "broken.dng"
    full, medium = _camera_dng(path)
    data = bytearray(path.read_bytes())
    smallest = raw_previews.previews(bytes(data))[0]
    scan = data.find(b"\xff\xda", smallest.offset)
    end = smallest.offset + smallest.length
    data[scan + 20 : end] = b"\x00" * (end - scan - 20)  # its scan data zeroed, EOI gone
    path.write_bytes(bytes(data))
    decoded = decode_image(path, min_side=224)
    assert _error(decoded.pixels, full) < 8  # LibRaw's (largest) preview, decoded fine


def test_a_bomb_preview_is_refused_on_the_ifd_path_too(tmp_path: Path) -> None:
    from photod.errors import ImageTooLargeError

    path = tmp_path / "bomb.dng"
    preview = inputs.encode_jpeg(photos.real_photo("chelsea"))
    data = bytearray(inputs.dng_with_preview(preview, inputs.bayer_mosaic(photos.real_photo())))
    sof = data.find(b"\xff\xc0", data.find(preview[:64]))
    data[sof + 5 : sof + 9] = (6000).to_bytes(2, "big") + (8000).to_bytes(2, "big")
    path.write_bytes(bytes(data))
    assert [(p.width, p.height) for p in raw_previews.previews(bytes(data))] == [(8000, 6000)]
    with pytest.raises(ImageTooLargeError, match="48 MP"):
        decode_image(path, min_side=224, max_pixels=20_000_000)


@pytest.mark.parametrize("name", ["CanonRaw.cr2", "Nikon.nef", "exif-set.dng"])
def test_exif_from_the_ifds_equals_exiv2s(tmp_path: Path, name: str) -> None:
    """Real cameras' files (exiftool's samples) and a DNG whose EXIF exiv2 wrote: the IFD walk
    gives the values exiv2 gives, for every field photod indexes."""
    if name == "exif-set.dng":
        import pyexiv2

        path = photos.write_dng(tmp_path / name, photos.real_photo("coffee"))
        image = pyexiv2.Image(str(path))
        image.modify_exif(
            {
                "Exif.Photo.DateTimeOriginal": "2026:06:20 14:03:07",
                "Exif.Photo.SubSecTimeOriginal": "45",
                "Exif.Photo.ExposureBiasValue": "-2/3",
                "Exif.Photo.ExposureTime": "1/250",
                "Exif.Photo.FNumber": "28/10",
                "Exif.Photo.ISOSpeedRatings": "400",
                "Exif.Photo.LensModel": "Lens 50mm F1.8",
                "Exif.Photo.FocalLength": "50/1",
            }
        )
        image.close()
    else:
        path = MAKERS / name
    data = path.read_bytes()
    assert raw_previews.is_tiff_based(data)
    from_ifds = decode._raw_exif(path, data)
    from_exiv2 = decode._exiv2_exif(path)
    from_exiv2["orientation"] = 1
    assert from_ifds == pytest.approx(from_exiv2)
    assert {"make", "model", "datetime_original", "exposure_time", "iso"} <= set(from_ifds)


def test_exif_of_a_dng_exiv2_refuses_is_read_from_its_ifds() -> None:
    """exiftool's DNG sample: exiv2 refuses its Canon maker notes, so before the IFD walk its
    capture time and camera were lost."""
    path = MAKERS / "DNG.dng"
    assert decode._exiv2_exif(path) == {}
    exif = decode._raw_exif(path, path.read_bytes())
    assert exif["model"] == "Canon EOS 350D DIGITAL"
    assert exif["datetime_original"] == "2005:08:03 18:59:18"


def test_damaged_ifds_never_raise(tmp_path: Path) -> None:
    """Truncations and flipped bytes anywhere in the IFDs yield fewer previews or tags, never
    an exception (LibRaw then says what is wrong)."""
    path = tmp_path / "a.dng"
    _camera_dng(path)
    data = path.read_bytes()
    head = raw_previews.previews(data)[0].offset  # IFDs and their values lie before it
    rng = random.Random(7)
    for trial in range(400):
        damaged = bytearray(data[: rng.randrange(8, len(data))] if trial % 4 == 0 else data)
        for _ in range(rng.randrange(1, 6)):
            damaged[rng.randrange(0, min(head, len(damaged)))] = rng.randrange(256)
        for preview in raw_previews.previews(bytes(damaged)):
            assert preview.offset + preview.length <= len(damaged)
            assert damaged[preview.offset : preview.offset + 2] == b"\xff\xd8"
        raw_previews.exif_tags(bytes(damaged), set(decode._EXIF_TAGS))
