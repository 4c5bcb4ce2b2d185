"""The Powertools peer of the S3 trigger (see :mod:`peers.powertools`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import S3Model

from peers.powertools import (
    ReadObject,
    WriteObject,
    first,
    logger,
    metrics,
    parsed,
    s3_read,
    s3_write,
    sagemaker_predict,
)
from peers.scoring import Predict, score_csv


def make_s3_handler(read_object: ReadObject, write_object: WriteObject, predict: Predict
                    ) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    """An S3 ObjectCreated handler: each object's rows scored, results and rejects written
    next to it."""

    @logger.inject_lambda_context
    @metrics.log_metrics
    @event_parser(model=S3Model)
    def handler(event: S3Model, context: Any) -> dict[str, Any]:
        total = 0
        for record in event.Records:
            bucket, key = record.s3.bucket.name, record.s3.object.key
            results, rejects, count = score_csv(read_object(bucket, key), key, parsed, predict)
            write_object(bucket, f"output/{key}.results.jsonl", results)
            write_object(bucket, f"output/{key}.rejects.jsonl", rejects)
            total += count
        metrics.add_metric(name="Records", unit=MetricUnit.Count, value=total)
        return {"records": total}

    return handler


handler = make_s3_handler(s3_read, s3_write, first(sagemaker_predict))
