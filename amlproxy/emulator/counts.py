"""Request counts by endpoint, protocol and outcome.

Only prediction calls are counted (Amazon ML ``Predict``, SageMaker ``InvokeEndpoint``),
under the model id or endpoint name the client asked for, known or not. ``records`` counts
the records scored in answers that succeeded (one per AML call, one per CSV line or JSON
instance for SageMaker).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

PROTOCOLS = ("aml", "sagemaker")


class Outcome(IntEnum):
    """How a prediction call ended (the index of its counter)."""

    OK = 0
    THROTTLED = 1
    SERVER_ERROR = 2
    TIMEOUT = 3
    NOT_READY = 4
    INVALID = 5
    NOT_FOUND = 6
    MODEL_ERROR = 7


_NAMES = tuple(o.name.lower() for o in Outcome)
_REQUESTS = len(Outcome)  # slot of the request total
_RECORDS = _REQUESTS + 1  # slot of the record total


class Counts:
    """Counters, kept as one flat list of ints per (endpoint, protocol) for speed."""

    __slots__ = ("_cells",)

    def __init__(self) -> None:
        self._cells: dict[tuple[str, str], list[int]] = {}

    def add(self, endpoint: str, protocol: str, outcome: Outcome, records: int = 0) -> None:
        cell = self._cells.get((endpoint, protocol))
        if cell is None:
            cell = self._cells[(endpoint, protocol)] = [0] * (_RECORDS + 1)
        cell[outcome] += 1
        cell[_REQUESTS] += 1
        cell[_RECORDS] += records

    def reset(self) -> None:
        self._cells.clear()

    def snapshot(self) -> dict[str, Any]:
        """``{"endpoints": {name: {"requests", "records", "by_outcome", "by_protocol"}}}``;
        ``by_protocol`` has the same three keys per protocol (``aml``, ``sagemaker``)."""
        endpoints: dict[str, Any] = {}
        for (endpoint, protocol), cell in sorted(self._cells.items()):
            entry = endpoints.get(endpoint)
            if entry is None:
                entry = endpoints[endpoint] = _block([0] * (_RECORDS + 1))
                entry["by_protocol"] = {p: _block([0] * (_RECORDS + 1)) for p in PROTOCOLS}
            entry["by_protocol"][protocol] = _block(cell)
            entry["requests"] += cell[_REQUESTS]
            entry["records"] += cell[_RECORDS]
            for name, value in zip(_NAMES, cell, strict=False):
                entry["by_outcome"][name] += value
        return {"endpoints": endpoints}


def _block(cell: list[int]) -> dict[str, Any]:
    return {
        "requests": cell[_REQUESTS],
        "records": cell[_RECORDS],
        "by_outcome": dict(zip(_NAMES, cell, strict=False)),
    }
