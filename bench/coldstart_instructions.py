"""Cold start in instructions: each trigger against its Powertools peer under
``valgrind --tool=callgrind``, deterministic where the wall clock of a shared machine is not.

    python bench/coldstart_instructions.py [--triggers s3 sqs ...]

The same configurations as :mod:`coldstart` (its ``OURS`` and ``PEER`` programs, its
environments, amlproxy from a copy of the Lambda package compiled by
``sam/slim_package.sh``), each run once under callgrind; the instructions of
``python -c pass`` are subtracted from both sides (the interpreter's own start-up, which
the wall-clock figure does not time either). Figure: amlproxy / Powertools per trigger
(reported). Needs valgrind (``apt-get install valgrind``); not part of ``make bench``: one
trigger takes about 30 s. Writes ``bench/results/coldstart_instructions.json``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import clean_env, figure, write_result
from coldstart import (
    OURS,
    PEER,
    TRIGGERS,
    clients_of,
    copy_package,
    peer_env,
    slim_and_compile,
)
from coldstart import trigger_env as amlproxy_env

_TOTAL = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def instructions(code: str, args: list[str], env: dict[str, str]) -> int:
    """The instructions callgrind counts for ``python -P -c code args``."""
    with tempfile.TemporaryDirectory(prefix="amlproxy-callgrind-") as tmp:
        out = Path(tmp) / "callgrind.out"
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
                        sys.executable, "-P", "-c", code, *args],
                       env=env, check=True, capture_output=True, timeout=900)
        found = _TOTAL.search(out.read_text())
    if found is None:
        raise RuntimeError(f"no instruction total in callgrind's output of {args}")
    return int(found.group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--triggers", nargs="+", choices=TRIGGERS, default=list(TRIGGERS))
    args = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    base = clean_env(PYTHONDONTWRITEBYTECODE="1")
    counts: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory(prefix="amlproxy-coldstart-") as tmp:
        package = Path(tmp) / "compiled"
        copy_package(package)
        slim_and_compile(package)
        floor = instructions("pass", [], base)
        for trigger in args.triggers:
            ours = instructions(OURS, [trigger, *clients_of(trigger)],
                                {**base, "PYTHONPATH": str(package), **amlproxy_env(trigger)})
            peer = instructions(PEER, [f"peers.powertools_{trigger}"], peer_env(base, trigger))
            counts[trigger] = {"amlproxy": ours - floor, "powertools": peer - floor}
            print(f"{trigger}: amlproxy {(ours - floor) / 1e9:.3f} G instructions, Powertools"
                  f" {(peer - floor) / 1e9:.3f} G: {(ours - floor) / (peer - floor):.3f}x",
                  flush=True)
    figures = [figure(f"cold start in instructions, {trigger}: amlproxy / Powertools handler",
                      round(c["amlproxy"] / c["powertools"], 3), "x", "reported", None,
                      f"{c['amlproxy'] / 1e9:.3f} vs {c['powertools'] / 1e9:.3f} G "
                      f"instructions (callgrind), python -c pass ({floor / 1e9:.3f} G) "
                      "subtracted") for trigger, c in counts.items()]
    write_result("coldstart_instructions", {"floor": floor, "counts": counts,
                                            "figures": figures})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
