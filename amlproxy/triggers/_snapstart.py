"""Lambda SnapStart runtime hooks: what an execution environment resumed from a snapshot
must renew.

With SnapStart (``SnapStart=enabled`` in sam/template.yaml, Python 3.12 or later), Lambda
runs the init phase once per published version: importing the handler module builds the
:class:`~amlproxy.triggers._runtime.Runtime` (settings, schema validators, pipeline, boto3
clients: :mod:`amlproxy.bootstrap`). It then snapshots the microVM, and every new
execution environment resumes from that snapshot, sharing whatever init made:

- pseudo-random generators (the retry policy's jitter, the metrics' sampling, the
  :mod:`random` module) would draw the same numbers in every environment, so their
  retries would stay in step. Each ``random.Random`` of the process is reseeded from
  ``os.urandom`` after a restore.
- pooled connections (boto3's; init opens one only when it calls a service, such as
  Secrets Manager for the callback secret) would be sockets of a machine that has moved
  on. Every botocore client's pool is closed before the snapshot and again after a
  restore; the clients stay usable and reconnect on their next call.

Left as they are, because they need no renewal: credentials (under SnapStart Lambda gives
the SDK container credentials, which boto3 refreshes itself), the retry deadline (set at
each invocation), UUIDs and tokens (``os.urandom``), the idempotency store (in DynamoDB).

The hooks come from ``snapshot_restore_py``, which Lambda's Python 3.12+ runtimes include;
elsewhere (3.11, tests without it, the CLI) :func:`register` does nothing. What can and
cannot be checked without Lambda is in docs/snapstart.md.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from amlproxy.triggers._runtime import Runtime

log = logging.getLogger("amlproxy.triggers")


_registered = False


def register(current: Callable[[], Runtime | None]) -> bool:
    """Registers :func:`before_snapshot` and :func:`after_restore` with the SnapStart
    runtime hooks, once per process; ``current`` gives the runtime at hook time. False
    (and nothing done) without ``snapshot_restore_py``."""
    global _registered
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:  # not a SnapStart runtime
        return False
    if not _registered:
        register_before_snapshot(before_snapshot, current)
        register_after_restore(after_restore, current)
        _registered = True
    return True


def before_snapshot(current: Callable[[], Runtime | None]) -> None:
    """No socket goes into the snapshot, and no garbage of init either."""
    closed = close_connections()
    gc.collect()
    runtime = current()
    log.info("snapshot: init done", extra={
        "build_ms": round(runtime.build_ms, 1) if runtime else None,
        "connections_closed": closed})


def after_restore(current: Callable[[], Runtime | None]) -> None:
    """Reseeds every pseudo-random generator and drops every pooled connection."""
    started = time.perf_counter()
    reseeded = reseed_random()
    closed = close_connections()
    runtime = current()
    log.info("restored from a SnapStart snapshot", extra={
        "generators_reseeded": reseeded, "connections_closed": closed,
        "restore_ms": round((time.perf_counter() - started) * 1000.0, 1),
        "backend": runtime.settings.backend if runtime else None})


def reseed_random() -> int:
    """Reseeds (from ``os.urandom``) each ``random.Random`` of the process, the
    :mod:`random` module's own included; returns how many. A ``random.SystemRandom``
    (amlproxy's unseeded generators) draws from the OS and has no state to renew."""
    count = 0
    for obj in gc.get_objects():
        if isinstance(obj, random.Random) and not isinstance(obj, random.SystemRandom):
            obj.seed()
            count += 1
    return count


def close_connections() -> int:
    """Closes the pooled connections of every botocore client of the process (the
    backend's, the sinks', the triggers'); returns how many clients."""
    client_module = sys.modules.get("botocore.client")
    if client_module is None:
        return 0
    base = client_module.BaseClient
    clients = [obj for obj in gc.get_objects() if isinstance(obj, base)]
    for client in clients:
        client.close()  # the client reconnects on its next call
    return len(clients)
