"""Turning architectures into the 2-D arrays the estimators learn from.

Why an encoder estimator: `Pipeline([("encode", ArchEncoder(space, kind)), ("model", estimator)])` makes
`fit(archs, y)` / `predict(archs)` work on Arch objects (or their canonical strings) while the estimators
stay plain scikit-learn regressors on `n_archs x n_features` arrays.

Besides the space's own encodings (`space.encoding_kinds()`), cell spaces (NB201 family: edges of a DAG,
a `none` op) get `effective`: features of the *effective* cell, the one that computes the same function.
An op on an edge that no input-to-output route of live (non-`none`) edges passes through cannot change the
output, so NB201 holds many differently-labelled archs that are the same network; the raw one-hot makes a
predictor learn that from data, the effective one states it. On NB201 CIFAR-10 with 100 training archs
this lifts a random forest's Spearman from about 0.65 (one-hot) to about 0.90 (benchmarks/predictors.py).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from nas.accuracy.predictors._base import PredictorInputError
from nas.spaces.base import Arch, SearchSpace

EFFECTIVE = "effective"
#: `effective` plus label-free zero-cost proxy scores of the effective cell (see `_zero_cost_features`).
EFFECTIVE_ZC = "effective_zc"


class ForeignArchError(PredictorInputError):
    """An architecture that does not belong to the encoder's space."""


class UnknownEncodingError(PredictorInputError):
    """An encoding kind the space does not provide."""


def _is_cell_space(space: SearchSpace) -> bool:
    ops = getattr(space, "ops", ())
    return hasattr(space, "edges") and hasattr(space, "routes") and "none" in ops


def _builds_short_copy(space: SearchSpace) -> bool:
    return all(hasattr(space, attr) for attr in ("channels", "cells_per_stage", "nodes"))


def encoding_kinds(space: SearchSpace) -> list[str]:
    """Encodings available for `space`: its own kinds, plus `effective` for cell spaces, and
    `effective_zc` for those whose network a short copy can score (NB201 family)."""
    kinds = list(space.encoding_kinds())
    if _is_cell_space(space):
        kinds.append(EFFECTIVE)
        if _builds_short_copy(space):
            kinds.append(EFFECTIVE_ZC)
    return kinds


def _kernel(op: str) -> int:
    """Kernel size written in an op name (`nor_conv_3x3` -> 3), 0 when there is none."""
    match = re.search(r"(\d+)x\d+", op)
    return int(match.group(1)) if match else 0


def effective_ops(space: Any, archs: Sequence[Arch]) -> np.ndarray:
    """`n_archs x n_edges` op indices with every edge that cannot reach the output set to `none`.

    An edge (s, d) is effective when its op is not `none`, node s is reachable from the input and node d
    reaches the output through live edges.
    """
    idx = space.index_matrix(archs)
    none = space.ops.index("none")
    live = idx != none
    n, last = len(archs), space.nodes - 1
    from_input = {0: np.ones(n, dtype=bool)}
    for node in range(1, space.nodes):
        reach = np.zeros(n, dtype=bool)
        for e, (src, dst) in enumerate(space.edges):
            if dst == node:
                reach |= live[:, e] & from_input[src]
        from_input[node] = reach
    to_output = {last: np.ones(n, dtype=bool)}
    for node in range(last - 1, -1, -1):
        reach = np.zeros(n, dtype=bool)
        for e, (src, dst) in enumerate(space.edges):
            if src == node:
                reach |= live[:, e] & to_output[dst]
        to_output[node] = reach
    out = idx.copy()
    for e, (src, dst) in enumerate(space.edges):
        out[~(live[:, e] & from_input[src] & to_output[dst]), e] = none
    return out


def effective_features(space: Any, archs: Sequence[Arch]) -> np.ndarray:
    """`n_archs x n_features` float array describing the effective cell.

    Blocks, in order: one-hot of each edge's effective op (`n_edges * n_ops`); count of each effective op
    (`n_ops`); per input-to-output route, the number of convolutions and of the largest-kernel op along
    it, -1 when `none` cuts the route (`2 * n_routes`); number of live routes, most and fewest
    convolutions on a live route (-1 without one).
    """
    ops = effective_ops(space, archs)
    n, n_ops = len(archs), len(space.ops)
    onehot = np.zeros((n, ops.shape[1] * n_ops), dtype=np.float64)
    onehot[np.repeat(np.arange(n), ops.shape[1]), (ops + np.arange(ops.shape[1]) * n_ops).ravel()] = 1.0
    counts = np.stack([(ops == k).sum(axis=1) for k in range(n_ops)], axis=1)
    convs = [i for i, op in enumerate(space.ops) if "conv" in op]
    is_conv = np.isin(ops, convs)
    is_big = ops == (max(convs, key=lambda i: _kernel(space.ops[i])) if convs else -1)
    live = ops != space.ops.index("none")
    per_route, alive_routes, depths = [], [], []
    for route in space.routes():
        cols = list(route)
        alive = live[:, cols].all(axis=1)
        depth = is_conv[:, cols].sum(axis=1)
        per_route += [np.where(alive, depth, -1), np.where(alive, is_big[:, cols].sum(axis=1), -1)]
        alive_routes.append(alive)
        depths.append(np.where(alive, depth, -1))
    alive_m, depth_m = np.stack(alive_routes, axis=1), np.stack(depths, axis=1)
    any_alive = alive_m.any(axis=1)
    fewest = np.where(any_alive, np.where(depth_m < 0, np.iinfo(np.int64).max, depth_m).min(axis=1), -1)
    summary = np.stack([alive_m.sum(axis=1), depth_m.max(axis=1), fewest], axis=1)
    return np.concatenate([onehot, counts, np.stack(per_route, axis=1), summary], axis=1).astype(np.float64)


