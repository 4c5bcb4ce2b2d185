#!/usr/bin/env bash
# Stages the Lambda code that sam/template.yaml's CodeUri (.build/function/) points at:
# the amlproxy wheel and its dependencies as CPython 3.11 / arm64 (manylinux2014_aarch64)
# wheels, unpacked flat, ready for `sam build` (which then only copies the folder).
#
# Usage: sam/stage_function.sh        (from anywhere; needs python3 with pip, and PyPI)
# Env:   PYTHON                 interpreter that builds the wheel (default python3)
#        AMLPROXY_LAMBDA_EXTRAS packages the handlers need beyond amlproxy's own dependencies
#                               (default: none; every runtime dependency is in pyproject.toml)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/sam/.build/function
python=${PYTHON:-python3}
extras=${AMLPROXY_LAMBDA_EXTRAS:-}

wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT

"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$wheels" "$root"
rm -rf "$out"
mkdir -p "$out"
# shellcheck disable=SC2086 # extras is a space-separated list on purpose
"$python" -m pip install --quiet --disable-pip-version-check --no-compile \
    --target "$out" --platform manylinux2014_aarch64 --implementation cp \
    --python-version 3.11 --only-binary=:all: \
    "$wheels"/amlproxy-*.whl $extras
find "$out" -name '__pycache__' -type d -prune -exec rm -rf {} +
echo "staged $(du -sh "$out" | cut -f1) in $out" >&2
