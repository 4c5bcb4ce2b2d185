"""Assemble: the final results and rejects objects from the chunk objects, in line order,
without reading every row through one function.

Each final object is one S3 multipart upload whose parts come from the chunk objects in
index order (:func:`layout`): a run of at least 5 MiB of one chunk object is copied by
S3 itself (``UploadPartCopy`` with a byte range); smaller chunk objects, and the pieces
that top a part up to S3's 5 MiB minimum, are read (ranged ``GetObject``) and uploaded as
one part, so memory stays under 5 MiB plus one read. An output under 5 MiB in all is one
``PutObject``. Every read and copy names the ETag the chunk object had when it was sized,
so an object overwritten meanwhile (a redone chunk) fails the assembly instead of mixing
two versions; the upload is then aborted and the assembly started again.

:class:`Assembler` then marks the completion item ``assembled`` (conditionally: of two
racing assemblers one does it), publishes the optional SNS notification (then marks the
item ``notified``), and deletes the chunk objects. It is idempotent: an assembler that
finds a chunk object gone re-reads the item; when it is ``assembled`` (another one
finished) it only cleans up, and announces the object if no one did (a notification
goes out at least once: an assembler killed between the two writes leaves it to the
redelivery).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol, TypeVar, cast

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.chunks.messages import ChunkKind, chunk_key
from amlproxy.chunks.store import Completion, CompletionStore
from amlproxy.core.retry import Deadline, RetryPolicy, explain
from amlproxy.errors import RetriesExhaustedError, SinkError
from amlproxy.sinks._aws import aws_policy

log = logging.getLogger("amlproxy.chunks")
T = TypeVar("T")
MiB = 1024 * 1024
MIN_PART = 5 * MiB
MAX_PARTS = 10_000  # S3's most parts in one upload
CONTENT_TYPE = "application/x-ndjson"
ATTEMPTS = 3  # assemblies started again when a chunk object changed under one


@dataclass(frozen=True, slots=True)
class Piece:
    """Bytes ``[start, end)`` of chunk object number ``item``."""

    item: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Part:
    """One part: S3 copies ``copy``, or the ``pieces`` are read and uploaded."""

    copy: Piece | None = None
    pieces: tuple[Piece, ...] = ()

    @property
    def size(self) -> int:
        pieces = (self.copy,) if self.copy is not None else self.pieces
        return sum(p.end - p.start for p in pieces if p is not None)


def layout(sizes: Sequence[int], min_part: int = MIN_PART) -> list[Part]:
    """The parts of the concatenation of objects of ``sizes``: each at least ``min_part``
    bytes but the last; a read part never holds more than ``min_part`` bytes."""
    parts: list[Part] = []
    pending: list[Piece] = []
    held = 0
    for item, size in enumerate(sizes):
        offset = 0
        while offset < size:
            rest = size - offset
            if not pending and rest >= min_part:
                parts.append(Part(copy=Piece(item, offset, size)))
                break
            take = min(rest, min_part - held)
            pending.append(Piece(item, offset, offset + take))
            held += take
            offset += take
            if held >= min_part:
                parts.append(Part(pieces=tuple(pending)))
                pending, held = [], 0
    if pending:
        parts.append(Part(pieces=tuple(pending)))
    return parts


class S3Port(Protocol):
    """The S3 client operations the assembler uses (a boto3 ``s3`` client)."""

    def head_object(self, **kwargs: Any) -> Any: ...

    def get_object(self, **kwargs: Any) -> Any: ...

    def put_object(self, **kwargs: Any) -> Any: ...

    def create_multipart_upload(self, **kwargs: Any) -> Any: ...

    def upload_part(self, **kwargs: Any) -> Any: ...

    def upload_part_copy(self, **kwargs: Any) -> Any: ...

    def complete_multipart_upload(self, **kwargs: Any) -> Any: ...

    def abort_multipart_upload(self, **kwargs: Any) -> Any: ...

    def delete_objects(self, **kwargs: Any) -> Any: ...


class TopicPort(Protocol):
    """The SNS client operation the assembler uses (a boto3 ``sns`` client)."""

    def publish(self, **kwargs: Any) -> Any: ...


class ChunkGone(Exception):
    """A chunk object vanished or changed during an assembly (internal)."""


@dataclass
class Target:
    """Where one object version's outputs go: bucket, chunk directory, final keys."""

    bucket: str
    directory: str
    results_key: str
    rejects_key: str

    def final(self, kind: ChunkKind) -> str:
        return self.results_key if kind == "results" else self.rejects_key

    @property
    def uris(self) -> dict[str, str]:
        return {"results": f"s3://{self.bucket}/{self.results_key}",
                "rejects": f"s3://{self.bucket}/{self.rejects_key}"}


