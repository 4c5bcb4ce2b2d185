"""Schemathesis hooks for the API run (``tests.functional.schemathesis_hooks``).

Schemathesis generates every request from the served ``/openapi.json`` and runs all its
checks. Three things a JSON Schema cannot say are supplied here, and nothing else:

- **CSV bodies.** ``text/csv`` is a string on the wire, and which strings are valid depends
  on the record schema and on ``?header=``. A media-type strategy builds CSV rows from the
  record schema (values within their bounds, categories, missing markers, quoting), with a
  header line or without, and positive cases send the ``?header=`` that matches.
- **The value of a number given as a string.** The served schema accepts ``"39"`` for a
  NUMERIC attribute and says in the branch's description that bounds apply to it too; JSON
  Schema has no keyword for the numeric value of a string. In positive cases a numeric
  string out of bounds (or not finite) is moved to the nearest bound, written as a string.
- **A new Idempotency-Key per request.** A key is unique per request by definition (the
  same key with another body is a 422, which is right); positive cases get a unique suffix.

Negative cases are left as generated, except that a valid body keeps its numeric strings in
bounds when a parameter is the invalid part (so that the parameter alone decides), and a
CSV body aimed at: the strategy makes valid rows, so a negative case gets one bad value or
a field too many (schemathesis marks the body "invalid" and expects a 4xx).
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from typing import Any

import schemathesis
from hypothesis import strategies as st
from schemathesis.core.parameters import ParameterLocation

from amlproxy.core.schema import Schema, load_schema
from amlproxy.core.schema_format import AttributeType

SCHEMA: Schema = load_schema("census-income")  # what `amlproxy local up` serves by default


def _value(attribute: Any, markers: list[str]) -> st.SearchStrategy[str]:
    if attribute.type is AttributeType.NUMERIC:
        low = attribute.minimum if attribute.minimum is not None else -1e12
        high = attribute.maximum if attribute.maximum is not None else 1e12
        number: st.SearchStrategy[str] = st.one_of(
            st.integers(math.ceil(low), math.floor(high)).map(str),
            st.floats(low, high, allow_nan=False, allow_infinity=False).map(repr),
        )
        present = number
    elif attribute.categories is not None:
        present = st.sampled_from(attribute.categories)
    elif attribute.type is AttributeType.BINARY:
        present = st.sampled_from(["0", "1", "yes", "no", "true", "False"])
    else:
        present = st.text(min_size=1, max_size=8).filter(lambda t: t.strip() not in markers)
    padded = st.tuples(st.sampled_from(["", " "]), present, st.sampled_from(["", " "])).map(
        "".join)
    if attribute.required and attribute.name in SCHEMA.feature_names:
        return padded
    return st.one_of(padded, st.sampled_from(markers))


def _rows() -> st.SearchStrategy[bytes]:
    markers = sorted(SCHEMA.missing_markers)
    row = st.tuples(*(_value(a, markers) for a in SCHEMA.attributes))

    def encode(rows: list[tuple[str, ...]]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue().encode()

    header = ",".join(SCHEMA.column_names).encode() + b"\n"
    rows = st.lists(row, min_size=1, max_size=4).map(encode)
    return st.tuples(st.booleans(), rows).map(lambda pair: header * pair[0] + pair[1])


schemathesis.openapi.media_type("text/csv", _rows())


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = getattr(case, "meta", None)
    positive = meta is None or meta.generation.mode.is_positive
    return _positive(case) if positive else _negative(case, meta)


@schemathesis.hook
def before_add_examples(context: Any, examples: list[Any]) -> None:
    """The examples phase (cases built from the schema's ``examples``) is positive."""
    for case in examples:
        _positive(case)


def _has_header(body: bytes) -> bool:
    return body.startswith(SCHEMA.column_names[0].encode() + b",")


def _positive(case: Any) -> Any:
    """Positive cases: ``?header=`` follows the CSV body; an Idempotency-Key made unique;
    numeric strings within their bounds. (A CSV body itself is never changed here:
    schemathesis cannot revalidate a changed raw body and would count the case negative.)"""
    if case.media_type == "text/csv" and isinstance(case.body, bytes):
        query = dict(case.query or {})
        query["header"] = "true" if _has_header(case.body) else "false"
        case.query = query
    headers = case.headers or {}
    key = headers.get("Idempotency-Key")
    if isinstance(key, str) and key:
        headers["Idempotency-Key"] = f"{key[:200]}-{uuid.uuid4().hex}"
    if case.media_type != "text/csv":
        case.body = _numbers_in_bounds(case.body)
    return case


# What makes a valid CSV row invalid: a value of the wrong kind, an unknown category, a
# field too many.
_CORRUPTIONS = (("age", "forty"), ("sex", "Robot"), (None, "extra"))


def _negative(case: Any, meta: Any) -> Any:
    """A negative case whose body is valid (the invalid part is a parameter) keeps its
    numeric strings within bounds, so that the parameter alone decides the answer. A CSV
    body from the media-type strategy is valid; a negative case aimed at the body needs an
    invalid one: one row gets a bad value or a field too many."""
    if not meta.is_negative_at(ParameterLocation.BODY):
        if case.media_type != "text/csv":
            case.body = _numbers_in_bounds(case.body)
        return case
    if case.media_type == "text/csv" and isinstance(case.body, bytes):
        lines = case.body.decode().splitlines()
        data = 1 if _has_header(case.body) else 0
        field, value = _CORRUPTIONS[hash(case.body) % len(_CORRUPTIONS)]
        row = next(csv.reader([lines[data]]))
        if field is None:
            row.append(value)
        else:
            row[SCHEMA.column_names.index(field)] = value
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(row)
        lines[data] = out.getvalue()
        case.body = ("\n".join(lines) + "\n").encode()
    return case


def _numbers_in_bounds(body: Any) -> Any:
    if isinstance(body, list):
        return [_numbers_in_bounds(record) for record in body]
    if isinstance(body, dict) and set(body) == {"records"}:
        return {"records": _numbers_in_bounds(body["records"])}
    if not isinstance(body, dict):
        return body
    fixed = dict(body)
    for name, value in body.items():
        if name not in SCHEMA.feature_names or not isinstance(value, str):
            continue
        attribute = SCHEMA.attribute(name)
        if attribute.type is not AttributeType.NUMERIC:
            continue
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            continue  # a marker, or not a number: the schema decides
        low = attribute.minimum if attribute.minimum is not None else -1.7976931348623157e308
        high = attribute.maximum if attribute.maximum is not None else 1.7976931348623157e308
        if not math.isfinite(number) or not low <= number <= high:
            bound = low if math.isfinite(number) and number < low else high
            fixed[name] = repr(bound) if not float(bound).is_integer() else str(int(bound))
    return fixed
