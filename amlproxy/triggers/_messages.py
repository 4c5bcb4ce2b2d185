"""Messages (SNS notifications, SQS bodies): what they may hold, and scoring them.

A message body is JSON and one of:

- one record (a JSON object), a list of records, or ``{"records": [...]}``;
- a pointer to an S3 object: ``{"s3": {"bucket": ..., "key": ..., "versionId": ...}}``
  or an ``"s3://bucket/key"`` URI (bare or as a JSON string), scored like the S3 trigger
  (keys taken literally; the loop guard applies, the input prefix does not);
- an S3 event notification forwarded by SNS or EventBridge-less fan-out
  (``{"Records": [{"eventSource": "aws:s3", ...}]}``), scored like the S3 trigger (one
  with a record of another kind, ``ObjectRemoved:*``..., is refused as a whole).

Records are numbered from 1 in the message (``line``) under the source id given by the
trigger (``sns:<MessageId>``, ``sqs:<messageId>``). A body that is none of the above is
one rejected row with its reason: bad input is written to the rejects output, never
retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from amlproxy.core.outcome import SourceRow
from amlproxy.core.ports import Sink
from amlproxy.errors import UnsupportedEventError
from amlproxy.observability.instrument import message_annotations, traced_input
from amlproxy.triggers._events import s3_object_refs
from amlproxy.triggers._runtime import Runtime
from amlproxy.triggers._s3objects import ObjectRef, s3_output_sinks, score_object, summarize

RAW_LIMIT = 1000  # characters of a refused body kept in its reject


@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """Either the rows of in-memory records, or the S3 objects the message points to."""

    rows: list[SourceRow] | None = None
    objects: list[ObjectRef] | None = None


def _refused(body: str, reason: str) -> ParsedMessage:
    return ParsedMessage(rows=[SourceRow(line=1, fields=None, raw=body[:RAW_LIMIT], error=reason)])


def parse_message(body: str) -> ParsedMessage:
    """What a message body holds (see the module docstring)."""
    text = body.strip()
    if text.startswith("s3://"):
        return _uri(body, text)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return _refused(body, f"the message is not JSON: {exc}")
    if isinstance(doc, str) and doc.startswith("s3://"):
        return _uri(body, doc)
    if isinstance(doc, Mapping):
        if isinstance(doc.get("s3"), Mapping) and len(doc) == 1:
            return _pointer(body, doc["s3"])
        if isinstance(doc.get("Records"), list) and any(
            isinstance(r, Mapping) and r.get("eventSource") == "aws:s3" for r in doc["Records"]
        ):
            try:
                return ParsedMessage(objects=s3_object_refs(doc))
            except UnsupportedEventError as exc:  # bad input: a reject, not a retry
                return _refused(body, f"the message holds {exc.arrived}")
        if "records" in doc and len(doc) == 1:
            if not isinstance(doc["records"], list):
                return _refused(body, '"records" must be a list of records')
            return _rows(body, doc["records"])
        return _rows(body, [doc])
    if isinstance(doc, list):
        return _rows(body, doc)
    return _refused(body, "the message must be a record, a list of records or an S3 pointer")


def _uri(body: str, uri: str) -> ParsedMessage:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    if not bucket or not key:
        return _refused(body, f"not an s3://bucket/key URI: {uri[:200]!r}")
    return ParsedMessage(objects=[ObjectRef(bucket, key)])


def _pointer(body: str, pointer: Mapping[str, Any]) -> ParsedMessage:
    bucket, key = pointer.get("bucket"), pointer.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        return _refused(body, 'an S3 pointer needs "bucket" and "key" strings')
    version = pointer.get("versionId")
    return ParsedMessage(objects=[ObjectRef(bucket, key, str(version) if version else None)])


def _rows(body: str, records: list[Any]) -> ParsedMessage:
    if not records:
        return _refused(body, "the message holds no records")
    rows = []
    for line, record in enumerate(records, start=1):
        raw = orjson.dumps(record).decode()
        if isinstance(record, Mapping):
            rows.append(SourceRow(line=line, fields=record, raw=raw))
        else:
            reason = f"record {line} is not a JSON object"
            rows.append(SourceRow(line=line, fields=None, raw=raw[:RAW_LIMIT], error=reason))
    return ParsedMessage(rows=rows)


@traced_input("message", lambda runtime, body, *, source, stem: message_annotations(source))
def score_message(runtime: Runtime, body: str, *, source: str, stem: str) -> dict[str, Any]:
    """Scores a message's records (or the objects it points to); its summary.

    ``status`` is ``scored``, ``interrupted`` or ``error`` (records in memory), or the
    worst status of the objects it points to. ``stem`` names its S3 output objects.
    """
    parsed = parse_message(body)
    if parsed.objects is not None:
        summary = summarize(
            [score_object(runtime, ref, require_input_prefix=False) for ref in parsed.objects]
        )
        worst = next(
            (s for s in ("error", "interrupted") if summary[s]),
            "skipped" if summary["skipped"] and not summary["scored"] else "scored",
        )
        return {"source": source, "status": worst, **summary["records"], "objects":
                summary["objects"]}
    assert parsed.rows is not None
    sinks, outputs = _message_sinks(runtime, stem)
    report = runtime.pipeline.run(parsed.rows, source=source, sinks=sinks)
    runtime.metrics.add_report(report)
    return {
        "source": source,
        "status": "interrupted" if report.interrupted else "scored",
        "total": report.total,
        "ok": report.ok,
        "rejected": report.rejected,
        "failed": report.failed,
        **outputs,
    }


def _message_sinks(runtime: Runtime, stem: str) -> tuple[list[Sink], dict[str, str]]:
    shared = runtime.shared_sinks
    if not runtime.uses_s3_output(s3_trigger=False):
        return shared, {}
    bucket = runtime.settings.output_bucket
    assert bucket is not None  # checked at the trigger's first invocation
    sinks, uris = s3_output_sinks(runtime, bucket, stem, None)
    return [*runtime.instrument(list(sinks)), *shared], uris


def needs_retry(summary: Mapping[str, Any]) -> bool:
    """Whether a message's outcome calls for another delivery (not bad input)."""
    return summary["status"] in ("error", "interrupted") or bool(summary.get("failed"))
