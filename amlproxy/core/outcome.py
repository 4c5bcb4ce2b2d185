"""What happened to each record: source rows in, outcomes out."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from amlproxy.core.prediction import Prediction
from amlproxy.errors import ConfigurationError, FieldError


@dataclass(slots=True)  # not frozen: see the class docstring
class SourceRow:
    """One record as a reader found it, before validation.

    ``line`` is the 1-based physical line where the record starts in its file (or the
    1-based index in a message or batch). ``fields`` is None when the row could not even be
    split into fields; ``error`` then says why, and the row becomes a reject.
    """

    line: int
    fields: Mapping[str, Any] | None
    raw: str
    error: str | None = None


class Status(StrEnum):
    OK = "ok"
    REJECTED = "rejected"  # bad input: it will never score as it is
    FAILED = "failed"  # the input was fine, but the backend or a sink failed


@dataclass(slots=True)  # not frozen: see the class docstring
class Outcome:
    """The fate of one record. ``key`` is deterministic from source and line, so a replay
    of the same input produces the same keys and idempotent sinks overwrite. Read-only by
    convention (see :class:`SourceRow`)."""

    source: str
    line: int
    status: Status
    record: Mapping[str, Any] | None
    raw: str | None
    prediction: Prediction | None = None
    errors: tuple[FieldError, ...] = ()
    row_id: str | None = None

    @property
    def key(self) -> str:
        return record_key(self.source, self.line)

    @property
    def reasons(self) -> list[str]:
        return [str(e) for e in self.errors]


def record_key(source: str, line: int) -> str:
    """The stable key of a record: its source and its position in it."""
    return f"{source}#{line}"


StatusFilter = Collection["Status | str"] | Literal["all"]


def parse_statuses(statuses: StatusFilter, *, who: str) -> frozenset[Status]:
    """The set of statuses a sink keeps: ``"all"`` or names such as ``("ok", "failed")``."""
    if statuses == "all":
        return frozenset(Status)
    try:
        chosen = frozenset(Status(s) for s in statuses)
    except ValueError as exc:
        raise ConfigurationError(f"unknown outcome status in {statuses!r}: {exc}") from exc
    if not chosen:
        raise ConfigurationError(f"{who} needs at least one outcome status")
    return chosen
