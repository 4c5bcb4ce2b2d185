"""CallbackSink against a local HTTPS receiver (a threaded http.server with a test CA)."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import orjson
import pytest

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.ports import Sink
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import ConfigurationError, FieldError, SinkError, SinkWriteError
from amlproxy.sinks._webhook import message_id
from amlproxy.sinks.callback import CallbackSink, verify
from tests.fixtures.threads import serving_forever

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
OLD_SECRET = "whsec_dGhlIHByZXZpb3VzIHNlY3JldCwgMzIgYnl0ZXMh"
SOURCE = "sns:5f1e2d3c-0000-4000-8000-000000000001"
SAN_NAMES = ("localhost", "hooks.test")


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Pki:
    ca_file: Path
    cert_file: Path
    key_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def _pki_with_cryptography(directory: Path) -> Pki:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "amlproxy test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in SAN_NAMES]
    sans.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pki = Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")
    pki.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


def _pki_with_openssl(directory: Path) -> Pki:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    sans = ",".join([*(f"DNS:{n}" for n in SAN_NAMES), "IP:127.0.0.1"])
    run(
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "1",
        "-subj",
        "/CN=amlproxy test CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE,pathlen:0",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign,digitalSignature",
    )
    run(
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.csr",
        "-subj",
        "/CN=localhost",
    )
    (directory / "ext.cnf").write_text(
        f"subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n"
        "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid\n"
    )
    run(
        "x509",
        "-req",
        "-in",
        "cert.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    )
    return Pki(directory / "ca.pem", directory / "cert.pem", directory / "key.pem")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    try:
        import cryptography  # noqa: F401
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("needs the 'cryptography' package or the openssl CLI for a test CA")
        return _pki_with_openssl(directory)
    return _pki_with_cryptography(directory)


# ------------------------------------------------------------------ the receiver


@dataclass
class Received:
    path: str
    headers: Message
    body: bytes


@dataclass
class Receiver:
    """What the local webhook receiver saw, and what it answers (scripted per request)."""

    port: int = 0
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay_s: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}/hooks/amlproxy?tenant=7"

    def answer(self, request: Received) -> tuple[int, dict[str, str]]:
        with self.lock:
            self.requests.append(request)
            return self.script.pop(0) if self.script else (204, {})


@contextmanager
def receiving(pki: Pki) -> Iterator[Receiver]:
    """A local HTTPS webhook receiver on 127.0.0.1 (the test CA), for the block's length."""
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status, headers = receiver.answer(Received(self.path, self.headers, body))
            if receiver.delay_s:
                time.sleep(receiver.delay_s)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    with serving_forever(server):
        yield receiver


@pytest.fixture
def receiver(pki: Pki) -> Iterator[Receiver]:
    with receiving(pki) as found:
        yield found


# ------------------------------------------------------------------ helpers


def ok(line: int) -> Outcome:
    prediction = Prediction(">50K", {"<=50K": 0.3, ">50K": 0.7}, None, "local", "lr-1", 0.4)
    return Outcome(SOURCE, line, Status.OK, {"age": 39.0}, None, prediction)


def rejected(line: int) -> Outcome:
    reason = FieldError("age", "not a number")
    return Outcome(SOURCE, line, Status.REJECTED, None, "abc,x", None, (reason,))


def quick_policy(**options: Any) -> RetryPolicy:
    """A retry policy that records its sleeps instead of sleeping (``policy.slept``)."""
    slept: list[float] = []
    options.setdefault("sleep", slept.append)
    policy = RetryPolicy(**options)
    policy.slept = slept  # type: ignore[attr-defined]
    return policy


def sink_for(receiver: Receiver, pki: Pki, **options: Any) -> CallbackSink:
    options.setdefault("allow_private", True)
    options.setdefault("ssl_context", pki.client_context())
    options.setdefault("retry_policy", quick_policy())
    options.setdefault("timeout_s", 5)
    options.setdefault("allowed_ports", (receiver.port,))
    return CallbackSink(options.pop("url", receiver.url), secrets=[SECRET], **options)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ------------------------------------------------------------------ tests


