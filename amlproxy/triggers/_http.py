"""HTTP events for the API trigger: API Gateway REST (payload 1.0), HTTP API (2.0),
Lambda function URLs (2.0 shape) and Application Load Balancer targets, normalised into
one :class:`HttpRequest`; and the proxy-integration response every one of them accepts.

:func:`parse_http_event` refuses what is not an HTTP request with
:class:`~amlproxy.errors.UnsupportedEventError`: another source's event, an API Gateway
authorizer event, a payload that is not an object. An HTTP request whose parts have the
wrong types (headers that are not an object of strings, a body that is not a string...)
raises it with ``own_kind=True``: the handler answers 400.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_plus

import orjson

from amlproxy.core.schema_format import json_type_name
from amlproxy.errors import UnsupportedEventError
from amlproxy.triggers._events import describe

JSON_TYPE = "application/json"


class RequestTooLarge(Exception):
    """The request body is over the size cap (internal: becomes a 413)."""


class BadBody(Exception):
    """The body cannot even be decoded (internal: becomes a 400)."""


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """The parts of an HTTP event the API uses. ``headers`` have lower-case names."""

    method: str
    path: str
    headers: Mapping[str, str]
    query: Mapping[str, str]
    raw_body: str | None
    base64_encoded: bool
    request_id: str | None
    kind: str  # "rest", "http-api", "function-url" or "alb"
    multi_value: bool = False  # ALB with multi-value headers: answer multiValueHeaders
    context: Mapping[str, Any] = field(default_factory=dict)  # the event's requestContext

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters ("" when absent)."""
        return self.headers.get("content-type", "").split(";", 1)[0].strip().lower()

    def body(self, limit: int) -> bytes:
        """The body bytes (base64 decoded); :class:`RequestTooLarge` beyond ``limit``."""
        raw = self.raw_body or ""
        if self.base64_encoded:
            if len(raw) // 4 * 3 > limit + 3:
                raise RequestTooLarge
            try:
                data = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise BadBody(f"the body is marked base64 but is not: {exc}") from None
        else:
            if len(raw) > limit:  # every character is at least one byte
                raise RequestTooLarge
            data = raw.encode("utf-8", "surrogatepass")
        if len(data) > limit:
            raise RequestTooLarge
        return data


def parse_http_event(event: Any) -> HttpRequest:
    """The request of a REST API, HTTP API, function URL or ALB event (see the module
    docstring for what is refused)."""
    if not (event.__class__ is dict or isinstance(event, Mapping)) or _is_authorizer(event):
        raise UnsupportedEventError("API", describe(event))
    context = event.get("requestContext")
    if context is not None and context.__class__ is not dict and not isinstance(
            context, Mapping):
        raise _malformed("requestContext", context, "an object")
    context = context or {}
    if "http" in context or (event.get("version") == "2.0" and (
            "routeKey" in event or "rawPath" in event)):
        method, path, kind = _v2_route(event, context)
    elif "httpMethod" in event:
        method = _text(event, "httpMethod")
        path = _text(event, "path", default="/")
        kind = "alb" if "elb" in context else "rest"
    else:
        raise UnsupportedEventError("API", describe(event))
    multi_value = kind == "alb" and "multiValueHeaders" in event
    headers = {k.lower(): v for k, v in _strings(event, "headers", multi_value).items()}
    query = _strings(event, "queryStringParameters", multi_value)
    if kind == "alb":  # the load balancer passes the query string as sent
        query = {unquote_plus(k): unquote_plus(v) for k, v in query.items()}
    body = event.get("body")
    if body is not None and not isinstance(body, str):
        raise _malformed("body", body, "a string")
    encoded = event.get("isBase64Encoded")
    if encoded is not None and not isinstance(encoded, bool):
        raise _malformed("isBase64Encoded", encoded, "a boolean")
    request_id = context.get("requestId")
    return HttpRequest(
        method=method.upper(),
        path=path.rstrip("/") or "/",
        headers=headers,
        query=query,
        raw_body=body,
        base64_encoded=bool(encoded),
        request_id=request_id if isinstance(request_id, str) and request_id else None,
        kind=kind,
        multi_value=multi_value,
        context=context,
    )


