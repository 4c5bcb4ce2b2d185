"""The pydantic-direct peer: :func:`peers.scoring.score_csv` with ``model_validate``."""

from __future__ import annotations

from peers.census_model import CensusRecord
from peers.scoring import Predict, score_csv


def score(body: bytes, source: str, predict: Predict) -> tuple[bytes, bytes, int]:
    return score_csv(body, source, CensusRecord.model_validate, predict)
