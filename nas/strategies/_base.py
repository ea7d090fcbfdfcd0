"""What every `nas` strategy shares: an Optuna sampler that proposes whole architectures.

Why a sampler: Optuna keeps the trial history in its storage, so a strategy whose state is a function of
the study's trials works after a resume and across any number of workers sharing one study. The
architecture is sampled as one relative sample over all the space's decisions (categorical params). The
history is read once per ask and kept incrementally (`nas.strategies._history`): finished trials are
parsed once, so an ask costs the same at trial 2,000 as at trial 20.
"""

from __future__ import annotations

import threading
from abc import abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.samplers._base import _process_constraints_after_trial  # what Optuna's own samplers call
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from nas.objectives import Constraint, MetricProvider, Mode, ObjectiveSet
from nas.spaces.base import Arch, SearchSpace
from nas.strategies._history import History, TrialLedger, TrialRecord, TrialView

#: Trial user attribute holding Optuna-style constraint values (<= 0 satisfied).
CONSTRAINTS_ATTR = "constraints"
#: Trial system attribute holding the architecture a strategy proposed, set before its params are stored.
PROPOSED_ATTR = "nas:proposed"

#: Trial user attribute of a trial that failed in its evaluation (the reason). A FAIL trial without it was
#: interrupted (a kill, Ctrl-C): it does not count towards a seeded sampler's stream (see `counted_before`).
ERROR_ATTR = "nas:error"

#: Trial system attribute where Optuna's samplers (and ours, given `constraints_func`) keep its values.
OPTUNA_CONSTRAINTS_KEY = "constraints"

#: Optuna's constraints function: a finished trial -> constraint values, each <= 0 when satisfied.
ConstraintsFunc = Callable[[FrozenTrial], Sequence[float]]


def space_distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    """One categorical distribution per decision, as Optuna params."""
    return {d.name: CategoricalDistribution(list(d.choices)) for d in space.decisions}


