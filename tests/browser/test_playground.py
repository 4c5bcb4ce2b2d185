"""The playground page in headless Chromium (Debian's chromium + chromedriver, driven over
the W3C WebDriver protocol): one valid record is scored, invalid ones show their errors
next to their fields, checked in the browser and by the API."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlproxy.local.process import LocalStackProcess, start_local_stack
from tests.browser._webdriver import Browser, chromium_paths

PATHS = chromium_paths()
pytestmark = pytest.mark.skipif(
    PATHS is None,
    reason="Chromium is not installed: apt-get update && apt-get install -y chromium "
    "chromium-driver",
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    running = start_local_stack(tmp_path_factory.mktemp("playground"))
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert PATHS is not None
    opened = Browser(*PATHS)
    try:
        yield opened
    finally:
        opened.close()


def _screenshot_dir(tmp_path: Path) -> Path:
    where = os.environ.get("AMLPROXY_SCREENSHOTS")
    return Path(where) if where else tmp_path


def test_valid_record_shows_label_and_scores(stack: LocalStackProcess, browser: Browser,
                                             tmp_path: Path) -> None:
    browser.open(stack.endpoints["api"] + "/")
    assert browser.run("return document.title") == "amlproxy playground: census-income"
    options = browser.run(
        "return [...document.querySelectorAll('#field-education option')].map(o => o.value)")
    assert "Bachelors" in options and "Doctorate" in options
    assert browser.run("return document.getElementById('field-age').max") == "150"
    browser.type("#field-age", "52")
    browser.run("document.getElementById('field-education').value = 'Doctorate'")
    browser.click("#predict")
    label = browser.wait_text("#label", bool)
    assert label in ("<=50K", ">50K")
    rows = browser.run("return [...document.querySelectorAll('#scores tr')].map("
                       "r => r.cells[0].textContent)")
    assert sorted(rows) == ["<=50K", ">50K"]
    assert "backend sagemaker" in browser.text("#status")
    assert browser.find_all(".row.invalid") == []
    browser.screenshot(_screenshot_dir(tmp_path) / "playground-valid.png")


def test_invalid_record_shows_field_errors(stack: LocalStackProcess, browser: Browser,
                                          tmp_path: Path) -> None:
    browser.open(stack.endpoints["api"] + "/")
    browser.type("#field-age", "200")
    browser.type("#field-hours-per-week", "")
    browser.click("#predict")
    assert browser.text("#error-age") == "must be at most 150"
    assert browser.text("#error-hours-per-week") == "required"
    assert "Not sent" in browser.text("#status")
    assert browser.text("#label") == ""
    # the same record checked by the API instead: its 400 errors land next to the fields
    browser.click("#check-in-browser")
    browser.click("#predict")
    text = browser.wait_text("#error-age", lambda t: "above" in t)
    assert text == "200 is above the maximum 150"
    assert browser.text("#error-hours-per-week") == "missing required value"
    assert "HTTP 400" in browser.text("#status")
    invalid = browser.run("return [...document.querySelectorAll('.row.invalid select, "
                          ".row.invalid input')].map(e => e.name)")
    assert sorted(invalid) == ["age", "hours-per-week"]
    browser.screenshot(_screenshot_dir(tmp_path) / "playground-invalid.png")
