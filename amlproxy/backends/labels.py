"""The class names of a model, for backends that answer without them.

Amazon ML's binary models answer "0"/"1", and a SageMaker container often a bare
probability: to name (and compare) those answers the classes must be known, in score
order and negative first for a binary model. They come, in this order, from
``AMLPROXY_LABELS`` / ``--labels``; the record schema's target attribute (its
``categories``); Amazon ML's ``GetMLModel`` (the schema of the data the model was trained
on, see :meth:`AmlBackend.model_labels`). Backends whose answers name their classes
(the local model, a SageMaker container answering labels and class scores) need none.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from amlproxy.core.schema import Schema


def schema_target_labels(schema: Schema) -> tuple[str, ...] | None:
    """The categories of the schema's target attribute (two or more), or None."""
    if not schema.target:
        return None
    try:
        categories = schema.attribute(schema.target).categories
    except KeyError:
        return None
    return tuple(categories) if categories and len(categories) >= 2 else None


def labels_from_schema_document(text: str | None) -> tuple[str, ...] | None:
    """The target categories of an Amazon ML data schema given as JSON text (as
    ``GetMLModel`` returns it), or None when it names none."""
    if not text:
        return None
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, Mapping):
        return None
    target = doc.get("targetAttributeName")
    for attribute in doc.get("attributes") or []:
        if isinstance(attribute, Mapping) and attribute.get("attributeName") == target:
            categories: Any = attribute.get("categories")
            if isinstance(categories, list) and len(categories) >= 2:
                return tuple(str(c) for c in categories)
    return None
