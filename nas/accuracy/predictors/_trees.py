"""Tree ensembles: random forest (with uncertainty from the trees' spread) and gradient boosting.

Why trees: on small training sets (tens of archs) with categorical encodings they are the strongest
cheap predictors in published comparisons (White et al. 2021, "How powerful are performance predictors
in NAS?"), train in well under a second, and need no input scaling.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor

from nas.accuracy.predictors._base import ArchRegressor


class RandomForestPredictor(ArchRegressor):
    """Random forest on encoded archs; `predict(X, return_std=True)` gives the spread over trees.

    Args:
        n_estimators: trees.
        max_features: fraction of features tried per split (decorrelates trees on one-hot inputs).
        min_samples_leaf: smallest leaf.
        random_state: seed of bootstrap and feature sampling.

    Example:
        >>> X = np.random.default_rng(0).random((20, 3)); y = X.sum(axis=1)
        >>> mean, std = RandomForestPredictor(n_estimators=10, random_state=0).fit(X, y).predict(X[:2], return_std=True)
        >>> mean.shape, bool((std >= 0).all())
        ((2,), True)
    """

    def __init__(self, n_estimators: int = 200, max_features: float = 0.5, min_samples_leaf: int = 1, random_state: int | None = None) -> None:
        self.n_estimators = n_estimators
        self.max_features = max_features
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _gives_std(self) -> bool:
        return True

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.forest_ = RandomForestRegressor(
            n_estimators=self.n_estimators,
            max_features=self.max_features,
            min_samples_leaf=self.min_samples_leaf,
            random_state=self.random_state,
            n_jobs=1,
        ).fit(X, y)

    def _predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        if not return_std:
            return self.forest_.predict(X), None
        per_tree = np.stack([tree.predict(X) for tree in self.forest_.estimators_])  # n_trees x n_archs
        return per_tree.mean(axis=0), per_tree.std(axis=0)


class GradientBoostingPredictor(ArchRegressor):
    """Gradient-boosted trees (scikit-learn) on encoded archs; no uncertainty.

    Args:
        n_estimators: boosting rounds.
        learning_rate: shrinkage per round.
        max_depth: depth of each tree.
        subsample: row fraction per round (stochastic boosting; regularises on tiny training sets).
        random_state: seed.
    """

    def __init__(
        self, n_estimators: int = 300, learning_rate: float = 0.05, max_depth: int = 3, subsample: float = 0.8, random_state: int | None = None
    ) -> None:
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.subsample = subsample
        self.random_state = random_state

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.booster_ = GradientBoostingRegressor(
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            max_depth=self.max_depth,
            subsample=self.subsample,
            random_state=self.random_state,
        ).fit(X, y)

    def _predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return self.booster_.predict(X), None
