"""The README's Figures are those of the committed benchmark summary.

``bench/run.py`` writes ``bench/results/summary.json`` (and ``summary.md``); the README's
Figures section copies its table (figure, measured, target, met) and names the run(s)
that measured it. These tests fail when the two part: a figure re-measured but not copied,
a row edited by hand, a run not named.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))
from run import figure_rows  # noqa: E402  (bench/ is no package)

_ROW = re.compile(r"^\|(?P<cells>.+)\|\s*$")
_DASH = "–"  # the README's dash for a figure that is only reported


def figures_section(text: str) -> str:
    """The README's ``## Figures`` section, up to the next ``## `` heading."""
    start = text.index("\n## Figures\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def table_rows(section: str) -> list[tuple[str, ...]]:
    """The body rows of the section's first table, each as its stripped cells."""
    rows = []
    for line in section.splitlines():
        match = _ROW.match(line)
        if match is None:
            if rows:
                break  # the end of the first table
            continue
        cells = tuple(cell.strip() for cell in match["cells"].split("|"))
        if set("".join(cells)) <= set("-: "):
            continue  # the separator row
        rows.append(cells)
    return rows[1:]  # without the header row


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """The rows the README must show: those of ``bench/run.py``'s summary table, without
    the detail column (that stays in ``summary.md``), and with the README's dash."""
    return [(name, value, target, _DASH if met == "-" else met)
            for name, value, target, met, _ in figure_rows(summary["results"])]


def load_summary() -> dict[str, Any]:
    return json.loads((REPO / "bench" / "results" / "summary.json").read_text())


def test_the_readme_table_is_the_summary_row_for_row() -> None:
    section = figures_section((REPO / "README.md").read_text())
    assert table_rows(section) == summary_rows(load_summary())


def test_the_readme_names_each_run_behind_its_figures() -> None:
    section = " ".join(figures_section((REPO / "README.md").read_text()).split())
    runs = {(r["command"], r["measured"]) for r in load_summary()["results"]}
    for command, measured in sorted(runs):
        assert f"`{command}`" in section, f"the README does not name the run {command!r}"
        assert measured in section, f"the README does not give the time of {command!r}"


def test_the_parsers_see_a_changed_figure() -> None:
    """The comparison can fail: a figure changed in the summary no longer matches."""
    summary = load_summary()
    readme_rows = table_rows(figures_section((REPO / "README.md").read_text()))
    first = summary["results"][0]["figures"][0]
    first["value"] = first["value"] + 1
    assert summary_rows(summary) != readme_rows
    assert readme_rows, "no table found in the README's Figures section"
