"""A mean of three tree ensembles (gradient boosting, random forest, extra trees) on encoded archs.

Why three: with 100 training archs each tree model alone errs in its own way (boosting overfits a few
steep splits, forests average coarse ones); on NB201 with the `effective_zc` encoding their mean ranks
the unseen archs better than any one of them (Spearman 0.935-0.941 against 0.923-0.933 alone at 100
training archs, benchmarks/predictors.py). A plain mean, not a rank average: a prediction must not depend
on which other archs are in the batch.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import ExtraTreesRegressor, GradientBoostingRegressor, RandomForestRegressor

from nas.accuracy.predictors._base import ArchRegressor


class TreeEnsemblePredictor(ArchRegressor):
    """Mean prediction of gradient boosting, a random forest and extra trees; `predict(X,
    return_std=True)` gives the spread over the two forests' trees.

    Args:
        n_boosting: boosting rounds of the gradient-boosted member.
        learning_rate: its shrinkage per round.
        max_depth: its tree depth.
        n_trees: trees in each forest member.
        max_features: fraction of features tried per split in the forests.
        random_state: seed of every member.

    Example:
        >>> X = np.random.default_rng(0).random((30, 4)); y = X @ np.array([1.0, 2.0, 0.0, -1.0])
        >>> model = TreeEnsemblePredictor(n_boosting=20, n_trees=10, random_state=0).fit(X, y)
        >>> mean, std = model.predict(X[:3], return_std=True)
        >>> mean.shape, bool((std >= 0).all())
        ((3,), True)
    """

    def __init__(
        self,
        n_boosting: int = 300,
        learning_rate: float = 0.05,
        max_depth: int = 3,
        n_trees: int = 250,
        max_features: float = 0.5,
        random_state: int | None = None,
    ) -> None:
        self.n_boosting = n_boosting
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.n_trees = n_trees
        self.max_features = max_features
        self.random_state = random_state

    def _gives_std(self) -> bool:
        return True

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        self.booster_ = GradientBoostingRegressor(
            n_estimators=self.n_boosting, learning_rate=self.learning_rate, max_depth=self.max_depth, subsample=0.8, random_state=self.random_state
        ).fit(X, y)
        forest = {"n_estimators": self.n_trees, "max_features": self.max_features, "random_state": self.random_state, "n_jobs": 1}
        self.forests_ = [RandomForestRegressor(**forest).fit(X, y), ExtraTreesRegressor(**forest).fit(X, y)]

    def _predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        members = [self.booster_.predict(X)] + [forest.predict(X) for forest in self.forests_]
        mean = np.mean(members, axis=0)
        if not return_std:
            return mean, None
        per_tree = np.concatenate([np.stack([tree.predict(X) for tree in forest.estimators_]) for forest in self.forests_])  # n_trees x n_archs
        return mean, per_tree.std(axis=0)
