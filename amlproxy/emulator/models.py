"""The models an emulator serves: one name per model, used both as the Amazon ML model id
and as the SageMaker endpoint name."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from amlproxy.errors import ConfigurationError
from amlproxy.localmodel import LogisticModel, load_bundled

DEFAULT_MODEL = "census-income"


@dataclass(frozen=True, slots=True)
class ServedModel:
    """A model behind one emulated endpoint.

    ``accepted`` are the attribute names a record may carry (features and target);
    ``created_at`` is when the emulator started serving it (epoch seconds).
    """

    name: str
    model: LogisticModel
    accepted: frozenset[str]
    created_at: float

    @classmethod
    def of(cls, name: str, model: LogisticModel) -> ServedModel:
        accepted = frozenset((*model.feature_names, model.target))
        return cls(name=name, model=model, accepted=accepted, created_at=time.time())


def parse_model_spec(spec: str) -> tuple[str, Path]:
    """``NAME=PATH`` -> (name, path); ConfigurationError if malformed."""
    name, sep, path = spec.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise ConfigurationError(f"--model expects NAME=PATH, got {spec!r}")
    return name.strip(), Path(path.strip())


def load_models(
    specs: Iterable[str] = (), *, include_default: bool = True
) -> dict[str, LogisticModel]:
    """The bundled census-income model (unless ``include_default`` is False) plus one
    LogisticModel per ``NAME=PATH`` spec; a spec overrides a model of the same name."""
    models: dict[str, LogisticModel] = {}
    if include_default:
        models[DEFAULT_MODEL] = load_bundled(DEFAULT_MODEL)
    for spec in specs:
        name, path = parse_model_spec(spec)
        models[name] = LogisticModel.load(path)
    return models


def serve_models(models: Mapping[str, LogisticModel]) -> dict[str, ServedModel]:
    if not models:
        raise ConfigurationError("the emulator needs at least one model to serve")
    return {name: ServedModel.of(name, model) for name, model in models.items()}
