"""One line on the likely cause when a whole file is rejected, and the flag that fixes it.

Checked in order: a JSON array where JSON Lines were expected, a CSV header read as a
record (``--header``), and otherwise records of another schema (``--schema``). The
evidence is the first rejected records (:class:`RejectSample`) and the report's reasons.
"""

from __future__ import annotations

from collections.abc import Sequence

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.report import Report
from amlproxy.core.schema import Schema

SAMPLE_SIZE = 5


class RejectSample:
    """A sink that keeps the first few rejected outcomes, as evidence for :func:`hint`."""

    name = "reject-sample"

    def __init__(self, size: int = SAMPLE_SIZE) -> None:
        self.size = size
        self.outcomes: list[Outcome] = []

    def write(self, outcomes: Sequence[Outcome]) -> None:
        for outcome in outcomes:
            if len(self.outcomes) >= self.size:
                return
            if outcome.status is Status.REJECTED:
                self.outcomes.append(outcome)

    def close(self) -> None:
        """Nothing to flush."""

    def abort(self) -> None:
        """Nothing to discard."""


def hint(report: Report, schema: Schema, sample: Sequence[Outcome], *,
         header: bool | None) -> str | None:
    """The likely cause of a run whose every record was rejected (or of a first line that
    is a header read as a record), with the flag that fixes it; None when nothing stands
    out."""
    first = sample[0] if sample else None
    looks_like_header = (first is not None and first.line == 1 and header is not True
                         and _header_names(first, schema))
    if not (report.total and report.rejected == report.total):
        if looks_like_header:
            return (f"hint: line 1 looks like a header ({_header_names(first, schema)}): "
                    "pass --header to read the columns by name")
        return None
    raw = [o.raw.lstrip() for o in sample if o.raw]
    if any(r.startswith("[") for r in raw) or any("got array" in r for o in sample
                                                  for r in o.reasons):
        return ("hint: every record was rejected: the input looks like one JSON array; "
                "amlproxy reads JSON Lines, one object per line (convert it with "
                "jq -c '.[]' FILE > FILE.jsonl)")
    if looks_like_header:
        return (f"hint: every record was rejected: line 1 looks like a header "
                f"({_header_names(first, schema)}): pass --header to read the columns by name")
    commonest = report.reason_text(report.reasons.most_common(1)[0][0]) if report.reasons \
        else "no reason"
    return (f"hint: every record was rejected (commonest reason: {commonest}): are they "
            f"records of another schema than {schema.name!r}? pass --schema NAME|PATH "
            "(amlproxy schema list)")


def _header_names(outcome: Outcome | None, schema: Schema) -> str:
    """The schema's column names found in a rejected first line, if most of its cells are."""
    if outcome is None or not outcome.raw:
        return ""
    cells = [c.strip().strip('"').lower() for c in outcome.raw.split(",")]
    names = {n.lower() for n in schema.column_names}
    found = [c for c in cells if c in names]
    if len(found) < max(2, len(cells) // 2):
        return ""
    shown = ", ".join(found[:3])
    return shown + (", ..." if len(found) > 3 else "")
