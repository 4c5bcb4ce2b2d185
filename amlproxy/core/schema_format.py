"""Reading and writing Amazon ML data-schema documents (the ``.schema`` JSON format).

The format itself, and amlproxy's extensions to it, are described in
:mod:`amlproxy.core.schema`. This module only turns a decoded JSON document into checked
Python values (:class:`SchemaSpec`) and back; whether the parts fit together (the target
is an attribute, names are unique...) is checked by :class:`~amlproxy.core.schema.Schema`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from amlproxy.errors import SchemaError

ExtraFieldPolicy = Literal["reject", "ignore"]

DEFAULT_MISSING_MARKERS: tuple[str, ...] = ("?", "")

# Amazon ML's DataSchema API reference spells some keys differently from its developer
# guide ("variables"/"fieldName"...); both spellings are read, the guide's is written.
_TOP_ALIASES = {
    "variables": "attributes",
    "targetFieldName": "targetAttributeName",
    "recordAnnotationFieldName": "rowId",
    "recordWeightFieldName": "rowWeight",
    "excludedVariableNames": "excludedAttributeNames",
}
_ATTRIBUTE_ALIASES = {"fieldName": "attributeName", "fieldType": "attributeType"}
_TOP_KEYS = frozenset(
    {
        "version",
        "rowId",
        "rowWeight",
        "targetAttributeName",
        "dataFormat",
        "dataFileContainsHeader",
        "attributes",
        "excludedAttributeNames",
        "missingValues",
        "extraFields",
    }
)
_ATTRIBUTE_KEYS = frozenset(
    {"attributeName", "attributeType", "categories", "minimum", "maximum", "required"}
)


class AttributeType(StrEnum):
    """The four Amazon ML attribute types."""

    NUMERIC = "NUMERIC"
    CATEGORICAL = "CATEGORICAL"
    TEXT = "TEXT"
    BINARY = "BINARY"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One column of a record schema, with amlproxy's optional constraints.

    ``categories`` only for CATEGORICAL, ``minimum``/``maximum`` (inclusive) only for
    NUMERIC; None means unconstrained. ``required`` False lets the value be missing.
    """

    name: str
    type: AttributeType
    required: bool = False
    categories: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None


@dataclass(frozen=True, slots=True)
class SchemaSpec:
    """The checked contents of one schema document."""

    attributes: tuple[Attribute, ...]
    target: str | None
    row_id: str | None
    row_weight: str | None
    excluded: tuple[str, ...]
    has_header: bool
    missing_markers: tuple[str, ...]
    extra_fields: ExtraFieldPolicy


def parse_schema_document(doc: object) -> SchemaSpec:
    """Check a decoded ``.schema`` document; raises SchemaError with a one-line reason."""
    if not isinstance(doc, Mapping):
        raise SchemaError(f"expected a JSON object, got {json_type_name(doc)}")
    top = _canonical_keys(doc, _TOP_ALIASES, _TOP_KEYS, "the schema")
    version = top.get("version", "1.0")
    if version != "1.0":
        raise SchemaError(f"unsupported version {version!r} (expected '1.0')")
    data_format = top.get("dataFormat", "CSV")
    if not isinstance(data_format, str) or data_format.upper() != "CSV":
        raise SchemaError(f"unsupported dataFormat {data_format!r} (expected 'CSV')")
    raw_attributes = top.get("attributes")
    if not isinstance(raw_attributes, list) or not raw_attributes:
        raise SchemaError("'attributes' must be a non-empty list")
    excluded = top.get("excludedAttributeNames") or []
    if not isinstance(excluded, list) or not all(isinstance(n, str) for n in excluded):
        raise SchemaError("'excludedAttributeNames' must be a list of attribute names")
    markers = top.get("missingValues", list(DEFAULT_MISSING_MARKERS))
    if not isinstance(markers, list) or not all(isinstance(m, str) for m in markers):
        raise SchemaError("'missingValues' must be a list of strings")
    extra = top.get("extraFields", "reject")
    if extra not in ("reject", "ignore"):
        raise SchemaError(f"'extraFields' must be 'reject' or 'ignore', not {extra!r}")
    header = top.get("dataFileContainsHeader", False)
    if not isinstance(header, bool):
        raise SchemaError("'dataFileContainsHeader' must be true or false")
    return SchemaSpec(
        attributes=tuple(_parse_attribute(a, i) for i, a in enumerate(raw_attributes)),
        target=_optional_name(top, "targetAttributeName"),
        row_id=_optional_name(top, "rowId"),
        row_weight=_optional_name(top, "rowWeight"),
        excluded=tuple(excluded),
        has_header=header,
        missing_markers=tuple(dict.fromkeys(m.strip() for m in markers)),
        extra_fields="ignore" if extra == "ignore" else "reject",
    )