class Assembler:
    """Builds the final objects of a completed plan, marks it, announces it, cleans up."""

    def __init__(self, s3: S3Port, store: CompletionStore, *, topic_arn: str | None = None,
                 topic: TopicPort | None = None, retry_policy: RetryPolicy | None = None,
                 deadline: Deadline | None = None) -> None:
        self.s3 = s3
        self.store = store
        self.topic_arn = topic_arn
        self.topic = topic
        self.policy = aws_policy(retry_policy)
        self.deadline = deadline

    def assemble(self, target: Target, completion: Completion) -> dict[str, Any]:
        """Assembles (or finds assembled) the object of ``completion``; a summary."""
        for _ in range(ATTEMPTS):
            if completion.assembled:  # by another, or by this message's earlier delivery
                if not completion.notified:
                    self._announce(completion, completion.totals(), target)
                self.cleanup(target, completion.chunks)
                return {"status": "assembled", "by": "another", **target.uris}
            try:
                for kind in ("results", "rejects"):
                    self._build(target, kind, completion.chunks)
            except ChunkGone as exc:
                log.warning("assembly of %s restarted: %s", completion.source, exc)
                found = self.store.get(completion.source)
                if found is None:
                    raise SinkError(f"the plan of {completion.source} is gone") from exc
                completion = found
                continue
            totals = completion.totals()
            if self.store.assembled(completion.source, totals, target.uris):
                self._announce(completion, totals, target)
            self.cleanup(target, completion.chunks)
            return {"status": "assembled", "by": "this", **totals, **target.uris}
        raise SinkError(f"chunk objects of {completion.source} kept changing: assembly "
                        "left to the redelivery")

    def cleanup(self, target: Target, count: int) -> None:
        """Deletes the chunk objects (1,000 keys per call); a failure is logged only."""
        keys = [chunk_key(target.directory, i, kind) for i in range(count)
                for kind in ("results", "rejects")]
        for start in range(0, len(keys), 1000):
            objects = [{"Key": key} for key in keys[start:start + 1000]]
            try:
                self._call("delete chunk objects in", partial(
                    self.s3.delete_objects, Bucket=target.bucket,
                    Delete={"Objects": objects, "Quiet": True}))
            except SinkError:
                log.warning("cannot delete the chunk objects of %s", target.directory,
                            exc_info=True)

    def _build(self, target: Target, kind: ChunkKind, count: int) -> None:
        bucket, final = target.bucket, target.final(kind)
        keys = [chunk_key(target.directory, i, kind) for i in range(count)]
        heads = [self._read(f"size {key} in", partial(self.s3.head_object, Bucket=bucket,
                                                      Key=key)) for key in keys]
        sizes = [int(h["ContentLength"]) for h in heads]
        etags = [str(h["ETag"]) for h in heads]
        parts = layout(sizes)
        if len(parts) > MAX_PARTS:
            raise SinkError(f"{final} would need {len(parts)} parts (S3 takes {MAX_PARTS}): "
                            "raise AMLPROXY_CHUNK_BYTES")
        if len(parts) <= 1 and (not parts or parts[0].copy is None):
            body = self._gather(bucket, keys, etags, parts[0].pieces if parts else ())
            self._call("put", lambda: self.s3.put_object(
                Bucket=bucket, Key=final, Body=body, ContentType=CONTENT_TYPE))
            return
        upload = self._call("start the upload of", lambda: self.s3.create_multipart_upload(
            Bucket=bucket, Key=final, ContentType=CONTENT_TYPE))["UploadId"]
        try:
            done = [self._part(bucket, final, upload, n, part, keys, etags)
                    for n, part in enumerate(parts, start=1)]
            self._call("complete the upload of", lambda: self.s3.complete_multipart_upload(
                Bucket=bucket, Key=final, UploadId=upload, MultipartUpload={"Parts": done}))
        except BaseException:
            try:
                self._call("abort the upload of", lambda: self.s3.abort_multipart_upload(
                    Bucket=bucket, Key=final, UploadId=upload))
            except SinkError:
                log.warning("cannot abort the upload of %s", final, exc_info=True)
            raise

    def _part(self, bucket: str, final: str, upload: str, number: int, part: Part,
              keys: list[str], etags: list[str]) -> dict[str, Any]:
        if part.copy is not None:
            piece = part.copy
            answer = self._read(f"copy {keys[piece.item]} to", lambda: self.s3.upload_part_copy(
                Bucket=bucket, Key=final, UploadId=upload, PartNumber=number,
                CopySource={"Bucket": bucket, "Key": keys[piece.item]},
                CopySourceRange=f"bytes={piece.start}-{piece.end - 1}",
                CopySourceIfMatch=etags[piece.item]))
            return {"ETag": answer["CopyPartResult"]["ETag"], "PartNumber": number}
        body = self._gather(bucket, keys, etags, part.pieces)
        answer = self._call(f"upload part {number} of", lambda: self.s3.upload_part(
            Bucket=bucket, Key=final, UploadId=upload, PartNumber=number, Body=body))
        return {"ETag": answer["ETag"], "PartNumber": number}

    def _gather(self, bucket: str, keys: list[str], etags: list[str],
                pieces: Sequence[Piece]) -> bytes:
        buffer = io.BytesIO()
        for piece in pieces:
            if piece.end <= piece.start:
                continue
            answer = self._read(f"read {keys[piece.item]} in", partial(
                self.s3.get_object, Bucket=bucket, Key=keys[piece.item],
                Range=f"bytes={piece.start}-{piece.end - 1}", IfMatch=etags[piece.item]))
            buffer.write(answer["Body"].read())
        return buffer.getvalue()

    def _announce(self, completion: Completion, totals: dict[str, int], target: Target) -> None:
        if not self.topic_arn:
            return
        if self.topic is None:
            import boto3

            from amlproxy.sinks._aws import one_attempt_config

            self.topic = cast(TopicPort, boto3.client("sns", config=one_attempt_config()))
        topic: TopicPort = self.topic
        message = orjson.dumps({"object": completion.source, "chunks": completion.chunks,
                                **totals, **target.uris}).decode()
        try:
            self._call("announce", lambda: topic.publish(
                TopicArn=self.topic_arn or "", Message=message,
                Subject="amlproxy: object scored"))
            self.store.notified(completion.source)
        except SinkError:  # a redelivery announces it (the item says it was not)
            log.exception("cannot announce %s on %s", completion.source, self.topic_arn)
            raise

    def _read(self, action: str, call: Callable[[], T]) -> T:
        """A call on a chunk object: gone or changed raises :class:`ChunkGone`."""
        try:
            return self._call(action, call)
        except SinkError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError):
                code = str(cause.response.get("Error", {}).get("Code", ""))
                if code in ("NoSuchKey", "404", "PreconditionFailed", "412", "NoSuchUpload"):
                    raise ChunkGone(f"{action}: {code}") from exc
            raise

    def _call(self, action: str, call: Callable[[], T]) -> T:
        try:
            return self.policy.run(call, deadline=self.deadline)
        except (ClientError, BotoCoreError, RetriesExhaustedError) as exc:
            raise SinkError(f"cannot {action} the chunk assembly: {explain(exc)}") from exc
