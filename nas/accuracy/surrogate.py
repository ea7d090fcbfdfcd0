"""The surrogate factory a search context hands a strategy.

Why a module of its own: the run builds a search context for every strategy, and most never fit a
predictor (evolution, the README demo); importing `nas.accuracy.predictors` (scikit-learn's models, about
1.5 s) happens only when a predictor is built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

    from nas.spaces.base import SearchSpace


@dataclass(frozen=True)
class PredictorFactory:
    """`(name, encoding, options) -> make_predictor(name, space, encoding, **options)`: the surrogate
    factory a search context hands a strategy (a class, not a closure, so the strategy pickles).

    Example:
        >>> PredictorFactory("nb201")("rf", None, {"n_estimators": 5}).named_steps["model"].n_estimators
        5
    """

    space: SearchSpace | str

    def __call__(self, name: str, encoding: str | None, options: dict[str, Any]) -> Pipeline:
        from nas.accuracy.predictors import make_predictor

        return make_predictor(name, self.space, encoding, **options)


__all__ = ["PredictorFactory"]
