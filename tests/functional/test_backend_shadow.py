"""ShadowBackend: Amazon ML (emulator) as primary, compared with SageMaker (emulator) or
the local model, over real HTTP."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from amlproxy.backends.aml import AmlBackend
from amlproxy.backends.local import LocalBackend
from amlproxy.backends.sagemaker import SageMakerBackend
from amlproxy.backends.shadow import ShadowBackend, score_difference
from amlproxy.core.ports import Backend
from amlproxy.core.prediction import Prediction
from amlproxy.core.retry import RetryPolicy
from amlproxy.errors import InvalidRecordError, RetriesExhaustedError
from amlproxy.localmodel import load_bundled
from tests.functional.test_retry_under_faults import census_records

LABELS = ("<=50K", ">50K")
MODEL = load_bundled()


def policy(max_attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(max_attempts=max_attempts, base_delay_s=0.001, max_delay_s=0.005)


def aml(emu: Any, **kwargs: Any) -> AmlBackend:
    return AmlBackend(emu.model_id, predict_endpoint=emu.url, endpoint_url=emu.url,
                      labels=LABELS, retry_policy=policy(), **kwargs)


def sagemaker(emu: Any, name: str | None = None, **kwargs: Any) -> SageMakerBackend:
    return SageMakerBackend(name or emu.endpoint_name, schema_feature_names=MODEL.feature_names,
                            labels=LABELS, endpoint_url=emu.url, retry_policy=policy(), **kwargs)


def test_aml_and_sagemaker_agree_on_the_same_model(emu: Any) -> None:
    records = census_records(100)
    shadow = ShadowBackend(aml(emu), sagemaker(emu))
    assert isinstance(shadow, Backend)
    assert shadow.max_batch_size == 1 and shadow.model_id == emu.model_id
    predictions = shadow.predict_batch(records)
    shadow.close()
    for record, prediction in zip(records, predictions, strict=True):
        assert prediction.backend == "aml"
        assert prediction.label == MODEL.predict(record)[0]
        info = prediction.extra["shadow"]
        assert info["label"] == prediction.label and info["agree"] is True
        assert info["error"] is None and info["score_diff"] < 1e-9
    report = shadow.report()
    assert report["compared"] == 100 and report["agreed"] == 100
    assert report["agreement_rate"] == 1.0 and report["shadow_errors"] == 0
    assert report["max_abs_score_diff"] < 1e-9
    assert shadow.summary()["shadow_comparison"] == report


def test_disagreements_are_counted(emu: Any) -> None:
    """A shadow with a lower threshold labels more records positive: those disagree."""
    records = census_records(120)
    shadow = ShadowBackend(aml(emu), sagemaker(emu, threshold=0.2), parallel=False)
    predictions = shadow.predict_batch(records)
    shadow.close()
    expected = sum(0.2 <= MODEL.predict_proba(r) < 0.5 for r in records)
    assert expected > 0
    disagreeing = [p for p in predictions if not p.extra["shadow"]["agree"]]
    assert len(disagreeing) == expected
    assert all(p.extra["shadow"]["label"] == ">50K" != p.label for p in disagreeing)
    report = shadow.report()
    assert report["compared"] == 120 and report["label_mismatches"] == expected
    assert report["agreement_rate"] == pytest.approx((120 - expected) / 120)


def test_score_tolerance_decides_agreement_when_labels_match() -> None:
    def pred(p: float) -> Prediction:
        label = ">50K" if p >= 0.5 else "<=50K"
        return Prediction(label, {"<=50K": 1 - p, ">50K": p}, None, "x", "m", 1.0)

    assert score_difference(pred(0.9), pred(0.8)) == pytest.approx(0.1)
    assert score_difference(pred(0.9), Prediction("1", {"1": 0.9}, None, "y", "m", 1.0)) is None
    regression = Prediction(None, {}, 3.0, "x", "m", 1.0)
    assert score_difference(regression, Prediction(None, {}, 3.5, "y", "m", 1.0)) == 0.5


def test_a_failing_shadow_never_fails_a_record(emu: Any) -> None:
    records = census_records(10)
    shadow = ShadowBackend(aml(emu), sagemaker(emu, name="no-such-endpoint"))
    predictions = shadow.predict_batch(records)
    shadow.close()
    assert [p.label for p in predictions] == [MODEL.predict(r)[0] for r in records]
    for prediction in predictions:
        info = prediction.extra["shadow"]
        assert info["agree"] is False and info["label"] is None
        assert "not found" in info["error"]
    report = shadow.report()
    assert report["shadow_errors"] == 10 and report["compared"] == 0
    assert "not found" in report["last_shadow_error"]


def test_a_failing_primary_fails_the_record(emu: Any) -> None:
    emu.set_faults(target=emu.model_id, throttle_rate=1.0)
    shadow = ShadowBackend(aml(emu), LocalBackend())
    with pytest.raises(RetriesExhaustedError):
        shadow.predict(census_records(1)[0])
    emu.reset()
    with pytest.raises(InvalidRecordError):
        shadow.predict({**census_records(1)[0], "age": "forty"})
    shadow.close()
    assert shadow.report()["compared"] == 0


def test_migrating_to_the_local_model_from_many_threads(emu: Any) -> None:
    """The pipeline's shape: AML primary, local shadow, 8 threads, one record per call."""
    records = census_records(400)
    shadow = ShadowBackend(aml(emu, concurrency=8), LocalBackend())
    assert shadow.io_bound
    with ThreadPoolExecutor(8) as pool:
        predictions = list(pool.map(shadow.predict, records))
    shadow.close()
    assert all(p.extra["shadow"]["agree"] for p in predictions)
    report = shadow.report()
    assert report["compared"] == 400 and report["agreed"] == 400
    assert report["primary"] == f"aml:{emu.model_id}"
    assert report["shadow"] == "local:census-income"
