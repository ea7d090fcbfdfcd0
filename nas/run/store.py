"""The run store: a run directory, its Optuna study, worker locks, and the one way a trial is recorded.

Why the study is the source of truth: Optuna's storage (SQLite in the run directory by default, any RDB
URL for many machines) survives crashes and is shared by workers, so resuming is "count what is done,
finish the rest", and every worker sees the same history. The directory holds `config.yaml` (the
resolved config), `study.db`, `pareto.csv`, and what providers keep (`weights/`, `training.json`).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas._io import file_lock, write_atomic
from nas.objectives import MetricProvider, ObjectiveSet
from nas.pareto import hypervolume
from nas.run.config import RunConfig, RunConfigError
from nas.run.providers import front_of, reference_point
from nas.run.sources import describe, is_estimate, moved_sources, source_record
from nas.run.storage import AskLock, open_storage
from nas.run.studyfile import StudyFileError, check_study_file, read_only_storage
from nas.spaces.base import Arch, SearchSpace
from nas.strategies import CONSTRAINTS_ATTR, ERROR_ATTR, interrupted

STUDY_NAME = "nas"
CONFIG_FILE = "config.yaml"
STUDY_FILE = "study.db"
PARETO_FILE = "pareto.csv"
#: Beside pareto.csv: where each metric's numbers come from (which are estimates, which LUT, its error).
PARETO_SOURCES_FILE = "pareto.json"
WORKER_ATTR = "nas:worker"
WORKERS_DIR = ".workers"
LABELS_LOCK = ".labels.lock"
SETUP_LOCK = ".setup.lock"
WEIGHTS_LOCK = ".weights.lock"
ONESHOT_LOCK = ".oneshot.lock"
ASK_LOCK = ".ask.lock"
#: Trial user attrs: the arch string, objective/constraint metrics, metrics reported beside them.
ARCH_ATTR = "arch"
METRICS_ATTR = "metrics"
REPORTED_ATTR = "reported"
SOURCE_ATTR = "accuracy_source"
SPENT_ATTR = "label_spent"
WEIGHTS_ATTR = "weights"
PROVENANCE_ATTR = "provenance"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunStore:
    """One run directory and its study: creation or resume, locks, orphans, `record_trial`, results.

    Args:
        directory: the run directory.
        config: the run's config.
        space: its search space.
    """

    def __init__(self, directory: Path, config: RunConfig, space: SearchSpace) -> None:
        self.directory = Path(directory)
        self.config = config
        self.space = space
        self.objectives: ObjectiveSet = config.objective_set()
        self._study: optuna.Study | None = None
        self._sources: dict[str, dict[str, Any]] = {}
        self._worker_lock: Any = None
        self._ask_lock: AskLock | None = None

    # --- the study --------------------------------------------------------------------------------
    @property
    def storage_url(self) -> str:
        return self.config.storage or f"sqlite:///{(self.directory / STUDY_FILE).resolve()}"

    def _storage(self) -> optuna.storages.RDBStorage:
        return open_storage(self.storage_url, heartbeat=self.config.storage is not None)

    @property
    def ask_lock(self) -> AskLock:
        """The lock every worker of this study holds while it checks the budget and asks (see `nas.run.storage`)."""
        if self._ask_lock is None:
            self._ask_lock = AskLock(self.storage_url, self.directory / ASK_LOCK)
        return self._ask_lock

    def open_study(self, sampler: optuna.samplers.BaseSampler, providers: Mapping[str, MetricProvider]) -> optuna.Study:
        """Create the study (storing config, provenance, pins and reference point) or load it; a resumed
        study whose providers' pins or sources differ (other data, another recipe, a LUT where a measured
        table was) is refused, and so are a damaged `study.db` and a study nas did not make."""
        if self.config.storage is None:
            check_study_file(self.directory / STUDY_FILE, study_name=STUDY_NAME, results=self._results(), read_only=False)
        with _optuna_quiet():  # Optuna logs "A new study created"; nas reports the run itself
            study = optuna.create_study(
                study_name=STUDY_NAME, storage=self._storage(), sampler=sampler, directions=self.objectives.optuna_directions, load_if_exists=True
            )
        pins = json.loads(json.dumps({m: p.pins() for m, p in providers.items()}, sort_keys=True, default=str))
        provenance = json.loads(json.dumps({m: p.provenance() for m, p in providers.items()}, default=str))
        self._check_ours(study)
        if study.metric_names is None:  # optuna-dashboard and optuna.visualization label axes with these
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                study.set_metric_names(self.objectives.names)
        if "nas:config" not in study.user_attrs:
            study.set_user_attr("nas:config", self.config.to_dict())
            study.set_user_attr("nas:provenance", provenance)
            study.set_user_attr("nas:pins", pins)
            ref = reference_point(self.objectives, providers, self.space)
            if ref is not None:
                study.set_user_attr("nas:reference_point", ref.tolist())
        else:
            try:
                searched = RunConfig.from_mapping(study.user_attrs["nas:config"])
            except (RunConfigError, TypeError):
                searched = None
            # the URL may differ between machines that reach one database; the study itself is the check
            diff = [k for k in searched.differences(self.config) if k != "storage"] if searched is not None else []
            if diff:
                detail = ", ".join(f"{k}: {getattr(searched, k)!r} -> {getattr(self.config, k)!r}" for k in diff)
                raise RunConfigError(f"storage {self.storage_url} holds a different search ({detail}); refusing to mix them, choose a new --out or --storage")
            stored = study.user_attrs.get("nas:pins", {})
            changed = [m for m in pins if m in stored and stored[m] != pins[m]]
            if changed:
                detail = "; ".join(f"{m}: {_first_difference(stored[m], pins[m])}" for m in changed)
                raise RunConfigError(f"run directory {self.directory} was searched with other inputs ({detail}); refusing to mix them, choose a new --out")
            moved = moved_sources(study.user_attrs.get("nas:provenance", {}), provenance)
            if moved:
                detail = "; ".join(f"{m} came from {was}, now from {now}" for m, (was, now) in moved.items())
                raise RunConfigError(
                    f"run directory {self.directory} was searched with other data sources ({detail}); refusing to mix them in one front: "
                    "pass the --data-dir / NAS_DATA_DIR the run used, or choose a new --out"
                )
            if searched is not None and searched.to_dict() != self.config.to_dict():
                # a resume may change the budget (and keep_weights): workers joining from the storage alone read it here
                study.set_user_attr("nas:config", {**self.config.to_dict(), "storage": searched.storage})
        self._sources = {m: source_record(info) for m, info in provenance.items()}
        self._study = study
        return study

    def _results(self) -> list[str]:
        """Files in the run directory that only a search writes (an empty study beside them is damage)."""
        return [name for name in (PARETO_FILE, PARETO_SOURCES_FILE) if (self.directory / name).is_file()]

    def _check_ours(self, study: optuna.Study) -> None:
        """Refuse a study nas did not make: other objectives, or trials without nas's config. (A study
        with neither trials nor config is one a kill interrupted right after creating it; one with nas's
        config is compared with this search's config by the caller, which names what differs.)"""
        if "nas:config" in study.user_attrs:
            return
        directions = [d.name.lower() for d in study.directions]
        if directions != self.objectives.optuna_directions:
            raise StudyFileError(f"storage {self.storage_url} holds a study {STUDY_NAME!r} with directions {directions}, not {self.objectives.optuna_directions}; it was not made by this search, choose a new --out or --storage")
        if study._storage.get_n_trials(study._study_id) > 0:
            raise StudyFileError(f"storage {self.storage_url} holds a study {STUDY_NAME!r} with trials that nas did not record (no nas:config); refusing to mix them, choose a new --out or --storage")

    @property
    def study(self) -> optuna.Study:
        """The study (loaded for reading when no search opened it)."""
        if self._study is None:
            path = self.directory / STUDY_FILE
            if self.config.storage is None and not path.is_file():
                raise RunConfigError(f"{self.directory} has no {STUDY_FILE}; it holds no search to read")
            if self.config.storage is None:  # read-only: looking at a run never creates, migrates or locks it
                check_study_file(path, study_name=STUDY_NAME, results=self._results(), read_only=True)
            try:
                study = optuna.load_study(study_name=STUDY_NAME, storage=read_only_storage(path) if self.config.storage is None else self._storage())
            except KeyError:
                raise RunConfigError(f"{self.directory}: storage {self.storage_url} holds no study {STUDY_NAME!r}") from None
            if "nas:config" not in study.user_attrs:
                raise StudyFileError(f"storage {self.storage_url} holds a study {STUDY_NAME!r} that nas did not make (no nas:config); nothing to read")
            self._study = study
        return self._study

    @property
    def reference(self) -> np.ndarray | None:
        ref = self.study.user_attrs.get("nas:reference_point")
        return None if ref is None else np.asarray(ref, dtype=float)

    def provenance(self) -> dict[str, dict[str, Any]]:
        """Where each metric's numbers come from, as stored when the study was created."""
        return dict(self.study.user_attrs.get("nas:provenance", {}))

    def write_config(self) -> None:
        import yaml

        write_atomic(self.directory / CONFIG_FILE, yaml.safe_dump(self.config.to_dict(), sort_keys=False))

    # --- workers ----------------------------------------------------------------------------------
    @contextmanager
    def locked(self, name: str) -> Iterator[None]:
        """A lock file of this run directory held for the duration (see `file_lock`)."""
        with file_lock(self.directory / name):
            yield

    def lock_worker(self) -> None:
        folder = self.directory / WORKERS_DIR
        folder.mkdir(exist_ok=True)
        # one lock per worker thread too: threads of one process may each run a worker (as study.optimize(n_jobs=...) does)
        fh = open(folder / f"{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}.lock", "w")
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._worker_lock = fh

    def unlock_worker(self) -> None:
        if self._worker_lock is not None:
            Path(self._worker_lock.name).unlink(missing_ok=True)
            self._worker_lock.close()
            self._worker_lock = None

    def _other_live_workers(self) -> bool:
        """Whether another process holds a worker lock in this run directory (stale locks are removed)."""
        alive = False
        for path in (self.directory / WORKERS_DIR).glob("*.lock"):
            if self._worker_lock is not None and path == Path(self._worker_lock.name):
                continue
            with open(path, "a") as fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    alive = True
                    continue
            path.unlink(missing_ok=True)
        return alive

    def fail_orphans(self) -> int:
        """Mark RUNNING trials of dead workers as FAIL, so the budget they hold is not lost; call it under
        the ask lock.

        A worker tags its trial inside the ask lock, so under that lock an untagged RUNNING trial was left
        by a worker killed while asking. A trial tagged by this host is an orphan when its process is gone;
        one tagged by another host (a shared `--storage`) when its heartbeat is stale.
        """
        host = socket.gethostname()
        storage = self.study._storage
        stale: set[int] = set()
        if self.config.storage is not None and hasattr(storage, "_get_stale_trial_ids"):
            stale = set(storage._get_stale_trial_ids(self.study._study_id))
        failed = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = t.system_attrs.get(WORKER_ATTR, "").rpartition(":")
            if not worker_host:
                orphan = True
            elif worker_host == host and pid.isdigit():
                orphan = int(pid) != os.getpid() and not _pid_alive(int(pid))
            else:
                orphan = t._trial_id in stale
            if orphan:
                storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                failed += 1
        return failed

    def _arch_of(self, trial: FrozenTrial) -> Arch | None:
        """A trial's architecture (a waiting trial has only its fixed params); None if it holds no whole one."""
        try:
            return self.space.validate(trial.params or trial.system_attrs.get("fixed_params") or {})
        except (KeyError, ValueError):
            return None

    def held_archs(self) -> set[Arch]:
        """Architectures the study holds: every trial's but those of interrupted trials (FAIL without an
        evaluation error), which a resume queues again."""
        trials = self.study.get_trials(deepcopy=False)
        return {a for t in trials if not interrupted(t) and (a := self._arch_of(t)) is not None}

    def requeue_interrupted(self) -> int:
        """Enqueue again the architecture of each trial a kill or Ctrl-C interrupted (FAIL without an
        evaluation error) that no other trial holds, within the budget; call it under the ask lock.

        Why: the interrupted trial's architecture was the strategy's choice at that point of the history;
        evaluating it next keeps a resumed run on the path of an uninterrupted one (the strategies key
        their randomness on the trials that count, so the rest follows)."""
        held = self.held_archs()
        room = self.config.budget - self.n_spent() - self.n_waiting()
        queued = 0
        for t in self.study.get_trials(deepcopy=False):
            arch = self._arch_of(t) if interrupted(t) else None
            if arch is None or arch in held or queued >= room:
                continue
            self.study.enqueue_trial(dict(arch), user_attrs={ARCH_ATTR: self.space.to_string(arch)})
            held.add(arch)
            queued += 1
        return queued

    def n_spent(self, trials: Sequence[FrozenTrial] | None = None) -> int:
        """Trials that count against the budget: completed, pruned, failed evaluations, and running ones
        (waiting ones are planned, not spent). `trials`: the study's trials, already read."""
        spent = 0
        for t in self.study.get_trials(deepcopy=False) if trials is None else trials:
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING):
                spent += 1
            elif t.state == TrialState.FAIL and ERROR_ATTR in t.user_attrs:
                spent += 1
        return spent

    def n_waiting(self) -> int:
        """Trials enqueued and not yet asked for (a one-shot strategy's picks, re-queued interrupted ones)."""
        return len(self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))

    # --- recording --------------------------------------------------------------------------------
    def record_trial(
        self,
        trial: optuna.Trial,
        arch: Arch,
        metrics: Mapping[str, float],
        reported: Mapping[str, float] | None = None,
        provenance: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        """Store a trial's architecture and metrics and tell the study: the one way every path (the
        search loop, one-shot strategies) records an evaluated architecture.

        `provenance` (metric -> `nas.run.sources.source_record`) defaults to the sources the study was
        opened with, so each trial says where its numbers came from (measured table, which LUT, a model)."""
        study = self.study
        violations = self.objectives.violations({m: np.array([v]) for m, v in metrics.items()})[0].tolist()
        trial.set_user_attr(ARCH_ATTR, self.space.to_string(arch))
        trial.set_user_attr(METRICS_ATTR, {m: float(metrics[m]) for m in self.objectives.metrics})
        if reported:
            trial.set_user_attr(REPORTED_ATTR, {k: float(v) for k, v in reported.items()})
        sources = self._sources if provenance is None else provenance
        if sources:
            trial.set_user_attr(PROVENANCE_ATTR, {m: dict(sources[m]) for m in self.objectives.metrics if m in sources})
        if self.objectives.constraints:
            trial.set_user_attr(CONSTRAINTS_ATTR, violations)
            study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, tuple(violations))
        study.tell(trial, [float(metrics[m]) for m in self.objectives.names])

    def fail_trial(self, trial: optuna.Trial, reason: str) -> None:
        """The evaluation of `trial` failed: the reason is kept, the trial counts against the budget."""
        trial.set_user_attr(ERROR_ATTR, reason)
        self.study.tell(trial, state=TrialState.FAIL)

    # --- results ----------------------------------------------------------------------------------
    def completed(self, trials: Sequence[FrozenTrial] | None = None) -> list[FrozenTrial]:
        """The completed trials (of `trials`, the study's trials already read, when given)."""
        if trials is None:
            return self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return [t for t in trials if t.state == TrialState.COMPLETE]

    def trials(self, trials: Sequence[FrozenTrial] | None = None) -> pd.DataFrame:
        """Completed trials: `trial`, `arch`, every metric, then reported metrics (a training's
        `test_accuracy`, ...), `accuracy_source` when a predictor gives accuracy, `weights` where kept,
        and `feasible`. `trials`: the study's trials, already read (the progress display reads once)."""
        rows = []
        extra: dict[str, None] = {}
        sourced = weighted = False
        for t in self.completed(trials):
            row: dict[str, Any] = {"trial": t.number, "arch": t.user_attrs.get(ARCH_ATTR)}
            row.update(t.user_attrs.get(METRICS_ATTR, {}))
            for k, v in t.user_attrs.get(REPORTED_ATTR, {}).items():
                row[k] = v
                extra.setdefault(k)
            if SOURCE_ATTR in t.user_attrs:
                row[SOURCE_ATTR] = t.user_attrs[SOURCE_ATTR]
                sourced = True
            weights = t.user_attrs.get(WEIGHTS_ATTR)
            if weights and (self.directory / weights).is_file():
                row[WEIGHTS_ATTR] = weights
                weighted = True
            rows.append(row)
        columns = ["trial", "arch", *self.objectives.metrics, *extra, *([SOURCE_ATTR] if sourced else []), *([WEIGHTS_ATTR] if weighted else [])]
        frame = pd.DataFrame(rows, columns=columns)
        if len(frame):
            metrics = {m: frame[m].to_numpy(dtype=float) for m in self.objectives.metrics}
            frame["feasible"] = (self.objectives.violations(metrics) <= 0).all(axis=1)
        else:
            frame["feasible"] = pd.Series(dtype=bool)
        return frame

    def pareto(self, trials: Sequence[FrozenTrial] | None = None) -> pd.DataFrame:
        """Pareto-optimal feasible architectures: `arch`, one column per objective, constraint metrics,
        reported metrics, `accuracy_source` / `weights` where present, `trial`. `trials`: as `trials()`."""
        trials = self.trials(trials).drop_duplicates("arch", keep="first").reset_index(drop=True)
        front = front_of(trials, self.objectives).frame()
        rest = [c for c in trials.columns if c not in ("arch", "trial", "feasible", *self.objectives.names)]
        return front[["arch", *self.objectives.names, *rest, "trial"]].reset_index(drop=True)

    def ranked(self) -> tuple[str, pd.DataFrame] | None:
        """Feasible architectures best-first under a scalarized or lexicographic mode, with the mode's
        column: `reward` (MnasNet product, higher is better), `score` (weighted sum of the objectives
        min-max normalised over these trials, lower is better) or `order` (lexicographic place, 1 is
        best). Returns (column, frame); None in pareto and hybrid modes, which prefer no single point."""
        mode = self.config.search_mode()
        if mode.name not in ("scalarized", "lexicographic"):
            return None
        from nas.strategies._modes import mode_scores

        trials = self.trials()
        feasible = trials[trials["feasible"]].drop_duplicates("arch", keep="first").reset_index(drop=True)
        minimised = self.objectives.to_minimisation(feasible[self.objectives.names].to_numpy(dtype=float))
        scores = mode_scores(minimised, self.objectives, mode)
        if mode.name == "lexicographic":
            column, values = "order", scores.astype(int) + 1
        elif mode.kind == "product":
            column, values = "reward", -scores
        else:
            column, values = "score", scores
        feasible.insert(1, column, values)
        order = np.argsort(scores, kind="stable")
        return column, feasible.iloc[order].drop(columns=["feasible"]).reset_index(drop=True)

    def write_pareto(self) -> pd.DataFrame:
        """Write `pareto.csv` and, first, `pareto.json` beside it: where each column's numbers come from."""
        front = self.pareto()
        write_atomic(self.directory / PARETO_SOURCES_FILE, json.dumps(self.pareto_sources(front), indent=1, default=str) + "\n")
        write_atomic(self.directory / PARETO_FILE, front.to_csv(index=False))
        return front

    def pareto_sources(self, front: pd.DataFrame) -> dict[str, Any]:
        """The metadata of a front: objectives, constraints, and per metric its source in one line, whether
        it is an estimate (a fitted LUT with its held-out error, a model) and the full stored provenance."""
        provenance = self.provenance()
        return {
            "file": PARETO_FILE,
            "architectures": int(len(front)),
            "trials": [int(t) for t in front["trial"]] if "trial" in front.columns else [],
            "objectives": [f"{o.metric}:{o.direction}" for o in self.objectives.objectives],
            "constraints": [str(c) for c in self.objectives.constraints],
            "metrics": {
                m: {"source": describe(info), "estimate": is_estimate(info), "provenance": info}
                for m in self.objectives.metrics
                if isinstance(info := provenance.get(m), Mapping)
            },
        }

    def hypervolume(self, front: pd.DataFrame | None = None) -> float | None:
        """Hypervolume of the feasible front w.r.t. the run's reference point (None if it has none)."""
        ref = self.reference
        if ref is None:
            return None
        front = self.pareto() if front is None else front
        if front.empty:
            return 0.0
        return hypervolume(self.objectives.to_minimisation(front[self.objectives.names].to_numpy(dtype=float)), ref)

    def labels_spent(self, trials: Sequence[FrozenTrial] | None = None) -> int:
        """True accuracy labels claimed by trials of the study (any state: a claimed label was paid for)."""
        trials = self.study.get_trials(deepcopy=False) if trials is None else trials
        return sum(1 for t in trials if t.user_attrs.get(SPENT_ATTR) is True)

    def retain_weights(self, keep: int) -> list[Path]:
        """Delete the weights of all but the best `keep` completed trials (Pareto rank, then crowding:
        the front first); returns the files removed."""
        trials = [t for t in self.completed() if t.user_attrs.get(WEIGHTS_ATTR)]
        if len(trials) <= keep:
            return []
        F = self.objectives.to_minimisation(np.array([[t.user_attrs[METRICS_ATTR][n] for n in self.objectives.names] for t in trials], dtype=float))
        metrics = {m: np.array([t.user_attrs[METRICS_ATTR][m] for t in trials], dtype=float) for m in self.objectives.metrics}
        feasible = (self.objectives.violations(metrics) <= 0).all(axis=1)
        from nas.accuracy.multifidelity import promote

        kept = set(promote(F, keep, feasible).tolist()) if keep else set()
        removed = []
        for i, t in enumerate(trials):
            path = self.directory / t.user_attrs[WEIGHTS_ATTR]
            if i not in kept and path.is_file():
                path.unlink()
                removed.append(path)
        return removed


@contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna's INFO lines off for the duration, when its verbosity is the default INFO (a user who set
    DEBUG, or WARNING already, is left as they chose)."""
    level = optuna.logging.get_verbosity()
    if level != optuna.logging.INFO:
        yield
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _first_difference(stored: Any, current: Any, prefix: str = "") -> str:
    if isinstance(stored, dict) and isinstance(current, dict):
        for key in sorted(set(stored) | set(current)):
            if stored.get(key) != current.get(key):
                return _first_difference(stored.get(key), current.get(key), f"{prefix}{key}.")
    return f"{prefix.rstrip('.') or 'value'} {str(stored)[:40]} -> {str(current)[:40]}"


__all__ = ["CONFIG_FILE", "PARETO_FILE", "PARETO_SOURCES_FILE", "STUDY_FILE", "RunStore", "file_lock"]
