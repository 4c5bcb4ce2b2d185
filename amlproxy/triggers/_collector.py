"""The garbage collector after Lambda's init: what init built frozen out of its
generations, and its first generation collected less often.

What init built (botocore's endpoint data, pydantic's validators, the pipeline) lives as
long as the process. :func:`gc.freeze` takes it out of the collector's generations, so
that the full collections during invocations do not walk it: about 2.7 us of 15 us of CPU
per record at 500 records per SageMaker call (``bench/sagemaker_batch.py`` with
``--gc-freeze`` or without).

An invocation then allocates far more than it keeps cyclic garbage: a batch of 500
records makes thousands of dicts, rows, predictions and outcomes, freed by their reference
counts, yet every 700 allocations (CPython's default first threshold) the collector walks
the young ones, and promotes a unit's records that are still in flight into the older
generations that it walks again later. A first threshold of 50,000 cuts 3-4% of the CPU
of the SageMaker multi-record path: the instructions of ``bench/sagemaker_batch.py``'s
amlproxy job (30,000 rows, 500 per call, concurrency 32), counted by
``valgrind --tool=callgrind``, were 3.30-3.34 G per run with the default thresholds,
3.20 G with these and 3.19 G with the collector off. Cyclic garbage (a botocore error's
traceback, say) still goes at the next collection: memory stays bounded.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 100)


def after_init() -> None:
    """Freezes what exists now and sets :data:`THRESHOLDS` (called at the end of the
    Lambda init phase; the benchmarks call it where the triggers would)."""
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
