"""The emulator's admin API, under ``/_emulator/``.

- ``GET  /_emulator/health``  -> ``{"status": "ok", "url": ..., "models": [names]}``
- ``GET  /_emulator/faults``  -> ``{"faults": {name: config}}``
- ``POST /_emulator/faults``  body ``{"target": name | "*", <any FaultConfig key>: value}``
  (every key optional, ``target`` defaults to ``"*"``) merges into the target's config
  -> ``{"target": target, "faults": {name: config}}`` for the endpoints changed;
  400 on a bad setting (nothing changes), 404 on an unknown target.
- ``POST /_emulator/reset``   clears faults and counts -> ``{"status": "reset"}``
- ``GET  /_emulator/counts``  -> see :meth:`amlproxy.emulator.counts.Counts.snapshot`

A config is :class:`~amlproxy.emulator.faults.FaultConfig` as a dict plus
``not_ready_remaining_s``.
"""

from __future__ import annotations

import orjson

from amlproxy.emulator.httpcore import Request, Response
from amlproxy.emulator.replies import json_reply
from amlproxy.emulator.state import ALL_TARGETS, EmulatorState, UnknownTargetError

PREFIX = "/_emulator/"


class AdminApi:
    """Run-time control of faults, and the counts."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def handle(self, request: Request) -> Response:
        action = request.path[len(PREFIX) :].strip("/")
        method = request.method
        state = self._state
        if method == "GET" and action == "health":
            return json_reply(200, {"status": "ok", "url": state.url, "models": list(state.models)})
        if method == "GET" and action == "faults":
            return json_reply(200, {"faults": state.all_faults()})
        if method == "POST" and action == "faults":
            return self._set_faults(request.body)
        if method == "POST" and action == "reset":
            state.reset()
            return json_reply(200, {"status": "reset"})
        if method == "GET" and action == "counts":
            return json_reply(200, state.counts.snapshot())
        return json_reply(404, {"error": f"no admin route {method} {request.path}"})

    def _set_faults(self, body: bytes) -> Response:
        try:
            changes = orjson.loads(body or b"{}")
        except orjson.JSONDecodeError as exc:
            return json_reply(400, {"error": f"body is not JSON: {exc}"})
        if not isinstance(changes, dict):
            return json_reply(400, {"error": "body must be a JSON object"})
        target = changes.pop("target", ALL_TARGETS)
        if not isinstance(target, str):
            return json_reply(400, {"error": "target must be a string"})
        try:
            faults = self._state.configure_faults(target, changes)
        except UnknownTargetError:
            return json_reply(404, {"error": f"no served model named {target!r}"})
        except ValueError as exc:
            return json_reply(400, {"error": str(exc)})
        return json_reply(200, {"target": target, "faults": faults})
