"""Property tests: whatever JSON a handler is given, it answers in its source's shape or
refuses with :class:`UnsupportedEventError`, never another exception (no AttributeError,
no KeyError); the API never answers 500.

Three generators: arbitrary JSON biased towards the members events use; the handlers' own
sample events with one member replaced by arbitrary JSON or removed; and, exhaustively,
every member of every own sample replaced by each JSON type in turn, or removed."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlproxy.errors import EventIncompleteError, UnsupportedEventError
from amlproxy.triggers import api, s3, sns, sqs
from tests.events import LambdaContext, load_event, use_env

HANDLERS: dict[str, Callable[[Any, Any], Any]] = {
    "S3": s3.handler, "SNS": sns.handler, "SQS": sqs.handler, "API": api.handler,
}
OWN = {
    "S3": ["s3_put", "rekognition_s3_request"],
    "SNS": ["sns_notification"],
    "SQS": ["sqs_receive_message"],
    "API": ["apigateway_aws_proxy", "apigateway_http_api_proxy", "function_url", "alb_request"],
}
KEYS = ["Records", "eventSource", "EventSource", "eventName", "s3", "bucket", "object", "key",
        "name", "Sns", "Message", "MessageId", "messageId", "body", "httpMethod", "path",
        "requestContext", "http", "method", "headers", "queryStringParameters", "version",
        "rawPath", "isBase64Encoded", "type", "methodArn", "elb", "Type", "TopicArn"]
TEXTS = ["aws:s3", "aws:sns", "aws:sqs", "ObjectCreated:Put", "ObjectRemoved:Delete", "2.0",
         "POST", "GET", "/predict", "/schema", "Notification", "TOKEN", "REQUEST", "s3://b/k"]
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
           | st.sampled_from(TEXTS) | st.text(max_size=20))
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)
SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, moto_server: str) -> None:
    # moto answers the S3 reads of a mutated event that is still a valid one (no bucket)
    use_env(monkeypatch, backend="local", aws_endpoint_url=moto_server, region="us-east-1")


def check(name: str, event: Any) -> None:
    """The property: an answer of the source's shape, or a refusal, or (asynchronous
    sources) an incomplete event that Lambda retries."""
    try:
        answer = HANDLERS[name](event, LambdaContext())
    except UnsupportedEventError as exc:
        assert str(exc).startswith(f"the {name} handler got ")
        return
    except EventIncompleteError:
        assert name in ("S3", "SNS")  # the SQS handler reports batch item failures instead
        return
    assert isinstance(answer, dict)
    if name == "API":
        assert 200 <= answer["statusCode"] < 500 and isinstance(answer["body"], str)
    elif name == "SQS":
        assert all(f["itemIdentifier"] for f in answer["batchItemFailures"])


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``node`` (keys and list indexes), outermost first."""
    found = []
    children = node.items() if isinstance(node, dict) else (
        enumerate(node) if isinstance(node, list) else ())
    for key, child in children:
        found.append((*prefix, key))
        found.extend(paths(child, (*prefix, key)))
    return found


REMOVED = object()
REPLACEMENTS: list[Any] = [None, True, 7, "x", "", [], ["x"], {}, {"x": 1}, REMOVED]


def changed(event: Any, path: tuple[Any, ...], value: Any) -> Any:
    event = copy.deepcopy(event)
    parent = event
    for key in path[:-1]:
        parent = parent[key]
    if value is REMOVED:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return event


def mutated(event: Any, data: st.DataObject) -> Any:
    """``event`` with the member at a random path replaced by arbitrary JSON, or removed."""
    event = copy.deepcopy(event)
    parent: Any = None
    key: Any = None
    node = event
    while isinstance(node, dict | list) and node and data.draw(st.booleans(), label="deeper"):
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        parent, key = node, data.draw(st.sampled_from(keys), label="member")
        node = parent[key]
    if parent is None:
        return data.draw(JSON, label="whole event")
    if isinstance(parent, dict) and data.draw(st.booleans(), label="remove"):
        del parent[key]
    else:
        parent[key] = data.draw(JSON, label="value")
    return event


@pytest.mark.parametrize("name", list(HANDLERS))
@SETTINGS
@given(event=JSON)
def test_any_json_is_answered_or_refused(env: None, name: str, event: Any) -> None:
    check(name, event)


@pytest.mark.parametrize("name", list(HANDLERS))
@SETTINGS
@given(data=st.data())
def test_any_change_to_an_own_event_is_answered_or_refused(env: None, name: str,
                                                           data: st.DataObject) -> None:
    kind = data.draw(st.sampled_from(OWN[name]), label="kind")
    check(name, mutated(load_event(kind), data))


@pytest.mark.parametrize("name", list(HANDLERS))
def test_every_member_of_an_own_event_changed_is_answered_or_refused(env: None, name: str
                                                                     ) -> None:
    cases = 0
    for kind in OWN[name]:
        event = load_event(kind)
        for path in paths(event):
            for value in REPLACEMENTS:
                if value is REMOVED and isinstance(path[-1], int):
                    continue
                try:
                    check(name, changed(event, path, value))
                except AssertionError as exc:
                    raise AssertionError(f"{kind} with {path} = {value!r}: {exc}") from exc
                cases += 1
    assert cases > 100
