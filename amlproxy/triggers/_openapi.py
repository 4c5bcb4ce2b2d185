"""The OpenAPI documents of the HTTP trigger, generated from the record schema.

:func:`openapi_document` is what ``GET /openapi.json`` serves: OpenAPI 3.1, whose schemas
are JSON Schema 2020-12, so the record is :meth:`Schema.json_schema` as it is (the same rule
the validator applies). It describes both bodies of ``POST /predict`` (JSON: a record, a
list of records or ``{"records": [...]}``; CSV), every answer (200 for one record and for
a batch; 400, 409, 413, 415, 422, 502 and 503 with their bodies and ``Retry-After``), the
``?header=`` parameter and, when the function has an idempotency table, the
``Idempotency-Key`` header.

The SAM template's ``PredictApi`` definition is built from the same parts, for what API
Gateway REST APIs import (OpenAPI 3.0 with ``x-amazon-apigateway-integration``): see
:mod:`amlproxy.triggers._openapi_gateway`.
"""

from __future__ import annotations

from typing import Any

from amlproxy import __version__
from amlproxy.core.schema import Schema
from amlproxy.settings import Settings
from amlproxy.triggers._api_bodies import HEADER_PATTERN, MAX_ERRORS_LISTED
from amlproxy.triggers._idempotency import MAX_KEY_CHARS, REPLAYED_HEADER

CSV_TYPE = "text/csv"
JSON_TYPE = "application/json"
REF = "#/components/schemas/"
# A key of 1 to MAX_KEY_CHARS printable ASCII characters, not starting or ending with a
# space (HTTP strips those from a header value).
KEY_PATTERN = "^[!-~](?:[ -~]*[!-~])?$"
NULLABLE_STRING = {"type": ["string", "null"]}
NULLABLE_NUMBER = {"type": ["number", "null"]}
ERRORS = {
    400: "The request cannot be scored as sent: every problem is listed (nothing was "
         "scored). Bad JSON or CSV, an invalid record, a bad CSV header, ?header= or "
         "Idempotency-Key.",
    409: "A request with this Idempotency-Key is still being scored: retry after Retry-After.",
    413: "The body is over the size cap, or holds more records than one request may: use "
         "the S3 trigger. Also an answer that would not fit in Lambda's 6 MB.",
    415: "A content type other than application/json or text/csv.",
    422: "This Idempotency-Key was used with a different request.",
    502: "The endpoint refused the records or could not answer; retrying as is will not help.",
    503: "The endpoint stayed throttled or unavailable, the function ran out of time, or the "
         "results could not be stored: retry after Retry-After.",
}
RETRY_AFTER = {409, 503}


