"""A learned accuracy provider for active learning: fitted on the labels a search has paid for so far.

Why "observe, then predict": a predictor needs labelled archs, and during a search the only honest labels
are those the real evaluator (a table query or a training run) produced for completed trials. The provider
keeps them, refits its model when new labels arrived, predicts accuracy (with uncertainty where the model
gives it) for unseen candidates, and ranks candidates so a strategy evaluates only the promising ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nas.accuracy.predictors import make_predictor, predictors
from nas.accuracy.predictors._base import NaNTargetError, PredictorInputError
from nas.objectives import MetricProvider, Tier
from nas.spaces.base import Arch, SearchSpace


class PredictorProvider(MetricProvider):
    """Predicted accuracy from model `model` fitted on observed (arch, accuracy) pairs.

    `evaluate` returns NaN for every arch until `min_train` distinct archs were observed, so nothing
    downstream mistakes an untrained guess for a value. Observing an arch again replaces its label.

    Args:
        model: registered predictor name (rf, gbm, trees, mlp, gp, gin).
        space: the space of the archs.
        encoding: the model's encoding; None picks its default.
        min_train: labels needed before predicting (at least the model's own minimum).
        seed: `random_state` of the model.
        params: further estimator parameters.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> p = PredictorProvider("rf", space, min_train=3, n_estimators=10)
        >>> archs = space.enumerate()[:4]
        >>> bool(np.isnan(p.evaluate(archs[:1])).all())
        True
        >>> p.observe(archs[:3], [10.0, 20.0, 30.0])
        >>> p.evaluate(archs[3:]).shape
        (1,)
    """

    metric = "accuracy"
    tier = Tier.ESTIMATE

    def __init__(self, model: str, space: SearchSpace, *, encoding: str | None = None, min_train: int = 10, seed: int | None = 0, **params: Any) -> None:
        spec = predictors.get(model)
        self.model = model
        self.space = space
        self.min_train = max(int(min_train), spec.estimator.min_samples_needed)
        params = {"random_state": seed, **params}
        self.pipeline = make_predictor(model, space, encoding, **params)
        self.encoding = self.pipeline.named_steps["encode"].kind
        self.seed = seed
        self._labels: dict[Arch, float] = {}
        self._fitted_on = 0
        self._dirty = False

    @property
    def n_observed(self) -> int:
        return len(self._labels)

    def observe(self, archs: Sequence[Arch], values: Sequence[float] | np.ndarray) -> None:
        """Adds labelled archs (`n_archs` values from the real evaluator); NaN labels are refused."""
        y = np.asarray(values, dtype=float).reshape(-1)
        if len(y) != len(archs):
            raise PredictorInputError(f"observe got {len(archs)} archs but {len(y)} values")
        if np.isnan(y).any():
            raise NaNTargetError(f"observe got {int(np.isnan(y).sum())} NaN label(s); only completed evaluations are labels")
        for arch, value in zip(archs, y):
            self._labels[self.space.validate(arch)] = float(value)
        self._dirty = True

    def set_labels(self, archs: Sequence[Arch], values: Sequence[float] | np.ndarray) -> None:
        """Replaces every label with these (an active learner re-reads them from its study)."""
        self._labels = {}
        self.observe(archs, values)

    @property
    def ready(self) -> bool:
        """Whether enough labels were observed to predict."""
        return self.n_observed >= self.min_train

    def _ensure_fitted(self) -> bool:
        if self.n_observed < self.min_train:
            return False
        if self._dirty:
            archs = list(self._labels)
            self.pipeline.fit(archs, np.array([self._labels[a] for a in archs]))
            self._fitted_on = len(archs)
            self._dirty = False
        return True

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted accuracy per arch (`n_archs`); NaN everywhere before `min_train` labels."""
        if not self._ensure_fitted():
            return np.full(len(archs), np.nan)
        return np.asarray(self.pipeline.predict(list(archs)), dtype=float)

    def evaluate_with_std(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (`n_archs` each); NaN before `min_train` labels."""
        if not self._ensure_fitted():
            nan = np.full(len(archs), np.nan)
            return nan, nan.copy()
        mean, std = self.pipeline.predict(list(archs), return_std=True)
        return np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    def select(self, candidates: Sequence[Arch], k: int, *, kappa: float = 0.0) -> list[Arch]:
        """The `k` candidates with the highest mean + kappa * std (kappa > 0 needs a model with std).

        Before `min_train` labels there is nothing to rank on: the first `k` candidates are returned as
        given, so a caller's own (e.g. random) order decides.
        """
        if k < 1:
            raise PredictorInputError(f"select needs k >= 1, got {k}")
        if not self._ensure_fitted():
            return list(candidates)[:k]
        if kappa:
            mean, std = self.evaluate_with_std(candidates)
            score = mean + kappa * std
        else:
            score = self.evaluate(candidates)
        order = np.argsort(-score, kind="stable")[:k]
        return [candidates[int(i)] for i in order]

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "model": self.model, "encoding": self.encoding, "trained_on": self._fitted_on, "seed": self.seed}


__all__ = ["PredictorProvider"]
