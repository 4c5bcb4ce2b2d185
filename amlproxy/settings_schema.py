"""How :class:`~amlproxy.settings.Settings` is declared and validated: each field is
annotated with its type and given a :func:`knob` (default, description, limits), and
:func:`settings_validator` turns the class into one pydantic-core ``SchemaValidator``.

pydantic-core rather than a pydantic ``BaseModel``: the settings are what a cold start
validates, and ``from pydantic import BaseModel`` costs 0.28 G instructions (callgrind)
over pydantic-core's own import, about a fifth of a trigger's cold start, for what is
here a flat record of scalars. Without it a trigger's cold start went from 1.40 to 1.18 G
instructions (SQS; ``bench/coldstart_instructions.py``). The core schema is the one pydantic
generates for such a model: the same validators, so the same values and error messages, as
``tests/unit/test_settings_properties.py`` checks against the model it replaced. Only the
types the settings use are mapped: ``str``, ``int``, ``float``, ``bool``,
``Literal``, :class:`SecretStr`, ``X | None`` and ``tuple[X, ...]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import UnionType
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

from pydantic_core import CoreConfig, SchemaValidator, core_schema

Check = Callable[[Any], Any]


class SecretStr:
    """A secret setting: shown as ``'**********'``, its value read with
    :meth:`get_secret_value` (as pydantic's ``SecretStr``)."""

    __slots__ = ("_secret",)

    def __init__(self, value: str) -> None:
        self._secret = value

    def get_secret_value(self) -> str:
        return self._secret

    def __repr__(self) -> str:
        return "SecretStr('**********')"

    def __str__(self) -> str:
        return "**********" if self._secret else ""

    def __len__(self) -> int:  # an empty secret is falsy, as pydantic's
        return len(self._secret)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretStr) and other._secret == self._secret

    def __hash__(self) -> int:
        return hash(self._secret)


@dataclass(frozen=True)
class Knob:
    """One setting: its default, its description (the README's configuration table), the
    environment variable when it is not ``AMLPROXY_<NAME>`` (``alias``), the limits of its
    value (of each item, for a list) and its type (``annotation``, from the class)."""

    default: Any
    description: str
    alias: str | None = None
    limits: Mapping[str, float] = field(default_factory=dict)
    annotation: Any = None


def knob(default: Any, *, description: str, alias: str | None = None,
         **limits: float) -> Any:
    """A field of the settings class: ``limits`` are ``ge``, ``gt``, ``le``, ``min_length``."""
    return Knob(default, description, alias, limits)


class Declared:
    """What a class of knobs gets: ``fields``, the knobs by field name in order."""

    fields: ClassVar[dict[str, Knob]]


def collect_knobs(cls: type[Declared]) -> dict[str, Knob]:
    """The knobs of ``cls`` with their annotations, in declaration order."""
    hints = get_type_hints(cls)
    return {name: replace(value, annotation=hints[name])
            for name, value in vars(cls).items() if isinstance(value, Knob)}


def settings_validator(
    fields: Mapping[str, Knob],
    *,
    before: Mapping[str, Check],
    after: Mapping[str, Check],
    whole: Check,
) -> SchemaValidator:
    """Validates a mapping of field name to value (see :func:`by_field_name`) into a dict
    of every field; ``before`` and ``after`` run on one field's value, ``whole`` on the
    validated dict (a ``ValueError`` there is an error of the whole, as a model
    validator's)."""
    typed = {}
    for name, spec in fields.items():
        schema = value_schema(spec.annotation, spec.limits)
        if name in after:
            schema = core_schema.no_info_after_validator_function(after[name], schema)
        if name in before:
            schema = core_schema.no_info_before_validator_function(before[name], schema)
        typed[name] = core_schema.typed_dict_field(
            core_schema.with_default_schema(schema, default=spec.default), required=False)
    # aliases are mapped by the caller (by_field_name): pydantic-core's config key for
    # "by name and by alias" changed in 2.31, and amlproxy allows older versions
    config = CoreConfig(title="Settings")
    return SchemaValidator(core_schema.no_info_after_validator_function(
        whole, core_schema.typed_dict_schema(typed, extra_behavior="ignore", config=config)))


def by_field_name(values: Mapping[str, Any], fields: Mapping[str, Knob]) -> dict[str, Any]:
    """``values`` keyed by field name: a knob's alias (its variable) is taken for its field."""
    aliases = {spec.alias: name for name, spec in fields.items() if spec.alias is not None}
    return {aliases.get(key, key): value for key, value in values.items()}


def value_schema(annotation: Any, limits: Mapping[str, float]) -> core_schema.CoreSchema:
    """The core schema of one field's type, as pydantic makes it."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in (UnionType, Union):
        (inner,) = (a for a in args if a is not type(None))  # X | None only
        return core_schema.nullable_schema(value_schema(inner, limits))
    if origin is Literal:
        return core_schema.literal_schema(list(args))
    if origin is tuple:
        return core_schema.tuple_schema([value_schema(args[0], limits)], variadic_item_index=0)
    if annotation is SecretStr:
        text = core_schema.no_info_after_validator_function(SecretStr, core_schema.str_schema())
        return core_schema.union_schema([core_schema.is_instance_schema(SecretStr), text],
                                        custom_error_type="string_type")
    if annotation not in _SCALARS:
        raise TypeError(f"no core schema for the setting type {annotation!r}")
    return _SCALARS[annotation](**limits)


_SCALARS: dict[Any, Callable[..., core_schema.CoreSchema]] = {
    str: core_schema.str_schema, int: core_schema.int_schema,
    float: core_schema.float_schema, bool: core_schema.bool_schema,
}


# the text forms of the environment variables, before (key_prefix: after) validation
def comma_list(value: Any) -> Any:
    """``a, B`` -> ``("a", "b")`` (lower case); empty -> None."""
    if isinstance(value, str):
        items = tuple(v.strip().lower() for v in value.split(",") if v.strip())
        return items if items or value.strip() else None
    return value


def port_list(value: Any) -> Any:
    """``443, 8443`` -> ``("443", "8443")`` (the items are then validated as ports)."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value


def label_list(value: Any) -> Any:
    """``<=50K,>50K`` -> ``("<=50K", ">50K")``; empty -> None."""
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip()) or None
    return value


def key_prefix(value: str) -> str:
    """An S3 key prefix without a leading slash, ending in one (``out`` -> ``out/``)."""
    value = value.lstrip("/")
    return value if not value or value.endswith("/") else value + "/"
