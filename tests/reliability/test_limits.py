"""Service limits honoured (the rest are proved elsewhere, see docs/reliability.md):

- SNS and SQS carry at most 256 KB per message: a larger batch goes to S3 and the message
  carries a pointer (``{"s3": {"bucket", "key"}}`` or ``"s3://bucket/key"``), scored like
  the S3 trigger, keyed by the object: the same object announced twice is scored into the
  same outputs;
- Lambda's 6 MB synchronous response: ``AMLPROXY_API_MAX_RECORDS`` is refused where the
  answer could pass 6 MB, a larger batch is answered 413 with a hint to use S3.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from amlproxy.errors import ConfigurationError
from amlproxy.settings import API_BYTES_PER_RECORD, LAMBDA_RESPONSE_LIMIT, load_settings
from amlproxy.triggers import api, sns, sqs
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_api import http_event
from tests.functional.test_trigger_sns import sns_event
from tests.functional.test_trigger_sqs import sqs_event
from tests.reliability.conftest import BUCKET, Stack, Tally

MESSAGE_LIMIT = 256 * 1024  # SNS and SQS


def test_a_batch_over_256_kb_travels_as_an_s3_pointer(stack: Stack, tally: Tally) -> None:
    records = [census_record() for _ in range(820)]
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    assert len(json.dumps({"records": records})) > MESSAGE_LIMIT  # too big for a message
    stack.put("batches/big.jsonl", body)
    pointer = {"s3": {"bucket": BUCKET, "key": "batches/big.jsonl"}}
    assert len(json.dumps(pointer)) < 1024

    by_sns = sns.handler(sns_event(("p-1", pointer)), LambdaContext())
    after_sns = stack.keys()
    by_sqs = sqs.handler(sqs_event(("p-2", f"s3://{BUCKET}/batches/big.jsonl")), LambdaContext())

    assert by_sns["messages"][0]["ok"] == len(records)
    assert by_sqs == {"batchItemFailures": []}
    assert stack.keys() == after_sns  # the same object twice: the same outputs, overwritten
    items = stack.items()
    assert len(items) == len(records)
    assert {i["pk"]["S"] for i in items} == {f"s3://{BUCKET}/batches/big.jsonl"}
    tally.add(events_replayed=1, rows_checked=len(records))


def test_api_batches_are_capped_under_the_6_mb_response(monkeypatch: pytest.MonkeyPatch,
                                                        tally: Tally) -> None:
    most = LAMBDA_RESPONSE_LIMIT // API_BYTES_PER_RECORD
    with pytest.raises(ConfigurationError, match="6 MB"):
        load_settings(api_max_records=most + 1)
    use_env(monkeypatch, backend="local", api_max_records=most,
            api_max_body_bytes=LAMBDA_RESPONSE_LIMIT)
    record = census_record()
    ok = api.handler(http_event("function_url", "POST", "/predict",
                                json.dumps([record] * most)), LambdaContext())
    assert ok["statusCode"] == 200 and len(ok["body"]) < LAMBDA_RESPONSE_LIMIT
    longest = max(len(json.dumps(p)) for p in json.loads(ok["body"])["predictions"])
    assert longest < API_BYTES_PER_RECORD  # the bound the cap is computed from holds
    refused = api.handler(http_event("function_url", "POST", "/predict",
                                     json.dumps([record] * (most + 1))), LambdaContext())
    assert refused["statusCode"] == 413 and "S3 trigger" in refused["body"]
    tally.add(bad_inputs=1, rows_checked=most)


def _csv_cells(tmp_path: Any, raws: list[str]) -> list[str]:
    import csv

    from amlproxy.core.outcome import Outcome, Status
    from amlproxy.core.writers import RejectWriter
    from amlproxy.errors import FieldError

    out = tmp_path / "rejects.csv"
    with out.open("wb") as stream:
        writer = RejectWriter(stream, format="csv")
        writer.write([Outcome("s", n, Status.REJECTED, None, raw, None,
                              (FieldError(None, raw),)) for n, raw in enumerate(raws, 1)])
        writer.close()
    with out.open(newline="", encoding="utf-8") as stream:
        return [cell for row in csv.reader(stream) for cell in row]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def test_csv_output_cells_are_neutralised(tmp_path: Any) -> None:
    raws = ["=HYPERLINK(\"http://x\")", "+1+2", "-2+3", "@SUM(A1)", "\t=1", "a\n=1"]
    cells = _csv_cells(tmp_path, raws)
    assert len(cells) == 7 * (len(raws) + 1)
    assert not any(c[:1] in FORMULA_STARTS for c in cells)


def test_a_bare_carriage_return_cannot_start_a_formula_cell(tmp_path: Any) -> None:
    cells = _csv_cells(tmp_path, ["a\r=1"])
    assert not any(c[:1] in FORMULA_STARTS for c in cells)
