"""Scoring one S3 object: what the S3 trigger does per record, and SNS/SQS per pointer.

The object is streamed (the reader pulls 64 KiB at a time from the ``GetObject`` body,
never the whole object), scored, and written to:

- ``<output prefix><stem>.<version>.predictions.jsonl`` and
  ``<rejects prefix><stem>.<version>.rejects.jsonl`` in the output bucket (default: the
  input bucket), ``stem`` being the key minus the input prefix and ``version`` the
  version id, else the ETag: a replay of the same upload overwrites the same two objects;
- the shared sinks (DynamoDB items keyed by ``s3://bucket/key?versionId=...`` and line).

With a chunk queue (``AMLPROXY_CHUNK_QUEUE_URL``) an object larger than one chunk is not
scored here: its body is planned into chunks and fanned out to the chunk worker
(:mod:`amlproxy.chunks`), which writes the same two objects once every chunk is done; its
summary's status is ``planned``. An object of one chunk is scored directly, as above.

Keys under the output, rejects or chunk prefixes are refused (the loop guard: outputs written to
the input bucket must not trigger a run of their own), as are keys outside the input
prefix; both are logged and counted, not errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amlproxy.chunks.messages import REJECTS_SUFFIX, RESULTS_SUFFIX, ObjectVersion
from amlproxy.core.ports import Sink
from amlproxy.core.readers import RecordFormat, detect_format, read_records
from amlproxy.errors import InputError, RetriesExhaustedError
from amlproxy.observability.instrument import traced_input
from amlproxy.triggers._runtime import Runtime

if TYPE_CHECKING:
    from amlproxy.sinks.s3 import S3Sink

log = logging.getLogger("amlproxy.triggers")

__all__ = ["REJECTS_SUFFIX", "RESULTS_SUFFIX", "ObjectRef", "output_keys", "score_object",
           "summarize"]


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An S3 object version to score; ``key`` already URL-decoded."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None

    @property
    def source(self) -> str:
        """The source id of its records: ``s3://bucket/key`` (``?versionId=...``), as the
        chunk room names the same object (:attr:`ObjectVersion.source`)."""
        return ObjectVersion(self.bucket, self.key, self.version_id).source


def skip_reason(runtime: Runtime, ref: ObjectRef, *, require_input_prefix: bool) -> str | None:
    """Why this object must not be scored (loop guard, outside the input prefix), or None."""
    settings = runtime.settings
    output_bucket = settings.output_bucket or ref.bucket
    if output_bucket == ref.bucket:
        for prefix in (settings.output_prefix, settings.rejects_prefix,
                       settings.chunk_prefix):
            if prefix and ref.key.startswith(prefix):
                return f"loop guard: the key is under the output prefix {prefix!r}"
    if require_input_prefix and not ref.key.startswith(settings.input_prefix):
        return f"outside the input prefix {settings.input_prefix!r}"
    if ref.key.endswith("/"):
        return "a folder marker, not an object"
    return None


@traced_input("s3 object", lambda runtime, ref, **_: {"aws.s3.bucket": ref.bucket,
                                                        "aws.s3.key": ref.key})
def score_object(runtime: Runtime, ref: ObjectRef, *, require_input_prefix: bool = True
                 ) -> dict[str, Any]:
    """Scores one object; returns its summary (``status``: scored, skipped, error).

    Never raises for the object's own problems: a missing or replaced object is
    ``skipped``, an unreadable one an ``error`` (the caller decides to raise).
    """
    summary: dict[str, Any] = {"source": ref.source}
    reason = skip_reason(runtime, ref, require_input_prefix=require_input_prefix)
    if reason is not None:
        return _skipped(runtime, summary, reason)
    try:
        fmt = detect_format(ref.key)
    except InputError as exc:
        return _skipped(runtime, summary, str(exc))
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = runtime.clients.retrying("s3")
    request: dict[str, Any] = {"Bucket": ref.bucket, "Key": ref.key}
    if ref.version_id:
        request["VersionId"] = ref.version_id
    elif ref.etag:
        request["IfMatch"] = ref.etag  # the object the event announced, not a newer one
    try:
        answer = s3.get_object(**request)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchKey", "NoSuchVersion", "404"):
            return _skipped(runtime, summary, "the object no longer exists")
        if code in ("PreconditionFailed", "412"):
            return _skipped(runtime, summary, "the object was replaced since the event")
        return _error(runtime, summary, f"cannot read the object: {exc}")
    except (BotoCoreError, RetriesExhaustedError) as exc:
        return _error(runtime, summary, f"cannot read the object: {exc}")
    etag = str(answer.get("ETag") or ref.etag or "").strip('"') or None
    body = answer["Body"]
    size = int(answer.get("ContentLength") or 0)
    try:
        if _chunked(runtime, size):
            return _fan_out(runtime, ref, etag, body, fmt, summary)
        return _score_directly(runtime, ref, etag, body, fmt, summary)
    finally:
        body.close()


def _chunked(runtime: Runtime, size: int) -> bool:
    """Whether an object of ``size`` bytes is planned into chunks (larger than one)."""
    room = runtime.chunks
    if room is None or room.planner is None:
        return False
    from amlproxy.chunks.sizing import chunk_bytes

    return size > chunk_bytes(runtime.settings, runtime.time_left_at_start)


def _fan_out(runtime: Runtime, ref: ObjectRef, etag: str | None, body: Any,
             fmt: RecordFormat, summary: dict[str, Any]) -> dict[str, Any]:
    from amlproxy.chunks.sizing import chunk_bytes

    room = runtime.chunks
    assert room is not None and room.planner is not None
    obj = ObjectVersion(ref.bucket, ref.key, ref.version_id, etag)
    header = runtime.schema.has_header if fmt == "csv" else False
    try:
        planned = room.planner.fan_out(
            obj, body, fmt=fmt, header=header,
            chunk_bytes=chunk_bytes(runtime.settings, runtime.time_left_at_start))
    except Exception as exc:
        log.exception("planning %s failed", ref.source)
        return _error(runtime, summary, f"{type(exc).__name__}: {exc}")
    runtime.metrics.add("ObjectsPlanned")
    results, rejects = room.layout.final_keys(obj)
    bucket = room.layout.bucket(obj)
    summary.update({k: v for k, v in planned.items() if k != "status"}, status="planned",
                   plan=planned["status"], results=f"s3://{bucket}/{results}",
                   rejects=f"s3://{bucket}/{rejects}")
    log.info("planned %s", ref.source, extra={"summary": summary})
    return summary


def _score_directly(runtime: Runtime, ref: ObjectRef, etag: str | None, body: Any,
                    fmt: RecordFormat, summary: dict[str, Any]) -> dict[str, Any]:
    sinks, uris = _outputs(runtime, ref, ref.version_id or etag)
    try:
        rows = read_records(body, runtime.schema, format=fmt)
        report = runtime.pipeline.run(rows, source=ref.source, sinks=sinks)
    except Exception as exc:
        log.exception("scoring %s failed", ref.source)
        return _error(runtime, summary, f"{type(exc).__name__}: {exc}")
    runtime.metrics.add_report(report)
    summary.update(
        status="interrupted" if report.interrupted else "scored",
        total=report.total,
        ok=report.ok,
        rejected=report.rejected,
        failed=report.failed,
        retries=report.retries,
        **uris,
    )
    if report.interrupted:
        summary["last_line"] = report.last_line
    log.info("scored %s", ref.source, extra={"summary": summary})
    return summary


def output_keys(runtime: Runtime, stem: str, version: str | None) -> tuple[str, str]:
    """The results and rejects keys of an input ``stem`` at ``version``."""
    from amlproxy.sinks.s3 import output_key

    settings = runtime.settings
    results = output_key(stem, version_id=version, prefix=settings.output_prefix,
                         suffix=RESULTS_SUFFIX)
    rejects = output_key(stem, version_id=version, prefix=settings.rejects_prefix,
                         suffix=REJECTS_SUFFIX)
    return results, rejects


def s3_output_sinks(runtime: Runtime, bucket: str, stem: str, version: str | None
                    ) -> tuple[list[S3Sink], dict[str, str]]:
    """The results and rejects S3 sinks of one input (bare: the caller instruments them)
    and their URIs."""
    from amlproxy.sinks.s3 import S3Sink

    results_key, rejects_key = output_keys(runtime, stem, version)
    client, policy = runtime.clients.client("s3"), runtime.clients.retry_policy
    sinks = [
        S3Sink(bucket, results_key, kind="results", client=client, retry_policy=policy),
        S3Sink(bucket, rejects_key, kind="rejects", client=client, retry_policy=policy),
    ]
    uris = {"results": f"s3://{bucket}/{results_key}", "rejects": f"s3://{bucket}/{rejects_key}"}
    return sinks, uris


def _outputs(runtime: Runtime, ref: ObjectRef, version: str | None
             ) -> tuple[list[Sink], dict[str, str]]:
    """The sinks of one object scored directly (its S3 outputs, instrumented, and the
    shared sinks) and the URIs of its S3 outputs."""
    shared = runtime.shared_sinks
    settings = runtime.settings
    prefix = settings.input_prefix
    stem = ref.key[len(prefix):] if prefix and ref.key.startswith(prefix) else ref.key
    bucket = settings.output_bucket or ref.bucket
    if not runtime.uses_s3_output(s3_trigger=True):
        return list(shared), {}
    sinks, uris = s3_output_sinks(runtime, bucket, stem, version)
    # the keyed shared sinks first: a chunk the deadline cuts in one of them never reaches
    # the per-run S3 outputs
    return [*shared, *runtime.instrument(list(sinks))], uris


def _skipped(runtime: Runtime, summary: dict[str, Any], reason: str) -> dict[str, Any]:
    log.warning("skipped %s: %s", summary["source"], reason)
    runtime.metrics.add("ObjectsSkipped")
    summary.update(status="skipped", reason=reason)
    return summary


def _error(runtime: Runtime, summary: dict[str, Any], reason: str) -> dict[str, Any]:
    log.error("cannot score %s: %s", summary["source"], reason)
    runtime.metrics.add("InputErrors")
    summary.update(status="error", reason=reason)
    return summary


def summarize(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-object summaries plus the totals over them (an S3 event's, or a message's that
    points to objects)."""
    totals = {"total": 0, "ok": 0, "rejected": 0, "failed": 0}
    states = {"scored": 0, "planned": 0, "skipped": 0, "error": 0, "interrupted": 0}
    for item in objects:
        states[item["status"]] += 1
        for name in totals:
            totals[name] += int(item.get(name, 0))
    return {"objects": objects, **states, "records": totals}
