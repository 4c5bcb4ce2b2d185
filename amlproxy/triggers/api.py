"""The HTTP trigger (``amlproxy.triggers.api.handler``): API Gateway REST and HTTP APIs and
Lambda function URLs.

Routes
    ``POST /predict``      ``application/json``: one record (an object) or a batch (a list,
                           or ``{"records": [...]}``); ``text/csv``: a batch of rows (header
                           as the schema says; ``?header=true|false`` overrides).
    ``GET /schema``        the JSON Schema of one record.
    ``GET /openapi.json``  the OpenAPI 3.1 document of this API, generated from the same
                           record schema (:mod:`amlproxy.triggers._openapi`).

Answers (always ``application/json``, never a traceback)
    200  one record: ``{"prediction": {label, scores, value, backend, model_id, ...}}``;
         a batch: ``{"predictions": [{"index": 0, "status": "ok", "label": ...}, ...,
         {"index": 7, "status": "failed", "reason": ...}], "summary": {...}}``.
    400  ``{"errors": [{"index": 0, "field": "age", "reason": "..."}]}``: every bad field of
         every record (``line`` too for CSV), at most 100 listed; nothing is scored when a
         record is invalid. Also for bodies that are not JSON / CSV at all, a bad CSV
         header, a bad ``?header=`` or ``Idempotency-Key`` (see :mod:`._api_bodies`), and
         for a malformed HTTP event (``{"error": {"code": "BadRequest", ...}}``). An event
         that is not an HTTP request raises :class:`~amlproxy.errors.UnsupportedEventError`.
    409  a request with the same ``Idempotency-Key`` is still being scored (``Retry-After``).
    422  an ``Idempotency-Key`` already used with a different request.
    413  body over ``AMLPROXY_API_MAX_BODY_BYTES`` or more than ``AMLPROXY_API_MAX_RECORDS``
         records: use the S3 trigger for large inputs.
    415  a content type other than application/json or text/csv.
    404, 405  unknown route, wrong method (with ``Allow``).
    502  the endpoint refused or could not answer (not worth retrying as is);
    503  the endpoint stayed throttled or unavailable after the retries, the function's
         deadline came first, or the results could not be stored (``Retry-After: 1``).

Records are validated once, by this module, as a whole batch, and scored with
``Pipeline.score_records(..., validated=True)``.

Results go to the configured shared sinks (``AMLPROXY_SINKS``: DynamoDB, callback) before
the answer: one item per record keyed ``api:<requestId>`` and the record's 1-based index
(``pk``/``sk``), or ``api:key:<caller digest>:<Idempotency-Key>`` when the request carries
a key (with ``AMLPROXY_IDEMPOTENCY_TABLE``), so that a retry overwrites its items. A 200
means every sink holds the results; if a sink write fails the answer is 503
``ResultsNotStored`` and the key is released, so that the client's retry scores and writes
again. With ``AMLPROXY_IDEMPOTENCY_TABLE``, an ``Idempotency-Key`` header makes a repeat of
the same request return the stored answer without scoring again (422 for the same key with
another request, 409 while the first is in progress; keys are scoped by caller): see
:mod:`amlproxy.triggers._idempotency`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from amlproxy.core.outcome import Outcome
from amlproxy.core.sink_writes import abort_quietly
from amlproxy.errors import ConfigurationError, UnsupportedEventError
from amlproxy.observability.carriers import http_carrier
from amlproxy.settings import LAMBDA_RESPONSE_LIMIT
from amlproxy.triggers._api_bodies import (
    MAX_REASON_CHARS,
    BadRequest,
    ParsedBody,
    bad_request_body,
    csv_records,
    error_entry,
    header_flag,
    json_records,
    validate_all,
)
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
from amlproxy.triggers._runtime import Runtime, init_trigger, invocation

if TYPE_CHECKING:
    from amlproxy.triggers._idempotency import IdempotencyStore

# Imported when first needed, not at cold start: the OpenAPI document (GET /openapi.json),
# the Idempotency-Key machinery (only with AMLPROXY_IDEMPOTENCY_TABLE), uuid (a request
# without an id). The runtime (settings, pipeline, clients) is still built in init.
CSV_TYPE = "text/csv"  # (amlproxy.triggers._openapi.CSV_TYPE)

log = logging.getLogger("amlproxy.triggers")

S3_HINT = "score larger inputs with the S3 trigger (upload a CSV or JSON Lines file)"
ROUTES = {"/predict": "POST", "/schema": "GET", "/openapi.json": "GET"}

init_trigger("api", __name__)  # under Lambda: the runtime is built now, in the init phase


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point of the HTTP trigger. An event that is not an HTTP request raises
    :class:`~amlproxy.errors.UnsupportedEventError`; a malformed HTTP request gets 400."""
    request_id = getattr(context, "aws_request_id", None)
    try:
        carrier = (lambda: http_carrier(event.get("headers"))) if (
            event.__class__ is dict or isinstance(event, Mapping)
        ) else None  # (only looked for when tracing is on)
        with invocation("api", context, carrier) as runtime:
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
    allowed = ROUTES.get(request.path)
    if allowed is None:
        return error_response(404, "NotFound", f"no route {request.path!r} (POST /predict, "
                              "GET /schema, GET /openapi.json)")
    if request.method != allowed:
        return error_response(405, "MethodNotAllowed", f"{request.method} {request.path}: use "
                              f"{allowed}", headers={"allow": allowed})
    if request.path == "/predict":
        return predict(runtime, request)
    if request.path == "/schema":
        return _cached_json(runtime, "schema_body", runtime.schema.json_schema)
    base = f"/{request.context['stage']}" if request.kind == "rest" and request.context.get(
        "stage") else "/"
    from amlproxy.triggers._openapi import openapi_document

    return _cached_json(runtime, f"openapi_body {base}",
                        lambda: openapi_document(runtime.schema, runtime.settings, base_url=base))


