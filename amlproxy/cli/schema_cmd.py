"""``amlproxy schema list | show | export``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from amlproxy.core.schema import available_schemas, load_schema


def add_parsers(commands: Any) -> None:
    schema = commands.add_parser("schema", help="list and export record schemas")
    sub = schema.add_subparsers(dest="schema_command", metavar="ACTION")
    sub.required = True
    listing = sub.add_parser("list", help="the bundled schemas")
    listing.set_defaults(func=_list)
    export = sub.add_parser("export", help="print a schema as JSON Schema or AML .schema")
    export.add_argument("schema", metavar="NAME|PATH")
    export.add_argument(
        "--format", choices=["jsonschema", "aml"], default="jsonschema", help="output format"
    )
    export.set_defaults(func=_export)


def _list(args: argparse.Namespace) -> int:
    for name in available_schemas():
        print(name)
    return 0


def _export(args: argparse.Namespace) -> int:
    schema = load_schema(args.schema)
    doc = schema.json_schema() if args.format == "jsonschema" else schema.to_aml_dict()
    sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0
