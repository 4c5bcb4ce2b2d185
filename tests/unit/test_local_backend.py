"""The local backend: the Backend port over the bundled pure-Python model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from amlproxy.backends.local import LocalBackend
from amlproxy.core.ports import Backend
from amlproxy.core.prediction import Prediction
from amlproxy.errors import ConfigurationError, InvalidRecordError
from amlproxy.localmodel import LogisticModel, bundled_model_path, load_bundled


def person(**changes: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "age": 39.0,
        "workclass": "State-gov",
        "fnlwgt": 77516.0,
        "education": "Bachelors",
        "education-num": 13.0,
        "marital-status": "Never-married",
        "occupation": "Adm-clerical",
        "relationship": "Not-in-family",
        "race": "White",
        "sex": "Male",
        "capital-gain": 2174.0,
        "capital-loss": 0.0,
        "hours-per-week": 40.0,
        "native-country": "United-States",
    }
    record.update(changes)
    return record


@pytest.fixture
def backend() -> LocalBackend:
    return LocalBackend()


def test_satisfies_the_backend_port(backend: LocalBackend) -> None:
    assert isinstance(backend, Backend)
    assert backend.name == "local"
    assert backend.io_bound is False
    assert backend.model_id == "census-income"
    assert backend.max_batch_size == 512
    assert LocalBackend(max_batch_size=7).max_batch_size == 7


def test_predict_normalises_the_model_answer(backend: LocalBackend) -> None:
    record = person(**{"capital-gain": 14084.0, "marital-status": "Married-civ-spouse"})
    prediction = backend.predict(record)
    label, scores = load_bundled().predict(record)
    assert isinstance(prediction, Prediction)
    assert prediction.label == label == ">50K"
    assert prediction.scores == scores
    assert prediction.value is None
    assert (prediction.backend, prediction.model_id, prediction.attempts) == (
        "local",
        "census-income",
        1,
    )
    assert prediction.latency_ms >= 0.0
    assert prediction.to_dict()["scores"] == scores


def test_batch_keeps_the_order(backend: LocalBackend) -> None:
    records = [
        person(age=float(age), **{"hours-per-week": h})
        for age in range(20, 70, 7)
        for h in ("20", "45", "?")
    ]
    expected = [backend.predict(r).scores[">50K"] for r in records]
    assert len(set(expected)) == len(records)  # all different, so order shows
    batch = backend.predict_batch(records)
    assert [p.scores[">50K"] for p in batch] == expected
    reversed_batch = backend.predict_batch(records[::-1])
    assert [p.scores[">50K"] for p in reversed_batch] == expected[::-1]
    assert len({p.latency_ms for p in batch}) == 1  # the batch's time, shared
    assert backend.predict_batch([]) == []


def test_unscorable_record_is_an_invalid_record_error(backend: LocalBackend) -> None:
    with pytest.raises(InvalidRecordError) as caught:
        backend.predict(person(age="thirty-nine"))
    assert caught.value.code == "InvalidInput"
    assert not caught.value.retryable
    assert "age" in str(caught.value)
    records = [person(), person(), person(**{"capital-gain": "lots"}), person()]
    with pytest.raises(InvalidRecordError, match=r"record 3 of the batch: capital-gain"):
        backend.predict_batch(records)


def test_model_sources(tmp_path: Path) -> None:
    model = LogisticModel.load(bundled_model_path())
    assert LocalBackend(model).model is model
    data = json.loads(bundled_model_path().read_text(encoding="utf-8"))
    data["name"] = "census-income-copy"
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps(data), encoding="utf-8")
    from_path = LocalBackend(model_path=str(copy))
    assert from_path.model_id == "census-income-copy"
    assert from_path.predict(person()).scores == LocalBackend().predict(person()).scores
    with pytest.raises(ConfigurationError):
        LocalBackend(model, model_path=str(copy))
    with pytest.raises(ConfigurationError):
        LocalBackend(model_path=str(tmp_path / "absent.json"))
    with pytest.raises(ConfigurationError):
        LocalBackend(max_batch_size=0)


def test_close_is_harmless(backend: LocalBackend) -> None:
    backend.close()
    backend.close()
