"""What each function's role must grant, per scenario of tests/template/conftest.py.

Written out by hand, ARN by ARN, so that any widening (or loss) of a permission in
sam/template.yaml fails a test.
"""

from __future__ import annotations

from tests.template.iam_grants import Grant
from tests.template.scenarios import ACCOUNT, REGION, SCENARIOS, STACK

_ARN = f"{REGION}:{ACCOUNT}"


def _logs(function: str) -> set[Grant]:
    group = f"arn:aws:logs:{_ARN}:log-group:/aws/lambda/{STACK}/{function}:*"
    return {("logs:CreateLogStream", group), ("logs:PutLogEvents", group)}


def _on(resource: str, *actions: str) -> set[Grant]:
    return {(action, resource) for action in actions}


RESULTS = _on(f"arn:aws:dynamodb:{_ARN}:table/{STACK}-ResultsTable",
              "dynamodb:BatchWriteItem", "dynamodb:PutItem")
# What amlproxy/triggers/_idempotency.py calls (test_sam_idempotency.py checks the list).
IDEMPOTENCY = _on(f"arn:aws:dynamodb:{_ARN}:table/{STACK}-IdempotencyStore",
                  "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:DeleteItem")
FAILURE_QUEUE = _on(f"arn:aws:sqs:{_ARN}:{STACK}-FailureQueue", "sqs:SendMessage")
WORK_QUEUE = _on(f"arn:aws:sqs:{_ARN}:{STACK}-WorkQueue",
                 "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
XRAY = _on("*", "xray:PutTraceSegments", "xray:PutTelemetryRecords")
SAGEMAKER = _on(f"arn:aws:sagemaker:{_ARN}:endpoint/census-xgb", "sagemaker:InvokeEndpoint")
AML_MODEL = f"arn:aws:machinelearning:{_ARN}:mlmodel/ml-AbC123xyz"
AML_PREDICT = _on(AML_MODEL, "machinelearning:Predict")
AML_DISCOVERY = _on(AML_MODEL, "machinelearning:GetMLModel")
CALLBACK_SECRET = _on(SCENARIOS["aml-discovery"]["CallbackSecretArn"],
                      "secretsmanager:GetSecretValue")


def _s3_read(input_bucket: str, input_prefix: str) -> set[Grant]:
    return _on(f"arn:aws:s3:::{input_bucket}/{input_prefix}*",
               "s3:GetObject", "s3:GetObjectVersion")


def _checkpoints(output_bucket: str) -> set[Grant]:
    return (_on(f"arn:aws:s3:::{output_bucket}/checkpoints/*",
                "s3:GetObject", "s3:PutObject", "s3:DeleteObject")
            | _on(f"arn:aws:s3:::{output_bucket} when s3:prefix like checkpoints/*",
                  "s3:ListBucket"))


def _pointers(input_bucket: str, input_prefix: str, output_bucket: str) -> set[Grant]:
    return _s3_read(input_bucket, input_prefix) | _checkpoints(output_bucket)


def _s3(input_bucket: str, input_prefix: str, output_bucket: str) -> set[Grant]:
    writes = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
    return (
        _s3_read(input_bucket, input_prefix)
        | _on(f"arn:aws:s3:::{output_bucket}/output/*", *writes)
        | _on(f"arn:aws:s3:::{output_bucket}/rejects/*", *writes)
        | _checkpoints(output_bucket)
    )


def _per_function(backend: set[Grant], s3: set[Grant], *,
                  secret: frozenset[Grant] | set[Grant] = frozenset(),
                  pointers: frozenset[Grant] | set[Grant] = frozenset(),
                  idempotency: frozenset[Grant] | set[Grant] = frozenset(),
                  ) -> dict[str, set[Grant]]:
    shared = RESULTS | backend | set(secret)
    return {
        "S3Function": _logs("s3") | s3 | FAILURE_QUEUE | shared,
        "SnsFunction": _logs("sns") | set(pointers) | FAILURE_QUEUE | shared,
        "SqsFunction": _logs("sqs") | set(pointers) | WORK_QUEUE | shared,
        # Idempotency-Key is an API feature: only the API function touches that table.
        "ApiFunction": _logs("api") | RESULTS | backend | set(idempotency),
    }


EXPECTED_GRANTS: dict[str, dict[str, set[Grant]]] = {
    "sagemaker": _per_function(SAGEMAKER, _s3("amlproxy-in", "input/", "amlproxy-in"),
                               idempotency=IDEMPOTENCY),
    "aml-discovery": _per_function(
        AML_PREDICT | AML_DISCOVERY | XRAY, _s3("amlproxy-in", "incoming/census/", "amlproxy-out"),
        secret=CALLBACK_SECRET,
        pointers=_pointers("amlproxy-in", "incoming/census/", "amlproxy-out"),
        idempotency=IDEMPOTENCY),
    "aml-endpoint": _per_function(AML_PREDICT | XRAY, _s3("amlproxy-in", "input/", "amlproxy-in")),
}
"""scenario -> function logical id -> the exact set of (action, resource) its role allows."""
