"""Pieces shared by the protocol handlers: request ids, JSON answers, fake account facts."""

from __future__ import annotations

import itertools
import os
from typing import Any

import orjson

from amlproxy.emulator.httpcore import Response

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"

_PREFIX = os.urandom(4).hex()
_counter = itertools.count(1)


def next_request_id() -> str:
    """A unique request id, shaped like AWS's (8-4-4-4-12 hex)."""
    n = next(_counter)
    return f"{_PREFIX}-0000-4000-8000-{n:012x}"


def json_reply(
    status: int,
    payload: Any,
    content_type: str = "application/json",
    headers: list[tuple[str, str]] | None = None,
    delay_s: float = 0.0,
) -> Response:
    """A JSON answer with the usual AWS ``x-amzn-RequestId`` header."""
    all_headers = [("Content-Type", content_type), ("x-amzn-RequestId", next_request_id())]
    if headers:
        all_headers.extend(headers)
    return Response(status, orjson.dumps(payload), all_headers, delay_s=delay_s)


def drop_after(delay_s: float) -> Response:
    """Hold the request ``delay_s`` seconds, then close the connection without answering."""
    return Response(0, delay_s=delay_s, drop=True)
