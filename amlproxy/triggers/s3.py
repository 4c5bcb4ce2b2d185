"""The S3 trigger (``amlproxy.triggers.s3.handler``): ``s3:ObjectCreated:*`` events.

Every record of the event is handled (Put, Post, Copy and CompleteMultipartUpload alike):
the key is URL-decoded (``+`` is a space, then percent-decoding), the object streamed,
scored and written as described in :mod:`amlproxy.triggers._s3objects`. The handler
returns a summary with per-object counts. When an object could not be read, the deadline
interrupted a run, or records failed (with ``AMLPROXY_RAISE_ON_FAILED``, the default), it
raises :class:`EventIncompleteError` after handling every record, so that Lambda retries
the event; keyed outputs make the retry overwrite rather than add.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import unquote_plus

from amlproxy.errors import EventIncompleteError
from amlproxy.triggers._runtime import Runtime, invocation
from amlproxy.triggers._s3objects import ObjectRef, score_object


def handler(event: Mapping[str, Any], context: Any) -> dict[str, Any]:
    """Lambda entry point of the S3 trigger."""
    with invocation("s3", context) as runtime:
        summary = handle_s3_records(runtime, event.get("Records") or ())
        raise_if_incomplete(runtime, summary)
        return summary


def object_refs(records: Iterable[Any]) -> tuple[list[ObjectRef], list[str]]:
    """The objects an S3 event announces, and why other records were ignored."""
    refs: list[ObjectRef] = []
    ignored: list[str] = []
    for record in records:
        if not isinstance(record, Mapping) or record.get("eventSource") != "aws:s3":
            ignored.append("not an S3 event record")
            continue
        name = str(record.get("eventName", ""))
        if not name.startswith("ObjectCreated:"):
            ignored.append(f"event {name!r} is not ObjectCreated")
            continue
        s3 = record.get("s3") or {}
        obj = s3.get("object") or {}
        refs.append(
            ObjectRef(
                bucket=str((s3.get("bucket") or {}).get("name", "")),
                key=unquote_plus(str(obj.get("key", ""))),
                version_id=obj.get("versionId") or None,
                etag=obj.get("eTag") or None,
            )
        )
    return refs, ignored


def handle_s3_records(
    runtime: Runtime, records: Iterable[Any], *, require_input_prefix: bool = True
) -> dict[str, Any]:
    """Scores every object the records announce; the event's summary."""
    refs, ignored = object_refs(records)
    objects = [
        score_object(runtime, ref, require_input_prefix=require_input_prefix) for ref in refs
    ]
    return summarize(objects, ignored=len(ignored))


def summarize(objects: list[dict[str, Any]], *, ignored: int = 0) -> dict[str, Any]:
    """Per-object summaries plus the totals over them."""
    totals = {"total": 0, "ok": 0, "rejected": 0, "failed": 0}
    states = {"scored": 0, "skipped": 0, "error": 0, "interrupted": 0}
    for item in objects:
        states[item["status"]] += 1
        for name in totals:
            totals[name] += int(item.get(name, 0))
    return {"objects": objects, **states, "ignored_records": ignored, "records": totals}


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
