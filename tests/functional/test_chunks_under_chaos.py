"""Issue 13's "chaos, exactly once": a census file scored in many chunks by the real
planner and chunk workers of sam/template.yaml on the local stack, with ``--timeout 10
--chaos 0.2`` (a fifth of the invocations, the planner's included, killed at a random
moment: a crash or a timeout, before their answer is accepted), always completes; its
final results and rejects hold every input line once, in line order; the counts
reconcile; no chunk needs more receives than ``maxReceiveCount`` and both dead-letter
queues stay empty.

The file is rows of ``adult.data`` (examples/census-income-sample.csv, its valid rows
cycled) with one bad row (the sample's eight planted rejects, in turn) after every 500
valid rows: the issue's reproducer of a duplicate (a reject at the head of a batch
written before the batches in flight, cut by a deadline).

The redelivery wait. A killed chunk comes back after the queue's visibility timeout, which
the stack sets to 6 x ``--timeout`` (60 s), as the template does. Almost all of a run is
that wait, so the tests shorten the IngestQueue's and ChunkQueue's visibility to
``AMLPROXY_CHAOS_VISIBILITY_S`` (default 10 s, the timeout; 0: keep the stack's 60 s). That is
faithful only while no invocation outlives it (else a message would come back while its
first receive is still running, which the real 60 s would not do), so every test checks
that no message was dispatched again before its previous dispatch ended.

Default run (``make test``): 3 seeds of 12,000 lines in chunks of 100,000 bytes (15
chunks, 4 workers), one stack after the other (about 100 s each on 2 cores); 2 more seeds
of it in the slow suite. Slow suite: the issue's 500,000 lines
in chunks of 250,000 bytes (245 chunks, 4 workers; chunks of 1 MB, about 8,200 rows, did
not finish within the 10 s timeout on 2 busy cores), over ``AMLPROXY_CHAOS_SEEDS`` seeds
(default 1, one stack after the other; the issue asks for 20). Measured on 2 busy cores
(2026-12-02): about 0.1 chunk/s, 51 of 246 chunks in 520 s, so a seed takes about 40
minutes (moto's server is the busiest process, at ~85% of a core); not yet run to the end.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from amlproxy.local.event_sources import SqsEventSource
from amlproxy.local.pool import Chaos
from amlproxy.local.stack import LocalDeployment
from tests.fixtures.aws import make_client

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
# lines of the sample that the schema rejects (examples/README.md); line 150 is accepted
SAMPLE_REJECTS = (12, 40, 77, 120, 166, 213, 260, 301)
VALID_PER_REJECT = 500  # the reproducer: a reject right after every 500 valid rows
CHAOS = 0.2
TIMEOUT_S = 10
WORKERS = 4
MAX_RECEIVES = 9  # the template's ChunkMaxReceiveCount default
# The first seed's chaos plan kills the planner's first two invocations (so it kills the
# planning of the object, whatever order its two messages come in: the s3:TestEvent and
# the object's notification); then two more.
DEFAULT_SEEDS = (84, 1, 2)
SLOW_SEEDS = (3, 4)  # the same run, more seeds, in the slow suite


@dataclass
class Census:
    """An uploaded census file and the lines it must come out as."""

    body: bytes
    lines: int
    rejects: list[int] = field(default_factory=list)

    @property
    def valid(self) -> list[int]:
        planted = set(self.rejects)
        return [n for n in range(1, self.lines + 1) if n not in planted]


def census_file(lines: int) -> Census:
    """``lines`` census rows: valid sample rows cycled, a bad one after every 500."""
    sample = SAMPLE.read_bytes().splitlines()
    bad = [sample[n - 1] for n in SAMPLE_REJECTS]
    good = [row for n, row in enumerate(sample, 1) if n not in SAMPLE_REJECTS]
    rows, rejects = [], []
    for n in range(1, lines + 1):
        if n % (VALID_PER_REJECT + 1) == 0:
            rows.append(bad[len(rejects) % len(bad)])
            rejects.append(n)
        else:
            rows.append(good[(n - 1 - len(rejects)) % len(good)])
    return Census(b"\n".join(rows) + b"\n", lines, rejects)


class Dispatches:
    """Every receive an SQS event source handed to its function: (message, receive count,
    start, end), recorded around the source's dispatch."""

    def __init__(self, source: SqsEventSource) -> None:
        self.seen: list[tuple[str, int, float, float]] = []
        self.indexes: dict[str, int] = {}
        self._lock = threading.Lock()
        inner = source.dispatch

        def dispatch(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
            started = time.monotonic()
            try:
                return inner(messages)
            finally:
                ended = time.monotonic()
                with self._lock:
                    self.seen += [(m["MessageId"], int(m["Attributes"]["ApproximateReceiveCount"]),
                                   started, ended) for m in messages]
                    for m in messages:
                        index = _chunk_index(m.get("Body", ""))
                        if index is not None:
                            self.indexes[m["MessageId"]] = index

        source.dispatch = dispatch  # type: ignore[method-assign]

    def receives(self) -> dict[str, int]:
        """The highest receive count of each message."""
        most: dict[str, int] = {}
        for message, count, _, _ in self.seen:
            most[message] = max(most.get(message, 0), count)
        return most

    def chunk_indexes(self) -> dict[str, int]:
        """The chunk index in each message received (chunk messages only)."""
        return dict(self.indexes)

    def longest_s(self) -> float:
        return max((end - start for _, _, start, end in self.seen), default=0.0)

    def overlaps(self) -> list[str]:
        """Messages dispatched again while a previous dispatch of theirs was running."""
        by_message: dict[str, list[tuple[float, float]]] = {}
        for message, _, start, end in self.seen:
            by_message.setdefault(message, []).append((start, end))
        return [m for m, spans in by_message.items()
                if any(b[0] < a[1] for a, b in zip(sorted(spans), sorted(spans)[1:],
                                                    strict=False))]


def _chunk_index(body: str) -> int | None:
    try:
        doc = json.loads(body)
    except ValueError:
        return None
    index = doc.get("index") if isinstance(doc, dict) else None
    return index if isinstance(index, int) else None


def _visibility_s() -> int | None:
    value = os.environ.get("AMLPROXY_CHAOS_VISIBILITY_S", str(TIMEOUT_S)).strip()
    return int(value) if value and value != "0" else None


def _jsonl(s3: Any, uri: str) -> list[dict[str, Any]]:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return [json.loads(line) for line in body.splitlines()]


def _drain(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def _settle(sqs: Any, s3: Any, queues: dict[str, str], wait_s: float) -> dict[str, int]:
    """Waits up to ``wait_s`` until the ingest and chunk queues hold no message and no
    chunk object is left; what is left at the end."""
    ends = time.monotonic() + wait_s
    while True:
        left = {"queued": sum(_drain(sqs, queues[q]) for q in ("IngestQueue", "ChunkQueue")),
                "chunk objects": s3.list_objects_v2(Bucket="amlproxy-input",
                                                    Prefix="chunks/")["KeyCount"]}
        if not any(left.values()) or time.monotonic() > ends:
            return left
        time.sleep(0.5)


def score_under_chaos(start: Callable[..., LocalDeployment], census: Census, seed: int, *,
                      chunk_bytes: int, wait_s: float) -> dict[str, Any]:
    """Uploads ``census`` to a stack under chaos, waits until it is assembled and checks
    exactly once; returns what the run counted."""
    stack = start(timeout=TIMEOUT_S, chaos=CHAOS, seed=seed, prewarm=False, parameters={
        "ChunkBytes": str(chunk_bytes), "ChunkMaxConcurrency": str(WORKERS)})
    try:
        return _check_run(stack, census, seed, wait_s)
    finally:
        stack.stop()  # (the slow test runs several stacks in a row)


def _check_run(stack: LocalDeployment, census: Census, seed: int,
               wait_s: float) -> dict[str, Any]:
    assert stack.resources is not None and stack.service is not None
    aws = stack.endpoints["aws"]
    sqs, s3 = make_client("sqs", aws), make_client("s3", aws)
    queues = stack.resources.queues
    visibility = _visibility_s()
    if visibility is not None:
        for queue in ("IngestQueue", "ChunkQueue"):
            sqs.set_queue_attributes(QueueUrl=queues[queue],
                                     Attributes={"VisibilityTimeout": str(visibility)})
    sources = {s.name: s for s in stack.sources if isinstance(s, SqsEventSource)}
    spies = {name: Dispatches(sources[name]) for name in ("S3Function", "ChunkFunction")}
    started = time.monotonic()
    s3.put_object(Bucket="amlproxy-input", Key="input/census chaos.csv", Body=census.body)
    done: list[dict[str, Any]] = []
    shown = started
    while not done and time.monotonic() - started < wait_s:
        time.sleep(0.5)
        objects = stack.objects()
        done = [o for o in objects if o["status"] == "assembled"]
        if time.monotonic() - shown > 30:  # (seen with -s: how far a long run is)
            shown = time.monotonic()
            print(f"seed {seed} at {shown - started:.0f} s:",
                  [(o["done"], o["chunks"]) for o in objects])
    elapsed = time.monotonic() - started
    why = [r.text[:400] for r in stack.logs.records("ChunkFunction")
           if '"level": "ERROR"' in r.text or "interrupted" in r.text or "Error" in r.text]
    assert done, f"seed {seed}: not assembled after {wait_s:.0f} s: {stack.status()}: {why[-6:]}"
    (obj,) = done
    lines = census.lines
    assert obj["counts"] == {"total": lines, "ok": lines - len(census.rejects),
                             "rejected": len(census.rejects), "failed": 0}
    assert obj["done"] == obj["chunks"] > 10
    results = _jsonl(s3, obj["outputs"]["results"])
    rejects = _jsonl(s3, obj["outputs"]["rejects"])
    assert [r["line"] for r in results] == census.valid  # each once, in line order
    assert [r["line"] for r in rejects] == census.rejects
    assert all(r["status"] == "rejected" and r["reasons"] for r in rejects)
    assert all(r.get("label") for r in results)
    assert len(results) + len(rejects) == lines
    for name, spy in spies.items():
        assert not spy.overlaps(), f"{name}: redelivered in flight (visibility {visibility})"
        assert max(spy.receives().values()) <= MAX_RECEIVES, name
    # every chunk was received; a message more than one per chunk only when a killed
    # planner's redelivery sent its chunk messages again
    indexes = spies["ChunkFunction"].chunk_indexes()
    assert sorted(set(indexes.values())) == list(range(obj["chunks"]))
    planner_runs = stack.service.pool("S3Function").stats.invocations
    assert len(indexes) == obj["chunks"] or planner_runs > 2, indexes
    # The item is marked assembled before the chunk objects are deleted: an assembler
    # killed in between leaves them to its message's redelivery (after the visibility
    # timeout), which finds the item assembled and deletes them. So the stack is left to
    # settle: both queues drained, then no chunk object left.
    left = _settle(sqs, s3, queues, (visibility or 6 * TIMEOUT_S) * 2 + 3 * TIMEOUT_S)
    assert left == {"queued": 0, "chunk objects": 0}, f"seed {seed}: not settled: {left}"
    for queue in ("IngestDeadLetterQueue", "ChunkDeadLetterQueue"):
        assert _drain(sqs, queues[queue]) == 0, queue
    kills = {}
    for name in ("S3Function", "ChunkFunction"):
        stats = stack.service.pool(name).stats
        plan = [Chaos(CHAOS, seed).decide(name, n, 1.0) for n in range(stats.invocations)]
        assert stats.chaos_kills == sum(p is not None for p in plan), name  # the planned ones
        kills[name] = stats.chaos_kills
    return {"seed": seed, "seconds": round(elapsed, 1), "chunks": obj["chunks"],
            "kills": kills, "redelivered": {n: s.failed_messages for n, s in sources.items()},
            "most_receives": max(spies["ChunkFunction"].receives().values()),
            "longest_dispatch_s": round(spies["ChunkFunction"].longest_s(), 1)}


def _report(result: dict[str, Any]) -> None:
    print(f"\nchaos run: {json.dumps(result)}")


def test_the_reproducer_file_plants_a_reject_after_every_500_valid_rows() -> None:
    census = census_file(2_003)
    rows = census.body.splitlines()
    assert len(rows) == 2_003 and census.rejects == [501, 1002, 1503]
    assert rows[500] == SAMPLE.read_bytes().splitlines()[11]  # the 'Mars' row
    assert len(census.valid) == 2_000


def test_the_default_seeds_kill_the_planner() -> None:
    """Each seed's runs below assert that the kills were the planned ones; so over the
    default seeds, the planning invocation was killed."""
    assert Chaos(CHAOS, DEFAULT_SEEDS[0]).decide("S3Function", 0, 1.0) is not None
    assert Chaos(CHAOS, DEFAULT_SEEDS[0]).decide("S3Function", 1, 1.0) is not None


@pytest.mark.parametrize("seed", [*DEFAULT_SEEDS, *(pytest.param(s, marks=pytest.mark.slow)
                                                    for s in SLOW_SEEDS)])
def test_a_census_file_in_chunks_is_scored_exactly_once_under_chaos(
        local_deployment: Callable[..., LocalDeployment], seed: int) -> None:
    result = score_under_chaos(local_deployment, census_file(12_000), seed,
                               chunk_bytes=100_000, wait_s=300)
    _report(result)
    assert sum(result["kills"].values()) > 0
    if seed == DEFAULT_SEEDS[0]:
        assert result["kills"]["S3Function"] >= 1  # (it kills the planning: see above)


def _slow_seeds() -> list[int]:
    count = int(os.environ.get("AMLPROXY_CHAOS_SEEDS", "0"))
    return list(range(100, 100 + count))


@pytest.mark.slow
@pytest.mark.timeout(60 + 3600 * len(_slow_seeds()))
@pytest.mark.skipif(not _slow_seeds(), reason="opt-in: one seed of the 500,000-row file takes "
                    "~40 min on 2 cores (moto's server, which holds a DynamoDB item per row, "
                    "is the busiest process), beyond CI's "
                    "budget; AMLPROXY_CHAOS_SEEDS=N runs N seeds")
def test_the_issues_500000_row_file_is_scored_exactly_once_under_chaos_over_seeds(
        local_deployment: Callable[..., LocalDeployment]) -> None:
    census = census_file(500_000)
    results = []
    for seed in _slow_seeds():
        results.append(score_under_chaos(local_deployment, census, seed,
                                         chunk_bytes=250_000, wait_s=3600))
        _report(results[-1])
    assert sum(r["kills"]["S3Function"] for r in results) + sum(
        r["kills"]["ChunkFunction"] for r in results) > 0
