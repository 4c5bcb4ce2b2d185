"""The API's results in the sinks (DynamoDB in moto server) and its Idempotency-Key as
Stripe and the IETF draft define it: keys scoped by caller, validation failures not
stored, 409 while the first request is in flight for as long as it may run.

The endpoint is the emulator (Amazon ML: one request per record), so "scored again" is
the emulator's request count, not a guess.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from amlproxy.sinks.dynamodb import table_definition
from amlproxy.triggers import api
from amlproxy.triggers._idempotency import CallerKey, caller_scope
from amlproxy.triggers._idempotency import table_definition as idempotency_table
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import HIGH_INCOME_ROW, census_record
from tests.functional.test_trigger_api import http_event

TABLE = "amlproxy-api-results"
KEYS_TABLE = "amlproxy-api-keys"
ALICE = "arn:aws:iam::123456789012:user/alice"
BOB = "arn:aws:sts::123456789012:assumed-role/scorer/bob"


@pytest.fixture
def tables(aws_client: Any, moto_reset: str, monkeypatch: pytest.MonkeyPatch, emu: Any) -> Any:
    ddb = aws_client("dynamodb")
    ddb.create_table(**table_definition(TABLE))
    ddb.create_table(**idempotency_table(KEYS_TABLE))
    use_env(monkeypatch, aws_endpoint_url=moto_reset, backend="aml", aml_model_id=emu.model_id,
            aml_predict_endpoint=emu.url, endpoint_url=emu.url, region="us-east-1",
            max_attempts=1, dynamodb_table=TABLE, idempotency_table=KEYS_TABLE)
    return ddb


def post(body: Any, *, key: str | None = None, caller: str | None = None,
         kind: str = "apigateway_aws_proxy", timeout_s: float = 900.0,
         request_id: str | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    event = http_event(kind, "POST", "/predict", body if isinstance(body, str) else
                       json.dumps(body))
    if key is not None:
        event["headers"]["Idempotency-Key"] = key
    if caller is not None:
        event["requestContext"]["identity"]["userArn"] = caller
    if request_id is not None:
        event["requestContext"]["requestId"] = request_id
    answer = api.handler(event, LambdaContext(timeout_s=timeout_s))
    return answer["statusCode"], json.loads(answer["body"]), answer["headers"]


def items(ddb: Any) -> dict[tuple[str, int], dict[str, Any]]:
    found = ddb.scan(TableName=TABLE)["Items"]
    return {(i["pk"]["S"], int(i["sk"]["N"])): i for i in found}


def requests_made(emu: Any) -> int:
    return int(emu.endpoint_counts(emu.model_id).get("requests", 0))


# ------------------------------------------------------------------ results in the sinks


def test_results_are_written_keyed_by_request_id_and_line(tables: Any, emu: Any) -> None:
    batch = [census_record(), census_record(HIGH_INCOME_ROW)]
    status, body, _ = post(batch, request_id="req-1")
    assert status == 200
    stored = items(tables)
    assert set(stored) == {("api:req-1", 1), ("api:req-1", 2)}
    labels = [p["label"] for p in body["predictions"]]
    assert [stored[("api:req-1", n)]["label"]["S"] for n in (1, 2)] == labels
    assert stored[("api:req-1", 2)]["status"]["S"] == "ok"

    status, _, _ = post(census_record(), request_id="req-2")  # one record: line 1
    assert status == 200 and ("api:req-2", 1) in items(tables)


def test_a_replay_with_the_same_key_adds_no_item(tables: Any, emu: Any) -> None:
    batch = [census_record(), census_record(HIGH_INCOME_ROW)]
    answers = [post(batch, key="order-7", caller=ALICE, request_id=f"r{n}") for n in range(3)]
    assert [a[0] for a in answers] == [200, 200, 200]
    source = CallerKey(f"iam:{ALICE}", "order-7").source
    assert set(items(tables)) == {(source, 1), (source, 2)}
    assert requests_made(emu) == 2


def test_a_failed_sink_write_is_a_503_and_the_retry_stores_the_results(
        tables: Any, emu: Any) -> None:
    tables.delete_table(TableName=TABLE)  # the results table is gone: BatchWriteItem fails
    status, body, headers = post(census_record(), key="k-sink", caller=ALICE)
    assert status == 503 and body["error"]["code"] == "ResultsNotStored"
    assert headers["retry-after"] == "1"
    tables.create_table(**table_definition(TABLE))
    status, _, headers = post(census_record(), key="k-sink", caller=ALICE)
    assert status == 200 and "idempotent-replayed" not in headers  # released, scored again
    assert len(items(tables)) == 1


# ------------------------------------------------------------------ Idempotency-Key


def test_a_validation_failure_is_not_stored(tables: Any, emu: Any) -> None:
    status, body, _ = post({**census_record(), "age": "forty"}, key="fix-me", caller=ALICE)
    assert status == 400 and body["errors"][0]["field"] == "age"
    assert tables.scan(TableName=KEYS_TABLE, Select="COUNT")["Count"] == 0  # nothing kept
    status, _, headers = post(census_record(), key="fix-me", caller=ALICE)  # corrected
    assert status == 200 and "idempotent-replayed" not in headers
    status, _, headers = post(census_record(), key="fix-me", caller=ALICE)
    assert status == 200 and headers["idempotent-replayed"] == "true"
    assert requests_made(emu) == 1
    for bad in ('{"age": ', "[]", json.dumps([census_record()] * 1001)):
        status, _, _ = post(bad, key="fix-me-too", caller=ALICE)
        assert status in (400, 413)
    assert post(census_record(), key="fix-me-too", caller=ALICE)[0] == 200


def test_keys_are_scoped_by_caller(tables: Any, emu: Any) -> None:
    one, other = census_record(), census_record(HIGH_INCOME_ROW)
    assert post(one, key="shared", caller=ALICE)[0] == 200
    status, _, headers = post(one, key="shared", caller=BOB)  # same key, another caller
    assert status == 200 and "idempotent-replayed" not in headers
    assert post(other, key="shared", caller=BOB)[0] == 422  # Bob's own key now
    status, _, headers = post(one, key="shared", caller=ALICE)
    assert status == 200 and headers["idempotent-replayed"] == "true"
    assert requests_made(emu) == 2
    anonymous = post(other, key="shared")  # the sample event has no principal
    assert anonymous[0] == 200 and "idempotent-replayed" not in anonymous[2]


@pytest.mark.parametrize(("context", "scope"), [
    ({"identity": {"userArn": ALICE, "apiKeyId": "k1"}}, f"iam:{ALICE}"),
    ({"authorizer": {"iam": {"userArn": BOB}}}, f"iam:{BOB}"),
    ({"identity": {"userArn": None, "apiKeyId": "k1"}}, "api-key:k1"),
    ({"identity": {}, "authorizer": {"principalId": "user|42"}}, "principal:user|42"),
    ({"authorizer": {"jwt": {"claims": {"sub": "abc"}, "scopes": None}}}, "principal:abc"),
    ({"authorizer": {"claims": {"sub": "cognito-1"}}}, "principal:cognito-1"),
    ({"authorizer": {"lambda": {"principalId": "p"}}}, "principal:p"),
    ({"identity": None, "authorizer": None}, "anonymous"),
    ({"identity": "junk", "authorizer": ["junk"]}, "anonymous"),
])
def test_caller_scope_of_each_event_shape(context: dict[str, Any], scope: str) -> None:
    assert caller_scope(context) == scope


def test_scopes_cannot_run_into_each_other() -> None:
    # a principal ending in "#x" and a key starting with it must not share an item
    ids = {CallerKey("principal:a", "b#c").record_id, CallerKey("principal:a#b", "c").record_id}
    assert len(ids) == 2


def test_in_flight_key_is_409_for_as_long_as_the_first_request_may_run(
        tables: Any, emu: Any) -> None:
    """The hold lasts the invocation's remaining time (plus 5 s), not a fixed second: a
    retry while the first request is still being scored gets 409 and scores nothing."""
    assert post(census_record())[0] == 200  # the runtime is built: the claim comes at once
    emu.set_faults(latency_ms=4000)
    record_id = CallerKey(f"iam:{ALICE}", "slow").record_id
    first: list[Any] = []
    worker = threading.Thread(target=lambda: first.append(
        post(census_record(), key="slow", caller=ALICE, timeout_s=29)))
    started = time.time()
    worker.start()
    item = None
    while item is None and time.time() - started < 3:
        item = tables.get_item(TableName=KEYS_TABLE, Key={"id": {"S": record_id}},
                               ConsistentRead=True).get("Item")
        time.sleep(0.05)
    claimed = time.time()
    assert item is not None and item["status"]["S"] == "INPROGRESS"
    assert int(item["in_progress_until"]["N"]) >= started + 29  # the whole invocation
    time.sleep(max(0.0, claimed + 2.5 - time.time()))  # well past a 1 s hold
    status, body, headers = post(census_record(), key="slow", caller=ALICE, timeout_s=29)
    assert status == 409 and body["error"]["code"] == "IdempotencyKeyInProgress"
    assert headers["retry-after"] == "1"
    worker.join(30)
    assert first[0][0] == 200
    assert requests_made(emu) == 2  # the warm-up and the first request: not the retry
