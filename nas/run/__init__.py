"""A Run: config -> space + metric providers + objectives + strategy + Optuna study, and its results.

The run is two parts: the store (`nas.run.store`: the directory, the study, locks, `record_trial`,
results) and the search loop (`nas.run.loop`: ask, evaluate, record). `Run` opens both from a config
(`nas.run.config`), checking everything before it writes anything, and reads results back.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from nas.objectives import MetricProvider, parse_spec
from nas.run.config import RunConfig, RunConfigError
from nas.run.loop import Progress, SearchLoop
from nas.run.providers import front_of, reference_point, resolve_metrics, resolve_provider, resolve_providers, space_table
from nas.run.sources import same_source
from nas.run.storage import StorageError, config_from_storage
from nas.run.store import CONFIG_FILE, LABELS_LOCK, PARETO_FILE, SETUP_LOCK, STUDY_FILE, RunStore
from nas.spaces import get_space
from nas.spaces.base import SearchSpace
from nas.strategies import KnownMetrics, SearchContext, make_strategy
from nas.strategies._base import PricedMetrics


class Run:
    """One search: its directory, config, providers and Optuna study.

    Create with `Run.open(directory, config)` (new or resume) or `load_run(directory)`.
    """

    def __init__(self, directory: Path, config: RunConfig, *, space: SearchSpace) -> None:
        self.directory = Path(directory)
        self.config = config
        self.space = space
        self.objectives = config.objective_set()
        self.store = RunStore(self.directory, config, space)
        self._providers: dict[str, MetricProvider] | None = None

    @property
    def providers(self) -> dict[str, MetricProvider]:
        """Metric providers, resolved on first use (reading results needs none, and no data)."""
        if self._providers is None:
            self._providers = resolve_providers(self.space, self.config)
        return self._providers

    # --- opening ----------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, directory: str | Path, config: RunConfig | None = None, *, for_search: bool = True, on_status: Callable[[str], None] | None = None
    ) -> Run:
        """Open a run directory: create it for `config`, or resume it (then `config` must match it).

        Everything is validated (space, objectives, providers and their data, strategy and options)
        before anything is written, so a bad input leaves no half-made run behind. `on_status` receives a
        line before each step of start-up that may take a while (pricing a whole space).
        """
        status = on_status or (lambda line: None)
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        stored: RunConfig | None = None
        if config_path.is_file():
            stored = RunConfig.from_file(config_path)
        elif config is None:
            raise RunConfigError(f"{directory} is not a nas run directory (no {CONFIG_FILE})")
        elif directory.exists() and (not directory.is_dir() or any(p.name not in _STARTUP_LEFTOVERS for p in directory.iterdir())):
            raise RunConfigError(f"{directory} exists and is not a nas run directory (no {CONFIG_FILE}); choose a new --out")
        if config is None:
            config = stored
        config.validate()
        space = get_space(config.space)
        config.resolve_dataset(space.datasets, space.name)
        if stored is not None:
            stored.resolve_dataset(space.datasets, space.name)
            diff = config.differences(stored)
            if diff:
                detail = ", ".join(f"{k}: {getattr(stored, k)!r} -> {getattr(config, k)!r}" for k in diff)
                raise RunConfigError(f"run directory {directory} holds a different search ({detail}); refusing to overwrite, choose a new --out")
        run = cls(directory, config, space=space)
        if not for_search:
            if stored is None:
                raise RunConfigError(f"{directory} is not a nas run directory (no {CONFIG_FILE})")
            return run
        status(f"start-up: loading the {space.name} space and the sources of {', '.join(run.objectives.metrics)}")
        run.providers  # resolve (and so validate) every provider, data included, before anything is written
        sampler = run.make_sampler()
        run.make_pruner()
        if config.constraints and space.can_list():
            status(f"start-up: checking {', '.join(config.constraints)} over the {space.size:,} architectures")
        run.check_feasible()
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            # config.yaml first: a kill at any later moment leaves a directory the same command resumes;
            # a resume rewrites it (a new budget) only once the study agreed, so a refusal changes nothing
            if stored is None:
                run.store.write_config()
            if stored is None:
                status(f"start-up: creating the study in {run.store.storage_url.split('://')[0]} (the reference point prices every architecture)")
            run.store.open_study(sampler, run.providers)
            if stored is not None and config.to_dict() != stored.to_dict():
                run.store.write_config()
            with run.store.locked(SETUP_LOCK):
                for provider in run.providers.values():
                    provider.setup(directory)
        except BaseException:
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return run

    @property
    def storage_url(self) -> str:
        return self.store.storage_url

    def context(self) -> SearchContext:
        """Objectives, mode, the metrics known before evaluation (tier `known`) and the estimates that price
        the whole space from a refitted model (`repriced`) for the strategy."""
        from nas.accuracy.surrogate import PredictorFactory

        known = tuple(m for m, p in self.providers.items() if p.known)
        evaluate_known = KnownMetrics({m: self.providers[m] for m in known})
        priced = tuple(m for m, p in self.providers.items() if not p.known and p.repriced)
        evaluate_priced = PricedMetrics({m: self.providers[m] for m in priced})
        # picklable parts only (no closures over the run), so the sampler pickles as Optuna's contract says
        return SearchContext(
            self.objectives, known, evaluate_known, self.config.search_mode(), PredictorFactory(self.space), priced_metrics=priced, priced=evaluate_priced
        )

    def make_sampler(self) -> optuna.samplers.BaseSampler:
        return make_strategy(
            self.config.strategy,
            self.space,
            seed=self.config.seed,
            constrained=bool(self.config.constraints),
            context=self.context(),
            **self.config.strategy_options,
        )

    def make_pruner(self) -> Any:
        """The run's pruner (None without one); its learning curves are of the recipe's epochs."""
        from nas.accuracy.pruning import make_pruner

        if self.config.pruner == "none" and not self.config.pruner_options:
            return None
        curves = [(m, p.curve_length) for m, p in self.providers.items() if p.curve_length]
        if not curves:
            raise RunConfigError(f"pruner {self.config.pruner!r} needs a metric with a learning curve; accuracy {self.config.accuracy!r} reports none")
        metric, epochs = curves[0]
        return make_pruner(self.config.pruner, self.config.pruner_options, objectives=self.objectives, max_resource=int(epochs), metric=metric)

    def check_feasible(self) -> None:
        """Refuse a constraint set that no architecture of a listable space can satisfy, before searching;
        warn (`UnsatisfiableConstraintWarning`) when a table of a metric learnt only by evaluation
        (accuracy) shows that none can meet its bound, since the search would spend its whole budget
        for an empty front."""
        context = self.context()
        cons = context.known_constraints()
        if not self.space.can_list():
            return
        self._warn_unsatisfiable([c for c in self.objectives.constraints if not self.providers[c.metric].known])
        if not cons:
            return
        archs = self.space.enumerate()
        values = context.known(archs) if context.known else {}
        ok = np.ones(len(archs), dtype=bool)
        for c in cons:
            ok &= c.violation(values[c.metric]) <= 0
        if not ok.any():
            best = {c.metric: float(np.nanmin(values[c.metric]) if c.op in ("<=", "<") else np.nanmax(values[c.metric])) for c in cons}
            raise RunConfigError(
                f"no architecture of space {self.space.name!r} satisfies {[str(c) for c in cons]} (best achievable: {best}); relax the constraints"
            )

    def _warn_unsatisfiable(self, constraints: Sequence[Any]) -> None:
        priced = [c for c in constraints if self.providers[c.metric].prices_space]
        if not priced:
            return
        archs = self.space.enumerate()
        for c in priced:
            values = self.providers[c.metric].evaluate(archs)
            if not (c.violation(values) <= 0).any():
                best = np.nanmin(values) if c.op in ("<=", "<") else np.nanmax(values)
                warnings.warn(
                    f"no architecture of space {self.space.name!r} satisfies {c} by its table (best {c.metric}: {best:.4g}); the front will be empty",
                    UnsatisfiableConstraintWarning,
                    stacklevel=3,
                )

    @property
    def study(self) -> optuna.Study:
        return self.store.study

    @property
    def reference(self) -> np.ndarray | None:
        return self.store.reference

    def provenance(self) -> dict[str, dict[str, Any]]:
        """Where each metric's numbers come from, as stored when the study was created (`estimate` flags models)."""
        return self.store.provenance()

    # --- searching --------------------------------------------------------------------------------
    def _is_active(self) -> bool:
        return parse_spec(self.config.accuracy)[0] == "predictor"

    def labels_spent(self) -> int | None:
        """True accuracies (labels) a predictor-backed run has spent, read from the study; else None."""
        return self.store.labels_spent() if self._is_active() else None

    def label_budget(self) -> int | None:
        """The most labels a predictor-backed run may spend (`accuracy_options`); else None."""
        if not self._is_active():
            return None
        from nas.accuracy.active import label_budget_of

        return label_budget_of(self.config.accuracy_options, spec=self.config.accuracy, budget=self.config.budget)

    def loop(self) -> SearchLoop:
        return SearchLoop(self.store, self.providers, pruner=self.make_pruner(), label_budget=self.label_budget())

    def search(
        self,
        *,
        on_trial: Callable[[Progress], None] | None = None,
        pareto_every: int = 25,
        on_status: Callable[[str], None] | None = None,
        progress_every: float = 0.0,
    ) -> pd.DataFrame:
        """Run trials until the budget is spent (by this and any other worker); return the front.
        `on_status` receives one-line messages of a one-shot strategy's training; `on_trial` the progress,
        at most every `progress_every` seconds (and after the last trial)."""
        return self.loop().run(on_trial=on_trial, pareto_every=pareto_every, on_status=on_status, progress_every=progress_every)

    def n_spent(self) -> int:
        return self.store.n_spent()

    # --- results ----------------------------------------------------------------------------------
    def trials(self) -> pd.DataFrame:
        """Completed trials: `trial`, `arch`, every metric, reported metrics, `feasible`."""
        return self.store.trials()

    def pareto(self) -> pd.DataFrame:
        """Pareto-optimal feasible architectures: `arch`, then one column per objective, then the rest."""
        return self.store.pareto()

    def ranked(self) -> tuple[str, pd.DataFrame] | None:
        """Scalarized / lexicographic runs: (mode column, feasible architectures best-first); see `RunStore.ranked`."""
        return self.store.ranked()

    def write_pareto(self) -> pd.DataFrame:
        return self.store.write_pareto()

    def hypervolume(self) -> float | None:
        """Hypervolume of the current feasible front w.r.t. the run's reference point (None if it has none)."""
        return self.store.hypervolume()

    def hypervolume_trace(self) -> np.ndarray:
        """Hypervolume of the feasible front after each completed trial, in trial order (the run's
        progress curve; its last value is `hypervolume()`). Raises RunConfigError without a reference point."""
        from nas.pareto import hypervolume_trace

        if self.reference is None:
            raise RunConfigError(f"run {self.directory} has no reference point (the worst {self.objectives.names} over the space is unknown), so no hypervolume")
        trials = self.trials().sort_values("trial")
        if trials.empty:
            return np.zeros(0)
        points = self.objectives.to_minimisation(trials[self.objectives.names].to_numpy(dtype=float))
        return hypervolume_trace(points, self.reference, trials["feasible"].to_numpy(dtype=bool))

    def space_table(self, metrics: Sequence[str] | None = None) -> pd.DataFrame:
        """Every architecture of the run's space with `metrics` (default: its objective and constraint
        metrics), priced from the sources the run used.

        Raises `SpaceTableUnavailable` (one line, saying why) when the space is too large to list, a
        metric cannot price the whole space cheaply (training, a model), or a metric now resolves to
        another source than the run was searched with (a run priced by a shipped LUT, read where the
        measured table exists): comparing a search with numbers it never saw would mislead.
        """
        metrics = list(metrics or self.objectives.metrics)
        if not self.space.can_list():
            raise SpaceTableUnavailable(f"space {self.space.name!r} is too large to list ({self.space.size} archs)")
        providers = resolve_metrics(self.space, self.config, metrics)
        slow = [m for m, p in providers.items() if not p.prices_space]
        if slow:
            raise SpaceTableUnavailable(f"{', '.join(slow)} cannot price the whole space cheaply (not a table or a known cost)")
        stored = self.provenance()
        moved = [m for m, p in providers.items() if m in stored and not same_source(stored[m], p.provenance())]
        if moved:
            raise SpaceTableUnavailable(f"{', '.join(moved)} now resolve(s) to another source than run {self.directory} was searched with")
        return space_table(self.space, providers)

    def true_front(self) -> pd.DataFrame:
        """The true feasible Pareto front of this run's objectives over its whole space, from the run's own
        sources (see `space_table` for when it is unavailable), best first by the first objective."""
        return _front_table(self.space_table(), self.objectives)

    def progress(self) -> Progress:
        return SearchLoop(self.store, {}, label_budget=self.label_budget()).progress()


