"""``Idempotency-Key`` for the HTTP trigger, as Stripe and the IETF draft
(draft-ietf-httpapi-idempotency-key-header) define it: a small DynamoDB conditional-put
store.

A client that may retry ``POST /predict`` (a timeout, a dropped connection) sends an
``Idempotency-Key`` header. With ``AMLPROXY_IDEMPOTENCY_TABLE`` set:

- keys belong to a caller (:func:`caller_scope`): the IAM principal that signed the request,
  else the API key, else the authorizer's principal. Two callers may use the same key
  without seeing each other's answers. A request with none of them (an API or function URL
  without authentication, the local API) is "anonymous": all such callers share one key
  space, so their keys must be unguessable (a UUID, as Stripe asks);
- the request is parsed and validated *before* the key is claimed: a 4xx caused by the
  request (bad JSON, an invalid record, too many records...) claims and stores nothing,
  and the corrected request with the same key is scored;
- the first valid request with a key claims it (a conditional ``PutItem``: the key is
  absent, expired, or held by an attempt that outlived its deadline; the hold lasts the
  invocation's remaining time plus 5 s), is scored, and its answer is stored
  (zlib-compressed) with the request's fingerprint, for ``AMLPROXY_IDEMPOTENCY_TTL_S``;
- a repeat with the same key and the same request gets the stored answer, with the header
  ``idempotent-replayed: true``, and the endpoint is not called again;
- the same key with a different request (method, path, content type, query, body) is
  refused with 422; a repeat while the first is still being scored gets 409 and
  ``Retry-After``;
- an answer of 500 or more is not kept (the key is released): a retry scores again;
- if the store cannot be reached the request is refused with 503 (a client that asked for
  idempotency is never silently scored twice).

The item (key ``id``, TTL ``expiration``) matches the SAM template's ``IdempotencyStore``.
Without a table the header is ignored. Powertools' idempotency utility would fit too
(its import costs ~20 ms); this store is used instead because the answers above (422, 409,
a compressed stored response, a header that API Gateway may spell in any case) are ours.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from amlproxy.triggers._http import HttpRequest, error_response

log = logging.getLogger("amlproxy.triggers")

HEADER = "idempotency-key"
TTL_ATTRIBUTE = "expiration"
REPLAYED_HEADER = "idempotent-replayed"
MAX_KEY_CHARS = 255
MAX_STORED_BYTES = 350_000  # DynamoDB items are at most 400 KB
IN_PROGRESS = "INPROGRESS"
COMPLETED = "COMPLETED"

ClaimState = Literal["claimed", "replay", "mismatch", "in_progress"]


@dataclass(frozen=True, slots=True)
class Claim:
    """The result of claiming a key: ``response`` is the stored answer of a replay."""

    state: ClaimState
    response: dict[str, Any] | None = None


def table_definition(table_name: str) -> dict[str, Any]:
    """Keyword arguments for ``create_table`` matching the template's ``IdempotencyStore``
    (on demand; enable TTL on ``expiration`` with ``update_time_to_live``)."""
    return {
        "TableName": table_name,
        "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
        "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
        "BillingMode": "PAY_PER_REQUEST",
    }


@dataclass(frozen=True, slots=True)
class CallerKey:
    """An ``Idempotency-Key`` in its caller's scope (see :func:`caller_scope`).

    The scope is stored as a digest, so that neither the store nor the results table holds
    principal ARNs, and so that no scope and key can run into another pair's id.
    """

    scope: str
    key: str

    @property
    def scope_digest(self) -> str:
        return hashlib.sha256(self.scope.encode()).hexdigest()[:32]

    @property
    def record_id(self) -> str:
        """The idempotency item's ``id``."""
        return f"api#{self.scope_digest}#{self.key}"

    @property
    def source(self) -> str:
        """The results' source id (DynamoDB ``pk``): a replay writes the same items."""
        return f"api:key:{self.scope_digest}:{self.key}"


def caller_scope(context: Mapping[str, Any]) -> str:
    """Who is calling, from an API Gateway (REST or HTTP API) or function URL
    ``requestContext``: ``iam:<principal ARN>``, ``api-key:<id>``, ``principal:<id>``
    (a Lambda, Cognito or JWT authorizer's), or ``anonymous``."""
    identity = _mapping(context.get("identity"))
    authorizer = _mapping(context.get("authorizer"))
    iam = _mapping(authorizer.get("iam"))
    arn = iam.get("userArn") or identity.get("userArn") or identity.get("caller")
    if arn:
        return f"iam:{arn}"
    if identity.get("apiKeyId"):
        return f"api-key:{identity['apiKeyId']}"
    claims = _mapping(authorizer.get("claims") or _mapping(authorizer.get("jwt")).get("claims"))
    lambda_context = _mapping(authorizer.get("lambda"))
    principal = (authorizer.get("principalId") or lambda_context.get("principalId")
                 or claims.get("sub"))
    if principal:
        return f"principal:{principal}"
    return "anonymous"


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class IdempotencyStoreError(Exception):
    """The idempotency table could not be read or written (internal: becomes a 503)."""


