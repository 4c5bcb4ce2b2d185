"""The ``amlproxy`` command.

    amlproxy score FILE       score a CSV or JSON Lines file
    amlproxy validate FILE    validate only
    amlproxy schema ...       list and export record schemas
    amlproxy emulator serve   the SageMaker / Amazon ML endpoint emulator
    amlproxy local up         the serverless flow on this machine (moto, emulator, local API)

Errors are one line on stderr, never a traceback. Exit codes: 0 success, 1 some records
failed (or, with ``--strict`` / ``validate``, were rejected), 2 usage, configuration or
input error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from amlproxy import __version__
from amlproxy.cli import schema_cmd, score_cmd
from amlproxy.errors import AmlProxyError

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"amlproxy: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="amlproxy",
        description="Validate records against a schema and score them on SageMaker, "
        "Amazon ML or a local model.",
    )
    parser.add_argument("--version", action="version", version=f"amlproxy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True
    score_cmd.add_parsers(commands)
    schema_cmd.add_parsers(commands)
    emulator = commands.add_parser(
        "emulator", help="run the SageMaker / Amazon ML endpoint emulator", add_help=False
    )
    emulator.add_argument("args", nargs=argparse.REMAINDER)
    emulator.set_defaults(func=_emulator)
    local = commands.add_parser(
        "local", help="run the whole serverless flow locally, without Docker", add_help=False
    )
    local.add_argument("args", nargs=argparse.REMAINDER)
    local.set_defaults(func=_local)
    return parser


def _emulator(args: argparse.Namespace) -> int:
    from amlproxy.emulator.cli import main as emulator_main

    return emulator_main(list(args.args))


def _local(args: argparse.Namespace) -> int:
    from amlproxy.local.cli import main as local_main

    return local_main(list(args.args))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except AmlProxyError as exc:
        print(f"amlproxy: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("amlproxy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
