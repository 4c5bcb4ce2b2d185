"""DynamoDB sink: one item per record, keyed by where the record came from.

Table schema (the SAM template must create exactly this; see :func:`table_definition`)::

    pk          S   partition key: Outcome.source ("s3://bucket/key?versionId=v", "sns:<id>")
    sk          N   sort key: Outcome.line (1-based line in the file, index in a message)
    expires_at  N   TTL attribute (epoch seconds), present when the sink has ``ttl_days``

Why ``pk``/``sk`` rather than a single ``id`` = Outcome.key: all the records of one input
share a partition, so "everything scored from this object" is one ``Query`` (in line
order) instead of a ``Scan``, and the key is still deterministic: a replay of the same
input rewrites the same items and adds none. Each item also carries ``key``
(= Outcome.key), ``status``, ``row_id``, ``label``, ``scores`` (map of label -> number),
``value``, ``backend``, ``model_id``, ``latency_ms``, ``attempts``, ``reasons`` (rejected
and failed outcomes) and ``scored_at`` (ISO-8601 UTC time of the write).

Writes go through ``BatchWriteItem`` in chunks of 25, each chunk under the one
:class:`~amlproxy.core.retry.RetryPolicy` (botocore makes one attempt per call): a call
that fails with throttling, a 5xx or connection trouble is retried, and so is the partial
success of a 200 answer, whose ``UnprocessedItems`` are sent again (only those). The
policy's attempt cap counts every ``BatchWriteItem`` call of a chunk, and no call starts
after the invocation's deadline. Whatever still cannot be written is reported by
:class:`SinkWriteError` with the keys of exactly those outcomes; once the deadline has
passed, the remaining chunks are reported without being tried.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.core.outcome import Outcome, StatusFilter, parse_statuses
from amlproxy.core.retry import RetryPolicy, gave_up_note, stopped_by_deadline
from amlproxy.errors import ConfigurationError, RetriesExhaustedError, SinkError, SinkWriteError
from amlproxy.sinks._aws import aws_retryable, one_attempt_config

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, WriteRequestUnionTypeDef

    Item = dict[str, AttributeValueTypeDef]

BATCH_LIMIT = 25  # BatchWriteItem accepts at most 25 put/delete requests
TTL_ATTRIBUTE = "expires_at"
_MIN_MAGNITUDE = 1e-130  # DynamoDB numbers: magnitude 1E-130 .. 9.99E+125
_MAX_MAGNITUDE = 9.99e125


class _Unprocessed(SinkError):
    """A ``BatchWriteItem`` answer handed items back; internal, retried by the policy."""


def _retryable(error: BaseException) -> bool:
    return isinstance(error, _Unprocessed) or aws_retryable(error)


def table_definition(table_name: str) -> dict[str, Any]:
    """Keyword arguments for ``create_table`` matching what the sink writes (on-demand).

    Enable TTL on :data:`TTL_ATTRIBUTE` separately (``update_time_to_live``) if wanted.
    """
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "N"},
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def default_client() -> DynamoDBClient:
    """A DynamoDB client that makes one attempt per call (the policy retries)."""
    import boto3  # here, not at import: the triggers make their clients from botocore

    return boto3.client("dynamodb", config=one_attempt_config(connect_timeout=5, read_timeout=10))


class DynamoDbSink:
    """Writes outcomes to a DynamoDB table, one item per record, keyed ``pk``/``sk``.

    ``statuses`` picks what is kept: ``("ok",)`` by default (a results table), ``"all"``
    for a table holding the latest fate of every record, or e.g. ``("rejected", "failed")``.
    ``ttl_days`` adds the ``expires_at`` TTL attribute. ``client`` is a low-level boto3
    DynamoDB client that makes one attempt per call (:func:`default_client` otherwise);
    ``retry_policy`` gives the attempts, delays and deadline (the sink brings its own
    classification of errors). Create the sink once per cold start.

    ``write`` is synchronous: when it returns, the outcomes are stored. If some could not
    be, it raises :class:`SinkWriteError` naming their keys (all others were written).
    """

    def __init__(
        self,
        table_name: str,
        *,
        client: DynamoDBClient | None = None,
        statuses: StatusFilter = ("ok",),
        ttl_days: float | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if not table_name:
            raise ConfigurationError("DynamoDbSink needs a table name")
        if ttl_days is not None and ttl_days <= 0:
            raise ConfigurationError("ttl_days must be positive")
        self.table_name = table_name
        self.name = f"dynamodb:{table_name}"
        self.statuses = parse_statuses(statuses, who="DynamoDbSink")
        self.ttl_days = ttl_days
        self.retry_policy = (retry_policy or RetryPolicy()).with_retryable(_retryable)
        self.count = 0  # items written by this sink
        self._client = client if client is not None else default_client()

    def write(self, outcomes: Sequence[Outcome]) -> None:
        items = self._items(outcomes)
        if not items:
            return
        requests: list[WriteRequestUnionTypeDef] = [{"PutRequest": {"Item": i}} for i in items]
        unwritten: list[str] = []
        written = 0
        reason = ""
        by_deadline = False
        for start in range(0, len(requests), BATCH_LIMIT):
            chunk = requests[start : start + BATCH_LIMIT]
            left, why, stop, by_deadline = self._write_chunk(chunk)
            written += len(chunk) - len(left)
            unwritten.extend(_key_of(r) for r in left)
            reason = why or reason
            if stop:  # the call itself failed, or the deadline came: the rest is not tried
                unwritten.extend(_key_of(r) for r in requests[start + BATCH_LIMIT :])
                break
        self.count += written
        if unwritten:
            raise SinkWriteError(self.name, reason, unwritten, written=written,
                                 deadline=by_deadline)

    def close(self) -> None:
        """Nothing to flush: every ``write`` is stored before it returns."""

    def abort(self) -> None:
        """Nothing to discard: the items written are keyed by source and line, so the
        retry of a failed run overwrites them."""

    # ---------------------------------------------------------------- internals

    def _items(self, outcomes: Iterable[Outcome]) -> list[Item]:
        """One item per kept outcome; a key seen twice keeps its last outcome (DynamoDB
        refuses a batch that names the same key twice)."""
        scored_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        expires = None
        if self.ttl_days is not None:
            expires = str(int(time.time() + self.ttl_days * 86400))
        keep = self.statuses
        by_key: dict[tuple[str, int], Item] = {}
        for outcome in outcomes:
            if outcome.status in keep:
                by_key[(outcome.source, outcome.line)] = item_of(outcome, scored_at, expires)
        return list(by_key.values())

    def _write_chunk(
        self, chunk: list[WriteRequestUnionTypeDef]
    ) -> tuple[list[Any], str, bool, bool]:
        """Writes one chunk under the policy. Returns what is left, why, whether the other
        chunks should not be tried (a failed call, the deadline), and whether the deadline
        stopped it."""
        pending: list[Any] = chunk

        def attempt() -> None:
            nonlocal pending
            answer = self._client.batch_write_item(RequestItems={self.table_name: pending})
            pending = list(answer.get("UnprocessedItems", {}).get(self.table_name, []))
            if pending:
                raise _Unprocessed(f"{len(pending)} item(s) still unprocessed")

        try:
            self.retry_policy.run(attempt)
        except (_Unprocessed, ClientError, BotoCoreError) as exc:
            note = gave_up_note(exc) or "not retried"
            by_deadline = stopped_by_deadline(exc)
            stop = not isinstance(exc, _Unprocessed) or by_deadline
            return pending, f"BatchWriteItem: {exc} ({note})", stop, by_deadline
        except RetriesExhaustedError as exc:  # the deadline passed before the first call
            return pending, f"BatchWriteItem not attempted: {exc}", True, stopped_by_deadline(exc)
        return [], "", False, False


def item_of(outcome: Outcome, scored_at: str, expires_at: str | None = None) -> Item:
    """The DynamoDB item (low-level attribute-value format) of one outcome."""
    item: Item = {
        "pk": {"S": outcome.source},
        "sk": {"N": str(outcome.line)},
        "key": {"S": outcome.key},
        "status": {"S": outcome.status.value},
        "scored_at": {"S": scored_at},
    }
    if outcome.row_id is not None:
        item["row_id"] = {"S": outcome.row_id}
    p = outcome.prediction
    if p is not None:
        if p.label is not None:
            item["label"] = {"S": p.label}
        scores: dict[str, AttributeValueTypeDef] = {}
        for label, score in p.scores.items():
            text = number(score)
            if text is not None:
                scores[label] = {"N": text}
        item["scores"] = {"M": scores}
        if p.value is not None and (text := number(p.value)) is not None:
            item["value"] = {"N": text}
        item["backend"] = {"S": p.backend}
        item["model_id"] = {"S": p.model_id}
        if (text := number(round(p.latency_ms, 3))) is not None:
            item["latency_ms"] = {"N": text}
        item["attempts"] = {"N": str(p.attempts)}
    if outcome.errors:
        item["reasons"] = {"L": [{"S": reason} for reason in outcome.reasons]}
    if expires_at is not None:
        item[TTL_ATTRIBUTE] = {"N": expires_at}
    return item


def number(x: float) -> str | None:
    """A float as a DynamoDB number string (exact decimal of its repr), or None when
    DynamoDB cannot hold it (NaN, infinities, beyond 9.99E+125). Magnitudes below
    1E-130 become 0."""
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x) or abs(x) > _MAX_MAGNITUDE:
        return None
    if abs(x) < _MIN_MAGNITUDE:
        return "0"
    text = repr(float(x))
    return str(Decimal(text)) if "e" in text else text


def _key_of(request: Any) -> str:
    return str(request["PutRequest"]["Item"]["key"]["S"])
