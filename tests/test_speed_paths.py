"""The fast scoring path computes what the plain one does: the same pixels, the same content hash,
the embedded preview of a RAW file, thread counts from the CPUs really granted.

No timing here (speed is `python -m benchmarks throughput`'s business).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks import inputs
from photod.decode import decode_image
from photod.pipeline import file_hash
from photod.scoring import _cgroup_cpu_quota, available_cpus
from tests import photos


@pytest.mark.parametrize("orientation", [1, 2, 3, 4, 5, 6, 7, 8])
def test_square_decode_from_bytes_equals_decode_then_resize(tmp_path: Path, orientation) -> None:
    from photod.models.preprocess import resize_for_model

    big = photos.real_photo("astronaut", scale=3)  # 1536 px: DCT-scaled, then shrunk
    path = photos.write_jpeg(tmp_path / "o.jpg", big[:, :1200], orientation=orientation)
    plain = resize_for_model(decode_image(path).pixels)
    fast = decode_image(path, data=path.read_bytes(), square=224)
    assert fast.pixels.shape == (224, 224, 3)
    assert np.array_equal(fast.pixels, plain)
    assert fast.original_size == decode_image(path).original_size


def test_square_decode_keeps_icc_and_cmyk_handling(tmp_path: Path) -> None:
    from photod.models.preprocess import resize_for_model

    pixels = photos.real_photo("coffee")
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(pixels).convert("CMYK").save(cmyk, quality=92)
    png = tmp_path / "small.png"
    Image.fromarray(pixels[:180, :200]).save(png)  # smaller than 224: resized up, like before
    for path in (cmyk, png):
        plain = resize_for_model(decode_image(path).pixels)
        assert np.array_equal(decode_image(path, data=path.read_bytes(), square=224).pixels, plain)


def test_empty_bytes_are_an_empty_file_error(tmp_path: Path) -> None:
    from photod.errors import EmptyFileError

    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(EmptyFileError):
        decode_image(path, data=b"", square=224)


def test_score_paths_hashes_the_bytes_it_decodes_and_can_skip(scorer, tmp_path: Path) -> None:
    paths = [
        photos.write_jpeg(tmp_path / f"{name}.jpg", photos.real_photo(name))
        for name in ("chelsea", "rocket")
    ]
    seen: list[tuple[str, str]] = []

    def skip(path: str, digest: str) -> bool:
        seen.append((path, digest))
        return path.endswith("rocket.jpg")

    results = list(scorer.score_paths(paths, content_hash=True, skip=skip))
    assert [r.content_hash for r in results] == [file_hash(str(p)) for p in paths]
    assert sorted(seen) == sorted((str(p), file_hash(str(p))) for p in paths)
    assert [r.status for r in results] == ["ok", "skipped"]
    assert results[1].score is None
    plain = list(scorer.score_paths(paths[:1]))
    assert plain[0].content_hash is None and plain[0].score == pytest.approx(results[0].score)


def test_dng_preview_is_decoded_instead_of_the_mosaic(tmp_path: Path) -> None:
    preview = photos.real_photo("chelsea", scale=2)  # 902x600, a camera-like preview
    mosaic = inputs.bayer_mosaic(photos.real_photo("rocket"))  # another picture entirely
    data = inputs.dng_with_preview(inputs.encode_jpeg(preview), mosaic)
    path = tmp_path / "IMG_0001.dng"
    path.write_bytes(data)
    decoded = decode_image(path, data=data, square=224)
    assert decoded.format == "RAW:DNG"
    assert decoded.original_size == (mosaic.shape[1], mosaic.shape[0])
    expected = np.asarray(Image.fromarray(preview).resize((224, 224), Image.Resampling.BILINEAR))
    other = np.asarray(
        Image.fromarray(photos.real_photo("rocket")).resize((224, 224), Image.Resampling.BILINEAR)
    )
    error = np.abs(decoded.pixels.astype(float) - expected).mean()
    assert error < 8 < np.abs(decoded.pixels.astype(float) - other).mean()
    # The same file through LibRaw's own reading of the path gives the same pixels.
    assert np.array_equal(decode_image(path, square=224).pixels, decoded.pixels)
    # The preview made square inside Pillow equals the plain decode + the model's resize.
    from photod.models.preprocess import resize_for_model

    assert np.array_equal(resize_for_model(decode_image(path).pixels), decoded.pixels)


def test_cgroup_quota_caps_the_cpus(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("150000 100000\n")
    assert _cgroup_cpu_quota(str(tmp_path)) == 1.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert _cgroup_cpu_quota(str(tmp_path)) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert _cgroup_cpu_quota(str(v1)) == 0.5
    assert _cgroup_cpu_quota(str(tmp_path / "absent")) is None
    import os

    assert 1 <= available_cpus() <= len(os.sched_getaffinity(0))


def test_truncated_jpeg_through_the_fast_path_is_a_truncated_error(tmp_path: Path) -> None:
    from photod.errors import TruncatedImageError

    path = photos.write_jpeg(tmp_path / "t.jpg", photos.real_photo("astronaut", scale=2))
    data = path.read_bytes()[: len(path.read_bytes()) // 2]
    path.write_bytes(data)
    with pytest.raises(TruncatedImageError):
        decode_image(path, data=data, square=224)


def test_libjpeg_turbo_decode_is_the_one_used_and_matches_pillow(tmp_path: Path) -> None:
    from photod import decode

    assert decode._simplejpeg() is not None  # a declared dependency: the fast path is real
    path = photos.write_jpeg(tmp_path / "a.jpg", photos.real_photo("astronaut", scale=3))
    with Image.open(path) as im:
        im.draft("RGB", (335, 224))
        turbo = decode._turbo_decode(im, path.read_bytes())
        im.load()
        assert turbo is not None and np.array_equal(np.asarray(turbo), np.asarray(im))
