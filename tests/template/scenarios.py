"""Parameter scenarios the template tests deploy on paper, and the stack they assume."""

from __future__ import annotations

ACCOUNT = "123456789012"
REGION = "us-east-1"
STACK = "amlproxy-test"

# Parameter sets the tests deploy "on paper". Together they switch every condition both ways.
SCENARIOS: dict[str, dict[str, str]] = {
    # Defaults: SageMaker, one bucket, tracing off, no callback, IAM auth, the idempotency
    # table (on by default).
    "sagemaker": {"InputBucketName": "amlproxy-in", "SageMakerEndpointName": "census-xgb"},
    # Amazon ML with endpoint discovery, separate output bucket, signed callbacks,
    # OpenTelemetry tracing (the ADOT layer), API keys, a deeper input prefix, S3
    # pointers in messages, the idempotency table with its own TTL, labels and a results TTL.
    "aml-discovery": {
        "Backend": "aml",
        "AmlModelId": "ml-AbC123xyz",
        "InputBucketName": "amlproxy-in",
        "InputPrefix": "incoming/census/",
        "OutputBucketName": "amlproxy-out",
        "CallbackUrl": "https://hooks.example.com/amlproxy",
        "CallbackSecretArn": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:hook-AbCdEf",
        "Tracing": "otel",
        "AdotLayerArn": f"arn:aws:lambda:{REGION}:901920570463:layer:"
                        "aws-otel-python-arm64-ver-1-32-0:2",
        "ApiAuth": "API_KEY",
        "MessageS3Pointers": "enabled",
        "IdempotencyTable": "enabled",
        "IdempotencyTtlSeconds": "900",
        "Labels": "<=50K,>50K",
        "ResultsTtlDays": "30",
    },
    # Amazon ML with a known real-time endpoint (no GetMLModel), no idempotency table,
    # X-Ray SDK tracing.
    "aml-endpoint": {
        "Tracing": "xray",
        "Backend": "aml",
        "AmlModelId": "ml-AbC123xyz",
        "AmlPredictEndpoint": "https://realtime.machinelearning.us-east-1.amazonaws.com",
        "InputBucketName": "amlproxy-in",
        "IdempotencyTable": "disabled",
    },
}
