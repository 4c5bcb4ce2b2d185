"""``amlproxy.Proxy``: the library, with the local model and with the endpoint emulator
(Amazon ML and SageMaker) over HTTP."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

import amlproxy
from amlproxy.core.outcome import Status
from amlproxy.errors import BackendError, ConfigurationError, RecordValidationError
from amlproxy.settings import load_settings
from tests.events import LambdaContext, use_env
from tests.fixtures.emulator import HIGH_INCOME_ROW, census_record


def test_import_amlproxy_stays_cheap() -> None:
    code = ("import sys, amlproxy; assert 'amlproxy.proxy' not in sys.modules; "
            "assert 'pydantic' not in sys.modules and 'boto3' not in sys.modules; "
            "from amlproxy import Proxy; assert 'amlproxy.proxy' in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert amlproxy.Proxy.__name__ == "Proxy"
    with pytest.raises(AttributeError):
        _ = amlproxy.Nothing  # type: ignore[attr-defined]


def test_local_predict_and_predict_many(monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch)
    with amlproxy.Proxy.from_env() as proxy:
        assert proxy.backend_name == "local" and proxy.schema.name == "census-income"
        low = proxy.predict(census_record())
        high = proxy.predict(census_record(HIGH_INCOME_ROW))
        assert (low.label, high.label) == ("<=50K", ">50K")

        with pytest.raises(RecordValidationError) as raised:
            proxy.predict({**census_record(), "age": "old", "sex": "?"})
        assert [e.field for e in raised.value.errors] == ["age", "sex"]

        records = [census_record(), {"age": 1}, census_record(HIGH_INCOME_ROW)]
        outcomes = proxy.predict_many(records)
        assert [o.status for o in outcomes] == [Status.OK, Status.REJECTED, Status.OK]
        assert [o.line for o in outcomes] == [1, 2, 3]
        assert outcomes[2].prediction is not None and outcomes[2].prediction.label == ">50K"
        assert outcomes[1].reasons[0].startswith("fnlwgt: missing")
    with pytest.raises(ConfigurationError, match="closed"):
        proxy.predict(census_record())


@pytest.mark.parametrize("backend", ["aml", "sagemaker"])
def test_from_env_with_the_emulator(monkeypatch: pytest.MonkeyPatch, emu: Any,
                                    backend: str) -> None:
    use_env(monkeypatch, backend=backend, aml_model_id=emu.model_id,
            aml_predict_endpoint=emu.url, sagemaker_endpoint=emu.endpoint_name,
            endpoint_url=emu.url, region="us-east-1", max_attempts=1, labels="<=50K,>50K")
    with amlproxy.Proxy.from_env() as proxy:
        prediction = proxy.predict(census_record(HIGH_INCOME_ROW))
        assert prediction.backend == backend and prediction.model_id == emu.model_id
        assert prediction.label == ">50K"
        outcomes = proxy.predict_many([census_record()] * 20)
        assert all(o.status is Status.OK for o in outcomes)

        emu.set_faults(error_rate=1.0)
        with pytest.raises(BackendError):
            proxy.predict(census_record())
        failed = proxy.predict_many([census_record(), {"age": "x"}])
        assert [o.status for o in failed] == [Status.FAILED, Status.REJECTED]
    assert emu.endpoint_counts()["requests"] >= 3


def test_explicit_options_and_settings(monkeypatch: pytest.MonkeyPatch, emu: Any) -> None:
    use_env(monkeypatch, backend="sagemaker")  # would fail alone: no endpoint name
    with amlproxy.Proxy(backend="aml", aml_model_id=emu.model_id,
                        aml_predict_endpoint=emu.url, endpoint_url=emu.url,
                        region="us-east-1") as proxy:
        assert proxy.predict(census_record()).backend == "aml"
    settings = load_settings(backend="local")
    with amlproxy.Proxy(settings=settings) as proxy:
        assert proxy.settings is settings
    with pytest.raises(ConfigurationError, match="AMLPROXY_SAGEMAKER_ENDPOINT"):
        amlproxy.Proxy.from_env()
    with pytest.raises(ConfigurationError, match="not both"):
        amlproxy.Proxy(settings=settings, backend="local")


def test_lambda_deadline_marks_unscored_records_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    use_env(monkeypatch)
    with amlproxy.Proxy.from_env() as proxy:
        proxy.set_lambda_context(LambdaContext(timeout_s=1.0), margin_s=10.0)  # time is up
        outcomes = proxy.predict_many([census_record()] * 3)
        assert [o.status for o in outcomes] == [Status.FAILED] * 3
        assert "deadline" in outcomes[0].reasons[0]
        proxy.set_lambda_context(None)  # no deadline any more
        assert proxy.predict_many([census_record()])[0].status is Status.OK
        proxy.set_lambda_context(LambdaContext(timeout_s=1.0))  # the default margin: 0.2 s
        assert proxy.predict_many([census_record()])[0].status is Status.OK
