"""The emulator's mutable state: served models, their faults, the counts."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from amlproxy.emulator.counts import Counts
from amlproxy.emulator.faults import EndpointFaults
from amlproxy.emulator.models import ServedModel

ALL_TARGETS = "*"


class UnknownTargetError(KeyError):
    """A fault target names no served model."""


class EmulatorState:
    """Everything the protocol handlers share. Lives on the emulator's event loop thread;
    ``url`` is where clients reach the emulator (set once the server listens)."""

    def __init__(self, models: Mapping[str, ServedModel]) -> None:
        self.models = dict(models)
        self.faults = {name: EndpointFaults() for name in self.models}
        self.counts = Counts()
        self.url = ""
        self.clock = time.monotonic

    def configure_faults(self, target: str, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``changes`` into the fault config of ``target`` ("*": every served model).

        Returns ``{name: config}`` for the targets changed. ValueError on a bad setting
        (nothing changes then), UnknownTargetError on an unknown target.
        """
        names = self._targets(target)
        merged = {name: self.faults[name].config.merged(changes) for name in names}
        now = self.clock()
        for name, config in merged.items():
            self.faults[name].apply(config, changes, now)
        return {name: self.describe_faults(name) for name in names}

    def describe_faults(self, name: str) -> dict[str, Any]:
        faults = self.faults[name]
        out = faults.config.to_dict()
        out["not_ready_remaining_s"] = round(faults.not_ready_remaining(self.clock()), 3)
        return out

    def all_faults(self) -> dict[str, Any]:
        return {name: self.describe_faults(name) for name in self.faults}

    def reset(self) -> None:
        """Forget every fault and every count."""
        self.faults = {name: EndpointFaults() for name in self.models}
        self.counts.reset()

    def _targets(self, target: str) -> list[str]:
        if target == ALL_TARGETS:
            return list(self.models)
        if target not in self.models:
            raise UnknownTargetError(target)
        return [target]
