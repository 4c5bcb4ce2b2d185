"""The function roles, created in moto and enforced by moto's IAM evaluation, over HTTP.

moto does not implement IAM's policy simulator (SimulateCustomPolicy/SimulatePrincipalPolicy),
but moto server can *enforce* IAM on requests (``/moto-api/reset-auth``): every request is
then signature-checked and its action and resource ARN matched against the caller's
policies. S3 (object ARNs) and SQS (queue ARNs) pass real resource ARNs to that check, so a
role's prefix scoping is exercised by real GetObject/PutObject/SendMessage calls made with
the role's assumed-role credentials. (DynamoDB and SageMaker are checked against "*" only
by moto, so they are covered by the exact-grant tests instead.)
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.fixtures.aws import make_client, reset_moto
from tests.template.cfn_resolve import StackResolver
from tests.template.iam_grants import function_roles

ResolverFor = Callable[[Mapping[str, Any], str], StackResolver]


@contextmanager
def iam_enforced(endpoint: str) -> Iterator[None]:
    """moto checks IAM on every request inside the block, and stops checking after it."""

    def reset_auth(value: str) -> None:
        # Not form-encoded: moto reads the raw body as the number.
        request = urllib.request.Request(f"{endpoint}/moto-api/reset-auth", data=value.encode(),
                                         method="POST", headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200

    reset_auth("0")
    try:
        yield
    finally:
        reset_auth("inf")


def _client_as(service: str, endpoint: str, credentials: Mapping[str, str]) -> Any:
    config: dict[str, Any] = {"retries": {"max_attempts": 1}}
    if service == "s3":
        config["s3"] = {"addressing_style": "path"}
    return boto3.session.Session().client(
        service,  # type: ignore[call-overload]
        endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id=credentials["AccessKeyId"],
        aws_secret_access_key=credentials["SecretAccessKey"],
        aws_session_token=credentials["SessionToken"],
        config=Config(**config),
    )


def _denied(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        # moto answers SQS's JSON protocol with an XML error body, which botocore reports as
        # code "403": the status and the message still say AccessDenied.
        status = error.response["ResponseMetadata"]["HTTPStatusCode"]
        assert status == 403 and "AccessDenied" in str(error), f"unexpected error: {error}"
        return True
    return False


@pytest.fixture(scope="module")
def moto_endpoint(moto_server: str) -> str:
    """The moto server, wiped once for this module (its tests share one deployment)."""
    reset_moto(moto_server)
    return moto_server


@pytest.fixture(scope="module")
def deployed_roles(moto_endpoint: str, sam_template: dict[str, Any],
                   resolver_for: ResolverFor) -> dict[str, dict[str, str]]:
    """Creates the buckets, queues and the five roles of the 'sagemaker' scenario in moto;
    returns function logical id -> assumed-role credentials. Tests only read, or write
    keys and messages no other test looks at."""
    resolver = resolver_for(sam_template, "sagemaker")
    iam, sts = make_client("iam", moto_endpoint), make_client("sts", moto_endpoint)
    s3, sqs = make_client("s3", moto_endpoint), make_client("sqs", moto_endpoint)
    s3.create_bucket(Bucket="amlproxy-in")
    for key in ("input/x.csv", "other/x.csv", "output/old.csv"):
        s3.put_object(Bucket="amlproxy-in", Key=key, Body=b"age,workclass\n39,State-gov\n")
    for queue in ("FailureQueue", "WorkQueue", "IngestQueue", "ChunkQueue"):
        sqs.create_queue(QueueName=resolver.physical_name(queue))
    credentials = {}
    for function, role in function_roles(sam_template).items():
        props = resolver.resolve(sam_template["Resources"][role]["Properties"])
        name = resolver.physical_name(role)
        arn = iam.create_role(
            RoleName=name,
            AssumeRolePolicyDocument=json.dumps(props["AssumeRolePolicyDocument"]),
        )["Role"]["Arn"]
        assert arn == resolver.get_att(role, "Arn")
        for policy in props["Policies"]:
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"],
                                PolicyDocument=json.dumps(policy["PolicyDocument"]))
        credentials[function] = sts.assume_role(RoleArn=arn, RoleSessionName=function)[
            "Credentials"]
    return credentials


def test_s3_function_role_reads_only_the_input_prefix_and_writes_only_outputs(
        moto_endpoint: str, deployed_roles: dict[str, dict[str, str]]) -> None:
    s3 = _client_as("s3", moto_endpoint, deployed_roles["S3Function"])
    with iam_enforced(moto_endpoint):
        # IAM really is enforced: the default test credentials belong to no IAM identity.
        assert _denied_or_invalid(lambda: make_client("s3", moto_endpoint).get_object(
            Bucket="amlproxy-in", Key="input/x.csv"))
        body = s3.get_object(Bucket="amlproxy-in", Key="input/x.csv")["Body"].read()
        assert body.startswith(b"age,")
        assert _denied(lambda: s3.get_object(Bucket="amlproxy-in", Key="other/x.csv"))
        assert _denied(lambda: s3.get_object(Bucket="amlproxy-in", Key="output/old.csv"))
        assert _denied(lambda: s3.get_object(Bucket="amlproxy-in", Key="inputx/x.csv"))
        assert _denied(lambda: s3.put_object(Bucket="amlproxy-in", Key="input/y.csv", Body=b"y"))
        assert _denied(lambda: s3.put_object(Bucket="amlproxy-in", Key="other/y.csv", Body=b"y"))
        s3.put_object(Bucket="amlproxy-in", Key="output/x.csv.out", Body=b"ok")
        s3.put_object(Bucket="amlproxy-in", Key="rejects/x.csv.rejects", Body=b"ok")
        assert _denied(lambda: s3.delete_object(Bucket="amlproxy-in", Key="input/x.csv"))
        assert _denied(lambda: s3.delete_object(Bucket="amlproxy-in", Key="output/x.csv.out"))
        # The planner writes no chunk objects: the chunk workers do.
        assert _denied(lambda: s3.put_object(Bucket="amlproxy-in", Key="chunks/x/000000.results"
                                             ".jsonl", Body=b"{}"))


def test_chunk_function_role_keeps_chunk_objects_and_assembles_outputs(
        moto_endpoint: str, deployed_roles: dict[str, dict[str, str]]) -> None:
    s3 = _client_as("s3", moto_endpoint, deployed_roles["ChunkFunction"])
    key = "chunks/x.csv.v1/000000.results.jsonl"
    with iam_enforced(moto_endpoint):
        assert s3.get_object(Bucket="amlproxy-in", Key="input/x.csv", Range="bytes=0-2")[
            "Body"].read() == b"age"  # the ranged GET of a chunk
        assert _denied(lambda: s3.get_object(Bucket="amlproxy-in", Key="other/x.csv"))
        s3.put_object(Bucket="amlproxy-in", Key=key, Body=b'{"line": 2}\n')
        assert s3.get_object(Bucket="amlproxy-in", Key=key)["Body"].read() == b'{"line": 2}\n'
        upload = s3.create_multipart_upload(Bucket="amlproxy-in",
                                            Key="output/x.csv.v1.predictions.jsonl")
        part = s3.upload_part_copy(Bucket="amlproxy-in", Key="output/x.csv.v1.predictions.jsonl",
                                   UploadId=upload["UploadId"], PartNumber=1,
                                   CopySource={"Bucket": "amlproxy-in", "Key": key})
        s3.complete_multipart_upload(
            Bucket="amlproxy-in", Key="output/x.csv.v1.predictions.jsonl",
            UploadId=upload["UploadId"], MultipartUpload={"Parts": [
                {"PartNumber": 1, "ETag": part["CopyPartResult"]["ETag"]}]})
        s3.delete_object(Bucket="amlproxy-in", Key=key)
        assert _denied(lambda: s3.put_object(Bucket="amlproxy-in", Key="input/y.csv", Body=b"y"))
        assert _denied(lambda: s3.delete_object(Bucket="amlproxy-in", Key="input/x.csv"))
        assert _denied(lambda: s3.delete_object(
            Bucket="amlproxy-in", Key="output/x.csv.v1.predictions.jsonl"))


def test_only_the_s3_function_role_touches_s3(
        moto_endpoint: str, deployed_roles: dict[str, dict[str, str]]) -> None:
    with iam_enforced(moto_endpoint):
        for function in ("SnsFunction", "SqsFunction", "ApiFunction"):
            s3 = _client_as("s3", moto_endpoint, deployed_roles[function])
            assert _denied(partial(s3.get_object, Bucket="amlproxy-in", Key="input/x.csv"))
            assert _denied(partial(s3.put_object, Bucket="amlproxy-in", Key="output/z",
                                   Body=b"z"))


def test_queue_access_follows_each_trigger(
        moto_endpoint: str, deployed_roles: dict[str, dict[str, str]]) -> None:
    base = f"{moto_endpoint}/123456789012/amlproxy-test-"
    failure_queue, work_queue = base + "FailureQueue", base + "WorkQueue"
    ingest_queue, chunk_queue = base + "IngestQueue", base + "ChunkQueue"
    with iam_enforced(moto_endpoint):
        sns = _client_as("sqs", moto_endpoint, deployed_roles["SnsFunction"])
        sns.send_message(QueueUrl=failure_queue, MessageBody="failed SnsFunction")
        assert _denied(partial(sns.send_message, QueueUrl=work_queue, MessageBody="x"))
        assert _denied(partial(sns.receive_message, QueueUrl=failure_queue))
        planner = _client_as("sqs", moto_endpoint, deployed_roles["S3Function"])
        planner.receive_message(QueueUrl=ingest_queue)
        # (IAM authorizes SendMessageBatch as sqs:SendMessage; moto asks for an action
        # sqs:SendMessageBatch, which IAM does not have: the single send stands for both.)
        planner.send_message(QueueUrl=chunk_queue, MessageBody="chunk 0")
        assert _denied(partial(planner.receive_message, QueueUrl=chunk_queue))
        assert _denied(partial(planner.send_message, QueueUrl=failure_queue, MessageBody="x"))
        assert _denied(partial(planner.send_message, QueueUrl=ingest_queue, MessageBody="x"))
        worker = _client_as("sqs", moto_endpoint, deployed_roles["ChunkFunction"])
        worker.receive_message(QueueUrl=chunk_queue)
        worker.get_queue_attributes(QueueUrl=chunk_queue, AttributeNames=["All"])
        assert _denied(partial(worker.send_message, QueueUrl=chunk_queue, MessageBody="x"))
        assert _denied(partial(worker.receive_message, QueueUrl=ingest_queue))
        consumer = _client_as("sqs", moto_endpoint, deployed_roles["SqsFunction"])
        consumer.receive_message(QueueUrl=work_queue)
        consumer.get_queue_attributes(QueueUrl=work_queue, AttributeNames=["All"])
        assert _denied(lambda: consumer.send_message(QueueUrl=failure_queue, MessageBody="x"))
        assert _denied(lambda: consumer.receive_message(QueueUrl=failure_queue))
        api = _client_as("sqs", moto_endpoint, deployed_roles["ApiFunction"])
        assert _denied(lambda: api.send_message(QueueUrl=failure_queue, MessageBody="x"))


def _denied_or_invalid(call: Callable[[], Any]) -> bool:
    try:
        call()
    except ClientError as error:
        return error.response["Error"]["Code"] in ("InvalidAccessKeyId", "AccessDenied",
                                                   "InvalidClientTokenId", "InvalidToken")
    return False
