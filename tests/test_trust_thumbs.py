"""`/thumbs` under load (issue 16, finding 3): bounded decodes, a bounded cache, and the pixel
limit applied to a RAW's embedded preview. A real uvicorn server on a real socket, real photos."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

from photod.web import WebConfig, create_app
from tests import photos

MAKERS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "makers"


class LiveServer:
    """The app on uvicorn in a thread of this process (so a test can count what it decodes)."""

    def __init__(self, config: WebConfig) -> None:
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config.port = self.port
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(config), log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture()
def library(tmp_path: Path) -> Path:
    root = tmp_path / "Pictures"
    root.mkdir()
    names = ("chelsea", "coffee", "astronaut", "rocket")
    for i in range(24):
        photos.write_jpeg(root / f"p{i:02d}.jpg", photos.real_photo(names[i % 4], 1.0 + i / 40))
    return root


def _fetch_all(base: str, paths: list[Path], size: int = 320) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            return await asyncio.gather(
                *(client.get("/thumbs", params={"path": str(p), "size": size}) for p in paths)
            )

    return asyncio.run(run())


def test_thumbnail_decodes_are_bounded(tmp_path: Path, library: Path, monkeypatch):
    import photod.decode

    real_decode = photod.decode.decode_image
    active = 0
    peak = 0
    lock = threading.Lock()

    def counting_decode(*args, **kwargs):
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        try:
            time.sleep(0.05)  # hold the slot a little, so overlapping requests overlap here
            return real_decode(*args, **kwargs)
        finally:
            with lock:
                active -= 1

    monkeypatch.setattr(photod.decode, "decode_image", counting_decode)
    config = WebConfig(library_roots=[library], thumb_dir=tmp_path / "thumbs", thumb_workers=2)
    paths = sorted(library.glob("*.jpg"))
    with LiveServer(config) as server:
        responses = _fetch_all(server.base, paths)
    assert [r.status_code for r in responses] == [200] * len(paths)
    assert 1 <= peak <= 2, peak


def test_thumbnail_cache_is_trimmed(tmp_path: Path, library: Path):
    thumbs = tmp_path / "thumbs"
    limit = 150_000
    config = WebConfig(library_roots=[library], thumb_dir=thumbs, thumb_cache_bytes=limit)
    paths = sorted(library.glob("*.jpg"))
    with LiveServer(config) as server:
        for size in (320, 1280):
            for response in _fetch_all(server.base, paths, size):
                assert response.status_code == 200
        cached = [p for p in thumbs.rglob("*.jpg")]
        total = sum(p.stat().st_size for p in cached)
        assert total <= limit, (total, len(cached))
        assert cached  # trimmed, not wiped
        # A trimmed thumbnail is simply made again.
        again = httpx.get(server.base + "/thumbs", params={"path": str(paths[0])}, timeout=60)
        assert again.status_code == 200


def _raw_with_bomb_preview(target: Path) -> Path:
    """Panasonic's RW2 from exiftool's test suite, its embedded JPEG preview's header patched
    to claim 8000x6000 pixels (48 MP) while the sensor says 10 MP."""
    source = MAKERS / "Panasonic.rw2"
    if not source.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{source} missing (shared/data/makers)")
        pytest.skip(f"{source} missing (shared/data/makers)")
    data = bytearray(source.read_bytes())
    import rawpy

    with rawpy.imread(str(source)) as raw:
        preview = raw.extract_thumb().data
    start = data.find(preview[:64])
    sof = data.find(b"\xff\xc0", start)
    assert start >= 0 and 0 < sof - start < len(preview)
    data[sof + 5 : sof + 9] = (6000).to_bytes(2, "big") + (8000).to_bytes(2, "big")
    target.write_bytes(bytes(data))
    return target


def test_raw_preview_obeys_the_pixel_limit(tmp_path: Path):
    from photod.decode import decode_image
    from photod.errors import ImageTooLargeError

    bomb = _raw_with_bomb_preview(tmp_path / "bomb.rw2")
    with pytest.raises(ImageTooLargeError, match="48 MP"):
        decode_image(bomb, min_side=320, max_pixels=20_000_000)


def test_thumbnail_of_a_raw_with_a_bomb_preview_is_refused(tmp_path: Path):
    root = tmp_path / "Pictures"
    root.mkdir()
    bomb = _raw_with_bomb_preview(root / "bomb.rw2")
    config = WebConfig(library_roots=[root], thumb_dir=tmp_path / "thumbs", max_pixels=20_000_000)
    with LiveServer(config) as server:
        response = httpx.get(server.base + "/thumbs", params={"path": str(bomb)}, timeout=60)
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    assert shutil.disk_usage(tmp_path)  # the server is still alive to answer
