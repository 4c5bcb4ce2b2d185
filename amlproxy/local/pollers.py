"""The event sources: threads that poll moto's queues and invoke the functions in-process.

=================  ===============================  =========================================
source             queue polled                     invocation
=================  ===============================  =========================================
S3 notifications   the internal s3-events queue     asynchronous: ``triggers.s3.handler``
SNS deliveries     the internal sns-deliveries q.   asynchronous: ``triggers.sns.handler``
SQS work queue     the template's WorkQueue         event source mapping: ``triggers.sqs``
=================  ===============================  =========================================

Asynchronous invocations are retried ``AsyncMaxRetryAttempts`` times as Lambda does (after
1 s and 2 s here, rather than 1 and 2 minutes), then their event goes to the failure queue
in the shape of an OnFailure destination record. An SQS batch deletes the messages the
handler did not report in ``batchItemFailures``; the others come back after the queue's
visibility timeout and, after ``QueueMaxReceiveCount`` receives, move to the dead-letter
queue (moto applies the redrive policy).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson

from amlproxy.local.events import LambdaContext, sns_record, sqs_record

log = logging.getLogger("amlproxy.local")

Handler = Callable[[Mapping[str, Any], Any], Any]
POLL_WAIT_S = 1  # long-poll wait: also how long a stop may take


class QueuePoller(threading.Thread):
    """Polls one queue and hands what arrives to :meth:`dispatch` (subclasses)."""

    function_name = "function"
    batch_size = 10

    def __init__(self, sqs: Any, queue_url: str, handler: Handler) -> None:
        super().__init__(name=f"amlproxy-local-{self.function_name}", daemon=True)
        self.sqs = sqs
        self.queue_url = queue_url
        self.handler = handler
        self.stopping = threading.Event()
        self.invocations = 0

    def run(self) -> None:
        while not self.stopping.is_set():
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=self.batch_size,
                    WaitTimeSeconds=POLL_WAIT_S,
                    AttributeNames=["All"],
                    MessageAttributeNames=["All"],
                ).get("Messages", [])
            except Exception as exc:  # moto going away at shutdown, or a hiccup
                if self.stopping.is_set():
                    return
                log.warning("%s: polling failed: %s", self.function_name, exc)
                self.stopping.wait(1.0)
                continue
            if messages:
                try:
                    self.dispatch(messages)
                except Exception:
                    log.exception("%s: dispatch failed", self.function_name)

    def stop(self) -> None:
        self.stopping.set()

    def delete(self, messages: list[dict[str, Any]]) -> None:
        if messages:
            self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                for i, m in enumerate(messages)])

    def dispatch(self, messages: list[dict[str, Any]]) -> None:
        raise NotImplementedError


class AsyncInvoker(QueuePoller):
    """Invokes the function asynchronously, once per message, with Lambda's retries."""

    def __init__(self, sqs: Any, queue_url: str, handler: Handler, *, retries: int,
                 failure_queue_url: str) -> None:
        super().__init__(sqs, queue_url, handler)
        self.retries = retries
        self.failure_queue_url = failure_queue_url

    def event_of(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        raise NotImplementedError

    def dispatch(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            try:
                body = orjson.loads(message.get("Body", ""))
                event = self.event_of(body) if isinstance(body, dict) else None
            except orjson.JSONDecodeError:
                event = None
            if event is not None:
                self.invoke(event)
            self.delete([message])

    def invoke(self, event: dict[str, Any]) -> None:
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stopping.wait(float(attempt))
            self.invocations += 1
            started = time.perf_counter()
            try:
                result = self.handler(event, LambdaContext(self.function_name))
            except Exception as exc:
                error = exc
                log.warning("%s: invocation failed (attempt %d of %d): %s",
                            self.function_name, attempt + 1, self.retries + 1, exc)
                continue
            log.info("%s: %s (%.0f ms)", self.function_name, _brief(result),
                     (time.perf_counter() - started) * 1000)
            return
        assert error is not None
        self._to_failure_queue(event, error, self.retries + 1)

    def _to_failure_queue(self, event: dict[str, Any], error: Exception, attempts: int) -> None:
        context = LambdaContext(self.function_name)
        record = {
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "requestContext": {
                "requestId": context.aws_request_id,
                "functionArn": context.invoked_function_arn + ":$LATEST",
                "condition": "RetriesExhausted",
                "approximateInvokeCount": attempts,
            },
            "requestPayload": event,
            "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                                "functionError": "Unhandled"},
            "responsePayload": {"errorMessage": str(error), "errorType": type(error).__name__},
        }
        self.sqs.send_message(QueueUrl=self.failure_queue_url,
                              MessageBody=orjson.dumps(record, default=str).decode())
        log.error("%s: gave up after %d attempts; event sent to the failure queue",
                  self.function_name, attempts)


class S3Notifications(AsyncInvoker):
    """S3 ``ObjectCreated`` notifications -> ``amlproxy.triggers.s3.handler``."""

    function_name = "S3Function"

    def event_of(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        records = body.get("Records")
        if not isinstance(records, list):  # s3:TestEvent when the notification is set
            return None
        return {"Records": [_as_s3_encodes(r) for r in records]}


class SnsDeliveries(AsyncInvoker):
    """SNS notifications -> ``amlproxy.triggers.sns.handler``, one per invocation."""

    function_name = "SnsFunction"
    subscription_arn = ""

    def event_of(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        if body.get("Type") != "Notification":
            return None
        return {"Records": [sns_record(body, self.subscription_arn)]}


class SqsEventSource(QueuePoller):
    """The work queue's event source mapping -> ``amlproxy.triggers.sqs.handler``, with
    ``ReportBatchItemFailures``."""

    function_name = "SqsFunction"

    def __init__(self, sqs: Any, queue_url: str, handler: Handler, *, queue_arn: str,
                 batch_size: int) -> None:
        super().__init__(sqs, queue_url, handler)
        self.queue_arn = queue_arn
        self.batch_size = max(1, min(batch_size, 10))

    def dispatch(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [sqs_record(m, self.queue_arn) for m in messages]}
        self.invocations += 1
        try:
            result = self.handler(event, LambdaContext(self.function_name))
        except Exception as exc:  # the whole batch comes back after the visibility timeout
            log.warning("%s: invocation failed: %s", self.function_name, exc)
            return
        failed = {f.get("itemIdentifier") for f in (result or {}).get("batchItemFailures", [])}
        self.delete([m for m in messages if m["MessageId"] not in failed])
        log.info("%s: %d message(s), %d failed", self.function_name, len(messages), len(failed))


def _as_s3_encodes(record: Any) -> Any:
    """moto percent-encodes the ``/`` of the key too (``input%2Fa.csv``); S3 keeps it and
    writes a space as ``+`` (``input/a+b.csv``): re-encode the key as S3 does."""
    try:
        obj = record["s3"]["object"]
        key = quote_plus(unquote_plus(str(obj["key"])), safe="/")
    except (KeyError, TypeError):
        return record
    return {**record, "s3": {**record["s3"], "object": {**obj, "key": key}}}


def _brief(result: Any) -> str:
    if isinstance(result, dict):
        if "records" in result:
            return f"records {result['records']}"
        if "messages" in result:
            return f"{len(result['messages'])} message(s) scored"
    return "done"
