"""``amlproxy.Proxy``: the validating, retrying front as a library, e.g. inside another
Lambda function.

::

    from amlproxy import Proxy

    proxy = Proxy.from_env()                      # AMLPROXY_* variables
    proxy = Proxy(backend="sagemaker", sagemaker_endpoint="census-income")
    prediction = proxy.predict({"age": 39, ...})  # RecordValidationError / BackendError
    outcomes = proxy.predict_many(records)        # never raises for a bad record

Build it once (module level, outside the handler) and reuse it: the backend's clients,
connection pool and worker threads live as long as the proxy. Inside a Lambda handler,
``proxy.set_lambda_context(context)`` makes the retries stop before the invocation's
timeout. A proxy serves one caller thread at a time (``predict_many`` fans out itself).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from amlproxy.bootstrap import build_pipeline
from amlproxy.core.outcome import Outcome, Status
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import Deadline
from amlproxy.core.schema import Schema
from amlproxy.errors import ConfigurationError, FieldError
from amlproxy.settings import Settings, load_settings

__all__ = ["Proxy"]


class Proxy:
    """Validates records against the schema and scores them on the configured backend.

    ``Proxy(settings=...)`` uses the given settings as they are; ``Proxy(**options)``
    reads the ``AMLPROXY_*`` variables and lets ``options`` (settings field names:
    ``backend``, ``sagemaker_endpoint``, ``aml_model_id``, ``endpoint_url``,
    ``schema_name``, ``max_attempts``...) override them. Configuration errors raise one
    :class:`~amlproxy.errors.ConfigurationError` listing every problem.
    """

    def __init__(self, *, settings: Settings | None = None, **options: Any) -> None:
        if settings is not None and options:
            raise ConfigurationError("Proxy takes settings= or keyword options, not both")
        self.settings = settings if settings is not None else load_settings(**options)
        self._deadline = Deadline()
        self._pipeline = build_pipeline(self.settings, deadline=self._deadline)
        self._closed = False

    @classmethod
    def from_env(cls, **overrides: Any) -> Proxy:
        """A proxy configured by the ``AMLPROXY_*`` environment variables (``overrides``
        win over them)."""
        return cls(settings=load_settings(**overrides))

    @property
    def schema(self) -> Schema:
        """The record schema (``schema.json_schema()`` describes a valid record)."""
        return self._pipeline.schema

    @property
    def backend_name(self) -> str:
        return self._pipeline.backend.name

    def set_lambda_context(self, context: Any, *, margin_s: float | None = None) -> None:
        """Stop retrying ``margin_s`` (default: AMLPROXY_DEADLINE_MARGIN_S) before the
        Lambda invocation of ``context`` times out; ``None`` removes the deadline."""
        margin = self.settings.deadline_margin_s if margin_s is None else margin_s
        self._deadline.set_from_lambda_context(context, margin_s=margin)

    def predict(self, record: Mapping[str, Any]) -> Prediction:
        """Validate and score one record.

        Raises :class:`~amlproxy.errors.RecordValidationError` naming every bad field, or
        a :class:`~amlproxy.errors.BackendError` when the endpoint fails (after retries).
        """
        self._check_open()
        features = self._pipeline.schema.validate(record)
        return self._pipeline.backend.predict(features)

    def predict_many(self, records: Sequence[Mapping[str, Any]], *, source: str = "proxy"
                     ) -> list[Outcome]:
        """Validate and score records in batches, concurrently; one
        :class:`~amlproxy.core.outcome.Outcome` per record, in order (``line`` is the
        1-based position). Bad records are ``rejected``; backend failures, and records
        the deadline left unscored, ``failed``; each with its reasons. Never raises for
        a record."""
        self._check_open()
        scored, _report = self._pipeline.score_records(records, source=source)
        # Placed by line: the pipeline may yield a unit's rejects before its scored rows.
        outcomes: list[Outcome | None] = [None] * len(records)
        for outcome in scored:
            outcomes[outcome.line - 1] = outcome
        unscored = (FieldError(None, "not scored: the deadline came first"),)
        return [
            o if o is not None
            else Outcome(source, i, Status.FAILED, records[i - 1], None, errors=unscored)
            for i, o in enumerate(outcomes, start=1)
        ]

    def close(self) -> None:
        """Release the backend (clients, threads). Idempotent."""
        if not self._closed:
            self._closed = True
            self._pipeline.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError("this Proxy is closed")

    def __enter__(self) -> Proxy:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Proxy(backend={self.backend_name!r}, schema={self.schema.name!r})"
