"""HTTP callback sink: POSTs batches of result rows to a webhook, Standard Webhooks signed.

Each message is JSON (orjson)::

    {"type": "amlproxy.results", "timestamp": "2024-05-01T12:00:00.000Z",
     "data": {"count": 2, "rows": [{"key": "s3://b/k#1", "label": ">50K", ...}, ...]}}

with the headers ``webhook-id`` (derived from the rows' outcome keys: a replay of the same
input sends the same id, so the receiver can drop duplicates), ``webhook-timestamp`` and
``webhook-signature`` (see :mod:`amlproxy.sinks._webhook`; receivers check deliveries with
:func:`verify`).

Delivery: https only, to a port the sink allows (443 unless configured otherwise) and an
address checked by :mod:`amlproxy.sinks._ssrf` (resolved once per attempt, connected to
directly, no rebinding window), TLS verified, redirects never followed. 2xx is success.
5xx, 429 and connection trouble are retried under the one
:class:`~amlproxy.core.retry.RetryPolicy`; a ``Retry-After`` (in seconds) is honoured up to
the policy's ``max_delay_s`` and only while time is left; anything else (3xx, 4xx,
certificate errors) fails at once. ``timeout_s`` bounds a whole delivery, every attempt and
every read included (:mod:`amlproxy.sinks._https`), and the invocation's deadline bounds it
too: no attempt starts after it. A batch that cannot be delivered raises
:class:`SinkWriteError` naming the keys of the rows that were not sent.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Collection, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from amlproxy.core.outcome import Outcome, Status, StatusFilter, parse_statuses
from amlproxy.core.retry import Deadline, RetryPolicy, explain, stopped_by_deadline
from amlproxy.core.writers import reject_row, result_row
from amlproxy.errors import ConfigurationError, RetriesExhaustedError, SinkError, SinkWriteError
from amlproxy.sinks._https import Answer, post
from amlproxy.sinks._ssrf import DEFAULT_PORTS, Resolver, check_url, resolve_target
from amlproxy.sinks._webhook import message_id, secret_key, verify, webhook_headers

__all__ = ["CallbackSink", "verify"]

_USER_AGENT = "amlproxy-callback/1"


class _AttemptFailed(SinkError):
    """One delivery attempt failed; internal, surfaces as a SinkWriteError."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class CallbackSink:
    """POSTs outcomes as signed JSON batches to an https webhook.

    ``secrets``: ``whsec_<base64>`` secrets; the first signs, the others are also used
    during a rotation. ``statuses``: what is sent (``("ok",)`` by default). ``batch_size``:
    rows per message. ``timeout_s``: the most one delivery (all its attempts) may take.
    ``retry_policy``: attempts, delays and the invocation's deadline. ``allowed_ports``:
    the ports the URL may name (443 only by default). ``allow_private=True`` lifts the
    address guard (local tests only); ``resolver`` replaces DNS resolution;
    ``ssl_context`` replaces the default verifying context (e.g. one that trusts a test CA);
    ``trace_headers`` adds the trace context to each delivery's headers (the tracer's
    ``inject``: W3C ``traceparent``).

    ``write`` delivers before it returns; nothing is buffered between calls.
    """

    def __init__(
        self,
        url: str,
        *,
        secrets: Sequence[str],
        statuses: StatusFilter = ("ok",),
        event_type: str = "amlproxy.results",
        timeout_s: float = 10.0,
        batch_size: int = 100,
        retry_policy: RetryPolicy | None = None,
        allowed_ports: Collection[int] = DEFAULT_PORTS,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        clock: Callable[[], float] = time.time,
        trace_headers: Callable[[MutableMapping[str, str]], None] | None = None,
    ) -> None:
        if not secrets:
            raise ConfigurationError("CallbackSink needs at least one whsec_ secret")
        for secret in secrets:
            secret_key(secret)  # refuse a malformed secret now, not at the first delivery
        if batch_size < 1 or timeout_s <= 0:
            raise ConfigurationError("batch_size and timeout_s must be positive")
        self._guard: dict[str, Any] = {"allow_private": allow_private, "ports": allowed_ports}
        self._resolver = resolver
        target = check_url(url, **self._guard)  # names resolve per delivery
        self.url = url
        self.name = f"callback:{target.host}"
        self.secrets = tuple(secrets)
        self.statuses = parse_statuses(statuses, who="CallbackSink")
        self.event_type = event_type
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.retry_policy = (retry_policy or RetryPolicy()).with_retryable(_retryable)
        self.count = 0  # rows delivered
        self.deliveries = 0  # messages delivered
        self._window_is_the_invocations = False  # the last delivery's bound was the deadline
        self._context = ssl_context or ssl.create_default_context()
        self._clock = clock
        self._trace_headers = trace_headers

    def write(self, outcomes: Sequence[Outcome]) -> None:
        kept = [o for o in outcomes if o.status in self.statuses]
        for start in range(0, len(kept), self.batch_size):
            batch = kept[start : start + self.batch_size]
            keys = [o.key for o in batch]
            body = self._body(batch)
            try:
                self._deliver(message_id(self.event_type, keys), body)
            except (_AttemptFailed, RetriesExhaustedError) as exc:
                unsent = keys + [o.key for o in kept[start + self.batch_size :]]
                reason = explain(exc)
                if isinstance(exc, _AttemptFailed) and not exc.retryable:
                    reason += " (not retried)"
                # the policy stopped at the invocation's deadline (not at timeout_s, the
                # delivery's own bound): an interruption, which the redo delivers again
                cut = stopped_by_deadline(exc) and self._window_is_the_invocations
                raise SinkWriteError(self.name, reason, unsent, written=start,
                                     deadline=cut) from exc
            self.count += len(batch)
            self.deliveries += 1

    def close(self) -> None:
        """Nothing to flush: every ``write`` is delivered before it returns."""

    def abort(self) -> None:
        """Nothing to discard: delivered messages carry stable ids, a retry re-sends them
        with the same ids and the receiver drops the duplicates."""

    # ---------------------------------------------------------------- internals

    def _body(self, batch: Sequence[Outcome]) -> bytes:
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        rows = [_row(o) for o in batch]
        message = {
            "type": self.event_type,
            "timestamp": now,
            "data": {"count": len(rows), "rows": rows},
        }
        return orjson.dumps(message, default=str)

    def _deliver(self, msg_id: str, body: bytes) -> None:
        """Delivers one message under the policy, within ``timeout_s`` and the deadline."""
        invocation = self.retry_policy.deadline
        window = invocation.capped(self.timeout_s)
        self._window_is_the_invocations = invocation.at is not None and window.at == invocation.at
        self.retry_policy.run(lambda: self._attempt(msg_id, body, window), deadline=window)

    def _headers(self, msg_id: str, body: bytes) -> list[tuple[str, str]]:
        """Every header of one attempt but Host and Content-Length: signed per attempt."""
        headers: dict[str, str] = {
            **webhook_headers(msg_id, body, self.secrets, timestamp=int(self._clock())),
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
        }
        if self._trace_headers is not None:  # the tracer's traceparent, on every attempt
            self._trace_headers(headers)
        return list(headers.items())

    def _attempt(self, msg_id: str, body: bytes, window: Deadline) -> None:
        try:  # per attempt: DNS answers change. A refused address raises ConfigurationError.
            target = resolve_target(self.url, resolver=self._resolver, **self._guard)
        except OSError as exc:
            reason = f"cannot resolve the callback host: {exc}"
            raise _AttemptFailed(reason, retryable=True) from exc
        headers = self._headers(msg_id, body)
        answer = self._send(target.addresses, lambda address: post(
            target, address, body, headers, context=self._context, deadline=window))
        status = answer.status
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            retry_after = _retry_after(answer.headers.get("retry-after"))
            raise _AttemptFailed(f"HTTP {status}", retryable=True, retry_after_s=retry_after)
        if 300 <= status < 400:
            raise _AttemptFailed(f"HTTP {status}: redirects are not followed", retryable=False)
        raise _AttemptFailed(f"HTTP {status}", retryable=False)

    @staticmethod
    def _send(addresses: Sequence[str], post_to: Callable[[str], Answer]) -> Answer:
        """Tries the checked addresses in order; the first that answers wins."""
        last: OSError | None = None
        for address in addresses:
            try:
                return post_to(address)
            except ssl.SSLCertVerificationError as exc:
                raise _AttemptFailed(
                    f"TLS certificate refused: {exc.verify_message}", retryable=False
                ) from exc
            except OSError as exc:
                last = exc
        raise _AttemptFailed(f"{type(last).__name__}: {last}", retryable=True) from last


def _row(outcome: Outcome) -> dict[str, Any]:
    """The writers' flat rows: :func:`result_row` for ``ok``, :func:`reject_row` else."""
    return result_row(outcome) if outcome.status is Status.OK else reject_row(outcome)


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _AttemptFailed) and error.retryable


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignored, the backoff applies
