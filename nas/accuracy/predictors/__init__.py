"""Accuracy predictors: scikit-learn regressors on encoded architectures, looked up by name.

`make_predictor(name, space, encoding)` returns `Pipeline([("encode", ArchEncoder), ("model", estimator)])`
with `fit(archs, y)`, `predict(archs)` and, for models that give uncertainty, `predict(archs,
return_std=True)`. The estimators themselves take `n_archs x n_features` arrays, so they pass
scikit-learn's `check_estimator` and fit any encoding a user builds.

Example:
    >>> from nas.spaces import get_space
    >>> space = get_space("nb201")
    >>> archs = space.enumerate()[::500]
    >>> y = [float(space.to_string(a).count("conv")) for a in archs]
    >>> model = make_predictor("rf", space, n_estimators=20, random_state=0).fit(archs, y)
    >>> model.predict(archs[:2]).shape
    (2,)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sklearn.base import BaseEstimator
from sklearn.pipeline import Pipeline

from nas.accuracy.predictors._base import (
    ArchRegressor,
    NaNTargetError,
    NoUncertaintyError,
    PredictorInputError,
    TooFewSamplesError,
)
from nas.accuracy.predictors._encoder import EFFECTIVE, EFFECTIVE_ZC, ArchEncoder, ForeignArchError, UnknownEncodingError, effective_features, encoding_kinds, resolve_space
from nas.accuracy.predictors._ensemble import TreeEnsemblePredictor
from nas.accuracy.predictors._gp import GPPredictor
from nas.accuracy.predictors._trees import GradientBoostingPredictor, RandomForestPredictor
from nas.registry import Registry
from nas.spaces.base import SearchSpace

__all__ = [
    "ArchEncoder",
    "ArchRegressor",
    "ForeignArchError",
    "GINPredictor",
    "GPPredictor",
    "GradientBoostingPredictor",
    "MLPEnsemblePredictor",
    "NaNTargetError",
    "NoUncertaintyError",
    "PredictorFactory",
    "PredictorInputError",
    "PredictorSpec",
    "RandomForestPredictor",
    "TooFewSamplesError",
    "TreeEnsemblePredictor",
    "UnknownEncodingError",
    "effective_features",
    "encoding_kinds",
    "make_predictor",
    "predictors",
]


#: Estimators built on PyTorch, imported on first use: importing torch costs seconds, and a search whose
#: strategy never fits one of them (the README demo) should not pay that before its first trial.
_TORCH_ESTIMATORS = {
    "GINPredictor": "nas.accuracy.predictors._gin",
    "MLPEnsemblePredictor": "nas.accuracy.predictors._mlp",
}


def __getattr__(name: str) -> Any:
    if name in _TORCH_ESTIMATORS:
        return getattr(importlib.import_module(_TORCH_ESTIMATORS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class PredictorSpec:
    """A named predictor: its estimator class (or the name of one in `_TORCH_ESTIMATORS`, imported when
    first asked for), the encodings it accepts (None: any), and one line on it."""

    estimator_class: type[ArchRegressor] | str
    summary: str
    encodings: tuple[str, ...] | None = None
    preferred: tuple[str, ...] = (EFFECTIVE, "onehot")
    space_params: Callable[[SearchSpace], dict[str, Any]] | None = None

    @property
    def estimator(self) -> type[ArchRegressor]:
        if isinstance(self.estimator_class, str):
            return __getattr__(self.estimator_class)
        return self.estimator_class

    def encodings_for(self, space: SearchSpace) -> list[str]:
        kinds = encoding_kinds(space)
        return [k for k in kinds if self.encodings is None or k in self.encodings]

    def default_encoding(self, space: SearchSpace) -> str:
        allowed = self.encodings_for(space)
        for kind in self.preferred:
            if kind in allowed:
                return kind
        if not allowed:
            raise UnknownEncodingError(f"space {space.name!r} offers none of the encodings {list(self.encodings or ())} this model needs")
        return allowed[0]


def _graph_nodes(space: SearchSpace) -> dict[str, Any]:
    return {"n_nodes": len(getattr(space, "edges", ())) + 2}


predictors: Registry[PredictorSpec] = Registry("predictor")
predictors.add("rf", PredictorSpec(RandomForestPredictor, "random forest; uncertainty from the trees' spread"))
predictors.add("gbm", PredictorSpec(GradientBoostingPredictor, "gradient-boosted trees; no uncertainty"))
predictors.add("mlp", PredictorSpec("MLPEnsemblePredictor", "ensemble of MLPs (PyTorch); uncertainty from the members' spread"))
predictors.add("gp", PredictorSpec(GPPredictor, "Gaussian process, Matern kernel on standardised encodings; posterior std"))
predictors.add(
    "trees",
    PredictorSpec(
        TreeEnsemblePredictor,
        "mean of gradient boosting, random forest and extra trees; on NB201 it adds label-free zero-cost scores"
        " (effective_zc: each new cell scored once, about 0.05-0.1 CPU s, cached); uncertainty from the forests' trees",
        preferred=(EFFECTIVE_ZC, EFFECTIVE, "onehot"),
    ),
)
predictors.add(
    "gin",
    PredictorSpec(
        "GINPredictor",
        "graph network on the adjacency + op encoding (PyTorch ensemble); uncertainty from the members' spread",
        encodings=("adjacency",),
        preferred=("adjacency",),
        space_params=_graph_nodes,
    ),
)


def make_predictor(name: str, space: SearchSpace | str, encoding: str | None = None, **params: Any) -> Pipeline:
    """`Pipeline(encode -> model)` for predictor `name` on `space`; `params` go to the estimator.

    Args:
        name: a registered predictor (`predictors.names()`): rf, gbm, trees, mlp, gp, gin.
        space: the SearchSpace or its name.
        encoding: one of the model's encodings for the space; None picks its best (effective for cell
            spaces, effective_zc for trees on NB201, adjacency for gin).
        params: estimator keyword parameters, e.g. `n_estimators=100`, `random_state=0`.

    Raises:
        UnknownNameError: unknown predictor name.
        UnknownEncodingError: an encoding the space or the model does not offer.
    """
    spec = predictors.get(name)
    the_space = resolve_space(space)
    kind = encoding or spec.default_encoding(the_space)
    allowed = spec.encodings_for(the_space)
    if kind not in allowed:
        raise UnknownEncodingError(f"predictor {name!r} cannot use encoding {kind!r} on space {the_space.name!r}; expected one of {allowed}")
    if spec.space_params is not None:
        params = {**spec.space_params(the_space), **params}
    estimator: BaseEstimator = spec.estimator(**params)
    return Pipeline([("encode", ArchEncoder(the_space, kind)), ("model", estimator)])


from nas.accuracy.surrogate import PredictorFactory  # noqa: E402  (re-exported: its home keeps the search context light)
from nas.accuracy.predictors.data import TrainingDataError, from_csv, from_frame, from_table, from_trials  # noqa: E402
from nas.accuracy.predictors.provider import PredictorProvider  # noqa: E402  (needs make_predictor above)

__all__ += ["PredictorProvider", "TrainingDataError", "from_csv", "from_frame", "from_table", "from_trials"]
