"""The HTTP trigger (``amlproxy.triggers.api.handler``): API Gateway REST and HTTP APIs and
Lambda function URLs.

Routes
    ``POST /predict``  ``application/json``: one record (an object) or a batch (a list, or
                       ``{"records": [...]}``); ``text/csv``: a batch of rows (header as the
                       schema says; ``?header=true|false`` overrides).
    ``GET /schema``    the JSON Schema of one record.

Answers (always ``application/json``, never a traceback)
    200  one record: ``{"prediction": {label, scores, value, backend, model_id, ...}}``;
         a batch: ``{"predictions": [{"index": 0, "status": "ok", "label": ...}, ...,
         {"index": 7, "status": "failed", "reason": ...}], "summary": {...}}``.
    400  ``{"errors": [{"index": 0, "field": "age", "reason": "..."}]}``: every bad field of
         every record (``line`` too for CSV), at most 100 listed; nothing is scored when a
         record is invalid. Also for bodies that are not JSON / CSV at all, and for a
         malformed HTTP event (``{"error": {"code": "BadRequest", ...}}``). An event that
         is not an HTTP request raises :class:`~amlproxy.errors.UnsupportedEventError`.
    409  a request with the same ``Idempotency-Key`` is still being scored (``Retry-After``).
    422  an ``Idempotency-Key`` already used with a different request.
    413  body over ``AMLPROXY_API_MAX_BODY_BYTES`` or more than ``AMLPROXY_API_MAX_RECORDS``
         records: use the S3 trigger for large inputs.
    415  a content type other than application/json or text/csv.
    404, 405  unknown route, wrong method (with ``Allow``).
    502  the endpoint refused or could not answer (not worth retrying as is);
    503  the endpoint stayed throttled or unavailable after the retries, or the function's
         deadline came first (``Retry-After: 1``).

Records are validated once, by this module, as a whole batch, and scored with
``Pipeline.score_records(..., validated=True)``. With ``AMLPROXY_IDEMPOTENCY_TABLE``, an
``Idempotency-Key`` header makes a repeat of the same request return the stored answer
without scoring again (422 for the same key with another request, 409 while the first is
in progress): see :mod:`amlproxy.triggers._idempotency`.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from amlproxy.core.readers import duplicate_json_key, read_records
from amlproxy.core.schema import Schema
from amlproxy.errors import ConfigurationError, RecordValidationError, UnsupportedEventError
from amlproxy.observability.carriers import http_carrier
from amlproxy.settings import LAMBDA_RESPONSE_LIMIT
from amlproxy.triggers._http import (
    JSON_TYPE,
    BadBody,
    HttpRequest,
    RequestTooLarge,
    error_response,
    for_source,
    parse_http_event,
    response,
)
from amlproxy.triggers._idempotency import HEADER as IDEMPOTENCY_HEADER
from amlproxy.triggers._idempotency import (
    IdempotencyStore,
    check_key,
    idempotent,
    request_fingerprint,
)
from amlproxy.triggers._runtime import Runtime, init_trigger, invocation

log = logging.getLogger("amlproxy.triggers")

CSV_TYPE = "text/csv"
MAX_ERRORS_LISTED = 100
MAX_REASON_CHARS = 300
S3_HINT = "score larger inputs with the S3 trigger (upload a CSV or JSON Lines file)"

init_trigger("api", __name__)  # under Lambda: the runtime is built now, in the init phase


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the HTTP trigger. An event that is not an HTTP request raises
    :class:`~amlproxy.errors.UnsupportedEventError`; a malformed HTTP request gets 400."""
    request_id = getattr(context, "aws_request_id", None)
    try:
        headers = event.get("headers") if isinstance(event, Mapping) else None
        with invocation("api", context, http_carrier(headers)) as runtime:
            try:
                request = parse_http_event(event)
            except UnsupportedEventError as exc:
                if not exc.own_kind:
                    raise
                log.warning("%s", exc, extra={"status": 400})
                return error_response(400, "BadRequest", exc.arrived)
            if request.request_id is None and isinstance(request_id, str) and request_id:
                request = replace(request, request_id=request_id)  # a hand-made event
            runtime.metrics.add("ApiRequests")
            answer = for_source(request, route(runtime, request))
            log.info("%s %s -> %s", request.method, request.path, answer["statusCode"],
                     extra={"status": answer["statusCode"], "event_kind": request.kind})
            return answer
    except UnsupportedEventError:
        raise  # not an HTTP request: the invoker gets the error (logged by invocation())
    except ConfigurationError:
        return error_response(500, "ConfigurationError", "the function is misconfigured; "
                              f"see its logs (request id {request_id})")
    except Exception:  # logged by invocation(); the client gets no traceback
        return error_response(500, "InternalError", f"internal error (request id {request_id})")


