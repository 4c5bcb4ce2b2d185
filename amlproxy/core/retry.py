"""The one retry layer of amlproxy: exponential backoff with full jitter, an attempt cap
and a deadline, on top of tenacity.

Every backend wraps each endpoint call in :meth:`RetryPolicy.call`, and so do the sinks and
the triggers' AWS calls (DynamoDB unprocessed items, S3 parts, callback deliveries). botocore's
own retries are switched off with ``retries={"total_max_attempts": 1}`` (botocore's
``max_attempts`` counts retries: ``{"max_attempts": 1}`` would still make two calls), so a
call is never attempted more often than :attr:`RetryPolicy.max_attempts`.

What is worth another attempt is decided once, by the policy's ``retryable`` predicate:
:class:`~amlproxy.errors.RetryableBackendError` (throttling, 5xx, connection trouble) by
default; the adapters that call AWS or an HTTP receiver pass their own classification (the
core imports no SDK). Then:

- a retryable error is retried after a sleep drawn uniformly from
  ``[0, min(max_delay_s, base_delay_s * 2**n))`` ("full jitter"), ``n`` being the number of
  failed attempts so far minus one. An error that carries a ``retry_after_s`` hint (a
  receiver's ``Retry-After``) waits at least that long, but never more than ``max_delay_s``;
- when the cap is reached, or when the next sleep would end past the deadline, the policy
  gives up: a :class:`~amlproxy.errors.BackendError` becomes
  :class:`~amlproxy.errors.RetriesExhaustedError` (``why`` = ``"max attempts"`` or
  ``"deadline"``) carrying the last error and the number of attempts; any other error is
  re-raised as it was, with a note (``add_note``) saying how many attempts were made and why
  the policy stopped (:func:`gave_up_note` reads it back);
- a non-retryable :class:`~amlproxy.errors.BackendError` is raised at once, with
  ``attempts`` set; other non-retryable errors propagate untouched;
- a deadline that passed before the first attempt raises :class:`RetriesExhaustedError`
  with ``attempts=0`` and makes no call at all: the record was not tried, so it is not
  done rather than failed (:func:`never_attempted`).

A Lambda invocation's :class:`Deadline` lies a margin before its timeout: the lesser of
:data:`MARGIN_CAP_S` and :data:`MARGIN_FRACTION` of the time left when the invocation
starts (``AMLPROXY_DEADLINE_MARGIN_S`` overrides it), so that every timeout the template
allows (3 s to 900 s) leaves time both to work and to finish (commit or abort the
outputs, answer) before the runtime kills the process. Each endpoint call's read timeout
is bounded by the time left to the deadline (:func:`amlproxy.backends._aws.bound_by_deadline`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from amlproxy.errors import (
    BackendError,
    ConfigurationError,
    RetriesExhaustedError,
    RetryableBackendError,
)

if TYPE_CHECKING:  # tenacity is imported at the first retry, not at a cold start
    from tenacity import RetryCallState, Retrying

T = TypeVar("T")

WHY_MAX_ATTEMPTS = "max attempts"
WHY_DEADLINE = "deadline"
_NOTE_PREFIX = "amlproxy retry: "

Retryable = Callable[[BaseException], bool]
"""``retryable(error)``: whether another attempt may cure ``error``."""


def retryable_backend_error(error: BaseException) -> bool:
    """The default classification: :class:`RetryableBackendError` and its subclasses."""
    return isinstance(error, RetryableBackendError)


def gave_up_note(error: BaseException) -> str | None:
    """What the policy noted on a non-backend error it gave up on ("gave up after 3
    attempt(s): max attempts"), None if it did not."""
    for note in getattr(error, "__notes__", ()):
        if isinstance(note, str) and note.startswith(_NOTE_PREFIX):
            return note.removeprefix(_NOTE_PREFIX)
    return None


def stopped_by_deadline(error: BaseException) -> bool:
    """Whether the policy gave up on ``error`` because of the deadline."""
    if isinstance(error, RetriesExhaustedError):
        return error.why == WHY_DEADLINE
    note = gave_up_note(error)
    return note is not None and note.endswith(f": {WHY_DEADLINE}")


def explain(error: BaseException) -> str:
    """``str(error)``, followed by the policy's note in parentheses when it gave up on it."""
    note = gave_up_note(error)
    return f"{error} ({note})" if note else str(error)


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

    __slots__ = ("_at", "_margin", "clock")

    def __init__(self, at: float | None = None, *, clock: Callable[[], float] = time.monotonic):
        self.clock = clock
        self._at = at
        self._margin = 0.0  # how long before the hard end (the Lambda timeout) it is

    @property
    def at(self) -> float | None:
        """The deadline on :attr:`clock`'s scale, None for none."""
        return self._at

    def set_remaining(self, seconds: float | None, *, margin_s: float = 0.0) -> None:
        """Expire ``seconds - margin_s`` from now; None removes the deadline."""
        self._at = None if seconds is None else self.clock() + seconds - margin_s
        self._margin = margin_s

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
        at = self.at
        return None if at is None else at - self.clock()

    def expired(self) -> bool:
        at = self.at
        return at is not None and self.clock() >= at

    def capped(self, seconds: float) -> Deadline:
        """A new deadline ``seconds`` from now, or this one if it comes first (a bound on
        one piece of work, such as a callback delivery, inside the invocation's deadline)."""
        end = self.clock() + seconds
        at = self.at
        return Deadline(end if at is None else min(at, end), clock=self.clock)

    def into_margin(self, share: float) -> Deadline:
        """A live view of this deadline, ``share`` (0..1) of its margin later: when the
        pipeline stops scoring at this deadline, the sinks may still write what was scored
        until the view expires; the rest of the margin is left for ending the run."""
        return _IntoMargin(self, share)

    def __repr__(self) -> str:
        return f"Deadline(remaining={self.remaining()!r})"


class _IntoMargin(Deadline):
    """See :meth:`Deadline.into_margin`; follows every reset of the deadline it views."""

    __slots__ = ("_base", "_share")

    def __init__(self, base: Deadline, share: float) -> None:
        super().__init__(clock=base.clock)
        self._base = base
        self._share = share

    @property
    def at(self) -> float | None:
        base = self._base
        self.clock = base.clock  # (tests replace a deadline's clock)
        at = base.at
        return None if at is None else at + base._margin * self._share

    def set_remaining(self, seconds: float | None, *, margin_s: float = 0.0) -> None:
        raise TypeError("a view of another deadline: reset that one")


@dataclass
class RetryPolicy:
    """How often and how patiently a call is retried. Thread-safe: one policy serves every
    worker thread of a backend.

    ``retryable`` classifies errors (see the module docstring); :meth:`with_retryable`
    makes a policy that shares everything else, the deadline included. ``sleep`` is
    injectable for tests; ``seed`` makes the jitter reproducible (unseeded, it comes from
    ``random.SystemRandom``, see :func:`make_rng`).
    """

    max_attempts: int = 5
    base_delay_s: float = 0.05
    max_delay_s: float = 5.0
    deadline: Deadline = field(default_factory=Deadline)
    seed: int | None = None
    sleep: Callable[[float], None] = time.sleep
    retryable: Retryable = retryable_backend_error

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigurationError("retry delays must be >= 0")
        self._rng = make_rng(self.seed)
        self._retrying: Retrying | None = None  # built at the first retry

    def _tenacity(self) -> Retrying:
        """The tenacity controller of the retries (built once, at the first retry: a call
        that succeeds at once never needs it, and importing tenacity costs a cold start)."""
        retrying = self._retrying
        if retrying is None:
            from tenacity import Retrying, retry_if_exception

            retrying = self._retrying = Retrying(
                sleep=self.sleep,
                stop=self._should_stop,
                wait=self._backoff,
                retry=retry_if_exception(self.retryable),
                retry_error_callback=self._give_up,
            )
        return retrying

    def with_retryable(self, retryable: Retryable) -> RetryPolicy:
        """The same policy (attempts, delays, the same deadline object) classifying errors
        with ``retryable``."""
        return replace(self, retryable=retryable)

    def backoff_bound(self, failures: int) -> float:
        """The upper bound of the sleep after ``failures`` failed attempts (>= 1)."""
        return min(self.max_delay_s, self.base_delay_s * 2.0 ** (failures - 1))

    def call(self, fn: Callable[[], T], *, deadline: Deadline | None = None) -> tuple[T, int]:
        """Run ``fn`` until it returns, retrying what :attr:`retryable` accepts.

        Returns ``(result, attempts)``. Raises the non-retryable
        :class:`~amlproxy.errors.BackendError` itself, or :class:`RetriesExhaustedError`;
        both carry ``attempts``. Other errors propagate untouched when not retryable, or
        with a note when the policy gave up on them (see the module docstring).
        ``deadline`` replaces the policy's own for this call (see :meth:`Deadline.capped`).
        Not re-entrant: ``fn`` must not call this policy.
        """
        deadline = self.deadline if deadline is None else deadline
        if deadline.expired():
            before = BackendError(
                "the deadline passed before the first attempt", code="DeadlineExceeded", attempts=0
            )
            raise RetriesExhaustedError(before, attempts=0, why=WHY_DEADLINE)
        # The first attempt runs outside tenacity (its bookkeeping costs about a tenth of
        # a Predict call's CPU): tenacity takes over once it failed, starting from it.
        try:
            return fn(), 1
        except Exception as exc:
            if not self.retryable(exc):
                if isinstance(exc, BackendError):
                    exc.attempts = 1
                raise
            first: Exception | None = exc
        attempts = 1

        def attempt() -> T:
            nonlocal attempts, first
            if first is not None:  # tenacity's attempt 1: the one that just failed
                failed, first = first, None
                raise failed
            attempts += 1
            return fn()

        retrying = self._tenacity()
        if deadline is not self.deadline:
            retrying = retrying.copy(stop=lambda state: self._should_stop(state, deadline))
        try:
            result: T = retrying(attempt)
        except RetriesExhaustedError:
            raise
        except BackendError as exc:
            exc.attempts = attempts
            raise
        return result, attempts

    def run(self, fn: Callable[[], T], *, deadline: Deadline | None = None) -> T:
        """:meth:`call` without the attempt count."""
        return self.call(fn, deadline=deadline)[0]

    # ------------------------------------------------------------ tenacity hooks

    def _backoff(self, state: RetryCallState) -> float:
        delay = self._rng.uniform(0.0, self.backoff_bound(state.attempt_number))
        outcome = state.outcome
        hint = getattr(outcome.exception(), "retry_after_s", None) if outcome else None
        if isinstance(hint, int | float) and hint > delay:
            delay = min(float(hint), self.max_delay_s)  # honoured up to the cap
        return delay

    def _should_stop(self, state: RetryCallState, deadline: Deadline | None = None) -> bool:
        if state.attempt_number >= self.max_attempts:
            return True
        remaining = (deadline or self.deadline).remaining()
        return remaining is not None and remaining <= state.upcoming_sleep

    def _give_up(self, state: RetryCallState) -> Any:
        outcome = state.outcome
        assert outcome is not None
        last = outcome.exception()
        assert last is not None
        attempts = state.attempt_number
        why = WHY_MAX_ATTEMPTS if attempts >= self.max_attempts else WHY_DEADLINE
        if not isinstance(last, BackendError):
            last.add_note(f"{_NOTE_PREFIX}gave up after {attempts} attempt(s): {why}")
            raise last
        last.attempts = attempts
        raise RetriesExhaustedError(last, attempts=attempts, why=why) from last
