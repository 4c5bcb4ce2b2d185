"""The SNS trigger (``amlproxy.triggers.sns.handler``).

Each notification's ``Message`` is scored as described in
:mod:`amlproxy.triggers._messages`: records under the source id ``sns:<MessageId>``
(line = 1-based index in the message), or the S3 objects it points to. Results go to the
configured sinks: DynamoDB, callback, and with ``s3`` the objects
``<output prefix>sns/<MessageId>.predictions.jsonl`` / ``<rejects prefix>...rejects.jsonl``
in ``AMLPROXY_OUTPUT_BUCKET``.

SNS invokes Lambda asynchronously: when records failed (backend or sink trouble) the
handler raises :class:`EventIncompleteError` after every notification was handled, so
that Lambda retries; bad input is rejected, not retried.
"""

from __future__ import annotations

from typing import Any

from amlproxy.errors import EventIncompleteError
from amlproxy.triggers._events import records_of, text_at
from amlproxy.triggers._messages import needs_retry, score_message
from amlproxy.triggers._runtime import init_trigger, invocation

init_trigger("sns", __name__)  # under Lambda: the runtime is built now, in the init phase


def notifications(event: Any) -> list[tuple[str, str]]:
    """(MessageId, Message) of every notification of an SNS event; any other event, or a
    malformed one, raises :class:`~amlproxy.errors.UnsupportedEventError`."""
    found = []
    for index, record in enumerate(records_of(event, "SNS", "aws:sns")):
        where: dict[str, Any] = {"handler": "SNS", "kind": "SNS", "index": index}
        message_id = text_at(record, "Sns.MessageId", **where)
        found.append((message_id, text_at(record, "Sns.Message", **where)))  # never empty
    return found


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the SNS trigger."""
    with invocation("sns", context) as runtime:
        messages = [
            score_message(runtime, message, source=f"sns:{message_id}",
                          stem=f"sns/{message_id}")
            for message_id, message in notifications(event)
        ]
        summary = {"messages": messages}
        strict = runtime.settings.raise_on_failed
        retry = [
            m["source"] for m in messages
            if m["status"] in ("error", "interrupted") or (strict and needs_retry(m))
        ]
        if retry:
            raise EventIncompleteError(
                f"event incomplete: {len(retry)} message(s) not fully scored: "
                + ", ".join(retry),
                summary,
            )
        return summary
