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
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import dropwhile
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from amlproxy.core.pipeline import abort_quietly
from amlproxy.core.ports import Sink
from amlproxy.core.readers import detect_format, read_records
from amlproxy.core.report import Report
from amlproxy.errors import InputError, RetriesExhaustedError, SinkError
from amlproxy.observability.instrument import traced_input
from amlproxy.triggers._checkpoints import Checkpoint, CheckpointStore, counts_of
from amlproxy.triggers._runtime import Runtime

if TYPE_CHECKING:
    from amlproxy.sinks.s3 import S3Sink

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
        for prefix in (settings.output_prefix, settings.rejects_prefix,
                       settings.checkpoint_prefix):
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
    output = _outputs(runtime, ref, ref.version_id or etag)
    body = answer["Body"]
    try:
        resumed = output.resume()
        rows = read_records(body, runtime.schema, format=fmt)
        if resumed is not None:  # the rows before the checkpoint have their outcomes
            rows = dropwhile(lambda row: row.line <= resumed.line, rows)
        report = runtime.pipeline.run(
            rows, source=ref.source, sinks=output.sinks,
            report=resumed.report() if resumed is not None else None,
            suspend=output.suspend if output.store is not None else None,
        )
        if not report.interrupted:
            output.finish()
    except Exception as exc:
        log.exception("scoring %s failed", ref.source)
        return _error(runtime, summary, f"{type(exc).__name__}: {exc}")
    finally:
        body.close()
    this_run = resumed.since(report) if resumed is not None else report
    runtime.metrics.add_report(this_run)
    summary.update(
        status="interrupted" if report.interrupted else "scored",
        total=report.total,
        ok=report.ok,
        rejected=report.rejected,
        failed=report.failed,
        retries=report.retries,
        **output.uris,
    )
    if resumed is not None:
        summary.update(resumed_after_line=resumed.line, runs=resumed.runs + 1,
                       scored_this_run=this_run.total)
    if report.interrupted:
        summary["last_line"] = report.last_line
        if output.saved is not None:
            summary["checkpoint"] = f"s3://{output.store.bucket}/{output.store.key}"  # type: ignore[union-attr]
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


@dataclass
class _Outputs:
    """The sinks of one object, and its checkpoint store (None: resume is off)."""

    sinks: list[Sink]
    uris: dict[str, str]
    s3_sinks: list[S3Sink] = field(default_factory=list)  # the per-object S3 outputs, bare
    store: CheckpointStore | None = None
    source: str = ""
    resumed: Checkpoint | None = None
    saved: Checkpoint | None = None

    def resume(self) -> Checkpoint | None:
        """Loads the object's checkpoint and resumes the S3 sinks from it; None when there
        is none or it cannot be used (then it is discarded: the object starts again)."""
        if self.store is None:
            return None
        checkpoint = self.store.load(self.source)
        if checkpoint is None:
            return None
        try:
            if set(checkpoint.sinks) != {sink.kind for sink in self.s3_sinks}:
                raise SinkError("the checkpoint was made with other S3 outputs")
            for sink in self.s3_sinks:
                sink.resume(checkpoint.sinks[sink.kind])
        except SinkError as exc:
            log.warning("cannot resume %s from its checkpoint, starting again: %s",
                        self.source, exc)
            for sink in self.s3_sinks:
                abort_quietly(sink)
            self.store.discard(checkpoint)
            return None
        self.resumed = checkpoint
        return checkpoint

    def suspend(self, sinks: Sequence[Sink], report: Report) -> None:
        """The pipeline's hook when the deadline cut the run: keep the S3 outputs' uploads
        and save a checkpoint at ``report.last_line`` (see :mod:`._checkpoints`)."""
        assert self.store is not None
        store, previous = self.store, self.resumed
        if previous is None and report.last_line == 0:  # nothing done: nothing to keep, and
            for sink in sinks:  # no time spent on a checkpoint after the deadline
                abort_quietly(sink)
            return
        try:
            states: dict[str, dict[str, Any]] = {
                sink.kind: sink.suspend(store.tail_key(sink.kind, report.last_line))
                for sink in self.s3_sinks
            }
            checkpoint = Checkpoint(self.source, report.last_line, counts_of(report), states,
                                    runs=previous.runs + 1 if previous is not None else 1,
                                    reasons=dict(report.reasons))
            store.save(checkpoint, previous)
            self.saved = checkpoint
        except SinkError:
            log.exception("cannot save the checkpoint of %s: its retry starts again",
                          self.source)
        for sink in sinks:  # the suspended S3 sinks hold nothing now; keyed sinks keep theirs
            abort_quietly(sink)

    def finish(self) -> None:
        """The object completed: its checkpoint and tails are no longer needed."""
        if self.store is not None and self.resumed is not None:
            self.store.discard(self.resumed)


def _outputs(runtime: Runtime, ref: ObjectRef, version: str | None) -> _Outputs:
    shared = runtime.shared_sinks
    settings = runtime.settings
    prefix = settings.input_prefix
    stem = ref.key[len(prefix):] if prefix and ref.key.startswith(prefix) else ref.key
    bucket = settings.output_bucket or ref.bucket
    outputs = _Outputs(list(shared), {}, source=ref.source)
    if runtime.uses_s3_output(s3_trigger=True):
        sinks, outputs.uris = s3_output_sinks(runtime, bucket, stem, version)
        outputs.s3_sinks = sinks
        # the keyed shared sinks first: a chunk the deadline cuts in one of them never
        # reaches the per-run S3 outputs, so that a checkpoint matches what they hold
        outputs.sinks = [*shared, *runtime.instrument(list(sinks))]
    if settings.checkpoint_prefix:
        from amlproxy.sinks.s3 import output_key

        where = output_key(stem, version_id=version, prefix=settings.checkpoint_prefix,
                           suffix="")
        outputs.store = CheckpointStore(runtime.clients.retrying("s3"), bucket, where)
    return outputs


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
    states = {"scored": 0, "skipped": 0, "error": 0, "interrupted": 0}
    for item in objects:
        states[item["status"]] += 1
        for name in totals:
            totals[name] += int(item.get(name, 0))
    return {"objects": objects, **states, "records": totals}
