"""HTTP callback sink: POSTs batches of result rows to a webhook, Standard Webhooks signed.

Each message is JSON (orjson)::

    {"type": "amlproxy.results", "timestamp": "2024-05-01T12:00:00.000Z",
     "data": {"count": 2, "rows": [{"key": "s3://b/k#1", "label": ">50K", ...}, ...]}}

with the headers ``webhook-id`` (derived from the rows' outcome keys: a replay of the same
input sends the same id, so the receiver can drop duplicates), ``webhook-timestamp`` and
``webhook-signature`` (see :mod:`amlproxy.sinks._webhook`; receivers check deliveries with
:func:`verify`).

Delivery: https only, to an address checked by :mod:`amlproxy.sinks._ssrf` (resolved once
per attempt, connected to directly, no rebinding window), TLS verified, redirects never
followed. 2xx is success. 5xx, 429 and connection trouble are retried with exponential
backoff and jitter (honouring ``Retry-After``), up to ``max_attempts``; anything else
(3xx, 4xx, certificate errors) fails at once. A batch that cannot be delivered raises
:class:`SinkWriteError` naming the keys of the rows that were not sent.
"""

from __future__ import annotations

import http.client
import random
import socket
import ssl
import time
from collections.abc import Callable, MutableMapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson

from amlproxy.core.outcome import Outcome, Status, StatusFilter, parse_statuses
from amlproxy.core.writers import reject_row, result_row
from amlproxy.errors import ConfigurationError, SinkWriteError
from amlproxy.sinks._ssrf import Resolver, Target, check_url, resolve_target
from amlproxy.sinks._webhook import message_id, secret_key, verify, webhook_headers

__all__ = ["CallbackSink", "verify"]

_MAX_RESPONSE_READ = 64 * 1024
_USER_AGENT = "amlproxy-callback/1"


class _AttemptFailed(Exception):
    """One delivery attempt failed; internal, surfaces as a SinkWriteError."""

    def __init__(self, reason: str, *, retryable: bool, retry_after_s: float | None = None):
        super().__init__(reason)
        self.retryable = retryable
        self.retry_after_s = retry_after_s


class CallbackSink:
    """POSTs outcomes as signed JSON batches to an https webhook.

    ``secrets``: ``whsec_<base64>`` secrets; the first signs, the others are also used
    during a rotation. ``statuses``: what is sent (``("ok",)`` by default). ``batch_size``:
    rows per message. ``allow_private=True`` lifts the address guard (local tests only);
    ``resolver`` replaces DNS resolution; ``ssl_context`` replaces the default verifying
    context (e.g. one that trusts a test CA). ``trace_headers`` adds the trace context to
    each delivery's headers (the tracer's ``inject``: W3C ``traceparent``).

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
        max_attempts: int = 5,
        batch_size: int = 100,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        trace_headers: Callable[[MutableMapping[str, str]], None] | None = None,
    ) -> None:
        if not secrets:
            raise ConfigurationError("CallbackSink needs at least one whsec_ secret")
        for secret in secrets:
            secret_key(secret)  # refuse a malformed secret now, not at the first delivery
        if max_attempts < 1 or batch_size < 1 or timeout_s <= 0:
            raise ConfigurationError("max_attempts, batch_size and timeout_s must be positive")
        self._allow_private = allow_private
        self._resolver = resolver
        target = check_url(url, allow_private=allow_private)  # names resolve per delivery
        self.url = url
        self.name = f"callback:{target.host}"
        self.secrets = tuple(secrets)
        self.statuses = parse_statuses(statuses, who="CallbackSink")
        self.event_type = event_type
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.batch_size = batch_size
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.count = 0  # rows delivered
        self.deliveries = 0  # messages delivered
        self._context = ssl_context or ssl.create_default_context()
        self._sleep = sleep
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
            except _AttemptFailed as exc:
                unsent = keys + [o.key for o in kept[start + self.batch_size :]]
                raise SinkWriteError(self.name, str(exc), unsent, written=start) from exc
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
        for attempt in range(1, self.max_attempts + 1):
            headers = webhook_headers(msg_id, body, self.secrets, timestamp=int(self._clock()))
            try:
                self._post(body, headers)
                return
            except _AttemptFailed as exc:
                if not exc.retryable:
                    raise _AttemptFailed(
                        f"{exc} (attempt {attempt}, not retried)", retryable=False
                    ) from exc
                if attempt == self.max_attempts:
                    raise _AttemptFailed(
                        f"{exc} (gave up after {attempt} attempts)", retryable=False
                    ) from exc
                delay = self._backoff(attempt)
                if exc.retry_after_s is not None:
                    delay = max(delay, min(exc.retry_after_s, self.backoff_cap_s))
            self._sleep(delay)

    def _post(self, body: bytes, headers: dict[str, str]) -> None:
        try:  # per attempt: DNS answers change. A refused address raises ConfigurationError.
            target = resolve_target(
                self.url, resolver=self._resolver, allow_private=self._allow_private
            )
        except OSError as exc:
            reason = f"cannot resolve the callback host: {exc}"
            raise _AttemptFailed(reason, retryable=True) from exc
        request_headers = {
            **headers,
            "content-type": "application/json",
            "user-agent": _USER_AGENT,
        }
        if self._trace_headers is not None:  # the tracer's traceparent, on every attempt
            self._trace_headers(request_headers)
        status, retry_after = self._send(target, body, request_headers)
        if 200 <= status < 300:
            return
        if status == 429 or status >= 500:
            raise _AttemptFailed(f"HTTP {status}", retryable=True, retry_after_s=retry_after)
        if 300 <= status < 400:
            raise _AttemptFailed(f"HTTP {status}: redirects are not followed", retryable=False)
        raise _AttemptFailed(f"HTTP {status}", retryable=False)

    def _send(
        self, target: Target, body: bytes, headers: dict[str, str]
    ) -> tuple[int, float | None]:
        """POSTs once, trying the checked addresses in order; returns status, Retry-After."""
        last: Exception | None = None
        for address in target.addresses:
            conn = _PinnedHTTPSConnection(
                target.host, target.port, address, timeout=self.timeout_s, context=self._context
            )
            try:
                conn.request("POST", target.path, body=body, headers=headers)
                response = conn.getresponse()
                response.read(_MAX_RESPONSE_READ)
                return response.status, _retry_after(response.getheader("retry-after"))
            except ssl.SSLCertVerificationError as exc:
                raise _AttemptFailed(
                    f"TLS certificate refused: {exc.verify_message}", retryable=False
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                last = exc
            finally:
                conn.close()
        raise _AttemptFailed(f"{type(last).__name__}: {last}", retryable=True) from last

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (1 << (attempt - 1)))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """An HTTPS connection to a given IP address, with SNI, certificate verification and
    the Host header of the original name: no DNS lookup happens here."""

    def __init__(
        self, host: str, port: int, address: str, *, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(host, port, timeout=timeout, context=context)
        self._address = address
        self._tls = context

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        try:
            self.sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise


def _row(outcome: Outcome) -> dict[str, Any]:
    """The writers' flat rows: :func:`result_row` for ``ok``, :func:`reject_row` else."""
    return result_row(outcome) if outcome.status is Status.OK else reject_row(outcome)


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: ignored, the backoff applies
