"""Multi-objective successive halving: spend expensive evaluations only on archs a cheap one ranks well.

Why here and not in `nas/strategies/`: a strategy proposes archs to an Optuna study and never knows a
provider; successive halving does the opposite: it takes given candidates and decides at which fidelity
(which accuracy provider: 12-epoch table, 200-epoch table, a short or long training run) each is
evaluated. It is a scheduler of accuracy evaluations, so it lives with the accuracy providers.

Rung i evaluates its archs at fidelity i, ranks them by Pareto rank over all objectives (accuracy at that
fidelity, the cheap metrics such as latency or params as they are; feasible archs first), ties broken by
NSGA-II crowding distance, and promotes the best `ceil(n / eta)` to rung i + 1. The last rung's Pareto
front is the result. On NB201 the 12-epoch table is the cheap fidelity of the 200-epoch result; on a
user's data the fidelities are epochs of one training (`training_fidelities`): a promoted architecture
continues its training where the last rung stopped, so its cost is the epochs it adds.

Example:
    >>> import numpy as np
    >>> promote(np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [2.0, 2.0]]), 2).tolist()
    [0, 1]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from nas.objectives import MetricProvider, ObjectiveSet, Tier
from nas.pareto import ParetoFront, crowding_distance
from nas.spaces.base import Arch, SearchSpace


class MultiFidelityError(ValueError):
    """A schedule that cannot run: no fidelities, bad eta, missing providers."""


@dataclass(frozen=True)
class Fidelity:
    """One accuracy fidelity: its name, the provider giving accuracy at it, and the cost of one evaluation
    (in any unit the user compares budgets in, e.g. training epochs). `incremental`: an arch evaluated at
    the previous fidelity pays only the difference (training continues instead of restarting)."""

    name: str
    provider: MetricProvider
    cost: float
    incremental: bool = False


def promote(F: np.ndarray, k: int, feasible: np.ndarray | None = None) -> np.ndarray:
    """Indices of the `k` best rows of `F` (`n x n_objectives`, minimised): by Pareto rank (feasible rows
    first), then by crowding distance within the rank (larger first), then by row order."""
    F = np.asarray(F, dtype=float)
    ranks = ParetoFront(F, feasible=feasible).ranks
    crowd = np.zeros(len(F))
    for r in np.unique(ranks):
        rows = np.flatnonzero(ranks == r)
        finite = rows[np.isfinite(F[rows]).all(axis=1)]
        if len(finite):
            crowd[finite] = crowding_distance(F[finite])
    order = np.lexsort((np.arange(len(F)), -crowd, ranks))
    return np.sort(order[:k])


@dataclass
class HalvingResult:
    """What a successive-halving run evaluated: one frame per rung (`arch`, every metric, `promoted`),
    the final Pareto front (rows of the last rung), and the total cost spent."""

    rungs: list[pd.DataFrame]
    front: pd.DataFrame
    cost: float
    fidelities: list[str] = field(default_factory=list)


class SuccessiveHalving:
    """Multi-objective successive halving over a list of fidelities, cheapest first.

    Args:
        fidelities: accuracy fidelities in increasing cost; the last one is the result's accuracy.
        objectives: the objectives (and constraints); `metric` must be one of them.
        cheap: providers of every other metric the objectives and constraints name (evaluated once).
        eta: keep `ceil(n / eta)` archs per rung.
        metric: the objective the fidelities stand for.

    Example:
        >>> from nas.spaces import get_space
        >>> from nas.objectives import TableColumnProvider
        >>> space = get_space("nb201")
        >>> archs = space.enumerate()[:9]
        >>> s = [space.to_string(a) for a in archs]
        >>> low = TableColumnProvider("accuracy", space, s, np.arange(9.0), source={})
        >>> high = TableColumnProvider("accuracy", space, s, np.arange(9.0) * 2, source={})
        >>> sh = SuccessiveHalving([Fidelity("low", low, 1), Fidelity("high", high, 10)], ObjectiveSet.parse("accuracy:max"), {}, eta=3)
        >>> result = sh.run(archs)
        >>> len(result.rungs[1]), result.cost, result.front["accuracy"].tolist()
        (3, 39.0, [16.0])
    """

    def __init__(self, fidelities: Sequence[Fidelity], objectives: ObjectiveSet, cheap: Mapping[str, MetricProvider], *, eta: float = 3, metric: str = "accuracy") -> None:
        if not fidelities:
            raise MultiFidelityError("successive halving needs at least one fidelity")
        if not eta > 1:
            raise MultiFidelityError(f"eta must be > 1, got {eta}")
        if metric not in objectives.names:
            raise MultiFidelityError(f"the fidelities stand for {metric!r}, which is not an objective ({objectives.names})")
        missing = [m for m in objectives.metrics if m != metric and m not in cheap]
        if missing:
            raise MultiFidelityError(f"no provider for metric(s) {missing}; pass them in `cheap`")
        self.fidelities = list(fidelities)
        self.objectives = objectives
        self.cheap = dict(cheap)
        self.eta = float(eta)
        self.metric = metric

    def rung_sizes(self, n: int) -> list[int]:
        """Archs evaluated at each fidelity when starting from `n`."""
        sizes = [n]
        for _ in self.fidelities[1:]:
            sizes.append(max(1, math.ceil(sizes[-1] / self.eta)))
        return sizes

    def run(self, archs: Sequence[Arch]) -> HalvingResult:
        current = list(dict.fromkeys(archs))
        if not current:
            raise MultiFidelityError("successive halving needs at least one architecture")
        space_metrics = {m: p.evaluate(current) for m, p in self.cheap.items()}
        position = {a: i for i, a in enumerate(current)}
        rungs, cost = [], 0.0
        sizes = self.rung_sizes(len(current))
        for level, fidelity in enumerate(self.fidelities):
            rows = [position[a] for a in current]
            metrics = {m: v[rows] for m, v in space_metrics.items()}
            metrics[self.metric] = np.asarray(fidelity.provider.evaluate(current), dtype=float)
            paid = fidelity.cost - (self.fidelities[level - 1].cost if fidelity.incremental and level else 0.0)
            cost += paid * len(current)
            frame = pd.DataFrame({"arch": current, **metrics})
            F = self.objectives.to_minimisation(frame[self.objectives.names].to_numpy(dtype=float))
            feasible = (self.objectives.violations(metrics) <= 0).all(axis=1)
            last = level == len(self.fidelities) - 1
            keep = np.arange(len(current)) if last else promote(F, sizes[level + 1], feasible)
            frame["promoted"] = np.isin(np.arange(len(current)), keep) & (not last)
            frame.insert(1, "fidelity", fidelity.name)
            rungs.append(frame)
            if last:
                front_rows = ParetoFront(F, feasible=feasible & np.isfinite(F).all(axis=1)).indices
                front = frame.iloc[front_rows].reset_index(drop=True)
            else:
                current = [current[int(i)] for i in keep]
        return HalvingResult(rungs, front, cost, [f.name for f in self.fidelities])


def nb201_fidelities(space: SearchSpace, dataset: str = "cifar10", data_dir: str | Path | None = None) -> list[Fidelity]:
    """NB201's two table fidelities: 12-epoch (cost 12) and 200-epoch (cost 200) validation accuracy."""
    from nas.accuracy.tables import table_accuracy

    return [
        Fidelity("12ep", table_accuracy(space, dataset, data_dir, fidelity="12ep"), 12.0),
        Fidelity("200ep", table_accuracy(space, dataset, data_dir, fidelity="200ep"), 200.0),
    ]


