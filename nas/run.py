"""A Run: config -> space + metric providers + objectives + strategy + Optuna study, and its results.

Why the study is the source of truth: Optuna's storage (SQLite in the run directory by default, any RDB
URL for many machines) survives crashes and is shared by workers, so resuming is "count what is done,
finish the rest", and every worker sees the same history. The run directory holds `config.yaml` (the
resolved config), `study.db` and `pareto.csv`.
"""

from __future__ import annotations

import fcntl
import math
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState

from nas import tables
from nas._io import write_atomic
from nas.accuracy import table_accuracy
from nas.accuracy.active import SOURCE_ATTR, AccuracySpec, ActiveAccuracy, ActiveLearningError, ActiveOptions, active_accuracy
from nas.cost import CountProvider, table_latency
from nas.cost.energy import energy_provider
from nas.cost.lut import LUT, LUTProvider, find_lut, shipped_devices
from nas.objectives import MetricName, MetricProvider, Mode, ObjectiveSet, TableColumnProvider
from nas.pareto import ParetoFront, hypervolume
from nas.spaces import get_space
from nas.spaces.base import Arch, SearchSpace
from nas.strategies import CONSTRAINTS_ATTR, SearchContext, make_strategy, space_distributions

STUDY_NAME = "nas"
CONFIG_FILE = "config.yaml"
STUDY_FILE = "study.db"
PARETO_FILE = "pareto.csv"
WORKER_ATTR = "nas:worker"
ERROR_ATTR = "nas:error"
WORKERS_DIR = ".workers"
LABELS_LOCK = ".labels.lock"


class RunConfigError(ValueError):
    """A run config that is invalid or clashes with an existing run directory."""


