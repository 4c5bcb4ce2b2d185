"""The JSON Schema of one input record: exactly what :meth:`Schema.validate` accepts.

The rule for numbers sent as strings: **accepted**, and said so in the schema. Amazon ML's
``Predict`` takes a ``Record`` that is a string map (``{"age": "39"}``), a CSV row read
with ``csv.DictReader`` is one too, and both are what an Amazon ML user or a data pipeline
already has; refusing them would make every such client convert types first for no gain,
since the validator parses CSV strings anyway. So a NUMERIC attribute takes a JSON number
or a string holding one, a BINARY attribute ``true``/``false``, ``0``/``1`` or one of
pydantic's words (``yes``, ``off``, ``t``...), a CATEGORICAL or TEXT attribute a string (or
a number, taken in its string form). Strings are stripped of surrounding whitespace, and a
missing-value marker (``"?"``, ``""`` by default) means missing, as ``null`` and an absent
key do.

The schema says each of these in JSON Schema's own terms (``anyOf`` of the typed value and
the string patterns), so that a client, a code generator or a fuzzer sees the same rule as
the validator. Patterns are portable: explicit character classes rather than ``\\s`` and
``\\d``, whose meaning differs between ECMA-262, Python and Rust regular expressions. The
one thing JSON Schema cannot say is the *value* of a string: the bounds of a NUMERIC
attribute (and finiteness) apply to a number given as a string too, and the string
branch's ``description`` says so. ``tests/unit/test_schema_json.py`` checks the schema
against the validator on generated values.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from amlproxy.core.schema_format import Attribute, AttributeType

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
FLOAT_MAX = 1.7976931348623157e308  # the largest finite double: beyond it, not a number

# What the validator strips (pydantic-core's str_strip_whitespace: Unicode White_Space, as
# Rust's char::is_whitespace; not the ASCII separators U+001C-U+001F that str.strip() also
# removes).
WHITESPACE = (
    "[\\t-\\r\\u0020\\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f"
    "\\u205f\\u3000]"
)
# A finite decimal number as pydantic parses one from a string: optional sign, digits with a
# point and an exponent, single underscores between characters (not first, last or doubled).
_DIGITS = "[0-9](?:_?[0-9])*"
NUMBER = (
    f"(?:[+-]_?)?(?:{_DIGITS}(?:_?\\.(?:_?{_DIGITS})?)?|\\._?{_DIGITS})"
    f"(?:_?[eE](?:_?[+-])?_?{_DIGITS})?"
)
_SYNTAX = frozenset("^$\\.*+?()[]{}|")
# The strings pydantic reads as a boolean (any case).
BOOLEAN_WORDS = ("0", "off", "f", "false", "n", "no", "1", "on", "t", "true", "y", "yes")
NUMBER_STRING_NOTE = (
    "a number written as a string (Amazon ML's Record is a string map); it must also be "
    "finite and within the attribute's minimum and maximum"
)


def record_json_schema(
    title: str,
    attributes: Sequence[Attribute],
    feature_names: Sequence[str],
    *,
    target: str | None,
    missing_markers: Sequence[str],
    closed: bool,
) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of one record as :meth:`Schema.validate` accepts it.

    Feature attributes get the forms described in the module docstring; optional ones also
    take ``null`` and the missing-value markers. The other columns (target, rowId, rowWeight,
    excluded) are never looked at, so any value is allowed there. ``closed`` forbids
    properties the schema does not name.
    """
    features = set(feature_names)
    markers = tuple(dict.fromkeys(missing_markers))
    properties: dict[str, Any] = {}
    for a in attributes:
        if a.name not in features:
            role = "the target" if a.name == target else "not sent to the model"
            properties[a.name] = {"description": f"{role}: any value, ignored when scoring"}
            continue
        properties[a.name] = attribute_schema(a, markers)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "title": title,
        "type": "object",
        "properties": properties,
        "required": [a.name for a in attributes if a.name in features and a.required],
        "additionalProperties": not closed,
    }


