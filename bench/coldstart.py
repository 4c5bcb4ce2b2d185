"""Cold start: import a handler module and build its runtime, clients created, in a fresh
process; next to the handlers a user would write instead, in the same run.

    python bench/coldstart.py [--repeat 7] [--triggers api ...]

Each configuration runs ``--repeat`` times in a fresh subprocess (interleaved, so a busy
machine slows them alike); each figure is a ratio of median in-process times, from the
first import to the last client. Configurations:

- each trigger (s3, sns, sqs, api) with the SageMaker backend, tracing off; the S3 trigger
  with its S3 client, the others with a DynamoDB sink (its client), run from a copy of the
  Lambda package (amlproxy and its dependencies, slimmed and compiled by
  ``sam/slim_package.sh``; boto3 from the runtime);
- the Powertools peer of each trigger (bench/peers/powertools_<trigger>.py): Logger,
  Metrics, Parser models (the event handler for the API), the census pydantic model and
  the same boto3 clients, made at import as Powertools' examples do;
- the minimal handler (bench/peers/minimal.py): boto3 and the same clients, nothing else;
- the S3 trigger with each tracing mode, inside a (simulated) Lambda environment: ``off``
  (the package as staged by default), ``otel`` (the package plus the ``otel`` extra's
  distributions: amlproxy wires the SDK and the OTLP/HTTP exporter from ``OTEL_*``) and
  ``xray`` (the package plus the ``xray`` extra: the X-Ray SDK and wrapt), each extra
  slimmed and compiled like the package, all as ratios to the same floor (the minimal
  handler);
- the S3 trigger from the package without ``.pyc`` files: why the package ships them.

``--triggers`` limits the run to those triggers and their peers (the tracing and
``.pyc`` configurations, which use the S3 trigger, run only when s3 is among them): a
quicker check of one trigger's figure.

Everything runs with the environment the template gives every function
(``PYDANTIC_DISABLE_PLUGINS=__all__``). Figures: amlproxy / Powertools for the worst
trigger (target <= 1.0x: every trigger), amlproxy / minimal (reported). Also records the
slowest imports of the S3 handler (``python -X importtime``). Writes
``bench/results/coldstart.json``.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, clean_env, figure, median, setup_env, write_result

setup_env()

TARGET = 1.0  # amlproxy / the Powertools handler, at most, for every trigger
ENDPOINT = "http://127.0.0.1:9"  # nothing is called at cold start
TRACE_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "amlproxy-bench",
    "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;"
                        "Parent=53995c3f42cd8ad8;Sampled=1",
    "AWS_XRAY_CONTEXT_MISSING": "IGNORE_ERROR",
}

OURS = """
import sys, time
t0 = time.perf_counter()
import importlib
importlib.import_module("amlproxy.triggers." + sys.argv[1])
from amlproxy.triggers._runtime import get_runtime
runtime = get_runtime()
for service in sys.argv[2:]:
    if service != "sagemaker-runtime":  # the backend made its own (no retries of botocore's)
        runtime.clients.client(service)
elapsed = time.perf_counter() - t0
import amlproxy
print(repr({"s": elapsed, "modules": len(sys.modules), "xray": "aws_xray_sdk" in sys.modules,
            "otel": "opentelemetry" in sys.modules, "tracer": runtime.tracer.name,
            "from": amlproxy.__file__}))
