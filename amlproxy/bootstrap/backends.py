"""The backend the settings name, and the one retry policy it runs under (part of the
composition root, :mod:`amlproxy.bootstrap`)."""

from __future__ import annotations

from amlproxy.core.ports import Backend
from amlproxy.core.retry import Deadline, RetryPolicy
from amlproxy.core.schema import Schema
from amlproxy.settings import Settings


def build_retry_policy(settings: Settings, deadline: Deadline | None = None) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=settings.max_attempts,
        base_delay_s=settings.retry_base_delay_s,
        max_delay_s=settings.retry_max_delay_s,
        deadline=deadline if deadline is not None else Deadline(),
    )


def build_backend(
    settings: Settings,
    schema: Schema,
    *,
    kind: str | None = None,
    deadline: Deadline | None = None,
    labels: tuple[str, ...] | None = None,
) -> Backend:
    """The backend named by ``kind`` (default: ``settings.backend``); ``labels`` (default
    ``settings.labels``) names the classes of answers that do not name them."""
    kind = kind or settings.backend
    labels = labels or settings.labels
    if kind == "local":
        from amlproxy.backends.local import LocalBackend

        return LocalBackend(model_path=settings.local_model)
    policy = build_retry_policy(settings, deadline)
    if kind == "sagemaker":
        from amlproxy.backends.sagemaker import SageMakerBackend

        assert settings.sagemaker_endpoint is not None  # checked by Settings
        return SageMakerBackend(
            settings.sagemaker_endpoint,
            schema_feature_names=schema.feature_names,
            content_type=settings.sagemaker_content_type,
            target_variant=settings.sagemaker_target_variant,
            target_model=settings.sagemaker_target_model,
            inference_component_name=settings.sagemaker_inference_component,
            custom_attributes=settings.sagemaker_custom_attributes,
            labels=labels,
            max_batch_size=settings.sagemaker_max_batch,
            concurrency=settings.concurrency,
            retry_policy=policy,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
        )
    if kind == "aml":
        from amlproxy.backends.aml import AmlBackend

        assert settings.aml_model_id is not None  # checked by Settings
        return AmlBackend(
            settings.aml_model_id,
            predict_endpoint=settings.aml_predict_endpoint or settings.endpoint_url,
            discover_endpoint=settings.aml_discover_endpoint,
            rate_limit_rps=aml_rate_cap(settings),
            labels=(labels[0], labels[1]) if labels and len(labels) == 2 else None,
            concurrency=settings.concurrency,
            retry_policy=policy,
            region=settings.region,
            endpoint_url=settings.endpoint_url,
        )
    if kind == "shadow":
        return build_shadow_backend(settings, schema, deadline=deadline)
    raise AssertionError(f"unknown backend {kind!r}")  # Settings only admits the above


def aml_rate_cap(settings: Settings) -> float | None:
    """The requests/s cap of the Amazon ML client: the lower of the endpoint's
    (AMLPROXY_AML_RATE_LIMIT_RPS) and this worker's share (AMLPROXY_AML_MAX_RPS)."""
    caps = [c for c in (settings.aml_rate_limit_rps, settings.aml_max_rps) if c is not None]
    return min(caps) if caps else None


def build_shadow_backend(
    settings: Settings, schema: Schema, *, deadline: Deadline | None = None
) -> Backend:
    """Primary and shadow with the same class names, so that their answers compare:
    ``AMLPROXY_LABELS``, else the schema's target categories, else Amazon ML's
    ``GetMLModel`` (see :mod:`amlproxy.backends.labels`)."""
    from amlproxy.backends.labels import schema_target_labels
    from amlproxy.backends.shadow import ShadowBackend

    assert settings.shadow_backend is not None  # checked by Settings
    kinds = (settings.shadow_primary, settings.shadow_backend)
    labels = settings.labels or schema_target_labels(schema)
    ready: dict[str, Backend] = {}
    if labels is None and "aml" in kinds:
        from amlproxy.backends.aml import AmlBackend

        aml = build_backend(settings, schema, kind="aml", deadline=deadline)
        assert isinstance(aml, AmlBackend)
        found = aml.model_labels()
        if found is not None:
            aml.labels, labels = found, found
        ready["aml"] = aml
    primary, shadow = (
        ready.pop(kind) if kind in ready
        else build_backend(settings, schema, kind=kind, deadline=deadline, labels=labels)
        for kind in kinds
    )
    return ShadowBackend(primary, shadow)
