"""The progress of chunked objects as `amlproxy local progress` reads it from chunk-table
items (the low-level DynamoDB form that amlproxy.chunks.store writes)."""

from __future__ import annotations

from typing import Any

from amlproxy.local.progress import ObjectProgress, from_item, matches, progress_lines

SOURCE = "s3://in/input/big.csv?versionId=v1"


def _counts(total: int, ok: int, rejected: int, failed: int) -> dict[str, Any]:
    return {"M": {"total": {"N": str(total)}, "ok": {"N": str(ok)},
                  "rejected": {"N": str(rejected)}, "failed": {"N": str(failed)}}}


def test_a_planned_item_counts_the_chunks_done_so_far() -> None:
    item = {"object": {"S": SOURCE}, "chunks": {"N": "4"}, "status": {"S": "planned"},
            "done": {"NS": ["0", "2"]}, "expires_at": {"N": "1800000000"},
            "counts": {"M": {"0": _counts(10, 9, 1, 0), "2": _counts(10, 8, 1, 1)}}}
    progress = from_item(item)
    assert (progress.chunks, progress.done, progress.status) == (4, 2, "planned")
    assert progress.counts == {"total": 20, "ok": 17, "rejected": 2, "failed": 1}
    assert progress.percent == 50.0 and progress.outputs == {}


def test_an_assembled_item_gives_its_totals_and_outputs() -> None:
    item = {"object": {"S": SOURCE}, "chunks": {"N": "2"}, "status": {"S": "assembled"},
            "done": {"NS": ["1", "0"]}, "counts": {"M": {"0": _counts(5, 5, 0, 0)}},
            "total": {"N": "11"}, "ok": {"N": "10"}, "rejected": {"N": "1"},
            "failed": {"N": "0"}, "results": {"S": "s3://out/output/big.csv.v1.predictions"
                                                    ".jsonl"},
            "rejects": {"S": "s3://out/rejects/big.csv.v1.rejects.jsonl"}}
    progress = from_item(item)
    assert progress.counts == {"total": 11, "ok": 10, "rejected": 1, "failed": 0}
    assert set(progress.outputs) == {"results", "rejects"} and progress.percent == 100.0
    lines = progress_lines([progress])
    assert lines[1].split()[:3] == ["2/2", "100%", "assembled"]
    assert lines[1].endswith(SOURCE) and "big.csv.v1.rejects.jsonl" in lines[2]


def test_a_plan_with_no_chunk_done_and_no_done_attribute() -> None:
    progress = from_item({"object": {"S": SOURCE}, "chunks": {"N": "3"},
                          "status": {"S": "planned"}, "counts": {"M": {}}})
    assert (progress.done, progress.percent) == (0, 0.0)
    assert progress.counts == {"total": 0, "ok": 0, "rejected": 0, "failed": 0}


def test_an_uri_matches_every_version_of_its_object_or_one() -> None:
    progress = ObjectProgress(SOURCE, 1, 1, "assembled")
    assert matches(progress, None) and matches(progress, "s3://in/input/big.csv")
    assert matches(progress, SOURCE)
    assert not matches(progress, "s3://in/input/big")  # a prefix of the key is not it
    assert not matches(progress, "s3://in/input/big.csv?versionId=v2")


def test_lines_from_the_json_the_stack_answers() -> None:
    as_json = ObjectProgress(SOURCE, 8, 3, "planned", {"total": 30}).to_dict()
    assert as_json["percent"] == 37.5
    (header, row) = progress_lines([as_json])
    assert header.split()[:2] == ["chunks", "status"]
    assert row.split()[:4] == ["3/8", "38%", "planned", "30"]
    assert progress_lines([]) == ["  no object scored in chunks yet"]
