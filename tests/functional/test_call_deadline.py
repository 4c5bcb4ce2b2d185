"""Each endpoint call's read timeout is bounded by the time left to the invocation's
deadline (botocore's per-request ``read_timeout``, set by ``bound_by_deadline``), against
the emulator holding its answers longer than the time left: every call, on every worker
thread, gives up at the deadline instead of waiting out the client's 70 s read timeout."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ReadTimeoutError

from amlproxy.backends._aws import bound_by_deadline
from amlproxy.backends.aml import AmlBackend
from amlproxy.backends.sagemaker import SageMakerBackend
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.errors import RetriesExhaustedError
from tests.functional.test_retry_under_faults import census_records

SLOW_MS = 20_000  # the emulator's answer time: far more than any deadline below


def sagemaker(emu: Any, deadline: Deadline) -> SageMakerBackend:
    return SageMakerBackend(emu.endpoint_name, schema_feature_names=list(census_records(1)[0]),
                            endpoint_url=emu.url, labels=("<=50K", ">50K"), concurrency=4,
                            retry_policy=RetryPolicy(max_attempts=3, deadline=deadline))


def test_calls_on_every_thread_give_up_at_the_deadline(emu: Any) -> None:
    emu.set_faults(latency_ms=SLOW_MS)
    deadline = Deadline()
    backend = sagemaker(emu, deadline)
    records = census_records(4)
    outcomes: dict[int, tuple[BaseException | None, float]] = {}
    deadline.set_remaining(1.5)
    started = time.monotonic()

    def call(i: int) -> None:
        time.sleep(0.25 * i)  # later calls get less time: each is bounded by what is left
        try:
            backend.predict(records[i])
            outcomes[i] = (None, time.monotonic() - started)
        except BaseException as exc:
            outcomes[i] = (exc, time.monotonic() - started)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    backend.close()
    for error, ended in outcomes.values():
        assert isinstance(error, RetriesExhaustedError) and error.why == "deadline"
        assert error.attempts == 1  # tried once, and no time for another attempt
        assert 1.4 <= ended < 1.5 + 0.5  # at the deadline, far from the 70 s read timeout
    assert len(outcomes) == 4


def test_the_aml_client_is_bounded_too(emu: Any) -> None:
    emu.set_faults(latency_ms=SLOW_MS)
    deadline = Deadline()
    backend = AmlBackend(emu.model_id, predict_endpoint=emu.url, endpoint_url=emu.url,
                         retry_policy=RetryPolicy(max_attempts=2, deadline=deadline))
    deadline.set_remaining(1.0)
    started = time.monotonic()
    with pytest.raises(RetriesExhaustedError):
        backend.predict({k: str(v) for k, v in census_records(1)[0].items()})
    assert time.monotonic() - started < 1.5
    backend.close()


def test_without_a_deadline_the_clients_own_timeout_applies(emu: Any) -> None:
    emu.set_faults(latency_ms=1500)
    client = emu.sagemaker_client(read_timeout=3)
    deadline = Deadline()  # never expires: the call keeps the client's 3 s
    bound_by_deadline(client, deadline)
    body = ",".join(str(v) for v in census_records(1)[0].values())
    answer = client.invoke_endpoint(EndpointName=emu.endpoint_name, Body=body,
                                    ContentType="text/csv")
    assert answer["Body"].read()
    deadline.set_remaining(0.5)  # now each call gets what is left
    started = time.monotonic()
    with pytest.raises(ReadTimeoutError):
        client.invoke_endpoint(EndpointName=emu.endpoint_name, Body=body,
                               ContentType="text/csv")
    assert time.monotonic() - started < 1.2
