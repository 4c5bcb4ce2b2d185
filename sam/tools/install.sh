#!/usr/bin/env bash
# Installs the SAM template tools (aws-sam-translator, cfn-lint, checkov, parliament) into
# their own virtualenv, .venv-tools at the repository root (or $AMLPROXY_TOOLS_VENV).
# Idempotent: does nothing when the venv already matches sam/tools/requirements.txt.
# Needs python3 with venv and PyPI; takes about a minute on a fresh machine.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
venv=${AMLPROXY_TOOLS_VENV:-$root/.venv-tools}
python=${AMLPROXY_TOOLS_PYTHON:-python3}
requirements=$root/sam/tools/requirements.txt
stamp=$venv/.amlproxy-tools.sha256
wanted=$(sha256sum "$requirements" | cut -d' ' -f1)

if [[ -x $venv/bin/python && -f $stamp && $(cat "$stamp") == "$wanted" ]]; then
    exit 0
fi
if [[ -e $venv && ! -f $venv/pyvenv.cfg ]]; then
    echo "install.sh: $venv exists and is not a virtualenv; not touching it" >&2
    exit 1
fi

echo "install.sh: installing the template tools into $venv" >&2
"$python" -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
    -r "$requirements"
echo "$wanted" > "$stamp"
