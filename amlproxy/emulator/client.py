"""A small client of the emulator's admin API (for tests, benchmarks and the local stack)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from amlproxy.errors import ConfigurationError


class EmulatorAdmin:
    """Calls ``/_emulator/...`` on the emulator at ``url``. A refused call (bad fault
    setting, unknown target) raises ConfigurationError."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def set_faults(self, target: str = "*", **faults: Any) -> dict[str, Any]:
        """Merge ``faults`` into ``target``'s config; returns ``{"target", "faults"}``."""
        return self._call("POST", "faults", {"target": target, **faults})

    def faults(self) -> dict[str, Any]:
        return self._call("GET", "faults")

    def reset(self) -> None:
        self._call("POST", "reset", {})

    def counts(self) -> dict[str, Any]:
        return self._call("GET", "counts")

    def health(self) -> dict[str, Any]:
        return self._call("GET", "health")

    def _call(self, method: str, action: str, payload: Any = None) -> dict[str, Any]:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.url}/_emulator/{action}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode("utf-8", "replace")
            raise ConfigurationError(f"{method} {action}: HTTP {exc.code}: {detail}") from None
        return answer
