"""The one error tree of amlproxy.

Every error amlproxy raises on purpose derives from :class:`AmlProxyError`::

    AmlProxyError
    ├── ConfigurationError            settings, CLI arguments or wiring are wrong
    │   ├── SchemaError               a .schema file cannot be found or loaded
    │   └── ShadowComparisonError     the shadow's answers are not in the primary's terms
    ├── InputError                    an input as a whole cannot be read (missing file...)
    ├── RecordError                   one record is bad; names its line or row id and the fields
    │   └── RecordValidationError     the record does not satisfy the schema
    ├── BackendError                  a prediction call failed
    │   ├── RetryableBackendError     worth another attempt
    │   │   ├── ThrottledError        LimitExceeded, Throttling, 429 ModelNotReady
    │   │   ├── EndpointServerError   5xx: InternalServer, InternalFailure, ServiceUnavailable
    │   │   └── EndpointConnectionError   connection refused/reset, read timeout
    │   ├── NonRetryableBackendError  another attempt would fail the same way
    │   │   ├── InvalidRecordError    InvalidInput, ValidationError, ModelError with a 4xx original
    │   │   ├── EndpointNotFoundError ResourceNotFound, unknown endpoint or model
    │   │   └── ModelResponseError    the endpoint answered something we cannot parse
    │   └── RetriesExhaustedError     the retry policy gave up (attempt cap or deadline)
    ├── SinkError                     an output could not be written
    │   └── SinkWriteError            some outcomes were not written; names their keys
    ├── WebhookVerificationError      a received webhook fails the signature/timestamp check
    ├── UnsupportedEventError         a Lambda handler got an event it does not handle
    └── EventIncompleteError          a Lambda event was not fully processed: retry it

Record-level problems never abort a run: the pipeline turns them into ``rejected``
(bad input) or ``failed`` (backend or sink) outcomes, each with its reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class AmlProxyError(Exception):
    """Base class of every error amlproxy raises on purpose."""


class ConfigurationError(AmlProxyError):
    """Settings, command-line arguments or the wiring of the pipeline are wrong."""


class SchemaError(ConfigurationError):
    """A record schema cannot be found, parsed or turned into a model."""


class ShadowComparisonError(ConfigurationError):
    """The shadow backend's answers cannot be compared with the primary's (a label against
    a value, classes with no name in common): the run stops instead of reporting a wrong
    agreement rate. Naming the classes (``AMLPROXY_LABELS``) is the usual fix."""


class InputError(AmlProxyError):
    """An input cannot be read at all: missing file, unreadable object, undecodable bytes."""


@dataclass(frozen=True, slots=True)
class FieldError:
    """One reason a record was refused: the field (None for the record as a whole) and why."""

    field: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}" if self.field else self.reason


class RecordError(AmlProxyError):
    """One record is unusable. Carries where it came from and what is wrong with it."""

    def __init__(
        self,
        errors: Sequence[FieldError],
        *,
        line: int | None = None,
        row_id: str | None = None,
    ) -> None:
        self.errors: tuple[FieldError, ...] = tuple(errors)
        self.line = line
        self.row_id = row_id
        super().__init__(self._message())

    @property
    def where(self) -> str:
        """'line 12', 'row id abc' or 'record', for messages."""
        if self.row_id is not None:
            return f"row id {self.row_id}" + (f" (line {self.line})" if self.line else "")
        if self.line is not None:
            return f"line {self.line}"
        return "record"

    @property
    def reasons(self) -> list[str]:
        return [str(e) for e in self.errors]

    def _message(self) -> str:
        return f"{self.where}: " + "; ".join(self.reasons)


class RecordValidationError(RecordError):
    """A record does not satisfy its schema (type, category, range, missing field...)."""


class BackendError(AmlProxyError):
    """A call to a prediction backend failed.

    ``code`` is the service's error code (``LimitExceededException``, ``ModelError``...),
    ``status`` the HTTP status when there was one, ``attempts`` how many calls were made.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.attempts = attempts

    def __str__(self) -> str:
        head = f"{self.code}: " if self.code else ""
        return f"{head}{self.message}"


