"""The progress of objects scored in chunks, read from the chunk table (``ChunkTable`` of
the SAM template; its items are written by :mod:`amlproxy.chunks.store`)::

    object   S   s3://bucket/key?versionId=...      chunks   N   how many chunks
    done     NS  the indexes of the chunks done     status   S   planned | assembled
    counts   M   index -> {total, ok, rejected, failed}
    total, ok, rejected, failed  N   (once assembled)   results, rejects  S  output URIs

``amlproxy local progress [S3-URI]`` and ``amlproxy local status`` print it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

COUNTS = ("total", "ok", "rejected", "failed")


@dataclass(frozen=True)
class ObjectProgress:
    """One object version's plan and how far its chunks are."""

    object: str
    chunks: int
    done: int
    status: str
    counts: dict[str, int] = field(default_factory=dict)  # over the chunks done (or all)
    outputs: dict[str, str] = field(default_factory=dict)  # results / rejects URIs

    @property
    def percent(self) -> float:
        return 100.0 * self.done / self.chunks if self.chunks else 100.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "percent": round(self.percent, 1)}


def _value(attribute: Mapping[str, Any]) -> Any:
    """A DynamoDB attribute value (the low-level client's form) as plain Python."""
    ((kind, value),) = attribute.items()
    if kind == "N":
        number = float(value)
        return int(number) if number.is_integer() else number
    if kind in ("NS", "SS"):
        return [_value({kind[0]: v}) for v in value]
    if kind == "M":
        return {k: _value(v) for k, v in value.items()}
    if kind == "L":
        return [_value(v) for v in value]
    return value


def from_item(item: Mapping[str, Any]) -> ObjectProgress:
    """An item of the chunk table as :class:`ObjectProgress`."""
    plain = {name: _value(attribute) for name, attribute in item.items()}
    done = plain.get("done") or []
    per_chunk = plain.get("counts") or {}
    if all(name in plain for name in COUNTS):  # assembled: the totals over every chunk
        counts = {name: int(plain[name]) for name in COUNTS}
    else:
        counts = {name: sum(int(c.get(name, 0)) for c in per_chunk.values()
                            if isinstance(c, dict)) for name in COUNTS}
    return ObjectProgress(
        object=str(plain.get("object", "")), chunks=int(plain.get("chunks", 0)),
        done=len(set(done)), status=str(plain.get("status", "?")), counts=counts,
        outputs={k: str(plain[k]) for k in ("results", "rejects") if k in plain})


def matches(progress: ObjectProgress, uri: str | None) -> bool:
    """Is ``progress`` about the object ``uri`` (``s3://bucket/key``, any version, or
    one version with ``?versionId=``)? None matches every object."""
    if uri is None:
        return True
    return progress.object == uri or progress.object.startswith(uri + "?")


def read_progress(dynamodb: Any, table: str, uri: str | None = None) -> list[ObjectProgress]:
    """The objects of the chunk ``table`` (those of ``uri`` only, when given), by name."""
    found: list[ObjectProgress] = []
    kwargs: dict[str, Any] = {"TableName": table, "ConsistentRead": True}
    while True:
        page = dynamodb.scan(**kwargs)
        found += [p for p in map(from_item, page.get("Items", [])) if matches(p, uri)]
        if "LastEvaluatedKey" not in page:
            return sorted(found, key=lambda p: p.object)
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def progress_lines(objects: Iterable[ObjectProgress | Mapping[str, Any]]) -> list[str]:
    """One line per object: chunks done out of all, status and counts."""
    rows = [o if isinstance(o, ObjectProgress) else ObjectProgress(**{
        k: v for k, v in o.items() if k != "percent"}) for o in objects]
    if not rows:
        return ["  no object scored in chunks yet"]
    lines = [f"  {'chunks':>13} {'status':<10} " + " ".join(f"{c:>9}" for c in COUNTS)
             + "  object"]
    for row in rows:
        done = f"{row.done}/{row.chunks} {row.percent:3.0f}%"
        lines.append(f"  {done:>13} {row.status:<10} " + " ".join(
            f"{row.counts.get(c, 0):>9}" for c in COUNTS) + f"  {row.object}")
        lines += [f"  {'':>13} {name:<10} {uri}" for name, uri in sorted(row.outputs.items())]
    return lines
