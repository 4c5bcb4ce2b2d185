"""Amazon Machine Learning (``AmazonML_20141212``, JSON 1.1) ``Predict`` and ``GetMLModel``.

Wire facts (botocore's service model and the AML API reference):

- ``POST /`` with ``X-Amz-Target: AmazonML_20141212.<Operation>`` and a JSON body; answers
  are ``application/x-amz-json-1.1``. botocore sends ``Predict`` to the host of the
  request's ``PredictEndpoint`` (path kept), so ``PredictEndpoint`` = the emulator URL works.
- Errors are a JSON body ``{"__type": <name>, "message": ..., "code": <status>}``:
  InvalidInputException 400, ResourceNotFoundException 404, LimitExceededException 417,
  InternalServerException 500, PredictorNotMountedException 400.

What a BINARY model answers (as the real service does): ``predictedLabel`` is ``"1"``
(the model's positive label) or ``"0"``, and ``predictedScores`` holds ONE entry, keyed by
the predicted label, whose value is the raw score = P(positive), e.g.
``{"predictedLabel": "0", "predictedScores": {"0": 0.12}}``. ``details`` carries
``{"Algorithm": "SGD", "PredictiveModelType": "BINARY"}``.

Emulator choices: a ``Record`` attribute that is neither a feature nor the target, a value
that is not a string, or a non-numeric value of a numeric attribute -> InvalidInputException;
absent attributes are missing values. Faults: throttle -> LimitExceededException, not ready
-> PredictorNotMountedException, server error -> InternalServerException, model error ->
InternalServerException if ``model_error_status`` >= 500 else InvalidInputException.
"""

from __future__ import annotations

from typing import Any

import orjson

from amlproxy.emulator.counts import Outcome
from amlproxy.emulator.faults import Fault
from amlproxy.emulator.httpcore import Request, Response
from amlproxy.emulator.models import ServedModel
from amlproxy.emulator.replies import ACCOUNT_ID, drop_after, json_reply
from amlproxy.emulator.state import EmulatorState

TARGET_PREFIX = "AmazonML_20141212."
CONTENT_TYPE = "application/x-amz-json-1.1"
PROTOCOL = "aml"
PEAK_REQUESTS_PER_SECOND = 200
_DETAILS = {"Algorithm": "SGD", "PredictiveModelType": "BINARY"}
_ERROR_STATUS = {
    "InvalidInputException": 400,
    "ResourceNotFoundException": 404,
    "LimitExceededException": 417,
    "InternalServerException": 500,
    "PredictorNotMountedException": 400,
}


def aml_error(kind: str, message: str, delay_s: float = 0.0) -> Response:
    """An Amazon ML error answer, status from the API reference."""
    status = _ERROR_STATUS.get(kind, 400)
    body: dict[str, Any] = {"__type": kind, "message": message}
    if kind != "PredictorNotMountedException":  # its shape has no "code" member
        body["code"] = status
    return json_reply(status, body, CONTENT_TYPE, delay_s=delay_s)


