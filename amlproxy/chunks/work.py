"""Work: one chunk scored by one worker, exactly once in effect however often it is run.

:meth:`ChunkWorker.handle` takes one :class:`~amlproxy.chunks.messages.ChunkMessage`:

1. reads the completion item: an object already ``assembled`` only needs its chunk
   objects cleaned up; a chunk already done is not scored again (its redelivery may only
   have to assemble);
2. reads its byte range with a ranged ``GetObject`` of the planned version (``VersionId``,
   else ``IfMatch`` on the ETag), its records numbered from ``first_line``, CSV fields
   named by the plan's header;
3. runs the pipeline with two S3 sinks at the chunk's keys, each committed whole by one
   ``PutObject`` when the run completes, and the shared sinks (DynamoDB, callback), keyed
   by the object's source id and the line, so a redo overwrites them. A run the deadline
   cut (``report.interrupted``) writes no chunk object: the message goes back to the
   queue. A record never attempted is not counted, nor written as failed;
4. marks the chunk done (:meth:`~amlproxy.chunks.store.CompletionStore.done`); the worker
   that finds every chunk done assembles (:mod:`amlproxy.chunks.assemble`).

With ``raise_on_failed``, a chunk with records the backend failed is not marked done and
is redelivered, as the direct path's event would be retried; the redo overwrites.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.chunks.assemble import Assembler, Target
from amlproxy.chunks.messages import ChunkMessage, Layout, ObjectVersion, chunk_key
from amlproxy.chunks.store import Completion, CompletionStore
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.ports import Sink
from amlproxy.core.readers import read_records
from amlproxy.core.report import Report
from amlproxy.core.retry import RetryPolicy, explain
from amlproxy.errors import RetriesExhaustedError, SinkError
from amlproxy.sinks._aws import aws_policy

log = logging.getLogger("amlproxy.chunks")
RETRY = frozenset({"interrupted", "failed", "error"})  # the message goes back to the queue


@dataclass
class ChunkResult:
    """What became of one chunk message; ``retry``: report it as a batch item failure."""

    status: str
    summary: dict[str, Any] = field(default_factory=dict)
    report: Report | None = None

    @property
    def retry(self) -> bool:
        return self.status in RETRY


@dataclass
class ChunkWorker:
    """Scores chunks with ``pipeline``; ``s3`` is a boto3 client making one attempt per
    call (the chunk sinks and the reads run ``retry_policy``)."""

    pipeline: Pipeline
    store: CompletionStore
    assembler: Assembler
    layout: Layout
    s3: Any
    retry_policy: RetryPolicy
    shared_sinks: Sequence[Sink] = ()
    instrument: Callable[[list[Sink]], list[Sink]] = list
    raise_on_failed: bool = True

    def handle(self, message: ChunkMessage) -> ChunkResult:
        """Scores (or finds done) one chunk, and assembles the object when it is the last."""
        obj = message.object
        target = self.target(obj)
        summary: dict[str, Any] = {"source": obj.source, "index": message.index,
                                   "count": message.count}
        try:
            completion = self.store.get(obj.plan_id)
            if completion is None:
                log.error("chunk %d of %s has no plan (expired?): dropped", message.index,
                          obj.source)
                return ChunkResult("no-plan", summary)
            if completion.assembled:
                self.assembler.assemble(target, completion)  # (cleans up only)
                return ChunkResult("assembled", {**summary, **target.uris})
            report: Report | None = None
            if message.index not in completion.done:
                report = self._score(message, target, summary)
                if report is None or report.interrupted or (
                        report.failed and self.raise_on_failed):
                    status = "skipped" if report is None else (
                        "interrupted" if report.interrupted else "failed")
                    return ChunkResult(status, summary, report)
                counts = {"total": report.total, "ok": report.ok, "rejected": report.rejected,
                          "failed": report.failed}
                marked = self.store.done(obj.plan_id, message.index, counts)
                if marked is None:
                    return ChunkResult("no-plan", summary, report)
                completion = marked
            return self._finish(completion, target, summary, report)
        except SinkError as exc:
            log.error("chunk %d of %s: %s", message.index, obj.source, exc)
            return ChunkResult("error", {**summary, "reason": str(exc)})

    def target(self, obj: ObjectVersion) -> Target:
        results, rejects = self.layout.final_keys(obj)
        return Target(self.layout.bucket(obj), self.layout.chunk_dir(obj), results, rejects)

    def _finish(self, completion: Completion, target: Target, summary: dict[str, Any],
                report: Report | None) -> ChunkResult:
        summary.update(done=len(completion.done))
        if not completion.complete and not completion.assembled:
            return ChunkResult("done", summary, report)
        assembled = self.assembler.assemble(target, completion)
        return ChunkResult("assembled", {**summary, **assembled}, report)

    def _score(self, message: ChunkMessage, target: Target, summary: dict[str, Any]
               ) -> Report | None:
        """The chunk's run (its chunk objects written unless it was cut); None when the
        object is gone or was replaced (nothing can be done)."""
        obj = message.object
        request = {**obj.get_request(), "Range": f"bytes={message.start}-{message.end - 1}"}
        try:
            answer = self.retry_policy.run(lambda: self.s3.get_object(**request))
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "NoSuchVersion", "404", "PreconditionFailed", "412"):
                log.warning("chunk %d of %s: the object is gone or was replaced",
                            message.index, obj.source)
                summary["reason"] = "the object no longer exists or was replaced"
                return None
            raise SinkError(f"cannot read {obj.source}: {exc}") from exc
        except (BotoCoreError, RetriesExhaustedError) as exc:
            raise SinkError(f"cannot read {obj.source}: {explain(exc)}") from exc
        body = answer["Body"]
        header = message.header if message.index > 0 else None
        try:
            rows = read_records(body, self.pipeline.schema, format=message.format,
                                first_line=message.first_line, header_line=header,
                                first_offset=message.start)
            report = self.pipeline.run(rows, source=obj.source, sinks=self._sinks(message,
                                                                                   target))
        finally:
            body.close()
        summary.update(total=report.total, ok=report.ok, rejected=report.rejected,
                       failed=report.failed, interrupted=report.interrupted)
        return report

    def _sinks(self, message: ChunkMessage, target: Target) -> list[Sink]:
        from amlproxy.sinks.s3 import MAX_PART_SIZE, S3Sink

        own: list[Sink] = [
            S3Sink(target.bucket, chunk_key(target.directory, message.index, kind), kind=kind,
                   client=self.s3, retry_policy=aws_policy(self.retry_policy),
                   part_size=MAX_PART_SIZE)
            for kind in ("results", "rejects")
        ]
        return [*self.instrument(own), *self.shared_sinks]
