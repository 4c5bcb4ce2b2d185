"""Checkpoints: how a retry resumes an S3 object that a deadline cut, instead of starting it
again (a file that needs more than one invocation's time then still completes).

When the deadline interrupts the scoring of an object, the pipeline has written whole
chunks of outcomes to the sinks (see :meth:`amlproxy.core.pipeline.Pipeline.run`), up to a
line ``L``. The trigger then *suspends* the object's S3 output sinks
(:meth:`amlproxy.sinks.s3.S3Sink.suspend`): each multipart upload stays open and
invisible, the rows not yet sent as a part go to a tail object, and one JSON checkpoint
records ``L``, the counts so far and each sink's upload id, parts and tail. Keyed sinks
(DynamoDB items, callback messages) already hold rows 1..L. Layout, in the output bucket::

    <checkpoint prefix><stem>.<version>/checkpoint.json
    <checkpoint prefix><stem>.<version>/<results|rejects>.<L>.tail

The retry (Lambda's async retry, an SQS redelivery, or a re-sent event) finds the
checkpoint, resumes the sinks and scores the rows after ``L`` only, so each row gets
exactly one outcome. Its chunks line up with the first run's, so callback messages keep
their ids. The output objects appear only when the last run completes them: whole, never
half. The checkpoint and its tails are then deleted (a lifecycle rule on the prefix
removes what a crash leaves behind, as ``AbortIncompleteMultipartUpload`` does for the
uploads).

Every write is ordered so that a crash at any point leaves a usable state: tails are put
before the checkpoint that names them, a new checkpoint is written before the tails of the
previous one are deleted, and a checkpoint whose upload is gone (completed, or aborted by
the lifecycle rule) is dropped and the object scored from the start.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.core.report import Report
from amlproxy.errors import SinkError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("amlproxy.triggers")

_COUNTS = ("total", "ok", "rejected", "failed", "retries", "exhausted")


@dataclass
class Checkpoint:
    """Where an interrupted object stands: every row up to ``line`` has its outcome in
    the outputs; ``counts`` are those rows' (a :class:`Report`'s); ``sinks`` the suspended
    state of each S3 output sink by kind; ``runs`` the invocations so far."""

    source: str
    line: int
    counts: dict[str, int]
    sinks: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: int = 1
    reasons: dict[str, int] = field(default_factory=dict)

    def report(self) -> Report:
        """A report holding the counts so far, for the resumed run to continue."""
        report = Report(source=self.source, last_line=self.line)
        for name in _COUNTS:
            setattr(report, name, int(self.counts.get(name, 0)))
        report.reasons.update({str(k): int(v) for k, v in self.reasons.items()})
        return report

    def since(self, report: Report) -> Report:
        """What the resumed run that ended with ``report`` added (for its metrics)."""
        added = Report(source=report.source, last_line=report.last_line,
                       interrupted=report.interrupted)
        for name in _COUNTS:
            setattr(added, name, getattr(report, name) - int(self.counts.get(name, 0)))
        return added

    def tails(self) -> list[str]:
        return [state["tail"] for state in self.sinks.values() if state.get("tail")]

    def to_json(self) -> bytes:
        return orjson.dumps({"version": 1, "source": self.source, "line": self.line,
                             "counts": self.counts, "sinks": self.sinks, "runs": self.runs,
                             "reasons": self.reasons})

    @classmethod
    def from_json(cls, data: bytes) -> Checkpoint:
        value = orjson.loads(data)
        if not isinstance(value, dict) or value.get("version") != 1:
            raise ValueError("not a version 1 checkpoint")
        return cls(str(value["source"]), int(value["line"]), dict(value["counts"]),
                   dict(value["sinks"]), int(value.get("runs", 1)),
                   dict(value.get("reasons", {})))


def counts_of(report: Report) -> dict[str, int]:
    return {name: int(getattr(report, name)) for name in _COUNTS}


class CheckpointStore:
    """The checkpoint of one input object version, under ``prefix`` in ``bucket``."""

    def __init__(self, client: S3Client, bucket: str, prefix: str) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.rstrip("/") + "/"
        self.key = self.prefix + "checkpoint.json"

    def tail_key(self, kind: str, line: int) -> str:
        return f"{self.prefix}{kind}.{line}.tail"

    def load(self, source: str) -> Checkpoint | None:
        """The checkpoint of ``source``, or None (none, unreadable, another source).

        It lists the prefix first rather than getting the key: the role's ``s3:ListBucket``
        is scoped to the checkpoint prefix, and without it a missing key is a 403."""
        try:
            listed = self.client.list_objects_v2(Bucket=self.bucket, Prefix=self.key, MaxKeys=1)
            if not any(item["Key"] == self.key for item in listed.get("Contents", ())):
                return None
            data = self.client.get_object(Bucket=self.bucket, Key=self.key)["Body"].read()
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None  # deleted between the listing and the read
            raise SinkError(f"cannot read the checkpoint s3://{self.bucket}/{self.key}: "
                            f"{exc}") from exc
        except BotoCoreError as exc:
            raise SinkError(f"cannot read the checkpoint s3://{self.bucket}/{self.key}: "
                            f"{exc}") from exc
        try:
            checkpoint = Checkpoint.from_json(data)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("dropping the unreadable checkpoint %s: %s", self.key, exc)
            self.discard(None)
            return None
        return checkpoint if checkpoint.source == source else None

    def save(self, checkpoint: Checkpoint, previous: Checkpoint | None) -> None:
        """Writes ``checkpoint`` (one atomic PutObject), then deletes the tails of
        ``previous`` that it no longer names."""
        try:
            self.client.put_object(Bucket=self.bucket, Key=self.key, Body=checkpoint.to_json(),
                                   ContentType="application/json")
        except (ClientError, BotoCoreError) as exc:
            raise SinkError(f"cannot write the checkpoint s3://{self.bucket}/{self.key}: "
                            f"{exc}") from exc
        if previous is not None:
            self._delete([t for t in previous.tails() if t not in checkpoint.tails()])

    def discard(self, checkpoint: Checkpoint | None) -> None:
        """Deletes the checkpoint and its tails (the object completed, or the checkpoint
        cannot be used), and whatever else a crash left under its prefix. Failures are
        logged: the lifecycle rule on the checkpoint prefix removes leftovers."""
        keys = [self.key, *(checkpoint.tails() if checkpoint else ())]
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix)
            keys += [item["Key"] for page in pages for item in page.get("Contents", ())]
        except (ClientError, BotoCoreError) as exc:
            log.warning("cannot list s3://%s/%s: %s", self.bucket, self.prefix, exc)
        self._delete(list(dict.fromkeys(keys)))

    def _delete(self, keys: list[str]) -> None:
        for key in keys:
            try:
                self.client.delete_object(Bucket=self.bucket, Key=key)
            except (ClientError, BotoCoreError) as exc:
                log.warning("cannot delete s3://%s/%s: %s", self.bucket, key, exc)