def schema_document(spec: SchemaSpec) -> dict[str, Any]:
    """The ``.schema`` document of a spec: Amazon ML keys first, then amlproxy's."""
    doc: dict[str, Any] = {"version": "1.0"}
    for key, value in (
        ("rowId", spec.row_id),
        ("rowWeight", spec.row_weight),
        ("targetAttributeName", spec.target),
    ):
        if value is not None:
            doc[key] = value
    doc["dataFormat"] = "CSV"
    doc["dataFileContainsHeader"] = spec.has_header
    doc["attributes"] = [_attribute_document(a) for a in spec.attributes]
    doc["excludedAttributeNames"] = list(spec.excluded)
    if spec.missing_markers != DEFAULT_MISSING_MARKERS:
        doc["missingValues"] = list(spec.missing_markers)
    if spec.extra_fields != "reject":
        doc["extraFields"] = spec.extra_fields
    return doc


def _attribute_document(attribute: Attribute) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "attributeName": attribute.name,
        "attributeType": attribute.type.value,
    }
    if attribute.required:
        doc["required"] = True
    if attribute.categories is not None:
        doc["categories"] = list(attribute.categories)
    for key, bound in (("minimum", attribute.minimum), ("maximum", attribute.maximum)):
        if bound is not None:
            doc[key] = int(bound) if bound.is_integer() else bound
    return doc


def _parse_attribute(raw: object, index: int) -> Attribute:
    where = f"attribute #{index + 1}"
    if not isinstance(raw, Mapping):
        raise SchemaError(f"{where} must be a JSON object, got {json_type_name(raw)}")
    doc = _canonical_keys(raw, _ATTRIBUTE_ALIASES, _ATTRIBUTE_KEYS, where)
    name = doc.get("attributeName")
    if not isinstance(name, str) or not name.strip():
        raise SchemaError(f"{where} has no 'attributeName'")
    where = f"attribute {name!r}"
    raw_type = doc.get("attributeType")
    try:
        kind = AttributeType(raw_type if isinstance(raw_type, str) else "")
    except ValueError:
        known = ", ".join(t.value for t in AttributeType)
        raise SchemaError(
            f"{where} has unknown attributeType {raw_type!r} (expected one of {known})"
        ) from None
    required = doc.get("required", False)
    if not isinstance(required, bool):
        raise SchemaError(f"{where}: 'required' must be true or false")
    categories = doc.get("categories")
    if categories is not None:
        categories = _parse_categories(categories, kind, where)
    bounds = [_parse_bound(doc.get(key), key, kind, where) for key in ("minimum", "maximum")]
    if bounds[0] is not None and bounds[1] is not None and bounds[0] > bounds[1]:
        raise SchemaError(f"{where}: minimum {bounds[0]:g} is above maximum {bounds[1]:g}")
    return Attribute(name, kind, required, categories, bounds[0], bounds[1])


def _parse_categories(raw: object, kind: AttributeType, where: str) -> tuple[str, ...]:
    if kind is not AttributeType.CATEGORICAL:
        raise SchemaError(f"{where}: 'categories' only applies to CATEGORICAL attributes")
    if not isinstance(raw, list) or not raw or not all(isinstance(c, str) for c in raw):
        raise SchemaError(f"{where}: 'categories' must be a non-empty list of strings")
    stripped = tuple(c.strip() for c in raw)
    if len(set(stripped)) != len(stripped):
        raise SchemaError(f"{where}: 'categories' lists a category twice")
    return stripped


def _parse_bound(raw: object, key: str, kind: AttributeType, where: str) -> float | None:
    if raw is None:
        return None
    if kind is not AttributeType.NUMERIC:
        raise SchemaError(f"{where}: '{key}' only applies to NUMERIC attributes")
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise SchemaError(f"{where}: '{key}' must be a finite number, not {raw!r}")
    return float(raw)


def _canonical_keys(
    doc: Mapping[Any, Any], aliases: Mapping[str, str], known: frozenset[str], where: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = aliases.get(key, key)
        if name not in known:
            raise SchemaError(
                f"unknown key {key!r} in {where} (known keys: {', '.join(sorted(known))})"
            )
        if name in out:
            raise SchemaError(f"{where} gives {name!r} twice (under two spellings)")
        out[name] = value
    return out


def _optional_name(top: Mapping[str, Any], key: str) -> str | None:
    value = top.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise SchemaError(f"'{key}' must be an attribute name, not {value!r}")
    return value


def json_type_name(value: object) -> str:
    """The JSON-ish name of a value's type, with its article: 'a number', 'an array'..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
