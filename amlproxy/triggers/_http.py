"""HTTP events for the API trigger: API Gateway REST (payload 1.0), HTTP API (2.0) and
Lambda function URLs (2.0 shape), normalised into one :class:`HttpRequest`; and the
proxy-integration response every one of them accepts.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

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
    kind: str  # "rest", "http-api" or "function-url"
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


def parse_http_event(event: Mapping[str, Any]) -> HttpRequest:
    """The request of a REST API, HTTP API or function URL event."""
    context: Mapping[str, Any] = event.get("requestContext") or {}
    if event.get("version") == "2.0" or "http" in context:
        http: Mapping[str, Any] = context.get("http") or {}
        method = str(http.get("method", ""))
        path = str(event.get("rawPath") or http.get("path") or "/")
        domain = str(context.get("domainName", ""))
        kind = "function-url" if ".lambda-url." in domain else "http-api"
        stage = str(context.get("stage") or "")
        if stage and stage != "$default" and path.startswith(f"/{stage}/"):
            path = path[len(stage) + 1 :]
    else:
        method = str(event.get("httpMethod", ""))
        path = str(event.get("path") or "/")
        kind = "rest"
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    query = {str(k): str(v) for k, v in (event.get("queryStringParameters") or {}).items()}
    return HttpRequest(
        method=method.upper(),
        path=path.rstrip("/") or "/",
        headers=headers,
        query=query,
        raw_body=event.get("body"),
        base64_encoded=bool(event.get("isBase64Encoded")),
        request_id=context.get("requestId"),
        kind=kind,
        context=context,
    )


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
