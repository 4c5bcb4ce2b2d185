"""Fault injection for one emulated endpoint: what goes wrong, how often, how slowly.

A :class:`FaultConfig` is the declarative part (what the admin API and the CLI set);
:class:`EndpointFaults` holds it together with the run-time state that makes it real: a
seeded random generator, a token bucket for ``rps_limit`` and the end of the not-ready
window. :meth:`EndpointFaults.decide` is called once per prediction request.

Per request, in this order:

1. inside the ``not_ready_for_s`` window (measured from when it was set) -> ``NOT_READY``;
2. ``rps_limit`` > 0 and the token bucket (capacity ``max(1, rps_limit)``, refilled at
   ``rps_limit`` per second) is empty -> ``THROTTLE``;
3. one uniform draw ``u`` in [0, 1) picks ``THROTTLE`` (``u < throttle_rate``), then
   ``SERVER_ERROR`` (next ``error_rate``), ``TIMEOUT`` (next ``timeout_rate``),
   ``MODEL_ERROR`` (next ``model_error_rate``), else ``NONE``.

Latency (``latency_ms``, drawn after ``u``) is added to answers that reached the "model"
(``NONE``, ``SERVER_ERROR``, ``MODEL_ERROR``); throttling and not-ready answers are
immediate, as a real front door's are. ``TIMEOUT`` holds the request ``timeout_s`` seconds
and then drops the connection without answering. Distributions of ``latency_ms``:

- ``fixed``: exactly ``latency_ms``;
- ``uniform``: uniform in ``latency_ms`` ± ``latency_jitter_ms`` (floored at 0);
- ``exponential``: exponential with mean ``latency_ms``;
- ``lognormal``: median ``latency_ms``, sigma = ``latency_jitter_ms / latency_ms``.

With a ``seed`` the sequence of decisions (and latencies) is repeatable for the same
sequence of requests. Without any fault configured, ``decide`` draws nothing.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from enum import Enum
from typing import Any

LATENCY_DISTRIBUTIONS = ("fixed", "uniform", "exponential", "lognormal")
RATE_KEYS = ("throttle_rate", "error_rate", "timeout_rate", "model_error_rate")


class Fault(Enum):
    """What :meth:`EndpointFaults.decide` tells a protocol handler to do."""

    NONE = "none"
    THROTTLE = "throttle"
    NOT_READY = "not_ready"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    MODEL_ERROR = "model_error"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    """The faults of one endpoint. All rates are probabilities per request.

    ``error_status`` picks the SageMaker server error (500 InternalFailure or 503
    ServiceUnavailable; Amazon ML always answers 500 InternalServerException).
    ``model_error_status`` is the container's status inside a SageMaker ModelError.
    ``rps_limit`` 0 means unlimited. ``not_ready_for_s`` opens a window from the moment
    it is set.
    """

    latency_ms: float = 0.0
    latency_dist: str = "fixed"
    latency_jitter_ms: float = 0.0
    throttle_rate: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    timeout_rate: float = 0.0
    timeout_s: float = 75.0
    not_ready_for_s: float = 0.0
    rps_limit: float = 0.0
    model_error_rate: float = 0.0
    model_error_status: int = 400
    seed: int | None = None

    def merged(self, changes: Mapping[str, Any]) -> FaultConfig:
        """A copy with ``changes`` applied; ValueError on an unknown key or a bad value."""
        known = {f.name: f for f in fields(self)}
        updates: dict[str, Any] = {}
        for key, value in changes.items():
            if key not in known:
                raise ValueError(f"unknown fault setting {key!r}; known: {sorted(known)}")
            updates[key] = _coerce(key, value)
        new = replace(self, **updates)
        new.check()
        return new

    def check(self) -> None:
        for key in RATE_KEYS:
            rate = getattr(self, key)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{key} must be within [0, 1], not {rate}")
        if sum(getattr(self, key) for key in RATE_KEYS) > 1.0 + 1e-9:
            raise ValueError(f"the rates {RATE_KEYS} add up to more than 1")
        if self.latency_dist not in LATENCY_DISTRIBUTIONS:
            raise ValueError(f"latency_dist must be one of {LATENCY_DISTRIBUTIONS}")
        for key in ("latency_ms", "latency_jitter_ms", "timeout_s", "not_ready_for_s"):
            if getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0")
        if self.rps_limit < 0:
            raise ValueError("rps_limit must be >= 0 (0: unlimited)")
        if self.error_status not in (500, 503):
            raise ValueError("error_status must be 500 or 503")
        if not 400 <= self.model_error_status <= 599:
            raise ValueError("model_error_status must be an HTTP error status (400-599)")

    @property
    def injects(self) -> bool:
        """True when anything at all is configured (else decide() takes the fast path)."""
        return (
            self.latency_ms > 0
            or self.rps_limit > 0
            or any(getattr(self, key) > 0 for key in RATE_KEYS)
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_INT_KEYS = {"error_status", "model_error_status"}


def _coerce(key: str, value: Any) -> Any:
    if key == "latency_dist":
        if not isinstance(value, str):
            raise ValueError("latency_dist must be a string")
        return value
    if key == "seed":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("seed must be an integer or null")
        return value
    if value is None and key == "rps_limit":
        return 0.0
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number, not {value!r}")
    if key in _INT_KEYS:
        if int(value) != value:
            raise ValueError(f"{key} must be an integer")
        return int(value)
    if not math.isfinite(value):
        raise ValueError(f"{key} must be finite")
    return float(value)


class EndpointFaults:
    """The fault config of one endpoint plus the state that applies it (not thread-safe:
    used from the emulator's event loop only)."""

    __slots__ = ("_bucket_at", "_rng", "_tokens", "config", "not_ready_until")

    def __init__(self) -> None:
        self.config = FaultConfig()
        self._rng = random.Random()
        self.not_ready_until = 0.0
        self._tokens = 0.0
        self._bucket_at = 0.0

    def configure(self, changes: Mapping[str, Any], now: float) -> FaultConfig:
        """Merge ``changes`` into the config (ValueError if invalid) and return it."""
        new = self.config.merged(changes)
        self.apply(new, changed=changes, now=now)
        return new

    def apply(self, new: FaultConfig, changed: Mapping[str, Any], now: float) -> None:
        self.config = new
        if "seed" in changed:
            self._rng.seed(new.seed)
        if "not_ready_for_s" in changed:
            self.not_ready_until = now + new.not_ready_for_s if new.not_ready_for_s else 0.0
        if "rps_limit" in changed:
            self._tokens = max(1.0, new.rps_limit)
            self._bucket_at = now

    def not_ready_remaining(self, now: float) -> float:
        return max(0.0, self.not_ready_until - now)

    def decide(self, now: float) -> tuple[Fault, float]:
        """The fault for one request arriving at ``now`` (monotonic seconds), and the
        delay in seconds before answering (``timeout_s`` for ``TIMEOUT``)."""
        config = self.config
        if now < self.not_ready_until:
            return Fault.NOT_READY, 0.0
        if not config.injects:
            return Fault.NONE, 0.0
        if config.rps_limit > 0:
            capacity = max(1.0, config.rps_limit)
            tokens = min(capacity, self._tokens + (now - self._bucket_at) * config.rps_limit)
            self._bucket_at = now
            if tokens < 1.0:
                self._tokens = tokens
                return Fault.THROTTLE, 0.0
            self._tokens = tokens - 1.0
        u = self._rng.random()
        edge = config.throttle_rate
        if u < edge:
            return Fault.THROTTLE, 0.0
        edge += config.error_rate
        if u < edge:
            return Fault.SERVER_ERROR, self._latency()
        edge += config.timeout_rate
        if u < edge:
            return Fault.TIMEOUT, config.timeout_s
        edge += config.model_error_rate
        if u < edge:
            return Fault.MODEL_ERROR, self._latency()
        return Fault.NONE, self._latency()

    def _latency(self) -> float:
        config = self.config
        ms = config.latency_ms
        if ms <= 0:
            return 0.0
        dist = config.latency_dist
        if dist == "uniform":
            jitter = config.latency_jitter_ms
            ms = max(0.0, self._rng.uniform(ms - jitter, ms + jitter))
        elif dist == "exponential":
            ms = self._rng.expovariate(1.0 / ms)
        elif dist == "lognormal":
            ms = self._rng.lognormvariate(math.log(ms), config.latency_jitter_ms / ms)
        return ms / 1000.0
