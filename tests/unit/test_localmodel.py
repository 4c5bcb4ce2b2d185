"""The bundled census-income model: artifact, pure-Python inference, and its training."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from amlproxy.errors import ConfigurationError
from amlproxy.localmodel import LogisticModel, bundled_model_path, load_bundled

COLUMNS = (
    "age",
    "workclass",
    "fnlwgt",
    "education",
    "education-num",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "capital-gain",
    "capital-loss",
    "hours-per-week",
    "native-country",
)
NUMERIC = {"age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"}
C45_ERROR = 0.1554  # adult.names: C4.5 on the original train/test split

# Rows of adult.data (line numbers 1, 2, 9, 28, 39, 53, 62, 87, 106, 149, 222, 8000) and
# P(>50K) that train.artifact_proba (numpy) gave for them when the artifact was written.
ADULT_LINES = """\
39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K
50, Self-emp-not-inc, 83311, Bachelors, 13, Married-civ-spouse, Exec-managerial, Husband, White, Male, 0, 0, 13, United-States, <=50K
31, Private, 45781, Masters, 14, Never-married, Prof-specialty, Not-in-family, White, Female, 14084, 0, 50, United-States, >50K
54, ?, 180211, Some-college, 10, Married-civ-spouse, ?, Husband, Asian-Pac-Islander, Male, 0, 0, 60, South, >50K
31, Private, 84154, Some-college, 10, Married-civ-spouse, Sales, Husband, White, Male, 0, 0, 38, ?, >50K
47, Private, 51835, Prof-school, 15, Married-civ-spouse, Prof-specialty, Wife, White, Female, 0, 1902, 60, Honduras, >50K
32, ?, 293936, 7th-8th, 4, Married-spouse-absent, ?, Not-in-family, White, Male, 0, 0, 40, ?, <=50K
49, Local-gov, 268234, HS-grad, 9, Married-civ-spouse, Protective-serv, Husband, White, Male, 0, 0, 40, United-States, >50K
32, Self-emp-inc, 317660, HS-grad, 9, Married-civ-spouse, Craft-repair, Husband, White, Male, 7688, 0, 40, United-States, >50K
64, Private, 181232, 11th, 7, Married-civ-spouse, Craft-repair, Husband, White, Male, 0, 2179, 40, United-States, <=50K
64, ?, 187656, 1st-4th, 2, Divorced, ?, Not-in-family, White, Male, 0, 0, 40, United-States, <=50K
20, ?, 53738, Some-college, 10, Never-married, ?, Own-child, White, Male, 0, 0, 60, United-States, <=50K
"""  # noqa: E501
ADULT_PROBA = (
    0.0033035338308738636,
    0.4484068094925711,
    0.9874906144708054,
    0.20158370223423502,
    0.18497701860946528,
    0.9768616540379771,
    0.008442268220517532,
    0.45739685554882353,
    0.9927334043326413,
    0.1441317180913506,
    0.014137555433097198,
    0.001182565161624022,
)
ADULT_ROWS = list(zip(ADULT_LINES.splitlines(), ADULT_PROBA, strict=True))


def raw_record(line: str) -> dict[str, str]:
    """An adult.data line split on "," only: values keep their leading space, like a raw
    string map."""
    return dict(zip(COLUMNS, line.split(",")[: len(COLUMNS)], strict=True))


def typed_record(line: str) -> dict[str, Any]:
    """What the validator hands a backend: floats, stripped strings, None for missing."""
    out: dict[str, Any] = {}
    for name, value in raw_record(line).items():
        text = value.strip()
        out[name] = None if text == "?" else float(text) if name in NUMERIC else text
    return out


def label_of(line: str) -> str:
    return line.rsplit(",", 1)[1].strip()


@pytest.fixture(scope="module")
def model() -> LogisticModel:
    return load_bundled()


@pytest.fixture(scope="module")
def artifact() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(bundled_model_path().read_text(encoding="utf-8"))
    return data


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


# ---------------------------------------------------------------- the artifact


def test_bundled_model_describes_itself(model: LogisticModel) -> None:
    assert model.name == "census-income"
    assert model.target == "income"
    assert model.labels == ("<=50K", ">50K")
    assert model.positive_label == ">50K"
    assert model.feature_names == COLUMNS
    assert load_bundled() is model  # cached


def test_recorded_cv_error_beats_c45(artifact: dict[str, Any]) -> None:
    metrics = artifact["metrics"]
    folds = metrics["cv_fold_errors"]
    assert metrics["cv_folds"] == len(folds) == 5
    assert metrics["cv_error"] == pytest.approx(sum(folds) / len(folds), abs=1e-7)
    assert metrics["cv_error"] < C45_ERROR
    assert 0.0 < metrics["training_error"] < C45_ERROR
    assert metrics["rows"] == 32561


def test_artifact_provenance_and_size(artifact: dict[str, Any]) -> None:
    assert artifact["format"] == "amlproxy.logreg" and artifact["version"] == 1
    assert artifact["dataset"]["doi"] == "10.24432/C5XW20"
    assert artifact["dataset"]["license"] == "CC BY 4.0"
    assert artifact["training"]["data_md5"] == "5d7c39d7b8804f071cdd1f2a7c460872"
    assert {"l2", "cv_seed"} <= artifact["training"]["hyperparameters"].keys()
    assert bundled_model_path().stat().st_size < 100_000


# ------------------------------------------------------------- predictions


def test_pure_python_matches_training_time_numpy(model: LogisticModel) -> None:
    correct = 0
    for line, expected in ADULT_ROWS:
        assert model.predict_proba(raw_record(line)) == pytest.approx(expected, abs=1e-9)
        assert model.predict_proba(typed_record(line)) == pytest.approx(expected, abs=1e-9)
        label, _ = model.predict(typed_record(line))
        assert label == (">50K" if expected >= 0.5 else "<=50K")
        correct += label == label_of(line)
    assert correct == sum((p >= 0.5) == (label_of(line) == ">50K") for line, p in ADULT_ROWS)


def test_pure_python_matches_numpy_twin(model: LogisticModel, artifact: dict[str, Any]) -> None:
    pytest.importorskip("numpy")
    from amlproxy.localmodel import train

    table, _ = train.parse_adult([line for line, _ in ADULT_ROWS])
    numpy_proba = train.artifact_proba(artifact, table)
    for (line, _), expected in zip(ADULT_ROWS, numpy_proba, strict=True):
        assert model.predict_proba(raw_record(line)) == pytest.approx(float(expected), abs=1e-9)


def test_predict_gives_both_labels(model: LogisticModel) -> None:
    label, scores = model.predict(typed_record(ADULT_ROWS[2][0]))
    assert label == ">50K"
    assert set(scores) == {"<=50K", ">50K"}
    assert scores[">50K"] == pytest.approx(ADULT_ROWS[2][1], abs=1e-9)
    assert scores["<=50K"] + scores[">50K"] == pytest.approx(1.0)
    label, scores = model.predict(typed_record(ADULT_ROWS[0][0]))
    assert label == "<=50K" and scores["<=50K"] > 0.5


def test_strings_and_typed_values_agree(model: LogisticModel) -> None:
    base = typed_record(ADULT_ROWS[1][0])
    expected = model.predict_proba(base)
    for age in ("50", " 50", "50.0", "5e1 ", 50, 50.0):
        assert model.predict_proba({**base, "age": age}) == pytest.approx(expected, abs=1e-12)
    for occupation in (" Exec-managerial", "Exec-managerial  "):
        record = {**base, "occupation": occupation}
        assert model.predict_proba(record) == pytest.approx(expected, abs=1e-12)
    assert model.predict_proba({**base, "target": "ignored", "income": ">50K"}) == expected


def test_missing_values(model: LogisticModel, artifact: dict[str, Any]) -> None:
    base = typed_record(ADULT_ROWS[0][0])
    missing = {**base, "workclass": None}
    p = model.predict_proba(missing)
    for token in ("?", " ?", "", "  "):
        assert model.predict_proba({**base, "workclass": token}) == pytest.approx(p, abs=1e-12)
    absent = {k: v for k, v in base.items() if k != "workclass"}
    assert model.predict_proba(absent) == pytest.approx(p, abs=1e-12)
    # "?" is a level of its own: moving from State-gov to it adds the difference of weights
    weights = next(f for f in artifact["features"] if f["name"] == "workclass")["weights"]
    shift = weights["?"] - weights["State-gov"]
    assert logit(p) == pytest.approx(logit(model.predict_proba(base)) + shift, abs=1e-9)
    # a missing numeric without bins sits at its mean: fnlwgt is log1p-transformed
    fnlwgt = next(f for f in artifact["features"] if f["name"] == "fnlwgt")
    at_mean = model.predict_proba({**base, "fnlwgt": math.expm1(fnlwgt["mean"])})
    for blank in (None, "?", ""):
        assert model.predict_proba({**base, "fnlwgt": blank}) == pytest.approx(at_mean, abs=1e-9)


def test_unseen_category_contributes_nothing(
    model: LogisticModel, artifact: dict[str, Any]
) -> None:
    base = typed_record(ADULT_ROWS[0][0])
    weights = next(f for f in artifact["features"] if f["name"] == "native-country")["weights"]
    unseen = model.predict_proba({**base, "native-country": "Atlantis"})
    expected = logit(model.predict_proba(base)) - weights["United-States"]
    assert logit(unseen) == pytest.approx(expected, abs=1e-9)
    assert model.predict_proba({**base, "native-country": 7}) == pytest.approx(unseen)


@pytest.mark.parametrize("value", ["abc", "4O", "nan", "inf", "-Infinity", float("nan"), [1]])
def test_bad_numeric_value_raises_value_error(model: LogisticModel, value: Any) -> None:
    record = {**typed_record(ADULT_ROWS[0][0]), "hours-per-week": value}
    with pytest.raises(ValueError, match="hours-per-week"):
        model.predict_proba(record)


# -------------------------------------------------- the format, on a tiny model


def tiny_artifact() -> dict[str, Any]:
    return {
        "format": "amlproxy.logreg",
        "version": 1,
        "name": "tiny",
        "target": "y",
        "labels": {"negative": "no", "positive": "yes"},
        "intercept": -0.5,
        "features": [
            {
                "name": "x",
                "type": "numeric",
                "transform": "log1p",
                "mean": 1.0,
                "std": 2.0,
                "weight": 3.0,
                "bins": {"edges": [1.0, 10.0], "weights": [0.1, 0.2, 0.4]},
            },
            {"name": "c", "type": "categorical", "weights": {"a": 1.5, "?": -1.0}},
        ],
    }


def test_tiny_model_follows_the_documented_formula() -> None:
    model = LogisticModel.from_dict(tiny_artifact())
    z = -0.5 + 3.0 * (math.log1p(10.0) - 1.0) / 2.0 + 0.4 + 1.5  # x=10 lands in the last bin
    assert model.predict_proba({"x": 10.0, "c": "a"}) == pytest.approx(1 / (1 + math.exp(-z)))
    z = -0.5 + 3.0 * (0.0 - 1.0) / 2.0 + 0.1 + 0.0  # negative x: log1p clipped at 0; unseen c
    assert model.predict_proba({"x": -3, "c": "b"}) == pytest.approx(1 / (1 + math.exp(-z)))
    z = -0.5 + 0.0 - 1.0  # missing x: at its mean, no bin; missing c: the "?" level
    assert model.predict_proba({}) == pytest.approx(1 / (1 + math.exp(-z)))
    assert model.metrics == {}


def test_extreme_scores_do_not_overflow() -> None:
    data = tiny_artifact()
    data["features"][0].update(transform="identity", weight=1000.0, mean=0.0, std=1.0)
    model = LogisticModel.from_dict(data)
    assert model.predict({"x": 1e6})[0] == "yes"
    assert model.predict_proba({"x": 1e6}) == 1.0
    assert model.predict_proba({"x": -1e6}) == 0.0


BROKEN: list[tuple[str, Any]] = [
    ("format", "something-else"),
    ("version", 2),
    ("features", None),
    ("intercept", "1"),
    ("labels", {"positive": "yes"}),
    ("features", [{"name": "x", "type": "text"}]),
    ("features", [{"name": "x", "type": "numeric", "mean": 0, "std": 0, "weight": 1}]),
    ("features", [{"name": "x", "type": "numeric", "mean": 0, "std": 1}]),
    ("features", [{"name": "x", "type": "numeric", "transform": "sqrt", "mean": 0, "std": 1}]),
    ("features", [{"name": "c", "type": "categorical", "weights": {"a": "heavy"}}]),
    ("features", [{"name": "c", "type": "categorical", "weights": {}}] * 2),
    (
        "features",
        [
            {
                "name": "x",
                "type": "numeric",
                "mean": 0,
                "std": 1,
                "weight": 1,
                "bins": {"edges": [1.0, 2.0], "weights": [0.0, 1.0]},
            }
        ],
    ),
]


@pytest.mark.parametrize(("key", "value"), BROKEN)
def test_malformed_artifact_raises_configuration_error(key: str, value: Any) -> None:
    data = tiny_artifact()
    data[key] = value
    with pytest.raises(ConfigurationError):
        LogisticModel.from_dict(data)


def test_bad_artifact_files_raise_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        LogisticModel.load(tmp_path / "absent.json")
    truncated = tmp_path / "truncated.json"
    truncated.write_text(bundled_model_path().read_text(encoding="utf-8")[:500])
    with pytest.raises(ConfigurationError, match="not valid JSON"):
        LogisticModel.load(truncated)
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigurationError):
        LogisticModel.load(binary)
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    with pytest.raises(ConfigurationError, match=r"list\.json"):
        LogisticModel.load(listed)
    good = tmp_path / "tiny.json"
    good.write_text(json.dumps(tiny_artifact()))
    assert LogisticModel.load(str(good)).labels == ("no", "yes")


def test_bundled_model_path_refuses_paths() -> None:
    assert bundled_model_path().is_file()
    for name in ("../census-income", "a/b", ""):
        with pytest.raises(ConfigurationError):
            bundled_model_path(name)
    with pytest.raises(ConfigurationError):
        load_bundled("no-such-model")


def test_inference_needs_no_numpy() -> None:
    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "from amlproxy.localmodel import load_bundled\n"
        "print(load_bundled().predict({'age': '39', 'sex': 'Male'})[0])\n"
        "assert 'amlproxy.localmodel.train' not in sys.modules\n"
    )
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() in {"<=50K", ">50K"}


# ---------------------------------------------------------------- training


@pytest.mark.slow
def test_retraining_reproduces_the_committed_artifact(artifact: dict[str, Any]) -> None:
    pytest.importorskip("numpy", reason="training needs numpy (the train extra)")
    from amlproxy.localmodel import train

    if not train.DEFAULT_DATA.is_file():
        pytest.skip(f"training data absent: {train.DEFAULT_DATA} (../shared of the repo root)")
    l2 = artifact["training"]["hyperparameters"]["l2"]  # the grid search itself is skipped
    fresh = train.train(train.DEFAULT_DATA, l2_grid=[l2], log=False)
    assert fresh["metrics"]["cv_error"] < C45_ERROR
    for key in ("cv_error", "training_error"):  # equal up to a row or two of BLAS rounding
        assert fresh["metrics"][key] == pytest.approx(artifact["metrics"][key], abs=2e-4)
    assert fresh["training"]["data_md5"] == artifact["training"]["data_md5"]
    lines = train.DEFAULT_DATA.read_text(encoding="utf-8").splitlines()[:400]
    committed, retrained = LogisticModel.from_dict(artifact), LogisticModel.from_dict(fresh)
    for line in lines:
        record = raw_record(line)
        p = committed.predict_proba(record)
        assert retrained.predict_proba(record) == pytest.approx(p, abs=1e-6)
