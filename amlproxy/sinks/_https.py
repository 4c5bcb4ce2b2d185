"""One HTTPS POST to an address the SSRF guard checked, bounded as a whole by a deadline.

``http.client`` bounds each socket operation by its timeout, so a receiver that sends one
byte a second keeps a delivery going for as long as it likes. Here every blocking step
(connect, TLS handshake, send, each read) gets the time left until the deadline as its
timeout, so the whole exchange ends by then. HTTP/1.1 framing is h11's (the same parser as
the dev servers); the connection is pinned to the checked address (no second DNS lookup)
while SNI, certificate checking and the Host header use the URL's name. Only the status
line and headers of the answer are read: the body is not needed, and the connection is
closed after each request.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from dataclasses import dataclass

import h11

from amlproxy.core.retry import Deadline
from amlproxy.sinks._ssrf import Target

MAX_ANSWER_HEAD = 64 * 1024
_READ_SIZE = 64 * 1024


class DeliveryTimeout(TimeoutError):
    """The deadline of the delivery passed before the receiver answered."""


class ReceiverProtocolError(OSError):
    """The receiver's answer is not HTTP/1.1, or it closed before answering."""


@dataclass(frozen=True, slots=True)
class Answer:
    """The status and headers (names lower-cased) of the receiver's answer."""

    status: int
    headers: dict[str, str]


def post(
    target: Target,
    address: str,
    body: bytes,
    headers: Sequence[tuple[str, str]],
    *,
    context: ssl.SSLContext,
    deadline: Deadline,
) -> Answer:
    """POSTs ``body`` to ``target.path`` at ``address`` and returns the answer's head.

    Raises :class:`DeliveryTimeout` at the deadline, ``ssl.SSLCertVerificationError`` for a
    refused certificate, other ``OSError`` for connection trouble.
    """
    sock = socket.create_connection((address, target.port), timeout=_left(deadline))
    try:
        sock.settimeout(_left(deadline))
        tls = context.wrap_socket(sock, server_hostname=target.host)
    except BaseException:
        sock.close()
        raise
    with tls:
        client = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_ANSWER_HEAD)
        request = h11.Request(
            method="POST",
            target=target.path,
            headers=[
                ("host", host_header(target)),
                ("content-length", str(len(body))),
                *headers,
            ],
        )
        events = (request, h11.Data(data=body), h11.EndOfMessage())
        data = b"".join(client.send(event) or b"" for event in events)
        tls.settimeout(_left(deadline))
        tls.sendall(data)
        return _read_answer(client, tls, deadline)


def host_header(target: Target) -> str:
    """``name``, ``name:port`` off 443, IPv6 literals bracketed."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return host if target.port == 443 else f"{host}:{target.port}"


def _read_answer(client: h11.Connection, tls: ssl.SSLSocket, deadline: Deadline) -> Answer:
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError as exc:
            raise ReceiverProtocolError(f"the receiver's answer is not HTTP/1.1: {exc}") from exc
        if event is h11.NEED_DATA:
            tls.settimeout(_left(deadline))
            try:
                client.receive_data(tls.recv(_READ_SIZE))
            except TimeoutError as exc:
                raise DeliveryTimeout("the receiver did not answer in time") from exc
        elif isinstance(event, h11.Response):
            headers = {name.decode("latin-1"): value.decode("latin-1")
                       for name, value in event.headers}
            return Answer(event.status_code, headers)
        elif isinstance(event, h11.ConnectionClosed):
            raise ReceiverProtocolError("the receiver closed the connection without answering")
        # an InformationalResponse (100 Continue): the real answer follows


def _left(deadline: Deadline) -> float:
    remaining = deadline.remaining()
    if remaining is None:
        raise ValueError("a delivery needs a deadline")  # CallbackSink always gives one
    if remaining <= 0:
        raise DeliveryTimeout("the delivery ran out of time")
    return remaining
