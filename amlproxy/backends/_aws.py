"""What the AWS backends share: the botocore client configuration, the bound of each call
by the invocation's deadline, and the mapping of botocore errors into
:mod:`amlproxy.errors`.

The mapping looks at the error code, the HTTP status and, for SageMaker's ``ModelError``,
the container's ``OriginalStatusCode``:

- ``InvalidRecordError``: InvalidInputException, ValidationError/Exception, 413 (payload
  too large), a ModelError whose original status is 4xx (429 excepted);
- ``EndpointNotFoundError``: ResourceNotFoundException, any 404, a ValidationError saying
  the endpoint was "not found";
- ``ThrottledError``: LimitExceededException, Throttling*, ModelNotReadyException,
  PredictorNotMountedException (the AML endpoint is not up yet), any 429;
- ``EndpointServerError``: InternalServerException, InternalFailure, ServiceUnavailable,
  any 5xx, a ModelError with a 5xx original status or none;
- ``EndpointConnectionError``: connection refused/reset/closed, connect or read timeout;
- ``NonRetryableBackendError``: any other 4xx (AccessDenied...).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
    NoCredentialsError,
    NoRegionError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from amlproxy.errors import (
    BackendError,
    ConfigurationError,
    EndpointConnectionError,
    EndpointNotFoundError,
    EndpointServerError,
    InvalidRecordError,
    NonRetryableBackendError,
    ThrottledError,
)

THROTTLING_CODES = frozenset(
    {
        "LimitExceededException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "ProvisionedThroughputExceededException",
        "ModelNotReadyException",
        "PredictorNotMountedException",  # AML: the real-time endpoint is not up (yet)
    }
)
INVALID_INPUT_CODES = frozenset(
    {"InvalidInputException", "ValidationError", "ValidationException", "SerializationException"}
)
NOT_FOUND_CODES = frozenset({"ResourceNotFoundException"})

if TYPE_CHECKING:
    from amlproxy.core.retry import Deadline

DEFAULT_READ_TIMEOUT_S = 70.0
DEFAULT_CONNECT_TIMEOUT_S = 2.0
MIN_CALL_TIMEOUT_S = 0.05  # a call started just before the deadline still gets to answer


def client_config(
    *,
    concurrency: int,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
) -> Config:
    """botocore settings for a prediction client: botocore never retries (the one retry
    layer is :mod:`amlproxy.core.retry`), keeps one pooled connection per worker, and
    spares the hot path two per-call costs: client-side parameter validation (bad input
    still gets the service's ValidationException, mapped to InvalidRecordError) and the
    User-Agent botocore otherwise assembles for every request.

    Note: botocore's ``retries["max_attempts"]`` counts *retries* (``{"max_attempts": 1}``
    means two calls); ``total_max_attempts`` counts calls, the first included.
    """
    return Config(
        read_timeout=read_timeout_s,
        connect_timeout=connect_timeout_s,
        max_pool_connections=max(1, concurrency),
        retries={"total_max_attempts": 1, "mode": "standard"},
        tcp_keepalive=True,
        # ~0.1 ms of CPU per call (10% of a Predict): the adapters build the parameters
        # themselves (string maps, bytes bodies), and the service validates them anyway
        parameter_validation=False,
        # a fixed User-Agent: botocore rebuilds its default one twice per request, ~0.14 ms
        # of CPU per call (14% of a Predict)
        user_agent=prediction_user_agent(),
    )


def prediction_user_agent() -> str:
    """``amlproxy/<version> botocore/<version> Python/<version>``: the User-Agent of the
    prediction clients (the endpoint owner still sees who calls, and with what)."""
    import platform

    import botocore

    from amlproxy import __version__

    return (f"amlproxy/{__version__} botocore/{botocore.__version__} "
            f"Python/{platform.python_version()}")


# what a botocore session reads from the environment once and then keeps
_SESSION_ENV = (
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN",
    "AWS_DATA_PATH",
)
_session_lock = threading.Lock()
_session: tuple[tuple[str | None, ...], Any] | None = None


def create_client(service: str, *, region: str | None, endpoint_url: str | None,
                  config: Config) -> Any:
    """A botocore client made from the process's one session (created on first use, and
    again if the AWS variables of the environment change, as between tests).

    Clients of one session share its loaded service models and credentials: a client from
    a second session costs ~50 ms more at cold start. Sessions are not thread-safe, so
    clients are created under a lock; the clients themselves are.

    The session is botocore's, not boto3's: its clients are the same low-level clients
    (boto3's ``Session.client`` hands its botocore session the same arguments), without
    boto3's import of s3transfer and its resource layer, which cost ~16 ms of a ~245 ms
    cold start here (importing and making a DynamoDB client, medians of 15 interleaved
    runs: 247 ms with boto3, 231 ms with botocore). boto3 is imported only by the sinks'
    default clients, for library callers that pass none.
    """
    global _session
    key = tuple(os.environ.get(name) for name in _SESSION_ENV)
    with _session_lock:
        if _session is None or _session[0] != key:
            _session = (key, botocore.session.Session())
        return _session[1].create_client(
            service,
            region_name=region,
            endpoint_url=endpoint_url,
            config=config,
        )


def make_client(
    service: str,
    *,
    concurrency: int,
    region: str | None,
    endpoint_url: str | None,
    read_timeout_s: float = DEFAULT_READ_TIMEOUT_S,
    deadline: Deadline | None = None,
) -> Any:
    """A new boto3 client for ``service`` configured by :func:`client_config`, its calls
    bounded by ``deadline`` (:func:`bound_by_deadline`). A client given to a backend by
    its caller is left as it is: call :func:`bound_by_deadline` on it to bound it too."""
    try:
        client = create_client(
            service,
            region=region,
            endpoint_url=endpoint_url,
            config=client_config(concurrency=concurrency, read_timeout_s=read_timeout_s),
        )
    except NoRegionError as exc:
        raise ConfigurationError(f"no AWS region configured for {service}: {exc}") from exc
    if deadline is not None:
        bound_by_deadline(client, deadline)
    return client


def bound_by_deadline(client: Any, deadline: Deadline) -> None:
    """Bound the read timeout of each call ``client`` makes by the time left to
    ``deadline``, so that a slow endpoint gives up before the deadline instead of holding
    the invocation until Lambda kills it.

    botocore's ``read_timeout`` is per client; since botocore 1.43.68 a request may
    override it with ``read_timeout`` in its request context, which a ``before-call``
    handler sets for that call only. Thread-safe: the context is the call's own, and each
    call reads the deadline when it starts. Registered once per deadline.
    """
    configured = float(client.meta.config.read_timeout)

    def bound(context: dict[str, Any], **_: Any) -> None:
        remaining = deadline.remaining()
        if remaining is None:
            return
        current = context.get("read_timeout") or configured
        context["read_timeout"] = max(MIN_CALL_TIMEOUT_S, min(float(current), remaining))

    client.meta.events.register("before-call", bound, unique_id=f"amlproxy-deadline-{id(deadline)}")


def map_client_error(exc: ClientError) -> BackendError:
    """The :mod:`amlproxy.errors` equivalent of a service error response."""
    response: Any = exc.response
    error = response.get("Error") or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or error.get("message") or exc)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    status = int(status) if status is not None else None
    if code == "ModelError":
        original = response.get("OriginalStatusCode")
        detail = response.get("OriginalMessage") or message
        text = f"model container answered {original}: {detail}" if original else message
        if original is not None and 400 <= int(original) < 500:
            if int(original) == 429:
                return ThrottledError(text, code=code, status=status)
            return InvalidRecordError(text, code=code, status=status)
        return EndpointServerError(text, code=code, status=status)
    if code in THROTTLING_CODES or status == 429:
        return ThrottledError(message, code=code or "Throttled", status=status)
    if code in NOT_FOUND_CODES or status == 404:
        return EndpointNotFoundError(message, code=code or "NotFound", status=status)
    if code in INVALID_INPUT_CODES or status == 413:  # 413: the body is over the limit
        if "not found" in message.lower():  # SageMaker: "Endpoint x of account y not found."
            return EndpointNotFoundError(message, code=code, status=status)
        return InvalidRecordError(message, code=code, status=status)
    if status is not None and status >= 500:
        return EndpointServerError(message, code=code or None, status=status)
    return NonRetryableBackendError(message, code=code or None, status=status)


def map_botocore_error(exc: ClientError | BotoCoreError) -> BackendError:
    """The :mod:`amlproxy.errors` equivalent of an exception a botocore call raised.

    Missing credentials are a wiring problem, not a record's: they raise
    :class:`~amlproxy.errors.ConfigurationError` instead of returning.
    """
    if isinstance(exc, ClientError):
        return map_client_error(exc)
    if isinstance(exc, BotoConnectionError | HTTPClientError | IncompleteReadError):
        return EndpointConnectionError(str(exc), code=type(exc).__name__)
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        raise ConfigurationError(f"AWS credentials: {exc}") from exc
    if isinstance(exc, ParamValidationError):
        return InvalidRecordError(str(exc), code="ParamValidationError")
    return NonRetryableBackendError(str(exc), code=type(exc).__name__)
