"""The completion store: one DynamoDB item per object version, shared by the planner and
the chunk workers, written only by conditional or commutative updates.

Item (partition key ``object`` = the source id ``s3://bucket/key?versionId=...``, or
``s3://bucket/key?etag=...`` in a bucket without versioning)::

    object        S   the object version (see above)
    chunks        N   how many chunks the plan has
    chunk_bytes   N   the chunk size it was planned with (a re-plan reuses it)
    format        S   csv | jsonl
    status        S   planned | assembled
    done          NS  the indexes of the chunks whose objects are written
    counts        M   index -> {total, ok, rejected, failed} of each chunk done
    expires_at    N   TTL (epoch seconds)
    total, ok, rejected, failed   N   over all chunks, once assembled
    results, rejects              S   the output URIs, once assembled
    notified      BOOL  the completion notification went out

- :meth:`CompletionStore.plan` puts the item only if none exists (a re-plan of the same
  version finds and reuses it);
- :meth:`CompletionStore.done` adds a chunk's index to ``done`` and sets its counts in one
  ``UpdateItem`` (``ADD`` to a set commutes, so concurrent workers are safe, and a redone
  chunk adds nothing) and returns the item as it now is: the worker that sees the set
  complete assembles;
- :meth:`CompletionStore.assembled` moves ``planned`` to ``assembled`` under a condition:
  of two racing assemblers, exactly one does it (and announces the object).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.core.retry import Deadline, RetryPolicy, explain
from amlproxy.errors import RetriesExhaustedError, SinkError
from amlproxy.sinks._aws import aws_policy

COUNTS = ("total", "ok", "rejected", "failed")
PLANNED, ASSEMBLED = "planned", "assembled"
# A plan item outlives its chunk messages: ChunkDeadLetterQueue keeps a chunk 14 days (from
# its first enqueue, which a move to the DLQ keeps), and a chunk redriven on the last day
# must still find its plan, as its chunk objects are kept 14 days (the ExpireChunks rule).
DEFAULT_TTL_S = 15 * 86400


class DynamoDbPort(Protocol):
    """The DynamoDB client operations the store uses (a boto3 ``dynamodb`` client)."""

    def get_item(self, **kwargs: Any) -> Any: ...

    def put_item(self, **kwargs: Any) -> Any: ...

    def update_item(self, **kwargs: Any) -> Any: ...


@dataclass
class Completion:
    """What the item says about an object version."""

    source: str
    chunks: int
    chunk_bytes: int
    format: str
    status: str = PLANNED
    done: set[int] = field(default_factory=set)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    notified: bool = False  # the completion notification went out

    @property
    def complete(self) -> bool:
        return len(self.done) >= self.chunks

    @property
    def assembled(self) -> bool:
        return self.status == ASSEMBLED

    def totals(self) -> dict[str, int]:
        """The counts over every chunk done (total = ok + rejected + failed)."""
        return {name: sum(c.get(name, 0) for c in self.counts.values()) for name in COUNTS}


def table_definition(table: str) -> dict[str, Any]:
    """The CreateTable arguments of the chunk table (tests, the local service)."""
    return {
        "TableName": table,
        "KeySchema": [{"AttributeName": "object", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "object", "AttributeType": "S"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


class CompletionStore:
    """The plans and completion of chunked objects in DynamoDB table ``table``.

    Every call runs under ``retry_policy`` (AWS errors classified as the sinks do) and
    stops at ``deadline`` (default: the policy's own)."""

    def __init__(self, table: str, *, client: DynamoDbPort | None = None,
                 retry_policy: RetryPolicy | None = None, deadline: Deadline | None = None,
                 ttl_s: int = DEFAULT_TTL_S) -> None:
        if client is None:
            import boto3

            from amlproxy.sinks._aws import one_attempt_config

            client = cast(DynamoDbPort, boto3.client("dynamodb", config=one_attempt_config()))
        self.table = table
        self.client: DynamoDbPort = client
        self.policy = aws_policy(retry_policy)
        self.deadline = deadline
        self.ttl_s = ttl_s

    def get(self, source: str) -> Completion | None:
        """The item of ``source`` (a consistent read), None if there is none."""
        answer = self._call("read", lambda: self.client.get_item(
            TableName=self.table, Key={"object": {"S": source}}, ConsistentRead=True))
        item = answer.get("Item")
        return _completion(item) if item else None

    def plan(self, source: str, *, chunks: int, chunk_bytes: int, fmt: str) -> Completion:
        """Records a plan unless one exists; the plan in force (this one or the earlier)."""
        item = {
            "object": {"S": source}, "chunks": {"N": str(chunks)},
            "chunk_bytes": {"N": str(chunk_bytes)}, "format": {"S": fmt},
            "status": {"S": PLANNED}, "counts": {"M": {}},
            "expires_at": {"N": str(int(time.time()) + self.ttl_s)},
        }
        try:
            self._call("record the plan of", lambda: self.client.put_item(
                TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(#o)",
                ExpressionAttributeNames={"#o": "object"}), conditional=True)
        except _ConditionFailed:
            found = self.get(source)
            if found is None:  # (expired between the two calls)
                raise SinkError(f"the plan of {source} vanished") from None
            return found
        return Completion(source, chunks, chunk_bytes, fmt)

    def done(self, source: str, index: int, counts: dict[str, int]) -> Completion | None:
        """Marks chunk ``index`` done with its ``counts``; the item as it now is (None: the
        object has no plan, it expired)."""
        values = {name: {"N": str(int(counts.get(name, 0)))} for name in COUNTS}
        try:
            answer = self._call("mark a chunk done in", lambda: self.client.update_item(
                TableName=self.table, Key={"object": {"S": source}},
                UpdateExpression="ADD #d :i SET #c.#k = :c",
                ConditionExpression="attribute_exists(#o)",
                ExpressionAttributeNames={"#d": "done", "#c": "counts", "#k": str(index),
                                          "#o": "object"},
                ExpressionAttributeValues={":i": {"NS": [str(index)]}, ":c": {"M": values}},
                ReturnValues="ALL_NEW"), conditional=True)
        except _ConditionFailed:
            return None
        return _completion(answer["Attributes"])

    def assembled(self, source: str, totals: dict[str, int], uris: dict[str, str]) -> bool:
        """Moves the item to ``assembled`` with the totals and output URIs; False when it
        already was (another assembler did it)."""
        values: dict[str, Any] = {f":{k}": {"N": str(v)} for k, v in totals.items()}
        values.update({f":{k}": {"S": v} for k, v in uris.items()})
        values.update({":a": {"S": ASSEMBLED}, ":p": {"S": PLANNED}})
        sets = ", ".join(f"#{k} = :{k}" for k in [*totals, *uris])
        try:
            self._call("mark assembled", lambda: self.client.update_item(
                TableName=self.table, Key={"object": {"S": source}},
                UpdateExpression=f"SET #s = :a, {sets}", ConditionExpression="#s = :p",
                ExpressionAttributeNames={"#s": "status", **{f"#{k}": k for k in [*totals, *uris]}},
                ExpressionAttributeValues=values), conditional=True)
        except _ConditionFailed:
            return False
        return True

    def notified(self, source: str) -> None:
        """Records that the completion notification of ``source`` went out."""
        self._call("mark notified", lambda: self.client.update_item(
            TableName=self.table, Key={"object": {"S": source}},
            UpdateExpression="SET #n = :t", ExpressionAttributeNames={"#n": "notified"},
            ExpressionAttributeValues={":t": {"BOOL": True}}))

    def _call(self, action: str, call: Any, *, conditional: bool = False) -> Any:
        try:
            return self.policy.run(call, deadline=self.deadline)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if conditional and code == "ConditionalCheckFailedException":
                raise _ConditionFailed from exc
            raise SinkError(f"cannot {action} the chunk table {self.table}: {exc}") from exc
        except (BotoCoreError, RetriesExhaustedError) as exc:
            raise SinkError(f"cannot {action} the chunk table {self.table}: "
                            f"{explain(exc)}") from exc


class _ConditionFailed(Exception):
    """A conditional write found the item otherwise (internal)."""


def _completion(item: dict[str, Any]) -> Completion:
    counts = {
        int(index): {name: int(value["M"].get(name, {}).get("N", 0)) for name in COUNTS}
        for index, value in item.get("counts", {}).get("M", {}).items()
    }
    return Completion(
        source=item["object"]["S"], chunks=int(item["chunks"]["N"]),
        chunk_bytes=int(item["chunk_bytes"]["N"]), format=item["format"]["S"],
        status=item["status"]["S"], done={int(n) for n in item.get("done", {}).get("NS", ())},
        counts=counts, notified=bool(item.get("notified", {}).get("BOOL", False)),
    )
