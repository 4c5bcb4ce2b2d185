"""The JSON Lines of many ``ok`` outcomes at once: the bytes of
``orjson.dumps(result_row(o), option=OPT_APPEND_NEWLINE | OPT_NON_STR_KEYS, default=str)``
for each outcome, joined, with no dict and no ``dumps`` call per record.

Used by :class:`amlproxy.core.writers.ResultWriter`. The usual chunk (one source, the
predictions of a backend: the same labels in the same order, numbers for scores, value,
latency and attempts, a few distinct labels, backends and model ids) is written from one
byte template per chunk, filled by one ``%`` per record; the numbers of each column are
serialised by one ``orjson.dumps`` of the column (a number's JSON holds no comma, so the
list splits back into its items). Any other chunk gives None and is written row by row.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, Final, cast

import orjson

from amlproxy.core.outcome import Outcome
from amlproxy.core.prediction import Prediction

_FIELDS = attrgetter("label", "scores", "value", "backend", "model_id", "latency_ms",
                     "attempts")
_SOURCES = attrgetter("source")
_LINES = attrgetter("line")
_ROW_IDS = attrgetter("row_id")
_PREDICTIONS = attrgetter("prediction")
_PREDICTION: Final = frozenset({Prediction})
_INT: Final = frozenset({int})
_DICT: Final = frozenset({dict})
_NUMBERS: Final = frozenset({float, int, type(None)})  # their JSON holds no comma
_TEXTS: Final = frozenset({str, type(None)})
_NO_ROW_ID: Final = frozenset({type(None)})
_FEW = 16  # distinct labels, backends, model ids: each serialised once per chunk


def result_lines(outcomes: Sequence[Outcome]) -> bytes | None:
    """The JSON Lines of ``outcomes`` (all ``ok``, each with a prediction), or None when
    the chunk is not of the usual shape (see the module docstring)."""
    if not outcomes:
        return b""
    predictions = list(map(_PREDICTIONS, outcomes))
    sources = set(map(_SOURCES, outcomes))
    if set(map(type, predictions)) != _PREDICTION or len(sources) != 1:
        return None
    source = sources.pop()
    lines = list(map(_LINES, outcomes))
    if source.__class__ is not str or set(map(type, lines)) != _INT:
        return None
    labels, scores, values, backends, models, latencies, attempts = zip(
        *map(_FIELDS, predictions), strict=True)
    if set(map(type, scores)) != _DICT:
        return None
    names = set(map(tuple, scores))
    if len(names) != 1:
        return None
    score_names = names.pop()
    if set(map(type, score_names)) - {str}:
        return None
    score_columns = [list(map(itemgetter(name), scores)) for name in score_names]
    rounded = _rounded(latencies)
    found: list[Sequence[bytes] | None] = [
        _numbers(column) for column in (*score_columns, values, rounded, attempts)]
    found += [_few_texts(column) for column in (labels, backends, models)]
    found.append(_row_ids(list(map(_ROW_IDS, outcomes))))
    if None in found:
        return None
    *score_cells, value_cells, latency_cells, attempt_cells, label_cells, backend_cells, \
        model_cells, row_id_cells = cast("list[Sequence[bytes]]", found)
    template = _template(source, score_names)
    cells = zip(lines, lines, row_id_cells, label_cells, *score_cells, value_cells,
                backend_cells, model_cells, latency_cells, attempt_cells, strict=True)
    return b"".join(map(template.__mod__, cells))


def _template(source: str, score_names: tuple[str, ...]) -> bytes:
    """One line of the chunk with a ``%`` slot for each value (line twice: in the key)."""
    quoted = _json(source)
    scores = b"".join(_json(f"score_{name}") + b":%s," for name in score_names)
    return (b'{"key":' + quoted[:-1] + b'#%d","source":' + quoted + b',"line":%d,'
            b'"row_id":%s,"label":%s,' + scores + b'"value":%s,"backend":%s,"model_id":%s,'
            b'"latency_ms":%s,"attempts":%s}\n')


def _json(text: str) -> bytes:
    """``text`` as JSON, ready for a ``%`` template (its percent signs doubled)."""
    return orjson.dumps(text).replace(b"%", b"%%")


def _numbers(column: Sequence[Any]) -> list[bytes] | None:
    """Each number's JSON (None for null), by one dumps of the column; None if the column
    holds anything else (booleans included)."""
    if not set(map(type, column)) <= _NUMBERS:
        return None
    try:
        return orjson.dumps(list(column))[1:-1].split(b",")
    except orjson.JSONEncodeError:  # an integer beyond 64 bits: as the row by row path says
        return None


def _rounded(latencies: Sequence[Any]) -> list[Any]:
    """``round(latency, 3)`` of each, once per distinct latency (a call's records share
    theirs); zero, whose sign the rounding keeps, is left to the plain loop."""
    try:
        distinct = set(latencies)
    except TypeError:  # (round's own error follows)
        distinct = set(range(_FEW + 1))
    if len(distinct) > _FEW or 0.0 in distinct:
        return list(map(round, latencies, repeat(3)))
    rounded = {value: round(value, 3) for value in distinct}
    return list(map(rounded.__getitem__, latencies))


def _few_texts(column: Sequence[Hashable]) -> list[bytes] | None:
    """Each string's JSON (None for null), each distinct one serialised once; None if the
    column holds anything else or too many distinct values."""
    distinct = set(column)
    if len(distinct) > _FEW or not set(map(type, distinct)) <= _TEXTS:
        return None
    json = {value: orjson.dumps(value) for value in distinct}
    return list(map(json.__getitem__, column))


def _row_ids(column: list[str | None]) -> Sequence[bytes] | None:
    """Each row id's JSON; None if one is neither a string nor None."""
    kinds = set(map(type, column))
    if kinds == _NO_ROW_ID:
        return list(repeat(b"null", len(column)))
    if not kinds <= _TEXTS:
        return None
    return list(map(orjson.dumps, column))
