"""Record schemas: Amazon ML ``.schema`` files, turned into fast pydantic validators.

A schema is written in Amazon ML's own data-schema format, so existing AML ``.schema``
files work unchanged::

    {
      "version": "1.0",
      "targetAttributeName": "income",      # optional: the label column
      "rowId": "id",                        # optional: an identifier column
      "rowWeight": "w",                     # optional: a weight column
      "dataFormat": "CSV",
      "dataFileContainsHeader": false,
      "attributes": [
        {"attributeName": "age", "attributeType": "NUMERIC"},  # NUMERIC, CATEGORICAL,
        ...                                                     # TEXT or BINARY
      ],
      "excludedAttributeNames": []          # columns present in the data, never used
    }

The API reference's spellings (``variables``/``fieldName``/``fieldType``,
``targetFieldName``, ``recordAnnotationFieldName``, ``recordWeightFieldName``,
``excludedVariableNames``) are read too. Unknown keys are refused (they are usually typos).

amlproxy's extensions are extra keys, which Amazon ML itself does not use:

per attribute
    ``"required": true``          the value must be present (default false: like Amazon ML,
                                  any attribute may be missing);
    ``"categories": [...]``       CATEGORICAL only: the allowed values, compared exactly
                                  after stripping surrounding whitespace;
    ``"minimum"``, ``"maximum"``  NUMERIC only: inclusive bounds.
top level
    ``"missingValues": ["?", ""]``  the strings that mean "missing" (this is the default);
                                    JSON null and an absent key always mean missing;
    ``"extraFields": "reject"``     what to do with a field the schema does not name:
                                    ``"reject"`` (default: the record is refused, naming the
                                    field) or ``"ignore"`` (dropped). The target, rowId,
                                    rowWeight and excluded attributes are always accepted
                                    and never sent to a model.

Validation (:meth:`Schema.validate`, or :meth:`Schema.validate_batch` for many records in
one call) runs wholly in pydantic-core (:mod:`amlproxy.core.schema_core`). It accepts
strings (CSV, Amazon ML's string maps) and JSON values, strips surrounding whitespace
(Unicode White_Space), and returns the model's features typed:
``float`` for NUMERIC (numbers given as strings accepted; booleans, NaN and infinities
refused), ``str`` for CATEGORICAL and TEXT (a JSON number is taken in its string form,
``3`` or ``3.0`` -> ``"3"``, so it passes only if that string is an allowed category;
an integral float of 2**63 or more keeps its exponent form, ``1e+20``),
``bool`` for BINARY (0/1, true/false, yes/no, y/n, t/f, on/off, any case), ``None`` for
missing. Every bad field of a record is reported at once.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic_core import ErrorDetails, ValidationError

from amlproxy.core.schema_core import ABSENT, batch_validator, explain, record_validator
from amlproxy.core.schema_format import (
    Attribute,
    AttributeType,
    ExtraFieldPolicy,
    SchemaSpec,
    parse_schema_document,
    schema_document,
)
from amlproxy.core.schema_json import record_json_schema
from amlproxy.errors import FieldError, RecordValidationError, SchemaError

if TYPE_CHECKING:
    import pydantic

__all__ = [
    "Attribute",
    "AttributeType",
    "Schema",
    "available_schemas",
    "load_schema",
    "schemas_dir",
]

SCHEMA_SUFFIX = ".schema"


class Schema:
    """A record schema: the columns of a data file and what a valid record looks like.

    Build one with :func:`load_schema` (or :meth:`from_document`). ``validate`` is the hot
    path: it turns one record's fields into the typed features a backend receives.
    """

    def __init__(self, name: str, spec: SchemaSpec, *, path: Path | None = None) -> None:
        self.name = name
        self.path = path
        self.spec = spec
        self.attributes: tuple[Attribute, ...] = spec.attributes
        self.target = spec.target
        self.row_id = spec.row_id
        self.row_weight = spec.row_weight
        self.excluded: frozenset[str] = frozenset(spec.excluded)
        self.has_header = spec.has_header
        self.missing_markers: frozenset[str] = frozenset(spec.missing_markers)
        self.extra_fields: ExtraFieldPolicy = spec.extra_fields
        self.column_names: tuple[str, ...] = tuple(a.name for a in spec.attributes)
        self._check_names()
        passive = {spec.target, spec.row_id, spec.row_weight, *self.excluded} - {None}
        self.feature_names: tuple[str, ...] = tuple(
            n for n in self.column_names if n not in passive
        )
        if not self.feature_names:
            raise SchemaError(f"{self._where}: no attribute is left to send to a model")
        self.features: tuple[Attribute, ...] = tuple(
            a for a in spec.attributes if a.name not in passive
        )
        self._position = {name: i for i, name in enumerate(self.column_names)}
        self._known = frozenset(self.column_names)
        self._reject_extra = spec.extra_fields == "reject"
        # the whole of validation, in pydantic-core (see amlproxy.core.schema_core)
        markers = spec.missing_markers
        self._validate_record = record_validator(self.features, markers).validate_python
        self._validate_records = batch_validator(self.features, markers).validate_python

    @functools.cached_property
    def model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of the features (by attribute name), for users who want one;
        :meth:`validate` does not use it. Built on first use (its module too: not at a
        cold start)."""
        from amlproxy.core.schema_model import build_record_model

        return build_record_model(self.name, self.features)[0]

    @classmethod
    def from_document(
        cls, doc: object, *, name: str = "schema", path: Path | None = None
    ) -> Schema:
        """A schema from a decoded ``.schema`` document (a dict)."""
        try:
            spec = parse_schema_document(doc)
        except SchemaError as exc:
            raise SchemaError(f"{path or name}: {exc}") from None
        return cls(name, spec, path=path)

    @property
    def _where(self) -> str:
        return str(self.path) if self.path else f"schema {self.name!r}"

    def _check_names(self) -> None:
        seen: set[str] = set()
        for column in self.column_names:
            if column in seen:
                raise SchemaError(f"{self._where}: attribute {column!r} is listed twice")
            seen.add(column)
        roles: list[tuple[str, str | None]] = [
            ("targetAttributeName", self.target),
            ("rowId", self.row_id),
            ("rowWeight", self.row_weight),
        ]
        roles += [("excludedAttributeNames", n) for n in sorted(self.excluded)]
        for role, name in roles:
            if name is not None and name not in seen:
                raise SchemaError(f"{self._where}: {role} {name!r} is not among the attributes")

    def __repr__(self) -> str:
        return f"Schema({self.name!r}, {len(self.column_names)} columns, target={self.target!r})"

    def attribute(self, name: str) -> Attribute:
        """The attribute called ``name`` (KeyError if there is none)."""
        return self.attributes[self._position[name]]

    def validate(self, fields: Mapping[str, Any], *, line: int | None = None) -> dict[str, Any]:
        """The record's features, typed; RecordValidationError listing every bad field."""
        try:
            values: dict[str, Any] = self._validate_record(fields)
        except ValidationError as exc:
            raise self._invalid(fields, exc.errors(include_url=False), line) from None
        if self._reject_extra and not self._known.issuperset(fields):
            raise self._invalid(fields, [], line)
        return values

    def validate_batch(
        self, records: Sequence[Mapping[str, Any]], lines: Sequence[int | None] | None = None
    ) -> list[dict[str, Any] | RecordValidationError]:
        """Each record's features (as :meth:`validate` returns them) or its error, in order;
        one call into pydantic-core for the whole batch. ``lines`` numbers the errors."""
        out: list[dict[str, Any] | RecordValidationError] = self._validate_records(records)
        known, check = self._known, self._reject_extra
        if None not in out and not (check and not known.issuperset(set().union(*records))):
            return out  # every record valid, no unknown key in any (C loops)
        for i, values in enumerate(out):
            if values is None or (check and not known.issuperset(records[i])):
                line = lines[i] if lines is not None else None
                try:
                    out[i] = self.validate(records[i], line=line)
                except RecordValidationError as exc:
                    out[i] = exc
        return out

    def _invalid(
        self, fields: Mapping[str, Any], errors: list[ErrorDetails], line: int | None
    ) -> RecordValidationError:
        """The error of a record, every bad field in column order, unknown ones last."""
        by_field: dict[str, list[ErrorDetails]] = {}
        for error in errors:
            by_field.setdefault(str(error["loc"][0]), []).append(error)
        problems = [
            FieldError(name, explain(self.attribute(name), fields.get(name, ABSENT), found,
                                     self.missing_markers))
            for name, found in by_field.items()
        ]
        problems.sort(key=lambda e: self._position[e.field or ""])
        if self._reject_extra:
            problems += [FieldError(str(key), "unknown field (not in the schema)")
                         for key in fields if key not in self._known]
        return RecordValidationError(problems, line=line, row_id=self.row_id_of(fields))

    def row_id_of(self, fields: Mapping[str, Any]) -> str | None:
        """The record's row id as a string, or None (no rowId column, or missing)."""
        if self.row_id is None:
            return None
        value = fields.get(self.row_id)
        if value is None:
            return None
        text = value.strip() if isinstance(value, str) else str(value)
        return None if text in self.missing_markers else text

    def json_schema(self) -> dict[str, Any]:
        """JSON Schema (draft 2020-12) of one input record: exactly what :meth:`validate`
        takes, numbers as strings included (see :mod:`amlproxy.core.schema_json`).

        ``additionalProperties`` follows the extra-field policy; the target, rowId,
        rowWeight and excluded attributes take any value and are never required.
        """
        return record_json_schema(
            self.name,
            self.attributes,
            self.feature_names,
            target=self.target,
            missing_markers=sorted(self.missing_markers),
            closed=self._reject_extra,
        )

    def to_aml_dict(self) -> dict[str, Any]:
        """The schema as an Amazon ML ``.schema`` document (with amlproxy's extra keys)."""
        return schema_document(self.spec)