def openapi_document(schema: Schema, settings: Settings, *, base_url: str = "/"
                     ) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the API for ``schema`` and ``settings``."""
    record = {k: v for k, v in schema.json_schema().items() if k != "$schema"}
    if record.get("additionalProperties", True) is not False:
        # an open record could be {"records": [...]}: that shape is the batch wrapper
        record["not"] = {"required": ["records"], "maxProperties": 1}
    components = component_schemas(record, settings.api_max_records)
    return {
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": info(f"the {schema.name} record schema"),
        "servers": [{"url": base_url}],
        "paths": paths(idempotency=settings.idempotency_table is not None),
        "components": {"schemas": components},
    }


def info(record: str) -> dict[str, Any]:
    """The ``info`` object (``record``: which record schema the API validates against)."""
    return {
        "title": "amlproxy",
        "version": __version__,
        "description": (
            f"Validates records against {record} and scores them on the configured endpoint. "
            "Numbers may be sent as JSON numbers or as strings (Amazon ML's Record is a "
            "string map); the record schema says exactly what is accepted."
        ),
    }


def component_schemas(record: dict[str, Any], max_records: int) -> dict[str, Any]:
    """The named schemas: ``record`` (one record), the request and answer bodies."""
    batch = {"type": "array", "items": {"$ref": REF + "Record"}, "minItems": 1,
             "maxItems": max_records}
    prediction = {
        "type": "object",
        "required": ["label", "scores", "value", "backend", "model_id", "latency_ms",
                     "attempts"],
        "properties": {
            "label": NULLABLE_STRING, "value": NULLABLE_NUMBER,
            "scores": {"type": "object", "additionalProperties": NULLABLE_NUMBER},
            "backend": {"type": "string"}, "model_id": {"type": "string"},
            "latency_ms": {"type": "number"}, "attempts": {"type": "integer"},
            "extra": {"type": "object"},
        },
    }
    scored = {"allOf": [{"$ref": REF + "Prediction"}, {
        "type": "object", "required": ["index", "status"],
        "properties": {"index": {"type": "integer"}, "status": {"const": "ok"}}}]}
    failed = {"type": "object", "required": ["index", "status", "reason"], "properties": {
        "index": {"type": "integer"}, "status": {"const": "failed"}, "reason": {"type": "string"}}}
    entry = {"type": "object", "required": ["index", "field", "reason"], "properties": {
        "index": {"type": ["integer", "null"]}, "field": NULLABLE_STRING,
        "reason": {"type": "string"}, "line": {"type": "integer"}}}
    return {
        "Record": record,
        "RecordBatch": batch,
        "RecordsWrapper": {"type": "object", "required": ["records"],
                           "properties": {"records": {"$ref": REF + "RecordBatch"}},
                           "additionalProperties": False},
        "PredictRequest": {"description": 'one record, a list of records or {"records": [...]}',
                           "anyOf": [{"$ref": REF + n} for n in
                                     ("Record", "RecordBatch", "RecordsWrapper")]},
        "Prediction": prediction,
        "SinglePrediction": {"type": "object", "required": ["prediction"],
                             "properties": {"prediction": {"$ref": REF + "Prediction"}}},
        "BatchPredictions": {"type": "object", "required": ["predictions", "summary"],
                             "properties": {
                                 "predictions": {"type": "array",
                                                 "items": {"anyOf": [scored, failed]}},
                                 "summary": {"type": "object",
                                             "required": ["total", "ok", "failed"],
                                             "properties": {k: {"type": "integer"} for k in
                                                            ("total", "ok", "failed")}}}},
        "PredictResponse": {"description": '{"prediction": ...} for one record, '
                                           '{"predictions": [...], "summary": ...} for a batch',
                            "anyOf": [{"$ref": REF + "SinglePrediction"},
                                      {"$ref": REF + "BatchPredictions"}]},
        "ValidationErrors": {"type": "object", "required": ["errors"], "properties": {
            "errors": {"type": "array", "items": entry, "maxItems": MAX_ERRORS_LISTED},
            "truncated": {"type": "integer", "minimum": 1}}},
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {
            "type": "object", "required": ["code", "reason"],
            "properties": {"code": {"type": "string"}, "reason": {"type": "string"}}}}},
    }


def paths(*, idempotency: bool) -> dict[str, Any]:
    """The three routes (``idempotency``: the Idempotency-Key header, 409 and 422)."""
    parameters: list[dict[str, Any]] = [{
        "name": "header", "in": "query", "required": False,
        "description": "CSV bodies: whether the first line is a header (default: as the "
                       "schema says). true/false, 1/0 or yes/no, in any case.",
        "schema": {"type": "string", "pattern": HEADER_PATTERN},
    }]
    codes = [400, 413, 415, 502, 503]
    if idempotency:
        parameters.append({
            "name": "Idempotency-Key", "in": "header", "required": False,
            "description": "Makes a retry safe: the same key and request get the stored "
                           "answer without scoring again (keys are scoped by caller).",
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_CHARS,
                       "pattern": KEY_PATTERN},
        })
        codes = sorted([*codes, 409, 422])
    ok: dict[str, Any] = {"description": "The predictions (stored in the configured sinks).",
                          "content": {JSON_TYPE: {"schema": {"$ref": REF + "PredictResponse"}}}}
    if idempotency:
        ok["headers"] = {REPLAYED_HEADER: {
            "description": "true when this is the stored answer of an earlier request",
            "schema": {"type": "string", "const": "true"}}}
    csv = {"type": "string", "description": "CSV rows, fields in the schema's column order "
           "(or named by a header line, see ?header=); numbers as text."}
    predict = {
        "summary": "Validate and score records",
        "operationId": "predict",
        "parameters": parameters,
        "requestBody": {"required": True, "content": {
            JSON_TYPE: {"schema": {"$ref": REF + "PredictRequest"}},
            CSV_TYPE: {"schema": csv}}},
        "responses": {"200": ok, **{str(code): _error(code) for code in codes}},
    }
    document = {"type": "object"}
    return {
        "/predict": {"post": predict},
        "/schema": {"get": _get("getSchema", "The JSON Schema of one record.", document)},
        "/openapi.json": {"get": _get("getOpenApi", "This document.", document)},
    }


def _get(operation: str, what: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"operationId": operation, "summary": what, "responses": {"200": {
        "description": what, "content": {JSON_TYPE: {"schema": schema}}}}}


def _error(code: int) -> dict[str, Any]:
    body = "ValidationErrors" if code == 400 else "Error"
    answer: dict[str, Any] = {"description": ERRORS[code],
                              "content": {JSON_TYPE: {"schema": {"$ref": REF + body}}}}
    if code in RETRY_AFTER:
        answer["headers"] = {"Retry-After": {"required": True, "description": "seconds",
                                             "schema": {"type": "string", "pattern": "^[0-9]+$"}}}
    return answer
