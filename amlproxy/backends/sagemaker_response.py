"""Parsing SageMaker real-time endpoint responses into ``(label, scores, value)``.

:class:`ResponseParser` reads one triple per record from any of the common container
outputs:

- CSV: one line per record: one number (the positive-class probability, or the value of a
  regression without ``labels``), several numbers (one score per class) or a label; or
  one line of one number per record (as SageMaker's XGBoost answers a batch);
- JSON: ``{"predictions": [...]}``, ``{"probabilities": [...]}``, ``{"scores": [...]}`` or a
  bare list, each item a number, a label, a list of class scores, or an object with
  ``label``/``predicted_label``, ``score``/``probability`` and/or ``scores``/``probabilities``;
- JSON with ``json_path``: a tiny dotted path such as ``predictions[*].score``.

Anything else raises :class:`~amlproxy.errors.ModelResponseError`, as does a count of
predictions that differs from the count of records sent.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from amlproxy.backends.sagemaker_codec import CSV
from amlproxy.errors import ModelResponseError

Scored = tuple[str | None, dict[str, float], float | None]  # label, scores, value


class ResponseParser:
    """Turns a response body into one ``(label, scores, value)`` per record.

    ``labels`` names the classes in score order, ``(negative, positive)`` for a binary
    model; a lone number is then the positive-class probability, labelled by
    ``threshold``. Without ``labels`` a lone number is a regression value and class scores
    are keyed ``"0"``, ``"1"``...
    """

    def __init__(
        self,
        *,
        labels: Sequence[str] | None = None,
        threshold: float = 0.5,
        json_path: str | None = None,
    ) -> None:
        self.labels = tuple(labels) if labels is not None else None
        if self.labels is not None and len(self.labels) < 2:
            raise ValueError("labels needs at least two classes")
        self.threshold = threshold
        self.json_path = JsonPath(json_path) if json_path else None

    def parse(self, body: bytes, content_type: str, count: int) -> list[Scored]:
        """Parse ``body`` (of the response's ``content_type``) holding ``count`` results."""
        if content_type.split(";", 1)[0].strip().lower() == CSV:
            probabilities = self._csv_probabilities(body, count)
            if probabilities is not None:
                return probabilities
            items: list[Any] = self._csv_items(body)
            if count > 1 and len(items) == 1 and _is_list_of(items[0], count):
                items = items[0]  # one line for the whole batch (SageMaker's XGBoost)
        else:
            items = self._json_items(body, count)
        if len(items) != count:
            raise ModelResponseError(
                f"the endpoint returned {len(items)} prediction(s) for {count} record(s)",
                code="PredictionCountMismatch",
            )
        return [self.interpret(item) for item in items]

    def _csv_probabilities(self, body: bytes, count: int) -> list[Scored] | None:
        """The usual answer of a binary model, read in bulk: one probability per line for
        each record. None for anything else (then read item by item)."""
        labels = self.labels
        if labels is None or len(labels) != 2 or b"," in body or b'"' in body:
            return None
        try:
            numbers = list(map(float, body.splitlines()))
        except ValueError:  # a label, a blank line, bad UTF-8...
            return None
        if len(numbers) != count or not numbers or not 0.0 <= min(numbers) <= max(numbers) <= 1.0:
            return None  # (NaN makes one of the comparisons false)
        if math.isnan(math.fsum(numbers)):
            return None
        negative, positive = labels
        threshold = self.threshold
        return [(positive if p >= threshold else negative, {negative: 1.0 - p, positive: p},
                 None) for p in numbers]

    def _csv_items(self, body: bytes) -> list[Any]:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ModelResponseError(f"undecodable CSV response: {exc}") from exc
        if '"' in text:
            rows: list[list[str]] = [row for row in csv.reader(io.StringIO(text)) if row]
        else:
            rows = [line.split(",") for line in text.splitlines() if line.strip()]
        return [_csv_row(row) for row in rows]

    def _json_items(self, body: bytes, count: int) -> list[Any]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise ModelResponseError(f"unparsable JSON response: {exc}") from exc
        if self.json_path is not None:
            return self.json_path.find(doc)
        if isinstance(doc, dict):
            for key in ("predictions", "probabilities", "scores", "outputs", "results"):
                if isinstance(doc.get(key), list):
                    return list(doc[key])
            if count == 1:
                return [doc]
        if isinstance(doc, list):
            return doc
        if count == 1 and isinstance(doc, int | float | str):
            return [doc]
        raise ModelResponseError(f"no list of predictions in the JSON response: {body[:200]!r}")

    def interpret(self, item: Any) -> Scored:
        """One prediction item (number, label, score list or object) as a triple."""
        if isinstance(item, bool):
            item = float(item)
        if isinstance(item, int | float):
            return self._from_number(float(item))
        if isinstance(item, str):
            return item, {}, None
        if isinstance(item, list):
            return self._from_scores(item, None)
        if isinstance(item, dict):
            return self._from_object(item)
        raise ModelResponseError(f"cannot read a prediction from {item!r}")

    def _from_number(self, number: float) -> Scored:
        labels = self.labels
        if labels is None:
            return None, {}, number
        if len(labels) != 2:
            raise ModelResponseError(f"a single score {number} for {len(labels)} classes")
        if not 0.0 <= number <= 1.0:
            raise ModelResponseError(f"probability out of [0, 1]: {number}")
        label = labels[1] if number >= self.threshold else labels[0]
        return label, {labels[0]: 1.0 - number, labels[1]: number}, None

    def _from_scores(self, scores: Any, label: Any) -> Scored:
        if isinstance(scores, dict):
            try:
                by_label = {str(k): float(v) for k, v in scores.items()}
            except (TypeError, ValueError) as exc:
                raise ModelResponseError(f"non-numeric class scores {scores!r}") from exc
        else:
            if not isinstance(scores, list) or not scores:
                raise ModelResponseError(f"bad class scores {scores!r}")
            if len(scores) == 1:
                found, by_label, value = self._from_number(_number(scores[0]))
                return (self._label(label) if label is not None else found), by_label, value
            names = self.labels or tuple(str(i) for i in range(len(scores)))
            if len(names) != len(scores):
                raise ModelResponseError(f"{len(scores)} class scores for labels {names}")
            by_label = dict(zip(names, (_number(s) for s in scores), strict=True))
        if label is not None:
            return self._label(label), by_label, None
        if not by_label:
            raise ModelResponseError("empty class scores")
        labels = self.labels
        if labels is not None and len(labels) == 2 and labels[1] in by_label:
            best = labels[1] if by_label[labels[1]] >= self.threshold else labels[0]
        else:
            best = max(by_label, key=by_label.__getitem__)
        return best, by_label, None

    def _from_object(self, obj: dict[str, Any]) -> Scored:
        label = _first(obj, ("predicted_label", "label", "predictedLabel", "class"))
        scores = _first(obj, ("scores", "probabilities", "predictedScores"))
        if scores is not None:
            return self._from_scores(scores, label)
        score = _first(obj, ("score", "probability", "predictedValue", "value"))
        if isinstance(score, list):
            return self._from_scores(score, label)
        if score is not None:
            found, by_label, value = self._from_number(_number(score))
            return (self._label(label) if label is not None else found), by_label, value
        if label is not None:
            return self._label(label), {}, None
        raise ModelResponseError(f"no label, score or value in {obj!r}")

    def _label(self, label: Any) -> str:
        """A label as text; a class index when the model answers with one."""
        if isinstance(label, int | float) and not isinstance(label, bool):
            if float(label).is_integer():
                index = int(label)
                if self.labels is not None and 0 <= index < len(self.labels):
                    return self.labels[index]
                return str(index)
            return str(label)
        return str(label)


def _csv_row(row: list[str]) -> Any:
    if len(row) == 1:
        cell = row[0].strip()
        try:
            return float(cell)
        except ValueError:
            return cell
    try:
        return [float(c) for c in row]
    except ValueError as exc:
        raise ModelResponseError(f"non-numeric CSV scores {','.join(row)!r}") from exc


def _number(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise ModelResponseError(f"expected a number, got {value!r}")


def _first(obj: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        value = obj.get(key)
        if value is not None:
            return value
    return None


class JsonPath:
    """A tiny JSON path: dotted keys, ``[N]`` indexes and ``[*]`` wildcards, with an
    optional leading ``$``. ``predictions[*].score`` picks each prediction's score."""

    _STEP = re.compile(r"([^.\[\]]+)|\[(\*|-?\d+)\]|(\.)")

    def __init__(self, path: str) -> None:
        self.path = path
        text = path[1:] if path.startswith("$") else path
        self.steps: list[tuple[str, Any]] = []
        pos = 0
        for match in self._STEP.finditer(text):
            if match.start() != pos:
                break
            pos = match.end()
            key, index, _dot = match.groups()
            if key is not None:
                self.steps.append(("key", key))
            elif index == "*":
                self.steps.append(("each", None))
            elif index is not None:
                self.steps.append(("index", int(index)))
        if pos != len(text) or not self.steps:
            raise ValueError(f"bad JSON path {path!r}")
        self.multi = any(kind == "each" for kind, _ in self.steps)

    def find(self, doc: Any) -> list[Any]:
        """The values at the path: a list (a single non-list value becomes a list of one)."""
        items = [doc]
        try:
            for kind, arg in self.steps:
                if kind == "each":
                    items = [x for item in items for x in _as_list(item)]
                else:
                    items = [item[arg] for item in items]
        except (KeyError, IndexError, TypeError) as exc:
            raise ModelResponseError(f"JSON path {self.path!r} not found: {exc!r}") from exc
        if self.multi:
            return items
        found = items[0]
        return list(found) if isinstance(found, list) else [found]


def _as_list(item: Any) -> list[Any]:
    if not isinstance(item, list):
        raise TypeError(f"[*] on a {type(item).__name__}")
    return item


def _is_list_of(item: Any, count: int) -> bool:
    return isinstance(item, list) and len(item) == count
