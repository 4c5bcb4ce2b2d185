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
_CONSUME = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
WORK_QUEUE = _on(f"arn:aws:sqs:{_ARN}:{STACK}-WorkQueue", *_CONSUME)
INGEST_QUEUE = _on(f"arn:aws:sqs:{_ARN}:{STACK}-IngestQueue", *_CONSUME)
CHUNK_QUEUE = _on(f"arn:aws:sqs:{_ARN}:{STACK}-ChunkQueue", *_CONSUME)
# The planner sends chunk messages (SendMessageBatch is authorized as sqs:SendMessage).
SEND_CHUNKS = _on(f"arn:aws:sqs:{_ARN}:{STACK}-ChunkQueue", "sqs:SendMessage")
_CHUNK_TABLE = f"arn:aws:dynamodb:{_ARN}:table/{STACK}-ChunkTable"
PLAN_CHUNKS = _on(_CHUNK_TABLE, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem")
CHUNKS_DONE = _on(_CHUNK_TABLE, "dynamodb:GetItem", "dynamodb:UpdateItem")
COMPLETION = _on(f"arn:aws:sns:{_ARN}:{STACK}-CompletionTopic", "sns:Publish")
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


def _s3(input_bucket: str, input_prefix: str, output_bucket: str) -> set[Grant]:
    """The planner's S3 access: read inputs, write outputs of the objects it scores whole."""
    writes = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
    return (
        _s3_read(input_bucket, input_prefix)
        | _on(f"arn:aws:s3:::{output_bucket}/output/*", *writes)
        | _on(f"arn:aws:s3:::{output_bucket}/rejects/*", *writes)
    )


def _chunk_objects(output_bucket: str) -> set[Grant]:
    """The chunk worker's chunk objects: put whole, read back as UploadPartCopy sources,
    deleted after the assembly (chunks/ of the output bucket)."""
    return _on(f"arn:aws:s3:::{output_bucket}/chunks/*",
               "s3:GetObject", "s3:PutObject", "s3:DeleteObject")


def _per_function(backend: set[Grant], buckets: tuple[str, str, str], *,
                  secret: frozenset[Grant] | set[Grant] = frozenset(),
                  pointers: bool = False,
                  idempotency: frozenset[Grant] | set[Grant] = frozenset(),
                  ) -> dict[str, set[Grant]]:
    input_bucket, input_prefix, output_bucket = buckets
    s3 = _s3(input_bucket, input_prefix, output_bucket)
    read = _s3_read(input_bucket, input_prefix) if pointers else set()
    shared = RESULTS | backend | set(secret)
    return {
        # the planner: S3 -> IngestQueue -> it; objects of one chunk scored directly
        "S3Function": _logs("s3") | s3 | INGEST_QUEUE | SEND_CHUNKS | PLAN_CHUNKS | shared,
        "ChunkFunction": (_logs("chunks") | s3 | _chunk_objects(output_bucket) | CHUNK_QUEUE
                          | CHUNKS_DONE | COMPLETION | shared),
        "SnsFunction": _logs("sns") | read | FAILURE_QUEUE | shared,
        "SqsFunction": _logs("sqs") | read | WORK_QUEUE | shared,
        # Idempotency-Key is an API feature: only the API function touches that table.
        "ApiFunction": _logs("api") | RESULTS | backend | set(idempotency),
    }


EXPECTED_GRANTS: dict[str, dict[str, set[Grant]]] = {
    "sagemaker": _per_function(SAGEMAKER, ("amlproxy-in", "input/", "amlproxy-in"),
                               idempotency=IDEMPOTENCY),
    "aml-discovery": _per_function(
        AML_PREDICT | AML_DISCOVERY | XRAY, ("amlproxy-in", "incoming/census/", "amlproxy-out"),
        secret=CALLBACK_SECRET, pointers=True, idempotency=IDEMPOTENCY),
    "aml-endpoint": _per_function(AML_PREDICT | XRAY, ("amlproxy-in", "input/", "amlproxy-in")),
}
"""scenario -> function logical id -> the exact set of (action, resource) its role allows."""
