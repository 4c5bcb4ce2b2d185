#!/usr/bin/env bash
# Stages the Lambda code that sam/template.yaml's CodeUri (.build/function/) points at:
# the amlproxy wheel and its dependencies as CPython / arm64 (manylinux2014_aarch64)
# wheels for the function's runtime, unpacked flat, ready for `sam build` (which then
# only copies the folder).
#
# The runtime is the interpreter's version: python3.11 (the template's default
# PythonRuntime) or python3.12 / python3.13 (needed for SnapStart=enabled; see
# docs/snapstart.md). Every module is precompiled for it, and what no handler imports is
# left out: see sam/slim_package.sh.
#
# Usage: sam/stage_function.sh        (from anywhere; needs that python with pip, and PyPI)
# Env:   PYTHON                 the CPython of the function's runtime (default python3.11,
#                               else python3); 3.11 or newer
#        AMLPROXY_STAGE_DIR     where to stage (default sam/.build/function)
#        AMLPROXY_EXTRAS        amlproxy's optional extras to install with it, comma-separated
#                               (default: none): "xray" for Tracing=xray (the X-Ray SDK and
#                               wrapt). Tracing=otel needs none: the ADOT layer brings
#                               OpenTelemetry ("otel" bundles it instead, without the layer).
#        AMLPROXY_LAMBDA_EXTRAS packages the handlers need beyond amlproxy's own dependencies
#                               (default: none; every runtime dependency is in pyproject.toml)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${AMLPROXY_STAGE_DIR:-$root/sam/.build/function}
python=${PYTHON:-$(command -v python3.11 || echo python3)}
if ! version=$("$python" -c 'import sys; v = sys.version_info[:2]; sys.exit(v < (3, 11)) if v < (3, 11) else print("%d.%d" % v)'); then
    echo "stage_function.sh: $python is older than CPython 3.11;" \
        "set PYTHON=/path/to/python3.X, the function's runtime (the .pyc files must match it)" >&2
    exit 2
fi
extras=${AMLPROXY_LAMBDA_EXTRAS:-}

amlproxy_extras=${AMLPROXY_EXTRAS:-}
if [[ ! "$amlproxy_extras" =~ ^[a-z,]*$ ]]; then
    echo "stage_function.sh: AMLPROXY_EXTRAS must be extra names separated by commas" >&2
    exit 2
fi
wheels=$(mktemp -d)
log=$(mktemp)
trap 'rm -rf "$wheels" "$log"' EXIT

# pip's own messages go to a log, shown only when pip fails: a successful run prints one
# line. (pip compares what it installs with the packages of the interpreter's own
# environment, which are not part of the function: --no-warn-conflicts, or it prints a
# resolver ERROR about them although the staged folder is consistent.)
quietly() {
    if ! "$@" >"$log" 2>&1; then
        cat "$log" >&2
        echo "stage_function.sh: failed: $*" >&2
        exit 1
    fi
}
pip=("$python" -m pip --disable-pip-version-check --no-input)
quietly "${pip[@]}" wheel --quiet --no-deps --wheel-dir "$wheels" "$root"
wheel=$(echo "$wheels"/amlproxy-*.whl)
rm -rf "$out"
mkdir -p "$out"
# shellcheck disable=SC2086 # extras is a space-separated list on purpose
quietly "${pip[@]}" install --quiet --no-compile --no-warn-conflicts \
    --root-user-action=ignore \
    --target "$out" --platform manylinux2014_aarch64 --implementation cp \
    --python-version "$version" --only-binary=:all: \
    "$wheel${amlproxy_extras:+[$amlproxy_extras]}" $extras
# pip compiles nothing (--no-compile): leave out what no handler imports, compile
# everything once for 3.11 (third-party packages sourceless), see slim_package.sh
PYTHON="$python" "$root"/sam/slim_package.sh "$out"
echo "staged $(du -sh "$out" | cut -f1) for python$version in $out" >&2