def attribute_schema(attribute: Attribute, markers: Sequence[str]) -> dict[str, Any]:
    """The schema of one feature attribute's value (see the module docstring)."""
    branches = _branches(attribute, markers)
    if not attribute.required:
        branches.append({"type": "null", "description": "missing"})
        if markers:
            branches.append({"type": "string", "pattern": _stripped(_alternatives(markers)),
                             "description": "a missing-value marker: missing"})
    return {"anyOf": branches}


def _branches(a: Attribute, markers: Sequence[str]) -> list[dict[str, Any]]:
    """The forms of a present value (``markers``: the strings that mean missing)."""
    if a.type is AttributeType.NUMERIC:
        number: dict[str, Any] = {
            "type": "number",
            "minimum": _number(a.minimum) if a.minimum is not None else -FLOAT_MAX,
            "maximum": _number(a.maximum) if a.maximum is not None else FLOAT_MAX,
        }
        return [number, _string(_stripped(NUMBER), markers, NUMBER_STRING_NOTE)]
    if a.type is AttributeType.BINARY:
        words = "|".join(any_case(w) for w in BOOLEAN_WORDS)
        return [{"type": "boolean"}, {"type": "number", "enum": [0, 1]},
                _string(_stripped(f"(?:{words})"), markers,
                        "true/false, 1/0, yes/no, y/n, t/f or on/off, in any case")]
    if a.categories is None:  # TEXT, or CATEGORICAL without a list: any string or number
        text: dict[str, Any] = {"type": "string"}
        if markers and a.required:
            text["not"] = {"pattern": _stripped(_alternatives(markers))}
        return [text, {"type": "number"}]
    categories = [c for c in a.categories if c not in markers]
    branches = []
    if categories:
        choice = _string(_stripped(_alternatives(categories)), (), "one of the categories")
        choice["examples"] = categories
        branches.append(choice)
    numbers = [n for n in map(_number_form, a.categories) if n is not None]
    if numbers:
        branches.append({"type": "number", "enum": numbers,
                         "description": "a number whose string form is a category"})
    return branches or [{"not": {}}]


def _string(pattern: str, markers: Sequence[str], description: str) -> dict[str, Any]:
    """A string branch matching ``pattern`` but none of ``markers`` (which mean missing)."""
    branch: dict[str, Any] = {"type": "string", "pattern": pattern, "description": description}
    if any(re.search(pattern, m) for m in markers):
        branch["not"] = {"pattern": _stripped(_alternatives(markers))}
    return branch


def _stripped(body: str) -> str:
    """A pattern matching ``body`` with any surrounding whitespace (the validator's)."""
    return f"^{WHITESPACE}*{body}{WHITESPACE}*$"


def _alternatives(words: Sequence[str]) -> str:
    """A group matching exactly one of ``words`` ("" makes the group optional)."""
    present = [_escape(w) for w in words if w]
    group = f"(?:{'|'.join(present)})" if present else ""
    return f"{group}?" if "" in words and present else group


def _escape(text: str) -> str:
    """``text`` as a literal in a pattern: a backslash before ECMA-262's syntax characters
    only (``re.escape`` also escapes characters such as ``-``, an error in Unicode mode)."""
    return "".join(f"\\{c}" if c in _SYNTAX else c for c in text)


def any_case(word: str) -> str:
    """A pattern matching ``word`` in any case (letters as ``[aA]``)."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in word)


def _number(x: float) -> int | float:
    return int(x) if x.is_integer() else x


def _number_form(category: str) -> int | float | None:
    """The JSON number the validator turns into ``category``, if any (it takes an integer
    in its decimal form and any other number in its ``repr``)."""
    if re.fullmatch("-?(?:0|[1-9][0-9]*)", category) and category != "-0":
        return int(category)
    try:
        x = float(category)
    except ValueError:
        return None
    if x != x or x in (float("inf"), float("-inf")) or x.is_integer() or repr(x) != category:
        return None
    return x
