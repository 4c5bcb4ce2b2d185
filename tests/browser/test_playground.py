"""The playground page in headless Chromium (Debian's chromium + chromedriver, driven over
the W3C WebDriver protocol): one valid record is scored, invalid ones show their errors
next to their fields, checked in the browser and by the API."""

from __future__ import annotations

import json
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


def test_a_non_number_in_a_number_field_is_reported_as_such(stack: LocalStackProcess,
                                                           browser: Browser) -> None:
    browser.open(stack.endpoints["api"] + "/")
    browser.type("#field-age", "thirty")
    browser.click("#predict")
    assert browser.text("#error-age") == "not a number: 'thirty'"
    assert "Not sent" in browser.text("#status")
    browser.click("#check-in-browser")  # the API's own answer, next to the field
    browser.click("#predict")
    assert browser.wait_text("#error-age", bool) == "not a number: 'thirty'"
    assert "HTTP 400" in browser.text("#status")


SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"


def _batch_rows(browser: Browser) -> list[list[str]]:
    browser.wait_text("#batch-status", lambda t: "records:" in t)
    rows: list[list[str]] = browser.run(
        "return [...document.querySelectorAll('#batch-results tbody tr')].map("
        "r => [...r.cells].map(c => c.textContent))")
    return rows


def test_a_csv_file_is_scored_with_its_rejects_and_their_reasons(
        stack: LocalStackProcess, browser: Browser, tmp_path: Path) -> None:
    lines = SAMPLE.read_text().splitlines()
    batch = tmp_path / "batch.csv"
    batch.write_text("\n".join(lines[36:42]) + "\n")  # lines 37-42 of the sample: 40 is bad
    browser.open(stack.endpoints["api"] + "/")
    browser.upload("#batch-file", batch)
    browser.wait_text("#batch-text", lambda t: True)
    assert browser.run("return document.getElementById('batch-text').value") == \
        batch.read_text()
    browser.click("#score-batch")
    rows = _batch_rows(browser)
    assert [r[:2] for r in rows] == [
        ["line 1", "ok"], ["line 2", "ok"], ["line 3", "ok"], ["line 4", "rejected"],
        ["line 5", "ok"], ["line 6", "ok"]]
    assert rows[3][4] == "age: not a number: 'thirty-two'"
    assert all(r[2] in ("<=50K", ">50K") and r[3] for r in rows if r[1] == "ok")
    assert browser.text("#batch-status") == "6 records: 5 ok, 1 rejected, 0 failed"
    browser.run("document.getElementById('batch-results').scrollIntoView()")
    browser.screenshot(_screenshot_dir(tmp_path) / "playground-batch.png")


def test_a_pasted_batch_with_a_header_and_json_lines(stack: LocalStackProcess,
                                                    browser: Browser) -> None:
    header = ("age,workclass,fnlwgt,education,education-num,marital-status,occupation,"
              "relationship,race,sex,capital-gain,capital-loss,hours-per-week,native-country")
    row = SAMPLE.read_text().splitlines()[0].replace(", ", ",").rsplit(",", 1)[0]
    browser.open(stack.endpoints["api"] + "/")
    browser.type("#batch-text", f"{header}\n{row}\n1,2,3\n")
    browser.click("#batch-header")
    browser.click("#score-batch")
    rows = _batch_rows(browser)
    assert [r[1] for r in rows] == ["ok", "rejected"]
    assert rows[1][0] == "line 3" and "expected 14 fields" in rows[1][4]
    records = [dict(zip(header.split(","), row.split(","), strict=True)),
               {"age": "forty"}]

    browser.type("#batch-text", "\n".join(json.dumps(r) for r in records))
    browser.click("#score-batch")
    rows = _batch_rows(browser)
    assert [r[:2] for r in rows] == [["record 1", "ok"], ["record 2", "rejected"]]
    assert "age: not a number: 'forty'" in rows[1][4]
