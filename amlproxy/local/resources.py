"""Creates the template's resources in moto, plus the queues that carry S3 notifications
and SNS deliveries to the local Lambda service.

Every ``AWS::S3::Bucket``, ``AWS::DynamoDB::Table``, ``AWS::SQS::Queue`` (with its
``RedrivePolicy``), ``AWS::SNS::Topic`` and ``AWS::SNS::Subscription`` of
``sam/template.yaml`` whose condition holds is created as the template declares it, under
the names of :class:`LocalResolver`; a bucket's own ``NotificationConfiguration`` to a
queue (``QueueConfigurations``, as S3 -> IngestQueue) is applied too, and moto server
delivers those notifications itself. Adding a queue or a table to the template adds it
here.

Real AWS invokes Lambda straight from S3 and SNS; moto cannot call the local service, so
each function's S3 event notifies a queue ``amlproxy-local-s3-<Function>`` (with the
event's filter) and each SNS event subscribes ``amlproxy-local-sns-<Function>``; the
service's event sources poll them (:mod:`amlproxy.local.event_sources`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from amlproxy.errors import ConfigurationError
from amlproxy.local.cfn import StackResolver
from amlproxy.local.config import ACCOUNT, LOCAL_RESOURCE_NAMES, REGION, STACK_NAME
from amlproxy.local.functions import FunctionSpec

_QUEUE_ATTRIBUTES = ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds",
                     "MaximumMessageSize", "ReceiveMessageWaitTimeSeconds", "FifoQueue",
                     "ContentBasedDeduplication")


class LocalResolver(StackResolver):
    """The template evaluated for the local stack: resources named as
    :data:`LOCAL_RESOURCE_NAMES` (else ``amlproxy-<logical-id>``; functions keep their
    logical id), queue URLs at moto."""

    def __init__(self, template: Mapping[str, Any], parameters: Mapping[str, str],
                 moto_url: str) -> None:
        try:
            super().__init__(template, parameters, stack_name=STACK_NAME, region=REGION,
                             account=ACCOUNT)
        except ValueError as exc:  # a parameter the template refuses
            raise ConfigurationError(f"SAM template parameters: {exc}") from None
        self.moto_url = moto_url

    def queue_url(self, name: str) -> str:
        return f"{self.moto_url}/{ACCOUNT}/{name}"

    def physical_name(self, logical_id: str) -> str:
        kind = self._resource(logical_id)["Type"]
        if kind == "AWS::Serverless::Function":
            return logical_id
        named = super().physical_name(logical_id)
        if named != f"{self.stack_name}-{logical_id}":  # the template names it
            return named
        if logical_id in LOCAL_RESOURCE_NAMES:
            return LOCAL_RESOURCE_NAMES[logical_id]
        return "amlproxy-" + re.sub(r"(?<!^)(?=[A-Z])", "-", logical_id).lower()


@dataclass
class StackResources:
    """What :func:`create_resources` made: names, URLs and ARNs by logical id, and the
    notification queues by function."""

    buckets: dict[str, str] = field(default_factory=dict)
    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)  # logical id -> URL
    topics: dict[str, str] = field(default_factory=dict)  # logical id -> ARN
    s3_notifications: dict[str, str] = field(default_factory=dict)  # function -> queue URL
    sns_deliveries: dict[str, str] = field(default_factory=dict)  # function -> queue URL
    sns_subscriptions: dict[str, str] = field(default_factory=dict)  # function -> ARN

    def to_dict(self) -> dict[str, Any]:
        """For the state file and the banner (the names the template's outputs give)."""
        input_bucket = self.buckets.get("InputBucket", "")
        return {
            "input_bucket": input_bucket,
            "output_bucket": self.buckets.get("OutputBucket", input_bucket),
            "table": self.tables.get("ResultsTable", ""),
            "topic_arn": self.topics.get("PredictTopic", ""),
            "work_queue_url": self.queues.get("WorkQueue", ""),
            "failure_queue_url": self.queues.get("FailureQueue", ""),
            "ingest_queue_url": self.queues.get("IngestQueue", ""),
            "chunk_queue_url": self.queues.get("ChunkQueue", ""),
            "chunk_table": self.tables.get("ChunkTable", ""),
            "completion_topic_arn": self.topics.get("CompletionTopic", ""),
            "buckets": self.buckets, "tables": self.tables, "queues": self.queues,
            "topics": self.topics,
        }


def create_resources(resolver: StackResolver, functions: list[FunctionSpec],
                     clients: Mapping[str, Any]) -> StackResources:
    """Create what the template declares, then the notification plumbing (idempotent)."""
    made = StackResources()
    resources: Mapping[str, Any] = resolver.template.get("Resources") or {}
    present = {lid: r for lid, r in resources.items() if resolver.resource_exists(lid)}
    by_type = {kind: [lid for lid, r in present.items() if r.get("Type") == kind] for kind in (
        "AWS::S3::Bucket", "AWS::DynamoDB::Table", "AWS::SQS::Queue", "AWS::SNS::Topic",
        "AWS::SNS::Subscription")}
    for lid in by_type["AWS::S3::Bucket"]:
        made.buckets[lid] = resolver.physical_name(lid)
        clients["s3"].create_bucket(Bucket=made.buckets[lid])
    for lid in by_type["AWS::DynamoDB::Table"]:
        made.tables[lid] = resolver.physical_name(lid)
        _create_table(clients["dynamodb"], made.tables[lid], _properties(resolver, present, lid))
    _create_queues(resolver, present, by_type["AWS::SQS::Queue"], clients["sqs"], made)
    for lid in by_type["AWS::SNS::Topic"]:
        made.topics[lid] = clients["sns"].create_topic(Name=resolver.physical_name(lid))[
            "TopicArn"]
    for lid in by_type["AWS::SNS::Subscription"]:
        props = _properties(resolver, present, lid)
        clients["sns"].subscribe(TopicArn=props["TopicArn"], Protocol=props["Protocol"],
                                 Endpoint=props["Endpoint"], Attributes={
                                     k: str(props[k]).lower() for k in ("RawMessageDelivery",)
                                     if k in props})
    notifications = {name: [_queue_notification(c) for c in _properties(
        resolver, present, lid).get("NotificationConfiguration", {}).get(
        "QueueConfigurations", [])] for lid, name in made.buckets.items()}
    for spec in functions:
        _plumb(spec, clients, notifications, made)
    for bucket, configurations in notifications.items():
        if configurations:
            clients["s3"].put_bucket_notification_configuration(
                Bucket=bucket, NotificationConfiguration={"QueueConfigurations": configurations})
    return made


def _queue_notification(configuration: Mapping[str, Any]) -> dict[str, Any]:
    """A template's ``QueueConfigurations`` entry (``Event``, ``Queue``, ``Filter.S3Key``)
    in the form of S3's API (``Events``, ``QueueArn``, ``Filter.Key.FilterRules``)."""
    rules = ((configuration.get("Filter") or {}).get("S3Key") or {}).get("Rules") or []
    return {"QueueArn": configuration["Queue"], "Events": [configuration["Event"]], **(
        {"Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]}
                                            for r in rules]}}} if rules else {})}