class IdempotencyStore:
    """Idempotency records in a DynamoDB table keyed by ``id`` (string), TTL ``expiration``."""

    def __init__(self, table: str, client: Any, *, ttl_s: int = 3600,
                 clock: Callable[[], float] = time.time) -> None:
        self.table = table
        self.ttl_s = ttl_s
        self._client = client
        self._clock = clock

    def claim(self, key: str, fingerprint: str, *, hold_s: float) -> Claim:
        """Claim ``key`` for a request with ``fingerprint`` for at most ``hold_s`` seconds."""
        now = int(self._clock())
        item = {
            "id": {"S": key},
            "status": {"S": IN_PROGRESS},
            "fingerprint": {"S": fingerprint},
            TTL_ATTRIBUTE: {"N": str(now + self.ttl_s)},
            "in_progress_until": {"N": str(now + max(1, int(hold_s)))},
        }
        for _ in range(2):  # a record deleted between the put and the read: claim again
            try:
                self._client.put_item(
                    TableName=self.table,
                    Item=item,
                    ConditionExpression="attribute_not_exists(id) OR expiration < :now OR "
                    "(#s = :busy AND in_progress_until < :now)",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues={":now": {"N": str(now)},
                                               ":busy": {"S": IN_PROGRESS}},
                )
                return Claim("claimed")
            except Exception as exc:
                if _error_code(exc) != "ConditionalCheckFailedException":
                    raise IdempotencyStoreError(f"cannot claim the key: {exc}") from exc
            found = self._get(key)
            if found is not None:
                return self._existing(found, fingerprint)
        raise IdempotencyStoreError("the key changed hands twice while being claimed")

    def complete(self, key: str, fingerprint: str, answer: dict[str, Any]) -> bool:
        """Store ``answer`` for ``key``; False (and the key released) when it is too big."""
        packed = zlib.compress(orjson.dumps(answer), 6)
        if len(packed) > MAX_STORED_BYTES:
            log.warning("idempotency: answer of %d bytes compressed is too big to keep",
                        len(packed))
            self.release(key)
            return False
        item = {
            "id": {"S": key},
            "status": {"S": COMPLETED},
            "fingerprint": {"S": fingerprint},
            TTL_ATTRIBUTE: {"N": str(int(self._clock()) + self.ttl_s)},
            "response": {"B": packed},
        }
        try:
            self._client.put_item(TableName=self.table, Item=item)
        except Exception as exc:  # the answer is still returned; a retry scores again
            log.warning("idempotency: cannot store the answer: %s", exc)
            self.release(key)
            return False
        return True

    def release(self, key: str) -> None:
        """Forget ``key`` (its attempt failed): the next request with it is scored anew."""
        try:
            self._client.delete_item(TableName=self.table, Key={"id": {"S": key}})
        except Exception as exc:  # it expires at in_progress_until anyway
            log.warning("idempotency: cannot release the key: %s", exc)

    def _get(self, key: str) -> dict[str, Any] | None:
        try:
            answer = self._client.get_item(TableName=self.table, Key={"id": {"S": key}},
                                           ConsistentRead=True)
        except Exception as exc:
            raise IdempotencyStoreError(f"cannot read the key: {exc}") from exc
        item: dict[str, Any] | None = answer.get("Item")
        return item

    def _existing(self, item: dict[str, Any], fingerprint: str) -> Claim:
        if item.get("fingerprint", {}).get("S") != fingerprint:
            return Claim("mismatch")
        if item.get("status", {}).get("S") == COMPLETED and "response" in item:
            stored: dict[str, Any] = orjson.loads(zlib.decompress(item["response"]["B"]))
            return Claim("replay", stored)
        return Claim("in_progress")


def request_fingerprint(request: HttpRequest, body: bytes) -> str:
    """What makes two requests "the same": method, path, content type, query and body."""
    digest = hashlib.sha256()
    query = sorted(request.query.items())
    head = orjson.dumps([request.method, request.path, request.content_type, query])
    digest.update(head)
    digest.update(b"\n")
    digest.update(body)
    return digest.hexdigest()


def check_key(key: str) -> str | None:
    """Why an ``Idempotency-Key`` value is unusable, or None."""
    if not key or len(key) > MAX_KEY_CHARS:
        return f"the Idempotency-Key header must have 1 to {MAX_KEY_CHARS} characters"
    if not key.isascii() or not key.isprintable():
        return "the Idempotency-Key header must be printable ASCII"
    return None


def idempotent(store: IdempotencyStore, key: CallerKey, fingerprint: str, *, hold_s: float,
               answer: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``answer()`` at most once per caller, key and request, for a request that is known
    to be valid (see the module docstring)."""
    record_id = key.record_id
    try:
        claim = store.claim(record_id, fingerprint, hold_s=hold_s)
    except IdempotencyStoreError as exc:
        log.error("idempotency store unavailable: %s", exc)
        return error_response(503, "IdempotencyStoreUnavailable", "the Idempotency-Key "
                              "could not be checked; retry later", headers={"retry-after": "1"})
    if claim.state == "mismatch":
        return error_response(422, "IdempotencyKeyReused", "this Idempotency-Key was used "
                              "with a different request; use a new key for a new request")
    if claim.state == "in_progress":
        return error_response(409, "IdempotencyKeyInProgress", "a request with this "
                              "Idempotency-Key is still being processed; retry shortly",
                              headers={"retry-after": "1"})
    if claim.state == "replay":
        assert claim.response is not None
        replayed = dict(claim.response)
        replayed["headers"] = {**replayed.get("headers", {}), REPLAYED_HEADER: "true"}
        return replayed
    try:
        result = answer()
    except BaseException:
        store.release(record_id)
        raise
    if int(result.get("statusCode", 500)) >= 500:
        store.release(record_id)
    else:
        store.complete(record_id, fingerprint, result)
    return result


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""
