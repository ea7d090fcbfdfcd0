"""A Run: config -> space + metric providers + objectives + strategy + Optuna study, and its results.

The run is two parts: the store (`nas.run.store`: the directory, the study, locks, `record_trial`,
results) and the search loop (`nas.run.loop`: ask, evaluate, record). `Run` opens both from a config
(`nas.run.config`), checking everything before it writes anything, and reads results back.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from nas.objectives import MetricProvider, parse_spec
from nas.run.config import RunConfig, RunConfigError
from nas.run.loop import Progress, SearchLoop
from nas.run.providers import front_of, reference_point, resolve_provider, resolve_providers, space_table
from nas.run.store import CONFIG_FILE, LABELS_LOCK, PARETO_FILE, SETUP_LOCK, STUDY_FILE, RunStore
from nas.spaces import get_space
from nas.spaces.base import SearchSpace
from nas.strategies import SearchContext, make_strategy


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
    def open(cls, directory: str | Path, config: RunConfig | None = None, *, for_search: bool = True) -> Run:
        """Open a run directory: create it for `config`, or resume it (then `config` must match it).

        Everything is validated (space, objectives, providers and their data, strategy and options)
        before anything is written, so a bad input leaves no half-made run behind.
        """
        directory = Path(directory)
        config_path = directory / CONFIG_FILE
        stored: RunConfig | None = None
        if config_path.is_file():
            stored = RunConfig.from_file(config_path)
        elif config is None:
            raise RunConfigError(f"{directory} is not a nas run directory (no {CONFIG_FILE})")
        elif directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
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
        run.providers  # resolve (and so validate) every provider, data included, before anything is written
        sampler = run.make_sampler()
        run.make_pruner()
        run.check_feasible()
        created = not directory.exists()
        directory.mkdir(parents=True, exist_ok=True)
        try:
            run.store.open_study(sampler, run.providers)
            with run.store.locked(SETUP_LOCK):
                for provider in run.providers.values():
                    provider.setup(directory)
            run.store.write_config()
        except BaseException:
            if created:
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return run

    @property
    def storage_url(self) -> str:
        return self.store.storage_url

    def context(self) -> SearchContext:
        """Objectives, mode, and the metrics known before evaluation (tier `known`) for the strategy."""
        known = tuple(m for m, p in self.providers.items() if p.known)

        def evaluate_known(archs: Any) -> dict[str, np.ndarray]:
            return {m: self.providers[m].evaluate(archs) for m in known}

        def surrogate(name: str, encoding: str | None, options: dict[str, Any]) -> Any:
            from nas.accuracy.predictors import make_predictor

            return make_predictor(name, self.space, encoding, **options)

        return SearchContext(self.objectives, known, evaluate_known, self.config.search_mode(), surrogate)

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
        """Refuse a constraint set that no architecture of a listable space can satisfy, before searching."""
        context = self.context()
        cons = context.known_constraints()
        if not cons or not self.space.can_list():
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

    def search(self, *, on_trial: Callable[[Progress], None] | None = None, pareto_every: int = 25) -> pd.DataFrame:
        """Run trials until the budget is spent (by this and any other worker); return the front."""
        return self.loop().run(on_trial=on_trial, pareto_every=pareto_every)

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

    def progress(self) -> Progress:
        return SearchLoop(self.store, {}, label_budget=self.label_budget()).progress()


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
    "front_of",
    "load_run",
    "reference_point",
    "resolve_provider",
    "resolve_providers",
    "space_table",
]
