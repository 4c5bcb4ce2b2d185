"""The bundled pure-Python logistic regression: inference (:mod:`.logreg`), training
(:mod:`.train`, needs numpy) and the census-income artifact."""

from amlproxy.localmodel.logreg import (
    LogisticModel,
    bundled_model_path,
    load_bundled,
)

__all__ = ["LogisticModel", "bundled_model_path", "load_bundled"]
