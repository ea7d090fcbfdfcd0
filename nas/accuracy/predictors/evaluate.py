"""Hold-out rank correlation of a predictor: train on N random archs, score on every other one.

Why rank correlation on all the rest: a search uses a predictor to order candidates, so Spearman and
Kendall over every unseen arch of the table are the numbers that matter (as in White et al. 2021), not
the error in accuracy points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import kendalltau, spearmanr

from nas.accuracy.predictors import make_predictor
from nas.accuracy.predictors._base import TooFewSamplesError
from nas.spaces.base import Arch, SearchSpace


@dataclass(frozen=True)
class HoldoutScore:
    """Spearman and Kendall between predictions and truth on `n_test` archs, after training on `n_train`."""

    spearman: float
    kendall: float
    n_train: int
    n_test: int

    def line(self) -> str:
        return f"spearman={self.spearman:.4f} kendall={self.kendall:.4f} n_test={self.n_test}"


def split(n: int, train_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random train rows (`train_size`) and the remaining test rows of `n`, from `default_rng(seed)`."""
    if not 1 <= train_size < n:
        raise TooFewSamplesError(f"train size must be between 1 and {n - 1} (the table has {n} archs), got {train_size}")
    train = np.sort(np.random.default_rng(seed).choice(n, size=train_size, replace=False))
    test = np.setdiff1d(np.arange(n), train, assume_unique=True)
    return train, test


def rank_correlation(predicted: np.ndarray, truth: np.ndarray, n_train: int) -> HoldoutScore:
    rho = float(spearmanr(predicted, truth)[0])
    tau = float(kendalltau(predicted, truth)[0])
    return HoldoutScore(rho, tau, n_train, len(truth))


def holdout_score(
    model: str,
    space: SearchSpace,
    archs: Sequence[Arch],
    y: np.ndarray,
    *,
    train_size: int,
    seed: int,
    encoding: str | None = None,
    **params: Any,
) -> HoldoutScore:
    """Fit `model` on `train_size` random archs (seeded) and rank every other arch of `archs`."""
    y = np.asarray(y, dtype=float)
    train, test = split(len(archs), train_size, seed)
    pipeline = make_predictor(model, space, encoding, random_state=seed, **params)
    pipeline.fit([archs[i] for i in train], y[train])
    predicted = pipeline.predict([archs[i] for i in test])
    return rank_correlation(np.asarray(predicted), y[test], train_size)


__all__ = ["HoldoutScore", "holdout_score", "rank_correlation", "split"]
