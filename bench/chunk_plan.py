"""The chunk planner's pass over an object, against the least any planner must do.

    python bench/chunk_plan.py [--mib 100] [--rounds 5]

Two inputs of census rows in memory: plain (no quote, as adult.data) and quoted (four
quoted fields a row, one of them holding a newline). For each, in interleaved rounds (a
busy machine slows both alike): :func:`amlproxy.chunks.plan.plan_stream` cutting 1 MiB
chunks, and the floor, a loop that reads the same 64 KiB blocks and counts their line
breaks (what numbering lines costs at least). Figure: the planner's process CPU divided by
the floor's, the median of the per-round ratios with their spread, and the planner's
MiB/s of CPU. Prints JSON.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import time

from amlproxy.chunks.plan import BLOCK_SIZE, plan_stream

PLAIN = (b"39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, "
         b"White, Male, 2174, 0, 40, United-States, <=50K\n")
QUOTED = (b'39, "State, gov", 77516, "Bach\nelors", 13, "Never-married", Adm-clerical, '
          b'"Not-in-family", White, Male, 2174, 0, 40, United-States, <=50K\n')


def _cpu(fn: object, data: bytes) -> float:
    started = time.process_time()
    fn(data)  # type: ignore[operator]
    return time.process_time() - started


def _plan(data: bytes) -> None:
    plan_stream(io.BytesIO(data), format="csv", chunk_bytes=1 << 20)


def _floor(data: bytes) -> None:
    stream, lines = io.BytesIO(data), 0
    while block := stream.read(BLOCK_SIZE):
        lines += block.count(b"\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    figures = {}
    for name, row in (("plain", PLAIN), ("quoted", QUOTED)):
        data = row * (args.mib * 1024 * 1024 // len(row))
        ratios, rates = [], []
        for _ in range(args.rounds):
            planner, floor = _cpu(_plan, data), _cpu(_floor, data)
            ratios.append(planner / floor)
            rates.append(len(data) / planner / 2**20)
        figures[name] = {"ratio_to_floor": round(statistics.median(ratios), 2),
                         "spread": [round(min(ratios), 2), round(max(ratios), 2)],
                         "planner_mib_per_cpu_s": round(statistics.median(rates), 1),
                         "mib": len(data) // 2**20, "rounds": args.rounds}
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