#: What a run killed before it wrote config.yaml (by nas before this order was fixed) may have left: the
#: study and lock files. A directory holding only these is resumed, not refused.
_STARTUP_LEFTOVERS = frozenset({STUDY_FILE, f"{STUDY_FILE}-journal", f"{STUDY_FILE}-wal", f"{STUDY_FILE}-shm", ".workers", SETUP_LOCK, LABELS_LOCK})


class SpaceTableUnavailable(RunConfigError):
    """The whole space cannot be priced here (too large, a slow metric, or a source that moved)."""


class UnsatisfiableConstraintWarning(UserWarning):
    """A constraint on a metric known only by evaluation that the space's table says no architecture meets."""


def _front_table(table: pd.DataFrame, objectives: Any) -> pd.DataFrame:
    frame = front_of(table, objectives).frame()
    return frame[["arch", *objectives.metrics]].sort_values(objectives.names[0], ascending=objectives.objectives[0].direction == "min").reset_index(drop=True)


def true_front(config: RunConfig) -> pd.DataFrame:
    """The true feasible Pareto front of `config`'s objectives and constraints over every architecture of
    its space, without searching: `arch` and one column per metric, best first by the first objective.

    Raises `SpaceTooLargeError` for a space too large to list, and the providers' errors (a device with
    no table or LUT) as when a search starts.

    Example:
        >>> front = true_front(RunConfig(space="nb201", objectives=["accuracy:max", "params:min"]))  # doctest: +SKIP
    """
    config.validate()
    space = get_space(config.space)
    config.resolve_dataset(space.datasets, space.name)
    return _front_table(space_table(space, resolve_providers(space, config)), config.objective_set())


def load_run(directory: str | Path) -> Run:
    """Open an existing run directory to read its results (`run.pareto()`, `run.trials()`)."""
    return Run.open(directory, for_search=False)


__all__ = [
    "CONFIG_FILE",
    "LABELS_LOCK",
    "PARETO_FILE",
    "STUDY_FILE",
    "Progress",
    "Run",
    "RunConfig",
    "RunConfigError",
    "RunStore",
    "SearchLoop",
    "SpaceTableUnavailable",
    "StorageError",
    "config_from_storage",
    "UnsatisfiableConstraintWarning",
    "front_of",
    "load_run",
    "reference_point",
    "resolve_metrics",
    "resolve_provider",
    "resolve_providers",
    "space_table",
    "true_front",
]
