"""Small Lambda handlers for the local service's tests, run in its worker processes
(``tests.functional.local_handlers.<name>``).

Setting ``LOCAL_HANDLERS_INIT_ERROR`` in a function's environment makes the module fail
at import (Lambda's init phase), as a bad setting does when a pipeline is built at init.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from amlproxy.errors import ConfigurationError

if os.environ.get("LOCAL_HANDLERS_INIT_ERROR"):
    raise ConfigurationError(os.environ["LOCAL_HANDLERS_INIT_ERROR"])

log = logging.getLogger("tests.local_handlers")
STARTED = time.time()


def echo(event: Any, context: Any) -> dict[str, Any]:
    """The event, what the context says, and who ran it."""
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_context": getattr(context.client_context, "custom", None)
        if context.client_context is not None and not isinstance(context.client_context, dict)
        else context.client_context,
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "pid": os.getpid(),
        "env": {k: v for k, v in os.environ.items()
                if k.startswith(("AWS_LAMBDA_", "AWS_REGION", "_HANDLER", "LOCAL_"))},
    }


def sleep(event: Any, context: Any) -> dict[str, Any]:
    """Sleeps ``event["seconds"]``; the pid that did."""
    time.sleep(float(event.get("seconds", 0)))
    return {"slept": event.get("seconds", 0), "pid": os.getpid()}


def fail(event: Any, context: Any) -> None:
    """Logs its request id (a warning), then raises ValueError(event["message"])."""
    log.warning("failing invocation %s", context.aws_request_id)
    raise ValueError(event.get("message", "failed on purpose"))


def crash(event: Any, context: Any) -> None:
    """The process exits at once, as a segfault or an out-of-memory kill would end it."""
    os._exit(3)


def logs(event: Any, context: Any) -> int:
    """Logs ``event["count"]`` records (INFO, with an extra field, and one WARNING)."""
    count = int(event.get("count", 3))
    for index in range(count):
        log.info("record %d", index, extra={"index": index})
    log.warning("a warning with a\nnewline")
    return count


def batch(event: Any, context: Any) -> dict[str, Any]:
    """An SQS batch: a body ``raise`` fails the invocation, ``fail`` reports the message in
    ``batchItemFailures``, ``sleep:S`` sleeps S seconds first."""
    failures = []
    for record in event["Records"]:
        body = record["body"]
        if body == "raise":
            raise RuntimeError("the whole batch failed")
        if body.startswith("sleep:"):
            time.sleep(float(body.split(":", 1)[1]))
        if body.startswith("fail"):
            failures.append({"itemIdentifier": record["messageId"]})
    return {"batchItemFailures": failures}


def write_then_hang(event: Any, context: Any) -> None:
    """Puts an object to the S3 endpoint of the event, then hangs past any deadline."""
    import boto3

    s3 = boto3.client("s3", endpoint_url=event["endpoint_url"], region_name="us-east-1")
    s3.put_object(Bucket=event["bucket"], Key=event["key"], Body=b"written before the kill")
    time.sleep(3600)