def resolve_space(space: SearchSpace | str) -> SearchSpace:
    if isinstance(space, SearchSpace):
        return space
    from nas.spaces import get_space

    return get_space(str(space))


class ArchEncoder(TransformerMixin, BaseEstimator):
    """Encodes a sequence of Archs (or canonical arch strings) as `n_archs x n_features` floats.

    Args:
        space: the SearchSpace (or its registered name) the archs come from.
        kind: one of `encoding_kinds(space)`: e.g. integer, onehot, adjacency, path, effective,
            effective_zc (scores each new effective cell's untrained network once, about 0.1 CPU s,
            cached under `$NAS_ZERO_COST_CACHE` or `~/.cache/nas/zero_cost`).

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> enc = ArchEncoder(space, "onehot").fit(space.enumerate()[:3])
        >>> enc.transform(["|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"]).shape
        (1, 30)
    """

    def __init__(self, space: SearchSpace | str = "nb201", kind: str = "onehot") -> None:
        self.space = space
        self.kind = kind

    def fit(self, X: Sequence[Arch | str], y: Any = None) -> ArchEncoder:
        space = resolve_space(self.space)
        kinds = encoding_kinds(space)
        if self.kind not in kinds:
            raise UnknownEncodingError(f"unknown encoding {self.kind!r} for space {space.name!r}; expected one of {kinds}")
        self.space_ = space
        self.n_features_out_ = self.transform([space.sample(np.random.default_rng(0))]).shape[1]
        return self

    def _archs(self, X: Sequence[Arch | str], positions: Sequence[int] | None = None) -> list[Arch]:
        """Validated archs; an error names the item's position in `positions` (default: in X)."""
        space = self.space_
        out = []
        for i, item in zip(positions if positions is not None else range(len(X)), X):
            try:
                out.append(space.from_string(item) if isinstance(item, str) else space.validate(item))
            except (ValueError, TypeError) as exc:
                raise ForeignArchError(f"architecture #{i} is not from space {space.name!r}: {exc}") from None
        return out

    def transform(self, X: Sequence[Arch | str]) -> np.ndarray:
        if isinstance(X, np.ndarray) and X.dtype.kind in "fiub":
            raise ForeignArchError("ArchEncoder takes architectures (Arch objects or arch strings), not a numeric array")
        items = list(X)
        if not items:
            raise PredictorInputError("no architectures to encode")
        cache = _row_cache(self.space_, self.kind)
        rows: list[np.ndarray | None] = [cache.get(x) if isinstance(x, Arch) else None for x in items]
        todo = [i for i, row in enumerate(rows) if row is None]
        if todo:
            archs = self._archs([items[i] for i in todo], todo)
            new = self._encode(archs)
            if len(cache) + len(archs) > _CACHE_ROWS:
                cache.clear()
            for i, arch, row in zip(todo, archs, new):
                rows[i] = row
                cache[arch] = row
        return np.stack(rows)  # type: ignore[arg-type]

    def _encode(self, archs: list[Arch]) -> np.ndarray:
        if self.kind == EFFECTIVE:
            return effective_features(self.space_, archs)
        if self.kind == EFFECTIVE_ZC:
            from nas.accuracy.predictors._zero_cost_features import zero_cost_features

            return np.concatenate([effective_features(self.space_, archs), zero_cost_features(self.space_, archs)], axis=1)
        return np.asarray(self.space_.encode(archs, self.kind), dtype=np.float64)


#: Rows kept per (space, encoding): all 15,625 NB201 cells fit (about 6 MB of `effective` rows). Why a
#: cache: a surrogate refit every step of a search re-encodes the same candidates (the whole NB201
#: space); validating and encoding them was 70 % of a BO step.
_CACHE_ROWS = 50_000
_ROW_CACHES: weakref.WeakKeyDictionary[SearchSpace, dict[str, dict[Arch, np.ndarray]]] = weakref.WeakKeyDictionary()


def _row_cache(space: SearchSpace, kind: str) -> dict[Arch, np.ndarray]:
    """Encoded rows of archs already validated as members of `space` (read-only arrays)."""
    return _ROW_CACHES.setdefault(space, {}).setdefault(kind, {})