def test_delivery_is_signed_batched_and_verifiable(receiver: Receiver, pki: Pki) -> None:
    sink = CallbackSink(
        receiver.url,
        secrets=[SECRET, OLD_SECRET],
        batch_size=2,
        allow_private=True,
        ssl_context=pki.client_context(),
        allowed_ports=(receiver.port,),
    )
    sink.write([ok(1), rejected(2), ok(3), ok(4)])
    sink.write([ok(5)])
    sink.close()

    assert len(receiver.requests) == 3  # [1, 3], [4], [5]: rejects are not sent by default
    for request in receiver.requests:
        assert request.path == "/hooks/amlproxy?tenant=7"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
        verify(request.body, request.headers, [SECRET])  # the receiver's check
        verify(request.body, request.headers, [OLD_SECRET])  # still valid during rotation
        assert len(request.headers["webhook-signature"].split(" ")) == 2
    messages = [orjson.loads(r.body) for r in receiver.requests]
    assert [m["type"] for m in messages] == ["amlproxy.results"] * 3
    assert [[row["line"] for row in m["data"]["rows"]] for m in messages] == [[1, 3], [4], [5]]
    assert messages[0]["data"]["count"] == 2
    first = messages[0]["data"]["rows"][0]
    assert first["key"] == f"{SOURCE}#1" and first["label"] == ">50K"
    assert first["score_>50K"] == 0.7
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert ids[0] == message_id("amlproxy.results", [f"{SOURCE}#1", f"{SOURCE}#3"])
    assert len(set(ids)) == 3
    assert sink.count == 4 and sink.deliveries == 3
    assert isinstance(sink, Sink)


def test_a_replay_resends_the_same_webhook_ids(receiver: Receiver, pki: Pki) -> None:
    for _ in range(2):
        sink_for(receiver, pki, batch_size=3).write([ok(n) for n in range(1, 8)])
    ids = [r.headers["webhook-id"] for r in receiver.requests]
    assert len(ids) == 6 and ids[:3] == ids[3:] and len(set(ids)) == 3


def test_rejects_callback(receiver: Receiver, pki: Pki) -> None:
    sink = sink_for(receiver, pki, statuses=("rejected", "failed"), event_type="amlproxy.rejects")
    sink.write([ok(1), rejected(2)])
    (message,) = [orjson.loads(r.body) for r in receiver.requests]
    assert message["type"] == "amlproxy.rejects"
    assert message["data"]["rows"] == [
        {
            "key": f"{SOURCE}#2",
            "source": SOURCE,
            "line": 2,
            "row_id": None,
            "status": "rejected",
            "reasons": ["age: not a number"],
            "raw": "abc,x",
        }
    ]


def test_server_errors_and_429_are_retried_with_backoff(receiver: Receiver, pki: Pki) -> None:
    receiver.script = [(503, {}), (500, {}), (429, {"retry-after": "7"}), (200, {})]
    policy = quick_policy(base_delay_s=0.5, max_delay_s=30, seed=1)
    sink = sink_for(receiver, pki, retry_policy=policy, timeout_s=30)  # sleeps are not real
    sink.write([ok(1), ok(2)])
    delays = policy.slept  # type: ignore[attr-defined]

    assert len(receiver.requests) == 4
    assert len({r.body for r in receiver.requests}) == 1  # the same message every time
    assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
    for request in receiver.requests:
        verify(request.body, request.headers, [SECRET])  # re-signed per attempt
    assert 0 <= delays[0] <= 0.5 and 0 <= delays[1] <= 1.0  # full jitter
    assert delays[2] == 7.0  # Retry-After beats a shorter backoff
    assert sink.count == 2


def test_retry_after_is_honoured_only_up_to_the_cap(receiver: Receiver, pki: Pki) -> None:
    """A Retry-After: 99999 made the sink sleep 30 s per attempt (issue 15's survivor)."""
    receiver.script = [(503, {"retry-after": "99999"}), (429, {"retry-after": "3"}), (200, {})]
    policy = quick_policy(base_delay_s=0.01, max_delay_s=5.0)
    sink_for(receiver, pki, retry_policy=policy, timeout_s=30).write([ok(1)])
    assert policy.slept == [5.0, 3.0]  # type: ignore[attr-defined]
    assert len(receiver.requests) == 3


def test_retry_after_beyond_the_time_left_gives_up_without_sleeping(
    receiver: Receiver, pki: Pki
) -> None:
    receiver.script = [(503, {"retry-after": "20"})]
    deadline = Deadline()
    deadline.set_remaining(10.0)
    policy = quick_policy(max_delay_s=30.0, deadline=deadline)
    with pytest.raises(SinkWriteError) as caught:
        sink_for(receiver, pki, retry_policy=policy).write([ok(1)])
    assert policy.slept == []  # type: ignore[attr-defined]
    assert len(receiver.requests) == 1
    assert "HTTP 503 (gave up after 1 attempt(s): deadline)" in str(caught.value)


