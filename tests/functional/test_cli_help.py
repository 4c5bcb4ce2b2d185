"""Every command and subcommand answers --help with exit 0, and a usage error prints the
usage of the command it was given to (a walk of the real parsers)."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from amlproxy.cli import DELEGATED, build_parser, main

REPO = Path(__file__).resolve().parents[2]


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command path, e.g. (), ("score",), ("schema", "export"), ("local", "up")."""

    def walk(parser: argparse.ArgumentParser, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in _subcommands(parser).items():
            if not path and name in DELEGATED:
                module = importlib.import_module(DELEGATED[name][0])
                sub = module.build_parser()
            yield from walk(sub, (*path, name))

    yield from walk(build_parser(), ())


PATHS = list(command_paths())


def test_the_walk_finds_the_commands_and_their_subcommands():
    assert {("score",), ("validate",), ("schema", "export"), ("emulator", "serve"),
            ("local", "up"), ("local", "down")} <= set(PATHS)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: " ".join(p) or "amlproxy")
def test_help_exits_0_with_the_usage_of_that_command(path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: " + " ".join(("amlproxy", *path)))


@pytest.mark.parametrize("path", [p for p in PATHS if p and p[0] not in DELEGATED],
                         ids=" ".join)
def test_a_usage_error_prints_the_usage_of_its_command(path, capsys):
    leaf = not _subcommands(_parser_at(path))
    argv = [*path, "x.csv", "--bogus"] if leaf else [*path, "--bogus"]
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: " + " ".join(("amlproxy", *path)) + " "), err
    assert err.rstrip().splitlines()[-1].startswith("amlproxy: error:")


def _parser_at(path: tuple[str, ...]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in path:
        parser = _subcommands(parser)[name]
    return parser


def test_help_of_the_installed_entry_points_exits_0(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for args in (["local", "--help"], ["emulator", "--help"], ["local", "up", "--help"]):
        r = subprocess.run([sys.executable, "-m", "amlproxy", *args], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (args, r.stderr)
        assert r.stdout.startswith("usage: amlproxy " + args[0])


def test_a_missing_extra_is_named_in_one_line(tmp_path):
    """`amlproxy local up` without moto's server installed (pip install amlproxy)."""
    probe = ("import sys; sys.modules['moto'] = None; sys.modules['moto.server'] = None\n"
             "from amlproxy.cli import main\n"
             "sys.exit(main(['local', 'up', '--port', '0', '--aws-port', '0',"
             " '--state-file', 'state.json']))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("amlproxy: error: this needs the 'local' extra: pip install "
                           "'amlproxy[local]'"), r.stderr
    assert "Traceback" not in r.stderr
