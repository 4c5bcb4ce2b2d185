"""The playground page served at ``GET /`` of the local API: one self-contained HTML page
(no CDN, no build step) with a form generated from the record schema.

Categorical attributes become selects, numeric ones text inputs (``inputmode="decimal"``:
a number input would hand the script an empty value for "thirty", which then read as a
missing one) checked in the browser: a number, within the schema's minimum / maximum (a
checkbox turns the check off, to see the API's own answer). The form POSTs one record to
``/predict`` and shows the label and the scores, or each field error next to its field.

The batch panel takes a CSV file (or JSON Lines / a JSON array) or pasted rows, POSTs them
to ``/predict`` and shows one table row per input record: its label and scores, or why it
was rejected. The API refuses a whole batch when one record is invalid (400 naming each),
so the page shows those as rejects and sends the valid records again to score them.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from importlib import resources
from typing import Any

from amlproxy.core.schema import Attribute, Schema


def playground_page(schema: Schema, example: Mapping[str, Any] | None = None) -> bytes:
    """The page for ``schema`` (its feature attributes), pre-filled with ``example``."""
    fields = "\n".join(
        _field(a.name, _spec(a), a.required, (example or {}).get(a.name))
        for a in schema.features
    )
    template = resources.files("amlproxy.local").joinpath("playground.html")
    page = template.read_text(encoding="utf-8")
    page = page.replace("{{TITLE}}", html.escape(schema.name)).replace("{{FIELDS}}", fields)
    return page.encode("utf-8")


def _spec(attribute: Attribute) -> dict[str, Any]:
    """The categories and bounds of an attribute, as the form shows them."""
    spec: dict[str, Any] = {}
    if attribute.categories is not None:
        spec["enum"] = list(attribute.categories)
    for key in ("minimum", "maximum"):
        if getattr(attribute, key) is not None:
            spec[key] = getattr(attribute, key)
    return spec


def _field(name: str, spec: dict[str, Any], required: bool, value: Any) -> str:
    label = html.escape(name)
    ident = html.escape(f"field-{name}")
    common = f'id="{ident}" name="{label}" data-field="{label}"'
    if required:
        common += " required"
    if "enum" in spec:
        options = [] if required else ['<option value="">(missing)</option>']
        for choice in spec["enum"]:
            if choice is None:
                continue
            selected = " selected" if choice == value else ""
            options.append(f'<option value="{html.escape(str(choice))}"{selected}>'
                           f"{html.escape(str(choice))}</option>")
        control = f'<select {common} data-kind="categorical">{"".join(options)}</select>'
    else:
        bounds = ""
        if "minimum" in spec:
            bounds += f' min="{spec["minimum"]:g}"'
        if "maximum" in spec:
            bounds += f' max="{spec["maximum"]:g}"'
        shown = "" if value is None else html.escape(str(value))
        control = (f'<input type="text" inputmode="decimal" autocomplete="off" {common} '
                   f'data-kind="numeric"{bounds} value="{shown}">')
    mark = ' <span class="req" title="required">*</span>' if required else ""
    return (f'<div class="row"><label for="{ident}">{label}{mark}</label>{control}'
            f'<span class="error" id="error-{label}" role="alert"></span></div>')
