"""SageMaker runtime (``2017-05-13``, REST-JSON) ``InvokeEndpoint``.

Wire facts (botocore's service model, botocore's REST-JSON error parser, observed service
behaviour):

- ``POST /endpoints/{EndpointName}/invocations``; the body is the payload as-is, typed by
  ``Content-Type``; ``Accept`` asks for the answer's type. The answer carries
  ``Content-Type`` and ``x-Amzn-Invoked-Production-Variant`` (always ``AllTraffic`` here;
  ``X-Amzn-SageMaker-Target-Variant`` other than that is a ValidationError).
- Errors: header ``x-amzn-ErrorType: <Code>:<namespace>`` plus a JSON body with the message.
  ValidationError 400, ModelError 424 (body adds ``OriginalStatusCode``, ``OriginalMessage``,
  ``LogStreamArn``), ModelNotReadyException 429, InternalFailure 500, ServiceUnavailable 503,
  and ThrottlingException 400 for rate (not in the service model: botocore raises a plain
  ClientError with that code, which its retry handlers treat as throttling). A body over
  6 MB gets 413 with no error type (botocore's code is then ``"413"``), as the service does.
  An unknown endpoint is a ValidationError ("Endpoint X of account Y not found.").

The emulated container (documented choice, shaped like SageMaker's built-in algorithms):

- ``text/csv`` in: one record per line, no header, the model's features in order
  (``model.feature_names``), blank lines skipped. ``application/json`` in: one record
  object ``{feature: value}``, or ``{"instances": [...]}`` (or a bare list) of record
  objects or of value lists in feature order.
- ``text/csv`` out: one line per record, P(positive label). ``application/json`` out:
  ``{"predictions": [{"label": <model label>, "score": P(positive), "scores": {label: p}}]}``.
  No ``Accept`` (or ``*/*``) answers in the input's type.
- Unparseable payload or a wrong CSV field count -> ValidationError; a well-formed payload
  with a bad value (non-numeric numeric, unknown attribute) -> ModelError with
  OriginalStatusCode 400; another content type -> ModelError 415; another Accept -> 406.
- Faults: throttle -> ThrottlingException, not ready -> ModelNotReadyException, server
  error -> InternalFailure (500) or ServiceUnavailable (``error_status`` 503), model error
  -> ModelError with OriginalStatusCode ``model_error_status``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from amlproxy.emulator.counts import Outcome
from amlproxy.emulator.faults import Fault
from amlproxy.emulator.httpcore import Request, Response
from amlproxy.emulator.models import ServedModel
from amlproxy.emulator.replies import ACCOUNT_ID, REGION, drop_after, json_reply
from amlproxy.emulator.state import EmulatorState

PROTOCOL = "sagemaker"
VARIANT = "AllTraffic"
MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
CSV = "text/csv"
JSON = "application/json"
_SCALARS = (str, int, float, type(None))
_ERROR_NAMESPACE = {
    "ValidationError": "http://internal.amazon.com/coral/com.amazon.coral.validate/",
    "ThrottlingException": "http://internal.amazon.com/coral/com.amazon.coral.availability/",
}
_DEFAULT_NAMESPACE = "http://internal.amazon.com/coral/com.amazon.sagemaker/"


class PayloadError(ValueError):
    """The payload cannot be parsed (-> ValidationError)."""


class RecordValueError(ValueError):
    """The payload parses, but a record is unusable (-> ModelError, original status 400)."""


def sagemaker_error(kind: str, status: int, message: str, delay_s: float = 0.0) -> Response:
    """A SageMaker runtime error answer, typed by the ``x-amzn-ErrorType`` header."""
    error_type = f"{kind}:{_ERROR_NAMESPACE.get(kind, _DEFAULT_NAMESPACE)}"
    return json_reply(
        status, {"message": message}, headers=[("x-amzn-ErrorType", error_type)], delay_s=delay_s
    )


def model_error(endpoint: str, status: int, message: str, delay_s: float = 0.0) -> Response:
    """ModelError 424: the container answered ``status`` with ``message``."""
    log_group = f"/aws/sagemaker/Endpoints/{endpoint}"
    side = "client" if status < 500 else "server"
    body = {
        "ErrorCode": f"{side.upper()}_ERROR_FROM_MODEL",
        "LogStreamArn": f"arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{log_group}",
        "Message": (
            f'Received {side} error ({status}) from primary with message "{message}". See '
            f"https://{REGION}.console.aws.amazon.com/cloudwatch/home?region={REGION}"
            f"#logEventViewer:group={log_group} in account {ACCOUNT_ID} for more information."
        ),
        "OriginalMessage": message,
        "OriginalStatusCode": status,
    }
    headers = [("x-amzn-ErrorType", f"ModelError:{_DEFAULT_NAMESPACE}")]
    return json_reply(424, body, headers=headers, delay_s=delay_s)


class SageMakerApi:
    """``InvokeEndpoint`` against the served models."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def invoke(self, request: Request, endpoint: str) -> Response:
        state = self._state
        served = state.models.get(endpoint)
        if served is None:
            state.counts.add(endpoint, PROTOCOL, Outcome.NOT_FOUND)
            return sagemaker_error(
                "ValidationError", 400, f"Endpoint {endpoint} of account {ACCOUNT_ID} not found."
            )
        if len(request.body) > MAX_PAYLOAD_BYTES:
            state.counts.add(endpoint, PROTOCOL, Outcome.INVALID)
            message = f"HTTP content length exceeded {MAX_PAYLOAD_BYTES} bytes."
            return json_reply(413, {"message": message})
        variant = request.headers.get("x-amzn-sagemaker-target-variant")
        if variant is not None and variant != VARIANT:
            state.counts.add(endpoint, PROTOCOL, Outcome.INVALID)
            return sagemaker_error(
                "ValidationError", 400, f"Variant {variant} not found for endpoint {endpoint}."
            )
        fault, delay = state.faults[endpoint].decide(state.clock())
        if fault is not Fault.NONE:
            return self._fault(endpoint, fault, delay)
        return self._score(served, request, delay)

    def _score(self, served: ServedModel, request: Request, delay: float) -> Response:
        counts = self._state.counts
        name = served.name
        content_type = _media_type(request.headers.get("content-type", ""))
        if content_type not in (CSV, JSON):
            counts.add(name, PROTOCOL, Outcome.INVALID)
            return model_error(name, 415, f"unsupported content type {content_type!r}", delay)
        accept = _choose_accept(request.headers.get("accept"), content_type)
        if accept is None:
            counts.add(name, PROTOCOL, Outcome.INVALID)
            return model_error(name, 406, "can answer text/csv or application/json only", delay)
        records: list[Mapping[str, Any]]
        try:
            if content_type == CSV:
                records = parse_csv(request.body, served.model.feature_names)
            else:
                records = parse_json(request.body, served)
            body = _predict(served, records, accept)
        except PayloadError as exc:
            counts.add(name, PROTOCOL, Outcome.INVALID)
            return sagemaker_error("ValidationError", 400, str(exc), delay)
        except RecordValueError as exc:
            counts.add(name, PROTOCOL, Outcome.INVALID)
            return model_error(name, 400, str(exc), delay)
        counts.add(name, PROTOCOL, Outcome.OK, len(records))
        headers = [("Content-Type", accept), ("x-Amzn-Invoked-Production-Variant", VARIANT)]
        return Response(200, body, headers, delay_s=delay)

    def _fault(self, endpoint: str, fault: Fault, delay: float) -> Response:
        counts = self._state.counts
        if fault is Fault.THROTTLE:
            counts.add(endpoint, PROTOCOL, Outcome.THROTTLED)
            return sagemaker_error("ThrottlingException", 400, "Rate exceeded")
        if fault is Fault.NOT_READY:
            counts.add(endpoint, PROTOCOL, Outcome.NOT_READY)
            return sagemaker_error(
                "ModelNotReadyException", 429, f"Model for endpoint {endpoint} is not ready."
            )
        if fault is Fault.SERVER_ERROR:
            counts.add(endpoint, PROTOCOL, Outcome.SERVER_ERROR)
            if self._state.faults[endpoint].config.error_status == 503:
                return sagemaker_error("ServiceUnavailable", 503, "Service unavailable", delay)
            return sagemaker_error("InternalFailure", 500, "Internal failure", delay)
        if fault is Fault.TIMEOUT:
            counts.add(endpoint, PROTOCOL, Outcome.TIMEOUT)
            return drop_after(delay)
        counts.add(endpoint, PROTOCOL, Outcome.MODEL_ERROR)
        status = self._state.faults[endpoint].config.model_error_status
        return model_error(endpoint, status, "injected model failure", delay)


