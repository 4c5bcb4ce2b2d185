"""The S3 trigger (``amlproxy.triggers.s3.handler``): ``s3:ObjectCreated:*`` events.

Every record of the event is handled (Put, Post, Copy and CompleteMultipartUpload alike):
the key is URL-decoded (``+`` is a space, then percent-decoding), the object streamed,
scored and written as described in :mod:`amlproxy.triggers._s3objects`. Any other event,
an S3 event with a record of another kind (``ObjectRemoved:*``...) and a malformed one
raise :class:`~amlproxy.errors.UnsupportedEventError` before anything is read
(:mod:`amlproxy.triggers._events`). The handler
returns a summary with per-object counts. When an object could not be read, the deadline
interrupted a run, or records failed (with ``AMLPROXY_RAISE_ON_FAILED``, the default), it
raises :class:`EventIncompleteError` after handling every record, so that Lambda retries
the event; keyed outputs make the retry overwrite rather than add.
"""

from __future__ import annotations

from typing import Any

from amlproxy.errors import EventIncompleteError
from amlproxy.triggers._events import s3_object_refs
from amlproxy.triggers._runtime import Runtime, init_trigger, invocation
from amlproxy.triggers._s3objects import ObjectRef, score_object, summarize

init_trigger("s3", __name__)  # under Lambda: the runtime is built now, in the init phase


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the S3 trigger."""
    with invocation("s3", context) as runtime:
        summary = handle_s3_objects(runtime, s3_object_refs(event))
        raise_if_incomplete(runtime, summary)
        return summary


def handle_s3_objects(
    runtime: Runtime, refs: list[ObjectRef], *, require_input_prefix: bool = True
) -> dict[str, Any]:
    """Scores every object; the event's summary."""
    objects = [
        score_object(runtime, ref, require_input_prefix=require_input_prefix) for ref in refs
    ]
    return summarize(objects)


def raise_if_incomplete(runtime: Runtime, summary: dict[str, Any]) -> None:
    """Raise :class:`EventIncompleteError` when the event must be retried."""
    problems = []
    if summary["error"]:
        problems.append(f"{summary['error']} object(s) could not be scored")
    if summary["interrupted"]:
        problems.append(f"{summary['interrupted']} object(s) interrupted by the deadline")
    failed = summary["records"]["failed"]
    if failed and runtime.settings.raise_on_failed:
        problems.append(f"{failed} record(s) failed")
    if problems:
        raise EventIncompleteError("event incomplete: " + "; ".join(problems), summary)
