"""The documentation of every setting: the README's configuration table
(``python -m amlproxy.settings`` prints it; a test keeps the README's copy current)."""

from __future__ import annotations

from dataclasses import dataclass
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from amlproxy.settings import Settings, env_name
from amlproxy.settings_schema import SecretStr


@dataclass(frozen=True, slots=True)
class SettingDoc:
    """One row of the configuration table."""

    variable: str
    type: str
    default: str
    description: str


def describe_settings() -> list[SettingDoc]:
    """Every environment variable amlproxy reads, with its type, default and meaning."""
    rows = []
    for name, info in Settings.fields.items():
        default = info.default
        if isinstance(default, tuple):
            default = ",".join(str(item) for item in default)
        shown = "" if default is None else str(default).lower() if default in (True, False) \
            else str(default)
        rows.append(SettingDoc(env_name(name), _type_name(info.annotation), shown,
                               info.description or ""))
    return rows


def settings_table() -> str:
    """The configuration table of the README, in Markdown."""
    lines = ["| variable | type | default | meaning |", "|---|---|---|---|"]
    for row in describe_settings():
        default = f"`{row.default}`" if row.default else ""
        lines.append(f"| `{row.variable}` | {row.type} | {default} | {row.description} |")
    return "\n".join(lines)


def _type_name(annotation: Any) -> str:
    """A short human name of a field type: ``int``, ``local | aml``, ``list of s3 | ...``."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " \\| ".join(str(a) for a in args)
    if origin in (UnionType, Union):
        names = [_type_name(a) for a in args if a is not type(None)]
        optional = " (optional)" if type(None) in args else ""
        return " \\| ".join(names) + optional
    if origin is tuple:
        return "comma list of " + _type_name(args[0])
    return "secret" if annotation is SecretStr else getattr(annotation, "__name__", str(annotation))
