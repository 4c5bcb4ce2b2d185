"""Pure-Python inference for the bundled logistic-regression models (no numpy).

An artifact is a small JSON document (written by :mod:`amlproxy.localmodel.train`)::

    {"format": "amlproxy.logreg", "version": 1, "name": ..., "target": ...,
     "labels": {"negative": "<=50K", "positive": ">50K"}, "threshold": 0.5,
     "missing_level": "?", "intercept": b,
     "features": [
       {"name": "age", "type": "numeric", "transform": "identity" | "log1p",
        "mean": m, "std": s, "weight": w,
        "bins": {"edges": [e1, ...], "weights": [v0, v1, ...]}},       # optional
       {"name": "workclass", "type": "categorical", "weights": {"Private": w, "?": w, ...}}],
     "metrics": {...}, "training": {...}, "dataset": {...}}

    z = b + sum over numerics of w * (t(x) - m) / s + v[bisect_right(edges, x)]
          + sum over categoricals of weights[level]
    P(positive) = 1 / (1 + exp(-z))

``t`` is the identity or ``log1p(max(x, 0))``; bins apply to the raw value. A missing
value (None, "" or "?") is the categorical level ``missing_level`` and, for a numeric, its
mean (no bin). A level the model never saw contributes 0.
"""

from __future__ import annotations

import json
import math
import os
import re
from bisect import bisect_right
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from amlproxy.errors import ConfigurationError

FORMAT: Final = "amlproxy.logreg"
FORMAT_VERSION: Final = 1
MISSING_TOKENS: Final = frozenset({"", "?"})
TRANSFORMS: Final = frozenset({"identity", "log1p"})
_INF: Final = math.inf
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")

# name, coefficient per transformed unit, term added when missing, log1p?, bin edges, bin weights
_NumericTerm = tuple[str, float, float, bool, tuple[float, ...], tuple[float, ...]]
_CategoricalTerm = tuple[str, dict[Any, float]]


class LogisticModel:
    """A binary logistic-regression model loaded from an ``amlproxy.logreg`` artifact.

    Records map attribute names to typed values (float, str, None) or to raw strings as in
    an Amazon ML ``Record`` (``"39"``, ``" Private"``, ``"?"``); other keys are ignored and
    absent attributes count as missing. The scoring tables are built once, at load time.
    """

    __slots__ = (
        "_categorical",
        "_intercept",
        "_negative",
        "_numeric",
        "_threshold",
        "feature_names",
        "labels",
        "metrics",
        "name",
        "positive_label",
        "target",
    )

    def __init__(
        self,
        *,
        name: str,
        target: str,
        labels: tuple[str, str],
        threshold: float,
        intercept: float,
        numeric: list[_NumericTerm],
        categorical: list[_CategoricalTerm],
        feature_names: tuple[str, ...],
        metrics: Mapping[str, Any],
    ) -> None:
        self.name = name
        self.target = target
        self.labels = labels
        self.positive_label = labels[1]
        self._negative = labels[0]
        self.feature_names = feature_names
        self.metrics: Mapping[str, Any] = MappingProxyType(dict(metrics))
        self._threshold = threshold
        self._intercept = intercept
        self._numeric = tuple(numeric)
        self._categorical = tuple(categorical)

    def __repr__(self) -> str:
        return f"LogisticModel(name={self.name!r}, features={len(self.feature_names)})"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LogisticModel:
        """Read an artifact file; any problem with it raises ConfigurationError."""
        try:
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        except OSError as exc:
            raise ConfigurationError(f"cannot read model artifact {path}: {exc}") from exc
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ConfigurationError(f"model artifact {path} is not valid JSON: {exc}") from exc
        try:
            return cls.from_dict(data)
        except ConfigurationError as exc:
            raise ConfigurationError(f"model artifact {path}: {exc}") from exc

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LogisticModel:
        """Build a model from a parsed artifact; a malformed one raises ConfigurationError."""
        if not isinstance(data, Mapping):
            raise ConfigurationError("an artifact must be a JSON object")
        tag, version = data.get("format"), data.get("version")
        if tag != FORMAT or version != FORMAT_VERSION:
            raise ConfigurationError(
                f"format {tag!r} version {version!r}; expected {FORMAT!r} {FORMAT_VERSION}"
            )
        labels = _get(data, "labels", Mapping)
        negative, positive = _get(labels, "negative", str), _get(labels, "positive", str)
        missing_level = data.get("missing_level", "?")
        intercept = _number_field(data, "intercept")
        numeric: list[_NumericTerm] = []
        categorical: list[_CategoricalTerm] = []
        names: list[str] = []
        for i, feature in enumerate(_get(data, "features", list)):
            where = f"features[{i}]"
            if not isinstance(feature, Mapping):
                raise ConfigurationError(f"{where} is not an object")
            name = _get(feature, "name", str)
            kind = feature.get("type")
            if kind == "numeric":
                term, offset = _numeric_term(name, feature)
                numeric.append(term)
                intercept += offset
            elif kind == "categorical":
                categorical.append((name, _categorical_table(name, feature, missing_level)))
            else:
                raise ConfigurationError(f"{where} ({name}): unknown type {kind!r}")
            names.append(name)
        if len(set(names)) != len(names):
            raise ConfigurationError("feature names repeat")
        return cls(
            name=_get(data, "name", str),
            target=_get(data, "target", str),
            labels=(negative, positive),
            threshold=float(data.get("threshold", 0.5)),
            intercept=intercept,
            numeric=numeric,
            categorical=categorical,
            feature_names=tuple(names),
            metrics=_get(data, "metrics", Mapping) if "metrics" in data else {},
        )

    def predict_proba(self, record: Mapping[str, Any]) -> float:
        """P(positive label) for one record. Raises ValueError for a numeric attribute whose
        value is not a finite number (``"abc"``, ``"nan"``)."""
        get = record.get
        z = self._intercept
        for name, coef, missing_term, log, edges, bin_weights in self._numeric:
            x: Any = get(name)
            if x.__class__ is str:
                try:
                    x = float(x)  # takes surrounding whitespace
                except ValueError:
                    if x.strip() not in MISSING_TOKENS:
                        raise ValueError(f"{name}: {x!r} is not a number") from None
                    x = None
            elif x.__class__ is not float:
                x = _to_number(name, x)
            if x is None:
                z += missing_term
                continue
            if not -_INF < x < _INF:
                raise ValueError(f"{name}: {get(name)!r} is not a finite number")
            if edges:
                z += bin_weights[bisect_right(edges, x)]
            if log:
                x = math.log1p(x) if x > 0.0 else 0.0
            z += coef * x
        for name, table in self._categorical:
            value = get(name)
            w = table.get(value)
            if w is None:
                w = _normalised_lookup(table, value)
            z += w
        if z >= 0.0:
            return 1.0 / (1.0 + math.exp(-z))
        e = math.exp(z)
        return e / (1.0 + e)

    def predict(self, record: Mapping[str, Any]) -> tuple[str, dict[str, float]]:
        """(predicted label, {label: probability} for both labels)."""
        p = self.predict_proba(record)
        label = self.positive_label if p >= self._threshold else self._negative
        return label, {self._negative: 1.0 - p, self.positive_label: p}


