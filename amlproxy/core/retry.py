"""The one retry layer of amlproxy: exponential backoff with full jitter, an attempt cap
and a deadline, on top of tenacity.

Every backend wraps each endpoint call in :meth:`RetryPolicy.call`. botocore's own retries
are switched off with ``retries={"total_max_attempts": 1}`` (botocore's ``max_attempts``
counts retries: ``{"max_attempts": 1}`` would still make two calls), so a record is never
attempted more often than :attr:`RetryPolicy.max_attempts`.

- :class:`~amlproxy.errors.RetryableBackendError` (throttling, 5xx, connection trouble) is
  retried after a sleep drawn uniformly from ``[0, min(max_delay_s, base_delay_s * 2**n))``
  ("full jitter"), ``n`` being the number of failed attempts so far minus one;
- any other :class:`~amlproxy.errors.BackendError` is raised at once, with ``attempts`` set;
- when the cap is reached, or when the next sleep would end past the deadline, the policy
  raises :class:`~amlproxy.errors.RetriesExhaustedError` (``why`` = ``"max attempts"`` or
  ``"deadline"``) carrying the last error and the number of attempts. When the deadline
  passed before the first attempt, ``attempts`` is 0: the record was not tried, so it is
  not done rather than failed (:func:`never_attempted`).

A Lambda invocation's :class:`Deadline` lies a margin before its timeout: the lesser of
:data:`MARGIN_CAP_S` and :data:`MARGIN_FRACTION` of the time left when the invocation
starts (``AMLPROXY_DEADLINE_MARGIN_S`` overrides it), so that every timeout the template
allows (3 s to 900 s) leaves time both to work and to finish (abort or checkpoint the
outputs, answer) before the runtime kills the process. Each endpoint call's read timeout
is bounded by the time left to the deadline (:func:`amlproxy.backends._aws.bound_by_deadline`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type

from amlproxy.errors import (
    BackendError,
    ConfigurationError,
    RetriesExhaustedError,
    RetryableBackendError,
)

T = TypeVar("T")

WHY_MAX_ATTEMPTS = "max attempts"
WHY_DEADLINE = "deadline"
MARGIN_CAP_S = 10.0
MARGIN_FRACTION = 0.2


def derived_margin(remaining_s: float) -> float:
    """The deadline margin of an invocation with ``remaining_s`` seconds left at its start:
    the lesser of :data:`MARGIN_CAP_S` and :data:`MARGIN_FRACTION` of it (0.6 s of a 3 s
    timeout, 5.8 s of the API's 29 s, 10 s from a 50 s timeout on)."""
    return max(0.0, min(MARGIN_CAP_S, remaining_s * MARGIN_FRACTION))


def never_attempted(error: BaseException) -> bool:
    """Whether ``error`` says that the deadline came before the first attempt (the record
    is not done, and must not be reported as failed)."""
    return (isinstance(error, RetriesExhaustedError) and error.attempts == 0
            and error.why == WHY_DEADLINE)


def make_rng(seed: int | None) -> random.Random:
    """A seeded generator (reproducible), else ``random.SystemRandom``: no state to share
    between the copies a SnapStart snapshot restores."""
    return random.Random(seed) if seed is not None else random.SystemRandom()


class Deadline:
    """A point in time (on a monotonic clock) after which no attempt starts.

    Shared and mutable: a Lambda handler resets it at each invocation with
    :meth:`set_from_lambda_context`; ``Deadline()`` alone never expires.
    """

    __slots__ = ("_at", "clock")

    def __init__(self, at: float | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._at = at

    @property
    def at(self) -> float | None:
        """The deadline on :attr:`clock`'s scale, None for none."""
        return self._at

    def set_remaining(self, seconds: float | None, *, margin_s: float = 0.0) -> None:
        """Expire ``seconds - margin_s`` from now; None removes the deadline."""
        self._at = None if seconds is None else self.clock() + seconds - margin_s

    def set_from_lambda_context(self, context: Any, *, margin_s: float | None = None) -> None:
        """Expire ``margin_s`` (default: :func:`derived_margin` of the time left) before the
        Lambda invocation times out.

        ``context`` is the handler's context object; without a
        ``get_remaining_time_in_millis`` method (local runs) the deadline is removed.
        """
        remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
        if remaining_ms is None:
            self.set_remaining(None)
            return
        remaining = remaining_ms() / 1000.0
        margin = derived_margin(remaining) if margin_s is None else margin_s
        self.set_remaining(remaining, margin_s=margin)

    def remaining(self) -> float | None:
        """Seconds left (negative once expired), None without a deadline."""
        at = self._at
        return None if at is None else at - self.clock()

    def expired(self) -> bool:
        at = self._at
        return at is not None and self.clock() >= at

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining()!r})"


@dataclass
class RetryPolicy:
    """How often and how patiently a backend call is retried. Thread-safe: one policy
    serves every worker thread of a backend.

    ``sleep`` is injectable for tests; ``seed`` makes the jitter reproducible (unseeded,
    it comes from ``random.SystemRandom``, see :func:`make_rng`).
    """

    max_attempts: int = 5
    base_delay_s: float = 0.05
    max_delay_s: float = 5.0
    deadline: Deadline = field(default_factory=Deadline)
    seed: int | None = None
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigurationError("retry delays must be >= 0")
        self._rng = make_rng(self.seed)
        self._retrying = Retrying(
            sleep=self.sleep,
            stop=self._should_stop,
            wait=self._backoff,
            retry=retry_if_exception_type(RetryableBackendError),
            retry_error_callback=self._give_up,
        )

    def backoff_bound(self, failures: int) -> float:
        """The upper bound of the sleep after ``failures`` failed attempts (>= 1)."""
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** (failures - 1))

    def call(self, fn: Callable[[], T]) -> tuple[T, int]:
        """Run ``fn`` until it returns, retrying :class:`RetryableBackendError`.

        Returns ``(result, attempts)``. Raises the non-retryable
        :class:`~amlproxy.errors.BackendError` itself, or :class:`RetriesExhaustedError`;
        both carry ``attempts``. Exceptions that are not backend errors (bugs) propagate
        untouched after one attempt. Not re-entrant: ``fn`` must not call this policy.
        """
        if self.deadline.expired():
            before = BackendError(
                "the deadline passed before the first attempt", code="DeadlineExceeded", attempts=0
            )
            raise RetriesExhaustedError(before, attempts=0, why=WHY_DEADLINE)
        attempts = 0

        def attempt() -> T:
            nonlocal attempts
            attempts += 1
            return fn()

        try:
            result: T = self._retrying(attempt)
        except RetriesExhaustedError:
            raise
        except BackendError as exc:
            exc.attempts = attempts
            raise
        return result, attempts

    # ------------------------------------------------------------ tenacity hooks

    def _backoff(self, state: RetryCallState) -> float:
        return self._rng.uniform(0.0, self.backoff_bound(state.attempt_number))

    def _should_stop(self, state: RetryCallState) -> bool:
        if state.attempt_number >= self.max_attempts:
            return True
        remaining = self.deadline.remaining()
        return remaining is not None and remaining <= state.upcoming_sleep

    def _give_up(self, state: RetryCallState) -> Any:
        outcome = state.outcome
        assert outcome is not None
        last = outcome.exception()
        assert isinstance(last, BackendError)
        attempts = state.attempt_number
        last.attempts = attempts
        why = WHY_MAX_ATTEMPTS if attempts >= self.max_attempts else WHY_DEADLINE
        raise RetriesExhaustedError(last, attempts=attempts, why=why) from last
