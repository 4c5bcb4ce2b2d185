"""The local Lambda service's cost: a warm invocation through the Runtime API and a worker's
cold start, next to calling the same handler in-process, side by side in one run.

    python bench/local_service.py [--invocations 300] [--cold 5]

Handlers: a minimal echo handler (``tests.functional.local_handlers.echo``: the service's
own overhead) and the API trigger scoring one census record (``POST /predict``) on the
bundled local model with no sink (``AMLPROXY_BACKEND=local``), so that no server is
needed.

- warm: the median of ``--invocations`` calls of ``handler(event, context)`` in this
  process, and of ``service.invoke`` on a warm worker (awslambdaric, and the built-in
  loop); the figure is the difference per invocation (the Runtime API round trip);
- cold: the median of ``--cold`` first invocations on a fresh worker (process start,
  runtime client, handler import, first call), next to a fresh ``python -c`` that imports
  the handler module and calls it once (the floor: what any process pays).

Writes ``bench/results/local_service.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, figure, median, write_result

sys.path.insert(0, str(ROOT))
from amlproxy.local.functions import FunctionSpec
from amlproxy.local.pool import ServiceSettings
from amlproxy.local.service import LambdaService
from amlproxy.local.workers import WorkerSettings, awslambdaric_available

RECORD = ('{"age": 39, "workclass": "State-gov", "fnlwgt": 77516, "education": "Bachelors", '
          '"education-num": 13, "marital-status": "Never-married", "occupation": '
          '"Adm-clerical", "relationship": "Not-in-family", "race": "White", "sex": "Male", '
          '"capital-gain": 2174, "capital-loss": 0, "hours-per-week": 40, '
          '"native-country": "United-States"}')
API_EVENT: dict[str, Any] = {
    "version": "2.0", "rawPath": "/predict", "rawQueryString": "", "isBase64Encoded": False,
    "headers": {"content-type": "application/json"}, "body": RECORD,
    "requestContext": {"http": {"method": "POST", "path": "/predict"}, "requestId": "bench"}}
API_ENV = {"AMLPROXY_BACKEND": "local", "AMLPROXY_METRICS": "false", "AMLPROXY_TRACING": "off",
           "AMLPROXY_LOG_LEVEL": "WARNING", "PYDANTIC_DISABLE_PLUGINS": "__all__"}
HANDLERS = {"echo": ("tests.functional.local_handlers", "echo", {"n": 1}, {}),
            "api": ("amlproxy.triggers.api", "handler", API_EVENT, API_ENV)}


class _Context:
    aws_request_id = "bench"
    function_name = "bench"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:bench"
    memory_limit_in_mb = 128
    client_context = None

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def in_process_ms(name: str, count: int) -> float:
    module_name, function, event, env = HANDLERS[name]
    os.environ.update(env)
    module = __import__(module_name, fromlist=[function])
    handler = getattr(module, function)
    handler(event, _Context())  # build what it builds on the first call
    times = []
    for _ in range(count):
        started = time.perf_counter()
        handler(event, _Context())
        times.append((time.perf_counter() - started) * 1000)
    return median(times)


def service_ms(service: LambdaService, name: str, count: int) -> float:
    event = HANDLERS[name][2]
    assert not service.invoke(name, event).failed  # warm it
    times = []
    for _ in range(count):
        started = time.perf_counter()
        outcome = service.invoke(name, event)
        times.append((time.perf_counter() - started) * 1000)
        assert not outcome.failed, outcome.payload
    return median(times)


def cold_ms(client: str, name: str) -> float:
    module_name, function, event, env = HANDLERS[name]
    service = LambdaService([FunctionSpec(name, f"{module_name}.{function}", timeout_s=30,
                                          environment=env)],
                            ServiceSettings(workers=WorkerSettings(runtime_client=client)))  # type: ignore[arg-type]
    try:
        started = time.perf_counter()
        outcome = service.invoke(name, event)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        service.stop()
    assert not outcome.failed, outcome.payload
    return elapsed


def floor_ms(name: str) -> float:
    module_name, function, event, env = HANDLERS[name]
    code = (f"import json\nfrom {module_name} import {function} as h\n"
            "class C:\n aws_request_id = function_name = 'bench'\n"
            " invoked_function_arn = 'arn:aws:lambda:us-east-1:123456789012:function:b'\n"
            " memory_limit_in_mb = 128\n client_context = None\n"
            " def get_remaining_time_in_millis(self): return 30000\n"
            f"h(json.loads({_json(event)!r}), C())")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT,
                   env={**os.environ, **env, "PYTHONPATH": str(ROOT)}, capture_output=True)
    return (time.perf_counter() - started) * 1000


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invocations", type=int, default=300)
    parser.add_argument("--cold", type=int, default=5)
    args = parser.parse_args()
    clients = ["awslambdaric", "builtin"] if awslambdaric_available() else ["builtin"]
    figures, details = [], {}
    for name in HANDLERS:
        local = in_process_ms(name, args.invocations)
        details[f"{name}_in_process_ms"] = local
        for client in clients:
            service = LambdaService([FunctionSpec(name, ".".join(HANDLERS[name][:2]),
                                                  timeout_s=30, environment=HANDLERS[name][3])],
                                    ServiceSettings(workers=WorkerSettings(
                                        runtime_client=client)))  # type: ignore[arg-type]
            try:
                warm = service_ms(service, name, args.invocations)
            finally:
                service.stop()
            details[f"{name}_{client}_warm_ms"] = warm
            figures.append(figure(f"local service warm invoke overhead ({name}, {client})",
                                  round(warm - local, 3), "ms", "< 5 ms", warm - local < 5,
                                  f"{warm:.3f} ms vs {local:.3f} ms in-process"))
        cold: dict[str, list[float]] = {client: [] for client in clients}
        floors = []
        for _ in range(args.cold):  # interleaved, so a busy machine slows them alike
            floors.append(floor_ms(name))
            for client in clients:
                cold[client].append(cold_ms(client, name))
        details[f"{name}_floor_ms"] = median(floors)
        for client in clients:
            value = median(cold[client])
            details[f"{name}_{client}_cold_ms"] = value
            figures.append(figure(f"worker cold start ({name}, {client})", round(value, 1),
                                  "ms", "< 2x a bare python process", value < 2 * median(floors),
                                  f"ratio {value / median(floors):.2f} to python -c import "
                                  f"+ call ({median(floors):.0f} ms)"))
    path = write_result("local_service", {"figures": figures, "details": details,
                                          "arguments": vars(args)})
    for item in figures:
        print(f"{item['figure']}: {item['value']} {item['unit']} ({item['detail']})")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
