"""API tests of `photod serve`'s app over HTTP (Starlette TestClient on httpx) with real photos.

Uploads are real JPEG/PNG/HEIC/DNG files scored by the real model; the library pages read a real
SQLite index written through `photod.index`; thumbnails are checked by decoding the JPEG bytes.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from photod.web import WebConfig, create_app
from tests import photos

# The app answers only its own Host names (issue 16): the test client talks to it as 127.0.0.1.
LocalClient = functools.partial(TestClient, base_url="http://127.0.0.1")


def _jpeg_bytes(pixels: np.ndarray, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture()
def upload_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private temp folder for this test's uploads, to see that none is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture()
def client(scorer, upload_tmp: Path) -> TestClient:
    return LocalClient(create_app(WebConfig(), scorer=scorer))


# ---------------------------------------------------------------------------------------------
# POST /api/score


def test_score_jpeg_matches_cli_scoring(client: TestClient, scorer, jpeg_file: Path, upload_tmp):
    response = client.post(
        "/api/score", files={"file": ("holiday.jpg", jpeg_file.read_bytes(), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    assert body["path"] == "holiday.jpg"  # the user's name, never the server's temp path
    assert (body["width"], body["height"]) == Image.open(jpeg_file).size
    assert body["format"] == "JPEG"
    assert body["exif"]["model"] == "EOS R5"
    # Same functions as `photod score`: the upload scores exactly as the file on disk does.
    direct = next(iter(scorer.score_paths([jpeg_file])))
    assert body["score"] == pytest.approx(direct.score, abs=1e-4)
    assert body["stars"] == direct.stars
    assert 1 <= body["stars"] <= 5
    assert body["model"] == scorer.version
    assert list(upload_tmp.glob("photod-upload-*")) == []  # the temp upload is gone


def test_score_other_formats(client: TestClient, tmp_path: Path, cat_pixels: np.ndarray):
    png = tmp_path / "cat.png"
    Image.fromarray(cat_pixels).save(png)
    heic = photos.write_heic(tmp_path / "cat.heic", cat_pixels)
    dng = photos.write_dng(tmp_path / "cat.dng", cat_pixels)
    scores = {}
    for path, fmt in ((png, "PNG"), (heic, "HEIF"), (dng, "RAW:DNG")):
        # A generic browser name: the content type / extension decides how it is decoded.
        response = client.post("/api/score", files={"file": (path.name, path.read_bytes())})
        assert response.status_code == 200, (path.name, response.text)
        body = response.json()
        assert body["format"] == fmt
        assert (body["width"], body["height"]) == (450 if fmt == "RAW:DNG" else 451, 300)
        scores[fmt] = body["score"]
    # The same pixels, lossless and lossy: nearly the same score. The DNG goes through a Bayer
    # mosaic and LibRaw's rendering, a different look, so only its scale is checked.
    assert abs(scores["PNG"] - scores["HEIF"]) < 0.1, scores
    assert 1.0 < scores["RAW:DNG"] < 5.0, scores


def test_score_blob_named_by_content_type(client: TestClient, cat_pixels: np.ndarray):
    # Browsers upload a canvas as "blob" with a content type and no extension.
    response = client.post(
        "/api/score", files={"file": ("blob", _jpeg_bytes(cat_pixels), "image/jpeg")}
    )
    assert response.status_code == 200, response.text
    assert response.json()["format"] == "JPEG"


@pytest.mark.parametrize(
    ("name", "content", "status", "code"),
    [
        ("notes.txt", b"shopping list", 415, "unsupported"),
        ("fake.jpg", b"this is text, not a JPEG" * 20, 422, "not_an_image"),
        ("empty.jpg", b"", 400, "empty"),
    ],
)
def test_bad_uploads_get_json_4xx(client, upload_tmp, name, content, status, code):
    response = client.post("/api/score", files={"file": (name, content)})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error"
    assert body["code"] == code
    assert name in body["error"] or code == "unsupported"
    assert str(upload_tmp) not in body["error"]
    assert list(upload_tmp.glob("photod-upload-*")) == []


def test_truncated_jpeg_is_422(client: TestClient, cat_pixels: np.ndarray):
    data = _jpeg_bytes(cat_pixels)
    response = client.post("/api/score", files={"file": ("cut.jpg", data[: len(data) // 3])})
    assert response.status_code == 422, response.text
    assert response.json()["code"] in {"truncated", "decode"}
    assert "cut.jpg" in response.json()["error"]


def test_missing_field_and_not_multipart(client: TestClient, cat_pixels: np.ndarray):
    response = client.post("/api/score", files={"photo": ("a.jpg", _jpeg_bytes(cat_pixels))})
    assert response.status_code == 400
    assert "'file'" in response.json()["error"]
    response = client.post("/api/score", content=_jpeg_bytes(cat_pixels))
    assert response.status_code == 400
    assert response.json()["code"] == "bad_request"
    response = client.get("/api/score")
    assert response.status_code == 405
    assert response.json()["status"] == "error"


def _multipart(name: str, payload: bytes) -> tuple[bytes, str]:
    boundary = "photodboundary7"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{boundary}--\r\n".encode(), boundary


def test_upload_size_limit(scorer, upload_tmp: Path, tmp_path: Path):
    client = LocalClient(create_app(WebConfig(max_upload_bytes=50_000), scorer=scorer))
    big = _jpeg_bytes(photos.real_photo("astronaut"), quality=98)
    assert len(big) > 100_000
    # With Content-Length: refused before the body is read.
    response = client.post("/api/score", files={"file": ("big.jpg", big, "image/jpeg")})
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"
    assert "limit" in response.json()["error"]
    # Chunked, no Content-Length: refused while streaming, once the limit is passed.
    body, boundary = _multipart("big.jpg", big)
    chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
    response = client.post(
        "/api/score",
        content=chunks,
        headers={"content-type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 413, response.text
    assert response.json()["code"] == "too_large"
    # A small photo still passes the same app.
    small = _jpeg_bytes(photos.real_photo("chelsea", scale=0.5))
    response = client.post("/api/score", files={"file": ("small.jpg", small)})
    assert response.status_code == 200, response.text
    assert list(upload_tmp.glob("photod-upload-*")) == []


def test_pixel_limit(cat_pixels: np.ndarray):
    from photod.scoring import Scorer

    # The app's own scorer carries the web limit.
    app = create_app(WebConfig(max_pixels=100_000, device="cpu"))
    client = LocalClient(app)
    response = client.post("/api/score", files={"file": ("cat.jpg", _jpeg_bytes(cat_pixels))})
    assert response.status_code == 413, response.text
    body = response.json()
    assert body["code"] == "too_large"
    assert "451x300" in body["error"] and "cat.jpg" in body["error"]
    assert isinstance(app.state.photod.scorer(), Scorer)


def test_one_scorer_built_lazily_and_shared(cat_pixels: np.ndarray):
    app = create_app(WebConfig(device="cpu"))
    state = app.state.photod
    assert state._scorer is None  # nothing loaded by creating the app
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        scorers = list(pool.map(lambda _: state.scorer(), range(8)))
    assert all(s is scorers[0] for s in scorers)


# ---------------------------------------------------------------------------------------------
# POST /api/suggest


# ---------------------------------------------------------------------------------------------
# The index: /api/photos, /library, /thumbs

LIBRARY = [
    # name, sample, score, stars, camera model, added_at
    ("cat.jpg", "chelsea", 3.9, 5, "EOS R5", "2026-11-20T10:00:00+00:00"),
    ("coffee.jpg", "coffee", 3.5, 4, "EOS R5", "2026-11-21T10:00:00+00:00"),
    ("astronaut.jpg", "astronaut", 3.1, 3, "Z 6", "2026-11-22T10:00:00+00:00"),
    ("rocket.jpg", "rocket", 2.8, 2, "Z 6", "2026-11-23T10:00:00+00:00"),
    ("hubble.jpg", "hubble_deep_field", 2.4, 1, "EOS R5", "2026-11-24T10:00:00+00:00"),
]


@pytest.fixture()
def library(tmp_path: Path) -> dict:
    """A library folder of real JPEGs and an index that lists them (plus one error row)."""
    from photod.index import open_index, upsert_photo

    root = tmp_path / "Pictures"
    root.mkdir()
    db_path = tmp_path / "index.db"
    db = open_index(db_path)
    paths = {}
    for name, sample, score, stars, model, added in LIBRARY:
        make = "Canon" if model.startswith("EOS") else "Nikon"
        path = photos.write_jpeg(root / name, photos.real_photo(sample, scale=0.6), make=make,
                                 model=model)  # fmt: skip
        with Image.open(path) as im:
            width, height = im.size
        upsert_photo(db, {
            "path": str(path), "status": "ok", "score": score, "stars": stars, "width": width,
            "height": height, "format": "JPEG", "camera_make": make, "camera_model": model,
            "added_at": added, "embedding": np.zeros(1280, np.float16).tobytes(),
        })  # fmt: skip
        paths[name] = path
    broken = root / "broken.jpg"
    broken.write_bytes(b"garbage")
    upsert_photo(db, {"path": str(broken), "status": "error", "error": "not an image"})
    db.close()
    return {"root": root, "db": db_path, "paths": paths}


@pytest.fixture()
def library_client(library: dict) -> TestClient:
    config = WebConfig(db_path=library["db"], library_roots=[library["root"]])
    return LocalClient(create_app(config))


def test_api_photos_filters_and_sorts(library_client: TestClient):
    body = library_client.get("/api/photos", params={"min_stars": 4, "limit": 5}).json()
    assert [p["filename"] for p in body["photos"]] == ["cat.jpg", "coffee.jpg"]
    assert body["count"] == 2
    assert "embedding" not in body["photos"][0]  # binary columns stay out of JSON
    assert body["photos"][0]["servable"] is True
    worst = library_client.get("/api/photos", params={"status": "ok", "order": "asc", "limit": 2})
    assert [p["filename"] for p in worst.json()["photos"]] == ["hubble.jpg", "rocket.jpg"]
    nikon = library_client.get("/api/photos", params={"camera": "nikon"}).json()
    assert {p["filename"] for p in nikon["photos"]} == {"astronaut.jpg", "rocket.jpg"}
    recent = library_client.get("/api/photos", params={"since": "2026-11-23"}).json()
    assert {p["filename"] for p in recent["photos"]} == {"rocket.jpg", "hubble.jpg", "broken.jpg"}
    errors = library_client.get("/api/photos", params={"status": "error"}).json()
    assert [p["filename"] for p in errors["photos"]] == ["broken.jpg"]
    for bad in ({"min_stars": "lots"}, {"limit": 0}, {"since": "last tuesday"},
                {"sort": "embedding"}, {"status": "happy"}, {"order": "up"}):  # fmt: skip
        response = library_client.get("/api/photos", params=bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.json()["status"] == "error"


def test_api_photos_without_index(tmp_path: Path):
    client = LocalClient(create_app(WebConfig(db_path=tmp_path / "none.db")))
    assert client.get("/api/photos").json() == {"count": 0, "photos": []}
    assert not (tmp_path / "none.db").exists()  # reading never creates an index
    assert "No index yet" in client.get("/library").text


def test_library_contact_sheets(library_client: TestClient, library: dict):
    response = library_client.get("/library", params={"limit": 3})
    assert response.status_code == 200
    html = response.text
    best = html[html.index('id="best"') : html.index('id="worst"')]
    worst = html[html.index('id="worst"') :]
    order = [best.index(name) for name in ("cat.jpg", "coffee.jpg", "astronaut.jpg")]
    assert order == sorted(order)
    assert "rocket.jpg" not in best and "broken.jpg" not in html
    order = [worst.index(name) for name in ("hubble.jpg", "rocket.jpg", "astronaut.jpg")]
    assert order == sorted(order)
    assert "/thumbs?size=320&amp;path=" in html
    # Camera filter offered from the index, and applied.
    assert "Canon EOS R5" in html or ">EOS R5<" in html
    filtered = library_client.get("/library", params={"camera": "Z 6", "min_stars": 3}).text
    assert "astronaut.jpg" in filtered and "rocket.jpg" not in filtered
    assert "cat.jpg" not in filtered
    bad = library_client.get("/library", params={"min_stars": "x"})
    assert bad.status_code == 400 and "min_stars" in bad.text


def test_photo_detail(library_client: TestClient, library: dict):
    path = str(library["paths"]["coffee.jpg"])
    page = library_client.get("/library/photo", params={"path": path})
    assert page.status_code == 200
    assert "coffee.jpg" in page.text and "3.500" in page.text
    assert "/thumbs?size=1280" in page.text
    body = library_client.get("/api/photo", params={"path": path}).json()
    assert body["score"] == 3.5 and body["camera_model"] == "EOS R5"
    assert "suggestion" in body and "embedding" not in body
    missing = library_client.get("/api/photo", params={"path": path + ".nope"})
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert library_client.get("/library/photo", params={"path": "/etc/passwd"}).status_code == 404


def _file_state(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def test_thumbnails_cached_originals_untouched(library_client: TestClient, library: dict):
    from photod.paths import data_dir

    path = library["paths"]["coffee.jpg"]  # 360x240
    before = _file_state(path)
    response = library_client.get("/thumbs", params={"path": str(path), "size": 320})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(response.content)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 320
        pixels = np.asarray(thumb.convert("RGB"), dtype=np.float32)
    # It is the photo: compare with the original shrunk the same way.
    with Image.open(path) as original:
        expected = np.asarray(original.convert("RGB").resize(thumb.size), dtype=np.float32)
    assert np.abs(pixels - expected).mean() < 8
    cached = list((data_dir() / "thumbnails").rglob("*.jpg"))
    assert len(cached) == 1 and cached[0].read_bytes() == response.content
    stamp = cached[0].stat().st_mtime_ns
    again = library_client.get("/thumbs", params={"path": str(path), "size": 320})
    assert again.content == response.content
    assert cached[0].stat().st_mtime_ns == stamp  # served from the cache, not made again
    big = library_client.get("/thumbs", params={"path": str(path), "size": 1280})
    with Image.open(io.BytesIO(big.content)) as image:
        assert image.size == (360, 240)  # never upscaled past the photo
    assert _file_state(path) == before
    assert sorted(p.name for p in library["root"].iterdir()) == sorted(
        [name for name, *_ in LIBRARY] + ["broken.jpg"]
    )  # nothing written next to the originals


def test_thumbnail_remade_when_photo_changes(library_client: TestClient, library: dict):
    path = library["paths"]["cat.jpg"]
    first = library_client.get("/thumbs", params={"path": str(path)}).content
    photos.write_jpeg(path, photos.real_photo("astronaut", scale=0.6))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    second = library_client.get("/thumbs", params={"path": str(path)}).content
    assert first != second
    with Image.open(io.BytesIO(second)) as thumb:
        assert thumb.size == (307, 307)  # the astronaut's square, not the cat's 3:2


def test_only_library_files_are_served(library_client: TestClient, library: dict, tmp_path: Path):
    root = library["root"]
    outside = photos.write_jpeg(tmp_path / "secret.jpg", photos.real_photo("chelsea", 0.3))
    (root / "link.jpg").symlink_to(outside)
    (root / "sub").mkdir()
    attempts = [
        str(outside),
        "/etc/passwd",
        str(root / ".." / "secret.jpg"),
        str(root / "sub" / ".." / ".." / "secret.jpg"),
        str(root / "link.jpg"),  # a link inside that points outside
        str(root / "missing.jpg"),
        str(root),
        "../secret.jpg",
        "secret.jpg",
        "",
    ]
    for attempt in attempts:
        response = library_client.get("/thumbs", params={"path": attempt})
        assert response.status_code == 404, attempt
        assert response.json()["code"] == "not_found"
    # A prefix of the root's name is not the root ("Pictures2" is not under "Pictures").
    sibling = tmp_path / "Pictures2"
    sibling.mkdir()
    photos.write_jpeg(sibling / "x.jpg", photos.real_photo("chelsea", 0.3))
    assert library_client.get("/thumbs", params={"path": str(sibling / "x.jpg")}).status_code == 404
    # A path inside the root, spelled with "..", is fine: it resolves inside.
    inside = str(root / "sub" / ".." / "cat.jpg")
    assert library_client.get("/thumbs", params={"path": inside}).status_code == 200
    assert library_client.get("/thumbs", params={"path": inside, "size": 99}).status_code == 400
    broken = library_client.get("/thumbs", params={"path": str(root / "broken.jpg")})
    assert broken.status_code == 422 and broken.json()["code"] == "not_an_image"


def test_no_library_folder_serves_what_the_index_holds(library: dict, tmp_path: Path):
    # Issue 19: after `photod watch DIR` the page shows DIR's photos with no --library flag.
    client = LocalClient(create_app(WebConfig(db_path=library["db"])))
    path = library["paths"]["cat.jpg"]
    assert client.get("/thumbs", params={"path": str(path)}).status_code == 200
    html = client.get("/library").text
    assert "no preview" not in html and "cat.jpg" in html
    assert client.get("/api/photos").json()["photos"][0]["servable"] is True
    # Only indexed photos: a file beside them, or anywhere else, is not served.
    beside = photos.write_jpeg(path.parent / "unindexed.jpg", photos.real_photo("chelsea", 0.2))
    outside = photos.write_jpeg(tmp_path / "secret.jpg", photos.real_photo("chelsea", 0.2))
    for other in (beside, outside, Path("/etc/passwd")):
        assert client.get("/thumbs", params={"path": str(other)}).status_code == 404


def test_pages_and_status(client: TestClient, scorer):
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="dropzone"' in page.text and 'data-resize="1024"' in page.text
    for asset in ("upload.js", "suggestion.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200
    assert client.get("/static/../app.py").status_code == 404
    status = client.get("/api/status").json()
    assert status["model"]["name"] == scorer.model_name
    assert status["max_upload_bytes"] == WebConfig().max_upload_bytes


def test_detail_shows_stored_suggestion(library_client: TestClient, library: dict):
    from photod.suggest import Edit, Suggestion
    from photod.suggest_store import save_suggestion

    path = str(library["paths"]["rocket.jpg"])
    suggestion = Suggestion(
        path=path, score_before=2.8, score_after=3.05, edits=[
            Edit("exposure", {"ev": 0.5}, 0.1, 2.9), Edit("crop", {"box": "rule"}, 0.15, 3.05)
        ], crop=(0.1, 0.05, 0.9, 0.95), exposure_ev=0.5, model="m", margin=0.05,
    )  # fmt: skip
    save_suggestion(library["db"], path, suggestion)
    body = library_client.get("/api/photo", params={"path": path}).json()
    assert body["suggestion"]["crop"] == [0.1, 0.05, 0.9, 0.95]
    assert body["suggestion"]["gain"] == pytest.approx(0.25)
    assert body["suggestion"]["suggested"] is True
    page = library_client.get("/library/photo", params={"path": path}).text
    assert '"exposure_ev": 0.5' in page and "No suggestion stored" not in page
    other = library_client.get("/library/photo", params={"path": str(library["paths"]["cat.jpg"])})
    assert "No suggestion stored" in other.text


def test_serve_cli_help_is_light_and_busy_port_is_clean(tmp_path: Path):
    import socket
    import subprocess
    import sys

    code = (
        "import sys; from click.testing import CliRunner; from photod.cli import cli; "
        "r = CliRunner().invoke(cli, ['serve', '--help']); assert r.exit_code == 0; "
        "assert '--max-upload-mb' in r.output; import photod.web; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [
                str(Path(sys.executable).with_name("photod")),
                "serve",
                "--port",
                str(port),
                "--db",
                str(tmp_path / "i.db"),
            ],  # fmt: skip
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_suggest_returns_cli_json_and_pages_stay_responsive(scorer, jpeg_file: Path):
    import threading

    from photod.suggest import Suggestion

    app = create_app(WebConfig(), scorer=scorer)
    with LocalClient(app) as client:  # one event loop serves every request
        answers: dict[str, Any] = {}

        def suggest() -> None:
            data = jpeg_file.read_bytes()
            answers["suggest"] = client.post("/api/suggest", files={"file": ("holiday.jpg", data)})

        worker = threading.Thread(target=suggest)
        worker.start()
        limiter = app.state.photod.model_limiter
        while limiter.borrowed_tokens == 0 and worker.is_alive():  # the search is under way
            worker.join(0.02)
        status = client.get("/api/status")
        page = client.get("/")
        # The pages answered while the search was still running in its worker thread.
        suggest_running = worker.is_alive()
        worker.join(300)
        bad = client.post("/api/suggest", files={"file": ("x.jpg", b"not a photo at all")})
    assert status.status_code == 200 and page.status_code == 200
    assert suggest_running
    response = answers["suggest"]
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["path"] == "holiday.jpg"
    # The keys of `Suggestion.to_dict`, which `photod suggest --json` prints.
    example = Suggestion(path="x", score_before=3.0, score_after=3.0, edits=[]).to_dict()
    assert set(body) == set(example)
    assert body["score_after"] >= body["score_before"] - 1e-6
    direct = list(scorer.score_paths([jpeg_file]))[0]
    assert body["score_before"] == pytest.approx(direct.score, abs=0.1)  # its own working copy
    if body["crop"] is not None:
        left, top, right, bottom = body["crop"]
        assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
    assert bad.status_code == 422 and bad.json()["status"] == "error"


def test_file_names_are_escaped_in_pages(library: dict):
    from photod.index import open_index, upsert_photo

    name = '<img src=x onerror="alert(1)">.jpg'
    path = photos.write_jpeg(library["root"] / name, photos.real_photo("chelsea", 0.3))
    db = open_index(library["db"])
    upsert_photo(db, {"path": str(path), "status": "ok", "score": 4.5, "stars": 5})
    db.close()
    client = LocalClient(
        create_app(WebConfig(db_path=library["db"], library_roots=[library["root"]]))
    )
    for html in (
        client.get("/library").text,
        client.get("/library/photo", params={"path": str(path)}).text,
    ):
        assert "<img src=x" not in html
        assert "&lt;img src=x onerror=" in html
    assert client.get("/thumbs", params={"path": str(path)}).status_code == 200
