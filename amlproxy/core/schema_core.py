"""The pydantic-core validator of a record: every rule of a schema runs in Rust.

Used by :class:`amlproxy.core.schema.Schema`, built once per schema. A record is a
``typed-dict`` core schema with one field per feature; passive columns (target, rowId,
rowWeight, excluded) and unknown keys are dropped by pydantic-core itself
(``extra_behavior="ignore"``; the schema refuses unknown keys with one set test). Each
feature is a left-to-right union of branches, each taking one type of input:

=========== ==================================================================
``exact``   CATEGORICAL: the string as it is, one of the categories (the usual case)
``str``     a string: stripped (Unicode White_Space), then parsed as the type says
``num``     NUMERIC and BINARY: a JSON number (booleans refused for NUMERIC)
``int``     CATEGORICAL and TEXT: an integer, taken in its string form (``3`` -> ``"3"``)
``float``   CATEGORICAL and TEXT: a float, in its string form (``3.0`` -> ``"3"``)
``missing`` optional features: a missing marker (after stripping) -> None
=========== ==================================================================

None is missing too (``nullable``), and an absent optional key defaults to None. A missing
marker that a branch would accept as a value (``"NA"`` for TEXT, ``"0"`` for BINARY...)
is tried first; a required feature then refuses the None it becomes.

When validation fails, :func:`explain` turns the errors of one field back into amlproxy's
reason, choosing the error of the branch for the input's type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_core import ErrorDetails, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from amlproxy.core.schema_format import Attribute, AttributeType
from amlproxy.core.schema_messages import describe_pydantic_error

ABSENT: Any = object()  # the value of a key that a record does not have
_NONE = cs.with_default_schema(cs.none_schema(), default=None, on_error="default")


def record_validator(features: Sequence[Attribute], markers: Sequence[str]) -> SchemaValidator:
    """The validator of one record: a mapping in, a dict of the features (in schema order,
    None for missing) out."""
    return SchemaValidator(record_core_schema(features, markers))


def batch_validator(features: Sequence[Attribute], markers: Sequence[str]) -> SchemaValidator:
    """The validator of a list of records, in one call: a valid record becomes its dict, an
    invalid one None (validate it alone to learn why)."""
    item = cs.with_default_schema(
        record_core_schema(features, markers), default=None, on_error="default"
    )
    return SchemaValidator(cs.list_schema(item))


def record_core_schema(features: Sequence[Attribute], markers: Sequence[str]) -> cs.CoreSchema:
    fields = {a.name: _field(a, tuple(markers)) for a in features}
    return cs.typed_dict_schema(fields, extra_behavior="ignore")


def _field(attribute: Attribute, markers: tuple[str, ...]) -> cs.TypedDictField:
    branches = _value_branches(attribute)
    missing = _missing(markers)
    first = missing is not None and _accepts_a_marker(branches, markers)
    if attribute.required:
        if not first:
            return cs.typed_dict_field(_union(branches))
        assert missing is not None
        # a marker becomes None first, which the required field then refuses
        refuse_none = cs.chain_schema([_union([missing, *branches]), _not_none(attribute)])
        return cs.typed_dict_field(refuse_none)
    if missing is not None:
        at = 0 if first else 1  # after the cheapest branch: a marker is no value anyway
        branches = [*branches[:at], missing, *branches[at:]]
    value = cs.nullable_schema(_union(branches))
    return cs.typed_dict_field(cs.with_default_schema(value, default=None), required=False)


def _union(branches: list[tuple[cs.CoreSchema, str]]) -> cs.CoreSchema:
    return cs.union_schema(list(branches), mode="left_to_right")


def _value_branches(a: Attribute) -> list[tuple[cs.CoreSchema, str]]:
    """The labelled branches that take a present, non-missing value."""
    if a.type is AttributeType.NUMERIC:
        bounds: dict[str, Any] = {"ge": a.minimum, "le": a.maximum, "allow_inf_nan": False}
        return [
            (cs.chain_schema([_stripped(), cs.float_schema(**bounds)]), "str"),
            (cs.float_schema(strict=True, **bounds), "num"),
        ]
    if a.type is AttributeType.BINARY:
        from_text = cs.chain_schema([_stripped(), cs.bool_schema()])
        return [(from_text, "str"), (cs.bool_schema(), "num")]
    check = cs.literal_schema(list(a.categories)) if a.categories is not None else None
    steps = [check] if check is not None else []
    integral = cs.chain_schema([cs.int_schema(), _number_text()])  # 3.0 -> 3 -> "3"
    as_text = cs.union_schema([integral, _number_text()], mode="left_to_right")
    branches: list[tuple[cs.CoreSchema, str]] = [
        (_chain([_stripped(), *steps]), "str"),
        (_chain([cs.int_schema(strict=True), _number_text(), *steps]), "int"),
        (_chain([cs.float_schema(strict=True), as_text, *steps]), "float"),
    ]
    if check is not None:
        branches.insert(0, (check, "exact"))
    return branches


def _chain(steps: list[cs.CoreSchema]) -> cs.CoreSchema:
    return steps[0] if len(steps) == 1 else cs.chain_schema(steps)


def _stripped() -> cs.CoreSchema:
    return cs.str_schema(strict=True, strip_whitespace=True)


def _number_text() -> cs.CoreSchema:
    return cs.str_schema(coerce_numbers_to_str=True)


def _missing(markers: tuple[str, ...]) -> tuple[cs.CoreSchema, str] | None:
    if not markers:
        return None
    return cs.chain_schema([_stripped(), cs.literal_schema(list(markers)), _NONE]), "missing"


def _not_none(a: Attribute) -> cs.CoreSchema:
    if a.type is AttributeType.NUMERIC:
        return cs.float_schema(strict=True)
    if a.type is AttributeType.BINARY:
        return cs.bool_schema(strict=True)
    return cs.str_schema(strict=True)


def _accepts_a_marker(branches: list[tuple[cs.CoreSchema, str]], markers: tuple[str, ...]
                      ) -> bool:
    """Whether some missing marker would pass as a value (then markers are tried first)."""
    validator = SchemaValidator(_union(branches))
    for marker in markers:
        try:
            validator.validate_python(marker)
        except ValidationError:
            continue
        return True
    return False


def explain(attribute: Attribute, value: Any, errors: list[ErrorDetails],
            markers: frozenset[str]) -> str:
    """amlproxy's reason for the pydantic-core ``errors`` of one field whose input was
    ``value`` (:data:`ABSENT` when the record lacks the key)."""
    if value is ABSENT or value is None or (isinstance(value, str) and value.strip() in markers):
        return "missing required value"
    kind = attribute.type
    if isinstance(value, bool) and kind is not AttributeType.BINARY:
        expected = "a number" if kind is AttributeType.NUMERIC else "a string"
        return f"expected {expected}, got a boolean"
    label = _branch_for(kind, value)
    error = next((e for e in errors if e["loc"][1:2] == (label,)), errors[0])
    if isinstance(value, str):  # reasons quote the value as it was checked: stripped
        error = {**error, "input": value.strip()}
    return describe_pydantic_error(error, attribute)


def _branch_for(kind: AttributeType, value: Any) -> str:
    if isinstance(value, str):
        return "str"
    if kind is AttributeType.NUMERIC or kind is AttributeType.BINARY:
        return "num"
    if isinstance(value, int):
        return "int"
    return "float" if isinstance(value, float) else "str"
