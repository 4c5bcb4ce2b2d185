"""Large objects in chunks: one room that reads top to bottom.

1. :mod:`~amlproxy.chunks.plan` cuts an object into byte ranges at record boundaries
   (one streamed pass, CSV-quote aware); :mod:`~amlproxy.chunks.sizing` says how large;
2. :mod:`~amlproxy.chunks.fanout` records the plan (:mod:`~amlproxy.chunks.store`, the
   completion item) and sends one SQS message per chunk
   (:mod:`~amlproxy.chunks.messages`);
3. :mod:`~amlproxy.chunks.work` scores one chunk into two chunk objects and marks it done;
4. :mod:`~amlproxy.chunks.assemble` joins the chunk objects into the final results and
   rejects, once every chunk is done, and cleans up.

The triggers (:mod:`amlproxy.triggers.s3`, the planner, and
:mod:`amlproxy.triggers.chunks`, the worker) only route events here; the composition root
(:func:`amlproxy.bootstrap.build_chunk_room`) builds the pieces in the init phase. The
core imports nothing of this package.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # (importing a module of the room, its messages say, imports no other)
    from amlproxy.chunks.fanout import Planner
    from amlproxy.chunks.messages import Layout
    from amlproxy.chunks.work import ChunkWorker

__all__ = ["ChunkRoom"]


@dataclass
class ChunkRoom:
    """The chunk flow of one process: the planner (None without a chunk queue), the worker
    and the output layout."""

    planner: Planner | None
    worker: ChunkWorker
    layout: Layout
