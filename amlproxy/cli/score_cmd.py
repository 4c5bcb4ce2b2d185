"""``amlproxy score FILE`` and ``amlproxy validate FILE``."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from amlproxy.bootstrap import build_pipeline
from amlproxy.cli.hints import RejectSample, hint
from amlproxy.cli.outputs import add_output_args, plan_outputs
from amlproxy.cli.progress import Progress, TrackedReader
from amlproxy.cli.summary import print_report
from amlproxy.core.outcome import Outcome, SourceRow, Status
from amlproxy.core.ports import Sink
from amlproxy.core.readers import RecordFormat, detect_format, read_records
from amlproxy.core.report import Report
from amlproxy.core.schema import Schema, load_schema
from amlproxy.errors import ConfigurationError, FieldError, InputError, RecordValidationError
from amlproxy.settings import load_settings
from amlproxy.sinks.file import FileSink

EXIT_INTERRUPTED = 130
SHOWN_REJECTS = 20  # validate: rejects printed before "... and N more"


def add_parsers(commands: Any) -> None:
    score = commands.add_parser("score", help="validate and score a CSV or JSON Lines file")
    _input_args(score)
    add_output_args(score)
    be = score.add_argument_group("backend (flags override AMLPROXY_* variables)")
    be.add_argument("--backend", choices=["local", "sagemaker", "aml", "shadow"])
    be.add_argument("--local-model", metavar="PATH", help="local model JSON artifact")
    be.add_argument("--endpoint", dest="sagemaker_endpoint", metavar="NAME",
                    help="SageMaker endpoint name")
    be.add_argument("--content-type", dest="sagemaker_content_type",
                    choices=["text/csv", "application/json"])
    be.add_argument("--model-id", dest="aml_model_id", metavar="ID", help="Amazon ML model id")
    be.add_argument("--predict-endpoint", dest="aml_predict_endpoint", metavar="URL",
                    help="Amazon ML real-time endpoint URL")
    be.add_argument("--shadow", dest="shadow_backend", choices=["local", "sagemaker", "aml"],
                    help="with --backend shadow: the backend compared against the primary")
    be.add_argument("--shadow-primary", dest="shadow_primary",
                    choices=["local", "sagemaker", "aml"],
                    help="with --backend shadow: the backend whose answers are kept "
                    "(default aml)")
    be.add_argument("--labels", metavar="NEG,POS", help="the class names in score order, "
                    "negative first (default: what the model or the schema's target says)")
    be.add_argument("--endpoint-url", metavar="URL",
                    help="runtime endpoint URL override (e.g. the emulator)")
    be.add_argument("--region")
    be.add_argument("--concurrency", type=int, metavar="N")
    be.add_argument("--max-attempts", type=int, metavar="N")
    score.add_argument("--strict", action="store_true",
                       help="exit 1 when any record is rejected, not only when one failed")
    score.set_defaults(func=_score)

    validate = commands.add_parser("validate", help="validate a file against a schema only")
    _input_args(validate)
    validate.add_argument("--rejects", metavar="PATH", help="write the rejects here")
    validate.set_defaults(func=_validate)


def _input_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="CSV or JSON Lines file, or - for stdin")
    parser.add_argument("--schema", metavar="NAME|PATH", help="record schema "
                        "(default: $AMLPROXY_SCHEMA or census-income)")
    parser.add_argument("--format", choices=["csv", "jsonl"], help="input format "
                        "(default: from the file name)")
    header = parser.add_mutually_exclusive_group()
    header.add_argument("--header", dest="header", action="store_true", default=None,
                        help="the CSV has a header row (default: as the schema says)")
    header.add_argument("--no-header", dest="header", action="store_false")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress, no summary")


def _open_input(args: argparse.Namespace) -> tuple[str, BinaryIO, int | None, RecordFormat]:
    """(source name, binary stream, size if known, format)."""
    if args.file == "-":
        if not args.format:
            raise ConfigurationError("reading stdin needs --format csv or --format jsonl")
        return "stdin", sys.stdin.buffer, None, args.format
    path = Path(args.file)
    fmt: RecordFormat = args.format or detect_format(path.name)
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by the caller
        size = os.fstat(stream.fileno()).st_size
    except FileNotFoundError:
        raise InputError(f"no such file: {args.file}") from None
    except IsADirectoryError:
        raise InputError(f"{args.file} is a directory, not a file") from None
    except OSError as exc:
        raise InputError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    return str(path), stream, size, fmt


@contextmanager
def _rows(args: argparse.Namespace, schema: Schema, progress: Progress | None
          ) -> Iterator[tuple[str, Iterator[SourceRow]]]:
    """The input's source name and its rows; closes the file afterwards."""
    source, stream, size, fmt = _open_input(args)
    tracked = TrackedReader(stream)
    if progress is not None:
        progress.attach(tracked, size)
    try:
        yield source, read_records(tracked, schema, format=fmt, header=args.header)
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def _score(args: argparse.Namespace) -> int:
    settings = load_settings(
        schema_name=args.schema, backend=args.backend, local_model=args.local_model,
        sagemaker_endpoint=args.sagemaker_endpoint,
        sagemaker_content_type=args.sagemaker_content_type, aml_model_id=args.aml_model_id,
        aml_predict_endpoint=args.aml_predict_endpoint, shadow_backend=args.shadow_backend,
        shadow_primary=args.shadow_primary, labels=args.labels,
        endpoint_url=args.endpoint_url, region=args.region, concurrency=args.concurrency,
        max_attempts=args.max_attempts,
    )
    schema = load_schema(settings.schema_name)
    outputs = plan_outputs(args, shadow=settings.backend == "shadow")
    sample = RejectSample()
    pipeline = build_pipeline(settings, [*outputs.sinks, sample])
    progress = Progress.for_stderr(enabled=not args.quiet)
    out = sys.stderr if outputs.to_stdout else sys.stdout
    report = Report(source=args.file)
    try:
        with _rows(args, schema, progress) as (source, rows), interrupt_on_sigterm():
            report.source = source
            on_progress = progress.update if progress is not None else None
            pipeline.run(rows, source=source, progress=on_progress, report=report)
    except KeyboardInterrupt:
        if progress is not None:
            progress.done()
        print(f"amlproxy: interrupted after {report.total:,} records ({report.ok:,} ok, "
              f"{report.rejected:,} rejected, {report.failed:,} failed); outputs are whole "
              f"or absent: {outputs.after_interrupt()}", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        pipeline.close()
        if progress is not None:
            progress.done()
    print_report(report, outputs.names(), out=out, as_json=args.json, quiet=args.quiet)
    if not args.quiet:
        found = hint(report, schema, sample.outcomes, header=args.header)
        if found:
            print(found, file=sys.stderr)
    if report.failed or (args.strict and report.rejected):
        return 1
    return 0


@contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """SIGTERM (``kill``, a container stop) ends a run as Ctrl-C does: outputs whole or
    absent, and the count of what was done."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread (a library caller): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _validate(args: argparse.Namespace) -> int:
    schema = load_schema(args.schema or load_settings().schema_name)
    sinks: list[Sink] = [FileSink(args.rejects, kind="rejects")] if args.rejects else []
    report = Report(source=args.file)
    sample = RejectSample()
    shown = 0
    chunk: list[Outcome] = []
    with _rows(args, schema, None) as (source, rows):
        report.source = source
        for row in rows:
            outcome = _check(source, row, schema)
            report.count(outcome)
            if outcome.status is not Status.OK:
                if shown < SHOWN_REJECTS and not args.quiet:
                    where = f"row id {outcome.row_id}" if outcome.row_id else f"line {row.line}"
                    print(f"{source}: {where}: " + "; ".join(outcome.reasons), file=sys.stderr)
                    shown += 1
                sample.write([outcome])
                chunk.append(outcome)
    for sink in sinks:
        sink.write(chunk)
        sink.close()
    if not args.quiet:
        more = report.rejected - shown
        if more > 0:
            where = f"in {args.rejects}" if args.rejects else "--rejects FILE writes them all"
            print(f"{source}: ... and {more} more rejected record(s) ({where})",
                  file=sys.stderr)
        print(f"{report.source}: {report.total} records: {report.ok} valid, "
              f"{report.rejected} rejected")
        found = hint(report, schema, sample.outcomes, header=args.header)
        if found:
            print(found, file=sys.stderr)
    return 1 if report.rejected else 0


def _check(source: str, row: SourceRow, schema: Schema) -> Outcome:
    if row.fields is None:
        errors: tuple[FieldError, ...] = (FieldError(None, row.error or "unreadable record"),)
        return Outcome(source, row.line, Status.REJECTED, None, row.raw, None, errors)
    try:
        record = schema.validate(row.fields, line=row.line)
    except RecordValidationError as exc:
        return Outcome(source, row.line, Status.REJECTED, row.fields, row.raw, None,
                       exc.errors, exc.row_id)
    return Outcome(source, row.line, Status.OK, record, None)
