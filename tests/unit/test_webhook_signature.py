"""Standard Webhooks signing and verification."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from email.message import Message

import pytest

from amlproxy.errors import ConfigurationError, WebhookVerificationError
from amlproxy.sinks._webhook import message_id, secret_key, sign, verify, webhook_headers

# The test vector published with the Standard Webhooks reference libraries.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TS = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(32)).decode()


def test_published_vector() -> None:
    assert sign(VECTOR_ID, VECTOR_TS, VECTOR_BODY, [VECTOR_SECRET]) == VECTOR_SIGNATURE


def test_signature_follows_the_definition() -> None:
    """Computed by hand: HMAC-SHA256(base64decode(secret after whsec_), "id.ts.body")."""
    raw_key = b"0123456789abcdef0123456789abcdef"
    secret = "whsec_" + base64.b64encode(raw_key).decode()
    body = b'{"type":"amlproxy.results","data":{"rows":[{"key":"s3://b/k#1"}]}}'
    signed = b"msg_abc.1700000000." + body
    expected = base64.b64encode(hmac.new(raw_key, signed, hashlib.sha256).digest()).decode()
    assert sign("msg_abc", 1700000000, body, [secret]) == f"v1,{expected}"
    assert secret_key(secret) == raw_key
    assert secret_key(base64.b64encode(raw_key).decode()) == raw_key  # prefix optional


def test_rotation_signs_with_every_secret_in_order() -> None:
    current, previous = new_secret(), new_secret()
    header = sign("msg_1", 1700000000, b"{}", [current, previous])
    first, second = header.split(" ")
    assert first == sign("msg_1", 1700000000, b"{}", [current])
    assert second == sign("msg_1", 1700000000, b"{}", [previous])


def test_verify_accepts_a_fresh_delivery_and_either_secret() -> None:
    current, previous = new_secret(), new_secret()
    body = b'{"n":1}'
    headers = webhook_headers("msg_1", body, [current, previous], timestamp=1700000000)
    verify(body, headers, [current], now=1700000010)
    verify(body.decode(), headers, [previous], now=1700000010)
    # a receiver that already moved to the new secret, while the sender signs with the old
    old_only = webhook_headers("msg_1", body, [previous], timestamp=1700000000)
    verify(body, old_only, [current, previous], now=1700000000)
    # header names are case-insensitive, email.message.Message works (http.server's type)
    message = Message()
    for name, value in headers.items():
        message[name.title()] = value
    verify(body, message, [current], now=1700000000)


@pytest.mark.parametrize("skew", [-301, 301, -10_000])
def test_verify_refuses_a_stale_or_future_timestamp(skew: int) -> None:
    secret = new_secret()
    headers = webhook_headers("msg_1", b"{}", [secret], timestamp=1700000000)
    with pytest.raises(WebhookVerificationError, match="more than 300s"):
        verify(b"{}", headers, [secret], now=1700000000 + skew)
    verify(b"{}", headers, [secret], now=1700000000 + skew, tolerance_s=abs(skew))


def test_verify_refuses_tampering_and_wrong_secrets() -> None:
    secret = new_secret()
    headers = webhook_headers("msg_1", b'{"n":1}', [secret], timestamp=1700000000)
    with pytest.raises(WebhookVerificationError, match="no webhook signature matches"):
        verify(b'{"n":2}', headers, [secret], now=1700000000)
    with pytest.raises(WebhookVerificationError):
        verify(b'{"n":1}', headers, [new_secret()], now=1700000000)
    with pytest.raises(WebhookVerificationError):  # id is signed too
        verify(b'{"n":1}', {**headers, "webhook-id": "msg_2"}, [secret], now=1700000000)
    with pytest.raises(WebhookVerificationError):  # timestamp is signed too
        verify(b'{"n":1}', {**headers, "webhook-timestamp": "1700000001"}, [secret], now=1700000000)
    wrong_scheme = headers["webhook-signature"].replace("v1,", "v1a,")
    with pytest.raises(WebhookVerificationError):
        verify(b'{"n":1}', {**headers, "webhook-signature": wrong_scheme}, [secret], now=1700000000)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_verify_refuses_missing_headers(missing: str) -> None:
    secret = new_secret()
    headers = webhook_headers("msg_1", b"{}", [secret], timestamp=1700000000)
    del headers[missing]
    with pytest.raises(WebhookVerificationError, match="missing"):
        verify(b"{}", headers, [secret], now=1700000000)


def test_verify_refuses_a_non_numeric_timestamp() -> None:
    secret = new_secret()
    headers = webhook_headers("msg_1", b"{}", [secret], timestamp=1700000000)
    with pytest.raises(WebhookVerificationError, match="invalid webhook-timestamp"):
        verify(b"{}", {**headers, "webhook-timestamp": "soon"}, [secret])


def test_bad_secrets_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        secret_key("whsec_not base64!")
    with pytest.raises(ConfigurationError):
        secret_key("whsec_")
    with pytest.raises(ConfigurationError):
        sign("msg_1", 1, b"", [])


def test_message_id_is_stable_and_depends_on_keys_and_kind() -> None:
    keys = ["s3://b/k?versionId=1#1", "s3://b/k?versionId=1#2"]
    first = message_id("amlproxy.results", keys)
    assert first == message_id("amlproxy.results", list(keys))
    assert first.startswith("msg_") and "." not in first and len(first) == 36
    assert first != message_id("amlproxy.results", keys[:1])
    assert first != message_id("amlproxy.rejects", keys)
    assert first != message_id("amlproxy.results", keys[::-1])