class RetryableBackendError(BackendError):
    """A failure that another attempt may cure: throttling, 5xx, connection trouble."""

    retryable = True


class ThrottledError(RetryableBackendError):
    """The endpoint refused the call for rate: LimitExceeded, Throttling, 429 ModelNotReady."""


class EndpointServerError(RetryableBackendError):
    """The endpoint failed on its side (HTTP 5xx)."""


class EndpointConnectionError(RetryableBackendError):
    """The endpoint could not be reached or did not answer in time."""


class NonRetryableBackendError(BackendError):
    """A failure that another attempt would repeat."""


class InvalidRecordError(NonRetryableBackendError):
    """The endpoint refused the record itself (InvalidInput, ValidationError, 4xx ModelError)."""


class EndpointNotFoundError(NonRetryableBackendError):
    """The endpoint, model or variant does not exist (ResourceNotFound)."""


class ModelResponseError(NonRetryableBackendError):
    """The endpoint answered, but with a body amlproxy cannot turn into predictions."""


class RetriesExhaustedError(BackendError):
    """The retry policy gave up: the attempt cap or the deadline was reached.

    ``last`` is the final underlying error.
    """

    def __init__(self, last: BackendError, *, attempts: int, why: str) -> None:
        super().__init__(
            f"gave up after {attempts} attempt(s) ({why}); last error: {last}",
            code=last.code,
            status=last.status,
            attempts=attempts,
        )
        self.last = last
        self.why = why


class SinkError(AmlProxyError):
    """An output could not be written."""


_SHOWN_KEYS = 10


class SinkWriteError(SinkError):
    """Some outcomes could not be written, after the sink's own retries.

    ``keys`` are the :attr:`Outcome.key` of the outcomes that were NOT written (everything
    else passed to the same ``write`` call was), so a caller can mark exactly those records
    ``failed`` and keep the rest. ``written`` counts the ones that were. ``deadline`` says
    that the sink stopped because the invocation's deadline came (those outcomes are not
    done rather than failed: the pipeline ends the run as interrupted).
    """

    def __init__(self, sink: str, reason: str, keys: Sequence[str], *, written: int = 0,
                 deadline: bool = False) -> None:
        self.sink = sink
        self.reason = reason
        self.keys: tuple[str, ...] = tuple(keys)
        self.written = written
        self.deadline = deadline
        shown = ", ".join(self.keys[:_SHOWN_KEYS])
        more = f" and {len(self.keys) - _SHOWN_KEYS} more" if len(self.keys) > _SHOWN_KEYS else ""
        super().__init__(
            f"{sink}: {len(self.keys)} outcome(s) not written ({reason}): {shown}{more}"
        )


class WebhookVerificationError(AmlProxyError):
    """A received webhook is not authentic or not fresh: missing header, bad timestamp,
    timestamp outside the tolerance, or no signature matching any of the secrets."""


class UnsupportedEventError(AmlProxyError):
    """A Lambda handler got an event that is not its own: another source's event (an S3
    event given to the SQS handler), a payload that is not an event at all (``null``, a
    list, a string), or its own kind malformed (an SQS record without a ``messageId``).

    Raised before any work is done, so that the invocation fails visibly (Lambda retries
    an asynchronous event and then sends it to the on-failure destination) instead of
    succeeding with nothing done. ``handler`` names the handler (``"SQS"``), ``arrived``
    describes what came ("an S3 event (Records[0].eventSource 'aws:s3')"), and ``own_kind``
    says that the event was of the handler's own kind, only malformed (the API answers
    such an HTTP event with 400).
    """

    def __init__(self, handler: str, arrived: str, *, own_kind: bool = False) -> None:
        super().__init__(f"the {handler} handler got {arrived}")
        self.handler = handler
        self.arrived = arrived
        self.own_kind = own_kind


class EventIncompleteError(AmlProxyError):
    """A Lambda event was not fully processed (records failed, an object could not be read,
    or the deadline came first). Raised after every part of the event was tried, so that
    Lambda retries it; outputs are keyed, so the retry overwrites and adds nothing.
    ``summary`` is what the handler would have returned.
    """

    def __init__(self, message: str, summary: dict[str, Any]) -> None:
        super().__init__(message)
        self.summary = summary
