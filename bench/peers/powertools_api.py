"""The Powertools peer of the API trigger (see :mod:`peers.powertools`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import parse

from peers.census_model import CensusRecord
from peers.powertools import first, logger, metrics, sagemaker_predict
from peers.scoring import Predict


def make_api_handler(predict: Predict) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """An HTTP API handler: ``POST /predict`` with one census record (JSON), through
    Powertools' event handler, the record parsed by Parser."""
    app = APIGatewayHttpResolver()

    @app.post("/predict")
    def predict_one() -> dict[str, Any]:
        record = parse(event=app.current_event.json_body, model=CensusRecord)
        label, scores = predict(record.features())
        metrics.add_metric(name="Predictions", unit=MetricUnit.Count, value=1)
        return {"prediction": {"label": label, "scores": scores}}

    @logger.inject_lambda_context
    @metrics.log_metrics
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return app.resolve(event, context)

    return handler


handler = make_api_handler(first(sagemaker_predict))
