"""Lambda events in the shapes AWS delivers them, built from what moto hands over.

- S3: moto's bucket notification to an SQS queue carries the S3 event itself
  (``{"Records": [{"eventSource": "aws:s3", ...}]}``): passed on as is.
- SNS: an SNS -> SQS subscription delivers the notification envelope (``Type``,
  ``MessageId``, ``SigningCertURL``...); Lambda's SNS record spells two names differently
  (``SigningCertUrl``, ``UnsubscribeUrl``) and wraps it in ``EventSource`` /
  ``EventSubscriptionArn``.
- SQS: a received message becomes an event-source-mapping record (``messageId``,
  ``receiptHandle``, ``body``, ``attributes``, ``messageAttributes``, ``md5OfBody``...).
- HTTP: an HTTP request becomes an API Gateway HTTP API payload 2.0 event.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

from amlproxy.emulator.httpcore import Request
from amlproxy.local.config import ACCOUNT, REGION

_TEXT_TYPES = ("application/json", "text/", "application/x-www-form-urlencoded")


def sns_record(envelope: Mapping[str, Any], subscription_arn: str) -> dict[str, Any]:
    """Lambda's SNS event record for an SNS -> SQS notification envelope."""
    sns = {
        "Type": envelope.get("Type", "Notification"),
        "MessageId": envelope.get("MessageId", ""),
        "TopicArn": envelope.get("TopicArn", ""),
        "Subject": envelope.get("Subject"),
        "Message": envelope.get("Message", ""),
        "Timestamp": envelope.get("Timestamp", ""),
        "SignatureVersion": envelope.get("SignatureVersion", "1"),
        "Signature": envelope.get("Signature", ""),
        "SigningCertUrl": envelope.get("SigningCertURL", ""),
        "UnsubscribeUrl": envelope.get("UnsubscribeURL", ""),
        "MessageAttributes": envelope.get("MessageAttributes") or {},
    }
    return {
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": subscription_arn,
        "Sns": sns,
    }


def sqs_record(message: Mapping[str, Any], queue_arn: str) -> dict[str, Any]:
    """The event-source-mapping record of one ``ReceiveMessage`` message."""
    attributes = {str(k): str(v) for k, v in (message.get("Attributes") or {}).items()}
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""),
        "attributes": attributes,
        "messageAttributes": {
            name: _sqs_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def _sqs_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    # ReceiveMessage spells them StringValue/BinaryValue/DataType; Lambda camel-cases them.
    entry: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        entry["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        entry["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return entry


def http_api_event(request: Request, source_ip: str = "127.0.0.1") -> dict[str, Any]:
    """An API Gateway HTTP API (payload format 2.0) event for ``request``."""
    now = time.time()
    query: dict[str, str] = {}
    cookies: list[str] = []
    for part in request.query.split("&") if request.query else ():
        name, _, value = part.partition("=")
        name, value = unquote_plus(name), unquote_plus(value)
        query[name] = f"{query[name]},{value}" if name in query else value
    headers = dict(request.headers)
    if "cookie" in headers:
        cookies = [c.strip() for c in headers.pop("cookie").split(";") if c.strip()]
    content_type = headers.get("content-type", "")
    text = content_type.startswith(_TEXT_TYPES) or not request.body
    body: str | None = None
    if request.body and text:
        try:
            body = request.body.decode("utf-8")
        except UnicodeDecodeError:
            text = False
    if request.body and not text:
        body = base64.b64encode(request.body).decode()
    request_id = str(uuid.uuid4())
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": request.path,
        "rawQueryString": request.query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": "local",
            "domainName": headers.get("host", "localhost"),
            "domainPrefix": "local",
            "http": {
                "method": request.method,
                "path": request.path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": not text,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if body is not None:
        event["body"] = body
    return event
