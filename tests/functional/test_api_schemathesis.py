"""Schemathesis against the local API (``amlproxy local up``: the local HTTP server with the
API function behind it, moto and the emulator), from the ``/openapi.json`` it serves.

Every check runs (server errors, status codes, content types, headers and bodies against
the document, schema-valid requests accepted, schema-invalid ones rejected, unsupported
methods...), with the few settings of ``schemathesis.toml`` and the hooks of
``schemathesis_hooks.py``, which say what each one is for. The pass mark is the
schemathesis run's own: exit 0, no failure, no error.

- ``test_schemathesis_short``: the examples phase and a short fuzzing run with a fixed
  seed (deterministic, part of ``make test``).
- ``test_schemathesis_long`` (slow): every phase and at least :data:`LONG_CASES` generated
  cases, split over one schemathesis process per core, each with its own random seed
  (printed on failure, with the curl command of each failing case).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from amlproxy.local.process import LocalStackProcess, start_local_stack

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CONFIG = HERE / "schemathesis.toml"
LONG_CASES = 10_000
COVERAGE_CASES = 1_000  # about what the coverage phase generates for POST /predict


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackProcess]:
    running = start_local_stack(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield running
    finally:
        running.stop()


def schemathesis(api: str, report: Path, *options: str) -> subprocess.Popen[str]:
    """``st run`` on the API's document, writing its JSON report to ``report`` (and its
    cache beside it, not in the checkout)."""
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.functional.schemathesis_hooks",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "schemathesis.cli", "--config-file", str(CONFIG), "run",
               f"{api}/openapi.json", "--checks", "all", "--no-color",
               "--generation-database", "none", "--request-timeout", "60",
               "--report-json-path", str(report), *options]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=report.parent)


def finished(process: subprocess.Popen[str], report: Path) -> dict[str, Any]:
    """The report of a finished run; the run's output when it failed."""
    output, _ = process.communicate()
    assert report.is_file(), output[-5000:]
    result: dict[str, Any] = json.loads(report.read_text())
    assert process.returncode == 0 and result["complete"], output[-20000:]
    assert result["failures"] == [] and result["errors"] == [], output[-20000:]
    assert result["test_cases"]["with_failures"] == 0
    return result


def test_a_post_leaves_its_items_and_a_replay_adds_none(local_api: LocalStackProcess) -> None:
    """Through the local HTTP server: the items reach the table, keyed by the request id,
    or by the Idempotency-Key, whose replays (new request ids) answer the stored answer
    without scoring or writing again; the key with another body is 422."""
    from amlproxy.emulator import EmulatorAdmin
    from tests.fixtures.aws import make_client
    from tests.fixtures.emulator import HIGH_INCOME_ROW, census_record

    api = urlsplit(local_api.endpoints["api"])
    table = make_client("dynamodb", local_api.endpoints["aws"])
    emulator = EmulatorAdmin(local_api.endpoints["emulator"])
    batch = [census_record(), census_record(HIGH_INCOME_ROW)]

    def items() -> dict[tuple[str, int], dict[str, Any]]:
        found = table.scan(TableName="amlproxy-results")["Items"]
        return {(i["pk"]["S"], int(i["sk"]["N"])): i for i in found
                if i["pk"]["S"].startswith("api:")}

    def post(headers: dict[str, str], records: list[dict[str, str]] = batch
             ) -> tuple[int, Any, dict[str, str]]:
        connection = http.client.HTTPConnection(api.hostname, api.port, timeout=30)
        connection.request("POST", "/predict", body=json.dumps(records),
                           headers={"Content-Type": "application/json", **headers})
        answer = connection.getresponse()
        result = (answer.status, json.loads(answer.read()),
                  {k.lower(): v for k, v in answer.getheaders()})
        connection.close()
        return result

    before = items()
    status, body, _ = post({})
    assert status == 200
    plain = {k: v for k, v in items().items() if k not in before}
    assert sorted(line for _, line in plain) == [1, 2]
    assert [plain[k]["label"]["S"] for k in sorted(plain)] == [
        p["label"] for p in body["predictions"]]  # the answer's results, in the table
    status, keyed_answer, _ = post({"Idempotency-Key": "e2e-replay-1"})
    assert status == 200
    keyed = set(items()) - set(before) - set(plain)
    assert len(keyed) == 2 and all(pk.startswith("api:key:") for pk, _ in keyed)
    calls = emulator.counts()["endpoints"]
    for _ in range(2):
        status, replayed, headers = post({"Idempotency-Key": "e2e-replay-1"})
        assert (status, replayed) == (200, keyed_answer)
        assert headers.get("idempotent-replayed") == "true"
    assert set(items()) == set(before) | set(plain) | keyed  # the replays added no item
    assert emulator.counts()["endpoints"] == calls  # and scored nothing again
    assert post({"Idempotency-Key": "e2e-replay-1"}, batch[:1])[0] == 422  # another body


def test_schemathesis_short(local_api: LocalStackProcess, tmp_path: Path) -> None:
    report = tmp_path / "short.json"
    run = schemathesis(local_api.endpoints["api"], report, "--phases", "examples,coverage,fuzzing",
                       "--max-examples", "40", "--seed", "20261212")
    result = finished(run, report)
    assert result["test_cases"]["generated"] >= 100
    assert set(result["valid_rates"]) >= {"POST /predict", "GET /schema"}


@pytest.mark.slow
@pytest.mark.timeout(5400)
def test_schemathesis_long(local_api: LocalStackProcess, tmp_path: Path) -> None:
    workers = max(1, min(2, os.cpu_count() or 1))
    fuzzing = (LONG_CASES - COVERAGE_CASES) // workers + 200
    runs = []
    for n in range(workers):
        phases = "examples,coverage,fuzzing" if n == 0 else "fuzzing"
        report = tmp_path / f"long-{n}.json"
        runs.append((schemathesis(local_api.endpoints["api"], report, "--phases", phases,
                                  "--max-examples", str(fuzzing)), report))
    results = [finished(process, report) for process, report in runs]
    generated = sum(r["test_cases"]["generated"] for r in results)
    print(f"schemathesis: {generated} cases generated, 0 failures "
          f"(seeds {[r['seed'] for r in results]})")
    assert generated >= LONG_CASES
