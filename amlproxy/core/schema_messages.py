"""Short, human reasons for pydantic's validation errors, in amlproxy's words.

Used by :meth:`amlproxy.core.schema.Schema.validate`: each message names what is wrong
with one field's value (the field itself is named by the FieldError that carries it).
"""

from __future__ import annotations

from typing import Any

from pydantic_core import ErrorDetails

from amlproxy.core.schema_format import Attribute
from amlproxy.core.schema_format import json_type_name as type_name

_MAX_SHOWN = 40  # characters of a bad value quoted in a message
_CATEGORIES_SHOWN = 3  # categories quoted when there are too many to list


def describe_pydantic_error(error: ErrorDetails, attribute: Attribute | None) -> str:
    """The reason for one pydantic error on one field."""
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "missing required value"
    if kind == "float_parsing":
        return f"not a number: {shown(value)}"
    if kind == "finite_number":
        return f"not a finite number: {shown(value)}"
    if kind == "float_type":
        if isinstance(value, int):
            return f"number out of range: {shown(value)}"
        return f"expected a number, got {type_name(value)}"
    if kind == "greater_than_equal":
        return f"{number(value)} is below the minimum {number(ctx.get('ge'))}"
    if kind == "less_than_equal":
        return f"{number(value)} is above the maximum {number(ctx.get('le'))}"
    if kind == "literal_error":
        if not isinstance(value, str):
            return f"expected a string, got {type_name(value)}"
        categories = attribute.categories if attribute and attribute.categories else ()
        return f"unknown category {shown(value)} ({expected_categories(categories)})"
    if kind == "string_type":
        return f"expected a string, got {type_name(value)}"
    if kind in ("bool_parsing", "bool_type"):
        return f"not a binary value: {shown(value)} (expected 0/1, true/false, yes/no or y/n)"
    if kind == "extra_forbidden":
        return "unknown field (not in the schema)"
    return str(error.get("msg", kind))


def expected_categories(categories: tuple[str, ...]) -> str:
    """'expected one of 'a', 'b'' or, for long lists, the first few and the count."""
    if len(categories) <= _CATEGORIES_SHOWN + 1:
        return "expected one of " + ", ".join(repr(c) for c in categories)
    head = ", ".join(repr(c) for c in categories[:_CATEGORIES_SHOWN])
    return f"expected one of {head}, ... {len(categories)} in all"


def shown(value: Any) -> str:
    """A bad value quoted for a message, cut short if long."""
    text = repr(value)
    if len(text) > _MAX_SHOWN:
        text = text[: _MAX_SHOWN - 3] + "..."
    return text


def number(value: Any) -> str:
    """A number as people write it: 150, not 150.0."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return shown(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
