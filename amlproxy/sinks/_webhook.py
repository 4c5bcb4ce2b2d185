"""Standard Webhooks signing and verification (symmetric scheme, ``v1``).

Per the Standard Webhooks specification 1.0.0:

- headers ``webhook-id`` (stable per message: the idempotency key), ``webhook-timestamp``
  (integer unix seconds of the attempt) and ``webhook-signature``;
- the signed content is ``{id}.{timestamp}.{body}``, signed with HMAC-SHA256 keyed with the
  secret's bytes: the base64 text after the ``whsec_`` prefix, decoded;
- a signature is ``v1,`` + base64 of the MAC; several are space-separated, one per secret,
  so that a secret can be rotated without downtime;
- a receiver compares in constant time, accepts any matching ``v1`` signature, and refuses
  a timestamp too far from its clock (replay protection).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping, Sequence
from email.message import Message

from amlproxy.errors import ConfigurationError, WebhookVerificationError

SECRET_PREFIX = "whsec_"
SCHEME = "v1"
DEFAULT_TOLERANCE_S = 300

Headers = Mapping[str, str] | Message


def secret_key(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret (the prefix is optional)."""
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError("webhook secret is not whsec_ followed by base64") from exc
    if not key:
        raise ConfigurationError("webhook secret is empty")
    return key


def signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """One ``v1,<base64 HMAC-SHA256>`` signature of ``{msg_id}.{timestamp}.{body}``."""
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return f"{SCHEME},{base64.b64encode(mac).decode('ascii')}"


def sign(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> str:
    """The ``webhook-signature`` header value: one signature per secret, space-separated
    (the first secret is the current one; the others are kept during a rotation)."""
    if not secrets:
        raise ConfigurationError("at least one webhook secret is needed to sign")
    return " ".join(signature(secret_key(s), msg_id, timestamp, body) for s in secrets)


def webhook_headers(
    msg_id: str, body: bytes, secrets: Sequence[str], *, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(msg_id, ts, body, secrets),
    }


def message_id(kind: str, keys: Iterable[str]) -> str:
    """A webhook id derived from the outcome keys a message carries, so that a replay of
    the same input re-sends the same id and the receiver can drop the duplicate."""
    digest = hashlib.sha256(kind.encode())
    for key in keys:
        digest.update(b"\n")
        digest.update(key.encode())
    return f"msg_{digest.hexdigest()[:32]}"


def verify(
    payload: bytes | str,
    headers: Headers,
    secrets: Sequence[str],
    *,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Checks a received webhook; raises :class:`WebhookVerificationError` if it is not
    authentic (no ``v1`` signature matches any of ``secrets``) or not fresh (timestamp
    more than ``tolerance_s`` away from ``now``). ``payload`` is the raw body as received.
    """
    lowered = {name.lower(): str(value) for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    stamp = lowered.get("webhook-timestamp")
    header = lowered.get("webhook-signature")
    if not msg_id or not stamp or not header:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        timestamp = int(stamp)
    except ValueError as exc:
        raise WebhookVerificationError(f"invalid webhook-timestamp {stamp!r}") from exc
    clock = time.time() if now is None else now
    if abs(clock - timestamp) > tolerance_s:
        raise WebhookVerificationError(
            f"webhook-timestamp {timestamp} is more than {tolerance_s:g}s from now"
        )
    body = payload.encode() if isinstance(payload, str) else payload
    offered = [s for s in header.split() if s.startswith(f"{SCHEME},")]
    for secret in secrets:
        expected = signature(secret_key(secret), msg_id, timestamp, body).encode()
        for candidate in offered:
            if hmac.compare_digest(expected, candidate.encode()):
                return
    raise WebhookVerificationError("no webhook signature matches")
