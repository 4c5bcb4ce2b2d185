"""Package size: the Lambda deployment package, unzipped, without the AWS SDK.

    python bench/package_size.py

Runs ``sam/stage_function.sh`` into a temporary directory (``AMLPROXY_STAGE_DIR``: arm64
wheels from PyPI, every module precompiled for 3.11 in ``__pycache__``), then leaves out
what the Lambda Python runtime provides (boto3, botocore, s3transfer, jmespath, urllib3,
dateutil, six) and sums the file sizes. Also reports the size with the SDK, the share of
``.pyc`` files and the largest distributions. Target <= 10 MB.

The default package has no tracer: it is staged again with each tracing extra
(``AMLPROXY_EXTRAS=xray``: the X-Ray SDK and wrapt; ``otel``: the OpenTelemetry SDK and
OTLP/HTTP exporter, for a deployment without the ADOT layer), and the differences are what
each would add, i.e. what the default package saves. Writes
``bench/results/package_size.json``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, figure, setup_env, write_result

setup_env()
TARGET_MB = 10.0
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "urllib3", "dateutil",
                    "six", "python_dateutil")


def provided(name: str) -> bool:
    """Whether a top-level entry of the package belongs to the runtime's SDK."""
    base = name.split("-")[0].removesuffix(".py").lower()
    return base in RUNTIME_PROVIDED


def tree_size(path: Path) -> tuple[int, int]:
    """(all bytes, .pyc bytes) under ``path``."""
    total = pyc = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            size = os.path.getsize(os.path.join(dirpath, name))
            total += size
            if name.endswith(".pyc"):
                pyc += size
    return total, pyc


def stage(out: Path, extras: str = "") -> None:
    """``sam/stage_function.sh`` into ``out`` with amlproxy's ``extras``."""
    env = {**os.environ, "AMLPROXY_STAGE_DIR": str(out), "AMLPROXY_EXTRAS": extras}
    staged = subprocess.run([str(ROOT / "sam" / "stage_function.sh")], env=env,
                            capture_output=True, text=True, timeout=600, check=False)
    if staged.returncode != 0:  # pip's own noise only matters when staging failed
        print(staged.stdout + staged.stderr, file=sys.stderr)
        raise SystemExit(f"sam/stage_function.sh failed ({staged.returncode})")
    print(staged.stderr.strip().splitlines()[-1])


def our_bytes(out: Path) -> int:
    """Bytes of a staged package, what the runtime provides left out."""
    return sum(tree_size(e)[0] if e.is_dir() else e.stat().st_size
               for e in out.iterdir() if not provided(e.name))


def main(argv: list[str] | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="amlproxy-package-") as tmp:
        out = Path(tmp) / "function"
        stage(out)
        with_extra = {}
        for extra in ("xray", "otel"):
            stage(Path(tmp) / extra, extra)
            with_extra[extra] = our_bytes(Path(tmp) / extra)
        # parts that a cold start does not import: what a smaller package could leave out
        optional = {name: tree_size(out / name)[0] for name in (
            "pydantic/v1", "pydantic/deprecated", "pydantic/experimental",
            "amlproxy/emulator", "amlproxy/local") if (out / name).exists()}
        tracer_free = not any((out / name).exists() for name in ("aws_xray_sdk", "wrapt",
                                                                 "opentelemetry"))
        entries: dict[str, Any] = {}
        for entry in sorted(out.iterdir()):
            size = tree_size(entry) if entry.is_dir() else (entry.stat().st_size, 0)
            entries[entry.name] = {"bytes": size[0], "pyc_bytes": size[1],
                                   "runtime_provided": provided(entry.name)}
    ours = {k: v for k, v in entries.items() if not v["runtime_provided"]}
    size = sum(v["bytes"] for v in ours.values())
    pyc = sum(v["pyc_bytes"] for v in ours.values())
    with_sdk = sum(v["bytes"] for v in entries.values())
    largest = sorted(ours.items(), key=lambda kv: -kv[1]["bytes"])[:8]
    mb = size / 1e6
    print(f"Lambda package without the SDK: {mb:.2f} MB unzipped ({pyc / 1e6:.2f} MB of .pyc); "
          f"with boto3 & co: {with_sdk / 1e6:.1f} MB")
    for name, item in largest:
        print(f"  {name:<40} {item['bytes'] / 1e6:7.2f} MB")
    print("not imported by a cold start (tracing off): " + ", ".join(
        f"{k} {v / 1e6:.2f} MB" for k, v in optional.items()))
    saved = {extra: total - size for extra, total in with_extra.items()}
    print(f"no tracer in the default package: {tracer_free}; the xray extra would add "
          f"{saved['xray'] / 1e6:.2f} MB, the otel extra {saved['otel'] / 1e6:.2f} MB")
    figures = [figure("Lambda package, unzipped, without boto3 (with .pyc)", round(mb, 2), "MB",
                      f"<= {TARGET_MB:.0f} MB", mb <= TARGET_MB,
                      f"{pyc / 1e6:.1f} MB of it .pyc; largest: " + ", ".join(
                          f"{n} {i['bytes'] / 1e6:.1f}" for n, i in largest[:4])
                      + f"; with the SDK {with_sdk / 1e6:.1f} MB; without .pyc "
                      f"{(size - pyc) / 1e6:.1f} MB; not imported at cold start: " + ", ".join(
                          f"{k} {v / 1e6:.1f}" for k, v in optional.items())),
               figure("Lambda package: what the X-Ray SDK no longer adds (xray extra)",
                      round(saved["xray"] / 1e6, 2), "MB", "saved by default",
                      tracer_free and saved["xray"] > 0,
                      f"default {mb:.2f} MB, with AMLPROXY_EXTRAS=xray "
                      f"{with_extra['xray'] / 1e6:.2f} MB (aws_xray_sdk, wrapt); with otel "
                      f"(no ADOT layer) {with_extra['otel'] / 1e6:.2f} MB; the default "
                      f"package holds no tracer: {tracer_free}")]
    write_result("package_size", {"bytes": size, "pyc_bytes": pyc, "with_sdk_bytes": with_sdk,
                                  "with_extra_bytes": with_extra, "tracer_free": tracer_free,
                                  "not_imported_at_cold_start": optional,
                                  "entries": entries, "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
