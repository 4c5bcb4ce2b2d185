"""What the AWS sinks and the triggers' AWS calls share: botocore clients that make one
attempt per call, and the one classification of botocore errors for the retry policy.

"When tenacity retries, botocore makes one attempt": every client here is configured with
``retries={"total_max_attempts": 1}`` and each call runs under a
:class:`~amlproxy.core.retry.RetryPolicy` whose ``retryable`` is :func:`aws_retryable`.
That predicate accepts what botocore's "standard" retry mode would have retried
(throttling and transient error codes, 5xx, connection errors and timeouts), so switching
botocore's retries off loses nothing, and a call is never attempted more often than the
policy's ``max_attempts``, within the invocation's deadline.
"""

from __future__ import annotations

from typing import Any

from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.backends._aws import map_botocore_error
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import ConfigurationError

# botocore's standard retry mode: ThrottledRetryableChecker and TransientRetryableChecker
# (botocore/retries/standard.py); 429 and 5xx are retryable whatever their code
RETRYABLE_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


def one_attempt_config(**options: Any) -> Config:
    """A botocore ``Config`` with ``options`` and botocore's retries off."""
    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, **options)


def aws_retryable(error: BaseException) -> bool:
    """Whether another attempt may cure what a botocore call raised: throttling, transient
    codes, 5xx, connection trouble and timeouts. Missing credentials, 4xx and everything
    that is not a botocore error are not retried."""
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code") or "")
        return code in RETRYABLE_CODES or map_botocore_error(error).retryable
    if isinstance(error, BotoCoreError):
        try:
            return map_botocore_error(error).retryable
        except ConfigurationError:  # no credentials: a wiring problem, not a blip
            return False
    return False


def aws_policy(policy: RetryPolicy | None = None) -> RetryPolicy:
    """``policy`` (a default one when None) classifying errors with :func:`aws_retryable`."""
    return (policy or RetryPolicy()).with_retryable(aws_retryable)


class RetryingClient:
    """A boto3 client whose operations (``get_object``, ``put_item``...) each run under
    ``policy``; everything else (``meta``, ``exceptions``, ``get_paginator``) is the
    client's own. For callers that make single calls (the triggers' reads, the idempotency
    and completion stores); the sinks, which retry more than a call (unprocessed items),
    run the policy themselves. Paginators make one attempt per page.

    The client should make one attempt per call (:func:`one_attempt_config`). Errors are
    the client's own, with the policy's note when it gave up. The calls are bounded by the
    attempt cap, not by the invocation's deadline, unless ``deadline`` is given: the
    triggers make them to start or to wrap up a piece of work (read an object, save a
    chunk done, store an idempotent answer), which the margin before the timeout is for.
    """

    def __init__(self, client: Any, policy: RetryPolicy, deadline: Deadline | None = None
                 ) -> None:
        self.client = client
        self.policy = policy
        self.deadline = deadline if deadline is not None else Deadline()
        self._operations = frozenset(client.meta.method_to_api_mapping)

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.client, name)
        if name not in self._operations:
            return attribute
        policy, deadline = self.policy, self.deadline

        def operation(*args: Any, **kwargs: Any) -> Any:
            return policy.run(lambda: attribute(*args, **kwargs), deadline=deadline)

        return operation