@dataclass
class RunConfig:
    """Everything that defines a search; stored as `config.yaml` in the run directory.

    Example:
        >>> cfg = RunConfig(objectives=["accuracy:max", "params:min"], budget=50)
        >>> cfg.objective_set().names
        ['accuracy', 'params']
    """

    space: str = "nb201"
    dataset: str = "cifar10"
    objectives: list[str] = field(default_factory=lambda: ["accuracy:max", "params:min"])
    constraints: list[str] = field(default_factory=list)
    strategy: str = "evolution"
    strategy_options: dict[str, Any] = field(default_factory=dict)
    mode: str = "pareto"
    mode_options: dict[str, Any] = field(default_factory=dict)
    budget: int = 100
    seed: int | None = 0
    data_dir: str | None = None
    storage: str | None = None
    accuracy: str = "table"
    accuracy_options: dict[str, Any] = field(default_factory=dict)

    #: Keys that may change when a run is resumed (the rest must match the stored config).
    RESUMABLE = ("budget", "data_dir")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise RunConfigError(f"unknown config key(s) {unknown}; expected some of {sorted(known)}")
        values = dict(data)
        for key in ("objectives", "constraints"):
            if isinstance(values.get(key), str):
                values[key] = [s.strip() for s in values[key].split(",") if s.strip()]
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        try:
            with open(path, encoding="utf-8") as fh:
                data = yaml.safe_load(fh) or {}
        except OSError as exc:
            raise RunConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise RunConfigError(f"config {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise RunConfigError(f"config {path} must be a YAML mapping of keys like space, objectives, budget")
        return cls.from_mapping(data)

    def validate(self) -> None:
        if not isinstance(self.budget, int) or isinstance(self.budget, bool) or self.budget < 1:
            raise RunConfigError(f"budget must be a positive integer, got {self.budget!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise RunConfigError(f"seed must be an integer, got {self.seed!r}")
        if not isinstance(self.strategy_options, dict):
            raise RunConfigError(f"strategy_options must be a mapping, got {self.strategy_options!r}")
        if not isinstance(self.mode_options, dict):
            raise RunConfigError(f"mode_options must be a mapping, got {self.mode_options!r}")
        self.search_mode()
        self.validate_accuracy()

    def validate_accuracy(self) -> None:
        """`accuracy` is `table` or `predictor:MODEL[:ENCODING]`; `accuracy_options` only go with a predictor."""
        if not isinstance(self.accuracy_options, dict):
            raise RunConfigError(f"accuracy_options must be a mapping, got {self.accuracy_options!r}")
        try:
            spec = AccuracySpec.parse(self.accuracy)
            if spec.model is None:
                if self.accuracy_options:
                    raise RunConfigError(f"accuracy_options {sorted(self.accuracy_options)} apply only to accuracy 'predictor:MODEL', but accuracy is 'table'")
                return
            if "accuracy" not in self.objective_set().metrics:
                raise RunConfigError(f"accuracy {self.accuracy!r} needs an objective or constraint on accuracy; the search computes only {self.objective_set().metrics}")
            ActiveOptions.parse(self.accuracy_options, budget=self.budget, model=spec.model)
        except ActiveLearningError as exc:
            raise RunConfigError(str(exc)) from None

    def objective_set(self) -> ObjectiveSet:
        return ObjectiveSet.parse(self.objectives, self.constraints)

    def search_mode(self) -> Mode:
        return Mode.parse(self.mode, self.objective_set(), **self.mode_options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: RunConfig) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in self.RESUMABLE and mine[k] != theirs[k]]


# --- metric providers ------------------------------------------------------------------------------
def resolve_provider(metric: str, space: SearchSpace, config: RunConfig) -> MetricProvider:
    """The provider that computes `metric` for this run (tables now; LUTs and predictors as they land)."""
    name = MetricName.parse(metric)
    if name.kind == "accuracy":
        if config.accuracy != "table":
            return active_accuracy(
                config.accuracy, config.accuracy_options, space, dataset=config.dataset, data_dir=config.data_dir,
                objectives=config.objective_set(), budget=config.budget, seed=config.seed,
            )
        return table_accuracy(space, config.dataset, config.data_dir)
    if name.kind == "latency":
        assert name.device is not None
        return latency_provider(name.device, space, config)
    if name.kind in ("params", "flops", "macs", "peak_memory"):
        return CountProvider(name.kind, space, dataset=config.dataset)  # type: ignore[arg-type]
    if name.kind == "energy":
        assert name.device is not None
        return energy_provider(
            name.device, space, dataset=config.dataset, data_dir=config.data_dir, latency=lambda device: latency_provider(device, space, config)
        )
    raise RunConfigError(
        f"no provider for metric {metric!r} yet; available kinds: accuracy, latency@DEVICE, energy@DEVICE, params, flops, macs, peak_memory"
    )


def latency_provider(device: str, space: SearchSpace, config: RunConfig) -> MetricProvider:
    """Measured table when it covers the device and space (exact), else a shipped LUT for them."""
    if space.name == "nb201" and device in tables.NB201_DEVICES:
        has_table = tables.find_data_dir(config.data_dir) is not None
        lut_path = None if has_table else find_lut(device, space.name)
        if lut_path is None:
            return table_latency(space, device, config.data_dir)
    else:
        lut_path = find_lut(device, space.name)
    if lut_path is None:
        known = sorted(set(shipped_devices()) | (set(tables.NB201_DEVICES) if space.name == "nb201" else set()))
        raise tables.UnknownDeviceError(f"unknown device {device!r} for latency in space {space.name!r}; known devices: {', '.join(known)}")
    lut = LUT.load(lut_path)
    return LUTProvider(f"latency@{device}", lut, space, layer_kwargs={"dataset": config.dataset})


def resolve_providers(space: SearchSpace, config: RunConfig) -> dict[str, MetricProvider]:
    return {m: resolve_provider(m, space, config) for m in config.objective_set().metrics}


def reference_point(objset: ObjectiveSet, providers: Mapping[str, MetricProvider], space: SearchSpace | None = None) -> np.ndarray | None:
    """Worst value of each objective over the whole space (minimisation units), or None if unknowable.

    Why the whole space: it makes hypervolumes of different runs and strategies comparable, and it is the
    reference the published NB201 comparisons use. Known when every objective comes from a table or
    from a cheap provider over a small finite space (evaluated once, here).
    """
    worst = []
    archs: list[Arch] | None = None
    for obj in objset.objectives:
        provider = providers[obj.metric]
        if isinstance(provider, ActiveAccuracy):  # its label table, when that covers the space
            provider = provider.reference_table() or provider
        if isinstance(provider, TableColumnProvider):
            _, values = provider.evaluate_all()
        elif provider.cheap and space is not None and space.size is not None and space.size <= 50_000:
            archs = archs if archs is not None else space.enumerate()
            values = provider.evaluate(archs)
        else:
            return None
        worst.append(np.nanmin(values) if obj.direction == "max" else np.nanmax(values))
    return objset.to_minimisation(np.array([worst]))[0]


def space_table(space: SearchSpace, providers: Mapping[str, MetricProvider], archs: Sequence[Arch] | None = None) -> pd.DataFrame:
    """Every architecture of a finite space (or `archs`) with every metric: the table true fronts come from."""
    if archs is None:
        if space.size is None or space.size > 2_000_000:
            raise ValueError(f"space {space.name!r} is too large to tabulate ({space.size} archs)")
        archs = space.enumerate()
    frame = pd.DataFrame({"arch": [space.to_string(a) for a in archs]})
    for metric, provider in providers.items():
        frame[metric] = provider.evaluate(archs)
    return frame


def front_of(frame: pd.DataFrame, objset: ObjectiveSet) -> ParetoFront:
    """The feasible Pareto front of any table holding the objective and constraint metric columns."""
    points = objset.to_minimisation(frame[objset.names].to_numpy(dtype=float))
    metrics = {m: frame[m].to_numpy(dtype=float) for m in objset.metrics}
    violations = objset.violations(metrics)
    feasible = (violations <= 0).all(axis=1) & np.isfinite(points).all(axis=1)
    return ParetoFront(points, table=frame, feasible=feasible)


# --- the run -------------------------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class Progress:
    """What a progress display needs after each trial."""

    done: int
    budget: int
    hypervolume: float | None
    front_size: int
    labels: int | None = None
    label_budget: int | None = None


class Run:
    """One search: its directory, config, providers and Optuna study.

    Create with `Run.open(directory, config)` (new or resume) or `load_run(directory)`.
    """

    def __init__(self, directory: Path, config: RunConfig, *, space: SearchSpace) -> None:
        self.directory = directory
        self.config = config
        self.space = space
        self.objectives = config.objective_set()
        self._providers: dict[str, MetricProvider] | None = None
        self._study: optuna.Study | None = None
        self._worker_lock: Any = None

    @property
    def providers(self) -> dict[str, MetricProvider]:
        """Metric providers, resolved on first use (reading results needs none, and no data directory)."""
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
        elif directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
            raise RunConfigError(f"{directory} exists and is not a nas run directory (no {CONFIG_FILE}); choose a new --out")
        if config is None:
            if stored is None:
                raise RunConfigError(f"{directory} is not a nas run directory (no {CONFIG_FILE})")
            config = stored
        config.validate()
        if stored is not None:
            diff = config.differences(stored)
            if diff:
                detail = ", ".join(f"{k}: {getattr(stored, k)!r} -> {getattr(config, k)!r}" for k in diff)
                raise RunConfigError(f"run directory {directory} holds a different search ({detail}); refusing to overwrite, choose a new --out")
        space = get_space(config.space)
        if config.dataset not in getattr(space, "datasets", {config.dataset: None}):
            raise RunConfigError(f"space {space.name!r} has no dataset {config.dataset!r}; expected one of {sorted(space.datasets)}")
        run = cls(directory, config, space=space)
        if not for_search:
            if stored is None:
                raise RunConfigError(f"{directory} is not a nas run directory (no {CONFIG_FILE})")
            return run
        run.providers  # resolve (and so validate) every provider before anything is written
        run.make_sampler()
        run.check_feasible()
        directory.mkdir(parents=True, exist_ok=True)
        run._create_or_load_study()
        write_atomic(config_path, yaml.safe_dump(config.to_dict(), sort_keys=False))
        return run

    @property
    def storage_url(self) -> str:
        return self.config.storage or f"sqlite:///{(self.directory / STUDY_FILE).resolve()}"

    def context(self) -> SearchContext:
        """Objectives, mode, and the metrics known before evaluation (cheap providers) for the strategy."""
        known = tuple(m for m, p in self.providers.items() if p.cheap)

        def evaluate_known(archs: Sequence[Arch]) -> dict[str, np.ndarray]:
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

    def check_feasible(self) -> None:
        """Refuse a constraint set that no architecture of a finite space can satisfy, before searching."""
        context = self.context()
        cons = context.known_constraints()
        if not cons or self.space.size is None or self.space.size > 200_000:
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

    def _create_or_load_study(self) -> optuna.Study:
        sampler = self.make_sampler()
        storage = optuna.storages.RDBStorage(self.storage_url, engine_kwargs={"connect_args": {"timeout": 60}} if self.storage_url.startswith("sqlite") else None)
        study = optuna.create_study(
            study_name=STUDY_NAME, storage=storage, sampler=sampler, directions=self.objectives.optuna_directions, load_if_exists=True
        )
        if "nas:config" not in study.user_attrs:
            study.set_user_attr("nas:config", self.config.to_dict())
            study.set_user_attr("nas:provenance", {m: p.provenance() for m, p in self.providers.items()})
            ref = reference_point(self.objectives, self.providers, self.space)
            if ref is not None:
                study.set_user_attr("nas:reference_point", ref.tolist())
        self._study = study
        return study

    @property
    def study(self) -> optuna.Study:
        if self._study is None:
            self._create_or_load_study()
        assert self._study is not None
        return self._study

    @property
    def reference(self) -> np.ndarray | None:
        ref = self.study.user_attrs.get("nas:reference_point")
        return None if ref is None else np.asarray(ref, dtype=float)

    def provenance(self) -> dict[str, dict[str, Any]]:
        """Where each metric's numbers come from, as stored when the study was created (`estimate` flags models)."""
        return dict(self.study.user_attrs.get("nas:provenance", {}))

    # --- bookkeeping ------------------------------------------------------------------------------
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

    def _fail_orphans(self) -> int:
        """Mark RUNNING trials of dead workers as FAIL, so the budget they hold is not lost.

        A trial is created before its worker can tag it (Optuna samples inside `ask`), so an untagged
        RUNNING trial is an orphan when no other worker of this run directory is alive. With a shared
        storage (`--storage`), workers on other hosts are trusted to be alive.
        """
        host = socket.gethostname()
        shared = self.config.storage is not None
        others = shared or self._other_live_workers()
        failed = 0
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker_host, _, pid = t.system_attrs.get(WORKER_ATTR, "").rpartition(":")
            if worker_host == host and pid.isdigit():
                orphan = int(pid) != os.getpid() and not _pid_alive(int(pid))
            else:
                orphan = not others and not worker_host
            if orphan:
                self.study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
                failed += 1
        return failed

    def n_spent(self) -> int:
        """Trials that count against the budget: completed, failed evaluations, and ones still running."""
        spent = 0
        for t in self.study.get_trials(deepcopy=False):
            if t.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
                spent += 1
            elif t.state == TrialState.FAIL and ERROR_ATTR in t.user_attrs:
                spent += 1
        return spent

    # --- searching --------------------------------------------------------------------------------
    def _evaluate_trial(self, study: optuna.Study, trial: optuna.Trial, arch: Arch) -> dict[str, float]:
        """Every metric of `arch` for `trial`; a predictor-backed accuracy last, as its labelling rule
        needs the trial's other metrics (does the arch enter the front?) and the study's labels."""
        active = {m: p for m, p in self.providers.items() if isinstance(p, ActiveAccuracy)}
        metrics = {m: float(p.evaluate([arch])[0]) for m, p in self.providers.items() if m not in active}
        for m, p in active.items():
            metrics[m] = p.evaluate_trial(study, trial, arch, metrics, lock=self.directory / LABELS_LOCK)
        return {m: metrics[m] for m in self.providers}

    def labels_spent(self) -> int | None:
        """True accuracies (labels) this run has spent, read from the study; None with table accuracy."""
        if self.config.accuracy == "table":
            return None
        return ActiveAccuracy.labels_spent(self.study.get_trials(deepcopy=False))

    def label_budget(self) -> int | None:
        """The most labels the run may spend (`accuracy_options`); None with table accuracy."""
        spec = AccuracySpec.parse(self.config.accuracy)
        if spec.model is None:
            return None
        return ActiveOptions.parse(self.config.accuracy_options, budget=self.config.budget, model=spec.model).label_budget

    def search(self, *, on_trial: Callable[[Progress], None] | None = None, pareto_every: int = 25) -> pd.DataFrame:
        """Run trials until the budget is spent (by this and any other worker); return the front."""
        study = self.study
        self._lock_worker()
        try:
            return self._search(study, on_trial, pareto_every)
        finally:
            self._unlock_worker()

    def _lock_worker(self) -> None:
        folder = self.directory / WORKERS_DIR
        folder.mkdir(exist_ok=True)
        fh = open(folder / f"{socket.gethostname()}-{os.getpid()}.lock", "w")
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self._worker_lock = fh

    def _unlock_worker(self) -> None:
        if self._worker_lock is not None:
            Path(self._worker_lock.name).unlink(missing_ok=True)
            self._worker_lock.close()
            self._worker_lock = None

    def _search(self, study: optuna.Study, on_trial: Callable[[Progress], None] | None, pareto_every: int) -> pd.DataFrame:
        self._fail_orphans()
        distributions = space_distributions(self.space)
        worker = f"{socket.gethostname()}:{os.getpid()}"
        since_write = 0
        while self.n_spent() < self.config.budget:
            trial = study.ask(fixed_distributions=distributions)
            study._storage.set_trial_system_attr(trial._trial_id, WORKER_ATTR, worker)
            try:
                arch = self.space.validate(trial.params)
                metrics = self._evaluate_trial(study, trial, arch)
                values = [metrics[m] for m in self.objectives.names]
                if not all(math.isfinite(v) for v in metrics.values()):
                    missing = [m for m, v in metrics.items() if not math.isfinite(v)]
                    raise ValueError(f"no value for {missing} of {self.space.to_string(arch)}")
            except (KeyboardInterrupt, SystemExit):
                study.tell(trial, state=TrialState.FAIL)
                raise
            except Exception as exc:  # an evaluation error costs one trial, never the run
                trial.set_user_attr(ERROR_ATTR, f"{type(exc).__name__}: {exc}")
                study.tell(trial, state=TrialState.FAIL)
                continue
            violations = self.objectives.violations({m: np.array([v]) for m, v in metrics.items()})[0].tolist()
            trial.set_user_attr("arch", self.space.to_string(arch))
            trial.set_user_attr("metrics", metrics)
            trial.set_user_attr("provenance", {m: p.provenance().get("table", type(p).__name__) for m, p in self.providers.items()})
            if self.objectives.constraints:
                trial.set_user_attr(CONSTRAINTS_ATTR, violations)
                study._storage.set_trial_system_attr(trial._trial_id, CONSTRAINTS_ATTR, tuple(violations))
            study.tell(trial, values)
            since_write += 1
            if pareto_every and since_write >= pareto_every:
                self.write_pareto()
                since_write = 0
            if on_trial is not None:
                on_trial(self.progress())
        return self.write_pareto()

    # --- results ----------------------------------------------------------------------------------
    def trials(self) -> pd.DataFrame:
        """Completed trials: `trial`, `arch`, every metric, `accuracy_source` (label or predicted) when
        accuracy comes from a predictor, and `feasible`."""
        sourced = self.config.accuracy != "table"
        rows = []
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            row = {"trial": t.number, "arch": t.user_attrs.get("arch")}
            row.update(t.user_attrs.get("metrics", {}))
            if sourced:
                row[SOURCE_ATTR] = t.user_attrs.get(SOURCE_ATTR)
            rows.append(row)
        columns = ["trial", "arch", *self.objectives.metrics, *([SOURCE_ATTR] if sourced else [])]
        frame = pd.DataFrame(rows, columns=columns)
        if len(frame):
            metrics = {m: frame[m].to_numpy(dtype=float) for m in self.objectives.metrics}
            frame["feasible"] = (self.objectives.violations(metrics) <= 0).all(axis=1)
        else:
            frame["feasible"] = pd.Series(dtype=bool)
        return frame

    def pareto(self) -> pd.DataFrame:
        """Pareto-optimal feasible architectures: `arch`, then one column per objective, then the rest."""
        trials = self.trials().drop_duplicates("arch", keep="first").reset_index(drop=True)
        extra = [m for m in self.objectives.metrics if m not in self.objectives.names]
        front = front_of(trials, self.objectives).frame()
        sourced = [SOURCE_ATTR] if SOURCE_ATTR in trials.columns else []
        return front[["arch", *self.objectives.names, *extra, *sourced, "trial"]].reset_index(drop=True)

    def write_pareto(self) -> pd.DataFrame:
        front = self.pareto()
        write_atomic(self.directory / PARETO_FILE, front.to_csv(index=False))
        return front

    def hypervolume(self) -> float | None:
        """Hypervolume of the current feasible front w.r.t. the run's reference point (None if it has none)."""
        ref = self.reference
        if ref is None:
            return None
        front = self.pareto()
        if front.empty:
            return 0.0
        return hypervolume(self.objectives.to_minimisation(front[self.objectives.names].to_numpy(dtype=float)), ref)

    def progress(self) -> Progress:
        front = self.pareto()
        hv = None
        ref = self.reference
        if ref is not None:
            hv = 0.0 if front.empty else hypervolume(self.objectives.to_minimisation(front[self.objectives.names].to_numpy(dtype=float)), ref)
        return Progress(self.n_spent(), self.config.budget, hv, len(front), self.labels_spent(), self.label_budget())


def load_run(directory: str | Path) -> Run:
    """Open an existing run directory to read its results (`run.pareto()`, `run.trials()`)."""
    return Run.open(directory, for_search=False)


__all__ = ["Progress", "Run", "RunConfig", "RunConfigError", "front_of", "load_run", "reference_point", "resolve_providers", "space_table"]