@dataclass(frozen=True)
class KnownMetrics:
    """`known(archs)` of a search context: each metric's provider evaluated on `archs` (`n_archs` each).

    Why a class and not a closure: a sampler holds its context, and Optuna's contract says a sampler
    pickles (to another process, a Dask worker); a module-level callable over picklable providers does.
    """

    providers: Mapping[str, MetricProvider]

    def __call__(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        return {m: np.asarray(p.evaluate(archs)) for m, p in self.providers.items()}


@dataclass(frozen=True)
class PricedMetrics:
    """`priced` of a search context: estimates that price every arch from a model the search refits
    (`MetricProvider.repriced`, e.g. a device measured in the loop).

    `versions(trials)` brings each model up to date with the study's trials and says which metrics can
    price now and at which version (a value that changes whenever the prices do); `__call__(archs)` gives
    their current prices (`n_archs` each). A class, like `KnownMetrics`, so the sampler pickles.
    """

    providers: Mapping[str, MetricProvider]

    def versions(self, trials: Sequence[FrozenTrial]) -> dict[str, Hashable]:
        out = {m: p.prices_version(trials) for m, p in self.providers.items()}
        return {m: v for m, v in out.items() if v is not None}

    def __call__(self, archs: Sequence[Arch]) -> dict[str, np.ndarray]:
        return {m: np.asarray(p.evaluate(archs), dtype=float) for m, p in self.providers.items()}


@dataclass
class SearchContext:
    """What a strategy may know besides the trial history.

    `known(archs)` returns the metrics that are known BEFORE an architecture is evaluated (costs from
    tables, LUTs, analytic counts) as arrays; only the remaining objectives (usually accuracy) cost a
    query. Strategies use it to skip archs that break a known constraint and to aim at the front at each
    candidate's exact cost. Without a context a strategy is black-box, like Optuna's samplers.

    `priced` (metrics `priced_metrics`) are estimates that can price the whole space but change as the
    search refits their model: a strategy may use their current prices as costs (bo does), never to
    skip candidates (only constraints on `known_metrics` are enforced before evaluation).
    """

    objectives: ObjectiveSet
    known_metrics: tuple[str, ...] = ()
    known: Callable[[Sequence[Arch]], dict[str, np.ndarray]] | None = None
    mode: Mode | None = None
    #: (predictor name, encoding or None, options) -> an unfitted predictor with fit(archs, y) and
    #: predict(archs, return_std=True); the run wires it to `nas.accuracy.predictors.make_predictor`.
    surrogate_factory: Callable[[str, str | None, dict[str, Any]], Any] | None = None
    priced_metrics: tuple[str, ...] = ()
    priced: PricedMetrics | None = None

    def known_constraints(self) -> list[Constraint]:
        return [c for c in self.objectives.constraints if c.metric in self.known_metrics]

    def known_feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        """True where every constraint on a known metric holds (unknown ones are checked after evaluation)."""
        cons = self.known_constraints()
        if not cons or self.known is None or not archs:
            return np.ones(len(archs), dtype=bool)
        values = self.known(archs)
        ok = np.ones(len(archs), dtype=bool)
        for c in cons:
            ok &= c.violation(values[c.metric]) <= 0
        return ok


def interrupted(trial: FrozenTrial) -> bool:
    """Whether a kill or Ctrl-C ended `trial` (FAIL without `ERROR_ATTR`), as opposed to a failed evaluation."""
    return trial.state == TrialState.FAIL and ERROR_ATTR not in trial.user_attrs


def counted_before(trials: Sequence[FrozenTrial], number: int) -> int:
    """Trials numbered below `number` that count: every one but those interrupted (FAIL without `ERROR_ATTR`)."""
    return sum(1 for t in trials if t.number < number and not interrupted(t))


def trial_violation(trial: FrozenTrial) -> float:
    """Total violation of a trial's constraints (0 = feasible): the run's `CONSTRAINTS_ATTR`, else Optuna's
    constraints_func values, plus any named by `trial.set_constraint(key, value)` (Optuna >= 5)."""
    values = list(trial.user_attrs.get(CONSTRAINTS_ATTR) or trial.system_attrs.get(OPTUNA_CONSTRAINTS_KEY) or [])
    values += [v for k, v in trial.system_attrs.items() if k.startswith(f"{OPTUNA_CONSTRAINTS_KEY}:")]
    if not values:
        return 0.0
    return float(np.sum(np.clip(np.asarray(values, dtype=float), 0.0, None)))


class ArchSampler(BaseSampler):
    """Base class: subclasses implement `propose(study, trial, rng) -> Arch`.

    Already-proposed architectures (any state) are not proposed again while unseen ones remain, because
    every query of the same architecture is a wasted evaluation. Optuna's sampler contract holds for
    every subclass (tests/strategies/test_contract.py): it pickles, `sample_relative` returns only the
    space's decisions, `constraints_func` (a finished FrozenTrial -> values, <= 0 feasible) decides the
    history's feasibility, and the same seed gives the same proposals, after a reload or a resume too.
    """

    #: Attributes a subclass derives from the study's history (folds): None in a pickled copy, rebuilt on use.
    _derived: tuple[str, ...] = ()

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int | None = None,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
    ) -> None:
        if constraints_func is not None and not callable(constraints_func):
            raise TypeError(f"constraints_func must be a callable FrozenTrial -> sequence of floats (<= 0 feasible), got {constraints_func!r}")
        self.space = space
        self.context = context
        self.constraints_func = constraints_func
        self._pool: list[Arch] | None = None
        self._seed = seed
        self._rng = np.random.RandomState(seed)
        self._fallback = RandomSampler(seed=seed)
        self._distributions = space_distributions(space)
        self._propose_lock = threading.Lock()
        self._ledger = TrialLedger()
        self._active: tuple[int, TrialView] | None = None  # (thread, view) of the proposal being made

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._distributions)

    def sample_relative(self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """The proposed arch's value for each of the space's decisions in `search_space`.

        Parameters the space does not own (a user's `trial.suggest_float("lr", ...)`, another sampler's)
        are left out, so Optuna asks `sample_independent` for them. A trial whose every decision is fixed
        (`study.enqueue_trial`, a resumed run re-queuing an interrupted arch) gets {} without a proposal:
        Optuna uses the fixed values, and a proposal (a surrogate fit for bo) would be wasted.
        """
        ours = [name for name in search_space if name in self._distributions]
        if not ours:
            return {}
        fixed = trial.system_attrs.get("fixed_params") or {}
        if all(name in fixed for name in ours):
            return {}
        # Threads of one process (study.optimize(n_jobs=...)) share this sampler: each proposal is made and
        # marked on its trial before the next thread's proposal reads the history, so none is made twice.
        # (Processes are kept apart by the search loop's ask lock, which is as wide as the storage.)
        with self._propose_lock:
            # one read of the study per proposal: seen, history and step of this ask all come from it
            self._active = (threading.get_ident(), self._ledger.refresh(study, self._record))
            try:
                arch = self.propose(study, trial, self.trial_rng(study, trial))
            finally:
                self._active = None
            study._storage.set_trial_system_attr(trial._trial_id, PROPOSED_ATTR, self.space.to_string(arch))
        return {name: arch[name] for name in ours if name not in fixed}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_propose_lock"]  # a lock does not pickle; the copy gets its own
        # the ledger and what subclasses fold from it are derived from the study (the ledger holds its
        # storage): the copy reads the study afresh
        del state["_ledger"], state["_active"]
        for name in self._derived:
            state[name] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._propose_lock = threading.Lock()
        self._ledger = TrialLedger()
        self._active = None

    def trial_rng(self, study: Study, trial: FrozenTrial) -> np.random.Generator:
        """The generator of `trial`'s proposal.

        Seeded: keyed on (seed, trials counted before this one), so a second worker draws fresh numbers
        instead of replaying the first one's, and a resumed run whose interrupted trial is re-queued
        draws from then on exactly what an uninterrupted run draws. Unseeded: Optuna's RandomState habit.
        """
        if self._seed is not None:
            return np.random.default_rng([self._seed, self.step(study, trial)])
        return np.random.default_rng(self._rng.randint(0, 2**31 - 1))

    def step(self, study: Study, trial: FrozenTrial) -> int:
        """How many trials before `trial` count: all but the interrupted ones (FAIL without `ERROR_ATTR`).

        Strategies use it wherever they would use `trial.number` (stratification steps, weight sweeps), so
        an interruption shifts nothing.
        """
        return self.view(study).step(trial.number)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        """Stores `constraints_func(trial)` in the trial's system attrs, as Optuna's samplers do."""
        if self.constraints_func is not None:
            _process_constraints_after_trial(self.constraints_func, study, trial, state)

    @abstractmethod
    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        """The next architecture to evaluate."""

    # --- helpers for subclasses ------------------------------------------------------------------
    def arch_of(self, trial: FrozenTrial) -> Arch | None:
        """The trial's architecture: its params, or for a waiting enqueued trial its fixed params."""
        params = trial.params or trial.system_attrs.get("fixed_params") or {}
        try:
            return self.space.validate({d.name: params[d.name] for d in self.space.decisions})
        except (KeyError, ValueError, TypeError):
            return None

    def view(self, study: Study) -> TrialView:
        """The study as this ask sees it: the proposal's one read while proposing, else a fresh read."""
        active = self._active
        if active is not None and active[0] == threading.get_ident():
            return active[1]
        return self._ledger.refresh(study, self._record)

    def seen(self, study: Study) -> set[Arch]:
        """Every architecture already proposed in this study, including proposals whose trial has not
        stored its params yet; not those of interrupted trials (a resumed run queues their architecture
        again, or, when the kill came before the params were stored, proposes it again at the same step)."""
        return self.view(study).seen()

    def history(self, study: Study) -> History:
        """Completed trials with finite values, in trial order (read-only arrays, shared until the next trial)."""
        return self.view(study).history

    def _record(self, trial: FrozenTrial, signs: np.ndarray) -> TrialRecord:
        """What the ledger keeps of `trial` (parsed once when finished): see `TrialRecord`."""
        counted = not interrupted(trial)
        arch = self.arch_of(trial)
        mark = arch
        if mark is None and PROPOSED_ATTR in trial.system_attrs:
            try:
                mark = self.space.from_string(trial.system_attrs[PROPOSED_ATTR])
            except (KeyError, ValueError):
                mark = None
        row, violation = None, 0.0
        if trial.state == TrialState.COMPLETE and trial.values is not None and arch is not None and np.all(np.isfinite(trial.values)):
            row = np.asarray(trial.values, dtype=float) * signs
            violation = self.violation_of(trial)
        return TrialRecord(trial.number, counted, mark if counted else None, arch, row, violation)

    def violation_of(self, trial: FrozenTrial) -> float:
        """Total constraint violation of a finished trial (0 = feasible).

        With `constraints_func` its values as stored after the trial (Optuna's system attr), computed now
        for a trial finished where no such sampler ran; without one the run's `CONSTRAINTS_ATTR`.
        """
        if self.constraints_func is None:
            return trial_violation(trial)
        if OPTUNA_CONSTRAINTS_KEY in trial.system_attrs:
            values = trial.system_attrs[OPTUNA_CONSTRAINTS_KEY]
        else:
            values = self.constraints_func(trial)
        if values is None:  # constraints_func failed on it: worse than any feasible or infeasible trial
            return float("inf")
        return float(np.sum(np.clip(np.asarray(values, dtype=float), 0.0, None)))

    def feasible(self, archs: Sequence[Arch]) -> np.ndarray:
        """Mask of archs not known to break a constraint (all True without a context)."""
        if self.context is None:
            return np.ones(len(archs), dtype=bool)
        return self.context.known_feasible(archs)

    def pool(self) -> list[Arch] | None:
        """Every architecture that is not known to be infeasible, for spaces small enough to list."""
        if self._pool is None:
            if not self.space.can_list():
                return None
            archs = self.space.enumerate()
            mask = self.feasible(archs)
            self._pool = [a for a, ok in zip(archs, mask) if ok]
        return self._pool

    def random_unseen(self, rng: np.random.Generator, seen: set[Arch], tries: int = 200) -> Arch:
        """A uniformly random architecture not in `seen` and not known to be infeasible."""
        pool = self.pool()
        if pool is not None:
            if len(seen) < len(pool) // 2:
                for _ in range(tries):
                    arch = pool[int(rng.integers(len(pool)))]
                    if arch not in seen:
                        return arch
            remaining = [a for a in pool if a not in seen]
            if remaining:
                return remaining[int(rng.integers(len(remaining)))]
            return pool[int(rng.integers(len(pool)))] if pool else self.space.sample(rng)
        for _ in range(tries):
            arch = self.space.sample(rng)
            if arch not in seen and self.feasible([arch])[0]:
                return arch
        return self.space.sample(rng)

    def unseen_children(self, candidates: Sequence[Arch], seen: AbstractSet[Arch]) -> list[Arch]:
        """Distinct candidates not yet in the study and not known to be infeasible, order kept."""
        fresh = [c for c in dict.fromkeys(candidates) if c not in seen]
        mask = self.feasible(fresh)
        return [c for c, ok in zip(fresh, mask) if ok]
