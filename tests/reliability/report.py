"""Runs the reliability suite and prints what it proved:

    PYTHONPATH=. .venv/bin/python -m tests.reliability.report

Each test adds its counts through the ``tally`` fixture (pytest's ``record_property``);
this command adds them up: events replayed, faults injected, bad inputs tried, rows
checked, rows lost and duplicates (both must be 0), and the tests that passed. The exit
status is 0 only when every test passed and nothing was lost or duplicated.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import TALLY_PREFIX

HERE = Path(__file__).resolve().parent
ORDER = ("events_replayed", "faults_injected", "bad_inputs", "rows_checked", "rows_lost",
         "duplicates")


class Collector:
    """A pytest plugin that adds up the tally of every test."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.outcomes: Counter[str] = Counter()

    def pytest_runtest_logreport(self, report: Any) -> None:
        if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
            self.outcomes[report.outcome if not hasattr(report, "wasxfail") else "xfailed"] += 1
        if report.when == "call":
            for name, value in report.user_properties:
                if name.startswith(TALLY_PREFIX):
                    self.counts[name.removeprefix(TALLY_PREFIX)] += int(value)


def main(argv: list[str]) -> int:
    collector = Collector()
    status = pytest.main([str(HERE), "-q", "-p", "no:cacheprovider", *argv],
                         plugins=[collector])
    counts, outcomes = collector.counts, collector.outcomes
    print("\namlproxy reliability report")
    for name in ORDER:
        print(f"  {name.replace('_', ' '):<16} {counts[name]}")
    print(f"  {'tests':<16} {outcomes['passed']} passed, {outcomes['failed']} failed"
          + (f", {outcomes['xfailed']} known gap(s) (xfail)" if outcomes["xfailed"] else ""))
    clean = status == 0 and counts["rows_lost"] == 0 and counts["duplicates"] == 0
    print("  result           " + ("OK" if clean else "FAILED"))
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