def route(runtime: Runtime, request: HttpRequest) -> dict[str, Any]:
    if request.path == "/predict":
        if request.method != "POST":
            return _not_allowed("POST", request)
        return predict(runtime, request)
    if request.path == "/schema":
        if request.method != "GET":
            return _not_allowed("GET", request)
        if "schema_body" not in runtime.cache:
            runtime.cache["schema_body"] = orjson.dumps(runtime.schema.json_schema())
        return response(200, None, raw=runtime.cache["schema_body"])
    return error_response(404, "NotFound", f"no route {request.path!r} (POST /predict, "
                          "GET /schema)")


def _not_allowed(allowed: str, request: HttpRequest) -> dict[str, Any]:
    return error_response(405, "MethodNotAllowed", f"{request.method} {request.path}: use "
                          f"{allowed}", headers={"allow": allowed})


def predict(runtime: Runtime, request: HttpRequest) -> dict[str, Any]:
    """``POST /predict``: parse, validate every record, score, answer."""
    settings = runtime.settings
    content_type = request.content_type or JSON_TYPE
    if content_type not in (JSON_TYPE, CSV_TYPE):
        return error_response(415, "UnsupportedMediaType", f"content type {content_type!r} is "
                              f"not accepted: send {JSON_TYPE} or {CSV_TYPE}")
    try:
        body = request.body(settings.api_max_body_bytes)
    except RequestTooLarge:
        return error_response(413, "PayloadTooLarge", f"the body is over "
                              f"{settings.api_max_body_bytes} bytes; {S3_HINT}")
    except BadBody as exc:
        return _bad_request([_error(None, None, str(exc))])
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is not None and settings.idempotency_table:
        problem = check_key(key)
        if problem is not None:
            return _bad_request([_error(None, None, problem)])
        remaining = runtime.deadline.remaining()
        return idempotent(
            _idempotency_store(runtime), key, request_fingerprint(request, body),
            hold_s=remaining + 5.0 if remaining is not None else 900.0,
            answer=lambda: _predict_body(runtime, request, content_type, body),
        )
    return _predict_body(runtime, request, content_type, body)


def _idempotency_store(runtime: Runtime) -> IdempotencyStore:
    store = runtime.cache.get("idempotency")
    if store is None:
        settings = runtime.settings
        assert settings.idempotency_table is not None
        store = IdempotencyStore(settings.idempotency_table, runtime.clients.retrying("dynamodb"),
                                 ttl_s=settings.idempotency_ttl_s)
        runtime.cache["idempotency"] = store
    assert isinstance(store, IdempotencyStore)
    return store


def _predict_body(runtime: Runtime, request: HttpRequest, content_type: str, body: bytes
                  ) -> dict[str, Any]:
    settings = runtime.settings
    if content_type == CSV_TYPE:
        parsed = _csv_records(runtime, body, request.query.get("header"))
    else:
        parsed = _json_records(body)
    if isinstance(parsed, dict):
        return parsed
    records, lines, single = parsed
    if len(records) > settings.api_max_records:
        return error_response(413, "PayloadTooLarge", f"more than {settings.api_max_records} "
                              f"records in one request; {S3_HINT}")
    validated, errors = _validate(runtime.schema, records, lines)
    if errors:
        return _bad_request(errors)
    return _score(runtime, validated, single, source=f"api:{request.request_id or 'request'}")


Parsed = tuple[list[Any], list[int] | None, bool]


def _json_records(body: bytes) -> Parsed | dict[str, Any]:
    try:
        doc = parsed = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return _bad_request([_error(None, None, f"invalid JSON: {exc}")])
    single = False
    if isinstance(doc, dict):
        if len(doc) == 1 and "records" in doc:
            if not isinstance(doc["records"], list):
                return _bad_request([_error(None, "records", "must be a list of records")])
            doc = doc["records"]
        else:
            doc, single = [doc], True
    if not isinstance(doc, list):
        return _bad_request([_error(None, None, "expected a record (a JSON object), a list "
                                    'of records or {"records": [...]}')])
    if not doc:
        return _bad_request([_error(None, None, "no records")])
    duplicate = _duplicate_key(body, doc, wrapped=not single and isinstance(parsed, dict))
    if duplicate is not None:
        return _bad_request([_error(None, duplicate, "a key given twice in one object "
                                    "(ambiguous)")])
    return doc, None, single


