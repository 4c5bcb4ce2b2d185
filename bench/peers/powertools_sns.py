"""The Powertools peer of the SNS trigger (see :mod:`peers.powertools`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import SnsModel

from peers.powertools import logger, metrics, score_messages


@logger.inject_lambda_context
@metrics.log_metrics
@event_parser(model=SnsModel)
def handler(event: SnsModel, context: Any) -> dict[str, Any]:
    count = score_messages([r.Sns.Message for r in event.Records])
    metrics.add_metric(name="Records", unit=MetricUnit.Count, value=count)
    return {"records": count}