def _is_authorizer(event: Mapping[str, Any]) -> bool:
    return event.get("type") in ("TOKEN", "REQUEST") and (
        "methodArn" in event or "routeArn" in event)


def _v2_route(event: Mapping[str, Any], context: Mapping[str, Any]) -> tuple[str, str, str]:
    http = context.get("http")
    if http.__class__ is not dict and not isinstance(http, Mapping):
        raise _malformed("requestContext.http", http, "an object")
    method = _text(http, "method", where="requestContext.http.")
    path = _text(event, "rawPath", default="") or _text(
        http, "path", default="/", where="requestContext.http.")
    domain = context.get("domainName")
    kind = "function-url" if isinstance(domain, str) and ".lambda-url." in domain else "http-api"
    stage = context.get("stage")
    if isinstance(stage, str) and stage and stage != "$default" and path.startswith(
            f"/{stage}/"):
        path = path[len(stage) + 1 :]
    return method, path, kind


def _text(parent: Mapping[str, Any], name: str, *, default: str | None = None,
          where: str = "") -> str:
    value = parent.get(name)
    if value.__class__ is str and value:
        return value
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, str) and value:
        return value
    raise _malformed(where + name, value, "a non-empty string")


def _strings(event: Mapping[str, Any], name: str, multi_value: bool) -> dict[str, str]:
    """A map of strings (headers, query parameters); with ``multi_value`` (ALB), the last
    value of each ``multiValue...`` list."""
    if multi_value:
        name = "multiValue" + name[0].upper() + name[1:]
    value = event.get(name)
    if value is None:
        return {}
    if value.__class__ is not dict and not isinstance(value, Mapping):
        raise _malformed(name, value, "an object")
    found = {}
    for key, item in value.items():
        if key.__class__ is str and item.__class__ is str:  # (what str() below gives)
            found[key] = item
            continue
        if multi_value and isinstance(item, list) and item:
            item = item[-1]
        if isinstance(item, bool) or not isinstance(item, str | int | float):
            raise _malformed(f"{name}[{key!r}]", item, "a string")
        found[str(key)] = str(item)
    return found


def _malformed(name: str, value: Any, expected: str) -> UnsupportedEventError:
    if value is None:
        problem = "is missing"
    elif value == "":
        problem = "is empty"
    else:
        problem = f"is {json_type_name(value)}, not {expected}"
    return UnsupportedEventError("API", f"a malformed HTTP request: {name} {problem}",
                                 own_kind=True)


def response(
    status: int, body: Any, *, headers: Mapping[str, str] | None = None, raw: bytes | None = None
) -> dict[str, Any]:
    """A proxy-integration response with a JSON body (``raw``: already encoded)."""
    text = (raw if raw is not None else orjson.dumps(body)).decode()
    return {
        "statusCode": status,
        "headers": {"content-type": JSON_TYPE, **(headers or {})},
        "body": text,
        "isBase64Encoded": False,
    }


def error_response(
    status: int, code: str, reason: str, *, headers: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """``{"error": {"code": ..., "reason": ...}}`` with ``status``."""
    return response(status, {"error": {"code": code, "reason": reason}}, headers=headers)


def for_source(request: HttpRequest, answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` in the shape the request's source expects: an ALB also wants a
    ``statusDescription`` (and ``multiValueHeaders`` when the target group has multi-value
    headers on); API Gateway refuses members it does not know, so the others get it as is."""
    if request.kind != "alb":
        return answer
    status = int(answer["statusCode"])
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    shaped = {**answer, "statusDescription": f"{status} {reason}".strip()}
    if request.multi_value:
        shaped["multiValueHeaders"] = {k: [v] for k, v in shaped.pop("headers").items()}
    return shaped
