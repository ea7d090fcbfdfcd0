"""What every accuracy predictor shares: input checks with one-line errors, and `predict(X, return_std)`.

Why a shared base: each estimator is a real scikit-learn regressor on a 2-D encoded array
(`n_archs x n_features`), so `check_estimator` and `Pipeline` work on it; the checks a user trips over
(too few training archs, NaN targets) must read the same whatever model they picked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6

    def validate_data(estimator: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[misc]
        return estimator._validate_data(*args, **kwargs)


class PredictorInputError(ValueError):
    """Bad input to a predictor (too few samples, NaN targets, archs of another space, bad encoding)."""


class TooFewSamplesError(PredictorInputError):
    """Fewer training samples than the model needs."""


class NaNTargetError(PredictorInputError):
    """Training targets hold NaN."""


class NoUncertaintyError(PredictorInputError):
    """`predict(..., return_std=True)` on a model that gives no uncertainty."""


class ArchRegressor(RegressorMixin, BaseEstimator):
    """Base of the accuracy predictors: validates, then calls `_fit(X, y)` and `_predict(X, return_std)`.

    Subclasses set `min_samples_needed` (class attribute), override `_gives_std()`, and store only keyword
    parameters in `__init__`.
    """

    min_samples_needed: int = 2

    def _gives_std(self) -> bool:
        return False

    def _check_fit_input(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        if y is not None:
            targets = np.asarray(y)
            if targets.dtype.kind == "f" and np.isnan(targets).any():
                bad = int(np.isnan(targets).sum())
                raise NaNTargetError(
                    f"{type(self).__name__}: {bad} of {targets.size} training targets are NaN; drop or fill them before fitting"
                )
        X, y = validate_data(self, X, y, y_numeric=True, dtype=np.float64)
        n = X.shape[0]
        if n < self.min_samples_needed:
            raise TooFewSamplesError(
                f"{type(self).__name__} needs at least {self.min_samples_needed} training samples, got {n} sample{'' if n == 1 else 's'}"
            )
        return X, np.asarray(y, dtype=np.float64)

    def fit(self, X: Any, y: Any) -> ArchRegressor:
        """Fit on `X` (`n_archs x n_features`) and targets `y` (`n_archs`)."""
        X, y = self._check_fit_input(X, y)
        self._fit(X, y)
        return self

    def predict(self, X: Any, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predicted targets (`n_archs`), and with `return_std` their standard deviation (`n_archs`)."""
        check_is_fitted(self)
        if return_std and not self._gives_std():
            raise NoUncertaintyError(f"{type(self).__name__} gives no uncertainty; return_std=True works with rf, gp, mlp and gin")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        mean, std = self._predict(X, return_std)
        return (mean, std) if return_std else mean

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        raise NotImplementedError

    def _predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError


def standardise(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column means and scales of `values` (`n x d`) with constant columns scaled by 1, not 0."""
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    return mean, np.where(scale > 1e-12, scale, 1.0)
