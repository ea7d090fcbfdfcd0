"""Stopping weak trials early on their learning curves: Optuna's median and Hyperband pruners, and
`pareto-halving`, a multi-objective successive-halving pruner.

Why two mechanisms: Optuna's pruners are single-objective (`Trial.report` and `should_prune` refuse
multi-objective studies; optuna#3450), yet a hardware-aware search is multi-objective. So:

- `median` / `hyperband` run Optuna's own `MedianPruner` / `HyperbandPruner`, unchanged, over a
  single-objective companion study `nas:curves` in the run's storage: one companion trial per trial of
  the search, holding its learning curve of validation accuracy. Every worker sees the same curves.
- `pareto-halving` judges a trial at each rung (epochs `min_resource * eta^k`) by its Pareto rank among
  every trial that reached that rung, on the objectives known at that point (accuracy at the rung; costs
  known before evaluation, such as latency and params, as they are), with NSGA-II crowding to break
  ties (`nas.accuracy.multifidelity.promote`, the same rule successive halving uses over tables).
  A trial goes on while it is non-dominated at its rung or among the best `n // eta` of the `n` there
  (no trial is judged until `eta` reached the rung); so a slow-to-learn but very cheap network survives
  where a single-objective pruner would stop it, and every point of the rung's front is trained out.
  The first rung defaults to `ceil(epochs / eta^2)`: on digits the validation accuracy after one of 20
  epochs does not rank networks at all (Kendall tau -0.04 with the final accuracy over 64 NB201 archs;
  0.45 after 3 epochs, 0.77 after 10: `benchmarks/results/training.md`).

A trial's curve is also written into the search's own trial (`intermediate_values`), so Optuna's
dashboard and plots show it.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from nas.accuracy.multifidelity import promote
from nas.objectives import ObjectiveSet
from nas.pareto import ParetoFront

PRUNERS = ("none", "median", "hyperband", "pareto-halving")
CURVE_STUDY = "nas:curves"
CURVE_TRIAL_ATTR = "nas:curve_trial"
#: Trial user attr with the metrics known before the trial's measured evaluation began.
KNOWN_ATTR = "known_metrics"


class PrunerError(ValueError):
    """An unknown pruner or pruner option."""


class Pruner(ABC):
    """Decides after each reported epoch whether a trial of a (multi-objective) study goes on."""

    @abstractmethod
    def should_prune(self, study: optuna.Study, trial: optuna.Trial, step: int, value: float) -> bool:
        """Whether the trial, whose curve just reached `value` at `step`, should stop."""

    def finish(self, study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None) -> None:
        """The trial ended in `state` with final value `value` (None unless complete)."""

    def describe(self) -> dict[str, Any]:
        return {"pruner": type(self).__name__}


class OptunaCurvePruner(Pruner):
    """One of Optuna's pruners over the companion study of learning curves (see the module docstring).

    Args:
        pruner: an Optuna pruner for a maximised single objective.
    """

    def __init__(self, pruner: optuna.pruners.BasePruner) -> None:
        self.pruner = pruner
        self._curves: optuna.Study | None = None
        self._trials: dict[int, optuna.Trial] = {}

    def _companion(self, study: optuna.Study, trial: optuna.Trial) -> optuna.Trial:
        if self._curves is None:
            self._curves = optuna.create_study(
                study_name=CURVE_STUDY, storage=study._storage, direction="maximize", pruner=self.pruner, load_if_exists=True
            )
        companion = self._trials.get(trial.number)
        if companion is None:
            curves = self._curves
            trial_id = curves._storage.create_new_trial(curves._study_id)
            curves._storage.set_trial_system_attr(trial_id, "nas:search_trial", trial.number)
            study._storage.set_trial_system_attr(trial._trial_id, CURVE_TRIAL_ATTR, trial_id)
            companion = self._trials[trial.number] = optuna.Trial(curves, trial_id)
        return companion

    def should_prune(self, study: optuna.Study, trial: optuna.Trial, step: int, value: float) -> bool:
        companion = self._companion(study, trial)
        companion.report(value, step)
        return bool(companion.should_prune())

    def finish(self, study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None) -> None:
        companion = self._trials.pop(trial.number, None)
        if companion is None or self._curves is None:
            return
        if state == TrialState.COMPLETE and value is not None:
            self._curves.tell(companion, value)
        else:
            self._curves.tell(companion, state=TrialState.PRUNED if state == TrialState.PRUNED else TrialState.FAIL)

    def describe(self) -> dict[str, Any]:
        return {"pruner": type(self.pruner).__name__, "curves": CURVE_STUDY}


class ParetoHalvingPruner(Pruner):
    """Multi-objective asynchronous successive halving (see the module docstring).

    Args:
        objectives: the search's objectives and constraints.
        metric: the objective the learning curve measures (accuracy).
        min_resource: the first rung, in epochs (default `ceil(max_resource / reduction_factor^2)`).
        reduction_factor: eta: a rung keeps the best `n // eta` of its `n` trials (once `n >= eta`).
        max_resource: the epochs of a full training (no rung at or beyond it).

    Example:
        >>> p = ParetoHalvingPruner(ObjectiveSet.parse("accuracy:max,latency@raspi4:min"), min_resource=1, reduction_factor=3, max_resource=20)
        >>> p.rungs
        [1, 3, 9]
        >>> ParetoHalvingPruner(ObjectiveSet.parse("accuracy:max"), max_resource=20).rungs
        [3, 9]
    """

    def __init__(self, objectives: ObjectiveSet, *, metric: str = "accuracy", min_resource: int | None = None, reduction_factor: int = 3, max_resource: int) -> None:
        if min_resource is None:
            min_resource = max(1, math.ceil(max_resource / reduction_factor**2)) if isinstance(reduction_factor, int) and reduction_factor >= 2 else 1
        if not isinstance(min_resource, int) or min_resource < 1:
            raise PrunerError(f"pruner option min_resource must be an integer >= 1, got {min_resource!r}")
        if not isinstance(reduction_factor, int) or reduction_factor < 2:
            raise PrunerError(f"pruner option reduction_factor must be an integer >= 2, got {reduction_factor!r}")
        if metric not in objectives.names:
            raise PrunerError(f"pareto-halving needs {metric!r} among the objectives {objectives.names}")
        self.objectives = objectives
        self.metric = metric
        self.min_resource = min_resource
        self.reduction_factor = reduction_factor
        self.max_resource = int(max_resource)
        rungs, r = [], min_resource
        while r < self.max_resource:
            rungs.append(r)
            r *= reduction_factor
        self.rungs = rungs

    def _point(self, trial: FrozenTrial, step: int) -> dict[str, float] | None:
        value = trial.intermediate_values.get(step)
        known = trial.user_attrs.get(KNOWN_ATTR)
        if value is None or not isinstance(known, Mapping):
            return None
        return {**known, self.metric: float(value)}

    def should_prune(self, study: optuna.Study, trial: optuna.Trial, step: int, value: float) -> bool:
        if step not in self.rungs:
            return False
        points, mine = [], None
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)):
            point = self._point(t, step)
            if point is None:
                continue
            if t.number == trial.number:
                mine = len(points)
            points.append(point)
        if mine is None or len(points) < self.reduction_factor:
            return False
        names = [n for n in self.objectives.names if all(n in p for p in points)]
        objs = self.objectives
        F = np.array([[p[n] for n in names] for p in points], dtype=float)
        F = F * np.array([objs.signs[objs.names.index(n)] for n in names])
        usable = [c for c in objs.constraints if all(c.metric in p for p in points)]
        feasible = np.ones(len(points), dtype=bool)
        for c in usable:
            feasible &= c.violation(np.array([p[c.metric] for p in points], dtype=float)) <= 0
        keep = set(promote(F, len(points) // self.reduction_factor, feasible).tolist())
        front = (ParetoFront(F, feasible=feasible).ranks == 0) & feasible
        return mine not in keep and not front[mine]

    def describe(self) -> dict[str, Any]:
        return {"pruner": "pareto-halving", "rungs": self.rungs, "reduction_factor": self.reduction_factor, "metric": self.metric}


def _optuna_pruner(cls: type[optuna.pruners.BasePruner], options: Mapping[str, Any], defaults: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise PrunerError(f"unknown pruner option(s) {unknown} for {cls.__name__}; expected some of {allowed}")
    try:
        return cls(**{**defaults, **options})
    except (TypeError, ValueError) as exc:
        raise PrunerError(f"{cls.__name__} rejects options {dict(options)}: {str(exc).splitlines()[0]}") from None


def make_pruner(name: str, options: Mapping[str, Any] | None, *, objectives: ObjectiveSet, max_resource: int, metric: str = "accuracy") -> Pruner | None:
    """The pruner `name` (one of `PRUNERS`; `none` gives None) for learning curves of `max_resource` epochs."""
    options = dict(options or {})
    if name not in PRUNERS:
        raise PrunerError(f"unknown pruner {name!r}; expected one of {list(PRUNERS)}")
    if name == "none":
        if options:
            raise PrunerError(f"pruner options {sorted(options)} given without a pruner; pass --pruner median|hyperband|pareto-halving")
        return None
    if name == "median":
        return OptunaCurvePruner(_optuna_pruner(optuna.pruners.MedianPruner, options, {"n_startup_trials": 5, "n_warmup_steps": 1}))
    if name == "hyperband":
        return OptunaCurvePruner(_optuna_pruner(optuna.pruners.HyperbandPruner, options, {"min_resource": 1, "max_resource": max_resource, "reduction_factor": 3}))
    allowed = {"min_resource", "reduction_factor"}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise PrunerError(f"unknown pruner option(s) {unknown} for pareto-halving; expected some of {sorted(allowed)}")
    return ParetoHalvingPruner(objectives, metric=metric, max_resource=max_resource, **options)


__all__ = ["CURVE_STUDY", "KNOWN_ATTR", "PRUNERS", "OptunaCurvePruner", "ParetoHalvingPruner", "Pruner", "PrunerError", "make_pruner"]
