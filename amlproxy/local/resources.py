"""Creates the stack's resources in moto, as the SAM template declares them, plus the
internal queues that carry S3 notifications and SNS deliveries to the local functions.

Real AWS invokes Lambda straight from S3 and SNS; moto cannot call back into this
process, so it is pointed at SQS queues this process polls: the input bucket notifies
``<stack>-s3-events`` (``s3:ObjectCreated:*`` under the input prefix, the template's
filter) and the topic has an SQS subscription ``<stack>-sns-deliveries``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from amlproxy.local.config import LOCAL_NAMES, StackConfig
from amlproxy.local.template import results_table_keys

S3_EVENTS_QUEUE = "amlproxy-local-s3-events"
SNS_DELIVERIES_QUEUE = "amlproxy-local-sns-deliveries"


@dataclass(frozen=True)
class StackResources:
    """Names, URLs and ARNs of what :func:`create_resources` made."""

    input_bucket: str
    output_bucket: str
    table: str
    topic_arn: str
    work_queue_url: str
    work_queue_arn: str
    failure_queue_url: str
    s3_events_queue_url: str
    sns_deliveries_queue_url: str
    sns_subscription_arn: str
    idempotency_table: str = ""

    def to_dict(self) -> dict[str, str]:
        return dict(self.__dict__)


def create_resources(config: StackConfig, clients: dict[str, Any]) -> StackResources:
    """Buckets, table, topic, queues and the notification plumbing (idempotent)."""
    s3, sqs, sns, dynamodb = clients["s3"], clients["sqs"], clients["sns"], clients["dynamodb"]
    for bucket in dict.fromkeys((config.input_bucket, config.output_bucket)):
        s3.create_bucket(Bucket=bucket)
    _create_table(dynamodb, config.table, ttl=bool(config.param("ResultsTtlDays")))
    if config.idempotency_table:
        _create_idempotency_table(dynamodb, config.idempotency_table)

    _, dlq_arn = _queue(sqs, LOCAL_NAMES["WorkDeadLetterQueueName"], {})
    redrive = {"deadLetterTargetArn": dlq_arn,
               "maxReceiveCount": config.param("QueueMaxReceiveCount")}
    work_url, work_arn = _queue(sqs, LOCAL_NAMES["WorkQueueName"], {
        "VisibilityTimeout": config.param("QueueVisibilityTimeout"),
        "RedrivePolicy": json.dumps(redrive),
    })
    failure_url, _ = _queue(sqs, LOCAL_NAMES["FailureQueueName"], {})
    topic_arn = sns.create_topic(Name=LOCAL_NAMES["TopicName"])["TopicArn"]

    # The plumbing that stands in for Lambda's S3 and SNS event sources.
    s3_events_url, s3_events_arn = _queue(sqs, S3_EVENTS_QUEUE, {})
    s3.put_bucket_notification_configuration(
        Bucket=config.input_bucket,
        NotificationConfiguration={"QueueConfigurations": [{
            "QueueArn": s3_events_arn,
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [
                {"Name": "prefix", "Value": config.param("InputPrefix")}]}},
        }]},
    )
    deliveries_url, deliveries_arn = _queue(sqs, SNS_DELIVERIES_QUEUE, {})
    subscription = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=deliveries_arn,
                                 ReturnSubscriptionArn=True)
    return StackResources(
        input_bucket=config.input_bucket,
        output_bucket=config.output_bucket,
        table=config.table,
        topic_arn=topic_arn,
        work_queue_url=work_url,
        work_queue_arn=work_arn,
        failure_queue_url=failure_url,
        s3_events_queue_url=s3_events_url,
        sns_deliveries_queue_url=deliveries_url,
        sns_subscription_arn=subscription["SubscriptionArn"],
        idempotency_table=config.idempotency_table,
    )


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, arn


def _create_table(dynamodb: Any, name: str, *, ttl: bool) -> None:
    """The template's ResultsTable (its key schema read from the template), on demand,
    TTL on ``expires_at``."""
    try:
        dynamodb.create_table(
            TableName=name,
            **results_table_keys(),
            BillingMode="PAY_PER_REQUEST",
        )
    except dynamodb.exceptions.ResourceInUseException:
        return
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": "expires_at", "Enabled": True})


def _create_idempotency_table(dynamodb: Any, name: str) -> None:
    """The template's IdempotencyStore: key ``id``, TTL on ``expiration``."""
    from amlproxy.triggers._idempotency import TTL_ATTRIBUTE, table_definition

    try:
        dynamodb.create_table(**table_definition(name))
    except dynamodb.exceptions.ResourceInUseException:
        return
    dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
        "AttributeName": TTL_ATTRIBUTE, "Enabled": True})
