"""Asynchronous invokes (S3 notifications, SNS, ``InvocationType=Event``), as Lambda runs them.

Lambda puts an asynchronous event in an internal queue and answers 202 at once. The
event is then invoked; when the function fails (an error, a timeout, a crash or an init
error) it is invoked again, up to ``MaximumRetryAttempts`` more times (Lambda waits about
1 and then 2 minutes; the local service waits ``async_retry_delays_s``, 1 s and 2 s by
default), with the same request id. After the last attempt, or when the event is older
than ``MaximumEventAgeInSeconds``, an invocation record goes to the OnFailure destination
(an SQS queue or an SNS topic)::

    {"version": "1.0", "timestamp": "...",
     "requestContext": {"requestId": "...", "functionArn": "...:function:F:$LATEST",
                        "condition": "RetriesExhausted", "approximateInvokeCount": 3},
     "requestPayload": {...the event...},
     "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                         "functionError": "Unhandled"},
     "responsePayload": {"errorType": "...", "errorMessage": "..."}}
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from amlproxy.local.pool import FunctionPool
from amlproxy.local.runtime_api import Outcome

log = logging.getLogger("amlproxy.local")
Destination = Callable[[str, bytes], None]  # (ARN, message body)


@dataclass
class AsyncEvent:
    """One queued asynchronous event and its attempts so far."""

    payload: bytes
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    received: float = field(default_factory=time.monotonic)
    attempts: int = 0


class AsyncInvoker:
    """The internal event queue of one function, served by ``threads`` threads."""

    def __init__(self, pool: FunctionPool, delays_s: tuple[float, ...],
                 send: Destination | None) -> None:
        self.pool = pool
        self.config = pool.spec.async_config
        self.delays_s = delays_s or (0.0,)
        self.send = send
        self.pending = 0  # queued, in flight or waiting for a retry
        self._queue: queue.Queue[AsyncEvent | None] = queue.Queue()
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self._threads = [threading.Thread(target=self._serve, daemon=True,
                                          name=f"async-{pool.spec.name}-{i}")
                         for i in range(pool.concurrency)]
        for thread in self._threads:
            thread.start()

    def submit(self, payload: bytes) -> str:
        """Queue an event (Lambda's 202); its request id."""
        event = AsyncEvent(payload)
        with self._lock:
            self.pending += 1
        self._queue.put(event)
        return event.request_id

    def _serve(self) -> None:
        while (event := self._queue.get()) is not None:
            try:
                self._attempt(event)
            except Exception:  # a destination that cannot be reached: keep serving
                log.exception("%s: asynchronous invoke failed", self.pool.spec.name)
                self._done()

    def _attempt(self, event: AsyncEvent) -> None:
        event.attempts += 1
        outcome = self.pool.invoke(event.payload, request_id=event.request_id)
        if not outcome.failed:
            self._done()
            return
        age = time.monotonic() - event.received
        retries_left = event.attempts <= self.config.maximum_retry_attempts
        if retries_left and age < self.config.maximum_event_age_s and not self._stopped:
            delay = self.delays_s[min(event.attempts, len(self.delays_s)) - 1]
            self.pool.count("async_retries")
            log.warning("%s: asynchronous invoke %s failed (%s, attempt %d): retry in %.1f s",
                        self.pool.spec.name, event.request_id, outcome.error_type,
                        event.attempts, delay)
            self._later(delay, event)
            return
        condition = "RetriesExhausted" if not retries_left else "EventAgeExceeded"
        self._on_failure(event, outcome, condition)
        self._done()

    def _later(self, delay: float, event: AsyncEvent) -> None:
        def put() -> None:
            with self._lock:
                self._timers.discard(timer)
            self._queue.put(event)

        timer = threading.Timer(delay, put)
        timer.daemon = True
        with self._lock:
            self._timers.add(timer)
        timer.start()

    def _on_failure(self, event: AsyncEvent, outcome: Outcome, condition: str) -> None:
        destination = self.config.on_failure_arn
        log.error("%s: asynchronous event %s failed %d time(s) (%s)%s", self.pool.spec.name,
                  event.request_id, event.attempts, condition,
                  f": sent to {destination}" if destination else ": dropped (no OnFailure)")
        if destination is None or self.send is None:
            return
        record = on_failure_record(self.pool.arn, event, outcome, condition)
        self.send(destination, orjson.dumps(record))
        self.pool.count("on_failure")

    def _done(self) -> None:
        with self._lock:
            self.pending -= 1

    def stop(self) -> None:
        self._stopped = True
        with self._lock:
            timers = list(self._timers)
        for timer in timers:
            timer.cancel()
        for _ in self._threads:
            self._queue.put(None)


def on_failure_record(function_arn: str, event: AsyncEvent, outcome: Outcome,
                      condition: str) -> dict[str, Any]:
    """Lambda's invocation record for an OnFailure destination."""
    try:
        request_payload: Any = orjson.loads(event.payload)
    except orjson.JSONDecodeError:
        request_payload = event.payload.decode("utf-8", "replace")
    return {
        "version": "1.0",
        "timestamp": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": f"{function_arn}:$LATEST",
            "condition": condition,
            "approximateInvokeCount": event.attempts,
        },
        "requestPayload": request_payload,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST",
                            "functionError": "Unhandled"},
        "responsePayload": outcome.json(),
    }