def test_nothing_is_sent_once_the_deadline_has_passed(receiver: Receiver, pki: Pki) -> None:
    deadline = Deadline()
    deadline.set_remaining(0.0)
    sink = sink_for(receiver, pki, retry_policy=quick_policy(deadline=deadline))
    with pytest.raises(SinkWriteError, match="deadline passed before the first attempt") as caught:
        sink.write([ok(1), ok(2)])
    assert receiver.requests == []
    assert caught.value.keys == (f"{SOURCE}#1", f"{SOURCE}#2") and caught.value.written == 0
    assert caught.value.deadline


def test_the_delivery_stops_at_the_invocation_deadline(receiver: Receiver, pki: Pki) -> None:
    """timeout_s is 5 s, but the invocation has 0.5 s left: the deadline wins."""
    receiver.delay_s = 2.0
    deadline = Deadline()
    deadline.set_remaining(0.5)
    sink = sink_for(receiver, pki, retry_policy=quick_policy(deadline=deadline))
    started = time.monotonic()
    with pytest.raises(SinkWriteError, match="deadline") as caught:
        sink.write([ok(1)])
    assert time.monotonic() - started < 1.5
    assert len(receiver.requests) == 1
    # cut by the invocation's deadline: an interruption (the redo delivers it again under
    # the same message id), not a failed row
    assert caught.value.deadline and caught.value.keys == (f"{SOURCE}#1",)


@pytest.mark.parametrize("status", [400, 401, 404, 410, 413])
def test_client_errors_are_not_retried(receiver: Receiver, pki: Pki, status: int) -> None:
    receiver.script = [(status, {})]
    sink = sink_for(receiver, pki, batch_size=2)
    with pytest.raises(SinkWriteError) as caught:
        sink.write([ok(1), ok(2), ok(3)])
    assert len(receiver.requests) == 1
    assert f"HTTP {status}" in str(caught.value) and "not retried" in str(caught.value)
    assert caught.value.keys == tuple(f"{SOURCE}#{n}" for n in (1, 2, 3))
    assert caught.value.written == 0


def test_redirects_are_not_followed(receiver: Receiver, pki: Pki) -> None:
    with receiving(pki) as elsewhere:
        receiver.script = [(307, {"location": elsewhere.url})]
        with pytest.raises(SinkWriteError, match="redirects are not followed"):
            sink_for(receiver, pki).write([ok(1)])
        assert len(receiver.requests) == 1 and elsewhere.requests == []


def test_receiver_down_gives_bounded_retries_then_a_clear_failure(pki: Pki) -> None:
    port = free_port()
    policy = quick_policy(max_attempts=3)
    sink = CallbackSink(
        f"https://127.0.0.1:{port}/hook",
        secrets=[SECRET],
        allow_private=True,
        ssl_context=pki.client_context(),
        retry_policy=policy,
        allowed_ports=(port,),
    )
    with pytest.raises(SinkWriteError) as caught:
        sink.write([ok(1), ok(2)])
    assert isinstance(caught.value, SinkError)
    assert len(policy.slept) == 2  # type: ignore[attr-defined]
    assert "gave up after 3 attempt(s): max attempts" in str(caught.value)
    assert "ConnectionRefusedError" in str(caught.value)
    assert caught.value.keys == (f"{SOURCE}#1", f"{SOURCE}#2")