def _duplicate_key(body: bytes, records: list[Any], *, wrapped: bool) -> str | None:
    """A key some object of ``body`` names twice, or None. Cheap unless the body has more
    ':' than the parsed records have keys."""
    keys = wrapped + sum(len(r) for r in records if isinstance(r, dict))
    if body.count(b":") <= keys:
        return None
    return duplicate_json_key(body)


def _csv_records(runtime: Runtime, body: bytes, header: str | None) -> Parsed | dict[str, Any]:
    flag = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
    rows = []
    limit = runtime.settings.api_max_records
    for row in read_records(io.BytesIO(body), runtime.schema, format="csv",
                            header=flag.get((header or "").lower())):
        rows.append(row)
        if len(rows) > limit:
            break  # the caller answers 413; no need to read the rest
    if not rows:
        return _bad_request([_error(None, None, "no records")])
    records = [row.fields if row.fields is not None else row for row in rows]
    return records, [row.line for row in rows], False


def _validate(schema: Schema, records: list[Any], lines: list[int] | None
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every record validated in one call (:meth:`Schema.validate_batch`), and the errors
    of all the bad ones in order."""
    objects = [i for i, record in enumerate(records) if isinstance(record, Mapping)]
    checked = dict(zip(objects, schema.validate_batch(
        [records[i] for i in objects], [lines[i] for i in objects] if lines else None),
        strict=True))
    validated: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for index, record in enumerate(records):
        line = lines[index] if lines is not None else None
        result = checked.get(index)
        if result is None:
            reason = getattr(record, "error", None) or "not a JSON object"
            errors.append(_error(index, None, reason, line))
        elif isinstance(result, RecordValidationError):
            errors.extend(_error(index, e.field, e.reason, line) for e in result.errors)
        else:
            validated.append(result)
    return validated, errors


def _error(index: int | None, field: str | None, reason: str, line: int | None = None
           ) -> dict[str, Any]:
    entry: dict[str, Any] = {"index": index, "field": field, "reason": reason[:MAX_REASON_CHARS]}
    if line is not None:
        entry["line"] = line
    return entry


def _bad_request(errors: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {"errors": errors[:MAX_ERRORS_LISTED]}
    if len(errors) > MAX_ERRORS_LISTED:
        body["truncated"] = len(errors) - MAX_ERRORS_LISTED
    return response(400, body)


def _score(runtime: Runtime, records: list[dict[str, Any]], single: bool, *, source: str
           ) -> dict[str, Any]:
    # Validated above, as a whole batch: the pipeline does not validate them again.
    outcomes, report = runtime.pipeline.score_records(records, source=source, validated=True)
    runtime.metrics.add_report(report)
    if report.interrupted or len(outcomes) < len(records):
        return error_response(503, "DeadlineExceeded", "the function ran out of time before "
                              "every record was scored", headers={"retry-after": "1"})
    if report.ok == 0:
        reason = outcomes[0].reasons[0] if outcomes[0].reasons else "the backend failed"
        if report.exhausted:
            return error_response(503, "BackendUnavailable", reason[:MAX_REASON_CHARS],
                                  headers={"retry-after": "1"})
        return error_response(502, "BackendError", reason[:MAX_REASON_CHARS])
    if single:
        prediction = outcomes[0].prediction
        assert prediction is not None
        return response(200, {"prediction": prediction.to_dict()})
    entries: list[dict[str, Any]] = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"index": outcome.line - 1, "status": outcome.status.value}
        if outcome.prediction is not None:
            entry.update(outcome.prediction.to_dict())
        else:
            entry["reason"] = "; ".join(outcome.reasons)[:MAX_REASON_CHARS]
        entries.append(entry)
    summary = {"total": report.total, "ok": report.ok, "failed": report.failed}
    encoded = orjson.dumps({"predictions": entries, "summary": summary})
    if len(encoded) > LAMBDA_RESPONSE_LIMIT - 4096:
        return error_response(413, "ResponseTooLarge", f"the answer would exceed Lambda's "
                              f"6 MB limit: send fewer records; {S3_HINT}")
    return response(200, None, raw=encoded)