class LearningCurves:
    """Trains architectures epoch by epoch on real data and keeps each one's trainer, so a later, longer
    fidelity continues an architecture's training instead of restarting it.

    Args:
        space: the search space.
        data: prepared data (`nas.accuracy.training.load_prepared`).
        recipe: the training recipe (its `epochs` is the full fidelity).
        seed: initial weights and batch order.
    """

    def __init__(self, space: SearchSpace, data: object, recipe: object, *, seed: int = 0) -> None:
        self.space, self.data, self.recipe, self.seed = space, data, recipe, seed
        self._trainers: dict[Arch, object] = {}

    def accuracy_at(self, archs: Sequence[Arch], epoch: int) -> np.ndarray:
        """Validation accuracy (%) of each arch after `epoch` epochs (training them that far)."""
        from nas.accuracy.training import make_trainer

        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            trainer = self._trainers.get(arch)
            if trainer is None:
                trainer = self._trainers[arch] = make_trainer(self.space, arch, self.data, self.recipe, seed=self.seed)  # type: ignore[arg-type]
            trainer.run(until=epoch)  # type: ignore[attr-defined]
            out[i] = trainer.curve[epoch - 1].val_accuracy  # type: ignore[attr-defined]
        return out

    @property
    def epochs_trained(self) -> int:
        """Epochs trained so far over every architecture: the compute spent."""
        return sum(t.epoch for t in self._trainers.values())  # type: ignore[attr-defined]


class _CurvePoint(MetricProvider):
    """Accuracy after a fixed number of epochs of a `LearningCurves` (one fidelity)."""

    metric = "accuracy"
    tier = Tier.MEASURED

    def __init__(self, curves: LearningCurves, epoch: int) -> None:
        self.curves, self.epoch = curves, epoch

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        return self.curves.accuracy_at(archs, self.epoch)


def training_fidelities(curves: LearningCurves, epochs: Sequence[int]) -> list[Fidelity]:
    """Fidelities at the given epochs of one training per arch (cost = epochs, incremental).

    Raises:
        MultiFidelityError: epochs not increasing, or beyond the recipe's.
    """
    steps = [int(e) for e in epochs]
    full = int(curves.recipe.epochs)  # type: ignore[attr-defined]
    if not steps or steps != sorted(set(steps)) or steps[0] < 1 or steps[-1] > full:
        raise MultiFidelityError(f"training fidelities {steps} must be increasing epochs in 1..{full} (the recipe's epochs)")
    return [Fidelity(f"{e}ep", _CurvePoint(curves, e), float(e), incremental=True) for e in steps]


__all__ = [
    "Fidelity",
    "HalvingResult",
    "LearningCurves",
    "MultiFidelityError",
    "SuccessiveHalving",
    "nb201_fidelities",
    "promote",
    "training_fidelities",
]
