"""The run summary tells the truth: reasons grouped by template without mangling words,
every kind shown or counted, backend failures with their cause."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.report import Report, fill_template, reason_template
from amlproxy.core.units import failure_text
from amlproxy.errors import (
    EndpointConnectionError,
    EndpointNotFoundError,
    FieldError,
    RetriesExhaustedError,
)


def rejected(line: int, *errors: FieldError) -> Outcome:
    return Outcome("f.csv", line, Status.REJECTED, None, "raw", None, errors)


def summary(*reasons: FieldError) -> list[str]:
    report = Report("f.csv")
    for line, error in enumerate(reasons, 1):
        report.count(rejected(line, error))
    return report.summary_lines()[1:]


def test_words_with_digits_are_not_mangled():
    lines = summary(FieldError(None, "invalid UTF-8 at byte offset 12 (line 3)"),
                    FieldError(None, "invalid UTF-8 at byte offset 40 (line 9)"))
    assert lines == ["        2  invalid UTF-8 at byte offset … (line …)"]


def test_constant_parts_are_kept_and_only_what_varies_is_elided():
    message = "expected 15 fields (14 without the target 'income'), got {}"
    lines = summary(*(FieldError(None, message.format(n)) for n in (9, 3, 9)))
    assert lines == ["        3  expected 15 fields (14 without the target 'income'), got …"]
    assert summary(FieldError("age", "not a number: 'thirty'")) == [
        "        1  age: not a number: 'thirty'"]


def test_every_kind_of_reason_is_shown_or_counted():
    errors = [FieldError(f"field{i}", "missing required value") for i in range(13)]
    lines = summary(*errors, errors[0])
    assert lines[0] == "        2  field0: missing required value"
    assert len(lines) == 11
    assert lines[-1] == ("  ... and 3 more kind(s) of reason (3 in all): the rejects output "
                         "has every one")


def test_a_backend_failure_shows_its_cause_class_and_message():
    assert failure_text(EndpointNotFoundError("Endpoint x not found")) == (
        "EndpointNotFoundError: Endpoint x not found")
    cause = EndpointConnectionError("Could not connect to the endpoint URL")
    text = failure_text(RetriesExhaustedError(cause, attempts=5, why="max attempts"))
    assert text.split(":")[0].endswith("Error") and "gave up after 5 attempt(s)" in text
    assert text.endswith("last error: Could not connect to the endpoint URL")


@given(st.text(max_size=80))
def test_a_template_filled_with_its_own_values_is_the_reason(reason):
    template, values = reason_template(reason)
    assert fill_template(template, list(values)) == reason
