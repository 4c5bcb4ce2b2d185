#!/usr/bin/env bash
# Slims and precompiles a staged Lambda package in place (sam/stage_function.sh calls it;
# bench/coldstart.py measures a package made with it).
#
# 1. Leaves out what no handler imports: amlproxy's local tools (emulator, local) and
#    their HTTP parser (httptools), pydantic's bundled v1 API (pydantic v2 touches it only for v1-style classes, which
#    amlproxy does not use), console scripts, C sources and type stubs.
# 2. Compiles every module once for the running CPython (it must be the function's
#    runtime: PythonRuntime in the template). Lambda's code directory is read-only, so without .pyc files every cold
#    start compiles the whole package again (about 3x slower).
#    - amlproxy keeps its sources, with unchecked-hash .pyc in __pycache__ (mtime-checked
#      .pyc could be judged stale after the zip round trip): its tracebacks show code.
#    - Third-party packages ship as .pyc only (sourceless, next to where the .py was),
#      which halves their size. Their tracebacks keep file names and line numbers but not
#      the code lines. AMLPROXY_KEEP_SOURCES=1 keeps every .py.
#
# Usage: sam/slim_package.sh DIR       Env: PYTHON (default python3)
set -euo pipefail

dir=${1:?usage: slim_package.sh DIR}
python=${PYTHON:-python3}

rm -rf "$dir"/amlproxy/emulator "$dir"/amlproxy/local "$dir"/pydantic/v1 "$dir"/bin \
    "$dir"/*-stubs "$dir"/httptools "$dir"/httptools-*.dist-info
find "$dir" \( -name '*.c' -o -name '*.pyi' \) -type f -delete
find "$dir" -name '__pycache__' -type d -prune -exec rm -rf {} +
find "$dir" -name '*.pyc' -type f -delete

"$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$dir"/amlproxy >/dev/null
for entry in "$dir"/*; do
    name=$(basename "$entry")
    case "$name" in amlproxy|*.dist-info|__pycache__) continue ;; esac
    if [ "${AMLPROXY_KEEP_SOURCES:-0}" = 1 ]; then
        "$python" -m compileall -q -j 0 --invalidation-mode unchecked-hash "$entry" >/dev/null
    elif [ -d "$entry" ] || [[ "$name" == *.py ]]; then
        "$python" -m compileall -q -j 0 -b "$entry" >/dev/null
        if [ -d "$entry" ]; then
            find "$entry" -name '*.py' -type f -delete
        else
            rm -f "$entry"
        fi
    fi
done
