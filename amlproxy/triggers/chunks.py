"""The chunk worker (``amlproxy.triggers.chunks.handler``): SQS events of chunk messages.

Each message is one chunk of a large object, planned by the S3 trigger; the worker scores
it, writes its chunk objects, marks it done and, when it is the last, assembles the
object's outputs (:mod:`amlproxy.chunks.work`). The answer is
``{"batchItemFailures": [...]}`` (``ReportBatchItemFailures``): a chunk the deadline cut,
one whose records failed (with ``AMLPROXY_RAISE_ON_FAILED``) and one that met an AWS error
are redelivered by SQS; the redo overwrites what the first attempt wrote.

Any other event, an SQS event of other messages and a malformed chunk message raise
:class:`~amlproxy.errors.UnsupportedEventError` before any chunk is read.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from amlproxy.chunks.messages import ChunkMessage, is_chunk_body, parse_chunk
from amlproxy.errors import UnsupportedEventError
from amlproxy.observability.carriers import sqs_carriers
from amlproxy.triggers._events import short, sqs_bodies
from amlproxy.triggers._runtime import init_trigger, invocation

log = logging.getLogger("amlproxy.triggers")
HANDLER = "chunk"

init_trigger("chunks", __name__)  # under Lambda: the runtime is built now, in the init phase


def chunk_messages(event: Any) -> list[tuple[str, ChunkMessage]]:
    """(messageId, chunk) of every message; :class:`UnsupportedEventError` otherwise."""
    found = []
    for index, (message_id, body) in enumerate(sqs_bodies(event, HANDLER)):
        if not is_chunk_body(body):
            what = (f"an SQS event whose messages are not chunk messages "
                    f"(Records[{index}].body {short(body, 40)})")
            raise UnsupportedEventError(HANDLER, what, own_kind=index > 0)
        try:
            found.append((message_id, parse_chunk(body)))
        except ValueError as exc:
            raise UnsupportedEventError(HANDLER, f"a malformed chunk message: Records[{index}]"
                                        f".body: {exc}", own_kind=True) from exc
    return found


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the chunk worker."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    parent, links = sqs_carriers(records if isinstance(records, list) else ())
    with invocation("chunks", context, parent, links) as runtime:
        room = runtime.chunks
        assert room is not None  # checked by check_trigger
        failures: list[dict[str, str]] = []
        for message_id, chunk in chunk_messages(event):
            if runtime.deadline.expired():
                failures.append({"itemIdentifier": message_id})
                continue
            result = room.worker.handle(chunk)
            if result.report is not None:
                runtime.metrics.add_report(result.report)
            log.info("chunk %d/%d of %s: %s", chunk.index + 1, chunk.count,
                     chunk.object.source, result.status, extra={"summary": result.summary})
            if result.retry:
                failures.append({"itemIdentifier": message_id})
        runtime.metrics.add("BatchItemFailures", len(failures))
        return {"batchItemFailures": failures}
