"""How large a chunk is: ``AMLPROXY_CHUNK_BYTES``, else a third of the function's timeout at
the backend's throughput, so that a chunk worker finishes its chunk with time to spare
(a kill or a slow endpoint then costs a redo of one third of an invocation at most).

Default throughputs, in input bytes per second for one worker, from ``make bench``
(bench/results/summary.md, 2026-12-02, 2 CPUs, the emulator at 20 ms latency, concurrency
32) times 122 bytes, the mean row of examples/census-income-sample.csv (rows of
``adult.data``):

- ``aml``: the S3 handler's AML path scored 298 rows/s: 36,000 B/s;
- ``sagemaker``: the multi-record path 4,104 rows/s: 500,000 B/s;
- ``local``: about 30,000 rows/s on one core (README): 3,600,000 B/s;
- ``shadow``: calls both, bound by the slower (AML): 36,000 B/s.

``AMLPROXY_CHUNK_THROUGHPUT_BPS`` replaces the figure for a faster or slower endpoint.
The result is clamped to [256 KiB, 512 MiB].
"""

from __future__ import annotations

from amlproxy.settings import Settings

KiB = 1024
MIN_CHUNK_BYTES = 256 * KiB
MAX_CHUNK_BYTES = 512 * KiB * KiB
THROUGHPUT_BPS = {"aml": 36_000.0, "sagemaker": 500_000.0, "local": 3_600_000.0,
                  "shadow": 36_000.0}
SHARE_OF_TIMEOUT = 1 / 3


def chunk_bytes(settings: Settings, remaining_s: float | None) -> int:
    """The chunk size: the setting, else derived from the timeout (the setting, else
    ``remaining_s``, the time left when the invocation started; 900 s without either)."""
    if settings.chunk_bytes is not None:
        return settings.chunk_bytes
    timeout = settings.function_timeout_s or remaining_s or 900.0
    rate = settings.chunk_throughput_bps or THROUGHPUT_BPS[settings.backend]
    wanted = int(timeout * SHARE_OF_TIMEOUT * rate)
    return max(MIN_CHUNK_BYTES, min(MAX_CHUNK_BYTES, wanted))
