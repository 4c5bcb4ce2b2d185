"""The reference for the property tests of validation: ``Schema.validate`` as it was before
validation moved into pydantic-core (issue 16), kept verbatim in spirit.

A per-field Python pass (strip, missing markers, booleans, numbers for string fields)
followed by a pydantic model's ``validate_python``. Slow, but it is what the messages and
results of today were defined by: tests/unit/test_validation_properties.py checks that the
new validator agrees with it on generated schemas and rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from amlproxy.core.schema import Schema
from amlproxy.core.schema_format import AttributeType
from amlproxy.core.schema_messages import describe_pydantic_error
from amlproxy.core.schema_model import build_record_model
from amlproxy.errors import FieldError, RecordValidationError

_PASS, _NUMERIC, _STRING, _BINARY = 0, 1, 2, 3
_KIND_OF_TYPE = {
    AttributeType.NUMERIC: _NUMERIC,
    AttributeType.CATEGORICAL: _STRING,
    AttributeType.TEXT: _STRING,
    AttributeType.BINARY: _BINARY,
}


class LegacyValidator:
    """The old validation of one schema."""

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        passive = set(schema.column_names) - set(schema.feature_names)
        self.kinds = {a.name: (_PASS if a.name in passive else _KIND_OF_TYPE[a.type])
                      for a in schema.attributes}
        self.position = {name: i for i, name in enumerate(schema.column_names)}
        model, self.aliased = build_record_model(schema.name, schema.features)
        self.validator = model.__pydantic_validator__

    def validate(self, fields: Mapping[str, Any], *, line: int | None = None) -> dict[str, Any]:
        schema = self.schema
        data: dict[str, Any] = {}
        problems: list[FieldError] = []
        for key, value in fields.items():
            kind = self.kinds.get(key)
            if not kind:
                if kind is None and schema.extra_fields == "reject":
                    problems.append(FieldError(str(key), "unknown field (not in the schema)"))
                continue
            if value.__class__ is str:
                value = value.strip()
                if value in schema.missing_markers:
                    continue
            elif value is None:
                continue
            elif kind != _BINARY:
                value = _number_or_string(kind, value)
                if value is None:
                    expected = "a number" if kind == _NUMERIC else "a string"
                    problems.append(FieldError(key, f"expected {expected}, got a boolean"))
                    continue
            data[key] = value
        values: dict[str, Any] = {}
        try:
            values = self.validator.validate_python(data).__dict__
        except ValidationError as exc:
            reported = {e.field for e in problems}
            for error in exc.errors(include_url=False):
                field = str(error["loc"][0])
                if field not in reported:
                    attribute = schema.attribute(field)
                    problems.append(FieldError(field, describe_pydantic_error(error, attribute)))
        if problems:
            problems.sort(key=lambda e: self.position.get(e.field or "", len(self.position)))
            raise RecordValidationError(problems, line=line, row_id=schema.row_id_of(fields))
        if self.aliased:
            return dict(zip(schema.feature_names, values.values(), strict=True))
        return values


def _number_or_string(kind: int, value: Any) -> Any:
    if isinstance(value, bool):
        return None
    if kind == _NUMERIC:
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return value
