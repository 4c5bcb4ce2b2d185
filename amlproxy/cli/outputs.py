"""Where ``amlproxy score`` writes: the results, rejects, shadow-pairs and extra sinks.

Explicit paths (``--out PATH``) are the user's choice and are replaced when the run
completes. The default paths (``./<input>.predictions.jsonl``, ``./<input>.rejects.jsonl``)
never replace an earlier run's file unless ``--force`` is given: the run stops first with
one line saying so. ``--out -`` streams the results to standard output as JSON Lines (or
CSV with ``--out-format csv``).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

from amlproxy.core.ports import Sink
from amlproxy.errors import ConfigurationError
from amlproxy.sinks.file import STDOUT, FileFormat, FileSink, writes_in_place
from amlproxy.sinks.sqlite import SqliteSink


@dataclass
class Outputs:
    """The sinks of one ``score`` run."""

    sinks: list[Sink] = field(default_factory=list)

    @property
    def to_stdout(self) -> bool:
        return any(isinstance(s, FileSink) and s.to_stdout for s in self.sinks)

    def names(self) -> list[str]:
        return [s.name for s in self.sinks]

    def after_interrupt(self) -> str:
        """What an interrupted run left, output by output (all whole or absent)."""
        parts = []
        for sink in self.sinks:
            if isinstance(sink, SqliteSink):
                parts.append(f"{sink.name}: the whole chunks written are kept, the run is "
                             "marked aborted in its runs table")
            elif isinstance(sink, FileSink) and sink.in_place:
                parts.append(f"{sink.name}: written in place up to the interruption")
            else:
                parts.append(f"{sink.name}: not replaced (the previous file, if any, is "
                             "unchanged; no partial file is left)")
        return "; ".join(parts)


def add_output_args(parser: argparse.ArgumentParser) -> None:
    out = parser.add_argument_group("outputs")
    out.add_argument("--out", metavar="PATH", help="results file (.csv or .jsonl), or - for "
                     "JSON Lines on stdout (default: ./<input name>.predictions.jsonl)")
    out.add_argument("--out-format", choices=["csv", "jsonl"], help="format of --out "
                     "(default: from its suffix; jsonl for -)")
    out.add_argument("--rejects", metavar="PATH", help="rejected and failed records, "
                     ".csv or .jsonl (default: ./<input name>.rejects.jsonl)")
    out.add_argument("--sink", action="append", default=[], metavar="KIND:PATH",
                     help="extra sink, repeatable: sqlite:PATH, csv:PATH or jsonl:PATH")
    out.add_argument("--shadow-out", metavar="PATH", help="with --backend shadow: the "
                     "per-record pairs (primary and shadow answers), .jsonl or .csv")
    out.add_argument("--force", action="store_true", help="replace the default outputs of "
                     "an earlier run")
    out.add_argument("--json", action="store_true", help="print the report as JSON")


def plan_outputs(args: argparse.Namespace, *, shadow: bool) -> Outputs:
    """The sinks the flags ask for; ConfigurationError if a default path would replace an
    earlier run's file without ``--force``."""
    out_format: FileFormat | None = args.out_format
    out = args.out or default_path(args, "predictions", out_format or "jsonl")
    rejects = args.rejects or default_path(args, "rejects", "jsonl")
    if not args.force:
        defaults = [p for p, given in ((out, args.out), (rejects, args.rejects)) if not given]
        earlier = [p for p in defaults if Path(p).exists() and not writes_in_place(p)]
        if earlier:
            verb = "exists" if len(earlier) == 1 else "exist"
            raise ConfigurationError(
                f"{' and '.join(earlier)} {verb} from an earlier run: pass --force to "
                "replace the default outputs, or choose --out PATH and --rejects PATH"
            )
    if out == STDOUT and rejects == STDOUT:
        raise ConfigurationError("--out - and --rejects -: only one output can be stdout")
    sinks: list[Sink] = [
        FileSink(out, kind="results", format=out_format),
        FileSink(rejects, kind="rejects"),
    ]
    if args.shadow_out:
        if not shadow:
            raise ConfigurationError("--shadow-out needs --backend shadow")
        sinks.append(FileSink(args.shadow_out, kind="shadow"))
    sinks.extend(extra_sink(spec) for spec in args.sink)
    return Outputs(sinks)


def default_path(args: argparse.Namespace, what: str, fmt: str) -> str:
    stem = "stdin" if args.file == "-" else Path(args.file).name.split(".")[0]
    return f"{stem}.{what}.{fmt}"


def extra_sink(spec: str) -> Sink:
    """A ``--sink KIND:PATH``."""
    kind, sep, path = spec.partition(":")
    if not sep or not path:
        raise ConfigurationError(f"--sink {spec!r}: expected KIND:PATH, e.g. sqlite:out.db")
    if kind == "sqlite":
        return SqliteSink(path)
    if kind in ("csv", "jsonl"):
        return FileSink(path, kind="results", format=kind)  # type: ignore[arg-type]
    raise ConfigurationError(f"--sink {spec!r}: unknown kind {kind!r} (sqlite, csv or jsonl)")