def parse_csv(body: bytes, features: Sequence[str]) -> list[Mapping[str, Any]]:
    """CSV lines -> records keyed by feature name; PayloadError if it does not parse."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the CSV payload is not UTF-8: {exc}") from None
    expected = len(features)
    records: list[Mapping[str, Any]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line or line.isspace():
            continue
        if '"' in line:
            try:
                fields = next(csv.reader([line], skipinitialspace=True, strict=True))
            except csv.Error as exc:
                raise PayloadError(f"line {number}: {exc}") from None
        else:
            fields = line.split(",")
        if len(fields) != expected:
            raise PayloadError(f"line {number}: {len(fields)} fields, expected {expected}")
        records.append(dict(zip(features, fields, strict=True)))
    if not records:
        raise PayloadError("the CSV payload holds no record")
    return records


def parse_json(body: bytes, served: ServedModel) -> list[Mapping[str, Any]]:
    """A JSON record, ``{"instances": [...]}`` or a list -> records; PayloadError if it
    does not parse, RecordValueError for an unusable record."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"the JSON payload does not parse: {exc}") from None
    if isinstance(data, dict) and "instances" in data:
        data = data["instances"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise PayloadError("expected a record object or a non-empty list of instances")
    features = served.model.feature_names
    records: list[Mapping[str, Any]] = []
    for number, item in enumerate(data, 1):
        if isinstance(item, list):
            if len(item) != len(features):
                raise PayloadError(
                    f"instance {number}: {len(item)} values, expected {len(features)}"
                )
            item = dict(zip(features, item, strict=True))
        elif not isinstance(item, dict):
            raise PayloadError(f"instance {number} is neither an object nor a list")
        elif item.keys() - served.accepted:
            unknown = sorted(item.keys() - served.accepted)
            raise RecordValueError(f"instance {number}: unknown attributes {unknown}")
        for key, value in item.items():
            if not isinstance(value, _SCALARS) or isinstance(value, bool):
                raise RecordValueError(f"instance {number}: {key}: {value!r} is not a value")
        records.append(item)
    return records


def _predict(served: ServedModel, records: list[Mapping[str, Any]], accept: str) -> bytes:
    """Score every record; RecordValueError names the first record the model refuses."""
    model = served.model
    try:
        if accept == CSV:
            proba = model.predict_proba
            return "\n".join([repr(proba(record)) for record in records]).encode()
        positive = model.positive_label
        predictions = []
        for record in records:
            label, scores = model.predict(record)
            predictions.append({"label": label, "score": scores[positive], "scores": scores})
        return orjson.dumps({"predictions": predictions})
    except ValueError:
        for number, record in enumerate(records, 1):
            try:
                model.predict_proba(record)
            except ValueError as exc:
                raise RecordValueError(f"record {number}: {exc}") from None
        raise


def _media_type(value: str) -> str:
    return value.partition(";")[0].strip().lower()


def _choose_accept(accept: str | None, content_type: str) -> str | None:
    if not accept:
        return content_type
    for part in accept.split(","):
        media = _media_type(part)
        if media in (CSV, JSON):
            return media
        if media in ("*/*", ""):
            return content_type
    return None
