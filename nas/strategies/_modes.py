"""Ranking completed trials under a search mode (Pareto, lexicographic, scalarized, hybrid).

Why in strategies: the study always stores every objective (so the front can be read whatever the mode);
the mode only changes which trials a strategy treats as the best parents / incumbents.
"""

from __future__ import annotations

import numpy as np

from nas.objectives import Mode, ObjectiveSet
from nas.pareto import crowding_distance, non_dominated_sort


def _normalise(F: np.ndarray) -> np.ndarray:
    lo, hi = F.min(axis=0), F.max(axis=0)
    return (F - lo) / np.where(hi > lo, hi - lo, 1.0)


def hybrid_weights(n_objectives: int, step: int, period: int = 16) -> np.ndarray:
    """Weights that sweep the simplex: a low-discrepancy walk so consecutive steps aim at different trade-offs."""
    golden = (np.sqrt(5) - 1) / 2
    u = (step * golden + np.arange(n_objectives - 1) * 0.3819660112501051) % 1.0
    # stick-breaking on sorted uniforms gives a point on the simplex
    cuts = np.sort(u)
    w = np.diff(np.concatenate([[0.0], cuts, [1.0]]))
    return w if n_objectives > 1 else np.ones(1)


def mode_scores(F: np.ndarray, objectives: ObjectiveSet, mode: Mode, step: int = 0) -> np.ndarray:
    """Scalar score per row of `F` (`n x n_objectives`, minimised): lower is better. Pareto mode -> rank."""
    F = np.asarray(F, dtype=float)
    if len(F) == 0:
        return np.zeros(0)
    if mode.name == "pareto":
        return non_dominated_sort(F).astype(float)
    if mode.name == "hybrid":
        return _normalise(F) @ hybrid_weights(F.shape[1], step)
    if mode.name == "scalarized" and mode.kind == "weighted_sum":
        return _normalise(F) @ np.asarray(mode.weights)
    if mode.name == "scalarized":  # MnasNet product: maximise ACC * prod (c / T)^w
        values = objectives.from_minimisation(F)
        reward = np.ones(len(F))
        for j, (obj, target) in enumerate(zip(objectives.objectives, mode.targets)):
            if target is None:
                reward = reward * (values[:, j] if obj.direction == "max" else 1.0 / np.maximum(values[:, j], 1e-12))
            else:
                reward = reward * (np.maximum(values[:, j], 1e-12) / target) ** mode.exponent
        return -reward
    # lexicographic: rank by order[0] with tolerance, ties broken by the next objective, ...
    keys = []
    for j, tol in zip(mode.order, mode.tolerances):
        col = F[:, j]
        best = col.min()
        within = col <= best + tol * abs(best)
        keys.append(np.where(within, best, col))
    return np.lexsort(tuple(reversed(keys))).argsort().astype(float)


def fitness_order(F: np.ndarray, violation: np.ndarray, objectives: ObjectiveSet | None, mode: Mode | None, step: int = 0, tie: str = "crowding") -> np.ndarray:
    """Indices best-first: feasible before infeasible (by violation), then by mode score, then diversity."""
    n = len(F)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    feasible = violation <= 0
    primary = np.full(n, np.inf)
    secondary = np.zeros(n)
    idx = np.flatnonzero(feasible)
    if len(idx):
        if mode is None or mode.name == "pareto" or objectives is None:
            ranks = non_dominated_sort(F[idx])
            primary[idx] = ranks
            for r in np.unique(ranks):
                members = idx[ranks == r]
                if tie == "hypervolume" and len(members) > 1:
                    from nas.pareto import hypervolume_contributions

                    sub = F[members]
                    ref = sub.max(axis=0) + 1e-9 + 0.1 * (sub.max(axis=0) - sub.min(axis=0))
                    secondary[members] = -hypervolume_contributions(sub, ref)
                else:
                    secondary[members] = -crowding_distance(F[members])
        else:
            primary[idx] = mode_scores(F[idx], objectives, mode, step)
    return np.lexsort((secondary, primary, violation))
