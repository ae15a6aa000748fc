"""The search page in headless Chromium: pick an image, see results, click one, and the click
is logged."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serving_support import config_data, free_port, png_bytes, server, toml_of

webdriver = pytest.importorskip("selenium.webdriver")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-dev-shm-usage",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(DRIVER)), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
def test_upload_pick_and_click_in_a_real_browser(
    browser: Any, tmp_path: Path, corpus_dir: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    config = tmp_path / "serving.toml"
    config.write_text(toml_of(config_data(tmp_path, corpus_dir)))
    picture = tmp_path / "query.png"
    picture.write_bytes(png_bytes(size=40))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    wait = WebDriverWait(browser, 15)
    with server(config, port, tmp_path / "server.log"):
        browser.get(base + "/")
        assert browser.title == "Braid visual search"
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#samples button")) == 12)
        # Upload a file through the file input.
        browser.find_element(By.ID, "file").send_keys(str(picture))
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results button")) == 5)
        assert "Showing 5 results" in browser.find_element(By.ID, "status").text
        # Pick a corpus image instead: a new page of results.
        first_sample = browser.find_element(By.CSS_SELECTOR, "#samples button")
        picked = first_sample.get_attribute("data-image-id")
        first_sample.click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Showing 5 results"))
        shown = [
            b.get_attribute("data-image-id")
            for b in browser.find_elements(By.CSS_SELECTOR, "#results button")
        ]
        assert picked not in shown
        # More results continue the same draft.
        browser.find_element(By.ID, "more").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results button")) == 10)
        # Click the second result: the click is logged.
        target = browser.find_elements(By.CSS_SELECTOR, "#results button")[1]
        target.click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "Recorded your click"))
        assert target.get_attribute("aria-pressed") == "true"
        figures = httpx.get(base + "/experiments/ab-interleaved").json()["figures"]
        assert figures["clicks"] == 1
        assert figures["impressions"] == 3  # the upload, the pick and its second page
        images = browser.find_elements(By.CSS_SELECTOR, "#results img")
        assert all(img.get_attribute("alt") for img in images)
        assert browser.execute_script(
            "return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