def _properties(resolver: StackResolver, present: Mapping[str, Any], lid: str) -> Any:
    return resolver.resolve(present[lid].get("Properties") or {})


def _create_queues(resolver: StackResolver, present: Mapping[str, Any], logical_ids: list[str],
                   sqs: Any, made: StackResources) -> None:
    """Queues first, then their redrive policies (a policy names its DLQ's ARN)."""
    policies: dict[str, Any] = {}
    for lid in logical_ids:
        props = _properties(resolver, present, lid)
        attributes = {k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k])
                      for k in _QUEUE_ATTRIBUTES if k in props}
        made.queues[lid] = _queue(sqs, resolver.physical_name(lid), attributes)[0]
        if "RedrivePolicy" in props:
            policies[lid] = props["RedrivePolicy"]
    for lid, policy in policies.items():
        sqs.set_queue_attributes(QueueUrl=made.queues[lid], Attributes={
            "RedrivePolicy": json.dumps({k: str(v) for k, v in policy.items()})})


def _plumb(spec: FunctionSpec, clients: Mapping[str, Any],
           notifications: dict[str, list[dict[str, Any]]], made: StackResources) -> None:
    """The queues that stand in for the function's S3 and SNS event sources."""
    if spec.s3:
        url, arn = _queue(clients["sqs"], f"amlproxy-local-s3-{spec.name}", {})
        made.s3_notifications[spec.name] = url
        for source in spec.s3:
            rules = [{"Name": n, "Value": v} for n, v in (("prefix", source.prefix),
                                                         ("suffix", source.suffix)) if v]
            for event in source.events:
                notifications.setdefault(source.bucket, []).append({
                    "QueueArn": arn, "Events": [event],
                    **({"Filter": {"Key": {"FilterRules": rules}}} if rules else {})})
    if spec.sns:
        url, arn = _queue(clients["sqs"], f"amlproxy-local-sns-{spec.name}", {})
        made.sns_deliveries[spec.name] = url
        for topic in spec.sns:
            made.sns_subscriptions[spec.name] = clients["sns"].subscribe(
                TopicArn=topic.topic_arn, Protocol="sqs", Endpoint=arn,
                ReturnSubscriptionArn=True)["SubscriptionArn"]


def _queue(sqs: Any, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    url: str = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn: str = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    return url, arn


def _create_table(dynamodb: Any, name: str, props: Mapping[str, Any]) -> None:
    """A table with the template's keys (and indexes), on demand, with its TTL."""
    keys = {k: props[k] for k in ("AttributeDefinitions", "KeySchema",
                                  "GlobalSecondaryIndexes", "LocalSecondaryIndexes")
            if k in props}
    try:
        dynamodb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **keys)
    except dynamodb.exceptions.ResourceInUseException:
        return
    ttl = props.get("TimeToLiveSpecification") or {}
    if str(ttl.get("Enabled", "")).lower() == "true":
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification={
            "AttributeName": ttl["AttributeName"], "Enabled": True})
