"""`photod serve` as a real process answers only its own Host and Origin, and a non-loopback
server needs its token (issue 16, finding 1). Requests are real HTTP over a real socket (httpx),
with the headers a DNS-rebinding page or a cross-site form would send.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import photos

PHOTOD = str(Path(sys.executable).with_name("photod"))
pytestmark = pytest.mark.timeout(180)


class Server:
    def __init__(self, tmp_path: Path, *args: str) -> None:
        self.log_path = tmp_path / f"serve-{time.monotonic_ns()}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [PHOTOD, "serve", "--port", "0", "--json", "--device", "cpu", *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        line = self.proc.stdout.readline()
        assert line, self.log_path.read_text()
        self.info = json.loads(line)
        self.port = self.info["port"]
        self.base = f"http://127.0.0.1:{self.port}"

    def wait_up(self, **headers: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(self.base + "/static/app.css", headers=headers, timeout=2)
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, self.log_path.read_text()
                time.sleep(0.2)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGINT)
        code = self.proc.wait(timeout=20)
        self.log.close()
        return code


@pytest.fixture()
def library(tmp_path: Path) -> dict:
    from photod.index import open_index, upsert_photo

    root = tmp_path / "Pictures"
    root.mkdir()
    photo = photos.write_jpeg(root / "cat.jpg", photos.real_photo("chelsea", 0.5))
    db_path = tmp_path / "index.db"
    db = open_index(db_path)
    upsert_photo(db, {"path": str(photo), "status": "ok", "score": 3.5, "stars": 4})
    db.close()
    return {"root": root, "db": db_path, "photo": photo}


@pytest.fixture()
def server(library: dict, tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path, "--db", str(library["db"]), "--library", str(library["root"]))
    try:
        srv.wait_up()
        yield srv
    finally:
        assert srv.stop() == 0, srv.log_path.read_text()


def _get(server: Server, path: str, host: str | None = None, **headers: str) -> httpx.Response:
    if host is not None:
        headers["Host"] = host
    return httpx.get(server.base + path, headers=headers, timeout=30)


def test_own_host_names_are_served(server: Server, library: dict):
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert _get(server, "/api/photos", host).json()["count"] == 1
    thumb = _get(server, "/thumbs", f"localhost:{server.port}", **{})
    assert thumb.status_code in (400, 404)  # no path given, but not refused for its host
    ok = httpx.get(server.base + "/thumbs", params={"path": str(library["photo"])}, timeout=30)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg"


@pytest.mark.parametrize("path", ["/api/photos", "/api/status", "/thumbs", "/library", "/"])
def test_dns_rebinding_host_is_refused(server: Server, library: dict, path: str):
    """A page on attacker.example that re-resolves its name to 127.0.0.1 sends its own Host."""
    params = f"?path={library['photo']}" if path == "/thumbs" else ""
    for host in (
        f"attacker.example:{server.port}",
        "attacker.example",
        f"127.0.0.1:{server.port + 1}",
    ):
        response = _get(server, path + params, host)
        assert response.status_code == 403, (host, path, response.text[:200])
        assert response.json()["code"] == "forbidden_host"
        assert str(library["root"]) not in response.text


def test_cross_site_requests_are_refused(server: Server, library: dict, jpeg_file: Path):
    same = f"http://127.0.0.1:{server.port}"
    files = {"file": ("a.jpg", jpeg_file.read_bytes(), "image/jpeg")}
    # A form on another site posting a photo (CPU and temp space on demand).
    foreign = httpx.post(
        server.base + "/api/score",
        files=files,
        headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"},
        timeout=60,
    )
    assert foreign.status_code == 403 and foreign.json()["code"] == "forbidden_origin"
    assert (
        httpx.post(
            server.base + "/api/score", files=files, headers={"Origin": "null"}, timeout=60
        ).status_code
        == 403
    )
    # Another local page (a dev server on localhost:3000) is another origin too.
    other_port = httpx.post(
        server.base + "/api/suggest",
        files=files,
        headers={"Origin": "http://localhost:3000", "Sec-Fetch-Site": "same-site"},
        timeout=60,
    )
    assert other_port.status_code == 403
    # An <img> of a thumbnail on another site's page: no Origin, but Sec-Fetch-Site tells.
    probe = _get(
        server,
        f"/thumbs?path={library['photo']}",
        **{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"},
    )
    assert probe.status_code == 403
    # A link from elsewhere to the library page still opens it (a top-level navigation).
    link = _get(
        server, "/library", **{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}
    )
    assert link.status_code == 200
    # The page's own upload is accepted.
    own = httpx.post(
        server.base + "/api/score",
        files={"file": ("a.txt", b"not a photo", "text/plain")},
        headers={"Origin": same, "Sec-Fetch-Site": "same-origin"},
        timeout=60,
    )
    assert own.status_code == 415  # judged on its content, not refused for its origin


def test_non_loopback_host_needs_allow_remote(tmp_path: Path, library: dict):
    out = subprocess.run(
        [PHOTOD, "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(library["db"])],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "--allow-remote" in out.stderr


def test_remote_server_requires_its_token(tmp_path: Path, library: dict):
    from photod.paths import config_dir

    args = ("--host", "0.0.0.0", "--allow-remote", "--db", str(library["db"]),
            "--library", str(library["root"]))  # fmt: skip
    srv = Server(tmp_path, *args)
    try:
        srv.wait_up()
        token = srv.info["token"]
        assert len(token) >= 32 and srv.info["url"].endswith(f"?token={token}")
        token_file = config_dir() / "web-token"
        assert Path(srv.info["token_file"]) == token_file
        assert token_file.read_text().strip() == token
        assert token_file.stat().st_mode & 0o077 == 0  # readable by the user only
        # Any Host (a LAN name photod cannot know), but never without the token.
        for host in (f"192.168.1.20:{srv.port}", f"attacker.example:{srv.port}"):
            refused = _get(srv, "/api/photos", host)
            assert refused.status_code == 401 and refused.json()["code"] == "token_required"
        assert _get(srv, "/thumbs?path=" + str(library["photo"])).status_code == 401
        bearer = _get(srv, "/api/photos", Authorization=f"Bearer {token}")
        assert bearer.status_code == 200 and bearer.json()["count"] == 1
        assert _get(srv, "/api/photos", Authorization="Bearer wrong").status_code == 401
        # Opening the printed address: the token moves into a cookie, out of the address.
        with httpx.Client(base_url=srv.base, timeout=30) as browser:
            first = browser.get(f"/library?token={token}")
            assert first.status_code == 303 and first.headers["location"] == "/library"
            assert "httponly" in first.headers["set-cookie"].lower()
            assert "samesite=strict" in first.headers["set-cookie"].lower()
            assert browser.get("/library").status_code == 200
            assert browser.get("/api/photos").json()["count"] == 1
    finally:
        assert srv.stop() == 0, srv.log_path.read_text()
    # The token is printed once: a second start reuses it without showing it.
    again = Server(tmp_path, *args)
    try:
        again.wait_up()
        assert "token" not in again.info and "token=" not in again.info["url"]
        assert _get(again, "/api/photos", Authorization=f"Bearer {token}").status_code == 200
    finally:
        assert again.stop() == 0
