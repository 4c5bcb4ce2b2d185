"""What the chunk room passes around: the chunk message, the object it belongs to, and the
keys of the chunk objects.

A chunk message is the JSON body of one SQS message (see docs/scaling.md)::

    {"amlproxy": "chunk", "v": 1, "bucket": ..., "key": ..., "version": ..., "etag": ...,
     "index": i, "count": n, "start": byte_offset, "end": byte_offset_exclusive,
     "first_line": n, "header": "<csv header line>" | null, "format": "csv" | "jsonl"}

Chunk objects, in the output bucket, keyed by (object version, chunk index), so that a
redone chunk overwrites its own::

    <chunk prefix><stem>.<version>/<index:06d>.results.jsonl
    <chunk prefix><stem>.<version>/<index:06d>.rejects.jsonl
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal
from urllib.parse import quote

import orjson

from amlproxy.chunks.plan import Plan, PlanFormat, Span

KIND = "chunk"
VERSION = 1
ChunkKind = Literal["results", "rejects"]


@dataclass(frozen=True, slots=True)
class ObjectVersion:
    """The object a plan is of: bucket, key (decoded), version id and ETag (unquoted)."""

    bucket: str
    key: str
    version: str | None = None
    etag: str | None = None

    @property
    def source(self) -> str:
        """The source id of its records and of its completion item:
        ``s3://bucket/key`` (``?versionId=...``)."""
        base = f"s3://{self.bucket}/{self.key}"
        return f"{base}?versionId={quote(self.version, safe='')}" if self.version else base

    @property
    def plan_id(self) -> str:
        """The key of its completion item: the source id, with ``?etag=`` when the bucket
        is not versioned (a new upload of the key is another object to plan)."""
        if self.version or not self.etag:
            return self.source
        return f"{self.source}?etag={quote(self.etag, safe='')}"

    @property
    def tag(self) -> str | None:
        """What names this version in output keys: the version id, else the ETag."""
        return self.version or self.etag

    def get_request(self) -> dict[str, Any]:
        """The GetObject arguments that read this version and no other."""
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self.key}
        if self.version:
            request["VersionId"] = self.version
        elif self.etag:
            request["IfMatch"] = self.etag
        return request


@dataclass(frozen=True, slots=True)
class ChunkMessage:
    """One chunk of one object version: the body of a message to the chunk worker."""

    bucket: str
    key: str
    version: str | None
    etag: str | None
    index: int
    count: int
    start: int
    end: int
    first_line: int
    header: str | None
    format: PlanFormat

    @property
    def object(self) -> ObjectVersion:
        return ObjectVersion(self.bucket, self.key, self.version, self.etag)

    def to_json(self) -> str:
        return orjson.dumps({"amlproxy": KIND, "v": VERSION, **asdict(self)}).decode()

    @classmethod
    def of_plan(cls, obj: ObjectVersion, plan: Plan, fmt: PlanFormat) -> list[ChunkMessage]:
        """The messages of every chunk of ``plan``."""
        count = len(plan.spans)
        return [cls.of_span(obj, span, count, plan.header, fmt) for span in plan.spans]

    @classmethod
    def of_span(cls, obj: ObjectVersion, span: Span, count: int, header: str | None,
                fmt: PlanFormat) -> ChunkMessage:
        return cls(obj.bucket, obj.key, obj.version, obj.etag, span.index, count,
                   span.start, span.end, span.first_line, header, fmt)


def is_chunk_body(body: str) -> bool:
    """Whether an SQS body looks like a chunk message (cheap: no full parse)."""
    return '"amlproxy"' in body and f'"{KIND}"' in body and _doc(body) is not None


def _doc(body: str) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and doc.get("amlproxy") == KIND else None


def parse_chunk(body: str) -> ChunkMessage:
    """The chunk message of an SQS body; ValueError naming what is wrong otherwise."""
    doc = _doc(body)
    if doc is None:
        raise ValueError("the body is not a chunk message")
    if doc.get("v") != VERSION:
        raise ValueError(f"chunk message version {doc.get('v')!r} (expected {VERSION})")
    fmt = doc.get("format")
    if fmt not in ("csv", "jsonl"):
        raise ValueError(f"format must be 'csv' or 'jsonl', not {fmt!r}")
    message = ChunkMessage(
        _text(doc, "bucket"), _text(doc, "key"), _optional(doc, "version"),
        _optional(doc, "etag"), _number(doc, "index"), _number(doc, "count"),
        _number(doc, "start"), _number(doc, "end"), _number(doc, "first_line"),
        _optional(doc, "header"), "csv" if fmt == "csv" else "jsonl",
    )
    if not (message.index < message.count and message.start < message.end
            and message.first_line >= 1):
        raise ValueError("index < count, start < end and first_line >= 1 must hold")
    return message


def _text(doc: dict[str, Any], name: str) -> str:
    value = doc.get(name)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string")
    return value


def _optional(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"{name} must be a string or null")
    return value


def _number(doc: dict[str, Any], name: str) -> int:
    value = doc.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be a whole number >= 0")
    return value


def chunk_dir(prefix: str, stem: str, tag: str | None) -> str:
    """The key prefix of an object version's chunk objects (ends with ``/``)."""
    middle = f"{stem}.{tag}" if tag else stem
    return f"{prefix}{middle}/"


def chunk_key(directory: str, index: int, kind: ChunkKind) -> str:
    """The key of chunk ``index``'s results or rejects object."""
    return f"{directory}{index:06d}.{kind}.jsonl"


RESULTS_SUFFIX = ".predictions.jsonl"
REJECTS_SUFFIX = ".rejects.jsonl"


@dataclass(frozen=True, slots=True)
class Layout:
    """Where the outputs of an input object go: the output bucket (None: the input's),
    the prefixes of the inputs, results, rejects and chunk objects."""

    output_bucket: str | None
    input_prefix: str
    output_prefix: str
    rejects_prefix: str
    chunk_prefix: str

    def stem(self, key: str) -> str:
        """The key minus the input prefix (as it is when the key is outside it)."""
        prefix = self.input_prefix
        return key[len(prefix):] if prefix and key.startswith(prefix) else key

    def bucket(self, obj: ObjectVersion) -> str:
        return self.output_bucket or obj.bucket

    def final_keys(self, obj: ObjectVersion) -> tuple[str, str]:
        """The results and rejects keys of ``obj`` (those of the direct path)."""
        from amlproxy.sinks.s3 import output_key

        stem, tag = self.stem(obj.key), obj.tag
        return (output_key(stem, version_id=tag, prefix=self.output_prefix,
                           suffix=RESULTS_SUFFIX),
                output_key(stem, version_id=tag, prefix=self.rejects_prefix,
                           suffix=REJECTS_SUFFIX))

    def chunk_dir(self, obj: ObjectVersion) -> str:
        return chunk_dir(self.chunk_prefix, self.stem(obj.key), obj.tag)
