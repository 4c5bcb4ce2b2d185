"""The pure pieces of the chunk room: the assembly's part layout (S3's 5 MiB minimum, bounded
reads), the chunk message (round trip, refusals), the keys and the chunk size."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlproxy.chunks.assemble import layout
from amlproxy.chunks.messages import (
    ChunkMessage,
    Layout,
    ObjectVersion,
    chunk_key,
    is_chunk_body,
    parse_chunk,
)
from amlproxy.chunks.plan import Plan, Span
from amlproxy.chunks.sizing import MAX_CHUNK_BYTES, MIN_CHUNK_BYTES, chunk_bytes
from amlproxy.chunks.store import Completion
from amlproxy.settings import Settings

MIN = 100


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 30), st.integers(0, 400)), max_size=25))
def test_parts_cover_every_byte_in_order_and_respect_the_minimum(sizes: list[int]) -> None:
    parts = layout(sizes, MIN)
    covered = [(p.item, p.start, p.end) for part in parts
               for p in ((part.copy,) if part.copy is not None else part.pieces)]
    flat = [(item, offset) for item, start, end in covered for offset in range(start, end)]
    assert flat == [(item, offset) for item, size in enumerate(sizes) for offset in range(size)]
    assert all(part.size >= MIN for part in parts[:-1])  # S3's rule: all but the last
    assert all(part.size <= MIN for part in parts if part.copy is None)  # bounded reads
    assert all(part.size > 0 for part in parts)
    total = sum(sizes)
    assert len(parts) <= total // MIN + 1


def test_a_large_chunk_object_is_copied_and_small_ones_are_grouped() -> None:
    parts = layout([30, 30, 250, 10, 400, 20], MIN)
    shapes = [("copy", p.copy.item, p.copy.start, p.copy.end) if p.copy is not None
              else ("read", tuple((q.item, q.start, q.end) for q in p.pieces)) for p in parts]
    assert shapes == [
        ("read", ((0, 0, 30), (1, 0, 30), (2, 0, 40))),  # topped up from the next one
        ("copy", 2, 40, 250),
        ("read", ((3, 0, 10), (4, 0, 90))),
        ("copy", 4, 90, 400),
        ("read", ((5, 0, 20),)),
    ]
    assert layout([], MIN) == [] and layout([0, 0], MIN) == []


def message() -> ChunkMessage:
    obj = ObjectVersion("in", "input/a b.csv", "v 1", "e1")
    plan = Plan(size=30, spans=[Span(0, 0, 10, 1), Span(1, 10, 30, 4)], header="a,b,y")
    return ChunkMessage.of_plan(obj, plan, "csv")[1]


def test_a_chunk_message_round_trips_and_names_its_object() -> None:
    chunk = message()
    body = chunk.to_json()
    assert json.loads(body) == {
        "amlproxy": "chunk", "v": 1, "bucket": "in", "key": "input/a b.csv", "version": "v 1",
        "etag": "e1", "index": 1, "count": 2, "start": 10, "end": 30, "first_line": 4,
        "header": "a,b,y", "format": "csv"}
    assert is_chunk_body(body) and parse_chunk(body) == chunk
    assert chunk.object.source == "s3://in/input/a b.csv?versionId=v%201"
    assert chunk.object.get_request() == {"Bucket": "in", "Key": "input/a b.csv",
                                          "VersionId": "v 1"}
    assert chunk.object.plan_id == chunk.object.source  # versioned: the source id
    assert ObjectVersion("in", "k", None, "e 1").plan_id == "s3://in/k?etag=e%201"
    assert ObjectVersion("in", "k", None, "e").get_request() == {
        "Bucket": "in", "Key": "k", "IfMatch": "e"}


@pytest.mark.parametrize(("change", "problem"), [
    ({"v": 2}, "version 2"), ({"bucket": ""}, "bucket"), ({"index": -1}, "index"),
    ({"index": 2}, "index < count"), ({"start": 30}, "start < end"),
    ({"format": "xml"}, "format"), ({"header": 3}, "header"), ({"count": True}, "count"),
])
def test_a_malformed_chunk_message_is_refused_with_its_reason(change: dict[str, object],
                                                              problem: str) -> None:
    doc = {**json.loads(message().to_json()), **change}
    with pytest.raises(ValueError, match=problem):
        parse_chunk(json.dumps(doc))
    assert not is_chunk_body('{"records": []}') and not is_chunk_body("Hello")


def test_the_keys_of_an_object_version() -> None:
    places = Layout(None, "input/", "output/", "rejects/", "chunks/")
    obj = ObjectVersion("in", "input/x/a.csv", None, "e1")
    assert places.final_keys(obj) == ("output/x/a.csv.e1.predictions.jsonl",
                                      "rejects/x/a.csv.e1.rejects.jsonl")
    assert places.chunk_dir(obj) == "chunks/x/a.csv.e1/"
    key = chunk_key(places.chunk_dir(obj), 7, "rejects")
    assert key == "chunks/x/a.csv.e1/000007.rejects.jsonl"
    assert places.bucket(obj) == "in" and Layout("out", "", "o/", "r/", "c/").bucket(obj) == "out"


def test_the_chunk_size_is_a_third_of_the_timeout_at_the_backend_throughput() -> None:
    assert chunk_bytes(Settings(chunk_bytes=1234), 900.0) == 1234
    assert chunk_bytes(Settings(function_timeout_s=300, chunk_throughput_bps=10_000), 5) == (
        1_000_000)
    assert chunk_bytes(Settings(chunk_throughput_bps=10_000), 30.0) == MIN_CHUNK_BYTES
    assert chunk_bytes(Settings(backend="local"), 900.0) == MAX_CHUNK_BYTES
    assert chunk_bytes(Settings(backend="aml", aml_model_id="m"), 900.0) == 300 * 36_000


def test_completion_totals_reconcile_over_the_chunks() -> None:
    done = Completion("s", 2, 10, "csv", done={0, 1}, counts={
        0: {"total": 5, "ok": 3, "rejected": 1, "failed": 1},
        1: {"total": 4, "ok": 4, "rejected": 0, "failed": 0}})
    assert done.complete and not done.assembled
    totals = done.totals()
    assert totals == {"total": 9, "ok": 7, "rejected": 1, "failed": 1}
    assert totals["total"] == totals["ok"] + totals["rejected"] + totals["failed"]
    assert not Completion("s", 3, 10, "csv", done={0, 1}).complete


def test_the_aml_cap_is_the_lower_of_the_endpoint_and_the_worker_share() -> None:
    from amlproxy.bootstrap import aml_rate_cap

    aml = {"backend": "aml", "aml_model_id": "m"}
    assert aml_rate_cap(Settings(**aml)) is None
    assert aml_rate_cap(Settings(**aml, aml_rate_limit_rps=200)) == 200
    assert aml_rate_cap(Settings(**aml, aml_rate_limit_rps=200, aml_max_rps=25)) == 25
    assert aml_rate_cap(Settings(**aml, aml_max_rps=40)) == 40
