"""The search loop: ask the strategy, evaluate every metric of the architecture, record, repeat.

Why apart from the store: the store owns what is on disk; the loop owns one trial's life. It asks the
study for an architecture, lets each provider evaluate it (known metrics first, then measured ones, then
estimates that may read the rest), passes learning curves to the pruner, and records the trial through
`RunStore.record_trial`, until the budget (counted over every worker) is spent. Any failure of one
evaluation costs that trial, never the run.
"""

from __future__ import annotations

import math
import os
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import optuna
import pandas as pd
from optuna.storages._heartbeat import get_heartbeat_thread
from optuna.trial import TrialState

from nas.accuracy.pruning import KNOWN_ATTR, Pruner
from nas.objectives import MetricProvider, Tier, TrialContext
from nas.run.store import LABELS_LOCK, ONESHOT_LOCK, WEIGHTS_LOCK, WORKER_ATTR, RunStore
from nas.spaces.base import Arch
from nas.strategies import OneShotStrategy, space_distributions

_TIER_ORDER = {Tier.KNOWN: 0, Tier.MEASURED: 1, Tier.ESTIMATE: 2}


@dataclass
class Progress:
    """What a progress display needs after each trial."""

    done: int
    budget: int
    hypervolume: float | None
    front_size: int
    labels: int | None = None
    label_budget: int | None = None
    pruned: int = 0
    #: Each provider's `progress_note` (e.g. a device's measurements spent of its budget).
    notes: tuple[str, ...] = ()


