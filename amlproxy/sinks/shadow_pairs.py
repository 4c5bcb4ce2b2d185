"""The per-record pairs of a shadow comparison (``amlproxy score --shadow-out FILE``).

One row per scored record: where it came from, the primary's and the shadow's label,
scores and value, whether they agree and by how much the scores differ (or the shadow's
error). Read by :class:`~amlproxy.sinks.file.FileSink` with ``kind="shadow"``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any, BinaryIO, Literal

import orjson

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.writers import csv_cell

COLUMNS = (
    "key", "source", "line", "row_id", "primary_label", "shadow_label", "agree",
    "score_diff", "primary_scores", "shadow_scores", "primary_value", "shadow_value",
    "shadow_error",
)  # fmt: skip


def pair_row(outcome: Outcome) -> dict[str, Any] | None:
    """The pair of a scored outcome whose prediction went through the shadow backend."""
    p = outcome.prediction
    if outcome.status is not Status.OK or p is None:
        return None
    shadow = p.extra.get("shadow")
    if not isinstance(shadow, dict):
        return None
    return {
        "key": outcome.key,
        "source": outcome.source,
        "line": outcome.line,
        "row_id": outcome.row_id,
        "primary_label": p.label,
        "shadow_label": shadow.get("label"),
        "agree": shadow.get("agree"),
        "score_diff": shadow.get("score_diff"),
        "primary_scores": dict(p.scores),
        "shadow_scores": shadow.get("scores"),
        "primary_value": p.value,
        "shadow_value": shadow.get("value"),
        "shadow_error": shadow.get("error"),
    }


class ShadowPairWriter:
    """Writes :func:`pair_row` rows as JSON Lines or CSV (scores as JSON text)."""

    def __init__(self, stream: BinaryIO, *, format: Literal["csv", "jsonl"]) -> None:
        self.stream = stream
        self.format = format
        self._header = False

    def write(self, outcomes: Sequence[Outcome]) -> int:
        rows = [row for row in map(pair_row, outcomes) if row is not None]
        if self.format == "jsonl":
            self.stream.write(b"".join(
                orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE) for row in rows))
            return len(rows)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        if not self._header:
            writer.writerow(COLUMNS)
            self._header = True
        writer.writerows([csv_cell(row[c]) for c in COLUMNS] for row in rows)
        self.stream.write(buffer.getvalue().encode())
        return len(rows)

    def close(self) -> None:
        if self.format == "csv" and not self._header:
            self.write([])
        self.stream.flush()