def test_a_receiver_slower_than_the_timeout_is_cut_at_the_timeout(
    receiver: Receiver, pki: Pki
) -> None:
    receiver.delay_s = 2.0
    sink = sink_for(receiver, pki, timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(SinkWriteError, match=r"did not answer in time \(gave up after 1"):
        sink.write([ok(1)])
    assert time.monotonic() - started < 1.5
    assert len(receiver.requests) == 1


def test_a_port_other_than_443_needs_to_be_allowed(receiver: Receiver, pki: Pki) -> None:
    with pytest.raises(ConfigurationError, match=f"port {receiver.port} is not allowed"):
        sink_for(receiver, pki, allowed_ports=(443,))
    with pytest.raises(ConfigurationError, match="port 8443 is not allowed"):
        CallbackSink("https://hooks.example.com:8443/in", secrets=[SECRET])
    CallbackSink("https://hooks.example.com:8443/in", secrets=[SECRET], allowed_ports=(8443,))


def test_an_untrusted_certificate_is_refused_once(receiver: Receiver, pki: Pki) -> None:
    sink = sink_for(receiver, pki, ssl_context=ssl.create_default_context())
    with pytest.raises(SinkWriteError, match="TLS certificate refused"):
        sink.write([ok(1)])
    assert receiver.requests == []


def test_connects_to_the_checked_address_with_the_original_name(
    receiver: Receiver, pki: Pki
) -> None:
    """hooks.test is resolved once per attempt by our resolver; the connection goes to the
    address it returned, with SNI, certificate check and Host header for hooks.test."""
    lookups: list[tuple[str, int]] = []

    def resolver(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        return ["127.0.0.1"]

    receiver.script = [(502, {}), (200, {})]
    url = f"https://hooks.test:{receiver.port}/in"
    sink = sink_for(receiver, pki, url=url, resolver=resolver)
    sink.write([ok(1)])
    assert lookups == [("hooks.test", receiver.port)] * 2
    assert [r.headers["host"] for r in receiver.requests] == [f"hooks.test:{receiver.port}"] * 2

    def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1", "10.0.0.8"] if host == "hooks.test" else []

    guarded = sink_for(receiver, pki, url=url, resolver=rebinding, allow_private=False)
    with pytest.raises(ConfigurationError, match=r"is refused: 127\.0\.0\.1 is loopback"):
        guarded.write([ok(1)])
    assert len(receiver.requests) == 2


def test_the_certificate_must_match_the_url_name_not_the_address(
    receiver: Receiver, pki: Pki
) -> None:
    url = f"https://other.test:{receiver.port}/in"  # not in the certificate
    sink = sink_for(receiver, pki, url=url, resolver=lambda h, p: ["127.0.0.1"])
    with pytest.raises(SinkWriteError, match="TLS certificate refused"):
        sink.write([ok(1)])
    assert receiver.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://hooks.example.com/in",
        "https://127.0.0.1/in",
        "https://[::ffff:127.0.0.1]/in",
        "https://2130706433/in",
        "https://169.254.169.254/latest",
        "https://localhost/in",
    ],
)
def test_private_destinations_are_refused_at_construction(url: str) -> None:
    with pytest.raises(ConfigurationError):
        CallbackSink(url, secrets=[SECRET])


def test_names_resolving_privately_are_refused_before_sending() -> None:
    sink = CallbackSink(
        "https://hooks.example.com/in", secrets=[SECRET], resolver=lambda h, p: ["192.168.4.4"]
    )
    with pytest.raises(ConfigurationError, match=r"192\.168\.4\.4 is private"):
        sink.write([ok(1)])


def test_bad_configuration_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        CallbackSink("https://hooks.example.com/", secrets=[])
    with pytest.raises(ConfigurationError):
        CallbackSink("https://hooks.example.com/", secrets=["whsec_???"])
    with pytest.raises(ConfigurationError):
        CallbackSink("https://hooks.example.com/", secrets=[SECRET], statuses=("good",))
    with pytest.raises(ConfigurationError):
        CallbackSink("https://hooks.example.com/", secrets=[SECRET], batch_size=0)


def test_nothing_to_send_makes_no_request(receiver: Receiver, pki: Pki) -> None:
    sink = sink_for(receiver, pki)
    sink.write([rejected(1)])
    sink.write([])
    sink.close()
    assert receiver.requests == []


# ------------------------------------------------------------------ a receiver that trickles


@contextmanager
def trickling_receiver(pki: Pki, *, every_s: float = 1.0) -> Iterator[str]:
    """A TLS receiver on 127.0.0.1 that reads the request, then sends a valid 200 answer one
    byte every ``every_s`` seconds (each read sees data, so no read ever times out)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert_file, pki.key_file)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()
    answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nx-padding: " + b"." * 64 + b"\r\n\r\n"

    def serve_one(raw: socket.socket) -> None:
        try:
            with context.wrap_socket(raw, server_side=True) as tls:
                tls.settimeout(5)
                received = b""
                while b"\r\n\r\n" not in received:
                    received += tls.recv(65536)
                for byte in answer:
                    if stop.wait(every_s):
                        return
                    tls.sendall(bytes([byte]))
        except OSError:
            pass

    def accept() -> None:
        while not stop.is_set():
            try:
                raw, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=serve_one, args=(raw,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{listener.getsockname()[1]}/hook"
    finally:
        stop.set()
        listener.close()
        thread.join(5)


def test_timeout_bounds_the_whole_delivery_not_each_read(pki: Pki) -> None:
    """A receiver sending a byte a second held one delivery 12 s with timeout_s=2."""
    with trickling_receiver(pki) as url:
        sink = CallbackSink(url, secrets=[SECRET], allow_private=True, timeout_s=2,
                            ssl_context=pki.client_context(), allowed_ports=None)
        started = time.monotonic()
        with pytest.raises(SinkWriteError) as caught:
            sink.write([ok(1)])
        elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"a delivery with timeout_s=2 took {elapsed:.1f} s"
    assert caught.value.keys == (f"{SOURCE}#1",)
    assert not caught.value.deadline  # its own timeout, not the invocation's: it failed
