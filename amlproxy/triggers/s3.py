"""The S3 trigger (``amlproxy.triggers.s3.handler``, "the planner"): ``s3:ObjectCreated:*``
notifications, delivered directly by S3 or through a queue (S3 -> SQS -> this handler).

Every object announced (Put, Post, Copy and CompleteMultipartUpload alike) is handled: the
key is URL-decoded (``+`` is a space, then percent-decoding), the object streamed, and
scored, or, with ``AMLPROXY_CHUNK_QUEUE_URL`` and larger than one chunk, planned and fanned
out to the chunk worker (:mod:`amlproxy.triggers._s3objects`, :mod:`amlproxy.chunks`).

- A direct S3 event: the handler returns a summary with per-object counts. When an object
  could not be read or planned, the deadline interrupted a run, or records failed (with
  ``AMLPROXY_RAISE_ON_FAILED``, the default), it raises :class:`EventIncompleteError`
  after handling every record, so that Lambda retries the event; keyed outputs make the
  retry overwrite rather than add.
- An SQS event whose messages are S3 event notifications: the answer is
  ``{"batchItemFailures": [...]}`` (``ReportBatchItemFailures``), a message failing for
  the reasons above, or when the deadline came before it; SQS redelivers it. The
  ``s3:TestEvent`` message is acknowledged and logged.

Any other event (a plain SQS message included), an S3 notification of another kind
(``ObjectRemoved:*``...) and a malformed one raise
:class:`~amlproxy.errors.UnsupportedEventError` before anything is read
(:mod:`amlproxy.triggers._events`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from amlproxy.errors import EventIncompleteError
from amlproxy.observability.carriers import sqs_carriers
from amlproxy.triggers._events import is_sqs_event, s3_notification_messages, s3_object_refs
from amlproxy.triggers._runtime import Runtime, init_trigger, invocation
from amlproxy.triggers._s3objects import ObjectRef, score_object, summarize

log = logging.getLogger("amlproxy.triggers")

init_trigger("s3", __name__)  # under Lambda: the runtime is built now, in the init phase


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the S3 trigger."""
    if is_sqs_event(event):
        records = event.get("Records") if isinstance(event, Mapping) else None
        parent, links = sqs_carriers(records if isinstance(records, list) else ())
        with invocation("s3", context, parent, links) as runtime:
            return handle_queued(runtime, s3_notification_messages(event))
    with invocation("s3", context) as runtime:
        summary = handle_s3_objects(runtime, s3_object_refs(event))
        raise_if_incomplete(runtime, summary)
        return summary


def handle_queued(runtime: Runtime, messages: list[tuple[str, list[ObjectRef] | None]]
                  ) -> dict[str, Any]:
    """The notifications an SQS event brings; the batch item failures."""
    failures: list[dict[str, str]] = []
    for message_id, refs in messages:
        if refs is None:
            log.info("s3:TestEvent acknowledged (message %s)", message_id)
            continue
        if runtime.deadline.expired():
            failures.append({"itemIdentifier": message_id})
            continue
        summary = handle_s3_objects(runtime, refs)
        if problems(runtime, summary):
            log.warning("message %s will be redelivered", message_id,
                        extra={"summary": summary})
            failures.append({"itemIdentifier": message_id})
    runtime.metrics.add("BatchItemFailures", len(failures))
    return {"batchItemFailures": failures}


def handle_s3_objects(
    runtime: Runtime, refs: list[ObjectRef], *, require_input_prefix: bool = True
) -> dict[str, Any]:
    """Scores (or plans) every object; the event's summary."""
    objects = [
        score_object(runtime, ref, require_input_prefix=require_input_prefix) for ref in refs
    ]
    return summarize(objects)


def problems(runtime: Runtime, summary: dict[str, Any]) -> list[str]:
    """Why the objects of ``summary`` must be handled again (none: they are done)."""
    found = []
    if summary["error"]:
        found.append(f"{summary['error']} object(s) could not be scored")
    if summary["interrupted"]:
        found.append(f"{summary['interrupted']} object(s) interrupted by the deadline")
    failed = summary["records"]["failed"]
    if failed and runtime.settings.raise_on_failed:
        found.append(f"{failed} record(s) failed")
    return found


def raise_if_incomplete(runtime: Runtime, summary: dict[str, Any]) -> None:
    """Raise :class:`EventIncompleteError` when the event must be retried."""
    found = problems(runtime, summary)
    if found:
        raise EventIncompleteError("event incomplete: " + "; ".join(found), summary)
