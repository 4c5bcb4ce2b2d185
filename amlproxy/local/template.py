"""Where the local stack finds ``sam/template.yaml``, and its parameter defaults.

The local stack is built from the SAM template itself: its resources, its functions and
their event sources, its parameter defaults. In a source checkout the template is
``sam/template.yaml``; the wheel carries a copy as ``amlproxy/local/template.yaml``
(pyproject's ``force-include``). ``amlproxy local up --template FILE`` reads another.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from amlproxy.errors import ConfigurationError

_CHECKOUT_TEMPLATE = Path(__file__).resolve().parents[2] / "sam" / "template.yaml"
_PACKAGED_TEMPLATE = Path(__file__).resolve().parent / "template.yaml"
TEMPLATE_PATH = _CHECKOUT_TEMPLATE if _CHECKOUT_TEMPLATE.is_file() else _PACKAGED_TEMPLATE


def read_template(path: Path | None = None) -> dict[str, Any]:
    """The template as a document (CloudFormation tags as ``{"Ref": ...}`` nodes)."""
    from amlproxy.local.cfn import load_template

    path = path or TEMPLATE_PATH
    try:
        return load_template(path)
    except OSError as exc:
        raise ConfigurationError(f"cannot read the SAM template {path}: {exc}") from None


def template_defaults(path: Path | None = None) -> dict[str, str]:
    """Every parameter default of the template, as strings."""
    parameters: dict[str, Any] = read_template(path).get("Parameters") or {}
    return {name: str(spec["Default"]) for name, spec in parameters.items()
            if isinstance(spec, dict) and "Default" in spec}
