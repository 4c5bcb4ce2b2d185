"""The ports: what the core needs from backends and sinks, as ``typing.Protocol``.

Adapters live in :mod:`amlproxy.backends` and :mod:`amlproxy.sinks`; the core never
imports them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from amlproxy.core.outcome import Outcome
from amlproxy.core.prediction import Prediction


@runtime_checkable
class Backend(Protocol):
    """A prediction endpoint.

    Records arrive validated: a mapping of attribute name to typed value (``float`` for
    NUMERIC, ``str`` for CATEGORICAL and TEXT, ``bool`` for BINARY, ``None`` for missing),
    holding the schema's feature attributes only.

    - ``predict`` scores one record.
    - ``predict_batch`` scores several and returns one Prediction per record, in order.
      It may make several calls (to respect payload limits). It raises a
      :class:`~amlproxy.errors.BackendError` if any record of the batch could not be scored.
    - ``max_batch_size`` is how many records the pipeline hands to one ``predict_batch``
      call: 1 for an endpoint that takes one record per call (Amazon ML).
    - ``io_bound`` tells the pipeline whether calls wait on the network, i.e. whether
      running them on threads helps.

    Backends apply the retry policy themselves, and report calls made in
    ``Prediction.attempts`` / ``BackendError.attempts``.
    """

    name: str
    model_id: str
    max_batch_size: int
    io_bound: bool

    def predict(self, record: Mapping[str, Any]) -> Prediction: ...

    def predict_batch(self, records: Sequence[Mapping[str, Any]]) -> list[Prediction]: ...

    def close(self) -> None: ...


@runtime_checkable
class Sink(Protocol):
    """Where outcomes go: a file, a database, a bucket, a callback.

    ``write`` receives outcomes in input order, in chunks, and may be called many times
    per run. A sink decides which statuses it keeps (results sinks take ``ok`` outcomes,
    rejects sinks take ``rejected`` and ``failed``). Writes must be keyed by
    :attr:`Outcome.key` where the medium allows, so that replaying an input adds nothing
    twice.

    ``close`` ends a successful run's output (flush, commit, make a file whole). ``abort``
    ends a failed run: discard what can be discarded (a temporary file, a multipart upload)
    so that no half output becomes visible. One of the two is called at the end of every
    run, and a sink may be written again afterwards.
    """

    name: str

    def write(self, outcomes: Sequence[Outcome]) -> None: ...

    def close(self) -> None: ...

    def abort(self) -> None: ...
