"""Train the bundled census-income model: an L2-regularised logistic regression.

    python -m amlproxy.localmodel.train [--data PATH] [--out PATH]

Reads the UCI Adult training split (Becker & Kohavi, 1996), encodes it the way Amazon ML's
default recipe would (one-hot categoricals with "?" as a level of its own, standardised
numerics, log1p of the money columns, quantile bins of numerics as extra categoricals),
fits the weights by Newton's method (IRLS) and writes the JSON artifact that
:mod:`amlproxy.localmodel.logreg` serves without numpy. The L2 strength is chosen by
5-fold cross-validated log-loss on fixed, seeded folds; the artifact records the
cross-validated error of that choice, the training error and the provenance.

numpy is needed here only (the ``train`` extra); prediction never imports this module.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from amlproxy.localmodel.logreg import FORMAT, FORMAT_VERSION, bundled_model_path

FloatArray = npt.NDArray[np.float64]
Table = dict[str, npt.NDArray[Any]]  # column name -> float64 (numeric) or str (categorical)

# the attributes of adult.names, in file order (the target, income, follows them)
COLUMNS: tuple[str, ...] = (
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
TARGET = "income"
LABELS = ("<=50K", ">50K")  # (negative, positive)
MISSING = "?"
# numeric column -> (transform, number of quantile bins; 0 for none)
NUMERIC: dict[str, tuple[str, int]] = {
    "age": ("identity", 10),
    "fnlwgt": ("log1p", 0),
    "education-num": ("identity", 0),
    "capital-gain": ("log1p", 10),
    "capital-loss": ("log1p", 10),
    "hours-per-week": ("identity", 10),
}
L2_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
FOLDS = 5
SEED = 20240611
DIGITS = 8  # significant digits kept for weights and statistics in the artifact
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT / ".." / "shared" / "data" / "census-income" / "adult.data"
DATASET = {
    "name": "Adult (census income), training split adult.data",
    "citation": "Becker, B. & Kohavi, R. (1996). Adult. UCI Machine Learning Repository.",
    "doi": "10.24432/C5XW20",
    "url": "https://archive.ics.uci.edu/dataset/2/adult",
    "license": "CC BY 4.0",
}


def parse_adult(lines: Sequence[str]) -> tuple[Table, npt.NDArray[np.float64]]:
    """Rows of adult.data (", "-separated, blank lines skipped) -> (feature table, 0/1 target)."""
    rows = [[f.strip() for f in line.split(",")] for line in lines if line.strip()]
    for number, row in enumerate(rows, 1):
        if len(row) != len(COLUMNS) + 1:
            raise ValueError(f"row {number}: {len(row)} fields, expected {len(COLUMNS) + 1}")
    table: Table = {}
    for j, name in enumerate(COLUMNS):
        values = [row[j] for row in rows]
        table[name] = np.array(values, dtype=np.float64 if name in NUMERIC else object)
    labels = [row[-1].rstrip(".") for row in rows]
    unknown = set(labels) - set(LABELS)
    if unknown:
        raise ValueError(f"unknown labels {sorted(unknown)}; expected {LABELS}")
    return table, np.array([label == LABELS[1] for label in labels], dtype=np.float64)


def transform(kind: str, x: FloatArray) -> FloatArray:
    """The numeric transforms of the artifact format (log1p clips negatives at 0)."""
    return np.log1p(np.maximum(x, 0.0)) if kind == "log1p" else x


def fit_encoding(table: Table) -> list[dict[str, Any]]:
    """Feature specs (the artifact's ``features`` without weights), fitted on ``table``."""
    specs: list[dict[str, Any]] = []
    for name in COLUMNS:
        if name in NUMERIC:
            kind, nbins = NUMERIC[name]
            x = table[name]
            t = transform(kind, x)
            spec: dict[str, Any] = {
                "name": name,
                "type": "numeric",
                "transform": kind,
                "mean": _round(float(t.mean())),
                "std": _round(float(t.std()) or 1.0),
            }
            if nbins:
                spec["bins"] = {"edges": [_round(float(e)) for e in quantile_edges(x, nbins)]}
        else:
            spec = {"name": name, "type": "categorical", "levels": sorted(set(table[name]))}
        specs.append(spec)
    return specs


def quantile_edges(x: FloatArray, nbins: int) -> FloatArray:
    """Bin edges at the quantiles of ``x``. When most values are 0 (the money columns) the
    quantiles are those of the non-zero values, and 0 gets a bin of its own."""
    nonzero = x[x != 0.0]
    if len(nonzero) * 2 >= len(x):
        return np.unique(np.quantile(x, np.arange(1, nbins) / nbins))
    quantiles = np.quantile(nonzero, np.arange(1, nbins) / nbins)
    return np.unique(np.concatenate([[np.min(np.abs(nonzero))], quantiles]))


def design_matrix(specs: Sequence[Mapping[str, Any]], table: Table) -> FloatArray:
    """One row per record: per numeric its standardised value then its bins one-hot, per
    categorical its levels one-hot (unseen levels encode as all zeros)."""
    n = len(table[COLUMNS[0]])
    blocks: list[FloatArray] = []
    for spec in specs:
        x = table[spec["name"]]
        if spec["type"] == "numeric":
            t = transform(spec["transform"], x)
            blocks.append(((t - spec["mean"]) / spec["std"])[:, None])
            if "bins" in spec:
                edges = np.array(spec["bins"]["edges"])
                blocks.append(_one_hot(np.searchsorted(edges, x, side="right"), len(edges) + 1))
        else:
            index = {level: i for i, level in enumerate(spec["levels"])}
            codes = np.array([index.get(v, -1) for v in x], dtype=np.int64)
            blocks.append(_one_hot(codes, len(index)))
    return np.hstack(blocks) if blocks else np.zeros((n, 0))


def _one_hot(codes: npt.NDArray[np.int64], width: int) -> FloatArray:
    out = np.zeros((len(codes), width))
    known = codes >= 0
    out[np.nonzero(known)[0], codes[known]] = 1.0
    return out


def fit_logistic(x: FloatArray, y: FloatArray, l2: float) -> tuple[float, FloatArray]:
    """Minimise log-loss + l2/2 * |w|^2 (intercept unpenalised) by damped Newton steps."""
    n, p = x.shape
    xa = np.hstack([np.ones((n, 1)), x])
    penalty = np.full(p + 1, l2)
    penalty[0] = 0.0
    w = np.zeros(p + 1)
    w[0] = np.log(y.mean() / (1.0 - y.mean()))

    def objective(w: FloatArray) -> float:
        z = xa @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(penalty * w * w))

    current = objective(w)
    for _ in range(100):
        prob = _sigmoid(xa @ w)
        gradient = xa.T @ (prob - y) + penalty * w
        hessian = (xa * (prob * (1.0 - prob))[:, None]).T @ xa + np.diag(penalty)
        step = np.linalg.solve(hessian, gradient)
        scale = 1.0
        while (trial := objective(w - scale * step)) > current and scale > 1e-6:
            scale /= 2.0
        w, previous, current = w - scale * step, current, trial
        if previous - current <= 1e-10 * (1.0 + abs(current)):
            break
    return float(w[0]), w[1:]