"""

PEER = """
import sys, time
t0 = time.perf_counter()
import importlib
importlib.import_module(sys.argv[1])
elapsed = time.perf_counter() - t0
print(repr({"s": elapsed, "modules": len(sys.modules)}))
"""

# what sam/template.yaml's Globals set besides amlproxy's settings: pydantic's plugin loader
# scans every installed distribution's entry points (importlib.metadata) otherwise
DEPLOYED_ENV = {"PYDANTIC_DISABLE_PLUGINS": "__all__"}
TRIGGERS = ("s3", "sns", "sqs", "api")

# module roots the Lambda package holds besides amlproxy (boto3 & co come with the runtime)
PACKAGE_MODULES = ("pydantic", "pydantic_core", "tenacity", "orjson",
                   "annotated_types", "typing_extensions", "typing_inspection", "dotenv",
                   "h11")
# what the Lambda runtime provides: an extra's closure leaves these out
RUNTIME_PROVIDED = frozenset({"boto3", "botocore", "s3transfer", "jmespath", "urllib3",
                              "python-dateutil", "six"})
OTEL_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": ENDPOINT, "OTEL_SERVICE_NAME": "amlproxy-bench"}


def trigger_env(trigger: str, *, tracing: str = "off") -> dict[str, str]:
    env = {
        "AMLPROXY_BACKEND": "sagemaker", "AMLPROXY_SAGEMAKER_ENDPOINT": "census-income",
        "AMLPROXY_ENDPOINT_URL": ENDPOINT, "AMLPROXY_AWS_ENDPOINT_URL": ENDPOINT,
        "AMLPROXY_REGION": "us-east-1", "AMLPROXY_LOG_LEVEL": "WARNING",
        "AWS_LAMBDA_FUNCTION_NAME": "amlproxy-bench",
        **DEPLOYED_ENV,
    }
    if trigger == "s3":
        env["AMLPROXY_SINKS"] = "s3"
    else:
        env.update(AMLPROXY_SINKS="dynamodb", AMLPROXY_DYNAMODB_TABLE="results")
    if tracing != "off":
        env.update(TRACE_ENV, AMLPROXY_TRACING=tracing)
    if tracing == "otel":
        env.update(OTEL_ENV)
    return env


def clients_of(trigger: str) -> list[str]:
    return ["sagemaker-runtime", "s3" if trigger == "s3" else "dynamodb"]


def run_once(code: str, args: list[str], env: dict[str, str]) -> dict[str, Any]:
    answer = subprocess.run([sys.executable, "-P", "-c", code, *args], env=env, check=True,
                            capture_output=True, text=True, timeout=120)
    result: dict[str, Any] = eval(answer.stdout.strip().splitlines()[-1])
    return result


def peer_env(base: dict[str, str], trigger: str) -> dict[str, str]:
    """The environment of a peer handler (Powertools or minimal) of ``trigger``."""
    return {**base, **DEPLOYED_ENV, "PYTHONPATH": f"{ROOT / 'bench'}",
            "AWS_LAMBDA_FUNCTION_NAME": "amlproxy-bench", "PEER_ENDPOINT_URL": ENDPOINT,
            "PEER_OUTPUT": "s3" if trigger == "s3" else "dynamodb"}


def slim_and_compile(folder: Path) -> None:
    """``sam/slim_package.sh`` on a copied package, as the Lambda package is built."""
    subprocess.run([str(ROOT / "sam" / "slim_package.sh"), str(folder)], check=True,
                   env={**os.environ, "PYTHON": sys.executable})


def copy_package(target: Path) -> None:
    """amlproxy (as its wheel lays it out) and its non-boto3 dependencies, without any
    ``__pycache__``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "amlproxy", target / "amlproxy", ignore=ignore)
    # the wheel's force-include (pyproject.toml): the bundled record schemas
    shutil.copytree(ROOT / "schemas", target / "amlproxy" / "_schemas", ignore=ignore)
    for name in PACKAGE_MODULES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        if origin.name == "__init__.py":
            shutil.copytree(origin.parent, target / name, ignore=ignore)
        else:
            shutil.copy2(origin, target / origin.name)


