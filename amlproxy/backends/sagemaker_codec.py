"""Request bodies for SageMaker real-time endpoints.

Each record is encoded once, on its own (:class:`CsvEncoder`, :class:`JsonEncoder`), so
that :func:`pack` can split a batch into bodies under the payload limit without
re-encoding; a body is then a cheap join.

- ``text/csv``: one line per record, the schema's features in order (target excluded),
  missing values as empty cells, booleans as ``1``/``0``, integral floats without ``.0``,
  strings quoted CSV-style when they hold a comma, a quote or a line break.
- ``application/json``: one record object, or ``{"instances": [...]}`` for several.

Responses are parsed by :mod:`amlproxy.backends.sagemaker_response`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

import orjson

CSV: Final = "text/csv"
JSON: Final = "application/json"
SAGEMAKER_MAX_PAYLOAD_BYTES = 6 * 1024 * 1024  # 6,291,456: InvokeEndpoint's body limit
DEFAULT_MAX_PAYLOAD_BYTES = SAGEMAKER_MAX_PAYLOAD_BYTES - 64 * 1024  # headroom

_NEEDS_QUOTES = re.compile(r'[,"\r\n]')


class CsvEncoder:
    """Encodes records as ``text/csv`` lines in feature order."""

    content_type = CSV

    def __init__(self, feature_names: Sequence[str]) -> None:
        self.feature_names = tuple(feature_names)
        self._commas = len(self.feature_names) - 1
        self._values = itemgetter(*self.feature_names) if self._commas > 0 else None

    def encode_batch(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """``[encode(r) for r in records]``, column by column: the usual batch (records
        from the schema's validator, every feature present, each column of one type) is
        encoded in a few passes of C loops, with no Python call per cell."""
        values = self._values
        if values is None or len(records) < 4:
            return [self.encode(record) for record in records]
        try:
            rows = list(map(values, records))
        except (KeyError, TypeError):  # a feature absent (None), a record not a dict...
            return [self.encode(record) for record in records]
        columns = [_column_cells(column) for column in zip(*rows, strict=True)]
        lines = list(map(",".join, zip(*columns, strict=True)))
        text = "\n".join(lines)
        count = len(lines)
        if (text.count(",") == count * self._commas and text.count("\n") == count - 1
                and '"' not in text and "\r" not in text):
            return text.encode().split(b"\n")  # one line per record: none needs quotes
        return [(",".join(_quoted(cells[i]) for cells in columns)
                 if line.count(",") != self._commas or '"' in line or "\n" in line
                 or "\r" in line else line).encode() for i, line in enumerate(lines)]

    def encode(self, record: Mapping[str, Any]) -> bytes:
        get = record.get
        cells: list[str] = []
        append = cells.append
        for name in self.feature_names:  # the hot path: str and float inline
            value: Any = get(name)
            kind = value.__class__
            if kind is str:
                append(value)
            elif kind is float and value.is_integer() and -1e15 < value < 1e15:
                append("%d" % value)  # noqa: UP031  (one call; -0.0 -> "0" like int())
            else:
                append(_csv_cell(value))
        line = ",".join(cells)
        # one look at the whole line instead of four at each string: a comma, a quote or a
        # line break inside a value makes it quote the cells that need it
        if line.count(",") != self._commas or '"' in line or "\n" in line or "\r" in line:
            line = ",".join(_quoted(cell) for cell in cells)
        return line.encode()

    def body(self, encoded: Sequence[bytes]) -> bytes:
        return b"\n".join(encoded) + b"\n"

    def body_size(self, encoded_size: int, count: int) -> int:
        """Size of :meth:`body` for ``count`` records totalling ``encoded_size`` bytes."""
        return encoded_size + count


_STR: Final = frozenset({str})
_FLOAT: Final = frozenset({float})
_STR_NONE: Final = frozenset({str, type(None)})
_EMPTY_FOR_NONE: Final = {None: ""}


def _column_cells(column: tuple[Any, ...]) -> Sequence[str]:
    """The CSV cells of one feature's values, as :meth:`CsvEncoder.encode` writes each."""
    kinds = set(map(type, column))
    if kinds == _STR:
        return column
    if kinds == _STR_NONE:  # an optional category: None -> "", a string as it is
        return list(map(_EMPTY_FOR_NONE.get, column, column))
    if kinds == _FLOAT:
        distinct = set(column)  # (-0.0 and 0.0 are one: both write "0", as "%d" gives)
        if (all(map(float.is_integer, distinct))
                and min(distinct) > -1e15 and max(distinct) < 1e15):
            if len(distinct) * 2 > len(column):
                return list(map(str, map(int, column)))
            # a column of few values (ages, counts, zeros): each value written once
            cells = dict(zip(distinct, map(str, map(int, distinct)), strict=True))
            return list(map(cells.__getitem__, column))
    return [_cell(value) for value in column]


def _cell(value: Any) -> str:
    if value.__class__ is str:
        return value
    if value.__class__ is float and value.is_integer() and -1e15 < value < 1e15:
        return "%d" % value  # noqa: UP031
    return _csv_cell(value)


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if value is True:
        return "1"
    if value is False:
        return "0"
    if isinstance(value, float):
        if value.is_integer() and -1e15 < value < 1e15:
            return str(int(value))
        return repr(value)
    return str(value)


def _quoted(cell: str) -> str:
    if _NEEDS_QUOTES.search(cell):
        return '"' + cell.replace('"', '""') + '"'
    return cell


class JsonEncoder:
    """Encodes records as JSON objects of the schema's features; several go in
    ``{"instances": [...]}``, one alone too unless ``single_object`` is set."""

    content_type = JSON
    _HEAD = b'{"instances":['
    _TAIL = b"]}"

    def __init__(self, feature_names: Sequence[str], *, single_object: bool = False) -> None:
        self.feature_names = tuple(feature_names)
        self.single_object = single_object

    def encode(self, record: Mapping[str, Any]) -> bytes:
        get = record.get
        return orjson.dumps({name: get(name) for name in self.feature_names})

    def encode_batch(self, records: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """``[encode(r) for r in records]``."""
        return [self.encode(record) for record in records]

    def body(self, encoded: Sequence[bytes]) -> bytes:
        if self.single_object and len(encoded) == 1:
            return encoded[0]
        return self._HEAD + b",".join(encoded) + self._TAIL

    def body_size(self, encoded_size: int, count: int) -> int:
        if self.single_object and count == 1:
            return encoded_size
        return len(self._HEAD) + len(self._TAIL) + encoded_size + max(0, count - 1)


Encoder = CsvEncoder | JsonEncoder


def pack(sizes: Sequence[int], encoder: Encoder, max_bytes: int) -> list[tuple[int, int]]:
    """Split records of the given encoded ``sizes`` into consecutive ``[start, stop)`` runs
    whose bodies fit in ``max_bytes``, as few as possible. A record too big on its own gets
    a run of its own (the caller refuses it)."""
    runs: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and encoder.body_size(total + size, i - start + 1) > max_bytes:
            runs.append((start, i))
            start, total = i, 0
        total += size
    if sizes:
        runs.append((start, len(sizes)))
    return runs
