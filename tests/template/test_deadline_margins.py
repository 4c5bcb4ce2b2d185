"""The template's function timeouts and the deadline margin agree at every allowed value:
every allowed ``FunctionTimeout`` from 3 s to 900 s (the S3, SNS, SQS and chunk functions),
and the API function's fixed 29 s.

At each timeout the deadline (where scoring stops) must leave most of the time to work,
and the margin after it must be long enough to finish: abort or checkpoint the outputs and
answer (tests/functional/test_deadlines.py measures that part at 3 s: well under 0.6 s).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amlproxy.core.retry import MARGIN_CAP_S, Deadline
from amlproxy.settings import Settings

FINISH_S = 0.5  # the least margin: time to abort or checkpoint and answer after the cut
API_GATEWAY_TIMEOUT_S = 29  # API Gateway's integration timeout
FUNCTIONS = ("S3Function", "SnsFunction", "SqsFunction", "ChunkFunction", "ApiFunction")


def margin_at(timeout_s: float, settings: Settings) -> float:
    """The margin a function with ``timeout_s`` gets at the start of an invocation."""
    deadline = Deadline(clock=lambda: 0.0)
    context = SimpleNamespace(get_remaining_time_in_millis=lambda: int(timeout_s * 1000))
    deadline.set_from_lambda_context(context, margin_s=settings.deadline_margin_s)
    assert deadline.at is not None
    return timeout_s - deadline.at


def environment(template: dict[str, Any], function: str) -> dict[str, Any]:
    variables = dict(template["Globals"]["Function"]["Environment"]["Variables"])
    props = template["Resources"][function]["Properties"]
    variables.update(props.get("Environment", {}).get("Variables", {}))
    return variables


def test_no_function_fixes_the_margin(sam_template: dict[str, Any]) -> None:
    """A fixed AMLPROXY_DEADLINE_MARGIN_S would have to fit 3 s and 900 s at once."""
    for function in FUNCTIONS:
        assert "AMLPROXY_DEADLINE_MARGIN_S" not in environment(sam_template, function)


def test_every_allowed_timeout_leaves_time_to_work_and_to_finish(
        sam_template: dict[str, Any]) -> None:
    parameter = sam_template["Parameters"]["FunctionTimeout"]
    timeouts = [int(value) for value in parameter["AllowedValues"]]
    api_timeout = sam_template["Resources"]["ApiFunction"]["Properties"]["Timeout"]
    assert api_timeout <= API_GATEWAY_TIMEOUT_S
    settings = Settings()  # what the template leaves unset takes its default
    for timeout in [*timeouts, api_timeout]:
        margin = margin_at(timeout, settings)
        assert FINISH_S <= margin <= MARGIN_CAP_S, timeout
        assert timeout - margin >= 0.8 * timeout - 1e-9, timeout  # 80% of it to work
    assert (min(timeouts), max(timeouts)) == (3, 900)  # Lambda's least and greatest timeout
    assert timeouts == sorted(set(timeouts)) and 30 in timeouts and 120 in timeouts


def test_the_api_answers_before_api_gateway_gives_up(sam_template: dict[str, Any]) -> None:
    api_timeout = sam_template["Resources"]["ApiFunction"]["Properties"]["Timeout"]
    cut = api_timeout - margin_at(api_timeout, Settings())
    assert cut + FINISH_S < API_GATEWAY_TIMEOUT_S  # the 503 leaves before the 504
