"""At-least-once delivery, exactly-once effects: each trigger's event delivered three times
leaves one DynamoDB item per row, one set of S3 objects, and one callback delivery per
``webhook-id``; the API answers a repeated ``Idempotency-Key`` without scoring again.

"No duplicate callback delivery" means: every POST is authentic and fresh, the repeats of
a message carry the same ``webhook-id``, and a receiver that processes each id once (as
Standard Webhooks asks) processes each row exactly once.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from amlproxy.triggers import api, sns, sqs
from amlproxy.triggers import s3 as s3_trigger
from amlproxy.triggers._idempotency import CallerKey, IdempotencyStore
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import HIGH_INCOME_ROW, census_record
from tests.functional.test_trigger_api import http_event
from tests.functional.test_trigger_s3 import s3_event
from tests.functional.test_trigger_sns import sns_event
from tests.functional.test_trigger_sqs import sqs_event
from tests.reliability.conftest import (
    BUCKET,
    IDEMPOTENCY_TABLE,
    Deliveries,
    Pki,
    Stack,
    Tally,
    add_callback_sink,
)

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "census-income-sample.csv"
DELIVERIES = 3


def item_keys(stack: Stack) -> Counter[tuple[str, int]]:
    return Counter((i["pk"]["S"], int(i["sk"]["N"])) for i in stack.items())


def deliver(handler: Callable[[Any, Any], Any], event: Any, stack: Stack,
            callback: Deliveries) -> tuple[list[Any], list[str], int]:
    """Deliver ``event`` DELIVERIES times; the answers, the object keys and the number of
    callback POSTs after the first delivery."""
    answers = [handler(event, LambdaContext())]
    keys, posts = stack.keys(), callback.received
    answers += [handler(event, LambdaContext()) for _ in range(DELIVERIES - 1)]
    return answers, keys, posts


def assert_once(stack: Stack, callback: Deliveries, tally: Tally, *, rows: int, sources: int,
                keys_after_first: list[str], posts_first: int, copies: int = 1) -> None:
    """One item per row, no object added by a replay, each row processed once by the
    receiver although every delivery re-sent its messages."""
    items = item_keys(stack)
    assert len(items) == rows and set(items.values()) == {1}
    assert len({source for source, _ in items}) == sources
    assert stack.keys() == keys_after_first
    assert posts_first > 0 and callback.received == DELIVERIES * posts_first
    per_row = callback.row_counts()
    assert len(callback.unique()) * copies == posts_first
    assert len(per_row) == rows and set(per_row.values()) == {1}
    tally.add(events_replayed=DELIVERIES * copies - 1, rows_checked=rows,
              duplicates=sum(items.values()) - len(items) + sum(per_row.values()) - len(per_row))


def test_s3_event_delivered_three_times(stack: Stack, callback: Deliveries, pki: Pki,
                                        tally: Tally) -> None:
    obj = {**stack.put("input/census.csv", SAMPLE.read_bytes()), "bucket": BUCKET}
    add_callback_sink(callback, pki)
    before = stack.keys()
    # the same object twice in one event (S3 may do that too), and the event three times
    answers, keys, posts = deliver(s3_trigger.handler, s3_event(obj, obj), stack, callback)

    assert all(a["records"] == {"total": 670, "ok": 654, "rejected": 16, "failed": 0}
               for a in answers)
    assert len(keys) == len(before) + 2  # one results and one rejects object
    results = [k for k in keys if k.startswith("output/")]
    lines = [r["line"] for r in stack.lines(results[0])]
    assert lines == sorted(set(lines)) and len(lines) == 327
    assert_once(stack, callback, tally, rows=335, sources=1, keys_after_first=keys,
                posts_first=posts, copies=2)


def test_sns_event_delivered_three_times(stack: Stack, callback: Deliveries, pki: Pki,
                                         tally: Tally) -> None:
    stack.put("input/pointed.csv", b"".join(SAMPLE.read_bytes().splitlines(True)[:21]))
    event = sns_event(
        ("11111111-0000-4000-8000-000000000001", census_record()),
        ("11111111-0000-4000-8000-000000000002",
         [census_record(), census_record(HIGH_INCOME_ROW), {"age": "old"}]),
        ("11111111-0000-4000-8000-000000000003", {"s3": {"bucket": BUCKET,
                                                         "key": "input/pointed.csv"}}),
    )
    add_callback_sink(callback, pki)
    before = stack.keys()
    answers, keys, posts = deliver(sns.handler, event, stack, callback)
    assert len(keys) == len(before) + 6  # results and rejects of each message
    assert all(a == answers[0] for a in answers)
    assert_once(stack, callback, tally, rows=1 + 3 + 21, sources=3, keys_after_first=keys,
                posts_first=posts)


def test_sqs_event_delivered_three_times(stack: Stack, callback: Deliveries, pki: Pki,
                                         tally: Tally) -> None:
    wrapped = json.dumps({"Type": "Notification", "MessageId": "22222222-aaaa",
                          "TopicArn": "arn:aws:sns:us-east-1:123456789012:t",
                          "Message": json.dumps([census_record(), census_record()])})
    event = sqs_event(("q1", census_record()), ("q2", wrapped),
                      ("q3", {"records": [census_record(), "not a record"]}))
    add_callback_sink(callback, pki)
    before = stack.keys()
    answers, keys, posts = deliver(sqs.handler, event, stack, callback)
    assert answers == [{"batchItemFailures": []}] * DELIVERIES
    assert len(keys) == len(before) + 6
    assert_once(stack, callback, tally, rows=1 + 2 + 2, sources=3, keys_after_first=keys,
                posts_first=posts)


# ------------------------------------------------------------------ API Idempotency-Key


@pytest.fixture
def api_stack(stack: Stack, monkeypatch: pytest.MonkeyPatch, emu: Any) -> Stack:
    use_env(monkeypatch, aws_endpoint_url=stack.endpoint, backend="aml",
            aml_model_id=emu.model_id, aml_predict_endpoint=emu.url, endpoint_url=emu.url,
            region="us-east-1", max_attempts=1, idempotency_table=IDEMPOTENCY_TABLE)
    return stack


def post(body: Any, key: str | None, kind: str = "apigateway_aws_proxy"
         ) -> tuple[int, dict[str, Any], dict[str, str]]:
    event = http_event(kind, "POST", "/predict", json.dumps(body))
    if key is not None:
        event["headers"]["Idempotency-Key" if kind == "apigateway_aws_proxy" else
                         "idempotency-key"] = key
    answer = api.handler(event, LambdaContext())
    return answer["statusCode"], json.loads(answer["body"]), answer["headers"]


def requests_made(emu: Any) -> int:
    return int(emu.endpoint_counts(emu.model_id).get("requests", 0))


@pytest.mark.parametrize("kind", ["apigateway_aws_proxy", "apigateway_http_api_proxy"])
def test_api_same_key_same_body_scores_once(api_stack: Stack, emu: Any, tally: Tally,
                                            kind: str) -> None:
    batch = [census_record(), census_record(HIGH_INCOME_ROW)]
    answers = [post(batch, "order-42", kind) for _ in range(DELIVERIES)]

    calls = len(batch)  # Amazon ML's Predict takes one record per request
    assert requests_made(emu) == calls  # the endpoint was called by the first request only
    assert [a[0] for a in answers] == [200] * DELIVERIES
    assert answers[1][1] == answers[2][1] == answers[0][1]  # the very same answer
    assert "idempotent-replayed" not in answers[0][2]
    assert answers[1][2]["idempotent-replayed"] == "true"

    status, body, _ = post([census_record()], "order-42", kind)  # same key, other request
    assert status == 422 and body["error"]["code"] == "IdempotencyKeyReused"
    assert requests_made(emu) == calls

    post(batch, "order-43", kind)  # a new key is a new request
    assert requests_made(emu) == 2 * calls
    tally.add(events_replayed=DELIVERIES - 1, rows_checked=len(batch),
              duplicates=requests_made(emu) - 2 * calls)


def test_api_key_in_progress_is_409_and_failures_release_it(
    api_stack: Stack, emu: Any, tally: Tally
) -> None:
    body = census_record()
    store = IdempotencyStore(IDEMPOTENCY_TABLE, api_stack.ddb)
    from amlproxy.triggers._http import parse_http_event
    from amlproxy.triggers._idempotency import request_fingerprint

    event = http_event("apigateway_aws_proxy", "POST", "/predict", json.dumps(body))
    raw = json.dumps(body).encode()
    busy = CallerKey("anonymous", "busy").record_id  # the sample event has no principal
    claim = store.claim(busy, request_fingerprint(parse_http_event(event), raw), hold_s=60)
    assert claim.state == "claimed"  # another invocation is scoring this request now
    status, answer, headers = post(body, "busy")
    assert status == 409 and headers["retry-after"] == "1"
    assert requests_made(emu) == 0

    emu.set_faults(error_rate=1.0)  # the endpoint fails: the answer is not kept
    status, _, _ = post(body, "flaky")
    assert status in (502, 503)
    emu.reset()
    status, answer, headers = post(body, "flaky")  # the client's retry is scored
    assert status == 200 and "idempotent-replayed" not in headers
    status, again, headers = post(body, "flaky")
    assert status == 200 and again == answer and headers["idempotent-replayed"] == "true"
    assert requests_made(emu) == 1
    tally.add(faults_injected=1, events_replayed=3)


def test_api_bad_keys_and_no_table(api_stack: Stack, emu: Any, monkeypatch: pytest.MonkeyPatch
                                   ) -> None:
    status, body, _ = post(census_record(), "x" * 300)
    assert status == 400 and "Idempotency-Key" in body["errors"][0]["reason"]
    use_env(monkeypatch, aws_endpoint_url=api_stack.endpoint, backend="aml",
            aml_model_id=emu.model_id, aml_predict_endpoint=emu.url, endpoint_url=emu.url,
            region="us-east-1", max_attempts=1)
    post(census_record(), "k")
    post(census_record(), "k")
    assert requests_made(emu) == 2  # without a table the header is ignored (documented)