def _to_number(name: str, value: Any) -> float | None:
    """A numeric attribute's value that is neither str nor float: None, int or bool."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    raise ValueError(f"{name}: expected a number, got {type(value).__name__} {value!r}")


def _normalised_lookup(table: Mapping[Any, float], value: Any) -> float:
    """Second chance for a categorical value: stripped text, or the text of a non-string."""
    if isinstance(value, str):
        return table.get(value.strip(), 0.0)
    return table.get(str(value), 0.0)


def _numeric_term(name: str, feature: Mapping[str, Any]) -> tuple[_NumericTerm, float]:
    """The scoring term of a numeric feature and the constant it moves into the intercept."""
    kind = feature.get("transform", "identity")
    if kind not in TRANSFORMS:
        raise ConfigurationError(f"{name}: unknown transform {kind!r}")
    mean, std = _number_field(feature, "mean"), _number_field(feature, "std")
    if std <= 0.0:
        raise ConfigurationError(f"{name}: std must be positive, got {std}")
    coef = _number_field(feature, "weight") / std
    edges: tuple[float, ...] = ()
    bin_weights: tuple[float, ...] = ()
    if "bins" in feature:
        bins = _get(feature, "bins", Mapping)
        edges = tuple(_number_list(bins, "edges", name))
        bin_weights = tuple(_number_list(bins, "weights", name))
        if len(bin_weights) != len(edges) + 1 or list(edges) != sorted(edges):
            raise ConfigurationError(f"{name}: bins need sorted edges and one more weight")
    return (name, coef, coef * mean, kind == "log1p", edges, bin_weights), -coef * mean


def _categorical_table(name: str, feature: Mapping[str, Any], missing: Any) -> dict[Any, float]:
    """level -> weight, with None, "" and the missing level all mapped to the missing weight."""
    weights = _get(feature, "weights", Mapping)
    table: dict[Any, float] = {}
    for level, w in weights.items():
        if not _is_finite_number(w):
            raise ConfigurationError(f"{name}: weight of {level!r} is not a finite number")
        table[level] = float(w)
    missing_weight = table.get(missing, 0.0)
    for token in (None, *MISSING_TOKENS, missing):
        table[token] = missing_weight
    return table


def _get(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if not isinstance(value, kind):
        raise ConfigurationError(f"{key!r} is missing or not a {kind.__name__}")
    return value


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _number_field(data: Mapping[str, Any], key: str) -> float:
    value: Any = data.get(key)
    if not _is_finite_number(value):
        raise ConfigurationError(f"{key!r} is missing or not a finite number")
    return float(value)


def _number_list(data: Mapping[str, Any], key: str, name: str) -> list[float]:
    values = _get(data, key, list)
    if not all(_is_finite_number(v) for v in values):
        raise ConfigurationError(f"{name}: {key} must be finite numbers")
    return [float(v) for v in values]


def bundled_model_path(name: str = "census-income") -> Path:
    """Where the bundled artifact ``name`` lives: ``amlproxy/localmodel/<name>.json``."""
    if not _NAME.fullmatch(name):
        raise ConfigurationError(f"not a bundled model name: {name!r}")
    return Path(__file__).with_name(f"{name}.json")


@lru_cache(maxsize=8)
def load_bundled(name: str = "census-income") -> LogisticModel:
    """The bundled model ``name``, loaded once per process."""
    return LogisticModel.load(bundled_model_path(name))