def schemas_dir() -> Path:
    """Where bundled schemas live: ``amlproxy/_schemas`` in a wheel, else ``<repo>/schemas``."""
    package = Path(__file__).resolve().parent.parent
    candidates = (package / "_schemas", package.parent / "schemas")
    return next((c for c in candidates if c.is_dir()), candidates[0])


def available_schemas() -> list[str]:
    """The names of the bundled schemas, sorted."""
    folder = schemas_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob(f"*{SCHEMA_SUFFIX}") if p.is_file())


def load_schema(name_or_path: str | os.PathLike[str]) -> Schema:
    """A schema by bundled name (``"census-income"``) or by path; cached per file version.

    Raises SchemaError with a one-line reason: unknown name (listing the available ones),
    missing file, bad JSON, or a document that is not a valid schema.
    """
    text = os.fspath(name_or_path)
    path = Path(text)
    if not path.is_file():
        if os.sep in text or "/" in text:
            raise SchemaError(f"schema file not found: {text}")
        path = schemas_dir() / (text if text.endswith(SCHEMA_SUFFIX) else text + SCHEMA_SUFFIX)
        if not path.is_file():
            names = ", ".join(available_schemas()) or "none"
            raise SchemaError(f"unknown schema {text!r} (available: {names})")
    path = path.resolve()
    try:
        stat = path.stat()
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from None
    return _load_file(path, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _load_file(path: Path, mtime_ns: int, size: int) -> Schema:
    try:
        text = path.read_bytes().decode("utf-8-sig")
        doc = json.loads(text, object_pairs_hook=_no_duplicate_keys)
    except OSError as exc:
        raise SchemaError(f"cannot read schema {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SchemaError(f"{path}: not UTF-8 (byte offset {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{path}: invalid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except _DuplicateKeyError as exc:
        raise SchemaError(f"{path}: invalid JSON: key {exc.args[0]!r} appears twice") from None
    name = path.name.removesuffix(SCHEMA_SUFFIX)
    return Schema.from_document(doc, name=name, path=path)


class _DuplicateKeyError(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKeyError(key)
        out[key] = value
    return out
