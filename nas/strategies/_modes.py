"""Ranking completed trials under a search mode (Pareto, lexicographic, scalarized, hybrid).

Why in strategies: the study always stores every objective (so the front can be read whatever the mode);
the mode only changes which trials a strategy treats as the best parents / incumbents.
"""

from __future__ import annotations

import numpy as np

from nas.objectives import Mode, ObjectiveSet
from nas.pareto import crowding_distance, dominates, non_dominated_sort


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


def pareto_ranked(objectives: ObjectiveSet | None, mode: Mode | None) -> bool:
    """Whether `fitness_order` ranks by Pareto rank (then diversity) rather than a mode's score."""
    return mode is None or mode.name == "pareto" or objectives is None


def dominators_of(P: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Mask of the rows of `P` that dominate `f` (no worse in every objective, better in one); `f` may hold
    several points as `k x 1 x m`, giving a `k x n` mask."""
    return dominates(P, f)


def dominated_by(P: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Mask of the rows of `P` that `f` dominates."""
    return dominates(f, P)


class EliteArchive:
    """The rows of a growing history that can still be among its best `size` under `fitness_order`'s Pareto
    ranking: fed row by row, so asking for the best `size` costs a ranking of these rows, not of all.

    Why it is exact: ranks only grow as rows are added and a dominator never leaves, so a feasible row that
    `size` feasible rows dominate has `size` rows in earlier fronts for good and is never among the best
    `size` again; every row that dominates a kept row is kept too (it has fewer dominators), so kept rows
    keep their Pareto ranks, and the fronts that reach the best `size` are kept whole (crowding and
    hypervolume ties see the same members). Infeasible rows rank by violation only: the `size` least
    violating are kept. Rows are history positions; `fitness_order` over them in ascending position breaks
    ties as it does over all rows.

    Example:
        >>> archive = EliteArchive(2)
        >>> archive.add(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.0, 5.0]]), np.zeros(4), 0, 4)
        >>> archive.rows().tolist()
        [0, 1, 3]
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.folded = 0
        self._feasible: list[int] = []
        self._kept: list[int] = []
        self._counts = np.zeros(0, dtype=np.int64)
        self._infeasible: list[tuple[float, int]] = []

    def copy(self) -> EliteArchive:
        other = EliteArchive(self.size)
        other.folded = self.folded
        other._feasible = list(self._feasible)
        other._kept = list(self._kept)
        other._counts = self._counts.copy()
        other._infeasible = list(self._infeasible)
        return other

    def add(self, F: np.ndarray, violation: np.ndarray, start: int, stop: int) -> None:
        """Fold rows `start..stop` of `F` (`n x n_objectives`, minimised) and `violation` (`n`); `start` must
        be the number of rows folded so far."""
        assert start == self.folded, "rows are folded in order, each once"
        for i in range(start, stop):
            if violation[i] > 0:
                self._infeasible.append((float(violation[i]), i))
                self._infeasible.sort()
                del self._infeasible[self.size :]
                continue
            f = F[i]
            if self._kept:
                beaten = dominated_by(F[self._kept], f)
                if beaten.any():
                    self._counts = self._counts + beaten
                    alive = self._counts < self.size
                    self._kept = [k for k, ok in zip(self._kept, alive) if ok]
                    self._counts = self._counts[alive]
            n_dominators = int(dominators_of(F[self._feasible], f).sum()) if self._feasible else 0
            if n_dominators < self.size:
                self._kept.append(i)
                self._counts = np.append(self._counts, n_dominators)
            self._feasible.append(i)
        self.folded = stop

    def rows(self) -> np.ndarray:
        """Kept rows (feasible and infeasible) in ascending position."""
        return np.array(sorted(self._kept + [i for _, i in self._infeasible]), dtype=np.int64)


class FoldedElite:
    """An `EliteArchive` kept over a sampler's history views: the settled rows are folded once per epoch,
    the tail after them (rows other workers' unfinished trials precede) on a copy at each ask."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._epoch: int | None = None
        self._archive = EliteArchive(size)

    def rows(self, F: np.ndarray, violation: np.ndarray, settled: int, epoch: int) -> np.ndarray:
        if epoch != self._epoch or settled < self._archive.folded:
            self._epoch, self._archive = epoch, EliteArchive(self.size)
        self._archive.add(F, violation, self._archive.folded, settled)
        if settled == len(F):
            return self._archive.rows()
        tail = self._archive.copy()
        tail.add(F, violation, settled, len(F))
        return tail.rows()


def best_first(F: np.ndarray, violation: np.ndarray, objectives: ObjectiveSet | None, mode: Mode | None, step: int, k: int, elite: FoldedElite | None, settled: int, epoch: int, tie: str = "crowding") -> np.ndarray:
    """The first `k` of `fitness_order(F, violation, ...)`: over `elite`'s rows under Pareto ranking (exact,
    see `EliteArchive`, whose size must be at least `k`), over all rows under a mode's scalar score."""
    if elite is None or not pareto_ranked(objectives, mode):
        return fitness_order(F, violation, objectives, mode, step, tie=tie)[:k]
    assert elite.size >= k
    rows = elite.rows(F, violation, settled, epoch)
    return rows[fitness_order(F[rows], violation[rows], objectives, mode, step, tie=tie)][:k]
