"""The SQS trigger (``amlproxy.triggers.sqs.handler``), with partial batch failures.

Each message body is scored as described in :mod:`amlproxy.triggers._messages`; a body
that is an SNS notification (SNS -> SQS subscription without raw delivery) is unwrapped
first. The source id is ``sns:<MessageId>`` for a wrapped notification (the same id
whichever queue or redelivery brings it), else ``sqs:<messageId>``. Any other event, and an
SQS event with a record lacking its ``messageId`` or ``body``, raise
:class:`~amlproxy.errors.UnsupportedEventError` before any message is scored, as does an
SQS event of chunk messages (:mod:`amlproxy.triggers.chunks` handles those).

The answer is ``{"batchItemFailures": [{"itemIdentifier": messageId}, ...]}`` (the event
source mapping needs ``FunctionResponseTypes: [ReportBatchItemFailures]``): a message is
a failure when some of its records FAILED (backend or sink trouble, which a redelivery
may cure), when an object it points to could not be read, or when the deadline came
first. Bad input is not a failure: it goes to the rejects output with its reason, since
a redelivery would not fix it. On a FIFO queue, the messages after the first failure are
reported too, unprocessed, to keep the group's order.

A small loop rather than Powertools' BatchProcessor: the semantics above are ours, and
the import would add 0.1-0.25 s to a cold start.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from amlproxy.chunks.messages import is_chunk_body
from amlproxy.errors import UnsupportedEventError
from amlproxy.observability.carriers import sqs_carriers
from amlproxy.triggers._events import records_of, text_at
from amlproxy.triggers._messages import needs_retry, score_message
from amlproxy.triggers._runtime import Runtime, init_trigger, invocation

log = logging.getLogger("amlproxy.triggers")

init_trigger("sqs", __name__)  # under Lambda: the runtime is built now, in the init phase


def messages(event: Any) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(messageId, body, record) of every message of an SQS event; any other event, or a
    malformed one, raises :class:`~amlproxy.errors.UnsupportedEventError`."""
    found = []
    for index, record in enumerate(records_of(event, "SQS", "aws:sqs")):
        where: dict[str, Any] = {"handler": "SQS", "kind": "SQS", "index": index}
        message_id = text_at(record, "messageId", **where)
        body = text_at(record, "body", **where)  # never empty
        if is_chunk_body(body):  # the chunk worker's, not records to score
            raise UnsupportedEventError("SQS", f"an SQS event of chunk messages (Records[{index}]"
                                        ".body): they are the chunk worker's")
        found.append((message_id, body, record))
    return found


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the SQS trigger."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    parent, links = sqs_carriers(records if isinstance(records, list) else ())
    with invocation("sqs", context, parent, links) as runtime:
        failures: list[dict[str, str]] = []
        fifo_blocked = False
        for message_id, body, record in messages(event):
            if fifo_blocked or runtime.deadline.expired():
                failures.append({"itemIdentifier": message_id})
                continue
            if not _handle(runtime, body, message_id):
                failures.append({"itemIdentifier": message_id})
                fifo_blocked = str(record.get("eventSourceARN", "")).endswith(".fifo")
        runtime.metrics.add("BatchItemFailures", len(failures))
        return {"batchItemFailures": failures}


def _handle(runtime: Runtime, body: str, message_id: str) -> bool:
    """Scores one message; False if it must be redelivered."""
    source, stem = f"sqs:{message_id}", f"sqs/{message_id}"
    unwrapped = unwrap_sns(body)
    if unwrapped is not None:
        sns_id, body = unwrapped
        source, stem = f"sns:{sns_id}", f"sns/{sns_id}"
    try:
        summary = score_message(runtime, body, source=source, stem=stem)
    except Exception:
        log.exception("message %s could not be scored", message_id)
        return False
    if needs_retry(summary):
        log.warning("message %s will be redelivered", message_id, extra={"summary": summary})
        return False
    return True


def unwrap_sns(body: str) -> tuple[str, str] | None:
    """(MessageId, Message) of an SNS notification delivered to SQS as JSON (raw message
    delivery off), else None: the body is then the message itself."""
    if '"Notification"' not in body:
        return None
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if (
        isinstance(doc, dict)
        and doc.get("Type") == "Notification"
        and isinstance(doc.get("Message"), str)
        and isinstance(doc.get("MessageId"), str)
        and doc["MessageId"]
        and "TopicArn" in doc
    ):
        return doc["MessageId"], doc["Message"]
    return None
