"""Lambda event fixtures (real AWS shapes, see README.md) and helpers to invoke handlers.

``load_event(name)``  a fresh copy of ``<name>.json``; ``event_names()`` lists them all.
``LambdaContext``     the attributes of the Lambda context object the handlers use.
``use_env(monkeypatch, **variables)``  set AMLPROXY_* variables (None unsets) and drop the
                      cached runtime, so the next invocation builds one from them.
"""

from __future__ import annotations

import copy
import functools
import json
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

EVENTS = Path(__file__).resolve().parent


@functools.cache
def _read(name: str) -> Any:
    return json.loads((EVENTS / f"{name}.json").read_text())


def load_event(name: str) -> Any:
    return copy.deepcopy(_read(name))


def event_names() -> list[str]:
    """The names of every sample event (see README.md), sorted."""
    return sorted(path.stem for path in EVENTS.glob("*.json"))


@dataclass
class LambdaContext:
    """What a handler reads from the real context object (a plain test value, not a mock:
    the runtime passes an object with exactly these attributes)."""

    timeout_s: float = 900.0
    function_name: str = "amlproxy-test"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return int((self.timeout_s - (time.monotonic() - self.started)) * 1000)


def use_env(monkeypatch: pytest.MonkeyPatch, **variables: Any) -> None:
    """Set ``AMLPROXY_<NAME>`` variables (None unsets one), clear the others, and make the
    next invocation build a new runtime."""
    import os

    from amlproxy.triggers._runtime import reset_runtime

    for name in list(os.environ):
        if name.startswith("AMLPROXY_"):
            monkeypatch.delenv(name)
    for name, value in variables.items():
        key = f"AMLPROXY_{name.upper()}"
        if value is not None:
            monkeypatch.setenv(key, str(value))
    reset_runtime()
