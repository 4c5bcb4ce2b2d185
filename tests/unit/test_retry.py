"""The retry policy, on a fake clock: backoff bounds, jitter, attempt cap, deadline."""

from __future__ import annotations

import random
import statistics
import threading
from collections.abc import Callable
from types import SimpleNamespace

import pytest

from amlproxy.core.retry import (
    Deadline,
    RetryPolicy,
    derived_margin,
    explain,
    gave_up_note,
    make_rng,
    never_attempted,
)
from amlproxy.errors import (
    ConfigurationError,
    EndpointServerError,
    InvalidRecordError,
    RetriesExhaustedError,
    ThrottledError,
)


class FakeClock:
    """A monotonic clock that only moves when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


def policy_on(clock: FakeClock, **kwargs: object) -> RetryPolicy:
    kwargs.setdefault("deadline", Deadline(clock=clock))
    return RetryPolicy(sleep=clock.sleep, **kwargs)  # type: ignore[arg-type]


def failing(times: int, error: Callable[[], Exception], result: str = "ok") -> Callable[[], str]:
    calls = {"n": 0}

    def fn() -> str:
        calls["n"] += 1
        if calls["n"] <= times:
            raise error()
        return result

    fn.calls = calls  # type: ignore[attr-defined]
    return fn


def throttled() -> Exception:
    return ThrottledError("slow down", code="ThrottlingException", status=400)


def test_success_first_time_takes_one_attempt_and_no_sleep() -> None:
    clock = FakeClock()
    assert policy_on(clock).call(lambda: 42) == (42, 1)
    assert clock.sleeps == []


def test_retryable_errors_are_retried_with_bounded_backoff() -> None:
    clock = FakeClock()
    policy = policy_on(clock, max_attempts=6, base_delay_s=0.1, max_delay_s=0.5, seed=1)
    fn = failing(5, throttled)
    assert policy.call(fn) == ("ok", 6)
    assert len(clock.sleeps) == 5
    for failures, slept in enumerate(clock.sleeps, start=1):
        assert 0.0 <= slept <= min(0.5, 0.1 * 2 ** (failures - 1))
    assert [policy.backoff_bound(n) for n in range(1, 6)] == [0.1, 0.2, 0.4, 0.5, 0.5]


def test_full_jitter_spreads_over_the_whole_range_and_is_seeded() -> None:
    def draws(seed: int) -> list[float]:
        clock = FakeClock()
        policy = policy_on(clock, max_attempts=2, base_delay_s=1.0, max_delay_s=1.0, seed=seed)
        for _ in range(2000):
            with pytest.raises(RetriesExhaustedError):
                policy.call(failing(10, throttled))
        return clock.sleeps

    sleeps = draws(7)
    assert len(sleeps) == 2000
    assert min(sleeps) < 0.02 and max(sleeps) > 0.98  # full jitter: from ~0 to the bound
    assert 0.45 < statistics.fmean(sleeps) < 0.55
    assert draws(7) == sleeps
    assert draws(8) != sleeps


def test_attempt_cap_gives_up_with_the_last_error() -> None:
    clock = FakeClock()
    fn = failing(100, lambda: EndpointServerError("boom", code="InternalFailure", status=500))
    with pytest.raises(RetriesExhaustedError) as info:
        policy_on(clock, max_attempts=4).call(fn)
    err = info.value
    assert err.why == "max attempts"
    assert err.attempts == 4 and err.last.attempts == 4
    assert fn.calls["n"] == 4  # type: ignore[attr-defined]
    assert len(clock.sleeps) == 3
    assert isinstance(err.last, EndpointServerError)
    assert err.code == "InternalFailure" and err.status == 500


def test_non_retryable_error_is_attempted_once() -> None:
    clock = FakeClock()
    fn = failing(100, lambda: InvalidRecordError("bad", code="InvalidInputException"))
    with pytest.raises(InvalidRecordError) as info:
        policy_on(clock).call(fn)
    assert info.value.attempts == 1
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]
    assert clock.sleeps == []


def test_non_retryable_after_retryable_counts_every_attempt() -> None:
    clock = FakeClock()
    errors = iter([throttled(), throttled(), InvalidRecordError("bad")])

    def fn() -> str:
        raise next(errors)

    with pytest.raises(InvalidRecordError) as info:
        policy_on(clock).call(fn)
    assert info.value.attempts == 3


def test_other_exceptions_are_not_retried() -> None:
    clock = FakeClock()
    fn = failing(100, lambda: KeyError("bug"))
    with pytest.raises(KeyError):
        policy_on(clock).call(fn)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]


def test_deadline_stops_before_a_sleep_that_would_cross_it() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    deadline.set_remaining(1.0)
    end = clock.now + 1.0
    starts: list[float] = []

    def fn() -> str:
        starts.append(clock.now)
        raise throttled()

    policy = policy_on(clock, max_attempts=100, base_delay_s=0.2, max_delay_s=0.4,
                       deadline=deadline, seed=3)
    with pytest.raises(RetriesExhaustedError) as info:
        policy.call(fn)
    assert info.value.why == "deadline"
    assert info.value.attempts == len(starts) > 1
    assert all(t < end for t in starts)
    assert clock.now <= end  # no sleep was taken past the deadline


def test_expired_deadline_means_no_attempt_at_all() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    deadline.set_remaining(5.0, margin_s=5.0)
    assert deadline.expired()
    fn = failing(0, throttled)
    with pytest.raises(RetriesExhaustedError) as info:
        policy_on(clock, deadline=deadline).call(fn)
    assert info.value.why == "deadline" and info.value.attempts == 0
    assert fn.calls["n"] == 0  # type: ignore[attr-defined]


def test_deadline_from_a_lambda_context_and_reset() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    assert deadline.remaining() is None and not deadline.expired()
    deadline.set_from_lambda_context(
        SimpleNamespace(get_remaining_time_in_millis=lambda: 30_000), margin_s=5.0
    )
    assert deadline.remaining() == pytest.approx(25.0)
    clock.now += 25.0
    assert deadline.expired()
    deadline.set_from_lambda_context(object())  # not a Lambda context: no deadline
    assert deadline.remaining() is None and not deadline.expired()


def test_bad_settings_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ConfigurationError):
        RetryPolicy(base_delay_s=-1)


def test_one_policy_serves_many_threads_with_separate_attempt_counts() -> None:
    policy = RetryPolicy(max_attempts=10, base_delay_s=0.0005, max_delay_s=0.001)
    results: dict[int, tuple[str, int]] = {}

    def work(i: int) -> None:
        results[i] = policy.call(failing(i % 5, throttled, result=str(i)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: (str(i), i % 5 + 1) for i in range(40)}


# ------------------------------------------------------------ any error, classified once


class Blip(Exception):
    """A non-backend error an adapter calls retryable (as the sinks' classifiers do)."""

    def __init__(self, retry_after_s: float | None = None) -> None:
        super().__init__("blip")
        self.retry_after_s = retry_after_s


def blips(error: BaseException) -> bool:
    return isinstance(error, Blip)


def test_a_retryable_predicate_retries_errors_outside_the_backend_tree() -> None:
    clock = FakeClock()
    policy = policy_on(clock, max_attempts=4).with_retryable(blips)
    assert policy.call(failing(3, Blip)) == ("ok", 4)
    assert len(clock.sleeps) == 3
    fn = failing(100, throttled)  # the default classification is replaced, not extended
    with pytest.raises(ThrottledError):
        policy.call(fn)
    assert fn.calls["n"] == 1  # type: ignore[attr-defined]


def test_giving_up_on_a_non_backend_error_re_raises_it_with_a_note() -> None:
    clock = FakeClock()
    policy = policy_on(clock, max_attempts=3).with_retryable(blips)
    with pytest.raises(Blip) as info:
        policy.run(failing(100, Blip))
    assert gave_up_note(info.value) == "gave up after 3 attempt(s): max attempts"
    assert explain(info.value) == "blip (gave up after 3 attempt(s): max attempts)"
    assert gave_up_note(Blip()) is None and explain(Blip()) == "blip"


def test_with_retryable_shares_the_deadline_and_settings() -> None:
    clock = FakeClock()
    base = policy_on(clock, max_attempts=7, base_delay_s=0.3, max_delay_s=0.9)
    other = base.with_retryable(blips)
    assert other.deadline is base.deadline
    assert (other.max_attempts, other.base_delay_s, other.max_delay_s) == (7, 0.3, 0.9)
    base.deadline.set_remaining(0.0)
    with pytest.raises(RetriesExhaustedError):
        other.call(lambda: "never")


def test_retry_after_is_waited_for_but_never_beyond_max_delay() -> None:
    clock = FakeClock()
    policy = policy_on(clock, max_attempts=4, base_delay_s=0.01, max_delay_s=2.0, seed=5)
    errors = iter([Blip(retry_after_s=1.5), Blip(retry_after_s=99999.0), Blip(), None])

    def fn() -> str:
        error = next(errors)
        if error is not None:
            raise error
        return "ok"

    assert policy.with_retryable(blips).call(fn) == ("ok", 4)
    assert clock.sleeps[:2] == [1.5, 2.0]
    assert clock.sleeps[2] <= 0.04  # no hint: the backoff alone


def test_retry_after_beyond_the_time_left_stops_at_once() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    deadline.set_remaining(3.0)
    policy = policy_on(clock, max_delay_s=10.0, deadline=deadline).with_retryable(blips)
    with pytest.raises(Blip) as info:
        policy.call(failing(100, lambda: Blip(retry_after_s=5.0)))
    assert gave_up_note(info.value) == "gave up after 1 attempt(s): deadline"
    assert clock.sleeps == []


def test_a_per_call_deadline_narrows_the_policy_deadline() -> None:
    clock = FakeClock()
    policy = policy_on(clock, max_attempts=1000, base_delay_s=0.1, max_delay_s=0.1)
    window = policy.deadline.capped(1.0)
    assert window.remaining() == pytest.approx(1.0) and policy.deadline.remaining() is None
    with pytest.raises(RetriesExhaustedError) as info:
        policy.call(failing(10**6, throttled), deadline=window)
    assert info.value.why == "deadline" and clock.now <= 1001.0
    clock.now += 5
    assert policy.call(lambda: "fine") == ("fine", 1)  # the policy's own deadline is untouched


def test_capped_keeps_an_earlier_deadline() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    deadline.set_remaining(2.0)
    assert deadline.capped(10.0).remaining() == pytest.approx(2.0)
    assert deadline.capped(0.5).remaining() == pytest.approx(0.5)
    assert deadline.remaining() == pytest.approx(2.0)


def test_into_margin_follows_the_deadline_it_views() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    sinks = deadline.into_margin(0.5)
    assert sinks.remaining() is None and not sinks.expired()
    deadline.set_remaining(30.0, margin_s=10.0)  # the work stops 20 s from now
    assert deadline.remaining() == pytest.approx(20.0)
    assert sinks.remaining() == pytest.approx(25.0)  # half the margin later
    clock.now += 22.0
    assert deadline.expired() and not sinks.expired()
    clock.now += 3.0
    assert sinks.expired()
    deadline.set_remaining(None)  # the next invocation resets the deadline: the view follows
    assert not sinks.expired()
    with pytest.raises(TypeError):
        sinks.set_remaining(1.0)


@pytest.mark.parametrize(("timeout_s", "margin_s"), [
    (3.0, 0.6), (5.0, 1.0), (10.0, 2.0), (29.0, 5.8), (50.0, 10.0), (900.0, 10.0)])
def test_the_margin_is_derived_from_the_time_left(timeout_s: float, margin_s: float) -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    deadline.set_from_lambda_context(
        SimpleNamespace(get_remaining_time_in_millis=lambda: int(timeout_s * 1000)))
    assert derived_margin(timeout_s) == pytest.approx(margin_s)
    assert deadline.remaining() == pytest.approx(timeout_s - margin_s)
    deadline.set_from_lambda_context(  # a margin that is set wins
        SimpleNamespace(get_remaining_time_in_millis=lambda: int(timeout_s * 1000)),
        margin_s=0.25)
    assert deadline.remaining() == pytest.approx(timeout_s - 0.25)


def test_never_attempted_is_the_deadline_before_the_first_attempt() -> None:
    clock = FakeClock()
    deadline = Deadline(clock=clock)
    deadline.set_remaining(0.0)
    with pytest.raises(RetriesExhaustedError) as before:
        policy_on(clock, deadline=deadline).call(failing(0, throttled))
    assert never_attempted(before.value)
    deadline.set_remaining(0.3)  # one attempt, then no time for the backoff
    with pytest.raises(RetriesExhaustedError) as during:
        policy_on(clock, deadline=deadline, base_delay_s=1.0, max_delay_s=1.0, seed=1).call(
            failing(9, throttled))
    assert during.value.attempts >= 1 and not never_attempted(during.value)
    assert not never_attempted(ThrottledError("x"))


def test_unseeded_jitter_has_no_state_to_share() -> None:
    """A SnapStart snapshot copies the process: a seeded generator's state would give
    every restored copy the same jitter."""
    assert isinstance(make_rng(None), random.SystemRandom)
    assert make_rng(7).random() == make_rng(7).random()
    assert isinstance(RetryPolicy()._rng, random.SystemRandom)
