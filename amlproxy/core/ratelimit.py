"""A client-side, thread-safe token bucket: keeps callers under an endpoint's request rate
instead of provoking its throttling (Amazon ML allows 200 requests/s per endpoint)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up (default: one).

    :meth:`acquire` takes a token, sleeping until it is due. Waiting callers reserve their
    token under the lock and sleep outside it, so they are served in arrival order and
    never spin. With the default burst of one, successive calls are spaced by ``1/rate``.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.burst
        self._stamp = clock()

    def acquire(self, timeout: float | None = None) -> bool:
        """Take one token, waiting for it if needed. Returns False, taking nothing, when
        the wait would exceed ``timeout`` seconds."""
        with self._lock:
            now = self._clock()
            tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            wait = 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate
            if timeout is not None and wait > timeout:
                self._tokens, self._stamp = tokens, now
                return False
            self._tokens, self._stamp = tokens - 1.0, now
        if wait > 0:
            self._sleep(wait)
        return True