def _sigmoid(z: FloatArray) -> FloatArray:
    return np.exp(-np.logaddexp(0.0, -z))


def build_artifact(
    specs: Sequence[Mapping[str, Any]], intercept: float, weights: FloatArray
) -> dict[str, Any]:
    """Spread the fitted weights over the feature specs (rounded to DIGITS)."""
    features: list[dict[str, Any]] = []
    i = 0
    for spec in specs:
        feature = {k: v for k, v in spec.items() if k not in ("levels", "bins")}
        if spec["type"] == "numeric":
            feature["weight"] = _round(weights[i])
            i += 1
            if "bins" in spec:
                width = len(spec["bins"]["edges"]) + 1
                bin_weights = [_round(w) for w in weights[i : i + width]]
                feature["bins"] = {"edges": spec["bins"]["edges"], "weights": bin_weights}
                i += width
        else:
            levels = spec["levels"]
            feature["weights"] = dict(
                zip(levels, map(_round, weights[i : i + len(levels)]), strict=True)
            )
            i += len(levels)
        features.append(feature)
    if i != len(weights):
        raise AssertionError(f"{len(weights)} weights for {i} encoded columns")
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "name": "census-income",
        "target": TARGET,
        "labels": {"negative": LABELS[0], "positive": LABELS[1]},
        "threshold": 0.5,
        "missing_level": MISSING,
        "intercept": _round(intercept),
        "features": features,
    }


def artifact_proba(artifact: Mapping[str, Any], table: Table) -> FloatArray:
    """P(positive) of each row under a stored artifact: the vectorised twin of
    ``LogisticModel.predict_proba`` (same rounded numbers, same encoding rules)."""
    n = len(table[COLUMNS[0]])
    z = np.full(n, float(artifact["intercept"]))
    for feature in artifact["features"]:
        x = table[feature["name"]]
        if feature["type"] == "numeric":
            t = transform(feature["transform"], x)
            z += feature["weight"] * ((t - feature["mean"]) / feature["std"])
            if "bins" in feature:
                index = np.searchsorted(np.array(feature["bins"]["edges"]), x, side="right")
                z += np.array(feature["bins"]["weights"])[index]
        else:
            weights = feature["weights"]
            z += np.array([weights.get(v, 0.0) for v in x])
    return _sigmoid(z)


