"""SnapStart runtime hooks (amlproxy.triggers._snapstart) with the real snapshot-restore-py
library: registered once when the runtime is built, and, run as Lambda runs them, they
reseed every generator and drop every pooled connection of the runtime's clients (over
HTTP to moto server), which keep working."""

from __future__ import annotations

import random
from typing import Any

import pytest

snapshot_restore_py = pytest.importorskip("snapshot_restore_py")

from amlproxy.core.retry import RetryPolicy  # noqa: E402
from amlproxy.triggers import _runtime, _snapstart  # noqa: E402
from tests.events import use_env  # noqa: E402


def _hooks(registry: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> list[Any]:
    return [func for func, _args, _kwargs in registry if func.__module__ == _snapstart.__name__]


def _run(registry: list[tuple[Any, tuple[Any, ...], dict[str, Any]]]) -> None:
    """Calls the registered hooks of this module as the Lambda runtime does."""
    for func, args, kwargs in registry:
        if func.__module__ == _snapstart.__name__:
            func(*args, **kwargs)


def test_building_the_runtime_registers_the_hooks_once(monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    use_env(monkeypatch, backend="local")
    _runtime.get_runtime()
    _runtime.reset_runtime()
    _runtime.get_runtime()
    assert _hooks(snapshot_restore_py._before_snapshot_registry) == [_snapstart.before_snapshot]
    assert _hooks(snapshot_restore_py._after_restore_registry) == [_snapstart.after_restore]
    _runtime.reset_runtime()


def test_after_restore_every_generator_draws_its_own_numbers() -> None:
    # Two environments restored from one snapshot start with the same generator states.
    seeded = random.Random(7)  # a library's (or a user's) own pseudo-random generator
    snapshot = (seeded.getstate(), random.getstate())
    _snapstart.after_restore(lambda: None)
    first = (seeded.random(), random.random())
    seeded.setstate(snapshot[0])
    random.setstate(snapshot[1])
    _snapstart.after_restore(lambda: None)
    second = (seeded.random(), random.random())
    assert first[0] != second[0] and first[1] != second[1]
    # amlproxy's own unseeded generators draw from the OS: nothing to share or renew
    assert isinstance(RetryPolicy()._rng, random.SystemRandom)


def test_connections_are_dropped_around_the_snapshot_and_the_clients_still_work(
        monkeypatch: pytest.MonkeyPatch, moto_reset: str) -> None:
    use_env(monkeypatch, backend="local", aws_endpoint_url=moto_reset, region="us-east-1")
    runtime = _runtime.get_runtime()
    s3 = runtime.clients.client("s3")
    s3.create_bucket(Bucket="snapstart-test")
    assert _pools(s3) == 1
    _run(snapshot_restore_py._before_snapshot_registry)
    assert _pools(s3) == 0
    s3.list_buckets()  # init goes on after the hook (or the snapshot restores it)
    _run(snapshot_restore_py._after_restore_registry)
    assert _pools(s3) == 0
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["snapstart-test"]
    assert _pools(s3) == 1
    _runtime.reset_runtime()


def test_without_the_library_nothing_is_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "snapshot_restore_py", None)
    assert _snapstart.register(lambda: None) is False


def _pools(client: Any) -> int:
    """How many connection pools the client's HTTP session holds (botocore internals)."""
    return len(client._endpoint.http_session._manager.pools)
