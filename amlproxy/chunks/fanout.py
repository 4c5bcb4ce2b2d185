"""Fan-out: the planner records an object's plan and sends one message per chunk.

:meth:`Planner.fan_out` takes the body of the object version (streamed once by
:func:`~amlproxy.chunks.plan.plan_stream`), then:

1. reads the completion item: an object already ``assembled`` needs nothing; a plan
   already recorded (an earlier delivery of the same notification, cut midway) is reused
   with its ``chunk_bytes``, so the re-plan gives the same chunks;
2. records the plan (a conditional put: of two racing planners one records it, the
   other reuses it);
3. sends the messages of the chunks not yet done to the chunk queue with
   ``SendMessageBatch``, 10 per call; entries SQS did not take are sent again.

Every call runs under the one retry policy and stops at the deadline. A planner cut
midway leaves the notification unacknowledged: its redelivery plans and sends again,
and a chunk message sent twice is harmless (the chunk objects are keyed, the completion
set is a set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.chunks.messages import ChunkMessage, ObjectVersion
from amlproxy.chunks.plan import PlanFormat, plan_stream
from amlproxy.chunks.store import CompletionStore
from amlproxy.core.line_reader import SupportsReadBytes
from amlproxy.core.retry import Deadline, RetryPolicy, explain
from amlproxy.errors import RetriesExhaustedError, SinkError
from amlproxy.sinks._aws import aws_retryable

log = logging.getLogger("amlproxy.chunks")
BATCH = 10  # SendMessageBatch's most entries


class QueuePort(Protocol):
    """The SQS client operation the planner uses (a boto3 ``sqs`` client)."""

    def send_message_batch(self, **kwargs: Any) -> Any: ...


class _Unsent(Exception):
    """Entries of a SendMessageBatch that SQS did not take (retried)."""

    def __init__(self, failed: list[dict[str, Any]]) -> None:
        super().__init__(f"{len(failed)} message(s) not taken: "
                         + "; ".join(str(f.get("Message") or f.get("Code")) for f in failed[:3]))
        self.ids = {str(f["Id"]) for f in failed}


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _Unsent) or aws_retryable(error)


@dataclass
class Planner:
    """Plans objects into chunks and sends their messages to ``queue_url``."""

    store: CompletionStore
    queue_url: str
    queue: QueuePort | None = None
    retry_policy: RetryPolicy | None = None
    deadline: Deadline | None = None

    def __post_init__(self) -> None:
        if self.queue is None:
            import boto3

            from amlproxy.sinks._aws import one_attempt_config

            self.queue = cast(QueuePort, boto3.client("sqs", config=one_attempt_config()))
        self._policy = (self.retry_policy or RetryPolicy()).with_retryable(_retryable)

    def fan_out(self, obj: ObjectVersion, body: SupportsReadBytes, *, fmt: PlanFormat,
                chunk_bytes: int, header: bool) -> dict[str, Any]:
        """Plans ``obj`` (its ``body``) and sends its chunk messages; a summary."""
        source = obj.plan_id
        existing = self.store.get(source)
        if existing is not None and existing.assembled:
            return {"status": "assembled", "chunks": existing.chunks, "sent": 0}
        size = existing.chunk_bytes if existing is not None else chunk_bytes
        plan = plan_stream(body, format=fmt, chunk_bytes=size, header=header)
        recorded = self.store.plan(source, chunks=len(plan.spans), chunk_bytes=size, fmt=fmt)
        if recorded.chunks != len(plan.spans) or recorded.chunk_bytes != size:
            raise SinkError(f"{source} was planned meanwhile with {recorded.chunk_bytes} bytes "
                            "per chunk: the redelivery re-plans with them")
        if recorded.assembled:
            return {"status": "assembled", "chunks": recorded.chunks, "sent": 0}
        messages = [m for m in ChunkMessage.of_plan(obj, plan, fmt)
                    if m.index not in recorded.done]
        for start in range(0, len(messages), BATCH):
            self._send(messages[start:start + BATCH])
        log.info("planned %s: %d chunk(s), %d sent", source, len(plan.spans), len(messages),
                 extra={"chunks": len(plan.spans), "chunk_bytes": size, "size": plan.size})
        return {"status": "planned", "chunks": len(plan.spans), "sent": len(messages),
                "chunk_bytes": size, "size": plan.size}

    def _send(self, messages: list[ChunkMessage]) -> None:
        pending = {str(m.index): m.to_json() for m in messages}
        queue = self.queue
        assert queue is not None

        def send() -> None:
            entries = [{"Id": key, "MessageBody": body} for key, body in pending.items()]
            answer = queue.send_message_batch(QueueUrl=self.queue_url, Entries=entries)
            for ok in answer.get("Successful", ()):
                pending.pop(str(ok["Id"]), None)
            failed = [f for f in answer.get("Failed", ()) if str(f.get("Id")) in pending]
            if failed:
                raise _Unsent(failed)

        try:
            self._policy.run(send, deadline=self.deadline)
        except (_Unsent, ClientError, BotoCoreError, RetriesExhaustedError) as exc:
            raise SinkError(f"cannot send chunk messages to {self.queue_url}: "
                            f"{explain(exc)}") from exc
