"""What the Powertools peers share: the handlers a user would write with Parser, Logger
and Metrics for amlproxy's jobs, one module per trigger (``peers.powertools_s3``, ``_sns``,
``_sqs``, ``_api``), as one Lambda function each.

At import, as Powertools' examples do, a handler module makes its Logger, its Metrics and
the boto3 clients (SageMaker runtime, and S3 or DynamoDB as ``PEER_OUTPUT`` says): what a
cold start of such a handler costs. The handlers take their I/O as functions
(``make_s3_handler``...), so that the benchmarks run the same code on memory or on the
emulator.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import boto3
import orjson
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.utilities.parser import parse
from pydantic import ValidationError

from peers.census_model import FEATURES, CensusRecord
from peers.scoring import Predict

logger = Logger(service="census-scoring", level=os.environ.get("LOG_LEVEL", "WARNING"))
metrics = Metrics(namespace="CensusScoring", service="census-scoring")
ENDPOINT = os.environ.get("SAGEMAKER_ENDPOINT", "census-income")
_ENDPOINT_URL = os.environ.get("PEER_ENDPOINT_URL") or None
_session = boto3.session.Session()
sagemaker = _session.client("sagemaker-runtime", endpoint_url=_ENDPOINT_URL)
_OUTPUT = os.environ.get("PEER_OUTPUT", "s3")
storage = _session.client(_OUTPUT, endpoint_url=_ENDPOINT_URL)

ReadObject = Callable[[str, str], bytes]
WriteObject = Callable[[str, str, bytes], None]


def parsed(record: dict[str, Any]) -> CensusRecord:
    """Powertools' Parser on one row."""
    return parse(event=record, model=CensusRecord)


def sagemaker_predict(records: list[dict[str, Any]]) -> list[tuple[str, dict[str, float]]]:
    """One InvokeEndpoint for the batch (CSV in, P(>50K) per line out)."""
    body = "\n".join(",".join("" if r[f] is None else str(r[f]) for f in FEATURES)
                     for r in records)
    answer = sagemaker.invoke_endpoint(EndpointName=ENDPOINT, Body=body.encode(),
                                       ContentType="text/csv", Accept="text/csv")
    scores = [float(x) for x in answer["Body"].read().split()]
    return [(">50K" if p >= 0.5 else "<=50K", {"<=50K": 1.0 - p, ">50K": p}) for p in scores]


def s3_read(bucket: str, key: str) -> bytes:
    body: bytes = storage.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def s3_write(bucket: str, key: str, body: bytes) -> None:
    storage.put_object(Bucket=bucket, Key=key, Body=body)


def first(predict: Callable[[list[dict[str, Any]]], list[Any]]) -> Predict:
    return lambda record: predict([record])[0]  # type: ignore[no-any-return]


def score_messages(bodies: list[str]) -> int:
    """The records of JSON messages (an object or a list of objects), scored in one call,
    each result put in DynamoDB."""
    records = []
    for body in bodies:
        doc = orjson.loads(body)
        for item in doc if isinstance(doc, list) else [doc]:
            try:
                records.append(parsed(item).features())
            except ValidationError:
                logger.warning("rejected record", extra={"record": item})
    items = [{"PutRequest": {"Item": {"key": {"S": str(i)}, "label": {"S": label},
                                      "score": {"N": repr(scores[">50K"])}}}}
             for i, (label, scores) in enumerate(sagemaker_predict(records) if records else [])]
    for start in range(0, len(items), 25):  # BatchWriteItem takes 25 items
        storage.batch_write_item(RequestItems={"results": items[start:start + 25]})
    return len(records)
