"""The bad-input corpus: each malformed input through the real S3 handler (moto) and the
HTTP handler, each with a clear outcome. A file's bad rows become rejects with their
reason in the rejects object (the good rows around them are scored); an API request is
refused with 400 or 413 naming the problem. Nothing raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amlproxy.triggers import api
from amlproxy.triggers import s3 as s3_trigger
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import census_record
from tests.functional.test_trigger_api import http_event
from tests.functional.test_trigger_s3 import s3_event
from tests.reliability.conftest import BUCKET, Stack, Tally

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
ROW = SAMPLE.read_bytes().splitlines(True)[0]  # a valid Adult row (with its label)
HEADER = (b"age,workclass,fnlwgt,education,education-num,marital-status,occupation,"
          b"relationship,race,sex,capital-gain,capital-loss,hours-per-week,native-country,"
          b"income\n")
RECORD = census_record()  # every value a string, as CSV gives them


def jsonl(*records: Any) -> bytes:
    return b"".join(r if isinstance(r, bytes) else json.dumps(r).encode() + b"\n"
                    for r in records)


# name: (key suffix, body, ok, [(line, reason fragment) of each reject])
FILES: dict[str, tuple[str, bytes, int, list[tuple[int, str]]]] = {
    "empty file": (".csv", b"", 0, []),
    "header only": (".csv", HEADER, 0, [(1, "not a number: 'age'")]),
    "wrong number of columns": (".csv", ROW + b"39, State-gov, 77516\n" + ROW, 2,
                                [(2, "expected 15 fields")]),
    "byte order mark": (".csv", b"\xef\xbb\xbf" + ROW, 1, []),
    "CRLF line ends": (".csv", ROW.rstrip() + b"\r\n" + ROW.rstrip() + b"\r\n", 2, []),
    "quoted newline": (".csv", ROW.replace(b"State-gov", b'"State\ngov"') + ROW, 1,
                       [(1, "unknown category 'State\\ngov'")]),
    "non-UTF-8 bytes": (".csv", ROW.replace(b"State-gov", b"St\xffte-gov") + ROW, 1,
                        [(1, "invalid UTF-8")]),
    "a 10 MB line": (".csv", ROW + b"1, " + b"x" * (10 * 1024 * 1024) + b"\n" + ROW, 2,
                     [(2, "record longer than")]),
    "NaN in CSV": (".csv", ROW.replace(b"39,", b"nan,", 1), 0, [(1, "not a finite number")]),
    "Infinity in CSV": (".csv", ROW.replace(b"39,", b"-Infinity,", 1), 0,
                        [(1, "not a finite number")]),
    "NaN in JSON": (".jsonl", jsonl(RECORD, b'{"age": NaN}\n'), 1,
                    [(2, "NaN and Infinity are not JSON numbers")]),
    "Infinity in JSON": (".jsonl", jsonl(b'{"age": Infinity}\n', RECORD), 1,
                         [(1, "NaN and Infinity are not JSON numbers")]),
    "deeply nested JSON": (".jsonl", jsonl(b'{"age": ' + b"[" * 5000 + b"]" * 5000 + b"}\n"), 0,
                           [(1, "depth")]),
    "shallow nesting": (".jsonl", jsonl({**RECORD, "age": [[[1]]]}), 0,
                        [(1, "expected a number")]),
    "duplicate keys": (".jsonl", jsonl(json.dumps(RECORD)[:-1].encode() + b', "age": "7"}\n'),
                       0, [(1, "duplicate key 'age'")]),
    "numbers as strings": (".jsonl", jsonl(RECORD, {**RECORD, "age": 39}), 2, []),
    "unknown category": (".jsonl", jsonl({**RECORD, "workclass": "Astronaut"}), 0,
                         [(1, "unknown category 'Astronaut'")]),
    "extra fields": (".jsonl", jsonl({**RECORD, "favourite_colour": "blue"}), 0,
                     [(1, "favourite_colour: unknown field")]),
    "not an object": (".jsonl", jsonl([RECORD], "text", RECORD), 1,
                      [(1, "object"), (2, "object")]),
}


@pytest.mark.parametrize("name", list(FILES))
def test_bad_file_through_the_s3_trigger(stack: Stack, tally: Tally, name: str) -> None:
    suffix, body, ok, rejects = FILES[name]
    obj = {**stack.put(f"input/corpus/{name.replace(' ', '-')}{suffix}", body), "bucket": BUCKET}

    summary = s3_trigger.handler(s3_event(obj), LambdaContext())  # does not raise

    done = summary["objects"][0]
    assert done["status"] == "scored"
    assert (done["ok"], done["rejected"], done["failed"]) == (ok, len(rejects), 0)
    assert done["total"] == done["ok"] + done["rejected"] + done["failed"]
    written = stack.lines(done["rejects"].split("/", 3)[3])
    assert [r["line"] for r in written] == [line for line, _ in rejects]
    for row, (_, fragment) in zip(written, rejects, strict=True):
        assert row["status"] == "rejected" and fragment in " ".join(row["reasons"]), row
    assert len(stack.lines(done["results"].split("/", 3)[3])) == ok
    tally.add(bad_inputs=1, rows_checked=done["total"])


def test_a_key_under_the_output_prefix_is_not_scored(stack: Stack, tally: Tally) -> None:
    obj = {**stack.put("output/input/x.csv.etag.predictions.jsonl", jsonl(RECORD)),
           "bucket": BUCKET}
    before = stack.keys()
    summary = s3_trigger.handler(s3_event(obj), LambdaContext())
    assert summary["skipped"] == 1 and summary["objects"][0]["reason"].startswith("loop guard")
    assert stack.keys() == before and stack.items() == []
    tally.add(bad_inputs=1)


# ------------------------------------------------------------------ the HTTP trigger

# name: (content type, body, status, fragment of the answer)
REQUESTS: dict[str, tuple[str, bytes, int, str]] = {
    "empty body": ("application/json", b"", 400, "invalid JSON"),
    "empty list": ("application/json", b"[]", 400, "no records"),
    "empty CSV": ("text/csv", b"", 400, "no records"),
    "header only": ("text/csv", HEADER, 400, "not a number: 'age'"),
    "wrong number of columns": ("text/csv", b"39, State-gov, 77516\n", 400, "expected 15"),
    "CSV with BOM and CRLF": ("text/csv", b"\xef\xbb\xbf" + ROW.rstrip() + b"\r\n", 200, "ok"),
    "non-UTF-8 CSV": ("text/csv", ROW.replace(b"State-gov", b"St\xffte-gov"), 400,
                      "invalid UTF-8"),
    "NaN": ("application/json", b'{"age": NaN}', 400, "invalid JSON"),
    "Infinity as a string": ("application/json", json.dumps({**RECORD, "age": "Infinity"})
                             .encode(), 400, "not a finite number"),
    "deeply nested": ("application/json", b"[" * 5000 + b"]" * 5000, 400, "invalid JSON"),
    "nested value": ("application/json", json.dumps({**RECORD, "age": {"a": [1]}}).encode(),
                     400, "age"),
    "duplicate keys": ("application/json", json.dumps(RECORD)[:-1].encode() + b', "age": "7"}',
                       400, "given twice"),
    "duplicate keys in a batch": ("application/json", b'{"records": [' + json.dumps(RECORD)
                                  .encode() + b"," + json.dumps(RECORD)[:-1].encode()
                                  + b', "sex": "Male"}]}', 400, "given twice"),
    "numbers as strings": ("application/json", json.dumps(RECORD).encode(), 200, "prediction"),
    "unknown category": ("application/json", json.dumps({**RECORD, "race": "Martian"})
                         .encode(), 400, "unknown category"),
    "extra fields": ("application/json", json.dumps({**RECORD, "x": 1}).encode(), 400,
                     "unknown field"),
    "a huge batch": ("application/json", json.dumps([RECORD] * 51).encode(), 413, "S3 trigger"),
    "a huge body": ("text/csv", ROW * 200, 413, "S3 trigger"),
    "not a record": ("application/json", b'"hello"', 400, "expected a record"),
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_bad_request_through_the_api(monkeypatch: pytest.MonkeyPatch, tally: Tally,
                                     name: str) -> None:
    use_env(monkeypatch, backend="local", api_max_records=50, api_max_body_bytes=20_000)
    content_type, body, status, fragment = REQUESTS[name]
    event = http_event("apigateway_http_api_proxy", "POST", "/predict", body.decode(
        "utf-8", "surrogateescape") if b"\xff" not in body else None, content_type=content_type)
    if b"\xff" in body:  # binary bodies come base64-encoded
        import base64

        event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True

    answer = api.handler(event, LambdaContext())

    assert answer["statusCode"] == status, answer["body"][:500]
    assert fragment in answer["body"]
    if status >= 400:
        assert "Traceback" not in answer["body"] and json.loads(answer["body"])
    tally.add(bad_inputs=1)