def fold_ids(n: int, folds: int = FOLDS, seed: int = SEED) -> npt.NDArray[np.int64]:
    """Fold number of each row: a seeded permutation dealt round-robin."""
    ids = np.empty(n, dtype=np.int64)
    ids[np.random.default_rng(seed).permutation(n)] = np.arange(n) % folds
    return ids


def cross_validate(
    table: Table, y: FloatArray, l2: float, folds: npt.NDArray[np.int64]
) -> tuple[list[float], float]:
    """Per-fold error rates and the mean log-loss, encoding refitted on each training part."""
    errors, losses = [], []
    for k in range(int(folds.max()) + 1):
        train, test = folds != k, folds == k
        part = {name: col[train] for name, col in table.items()}
        held = {name: col[test] for name, col in table.items()}
        specs = fit_encoding(part)
        intercept, weights = fit_logistic(design_matrix(specs, part), y[train], l2)
        prob = artifact_proba(build_artifact(specs, intercept, weights), held)
        errors.append(float(np.mean((prob >= 0.5) != (y[test] == 1.0))))
        losses.append(float(-np.mean(y[test] * np.log(prob) + (1 - y[test]) * np.log1p(-prob))))
    return errors, float(np.mean(losses))


def train(data: Path, *, l2_grid: Sequence[float] = L2_GRID, log: bool = True) -> dict[str, Any]:
    """Choose the L2 strength by cross-validation, fit on all rows, return the artifact."""
    data = Path(data)
    raw = data.read_bytes()
    table, y = parse_adult(raw.decode("utf-8").splitlines())
    folds = fold_ids(len(y))
    results = {}
    for l2 in l2_grid:
        errors, loss = cross_validate(table, y, l2, folds)
        results[l2] = (errors, loss)
        if log:
            print(f"l2={l2:<6g} cv error {np.mean(errors):.4%} log-loss {loss:.5f}", flush=True)
    best = min(l2_grid, key=lambda l2: results[l2][1])
    specs = fit_encoding(table)
    artifact = build_artifact(specs, *fit_logistic(design_matrix(specs, table), y, best))
    prob = artifact_proba(artifact, table)
    fold_errors = results[best][0]
    artifact["metrics"] = {
        "cv_folds": len(fold_errors),
        "cv_error": _round(float(np.mean(fold_errors))),
        "cv_fold_errors": [_round(e) for e in fold_errors],
        "cv_log_loss": _round(results[best][1]),
        "training_error": _round(float(np.mean((prob >= 0.5) != (y == 1.0)))),
        "rows": len(y),
        "positive_rate": _round(float(y.mean())),
    }
    hyperparameters = {
        "l2": best,
        "l2_grid": list(l2_grid),
        "l2_chosen_by": "lowest mean cv log-loss, same folds",
        "cv_error_by_l2": {str(l2): _round(float(np.mean(results[l2][0]))) for l2 in l2_grid},
        "numeric": {name: {"transform": t, "quantile_bins": b} for name, (t, b) in NUMERIC.items()},
        "bins_when_mostly_zero": "quantiles of the non-zero values; 0 in a bin of its own",
        "cv_seed": SEED,
        "solver": "newton-irls",
        "significant_digits": DIGITS,
    }
    artifact["training"] = {
        "script": "python -m amlproxy.localmodel.train",
        "data_file": data.name,
        "data_md5": hashlib.md5(raw, usedforsecurity=False).hexdigest(),
        "date": dt.date.today().isoformat(),
        "hyperparameters": hyperparameters,
    }
    artifact["dataset"] = DATASET
    return artifact


def _round(value: float) -> float:
    return float(f"{float(value):.{DIGITS}g}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m amlproxy.localmodel.train", description=__doc__.split("\n")[0]
    )
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="adult.data (default: %(default)s)"
    )
    parser.add_argument(
        "--out", type=Path, default=bundled_model_path(), help="artifact (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"training data not found: {args.data}")
    artifact = train(args.data)
    args.out.write_text(json.dumps(artifact, indent=1) + "\n", encoding="utf-8")
    m, t = artifact["metrics"], artifact["training"]
    folds = ", ".join(f"{e:.4%}" for e in m["cv_fold_errors"])
    print(f"{m['rows']} rows of {t['data_file']} (md5 {t['data_md5']}), {t['date']}")
    print(f"hyperparameters: {json.dumps(t['hyperparameters'])}")
    print(f"{m['cv_folds']}-fold cv error {m['cv_error']:.4%} (folds: {folds})")
    print(f"training error {m['training_error']:.4%}; wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