def _cached_json(runtime: Runtime, name: str, build: Any) -> dict[str, Any]:
    if name not in runtime.cache:
        runtime.cache[name] = orjson.dumps(build())
    return response(200, None, raw=runtime.cache[name])


def predict(runtime: Runtime, request: HttpRequest) -> dict[str, Any]:
    """``POST /predict``: parse and validate every record, then score (once per
    Idempotency-Key), store the results in the sinks, answer."""
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
        return response(400, bad_request_body([error_entry(None, None, str(exc))]))
    key = None
    if settings.idempotency_table:
        from amlproxy.triggers import _idempotency as idem

        key = request.headers.get(idem.HEADER)
    try:
        if key is not None and (problem := idem.check_key(key)) is not None:
            raise BadRequest([error_entry(None, None, problem)])
        header = header_flag(request.query)
        if content_type == CSV_TYPE:
            parsed = csv_records(body, runtime.schema, header, settings.api_max_records)
        else:
            parsed = json_records(body)
        if len(parsed.records) > settings.api_max_records:
            return error_response(413, "PayloadTooLarge", f"more than "
                                  f"{settings.api_max_records} records in one request; {S3_HINT}")
        records = validate_all(runtime.schema, parsed)
    except BadRequest as exc:
        return response(400, bad_request_body(exc.errors))
    if key is None:
        source = f"api:{request.request_id or _new_id()}"
        return _score(runtime, records, parsed, source=source)
    caller_key = idem.CallerKey(idem.caller_scope(request.context), key)
    return idem.idempotent(
        _idempotency_store(runtime), caller_key, idem.request_fingerprint(request, body),
        hold_s=_hold_s(runtime),
        answer=lambda: _score(runtime, records, parsed, source=caller_key.source),
    )


def _hold_s(runtime: Runtime) -> float:
    """How long a claimed key stays "in progress": until the invocation is surely over,
    that is past its hard timeout (the deadline plus its margin, at most 10 s unless set
    higher) with 5 s to spare; 15 minutes, Lambda's longest, without a deadline."""
    remaining = runtime.deadline.remaining()
    if remaining is None:
        return 900.0
    return max(0.0, remaining) + max(runtime.settings.deadline_margin_s or 0.0, 10.0) + 5.0


def _new_id() -> str:
    import uuid

    return str(uuid.uuid4())


def _idempotency_store(runtime: Runtime) -> IdempotencyStore:
    from amlproxy.triggers._idempotency import IdempotencyStore

    store = runtime.cache.get("idempotency")
    if store is None:
        settings = runtime.settings
        assert settings.idempotency_table is not None
        store = IdempotencyStore(settings.idempotency_table, runtime.clients.retrying("dynamodb"),
                                 ttl_s=settings.idempotency_ttl_s)
        runtime.cache["idempotency"] = store
    assert isinstance(store, IdempotencyStore)
    return store


def _score(runtime: Runtime, records: list[dict[str, Any]], parsed: ParsedBody, *, source: str
           ) -> dict[str, Any]:
    """Score validated records, write them to the sinks, answer."""
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
    not_stored = _store(runtime.shared_sinks, outcomes)
    if not_stored is not None:
        return not_stored
    if parsed.single:
        prediction = outcomes[0].prediction
        assert prediction is not None
        return response(200, {"prediction": prediction.to_dict()})
    return _batch_answer(outcomes, report.total, report.ok, report.failed)


def _store(sinks: Sequence[Any], outcomes: list[Outcome]) -> dict[str, Any] | None:
    """Write the outcomes to every sink; a 503 if one failed (the results the caller would
    get are not all stored: it retries, and with its Idempotency-Key the retry rewrites the
    same items)."""
    for sink in sinks:
        try:
            sink.write(outcomes)
            sink.close()
        except Exception as exc:
            abort_quietly(sink)
            log.error("API results not stored in %s: %s", sink.name, exc)
            return error_response(503, "ResultsNotStored", f"the results could not be stored "
                                  f"({sink.name}); retry", headers={"retry-after": "1"})
    return None


def _batch_answer(outcomes: list[Outcome], total: int, ok: int, failed: int) -> dict[str, Any]:
    entries: list[dict[str, Any]] = []
    for outcome in outcomes:
        entry: dict[str, Any] = {"index": outcome.line - 1, "status": outcome.status.value}
        if outcome.prediction is not None:
            entry.update(outcome.prediction.to_dict())
        else:
            entry["reason"] = "; ".join(outcome.reasons)[:MAX_REASON_CHARS]
        entries.append(entry)
    summary = {"total": total, "ok": ok, "failed": failed}
    encoded = orjson.dumps({"predictions": entries, "summary": summary})
    if len(encoded) > LAMBDA_RESPONSE_LIMIT - 4096:
        return error_response(413, "ResponseTooLarge", f"the answer would exceed Lambda's "
                              f"6 MB limit (the results are stored): send fewer records; "
                              f"{S3_HINT}")
    return response(200, None, raw=encoded)
