"""End-to-end: `photod serve` as a real process, driven by real headless Chromium (selenium).

The library is indexed by the real pipeline (as `photod watch` does); the page resizes a real JPEG in the browser,
uploads it, and shows its score and suggestion; the library page shows contact sheets with
thumbnails. Screenshots are saved under the test's tmp folder (and copied to
$PHOTOD_E2E_SCREENSHOTS when set) for a human to look at.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from tests import photos

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PHOTOD = Path(sys.executable).with_name("photod")

pytestmark = pytest.mark.timeout(300)


def _photod(*args: str) -> list[str]:
    return [str(PHOTOD), *args]


@pytest.fixture()
def library(tmp_path: Path, scorer) -> dict:
    """Four real photos in a library folder, scored and indexed by the real pipeline."""
    from photod.index import open_index
    from photod.pipeline import process_paths

    root = tmp_path / "Pictures"
    root.mkdir()
    paths = []
    for name, scale in (("chelsea", 1.0), ("coffee", 1.0), ("astronaut", 1.0), ("rocket", 0.8)):
        paths.append(photos.write_jpeg(root / f"{name}.jpg", photos.real_photo(name, scale=scale)))
    db_path = tmp_path / "index.db"
    db = open_index(db_path)
    try:
        results = list(process_paths(paths, scorer, db, write_mode="none"))
    finally:
        db.close()
    assert [r.status for r in results] == ["ok"] * 4, [r.to_dict() for r in results]
    return {"root": root, "db": db_path, "scores": {Path(r.path).name: r.score for r in results}}


@pytest.fixture()
def server(library: dict, tmp_path: Path) -> Iterator[dict]:
    """`photod serve --port 0 --json` in its own process; yields its URL; stopped with SIGINT."""
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        _photod(
            "serve",
            "--port",
            "0",
            "--json",
            "--db",
            str(library["db"]),
            "--library",
            str(library["root"]),
            "--device",
            "cpu",
            "--resize",
            "320",
        ),  # fmt: skip
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line, (tmp_path / "serve.log").read_text()
        info = json.loads(line)
        assert info["host"] == "127.0.0.1"  # localhost unless asked otherwise
        url = info["url"]
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(url + "api/status", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not answer"
                time.sleep(0.2)
        yield {"url": url, "proc": proc, "log": tmp_path / "serve.log"}
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
        log.close()
    assert code == 0, (tmp_path / "serve.log").read_text()


@pytest.fixture()
def browser(tmp_path: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1280,1100",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(driver, path: Path) -> Path:
    # The whole page, not only the window: size the window to the document first.
    height = driver.execute_script("return document.documentElement.scrollHeight")
    chrome = driver.execute_script("return window.outerHeight - window.innerHeight")
    driver.set_window_size(1280, min(max(height + chrome + 20, 800), 4000))
    driver.save_screenshot(str(path))
    keep = os.environ.get("PHOTOD_E2E_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(keep) / path.name)
    with Image.open(path) as image:
        assert image.size[0] >= 1000
    return path


def _wait_status(driver, card, wanted: set[str], timeout: float) -> str:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, timeout, poll_frequency=0.25).until(
        lambda _: card.get_attribute("data-status") in wanted
    )
    return card.get_attribute("data-status")


def test_upload_score_and_library_in_chromium(server: dict, library: dict, browser, tmp_path):
    from selenium.webdriver.common.by import By

    url = server["url"]
    (tmp_path / "upload").mkdir()
    # Under-exposed on purpose, so that the search has something to suggest.
    dark = (photos.real_photo("coffee").astype(float) * 0.35).astype("uint8")
    photo = photos.write_jpeg(tmp_path / "upload" / "coffee.jpg", dark)
    browser.get(url)
    assert "photod" in browser.title
    browser.find_element(By.ID, "file-input").send_keys(str(photo))
    card = browser.find_element(By.CSS_SELECTOR, "#results .result")
    status = _wait_status(browser, card, {"suggested", "error"}, timeout=180)
    error = card.find_element(By.CSS_SELECTOR, ".error")
    assert status == "suggested", error.text
    score = float(card.find_element(By.CSS_SELECTOR, ".score").text)
    stars = card.find_element(By.CSS_SELECTOR, ".stars").text
    assert 0.5 < score < 5.5
    assert 1 <= stars.count("★") <= 5 and len(stars) == 5
    # Resized in the browser before upload: the server saw a 320 px JPEG, not the 600 px file.
    assert card.get_attribute("data-resized") == "true"
    assert card.find_element(By.CSS_SELECTOR, ".state").text.startswith("320 × 213")
    # The page shows what the server answered for that upload.
    assert float(card.get_attribute("data-score")) == pytest.approx(score, abs=5e-4)
    # The suggestion as the server sent it, and as the page drew it.
    suggestion = json.loads(card.get_attribute("data-suggestion"))
    assert suggestion["path"] == "coffee.jpg"
    # The configured default objective: the edit-preference head, whose values are its own
    # units (the page says how much the suggestion is preferred, not a 1-5 score).
    assert suggestion["objective"] == "edit-preference"
    assert suggestion["score_before"] != pytest.approx(score, abs=0.05)
    gain_text = card.find_element(By.CSS_SELECTOR, ".gain").text
    if suggestion["suggested"]:
        assert card.get_attribute("data-suggested") == "true"
        assert f"+{suggestion['score_after'] - suggestion['score_before']:.3f}" in gain_text
        canvas = card.find_element(By.CSS_SELECTOR, ".after-canvas")
        width, height = int(canvas.get_attribute("width")), int(canvas.get_attribute("height"))
        left, top, right, bottom = suggestion["crop"] or (0, 0, 1, 1)
        # The preview has the crop's shape (of the 320x213 upload).
        assert width / height == pytest.approx((right - left) * 320 / ((bottom - top) * 213), 0.05)
        overlay = card.find_elements(By.CSS_SELECTOR, ".crop-box svg path")
        assert len(overlay) == (2 if suggestion["crop"] else 0)
    else:
        assert "Leave it as it is" in gain_text
    _screenshot(browser, tmp_path / "upload.png")

    # Full size, no suggestion, two files at once (one of them not a photo): the original's own
    # size reaches the server, and the bad file gets a clear message while the other scores.
    browser.find_element(By.ID, "full-size").click()
    browser.find_element(By.ID, "want-suggest").click()
    png = tmp_path / "upload" / "cat.png"
    Image.fromarray(photos.real_photo("chelsea")).save(png)
    bad = tmp_path / "upload" / "notes.jpg"
    bad.write_text("not a photo")
    browser.find_element(By.ID, "file-input").send_keys(f"{png}\n{bad}")
    cards = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    assert len(cards) == 3
    by_name = {c.find_element(By.CSS_SELECTOR, ".filename").text: c for c in cards}
    card = by_name["cat.png"]
    assert _wait_status(browser, card, {"scored", "error"}, timeout=120) == "scored"
    assert card.find_element(By.CSS_SELECTOR, ".state").text == "451 × 300 PNG"
    assert card.get_attribute("data-resized") == "false"
    card = by_name["notes.jpg"]
    assert _wait_status(browser, card, {"scored", "error"}, timeout=60) == "error"
    assert "notes.jpg" in card.find_element(By.CSS_SELECTOR, ".error").text

    # Library: contact sheets of the best and worst, thumbnails generated by the server.
    browser.get(url + "library?limit=3")
    best = browser.find_elements(By.CSS_SELECTOR, "#best .cell")
    worst = browser.find_elements(By.CSS_SELECTOR, "#worst .cell")
    assert len(best) == 3 and len(worst) == 3
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 60, poll_frequency=0.25).until(
        lambda d: d.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
    )
    # The sheets show the pipeline's scores: the three best, then the three worst, in order.
    indexed = sorted(library["scores"].values())
    scores = [float(c.find_element(By.CSS_SELECTOR, ".cap b").text) for c in best]
    assert scores == pytest.approx([round(v, 2) for v in indexed[::-1][:3]], abs=0.006)
    worst_scores = [float(c.find_element(By.CSS_SELECTOR, ".cap b").text) for c in worst]
    assert worst_scores == pytest.approx([round(v, 2) for v in indexed[:3]], abs=0.006)
    _screenshot(browser, tmp_path / "library.png")

    best[0].find_element(By.TAG_NAME, "a").click()
    WebDriverWait(browser, 30).until(lambda d: "/library/photo" in d.current_url)
    detail_score = float(browser.find_element(By.CSS_SELECTOR, ".score").text)
    assert round(detail_score, 2) == pytest.approx(scores[0])
    _screenshot(browser, tmp_path / "detail.png")
