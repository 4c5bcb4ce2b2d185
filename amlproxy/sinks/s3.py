"""S3 sink: a run's results (or rejects) as one object at a deterministic key.

The caller derives the key from the input (see :func:`output_key`), so a replay of the
same input version writes the same key: it overwrites the object, never adds a second.

The object appears whole or not at all. Rows are serialised by the core writers into a
memory buffer; a small output is sent by one ``PutObject`` at :meth:`S3Sink.close`. Once
the buffer reaches ``part_size``, a multipart upload starts and each full buffer goes up
as one part; ``close`` sends the rest as the last part and completes the upload. Both
``PutObject`` and ``CompleteMultipartUpload`` are atomic, and until then nothing is
visible. A failed run calls :meth:`S3Sink.abort` (a failed part upload aborts at once),
which aborts the multipart upload, so no parts linger either. If the process dies
before it can abort (a Lambda timeout), the parts stay invisible until the bucket's
``AbortIncompleteMultipartUpload`` lifecycle rule removes them: the bucket should have one.

Each S3 call runs under the one :class:`~amlproxy.core.retry.RetryPolicy` (throttling,
5xx, connection trouble and timeouts are retried; botocore makes one attempt per call).
The parts a run uploads while it writes stop at the invocation's deadline; what ends a
run (the commit of a run the pipeline finished, an abort) runs in the margin the deadline
leaves before the timeout, bounded by the attempt cap only.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from amlproxy.core.outcome import Outcome
from amlproxy.core.retry import Deadline, RetryPolicy, explain, stopped_by_deadline
from amlproxy.core.writers import RejectWriter, ResultWriter
from amlproxy.errors import ConfigurationError, RetriesExhaustedError, SinkError, SinkWriteError
from amlproxy.sinks._aws import aws_policy, one_attempt_config

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef

log = logging.getLogger(__name__)
T = TypeVar("T")

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3's minimum for every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
DEFAULT_PART_SIZE = 8 * MiB

_WRAP_UP = Deadline()  # never expires: ending a run happens in the deadline's margin

S3Format = Literal["jsonl", "csv"]
S3Kind = Literal["results", "rejects"]
CONTENT_TYPES: dict[str, str] = {
    "jsonl": "application/x-ndjson",
    "csv": "text/csv; charset=utf-8",
}
_CHECKSUMS = (
    "ChecksumCRC32",
    "ChecksumCRC32C",
    "ChecksumCRC64NVME",
    "ChecksumSHA1",
    "ChecksumSHA256",
)


def output_key(
    input_key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    prefix: str = "output/",
    suffix: str = ".jsonl",
) -> str:
    """The deterministic output key of an input object version.

    ``output/<input key>.<version id or etag><suffix>``: the version id when the bucket is
    versioned, else the ETag (quotes stripped), so a new upload of the same key gets a new
    output while a replay of the same upload overwrites its own. Use a different
    ``prefix`` (or ``suffix``) for rejects, and keep the output prefix out of the
    trigger's filter, or outputs would trigger runs of their own.
    """
    version = version_id or (etag.strip('"') if etag else None)
    middle = f"{input_key}.{version}" if version else input_key
    return f"{prefix}{middle}{suffix}"


def default_client() -> S3Client:
    """An S3 client that makes one attempt per call (the policy retries)."""
    import boto3  # here, not at import: the triggers make their clients from botocore

    return boto3.client("s3", config=one_attempt_config(connect_timeout=5, read_timeout=60))


class S3Sink:
    """Writes results (``ok`` outcomes) or rejects (``rejected`` and ``failed``) to one S3
    object, as JSON Lines or CSV, via the core writers.

    ``key`` should come from :func:`output_key`. ``part_size`` (at least 5 MiB) bounds
    the memory used: beyond it the object goes up as a multipart upload. ``write_empty``
    decides whether a run that produced no rows still writes its (empty) object.
    ``client`` should make one attempt per call (:func:`default_client` does);
    ``retry_policy`` gives the attempts, delays and deadline of every call.
    :meth:`close` commits the object, :meth:`abort` discards it; the sink can then be
    written again (a new run, the same key).
    """

    def __init__(
        self,
        bucket: str,
        key: str,
        *,
        format: S3Format = "jsonl",
        kind: S3Kind = "results",
        client: S3Client | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        labels: Sequence[str] | None = None,
        include_record: bool = False,
        write_empty: bool = True,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        if not bucket or not key:
            raise ConfigurationError("S3Sink needs a bucket and a key")
        if format not in CONTENT_TYPES:
            raise ConfigurationError(f"unknown S3 output format {format!r}")
        if kind not in ("results", "rejects"):
            raise ConfigurationError(f"unknown S3 output kind {kind!r}")
        if not MIN_PART_SIZE <= part_size <= MAX_PART_SIZE:
            raise ConfigurationError(f"part_size must be between 5 MiB and 5 GiB, not {part_size}")
        self.bucket = bucket
        self.key = key
        self.format: S3Format = format
        self.kind: S3Kind = kind
        self.part_size = part_size
        self.labels = labels
        self.include_record = include_record
        self.write_empty = write_empty
        self.name = f"{kind}:s3://{bucket}/{key}"
        self.count = 0  # rows of the current (or last) run
        self._client = client if client is not None else default_client()
        self._policy = aws_policy(retry_policy)
        self._buffer = io.BytesIO()
        self._writer: ResultWriter | RejectWriter | None = None
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._failed: str | None = None

    def write(self, outcomes: Sequence[Outcome]) -> None:
        if self._failed is not None:  # the rows before the failure are gone: no half object
            raise SinkError(f"{self.name}: the run already failed ({self._failed}); abort it")
        writer = self._writer or self._open()
        self.count += writer.write(outcomes)
        if self._buffer.tell() >= self.part_size:
            try:
                self._upload_part(during_run=True)
            except SinkError as exc:
                if exc.__cause__ is None or not stopped_by_deadline(exc.__cause__):
                    raise
                # the invocation's deadline stopped the run's upload (aborted: nothing is
                # published): an interruption, which the retry redoes, not failed rows
                raise SinkWriteError(self.name, str(exc), [o.key for o in outcomes],
                                     deadline=True) from exc

    def close(self) -> None:
        """Commits the object: one PutObject, or the last part and CompleteMultipartUpload."""
        writer = self._writer or self._open()
        try:
            writer.close()
            if self._upload_id is not None:
                if self._buffer.tell() or not self._parts:
                    self._upload_part()
                self._call(
                    "complete the multipart upload of",
                    lambda: self._client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=self.key,
                        UploadId=self._upload_id or "",
                        MultipartUpload={"Parts": self._parts},
                    ),
                )
            elif self.count or self.write_empty:
                body = self._buffer.getvalue()
                self._call(
                    "put",
                    lambda: self._client.put_object(
                        Bucket=self.bucket,
                        Key=self.key,
                        Body=body,
                        ContentType=CONTENT_TYPES[self.format],
                    ),
                )
        except BaseException:
            self._abort_quietly()
            raise
        self._reset()

    def abort(self) -> None:
        """Discards the run: aborts a multipart upload in progress, drops the buffer. The
        object already at the key (a previous run's) is left as it was."""
        upload_id, self._upload_id = self._upload_id, None
        self._reset()
        self._failed = None
        if upload_id is not None:
            self._call(
                "abort the multipart upload of",
                lambda: self._client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id
                ),
            )

    # ---------------------------------------------------------------- internals

    def _open(self) -> ResultWriter | RejectWriter:
        self.count = 0
        kind = ResultWriter if self.kind == "results" else RejectWriter
        self._writer = kind(
            self._buffer, format=self.format, labels=self.labels, include_record=self.include_record
        )
        return self._writer

    def _upload_part(self, *, during_run: bool = False) -> None:
        """Sends the buffer as the next part (starting the multipart upload if needed);
        ``during_run``: a write's, which the deadline stops."""
        try:
            if self._upload_id is None:
                created = self._call(
                    "start a multipart upload of",
                    lambda: self._client.create_multipart_upload(
                        Bucket=self.bucket, Key=self.key, ContentType=CONTENT_TYPES[self.format]
                    ),
                    during_run=during_run,
                )
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            body = self._buffer.getvalue()
            answer = self._call(
                f"upload part {number} of",
                lambda: self._client.upload_part(
                    Bucket=self.bucket,
                    Key=self.key,
                    UploadId=self._upload_id or "",
                    PartNumber=number,
                    Body=body,
                ),
                during_run=during_run,
            )
        except BaseException as exc:
            self._abort_quietly()
            self._failed = str(exc) or type(exc).__name__
            raise
        part: dict[str, Any] = {"ETag": answer["ETag"], "PartNumber": number}
        for name in _CHECKSUMS:
            if answer.get(name):
                part[name] = answer[name]  # type: ignore[literal-required]
        self._parts.append(part)  # type: ignore[arg-type]
        self._buffer.seek(0)
        self._buffer.truncate()

    def _call(self, action: str, call: Callable[[], T], *, during_run: bool = False) -> T:
        try:
            return self._policy.run(call, deadline=None if during_run else _WRAP_UP)
        except (ClientError, BotoCoreError, RetriesExhaustedError) as exc:
            raise SinkError(
                f"cannot {action} s3://{self.bucket}/{self.key}: {explain(exc)}"
            ) from exc

    def _abort_quietly(self) -> None:
        try:
            self.abort()
        except SinkError:  # the error that made us abort matters more
            log.exception("%s: aborting the upload failed", self.name)

    def _reset(self) -> None:
        self._buffer = io.BytesIO()
        self._writer = None
        self._upload_id = None
        self._parts = []
