"""The whole census training file through the real pipeline and the Amazon ML backend, with
30% throttles and 5% 5xx injected by the emulator: every row is scored or failed with a
reason, none is attempted more often than the cap, and the emulator's request count equals
the attempts the report accounts for.

Uses ../shared/data/census-income/adult.data when it is there (32,561 rows); a user's
clone has no ../shared, so it otherwise scores the example rows cycled to the same count.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from amlproxy.backends.aml import AmlBackend
from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.pipeline import Pipeline
from amlproxy.core.readers import read_csv
from amlproxy.core.retry import RetryPolicy
from amlproxy.core.schema import load_schema

REPO = Path(__file__).resolve().parents[2]
ADULT = REPO.parent / "shared" / "data" / "census-income" / "adult.data"
SAMPLE = REPO / "examples" / "census-income-sample.csv"
ROWS = 32_561
CAP = 4

pytestmark = pytest.mark.slow


class Collect:
    name = "collect"

    def __init__(self) -> None:
        self.outcomes: list[Outcome] = []

    def write(self, outcomes: Sequence[Outcome]) -> None:
        self.outcomes.extend(outcomes)

    def close(self) -> None: ...

    def abort(self) -> None: ...


@pytest.fixture(scope="module")
def training_file(tmp_path_factory) -> Path:
    if ADULT.exists():
        return ADULT
    good = [line for i, line in enumerate(SAMPLE.read_text().splitlines(), 1)
            if i not in {12, 40, 77, 120, 166, 213, 260, 301}]
    path = tmp_path_factory.mktemp("data") / "cycled.data"
    path.write_text("\n".join(good[i % len(good)] for i in range(ROWS)) + "\n")
    return path


def test_whole_training_file_with_throttles_and_5xx(emulator_process, training_file):
    emu = emulator_process
    emu.reset()
    emu.set_faults("*", throttle_rate=0.30, error_rate=0.05, seed=7)
    schema = load_schema("census-income")
    policy = RetryPolicy(max_attempts=CAP, base_delay_s=0.001, max_delay_s=0.02, seed=3)
    backend = AmlBackend(emu.model_id, predict_endpoint=emu.url, endpoint_url=emu.url,
                         concurrency=32, retry_policy=policy)
    sink = Collect()
    pipeline = Pipeline(schema, backend, [sink], concurrency=32)
    with training_file.open("rb") as stream:
        report = pipeline.run(read_csv(stream, schema), source=str(training_file))
    pipeline.close()

    assert report.total == ROWS and report.reconciles and report.rejected == 0
    assert [o.line for o in sink.outcomes] == list(range(1, ROWS + 1))  # none lost
    failed = [o for o in sink.outcomes if o.status is Status.FAILED]
    assert report.failed == len(failed) == report.exhausted
    assert all(f"gave up after {CAP} attempt(s)" in o.reasons[0] for o in failed)
    ok = [o for o in sink.outcomes if o.status is Status.OK]
    assert all(1 <= o.prediction.attempts <= CAP for o in ok)
    # P(4 bad answers in a row) = 0.35**4 = 1.5%: some rows fail, most succeed.
    assert 0.005 < report.failed / ROWS < 0.03
    assert report.retries > 0.3 * ROWS

    counts = emu.endpoint_counts()
    attempts = report.ok + report.failed + report.retries
    assert counts["requests"] == attempts
    outcomes = counts["by_outcome"]
    assert outcomes["ok"] == report.ok
    assert outcomes["throttled"] + outcomes["server_error"] == report.failed * CAP + sum(
        o.prediction.attempts - 1 for o in ok)