class SearchLoop:
    """Runs trials of one run until its budget is spent.

    Args:
        store: the run store (directory, study, config).
        providers: the provider of every objective and constraint metric.
        pruner: stops trials on their learning curves (None: never).
        label_budget: the most accuracy labels the run may spend (None: it spends none), for progress.
    """

    def __init__(self, store: RunStore, providers: Mapping[str, MetricProvider], *, pruner: Pruner | None = None, label_budget: int | None = None) -> None:
        self.store = store
        self.providers = dict(providers)
        self.pruner = pruner
        self.label_budget = label_budget
        self._order = sorted(self.providers, key=lambda m: _TIER_ORDER[self.providers[m].tier])
        #: Trials a one-shot strategy plans (None for samplers, whose plan is the budget).
        self._planned: int | None = None

    # --- one trial --------------------------------------------------------------------------------
    def _reporter(self, study: optuna.Study, trial: optuna.Trial) -> Callable[[int, float, bool], None]:
        def report(step: int, value: float, pruning: bool) -> None:
            study._storage.set_trial_intermediate_value(trial._trial_id, step, value)
            if pruning and self.pruner is not None and self.pruner.should_prune(study, trial, step, value):
                raise optuna.TrialPruned(f"pruned at epoch {step} ({value:.4g})")

        return report

    def evaluate(self, study: optuna.Study, trial: optuna.Trial, arch: Arch) -> tuple[dict[str, float], dict[str, float]]:
        """Every metric of `arch` (objectives and constraints) and the metrics reported beside them."""
        context = TrialContext(
            study=study, trial=trial, directory=self.store.directory, lock=self.store.directory / LABELS_LOCK, reporter=self._reporter(study, trial)
        )
        reported: dict[str, float] = {}
        known_stored = False
        for metric in self._order:
            provider = self.providers[metric]
            if provider.tier is not Tier.KNOWN and not known_stored:
                trial.set_user_attr(KNOWN_ATTR, dict(context.metrics))
                known_stored = True
            values = provider.evaluate_trial(arch, context)
            context.metrics[metric] = float(values[metric])
            reported.update({k: float(v) for k, v in values.items() if k != metric})
        return {m: context.metrics[m] for m in self.providers}, reported

    def run_trial(
        self, study: optuna.Study, distributions: Mapping[str, optuna.distributions.BaseDistribution], worker: str, trial: optuna.Trial | None = None
    ) -> TrialState:
        """Ask (unless `trial` was asked already), evaluate, record one trial; returns its final state."""
        store = self.store
        if trial is None:
            trial = study.ask(fixed_distributions=dict(distributions))
            study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
        accuracy: float | None = None
        try:
            arch = store.space.validate(trial.params)
            with get_heartbeat_thread(trial._trial_id, study._storage):  # a no-op unless the storage is shared
                metrics, reported = self.evaluate(study, trial, arch)
            missing = [m for m, v in metrics.items() if not math.isfinite(v)]
            if missing:
                raise ValueError(f"no value for {missing} of {store.space.to_string(arch)}")
        except optuna.TrialPruned:
            trial.set_user_attr("arch", store.space.to_string(store.space.validate(trial.params)))
            study.tell(trial, state=TrialState.PRUNED)
            self._finish(study, trial, TrialState.PRUNED, None)
            return TrialState.PRUNED
        except (KeyboardInterrupt, SystemExit):
            study.tell(trial, state=TrialState.FAIL)
            self._finish(study, trial, TrialState.FAIL, None)
            raise
        except Exception as exc:  # an evaluation error costs one trial, never the run
            store.fail_trial(trial, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            self._finish(study, trial, TrialState.FAIL, None)
            return TrialState.FAIL
        store.record_trial(trial, arch, metrics, reported)
        accuracy = metrics.get("accuracy")
        self._finish(study, trial, TrialState.COMPLETE, accuracy)
        keep = store.config.keep_weights
        if keep != "all":
            with store.locked(WEIGHTS_LOCK):
                store.retain_weights(int(keep))
        return TrialState.COMPLETE

    def _finish(self, study: optuna.Study, trial: optuna.Trial, state: TrialState, value: float | None) -> None:
        if self.pruner is not None:
            self.pruner.finish(study, trial, state, value)

    # --- the loop ---------------------------------------------------------------------------------
    def run(
        self,
        *,
        on_trial: Callable[[Progress], None] | None = None,
        pareto_every: int = 25,
        on_status: Callable[[str], None] | None = None,
        progress_every: float = 0.0,
    ) -> pd.DataFrame:
        """Run trials until the budget is spent (by this and any other worker); return the front.

        `on_trial` receives the progress after a trial, at most every `progress_every` seconds (and after
        the last trial): a display needs a few updates a second, not a front per trial.

        Trials a killed worker left are failed and their architectures queued again first. A one-shot
        strategy then prepares (under the run's one-shot lock) and enqueues its selected archs, and the
        loop evaluates the waiting trials and stops when none is left."""
        store = self.store
        study = store.study
        store.lock_worker()
        try:
            with store.ask_lock.held():
                store.fail_orphans()
                store.requeue_interrupted()
            distributions = space_distributions(store.space)
            worker = f"{socket.gethostname()}:{os.getpid()}"
            one_shot = isinstance(study.sampler, OneShotStrategy)
            if one_shot:
                self._prepare_one_shot(study, on_status)
            since_write = 0
            shown = -math.inf
            while (trial := self._claim(study, distributions, worker, one_shot)) is not None:
                state = self.run_trial(study, distributions, worker, trial)
                if state == TrialState.COMPLETE:
                    since_write += 1
                if pareto_every and since_write >= pareto_every:
                    store.write_pareto()
                    since_write = 0
                if on_trial is not None and time.monotonic() - shown >= progress_every:
                    on_trial(self.progress())  # a front and its hypervolume over every trial: not after each of thousands
                    shown = time.monotonic()
            if on_trial is not None and shown > -math.inf:
                on_trial(self.progress())  # where the run ended
            self._finish_providers(study, on_status)
            return store.write_pareto()
        finally:
            store.unlock_worker()

    def _finish_providers(self, study: optuna.Study, on_status: Callable[[str], None] | None) -> None:
        """Each provider writes what it learnt (`MetricProvider.finish`), under the labels lock that also
        guards what it learns from: a second worker finishing at once writes after this one, from every trial."""
        with self.store.locked(LABELS_LOCK):
            trials = study.get_trials(deepcopy=False)
            for provider in self.providers.values():
                line = provider.finish(self.store.directory, trials)
                if line and on_status is not None:
                    on_status(line)

    def _claim(
        self, study: optuna.Study, distributions: Mapping[str, optuna.distributions.BaseDistribution], worker: str, one_shot: bool
    ) -> optuna.Trial | None:
        """The next trial this worker evaluates, or None when the budget is spent (or a one-shot
        strategy's queue is empty). Checked, asked and tagged under the study's ask lock: no two workers
        see the budget unspent for one remaining trial, and a proposed architecture's params are stored
        before the next worker's strategy looks at the history, so none is proposed twice."""
        store = self.store
        with store.ask_lock.held():
            if store.n_spent() >= store.config.budget:
                return None
            if one_shot and not store.n_waiting():
                return None
            with warnings.catch_warnings():
                # Optuna warns that heartbeats (on for shared storages) are meant for Study.optimize; this loop beats them itself
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")
                trial = study.ask(fixed_distributions=dict(distributions))
            study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
            return trial

    # --- one-shot strategies --------------------------------------------------------------------------
    def _prepare_one_shot(self, study: optuna.Study, on_status: Callable[[str], None] | None) -> None:
        """Let the strategy train (or reload) once, under the one-shot lock, then enqueue its archs not
        yet in the study, up to the budget, under the ask lock. A trial a killed worker left (FAIL
        without an evaluation error) does not count as there."""
        store = self.store
        sampler = study.sampler
        assert isinstance(sampler, OneShotStrategy)
        with store.locked(ONESHOT_LOCK):
            selected = sampler.prepare(store.directory, on_status)
        with store.ask_lock.held():
            present = store.held_archs()
            room = store.config.budget - store.n_spent() - store.n_waiting()
            fresh = [a for a in dict.fromkeys(selected) if a not in present][: max(0, room)]
            for arch in fresh:
                study.enqueue_trial(dict(arch), user_attrs={"arch": store.space.to_string(arch)})
            self._planned = len(present) + len(fresh)

    def progress(self) -> Progress:
        """Where the run stands, from one read of the study's trials (a read costs tens of ms at thousands
        of trials on SQLite)."""
        store = self.store
        trials = store.study.get_trials(deepcopy=False)
        front = store.pareto(trials)
        pruned = sum(1 for t in trials if t.state == TrialState.PRUNED)
        labels = store.labels_spent(trials) if self.label_budget is not None else None
        budget = min(store.config.budget, self._planned) if self._planned is not None else store.config.budget
        notes = tuple(note for p in self.providers.values() if (note := p.progress_note(trials)))
        return Progress(store.n_spent(trials), budget, store.hypervolume(front), len(front), labels, self.label_budget, pruned, notes)


__all__ = ["Progress", "SearchLoop"]

