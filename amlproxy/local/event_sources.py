"""The event sources of the local service: SQS event source mappings, and the queues that
stand in for S3 notifications and SNS subscriptions.

=================  ========================================  ===========================
source             polled                                    invocation
=================  ========================================  ===========================
SQS mapping        the template's queue (``Events: SQS``)    synchronous, a batch each
S3 notifications   ``amlproxy-local-s3-<Function>``          asynchronous (retries,
SNS deliveries     ``amlproxy-local-sns-<Function>``         OnFailure), one per message
=================  ========================================  ===========================

An SQS mapping runs ``MaximumConcurrency`` pollers (at most the function's concurrency;
2 at least, as Lambda): each receives up to ``BatchSize`` messages, invokes the function
with them and waits for its outcome. When the function succeeds the batch is deleted;
with ``ReportBatchItemFailures`` only the messages not reported in ``batchItemFailures``
are (an invalid report fails the whole batch, as Lambda does). What is not deleted comes
back after the queue's visibility timeout, and moto moves it to the dead-letter queue
after ``maxReceiveCount`` receives.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote_plus, unquote_plus

import orjson

from amlproxy.local.events import sns_record, sqs_record
from amlproxy.local.functions import SqsMapping
from amlproxy.local.runtime_api import Outcome
from amlproxy.local.service import LambdaService

log = logging.getLogger("amlproxy.local")
POLL_WAIT_S = 1  # long-poll wait: also how long a stop may take
ClientFactory = Callable[[str], Any]  # service name -> boto3 client


class QueuePoller:
    """Threads that poll one queue and hand each receive to :meth:`dispatch`."""

    batch_size = 10

    def __init__(self, name: str, sqs: ClientFactory, queue_url: str, threads: int = 1) -> None:
        self.name = name
        self.queue_url = queue_url
        self.stopping = threading.Event()
        self.received = 0
        self.deleted = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(sqs("sqs"),), daemon=True,
                                          name=f"{name}-poller-{i}") for i in range(threads)]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _run(self, sqs: Any) -> None:
        while not self.stopping.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=min(self.batch_size, 10),
                    WaitTimeSeconds=POLL_WAIT_S, AttributeNames=["All"],
                    MessageAttributeNames=["All"]).get("Messages", [])
            except Exception as exc:  # moto going away at shutdown, or a hiccup
                if self.stopping.is_set():
                    return
                log.warning("%s: polling %s failed: %s", self.name, self.queue_url, exc)
                self.stopping.wait(1.0)
                continue
            if not messages:
                continue
            with self._lock:
                self.received += len(messages)
            try:
                self.delete(sqs, self.dispatch(messages))
            except Exception:
                log.exception("%s: dispatch failed", self.name)

    def delete(self, sqs: Any, messages: list[dict[str, Any]]) -> None:
        if not messages:
            return
        sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=[
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        with self._lock:
            self.deleted += len(messages)

    def dispatch(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Handle a receive; the messages to delete."""
        raise NotImplementedError

    def stop(self) -> None:
        self.stopping.set()

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)


class SqsEventSource(QueuePoller):
    """An SQS event source mapping of ``function`` (see the module docstring)."""

    def __init__(self, service: LambdaService, function: str, mapping: SqsMapping,
                 sqs: ClientFactory, queue_url: str) -> None:
        pool = service.pool(function)
        concurrency = min(mapping.maximum_concurrency or pool.concurrency, pool.concurrency)
        super().__init__(function, sqs, queue_url, threads=max(2, concurrency))
        self.service = service
        self.mapping = mapping
        self.batch_size = max(1, mapping.batch_size)
        self.batches = 0
        self.failed_messages = 0  # left for redelivery

    def dispatch(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        event = {"Records": [sqs_record(as_s3_sends_it(m), self.mapping.queue_arn)
                             for m in messages]}
        outcome = self.service.invoke(self.name, event)
        keep = messages_to_redeliver(outcome, messages, self.mapping.report_batch_item_failures)
        with self._lock:
            self.batches += 1
            self.failed_messages += len(keep)
        if keep:
            log.warning("%s: %d of %d message(s) left for redelivery (%s)", self.name, len(keep),
                        len(messages), outcome.error_type or "batchItemFailures")
        kept = {id(m) for m in keep}
        return [m for m in messages if id(m) not in kept]


def messages_to_redeliver(outcome: Outcome, messages: list[dict[str, Any]],
                          report_batch_item_failures: bool) -> list[dict[str, Any]]:
    """The messages of a batch that stay on the queue after ``outcome``."""
    if outcome.failed:
        return messages
    if not report_batch_item_failures:
        return []
    if outcome.payload.strip() in (b"", b"null"):
        return []
    answer = outcome.json()
    if answer == {}:
        return []
    if not isinstance(answer, dict):
        return messages  # not an SQSBatchResponse: the whole batch failed
    failures = answer.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return messages  # an invalid report fails the whole batch
    by_id = {m["MessageId"]: m for m in messages}
    keep = []
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in by_id:
            return messages
        keep.append(by_id[identifier])
    return keep


class NotificationSource(QueuePoller):
    """An internal queue of S3 notifications or SNS deliveries -> asynchronous invokes."""

    def __init__(self, service: LambdaService, function: str, kind: str, sqs: ClientFactory,
                 queue_url: str, subscription_arn: str = "") -> None:
        super().__init__(function, sqs, queue_url)
        self.service = service
        self.kind = kind
        self.subscription_arn = subscription_arn

    def dispatch(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for message in messages:
            try:
                body = orjson.loads(message.get("Body", ""))
            except orjson.JSONDecodeError:
                continue
            event = self.event_of(body) if isinstance(body, dict) else None
            if event is not None:
                self.service.invoke_async(self.name, event)
        return messages

    def event_of(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        if self.kind == "sns":
            if body.get("Type") != "Notification":
                return None
            return {"Records": [sns_record(body, self.subscription_arn)]}
        records = body.get("Records")
        if not isinstance(records, list):  # s3:TestEvent when the notification is set
            return None
        return {"Records": [_as_s3_encodes(r) for r in records]}


def as_s3_sends_it(message: dict[str, Any]) -> dict[str, Any]:
    """A message of an S3 notification that moto delivered to a queue (S3 -> SQS, as the
    template's IngestQueue), with its keys encoded as S3 encodes them (and the body's MD5
    to match); any other message as it is."""
    body = message.get("Body", "")
    if '"aws:s3"' not in body:
        return message
    try:
        notification = orjson.loads(body)
    except orjson.JSONDecodeError:
        return message
    records = notification.get("Records") if isinstance(notification, dict) else None
    if not isinstance(records, list):
        return message
    sent = orjson.dumps({**notification, "Records": [_as_s3_encodes(r) for r in records]})
    md5 = hashlib.md5(sent, usedforsecurity=False).hexdigest()  # SQS's own checksum
    return {**message, "Body": sent.decode(), "MD5OfBody": md5}


def _as_s3_encodes(record: Any) -> Any:
    """moto percent-encodes the ``/`` of the key too (``input%2Fa.csv``); S3 keeps it and
    writes a space as ``+`` (``input/a+b.csv``): re-encode the key as S3 does."""
    try:
        obj = record["s3"]["object"]
        key = quote_plus(unquote_plus(str(obj["key"])), safe="/")
    except (KeyError, TypeError):
        return record
    return {**record, "s3": {**record["s3"], "object": {**obj, "key": key}}}
