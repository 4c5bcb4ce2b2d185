"""The Standard Webhooks reference library (``standardwebhooks``) as the oracle for the
callback signatures: every delivery our sink makes over HTTPS verifies with it, with each
secret of a rotation, and a changed byte does not."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks import WebhookVerificationError as OracleRefused

from amlproxy.sinks._webhook import sign
from amlproxy.sinks.callback import CallbackSink
from tests.functional import test_sink_callback as callback
from tests.functional.test_sink_callback import OLD_SECRET, SECRET, Pki, Receiver, ok, rejected

pki = callback.pki  # the HTTPS receiver and its test CA, as in test_sink_callback
receiver = callback.receiver


def test_every_delivery_verifies_with_the_reference_library(receiver: Receiver,
                                                           pki: Pki) -> None:
    sink = CallbackSink(receiver.url, secrets=[SECRET, OLD_SECRET], batch_size=2,
                        allow_private=True, allowed_ports=(receiver.port,),
                        ssl_context=pki.client_context(),
                        statuses=("ok", "rejected", "failed"))
    sink.write([ok(1), rejected(2), ok(3)])
    sink.close()
    assert len(receiver.requests) == 2
    for request in receiver.requests:
        headers = {k.lower(): v for k, v in request.headers.items()}
        for secret in (SECRET, OLD_SECRET):  # a receiver on either side of a rotation
            message = Webhook(secret).verify(request.body, headers)
            assert message["type"].startswith("amlproxy.")
        with pytest.raises(OracleRefused):
            Webhook(SECRET).verify(request.body + b" ", headers)
        with pytest.raises(OracleRefused):
            Webhook("whsec_" + "A" * 43 + "=").verify(request.body, headers)


def test_our_signature_is_the_reference_signature() -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    body = '{"type":"amlproxy.results","data":{"rows":[]}}'
    ours = sign("msg_1", int(when.timestamp()), body.encode(), [SECRET])
    assert ours == Webhook(SECRET).sign("msg_1", when, body)
