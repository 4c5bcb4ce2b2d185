"""Scoring one S3 object: what the S3 trigger does per record, and SNS/SQS per pointer.

The object is streamed (the reader pulls 64 KiB at a time from the ``GetObject`` body,
never the whole object), scored, and written to:

- ``<output prefix><stem>.<version>.predictions.jsonl`` and
  ``<rejects prefix><stem>.<version>.rejects.jsonl`` in the output bucket (default: the
  input bucket), ``stem`` being the key minus the input prefix and ``version`` the
  version id, else the ETag: a replay of the same upload overwrites the same two objects;
- the shared sinks (DynamoDB items keyed by ``s3://bucket/key?versionId=...`` and line).

Keys under the output or rejects prefixes are refused (the loop guard: outputs written to
the input bucket must not trigger a run of their own), as are keys outside the input
prefix; both are logged and counted, not errors.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from amlproxy.core.ports import Sink
from amlproxy.core.readers import detect_format, read_records
from amlproxy.errors import InputError
from amlproxy.triggers._runtime import Runtime

log = logging.getLogger("amlproxy.triggers")

RESULTS_SUFFIX = ".predictions.jsonl"
REJECTS_SUFFIX = ".rejects.jsonl"


@dataclass(frozen=True, slots=True)
class ObjectRef:
    """An S3 object version to score; ``key`` already URL-decoded."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None

    @property
    def source(self) -> str:
        """The source id of its records: ``s3://bucket/key`` (``?versionId=...``)."""
        base = f"s3://{self.bucket}/{self.key}"
        return f"{base}?versionId={quote(self.version_id, safe='')}" if self.version_id else base


def skip_reason(runtime: Runtime, ref: ObjectRef, *, require_input_prefix: bool) -> str | None:
    """Why this object must not be scored (loop guard, outside the input prefix), or None."""
    settings = runtime.settings
    output_bucket = settings.output_bucket or ref.bucket
    if output_bucket == ref.bucket:
        for prefix in (settings.output_prefix, settings.rejects_prefix):
            if prefix and ref.key.startswith(prefix):
                return f"loop guard: the key is under the output prefix {prefix!r}"
    if require_input_prefix and not ref.key.startswith(settings.input_prefix):
        return f"outside the input prefix {settings.input_prefix!r}"
    if ref.key.endswith("/"):
        return "a folder marker, not an object"
    return None


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

    s3 = runtime.clients.client("s3")
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
    except BotoCoreError as exc:
        return _error(runtime, summary, f"cannot read the object: {exc}")
    etag = str(answer.get("ETag") or ref.etag or "").strip('"') or None
    sinks, outputs = _sinks(runtime, ref, ref.version_id, etag)
    body = answer["Body"]
    try:
        rows = read_records(body, runtime.schema, format=fmt)
        report = runtime.pipeline.run(rows, source=ref.source, sinks=sinks)
    except Exception as exc:
        log.exception("scoring %s failed", ref.source)
        return _error(runtime, summary, f"{type(exc).__name__}: {exc}")
    finally:
        body.close()
    runtime.metrics.add_report(report)
    summary.update(
        status="interrupted" if report.interrupted else "scored",
        total=report.total,
        ok=report.ok,
        rejected=report.rejected,
        failed=report.failed,
        retries=report.retries,
        **outputs,
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
                    ) -> tuple[list[Sink], dict[str, str]]:
    """The results and rejects S3 sinks of one input (instrumented) and their URIs."""
    from amlproxy.sinks.s3 import S3Sink

    results_key, rejects_key = output_keys(runtime, stem, version)
    client = runtime.clients.client("s3")
    sinks: list[Sink] = [
        S3Sink(bucket, results_key, kind="results", client=client),
        S3Sink(bucket, rejects_key, kind="rejects", client=client),
    ]
    uris = {"results": f"s3://{bucket}/{results_key}", "rejects": f"s3://{bucket}/{rejects_key}"}
    return runtime.instrument(sinks), uris


def _sinks(runtime: Runtime, ref: ObjectRef, version_id: str | None, etag: str | None
           ) -> tuple[list[Sink], dict[str, str]]:
    shared = runtime.shared_sinks
    if not runtime.uses_s3_output(s3_trigger=True):
        return shared, {}
    prefix = runtime.settings.input_prefix
    stem = ref.key[len(prefix):] if prefix and ref.key.startswith(prefix) else ref.key
    bucket = runtime.settings.output_bucket or ref.bucket
    sinks, uris = s3_output_sinks(runtime, bucket, stem, version_id or etag)
    return [*sinks, *shared], uris


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
