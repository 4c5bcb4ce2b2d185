"""The ``amlproxy`` command.

    amlproxy score FILE       score a CSV or JSON Lines file
    amlproxy validate FILE    validate only
    amlproxy schema ...       list and export record schemas
    amlproxy emulator serve   the SageMaker / Amazon ML endpoint emulator
    amlproxy local up         the serverless flow on this machine (moto, emulator, local API)

Errors are one line on stderr, never a traceback; a usage error prints the usage of the
(sub)command it was for. Exit codes: 0 success, 1 some records failed (or, with
``--strict`` / ``validate``, were rejected), 2 usage, configuration or input error,
130 interrupted.

``emulator`` and ``local`` have parsers of their own (:data:`DELEGATED`): their arguments
are handed over untouched, so that ``amlproxy local --help`` is their help.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from amlproxy import __version__
from amlproxy.errors import AmlProxyError

EXIT_OK, EXIT_FAILED, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# What an extra installs, for the one-line error when it is missing.
EXTRAS = {"moto": "local", "yaml": "local", "numpy": "train"}

# command -> (module with build_parser() and main(argv), help)
DELEGATED: dict[str, tuple[str, str]] = {
    "emulator": ("amlproxy.emulator.cli", "run the SageMaker / Amazon ML endpoint emulator"),
    "local": ("amlproxy.local.cli", "run the whole serverless flow locally, without Docker"),
}


class CommandParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one ``amlproxy: error:`` line after the usage of
    the command they are for, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"amlproxy: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    from amlproxy.cli import schema_cmd, score_cmd

    parser = CommandParser(
        prog="amlproxy",
        description="Validate records against a schema and score them on SageMaker, "
        "Amazon ML or a local model.",
    )
    parser.add_argument("--version", action="version", version=f"amlproxy {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND",
                                     parser_class=CommandParser)
    commands.required = True
    score_cmd.add_parsers(commands)
    schema_cmd.add_parsers(commands)
    for name, (_, text) in DELEGATED.items():
        # Listed for the top-level help; main() hands their arguments over before parsing.
        delegated = commands.add_parser(name, help=text, add_help=False)
        delegated.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def mark_command_parsers(parser: argparse.ArgumentParser) -> None:
    """Sets ``_parser`` on every (sub)command parser's defaults, so that an unrecognised
    argument is reported with the usage of the command it was given to."""
    parser.set_defaults(_parser=parser)
    for action in parser._actions:  # argparse has no public walk of its subparsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                mark_command_parsers(sub)


def delegated_main(command: str, argv: Sequence[str]) -> int:
    """Runs a command that has its own parser (``emulator``, ``local``)."""
    module = importlib.import_module(DELEGATED[command][0])
    code: int = module.main(list(argv))
    return code


def parse_args(argv: Sequence[str], parser: argparse.ArgumentParser | None = None
               ) -> argparse.Namespace:
    """``argv`` parsed by ``parser`` (default: the ``amlproxy`` parser); an unrecognised
    argument is reported with the usage of the (sub)command it was given to."""
    parser = parser if parser is not None else build_parser()
    mark_command_parsers(parser)
    args, extras = parser.parse_known_args(argv)
    if extras:
        command_parser: argparse.ArgumentParser = getattr(args, "_parser", parser)
        command_parser.error(f"unrecognized arguments: {' '.join(extras)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in DELEGATED:
            return delegated_main(argv[0], argv[1:])
        args = parse_args(argv)
        func: Any = args.func
        code: int = func(args)
        return code
    except AmlProxyError as exc:
        print(f"amlproxy: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("amlproxy: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ModuleNotFoundError as exc:
        extra = EXTRAS.get((exc.name or "").split(".")[0])
        if extra is None:
            raise
        print(f"amlproxy: error: this needs the '{extra}' extra: pip install "
              f"'amlproxy[{extra}]' (no module named {exc.name!r})", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `amlproxy score ... --out - | head`: the reader has enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush into the closed pipe
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
