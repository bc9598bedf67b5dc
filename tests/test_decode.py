"""decode_image on real files of every supported kind, and a typed error for every kind of bad input."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from photod import errors
from photod.decode import decode_image
from tests import photos


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    b = np.asarray(Image.fromarray(b).resize(a.shape[1::-1], Image.Resampling.BILINEAR))
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


@pytest.mark.parametrize("orientation", [1, 3, 6, 8])
def test_jpeg_orientation_is_applied(tmp_path: Path, orientation: int) -> None:
    upright = photos.real_photo("chelsea")
    path = photos.write_jpeg(tmp_path / "o.jpg", upright, orientation=orientation)
    decoded = decode_image(path, min_side=None)
    assert decoded.pixels.shape == upright.shape
    assert decoded.original_size == (upright.shape[1], upright.shape[0])
    assert _mean_abs(decoded.pixels, upright) < 6


def test_large_jpeg_uses_reduced_dct_decoding(tmp_path: Path) -> None:
    big = photos.real_photo("astronaut", scale=6)  # 3072x3072
    path = photos.write_jpeg(tmp_path / "big.jpg", big)
    decoded = decode_image(path, min_side=224)
    # DCT scaling gives 1/8 (384 px); never the full 3072 px decode.
    assert min(decoded.pixels.shape[:2]) == 384
    assert decoded.original_size == (3072, 3072)
    assert decoded.exif["make"] == "Canon"
    assert decoded.exif["lens"].startswith("RF24-70")


def test_cmyk_jpeg(tmp_path: Path) -> None:
    rgb = photos.real_photo("coffee")
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=95)
    decoded = decode_image(path, min_side=None)
    assert decoded.pixels.dtype == np.uint8 and decoded.pixels.shape == rgb.shape
    assert _mean_abs(decoded.pixels, rgb) < 25


def test_greyscale_palette_and_alpha_png(tmp_path: Path) -> None:
    rgb = photos.real_photo("chelsea")
    Image.fromarray(rgb).convert("L").save(tmp_path / "grey.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])
    rgba[:50, :50, 3] = 0  # transparent corner shows as white
    Image.fromarray(rgba, "RGBA").save(tmp_path / "alpha.png")
    for name in ("grey.png", "pal.png", "alpha.png"):
        decoded = decode_image(tmp_path / name, min_side=None)
        assert decoded.pixels.shape == rgb.shape, name
        assert decoded.format == "PNG"
    alpha = decode_image(tmp_path / "alpha.png", min_side=None).pixels
    assert (alpha[:50, :50] == 255).all()
    assert _mean_abs(alpha[60:, 60:], rgb[60:, 60:]) < 1


def test_16bit_tiff(tmp_path: Path) -> None:
    import cv2

    rgb = photos.real_photo("coffee")
    sixteen = rgb.astype(np.uint16) * 257
    path = tmp_path / "deep.tif"
    cv2.imwrite(str(path), sixteen[..., ::-1])
    decoded = decode_image(path, min_side=None)
    assert decoded.pixels.dtype == np.uint8
    assert _mean_abs(decoded.pixels, rgb) < 2


def test_icc_profile_converted_to_srgb(tmp_path: Path) -> None:
    import io

    rgb = photos.real_photo("coffee")
    p3_bytes = photos.display_p3_icc()
    p3 = ImageCms.ImageCmsProfile(io.BytesIO(p3_bytes))
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    # Store the photo as a camera would in Display P3: P3 pixel values plus the P3 profile.
    p3_pixels = ImageCms.profileToProfile(Image.fromarray(rgb), srgb, p3, outputMode="RGB")
    tagged = tmp_path / "p3.jpg"
    p3_pixels.save(tagged, quality=97, icc_profile=p3_bytes)
    decoded = decode_image(tagged, min_side=None).pixels
    untagged_error = _mean_abs(np.asarray(p3_pixels), rgb)
    assert untagged_error > 4  # the profile matters: raw P3 values are visibly off
    assert _mean_abs(decoded, rgb) < untagged_error / 2


def test_heic_webp_and_dng(tmp_path: Path) -> None:
    rgb = photos.real_photo("chelsea")
    heic = photos.write_heic(tmp_path / "p.heic", rgb)
    Image.fromarray(rgb).save(tmp_path / "p.webp", quality=95)
    dng = photos.write_dng(tmp_path / "p.dng", rgb)
    for path, fmt in ((heic, "HEIF"), (tmp_path / "p.webp", "WEBP"), (dng, "RAW:DNG")):
        decoded = decode_image(path, min_side=None)
        assert decoded.format == fmt
        assert abs(decoded.pixels.shape[0] - rgb.shape[0]) <= 1
        assert abs(decoded.pixels.shape[1] - rgb.shape[1]) <= 1
    # The DNG mosaic demosaics back to a recognisable photo (not noise): correlated with the source.
    raw = decode_image(dng, min_side=None).pixels.astype(float).mean(axis=2)
    src = rgb[: raw.shape[0], : raw.shape[1]].astype(float).mean(axis=2)
    assert np.corrcoef(raw.ravel(), src.ravel())[0, 1] > 0.9


def test_proprietary_raw_extension_that_is_not_raw(tmp_path: Path) -> None:
    fake = tmp_path / "IMG_0001.CR2"
    fake.write_bytes(b"this is not a raw file at all" * 100)
    with pytest.raises(errors.DecodeError):
        decode_image(fake)


def test_bad_inputs_raise_typed_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("hello, I am a text file\n" * 50)
    good = photos.write_jpeg(tmp_path / "good.jpg", photos.real_photo("coffee"))
    truncated = tmp_path / "trunc.jpg"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    unsupported = tmp_path / "doc.pdf"
    unsupported.write_bytes(b"%PDF-1.4")
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    cases = {
        empty: errors.EmptyFileError,
        text: errors.NotAnImageError,
        truncated: errors.TruncatedImageError,
        unsupported: errors.UnsupportedFormatError,
        tmp_path / "gone.jpg": errors.FileVanishedError,
        folder: errors.NotAnImageError,
    }
    for path, expected in cases.items():
        with pytest.raises(expected) as info:
            decode_image(path)
        assert str(path) in str(info.value)


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    Image.new("L", (20000, 12000)).save(path, optimize=False, compress_level=1)
    with pytest.raises(errors.ImageTooLargeError, match="240 MP"):
        decode_image(path)
    assert decode_image(path, max_pixels=300_000_000).original_size == (20000, 12000)


def test_unreadable_file(tmp_path: Path) -> None:
    """Permission bits are checked for real: as root, the check runs in a child that dropped to
    an unprivileged user (root itself reads every file whatever its mode)."""
    path = photos.write_jpeg(tmp_path / "secret.jpg", photos.real_photo("coffee"))
    path.chmod(0)

    def attempt() -> str:
        try:
            decode_image(path)
        except errors.FileUnreadableError as exc:
            return f"unreadable: {exc}"
        except Exception as exc:  # reported to the parent, which fails the test
            return f"other: {type(exc).__name__}: {exc}"
        return "decoded"

    if os.geteuid() != 0:
        assert attempt().startswith("unreadable")
        return
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: become 'nobody', try, report through the pipe
        os.close(read_end)
        try:
            os.setgid(65534)
            os.setuid(65534)
            message = attempt()
        except BaseException as exc:
            message = f"other: {exc}"
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end) as pipe:
        message = pipe.read()
    assert message.startswith("unreadable"), message


def test_raw_exif_capture_time_and_exposure(tmp_path: Path) -> None:
    """LibRaw exposes no EXIF, so capture time and exposure of RAW files come through exiv2."""
    import pyexiv2

    dng = photos.write_dng(tmp_path / "burst.dng", photos.real_photo("coffee"))
    image = pyexiv2.Image(str(dng))
    image.modify_exif(
        {
            "Exif.Photo.DateTimeOriginal": "2026:06:20 14:03:07",
            "Exif.Photo.SubSecTimeOriginal": "45",
            "Exif.Photo.ExposureBiasValue": "-2/3",
            "Exif.Photo.ExposureTime": "1/250",
        }
    )
    image.close()
    exif = decode_image(dng).exif
    assert exif["make"] == "photod" and exif["model"] == "Test Camera"
    assert exif["datetime_original"] == "2026:06:20 14:03:07"
    assert exif["subsec_original"] == "45"
    assert exif["exposure_bias"] == pytest.approx(-2 / 3)
    assert exif["exposure_time"] == pytest.approx(1 / 250)