def extra_closure(extra: str) -> list[str]:
    """The distributions amlproxy's ``extra`` adds to its own dependencies (installed in
    this environment), less what the Lambda runtime provides."""
    from importlib import metadata

    from packaging.requirements import Requirement

    def requirements(name: str, extra: str = "") -> list[str]:
        found = []
        for text in metadata.requires(name) or ():
            req = Requirement(text)
            if req.marker is None or req.marker.evaluate({"extra": extra}):
                found.append(canonical(req.name))
        return found

    def closure(names: list[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(names)
        while todo:
            name = todo.pop()
            if name in seen or name in RUNTIME_PROVIDED:
                continue
            seen.add(name)
            todo.extend(requirements(name))
        return seen

    base = closure(requirements("amlproxy"))
    with_extra = closure(requirements("amlproxy", extra))
    return sorted(with_extra - base - {"amlproxy"})


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def copy_distributions(names: list[str], target: Path) -> None:
    """The installed files of distributions ``names`` (dist-info included: entry points
    are looked up at run time), without bytecode, laid out as in site-packages."""
    from importlib import metadata

    for name in names:
        dist = metadata.distribution(name)
        for path in dist.files or ():
            if "__pycache__" in path.parts or path.suffix == ".pyc" or ".." in path.parts:
                continue
            source = Path(str(dist.locate_file(path)))
            if source.is_file():
                (target / path).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target / path)


def import_profile(env: dict[str, str], trigger: str = "s3", limit: int = 12
                   ) -> list[dict[str, Any]]:
    """The slowest imports (cumulative) of a trigger's handler and its runtime."""
    answer = subprocess.run([sys.executable, "-P", "-X", "importtime", "-c", OURS, trigger,
                             *clients_of(trigger)], env=env, capture_output=True, text=True,
                            check=True, timeout=120)
    rows = []
    for line in answer.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        head, cumulative, name = line.split("|", 2)
        self_us = head.removeprefix("import time:")
        rows.append({"module": name.rstrip(), "self_ms": int(self_us) / 1000,
                     "cumulative_ms": int(cumulative) / 1000,
                     "top_level": not name[1:].startswith(" ")})
    tops = [r for r in rows if r["top_level"]]
    tops.sort(key=lambda r: -r["cumulative_ms"])
    return [{"module": r["module"].strip(), "cumulative_ms": r["cumulative_ms"]}
            for r in tops[:limit]]


def tracing_figures(medians: dict[str, float], runs: dict[str, list[dict[str, Any]]]
                    ) -> list[dict[str, Any]]:
    """Cold start per AMLPROXY_TRACING mode (s3 trigger), each over the same floor: the
    minimal boto3 handler of the S3 trigger."""
    floor = medians["minimal s3"]
    off = runs["s3"][0]
    figures = [figure("cold start, tracing=off / minimal boto3 handler (s3)",
                      round(medians["s3"] / floor, 2), "x", "reported", None,
                      f"{medians['s3'] * 1e3:.0f} ms; imports opentelemetry: {off['otel']}, "
                      f"aws_xray_sdk: {off['xray']}")]
    for mode, label in (("otel", "OpenTelemetry, SDK + OTLP/HTTP exporter from the otel "
                                 "extra"), ("xray", "X-Ray SDK from the xray extra")):
        name = f"s3 tracing={mode}"
        first = runs[name][0]
        figures.append(figure(
            f"cold start, tracing={mode} / minimal boto3 handler (s3)",
            round(medians[name] / floor, 2), "x", "reported", None,
            f"{label}: {medians[name] * 1e3:.0f} ms, +{(medians[name] - medians['s3']) * 1e3:.0f}"
            f" ms over tracing off; tracer {first['tracer']}"))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11)
    parser.add_argument("--triggers", nargs="+", choices=TRIGGERS, default=list(TRIGGERS))
    args = parser.parse_args(argv)
    triggers = tuple(t for t in TRIGGERS if t in args.triggers)
    with_s3 = "s3" in triggers
    base = clean_env(PYTHONDONTWRITEBYTECODE="1")
    configs: dict[str, tuple[str, list[str], dict[str, str]]] = {}
    for trigger in triggers:
        configs[f"powertools {trigger}"] = (PEER, [f"peers.powertools_{trigger}"],
                                            peer_env(base, trigger))
        configs[f"minimal {trigger}"] = (PEER, ["peers.minimal"], peer_env(base, trigger))
    with tempfile.TemporaryDirectory(prefix="amlproxy-coldstart-") as tmp:
        # The handlers run from a copy of the Lambda package (amlproxy and its non-boto3
        # dependencies, slimmed and compiled by sam/slim_package.sh), as on Lambda: the
        # repository's own tree may have no .pyc (PYTHONDONTWRITEBYTECODE), which would
        # time compiling amlproxy rather than starting it.
        plain, compiled = Path(tmp) / "plain", Path(tmp) / "compiled"
        copy_package(plain)
        shutil.copytree(plain, compiled)
        extras = {extra: Path(tmp) / extra for extra in ("otel", "xray")}
        for extra, folder in extras.items():
            copy_distributions(extra_closure(extra), folder)
        for folder in (compiled, *extras.values()):
            slim_and_compile(folder)
        packaged = {**base, "PYTHONPATH": str(compiled)}
        for trigger in triggers:
            configs[trigger] = (OURS, [trigger, *clients_of(trigger)],
                                {**packaged, **trigger_env(trigger)})
        for mode in ("otel", "xray") if with_s3 else ():
            path = f"{compiled}{os.pathsep}{extras[mode]}"
            configs[f"s3 tracing={mode}"] = (OURS, ["s3", *clients_of("s3")],
                                             {**packaged, **trigger_env("s3", tracing=mode),
                                              "PYTHONPATH": path})
        if with_s3:
            configs["s3 package, no .pyc"] = (OURS, ["s3", *clients_of("s3")],
                                              {**base, **trigger_env("s3"),
                                               "PYTHONPATH": str(plain)})
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
        for code, argv_, env in configs.values():  # warm the OS file cache
            run_once(code, argv_, env)
        for _ in range(args.repeat):
            for name, (code, argv_, env) in configs.items():
                runs[name].append(run_once(code, argv_, env))
        profile = import_profile({**packaged, **trigger_env(triggers[0])}, triggers[0])

    medians = {name: median([r["s"] for r in rs]) for name, rs in runs.items()}
    print(f"{'configuration':<24} {'median ms':>9}  runs (ms)")
    for name, value in medians.items():
        print(f"{name:<24} {value * 1e3:9.0f}  " + " ".join(f"{r['s'] * 1e3:.0f}"
                                                          for r in runs[name]))
    print(f"slowest imports of the {triggers[0]} handler (cumulative ms):")
    for row in profile:
        print(f"  {row['module']:<40} {row['cumulative_ms']:8.1f}")
    ratios = {f"{t} / {peer}": medians[t] / medians[f"{peer} {t}"]
              for t in triggers for peer in ("powertools", "minimal")}
    worst = max(triggers, key=lambda t: ratios[f"{t} / powertools"])
    figures = [
        figure("cold start, amlproxy / Powertools handler (worst trigger)",
               round(ratios[f"{worst} / powertools"], 2), "x", f"<= {TARGET}x (each trigger)",
               all(ratios[f"{t} / powertools"] <= TARGET for t in triggers),
               f"worst: {worst}; " + ", ".join(
                   f"{t} {ratios[f'{t} / powertools']:.2f}x ({medians[t] * 1e3:.0f} vs "
                   f"{medians[f'powertools {t}'] * 1e3:.0f} ms)" for t in triggers)
               + f"; medians of {args.repeat} interleaved runs"),
        figure("cold start, amlproxy / minimal boto3 handler (worst trigger)",
               round(max(ratios[f"{t} / minimal"] for t in triggers), 2), "x", "reported",
               None, ", ".join(f"{t} {ratios[f'{t} / minimal']:.2f}x (minimal "
                               f"{medians[f'minimal {t}'] * 1e3:.0f} ms)" for t in triggers)),
    ]
    if with_s3:
        figures += [*tracing_figures(medians, runs), figure(
            "cold start without .pyc / slimmed package (s3, sam/slim_package.sh)",
            round(medians["s3 package, no .pyc"] / medians["s3"], 2), "x", "ship .pyc", None,
            f"{medians['s3 package, no .pyc'] * 1e3:.0f} ms vs {medians['s3'] * 1e3:.0f} ms")]
    write_result("coldstart", {"repeat": args.repeat, "runs": runs, "median_s": medians,
                               "ratios": ratios, "import_profile": profile,
                               "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
