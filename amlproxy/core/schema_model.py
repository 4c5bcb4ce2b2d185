"""The pydantic model of a record, built from a schema's attributes.

Used by :class:`amlproxy.core.schema.Schema`, once per schema.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import pydantic
from pydantic import ConfigDict, Field

from amlproxy.core.schema_format import Attribute, AttributeType


def build_record_model(
    name: str, features: tuple[Attribute, ...]
) -> tuple[type[pydantic.BaseModel], bool]:
    """A pydantic model with one field per feature, validated by attribute name (alias).

    NUMERIC -> float (finite, within bounds), BINARY -> bool, CATEGORICAL with categories
    -> Literal, else str; optional attributes default to None; unknown fields are refused.
    Returns the model and whether its field names differ from the attribute names (when
    an attribute name cannot be a pydantic field name, fields are named f0, f1...).
    """
    aliased = not all(usable_field_name(a.name) for a in features)
    definitions: dict[str, Any] = {}
    for i, a in enumerate(features):
        annotation: Any
        if a.type is AttributeType.NUMERIC:
            annotation = Annotated[float, Field(ge=a.minimum, le=a.maximum)]
        elif a.type is AttributeType.BINARY:
            annotation = bool
        elif a.categories is not None:
            annotation = Literal[a.categories]
        else:
            annotation = str
        field_name = f"f{i}" if aliased else a.name
        info = Field(alias=a.name) if a.required else Field(None, alias=a.name)
        definitions[field_name] = (annotation if a.required else annotation | None, info)
    model_name = "Record_" + re.sub(r"\W", "_", name)
    config = ConfigDict(allow_inf_nan=False, extra="forbid")
    model = pydantic.create_model(model_name, __config__=config, **definitions)
    return model, aliased


def usable_field_name(name: str) -> bool:
    """Whether pydantic takes ``name`` as a field name as it is."""
    return not (
        name.startswith(("_", "model_")) or hasattr(pydantic.BaseModel, name) or name[:1].isdigit()
    )
