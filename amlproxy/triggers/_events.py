"""Lambda events: what arrived, and the own shapes of the S3, SNS and SQS handlers.

Every handler checks its event before doing any work. An event of another kind, a payload
that is not an event object (``null``, ``[]``, a string, a number) and an event of the
handler's own kind that is malformed (an SQS record without a ``messageId``, an S3 record
without a key) raise :class:`~amlproxy.errors.UnsupportedEventError`, whose message names
what arrived::

    the SQS handler got an S3 event (Records[0].eventSource 'aws:s3')
    the S3 handler got a malformed S3 event: Records[0].s3.object.key is missing
    the SNS handler got JSON null, not an event object

:func:`describe` names every kind that ``sam local generate-event`` renders (see
tests/events/README.md): by its ``Records[].eventSource``, or by the members that identify
it (an EventBridge event's ``source`` and ``detail-type``, an API Gateway authorizer's
``type`` and ``methodArn``...), else by its first keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from amlproxy.core.schema_format import json_type_name
from amlproxy.errors import UnsupportedEventError

if TYPE_CHECKING:  # imported by s3_object_refs: the API trigger does not load S3 scoring
    from amlproxy.triggers._s3objects import ObjectRef

RECORD_SOURCES = {
    "aws:s3": "an S3 event",
    "aws:sns": "an SNS event",
    "aws:sqs": "an SQS event",
    "aws:kinesis": "a Kinesis stream event",
    "aws:dynamodb": "a DynamoDB stream event",
    "aws:ses": "an SES email event",
    "aws:codecommit": "a CodeCommit event",
    "aws:kafka": "an Amazon MSK event",
    "SelfManagedKafka": "a self-managed Kafka event",
    "aws:mq": "an Amazon MQ event",
}
# (members that identify a kind, its name, the member quoted as evidence)
SHAPES: tuple[tuple[tuple[str, ...], str, str | None], ...] = (
    (("source", "detail-type"), "an EventBridge event", "detail-type"),
    (("awslogs",), "a CloudWatch Logs subscription event", None),
    (("invocationSchemaVersion", "tasks"), "an S3 Batch Operations event", None),
    (("RequestType", "ResponseURL"), "a CloudFormation custom resource request", "RequestType"),
    (("deliveryStreamArn", "records"), "a Kinesis Data Firehose event", None),
    (("applicationArn", "records"), "a Kinesis Data Analytics event", None),
    (("invokingEvent", "configRuleArn"), "an AWS Config rule event", None),
    (("CodePipeline.job",), "a CodePipeline job event", None),
    (("labelingJobArn",), "a SageMaker Ground Truth event", None),
    (("session", "request", "version"), "an Alexa Skills Kit request", None),
    (("header", "payload"), "an Alexa Smart Home directive", None),
    (("invocationSource", "bot"), "an Amazon Lex event", "invocationSource"),
    (("sessionState", "interpretations"), "an Amazon Lex V2 event", None),
    (("arguments", "info"), "an AppSync resolver event", None),
    (("identityPoolId", "eventType"), "a Cognito Sync event", "eventType"),
    (("Details", "Name"), "an Amazon Connect contact flow event", "Name"),
    (("summaryVersion", "envelope"), "a WorkMail email event", None),
)
SHOWN_KEYS = 5


def short(value: Any, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters (for messages)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(event: Any) -> str:
    """What ``event`` is, in a few words, with the member that says so."""
    if not isinstance(event, Mapping):
        if isinstance(event, list | tuple):
            return f"a JSON array of {len(event)} item(s), not an event object"
        if event is None:
            return "JSON null, not an event object"
        kind = json_type_name(event).split()[-1]  # "a number" -> "number"
        return f"a JSON {kind} ({short(event, 40)}), not an event object"
    if "Records" in event:
        return _describe_records(event["Records"])
    http = _describe_http(event)
    if http is not None:
        return http
    source = event.get("eventSource")
    if isinstance(source, str):  # Kafka and MQ events: a top-level eventSource
        return f"{RECORD_SOURCES.get(source, 'an event')} (eventSource {short(source)})"
    for members, name, quoted in SHAPES:
        if all(member in event for member in members):
            if quoted is not None:
                return f"{name} ({quoted} {short(event[quoted])})"
            return f"{name} ({', '.join(members)})"
    if not event:
        return "an empty object"
    keys = ", ".join(short(str(key), 40) for key in list(event)[:SHOWN_KEYS])
    more = ", ..." if len(event) > SHOWN_KEYS else ""
    return f"an object with the keys {keys}{more}"


def _describe_records(records: Any) -> str:
    if not isinstance(records, list):
        return f"an object whose Records is {json_type_name(records)}, not an array"
    if not records:
        return "an event with an empty Records array"
    return _describe_record(records[0], 0, prefix="")


def _describe_record(record: Any, index: int, *, prefix: str) -> str:
    where = f"Records[{index}]"
    if not isinstance(record, Mapping):
        return f"{prefix}an object whose {where} is {json_type_name(record)}, not an object"
    for key in ("eventSource", "EventSource"):
        source = record.get(key)
        if isinstance(source, str):
            name = RECORD_SOURCES.get(source, "an event")
            return f"{prefix}{name} ({where}.{key} {short(source)})"
    if "cf" in record:
        return f"{prefix}a CloudFront Lambda@Edge event ({where}.cf)"
    keys = ", ".join(short(str(key), 40) for key in list(record)[:SHOWN_KEYS]) or "none"
    return f"{prefix}an object whose {where} has no eventSource (keys: {keys})"


def _describe_http(event: Mapping[str, Any]) -> str | None:
    kind = event.get("type")
    if kind in ("TOKEN", "REQUEST") and ("methodArn" in event or "routeArn" in event):
        arn = "methodArn" if "methodArn" in event else "routeArn"
        return f"an API Gateway {kind} authorizer event (type {short(kind)}, {arn})"
    context = event.get("requestContext")
    if isinstance(context, Mapping) and "elb" in context:
        return "an Application Load Balancer request (requestContext.elb)"
    if isinstance(context, Mapping) and "http" in context:
        return "an HTTP API or function URL request (requestContext.http)"
    if "httpMethod" in event:
        return f"an API Gateway REST request (httpMethod {short(event['httpMethod'])})"
    return None


# ------------------------------------------------------------------ own shapes


def records_of(event: Any, handler: str, source: str) -> list[Mapping[str, Any]]:
    """The records of an event whose every ``Records[i]`` comes from ``source``
    (``"aws:sqs"``...); :class:`UnsupportedEventError` naming what arrived otherwise."""
    key = "EventSource" if source == "aws:sns" else "eventSource"
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list) or not records:
        raise UnsupportedEventError(handler, describe(event))
    for index, record in enumerate(records):
        if isinstance(record, Mapping) and record.get(key) == source:
            continue
        if index == 0:
            raise UnsupportedEventError(handler, describe(event))
        own = RECORD_SOURCES[source]
        raise UnsupportedEventError(handler, _describe_record(record, index, prefix=(
            f"{own} mixed with another kind: ")), own_kind=True)
    return records


def text_at(record: Mapping[str, Any], path: str, *, handler: str, kind: str,
            index: int) -> str:
    """The non-empty string at ``path`` (``"s3.object.key"``) of ``Records[index]`` of a
    ``kind`` event (``"SQS"``); else :class:`UnsupportedEventError` (``own_kind``)."""
    value = _at(record, path)
    if isinstance(value, str) and value:
        return value
    raise _malformed(handler, kind, index, path, value)


def optional_text_at(record: Mapping[str, Any], path: str, *, handler: str, kind: str,
                     index: int) -> str | None:
    """Like :func:`text_at`, but None for a missing, null or empty value."""
    value = _at(record, path)
    if value is None or isinstance(value, str):
        return value or None
    raise _malformed(handler, kind, index, path, value)


def _at(record: Mapping[str, Any], path: str) -> Any:
    value: Any = record
    for name in path.split("."):
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def _malformed(handler: str, kind: str, index: int, path: str, value: Any
               ) -> UnsupportedEventError:
    problem = "is missing" if value is None else (
        "is empty" if value == "" else f"is {json_type_name(value)}, not a string")
    return UnsupportedEventError(
        handler, f"a malformed {kind} event: Records[{index}].{path} {problem}", own_kind=True)


def s3_object_refs(event: Any, handler: str = "S3") -> list[ObjectRef]:
    """The objects an ``s3:ObjectCreated:*`` event announces (keys URL-decoded: ``+`` is a
    space, then percent-decoding). Any other event, and an S3 event with a record of
    another kind (``ObjectRemoved:Delete``...), raise :class:`UnsupportedEventError`."""
    from amlproxy.triggers._s3objects import ObjectRef

    refs = []
    for index, record in enumerate(records_of(event, handler, "aws:s3")):
        where: dict[str, Any] = {"handler": handler, "kind": "S3", "index": index}
        name = text_at(record, "eventName", **where)
        if not name.startswith("ObjectCreated:"):
            raise UnsupportedEventError(handler, f"an S3 {short(name)} event (Records[{index}]"
                                        ".eventName): only ObjectCreated events are scored")
        refs.append(ObjectRef(
            bucket=text_at(record, "s3.bucket.name", **where),
            key=unquote_plus(text_at(record, "s3.object.key", **where)),
            version_id=optional_text_at(record, "s3.object.versionId", **where),
            etag=optional_text_at(record, "s3.object.eTag", **where),
        ))
    return refs


def is_sqs_event(event: Any) -> bool:
    """Whether ``event`` is an SQS event (its first record's ``eventSource``)."""
    records = event.get("Records") if isinstance(event, Mapping) else None
    first = records[0] if isinstance(records, list) and records else None
    return isinstance(first, Mapping) and first.get("eventSource") == "aws:sqs"


def sqs_bodies(event: Any, handler: str) -> list[tuple[str, str]]:
    """(messageId, body) of every message of an SQS event, checked as the SQS handler
    checks them (:class:`UnsupportedEventError` for another event or a malformed one)."""
    found = []
    for index, record in enumerate(records_of(event, handler, "aws:sqs")):
        where: dict[str, Any] = {"handler": handler, "kind": "SQS", "index": index}
        found.append((text_at(record, "messageId", **where), text_at(record, "body", **where)))
    return found


def s3_notification_messages(event: Any, handler: str = "S3"
                             ) -> list[tuple[str, list[ObjectRef] | None]]:
    """(messageId, objects) of every message of an SQS event whose bodies are S3 event
    notifications (S3 -> SQS); objects is None for ``s3:TestEvent`` (the message S3 sends
    when the notification is configured). An SQS event of other messages is not the S3
    handler's: :class:`UnsupportedEventError`, as for a batch that mixes them."""
    found: list[tuple[str, list[ObjectRef] | None]] = []
    for index, (message_id, body) in enumerate(sqs_bodies(event, handler)):
        doc = _json_object(body)
        if doc is not None and doc.get("Event") == "s3:TestEvent":
            found.append((message_id, None))
            continue
        if doc is None or not isinstance(doc.get("Records"), list):
            what = (f"an SQS event whose messages are not S3 event notifications "
                    f"(Records[{index}].body {short(body, 40)})")
            if index == 0:
                raise UnsupportedEventError(handler, what)
            raise UnsupportedEventError(handler, "an SQS event mixing S3 event notifications "
                                        f"and other messages (Records[{index}].body "
                                        f"{short(body, 40)})", own_kind=True)
        try:
            found.append((message_id, s3_object_refs(doc, handler)))
        except UnsupportedEventError as exc:
            raise UnsupportedEventError(handler, f"{exc.arrived} in Records[{index}].body",
                                        own_kind=True) from exc
    return found


def _json_object(body: str) -> dict[str, Any] | None:
    import orjson

    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None