class AmlApi:
    """The Amazon ML operations the emulator speaks."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def handle(self, request: Request, target: str) -> Response:
        operation = target[len(TARGET_PREFIX) :] if target.startswith(TARGET_PREFIX) else ""
        try:
            params = orjson.loads(request.body or b"{}")
        except orjson.JSONDecodeError:
            return json_reply(
                400,
                {"__type": "SerializationException", "message": "body is not JSON"},
                CONTENT_TYPE,
            )
        if not isinstance(params, dict):
            return aml_error("InvalidInputException", "the request body must be an object")
        if operation == "Predict":
            return self.predict(params)
        if operation == "GetMLModel":
            return self.get_ml_model(params)
        return json_reply(
            400,
            {"__type": "UnknownOperationException", "message": f"unknown target {target!r}"},
            CONTENT_TYPE,
        )

    def predict(self, params: dict[str, Any]) -> Response:
        state = self._state
        model_id = params.get("MLModelId")
        record = params.get("Record")
        if not isinstance(model_id, str) or not model_id:
            return aml_error("InvalidInputException", "MLModelId is required")
        served = state.models.get(model_id)
        if served is None:
            state.counts.add(model_id, PROTOCOL, Outcome.NOT_FOUND)
            return aml_error("ResourceNotFoundException", f"No MLModel with id {model_id}")
        fault, delay = state.faults[model_id].decide(state.clock())
        if fault is not Fault.NONE:
            return self._fault(model_id, fault, delay)
        problem = _record_problem(served, record, params.get("PredictEndpoint"))
        if problem is None:
            assert isinstance(record, dict)
            try:
                label, scores = served.model.predict(record)
            except ValueError as exc:
                problem = str(exc)
            else:
                state.counts.add(model_id, PROTOCOL, Outcome.OK, 1)
                p = scores[served.model.positive_label]
                aml_label = "1" if label == served.model.positive_label else "0"
                prediction = {
                    "predictedLabel": aml_label,
                    "predictedScores": {aml_label: p},
                    "details": _DETAILS,
                }
                return json_reply(200, {"Prediction": prediction}, CONTENT_TYPE, delay_s=delay)
        state.counts.add(model_id, PROTOCOL, Outcome.INVALID)
        return aml_error("InvalidInputException", problem, delay)

    def _fault(self, model_id: str, fault: Fault, delay: float) -> Response:
        counts = self._state.counts
        if fault is Fault.THROTTLE:
            counts.add(model_id, PROTOCOL, Outcome.THROTTLED)
            return aml_error(
                "LimitExceededException",
                f"The request rate for MLModel {model_id} exceeded its real-time endpoint's "
                "capacity",
            )
        if fault is Fault.NOT_READY:
            counts.add(model_id, PROTOCOL, Outcome.NOT_READY)
            return aml_error(
                "PredictorNotMountedException",
                f"The real-time endpoint of MLModel {model_id} is not mounted yet",
            )
        if fault is Fault.SERVER_ERROR:
            counts.add(model_id, PROTOCOL, Outcome.SERVER_ERROR)
            return aml_error("InternalServerException", "Internal server error", delay)
        if fault is Fault.TIMEOUT:
            counts.add(model_id, PROTOCOL, Outcome.TIMEOUT)
            return drop_after(delay)
        counts.add(model_id, PROTOCOL, Outcome.MODEL_ERROR)
        status = self._state.faults[model_id].config.model_error_status
        kind = "InternalServerException" if status >= 500 else "InvalidInputException"
        return aml_error(kind, f"the model failed on this record (injected, {status})", delay)

    def get_ml_model(self, params: dict[str, Any]) -> Response:
        model_id = params.get("MLModelId")
        if not isinstance(model_id, str) or not model_id:
            return aml_error("InvalidInputException", "MLModelId is required")
        served = self._state.models.get(model_id)
        if served is None:
            return aml_error("ResourceNotFoundException", f"No MLModel with id {model_id}")
        created = served.created_at
        body = {
            "MLModelId": model_id,
            "TrainingDataSourceId": f"ds-{model_id}",
            "CreatedByIamUser": f"arn:aws:iam::{ACCOUNT_ID}:user/amlproxy-emulator",
            "CreatedAt": created,
            "LastUpdatedAt": created,
            "Name": served.model.name,
            "Status": "COMPLETED",
            "EndpointInfo": {
                "PeakRequestsPerSecond": PEAK_REQUESTS_PER_SECOND,
                "CreatedAt": created,
                "EndpointUrl": self._state.url,
                "EndpointStatus": "READY",
            },
            "TrainingParameters": {"sgd.maxPasses": "10", "sgd.shuffleType": "auto"},
            "MLModelType": "BINARY",
            "ScoreThreshold": 0.5,
            "ScoreThresholdLastUpdatedAt": created,
            "StartedAt": created,
            "FinishedAt": created,
        }
        if params.get("Verbose") is True:
            body["Schema"] = training_schema(served)
        return json_reply(200, body, CONTENT_TYPE)


def training_schema(served: ServedModel) -> str:
    """``GetMLModel``'s verbose ``Schema``: the data schema the model was trained on, as
    JSON text; its target lists the two classes, negative first (amlproxy's
    ``categories``)."""
    model = served.model
    attributes: list[dict[str, Any]] = [
        {"attributeName": name, "attributeType": "TEXT"} for name in model.feature_names
    ]
    attributes.append({"attributeName": model.target, "attributeType": "CATEGORICAL",
                       "categories": list(model.labels)})
    return orjson.dumps({
        "version": "1.0", "targetAttributeName": model.target, "dataFormat": "CSV",
        "dataFileContainsHeader": False, "attributes": attributes,
    }).decode()


def _record_problem(served: ServedModel, record: Any, endpoint: Any) -> str | None:
    """Why a Predict request's Record cannot be scored, or None if it can."""
    if not isinstance(endpoint, str) or not endpoint:
        return "PredictEndpoint is required"
    if not isinstance(record, dict):
        return "Record must be a map of attribute names to string values"
    unknown = record.keys() - served.accepted
    if unknown:
        return f"Record has attributes the MLModel does not know: {sorted(unknown)}"
    for name, value in record.items():
        if not isinstance(value, str):
            return f"the value of {name} must be a string"
    return None
