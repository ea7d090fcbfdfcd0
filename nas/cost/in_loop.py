"""The user's own device measured in the search loop: `--measure "latency@mydev=SOURCE"`.

Why: a device with no table and no LUT (a phone on the desk, an edge box) can still time a few networks.
Its latency starts as a few-shot estimate transferred from the known devices (HELP-style,
`nas.cost.fit.TransferModel` over the reference tables nas ships), and the search spends at most
`measure_budget` real measurements on the architectures where one changes the front most; the device's
model is refitted as each arrives. It is the cost-side twin of `nas.accuracy.active`. The rule, for each
trial in turn (`MeasuredLatency.evaluate_trial`); "enters the front" means feasible and weakly dominated
by no completed feasible trial of the study at its stored metrics:

1. an arch measured before in this study reuses that measurement (free);
2. while fewer than `initial` measurements were spent (or the model cannot fit yet: it needs 2), measure
   it (`initial`);
3. else, while measurements spent < `measure_budget`:
   a. measure it if it enters the front at its estimated mean (`front`): an unverified point on the
      front would both be reported and steer the strategy;
   b. exploration, paced (spent < initial + ceil((budget - initial) * trials started / trial budget)):
      measure it if it enters the front at its optimistic value, one std better (`optimistic`), or if
      its relative std is at least the 75th percentile of the last 25 seen (>= 8 of them: `uncertain`);
4. otherwise it keeps the estimate (`latency_source` = estimated, with `latency_std`).

A measurement that fails (see `nas.cost.sources`) is recorded with its reason (`latency_measure_error`)
and counts against the budget; the trial keeps the estimate, or fails when there is no model yet.

The uncertainty of an estimate is the transfer model's own (`TransferModel.predict_distribution`) where
it gives one, else the spread (standard deviation) of its member predictions: members disagree where the
reference devices do not pin the target down (raspi4 from 10 random measurements, 17 references: mean
spread 0.215 ms, mean absolute error 0.213 ms).

Strategies may price the whole space with the model's current means (`MetricProvider.repriced`): bo
does, re-pricing once per refit (`MeasuredLatency.prices_version`, synced from the study like every
decision here). Why: bo modelling the device's latency again from the trials threw the model away, and
loop30 trailed a LUT fitted offline on 30 measurements (benchmarks/results/own_device.md).

Why the state lives in the study: measurements, their count and the stds seen are read back from the
trials' user attrs before every decision, so a resumed run or several workers continue from the same
state; workers claim measurements under the run's file lock, so the budget holds for them too.
`RUN/measurements.csv` (every measured arch and its ms; the `nas lut fit` format) and
`RUN/measurement_failures.csv` are rewritten atomically from the study after each measurement.
At the end of a worker's search (`MeasuredLatency.finish`) the device's model is distilled into `RUN/DEVICE.csv` + sidecar, with
the model's leave-one-out error over the measured archs, reusable as `latency@DEVICE` once copied into
`$NAS_LUTS_DIR` (or `latency_luts/`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas._io import file_lock, write_atomic
from nas.cost.sources import LatencySource, MeasurementFailed, SourceError, parse_source
from nas.objectives import Evaluator, MetricName, MetricProvider, ObjectiveSet, ProviderRequest, Tier, TrialContext, evaluators
from nas.spaces.base import Arch, SearchSpace

if TYPE_CHECKING:  # nas.cost.fit imports scipy.stats and scipy.optimize (about 2 s): only a run that measures needs it
    from nas.cost.fit import ReferenceTables

#: Trial user attrs (the metric's kind, `latency`, is the prefix: one measured device per kind and run).
SOURCE_ATTR = "latency_source"
STD_ATTR = "latency_std"
MEASURED_ATTR = "latency_measured"
PREDICTED_ATTR = "latency_predicted"
PREDICTED_STD_ATTR = "latency_predicted_std"
SPENT_ATTR = "latency_measure_spent"
REASON_ATTR = "latency_measure_reason"
ERROR_ATTR = "latency_measure_error"

MEASUREMENTS_FILE = "measurements.csv"
FAILURES_FILE = "measurement_failures.csv"
MEASURE_DIR = "measure"
OPTION_KEYS = ("initial", "timeout_s", "processes", "reference_devices")
DEFAULT_INITIAL = 5
MIN_FIT = 2
DEFAULT_SHARE = 0.3
STD_WINDOW = 25
STD_MIN_SEEN = 8
STD_QUANTILE = 0.75


class InLoopError(ValueError):
    """A `--measure` setting that cannot work, or a trial that can be neither measured nor estimated."""


# --- options ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeasureOptions:
    """The validated settings of one measured device.

    Keys: `budget` (most measurements; default 30 % of the trial budget), `initial` (measurements before
    the model's estimates are trusted; default 5, at least 2), `timeout_s` (cmd), `processes`
    (backend), `reference_devices` (`all`, or a list of known devices to transfer from).

    Example:
        >>> MeasureOptions.parse({"initial": 4}, budget=20, trials=100).budget
        20
    """

    budget: int
    initial: int
    reference_devices: tuple[str, ...] | None
    source_options: dict[str, Any]

    @classmethod
    def parse(cls, options: Mapping[str, Any], *, budget: int | None, trials: int) -> MeasureOptions:
        unknown = sorted(set(options) - set(OPTION_KEYS))
        if unknown:
            raise InLoopError(f"unknown measure option(s) {unknown}; expected some of {list(OPTION_KEYS)}")
        spend = max(MIN_FIT, math.ceil(DEFAULT_SHARE * trials)) if budget is None else budget
        if not isinstance(spend, int) or isinstance(spend, bool) or spend < 1:
            raise InLoopError(f"measure budget must be a positive integer, got {spend!r}")
        initial = options.get("initial", min(DEFAULT_INITIAL, spend))
        if not isinstance(initial, int) or isinstance(initial, bool) or not MIN_FIT <= initial <= max(spend, MIN_FIT):
            raise InLoopError(f"measure option initial must be an integer from {MIN_FIT} to the measure budget ({spend}), got {initial!r}")
        if spend < MIN_FIT:
            raise InLoopError(f"measure budget must be at least {MIN_FIT} (the fewest measurements the device's model fits on), got {spend}")
        refs = options.get("reference_devices", "all")
        if isinstance(refs, str):
            refs = None if refs == "all" else [r.strip() for r in refs.split(",") if r.strip()]
        if refs is not None and (not isinstance(refs, (list, tuple)) or not refs):
            raise InLoopError(f"measure option reference_devices must be 'all' or a list of devices, got {options.get('reference_devices')!r}")
        source_options = {k: options[k] for k in ("timeout_s", "processes") if k in options}
        return cls(spend, initial, None if refs is None else tuple(str(r) for r in refs), source_options)


# --- the known devices ------------------------------------------------------------------------------
@lru_cache(maxsize=4)
def _all_references(space_name: str, data_dir: str | None) -> ReferenceTables:
    """Every known device's measured latency of every arch of the space (built once per process: the
    pool's operator counts and the smoothed tables take tens of seconds for NB201's 15,625 archs)."""
    from nas import tables
    from nas.cost.fit import ArchPool, ReferenceTables
    from nas.cost.table import table_devices
    from nas.spaces import get_space

    space = get_space(space_name)
    devices = table_devices(space_name)
    frame = tables.nb201(devices=list(devices), data_dir=data_dir)
    pool = ArchPool(space, [space.from_string(s) for s in frame["arch"]])
    full = ReferenceTables(pool, frame[[f"latency@{d}" for d in devices]].to_numpy(dtype=float), devices)
    full.smoothed  # noqa: B018 - smoothed once here; each run's `select` keeps its columns instead of smoothing again
    return full


def reference_tables(space: SearchSpace, *, exclude: Sequence[str] = (), devices: Sequence[str] | None = None, data_dir: str | None = None) -> ReferenceTables:
    """The known devices' tables of `space` to transfer from: `devices` (default all), minus `exclude`
    (the measured device itself, and a CSV source's column: the same device's own numbers)."""
    from nas.cost.table import table_devices

    if not table_devices(space.name):
        raise InLoopError(f"measuring a device in the loop needs known devices' latency tables of space {space.name!r}; nas ships them for nb201")
    full = _all_references(space.name, data_dir)
    chosen = list(full.devices) if devices is None else list(devices)
    unknown = [d for d in chosen if d not in full.devices]
    if unknown:
        raise InLoopError(f"unknown reference device(s) {unknown} for space {space.name!r}; known: {', '.join(full.devices)}")
    kept = [d for d in chosen if d not in set(exclude)]
    if not kept:
        raise InLoopError(f"no reference device left after leaving out {list(exclude)}; name others in reference_devices")
    return full.select(kept)


# --- the device's model -----------------------------------------------------------------------------
class FewShotLatency:
    """The device's latency of every pool arch from its measurements: mean and std (ms), `n_pool`.

    Example:
        >>> from nas.cost.fit import ArchPool, ReferenceTables
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> pool = ArchPool(space, space.enumerate()[::97])
        >>> base = pool.counts.toarray().sum(axis=1)
        >>> ref = ReferenceTables(pool, np.column_stack([base, base ** 1.1, np.sqrt(base)]), ("a", "b", "c"))
        >>> model = FewShotLatency(ref).fit(pool.archs[:6], 2 * base[:6] + 1)
        >>> mean, std = model.predict(pool.archs[6:8])
        >>> mean.shape, bool((std >= 0).all())
        ((2,), True)
    """

    def __init__(self, reference: ReferenceTables) -> None:
        self.reference = reference

    def fit(self, archs: Sequence[Arch], latencies_ms: np.ndarray) -> FewShotLatency:
        from nas.cost.fit import TransferModel

        model = TransferModel(self.reference).fit(self.reference.pool.rows(archs), np.asarray(latencies_ms, dtype=float))
        self.mean_, self.std_ = model.predict_distribution()
        return self

    @property
    def fitted(self) -> bool:
        return hasattr(self, "mean_")

    def predict(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) per arch; NaN before a fit and for archs outside the reference pool."""
        n = len(archs)
        if not self.fitted:
            return np.full(n, np.nan), np.full(n, np.nan)
        index = self.reference.pool._row
        rows = np.array([index.get(a, -1) for a in archs], dtype=np.int64)
        ok = rows >= 0
        mean, std = np.full(n, np.nan), np.full(n, np.nan)
        mean[ok], std[ok] = self.mean_[rows[ok]], self.std_[rows[ok]]
        return mean, std


def leave_one_out(reference: ReferenceTables, archs: Sequence[Arch], latencies_ms: np.ndarray) -> np.ndarray:
    """Each measured arch's latency predicted by the model fitted on the other measurements."""
    from nas.cost.fit import TransferModel

    y = np.asarray(latencies_ms, dtype=float)
    rows = reference.pool.rows(archs)
    out = np.empty(len(y))
    for i in range(len(y)):
        keep = np.arange(len(y)) != i
        out[i] = TransferModel(reference).fit(rows[keep], y[keep]).predict()[rows[i]]
    return out


# --- the front rule ---------------------------------------------------------------------------------
def enters_front(objectives: ObjectiveSet, candidate: Mapping[str, float], trials: Sequence[FrozenTrial]) -> bool:
    """`ObjectiveSet.enters_front` against the completed trials at their stored metrics."""
    return objectives.enters_front(candidate, [t.user_attrs["metrics"] for t in trials if t.state == TrialState.COMPLETE and "metrics" in t.user_attrs])


def better_sign(objectives: ObjectiveSet, metric: str) -> float:
    """-1 when smaller values of `metric` are better for the search (a min objective or an upper bound)."""
    for o in objectives.objectives:
        if o.metric == metric:
            return -1.0 if o.direction == "min" else 1.0
    ops = [c.op for c in objectives.constraints if c.metric == metric]
    return -1.0 if not ops or ops[0] in ("<=", "<") else 1.0


# --- the provider -----------------------------------------------------------------------------------
class MeasuredLatency(MetricProvider):
    """`latency@DEVICE` of a device measured in the loop: tier `estimate` (most trials carry the model's
    estimate), `evaluate_trial` applies the module's rule and writes the decision into the trial's attrs.

    Args:
        metric: `latency@DEVICE`.
        space: the search space.
        source: how one measurement is taken.
        reference: the known devices' tables the estimate transfers from.
        objectives: the search's objectives and constraints (for the front rule).
        options: measurement budget and initial measurements.
        budget: the search's trial budget (paces exploration).
    """

    tier = Tier.ESTIMATE
    repriced = True

    def __init__(
        self, metric: str, space: SearchSpace, source: LatencySource, reference: ReferenceTables, objectives: ObjectiveSet, options: MeasureOptions, *, budget: int
    ) -> None:
        self.metric = metric
        self.device = str(MetricName.parse(metric).device)
        self.space, self.source, self.reference = space, source, reference
        self.objectives, self.options, self.budget = objectives, options, max(1, budget)
        self.model = FewShotLatency(reference)
        self._measured: dict[str, float] = {}
        self._fitted_on: dict[str, float] = {}
        self._sign = better_sign(objectives, metric)

    # --- state read back from the study -----------------------------------------------------------
    def _arch_string(self, trial: FrozenTrial) -> str:
        return trial.user_attrs.get("arch") or self.space.to_string(self.space.validate(trial.params))

    def stored_measurements(self, trials: Sequence[FrozenTrial]) -> dict[str, float]:
        """Arch string -> measured latency (ms) for every measured trial of the study, in trial order."""
        out: dict[str, float] = {}
        for t in trials:
            value = t.user_attrs.get(MEASURED_ATTR)
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.setdefault(self._arch_string(t), float(value))
        return out

    @staticmethod
    def spent(trials: Sequence[FrozenTrial]) -> int:
        """Measurements claimed by trials of the study (in any state, failed ones included)."""
        return sum(1 for t in trials if t.user_attrs.get(SPENT_ATTR) is True)

    def sync(self, trials: Sequence[FrozenTrial]) -> None:
        """Read the study's measurements; the model refits when they changed (from 2 of them)."""
        measured = self.stored_measurements(trials)
        self._measured = measured
        if measured != self._fitted_on and len(measured) >= MIN_FIT:
            self.model.fit([self.space.from_string(s) for s in measured], np.fromiter(measured.values(), dtype=float, count=len(measured)))
            self._fitted_on = dict(measured)

    def prices_version(self, trials: Sequence[FrozenTrial]) -> tuple[tuple[str, float], ...] | None:
        """The measurements the model is fitted on (after `sync` with the study's `trials`, so the
        sampler of any worker prices with the model the next `evaluate_trial` will use), or None before
        the first fit. Why the set and not a count: two workers may have fitted on different sets of one size."""
        self.sync(trials)
        return tuple(sorted(self._fitted_on.items())) if self.model.fitted else None

    # --- estimates --------------------------------------------------------------------------------
    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Measured latency where the study has one, else the model's estimate (NaN before a fit)."""
        mean, _ = self.model.predict(archs)
        for i, arch in enumerate(archs):
            value = self._measured.get(self.space.to_string(arch))
            if value is not None:
                mean[i] = value
        return mean

    # --- the rule ---------------------------------------------------------------------------------
    def paced_allowance(self, n_trials: int) -> int:
        initial, budget = self.options.initial, self.options.budget
        return initial + math.ceil((budget - initial) * min(1.0, n_trials / self.budget))

    def _uncertain(self, relative_std: float, trials: Sequence[FrozenTrial]) -> bool:
        seen = []
        for t in trials:
            std, value = t.user_attrs.get(STD_ATTR, t.user_attrs.get(PREDICTED_STD_ATTR)), t.user_attrs.get(PREDICTED_ATTR)
            if isinstance(std, (int, float)) and isinstance(value, (int, float)) and value > 0:
                seen.append(std / value)
        seen = seen[-STD_WINDOW:]
        return len(seen) >= STD_MIN_SEEN and relative_std >= float(np.quantile(seen, STD_QUANTILE))

    def reason_to_measure(self, mean: float, std: float, others: Mapping[str, float], trials: Sequence[FrozenTrial]) -> str | None:
        """`initial`, `front`, `optimistic`, `uncertain`, or None (keep the estimate), by the module's rule."""
        spent = self.spent(trials)
        if spent >= self.options.budget:
            return None
        if spent < self.options.initial or not self.model.fitted or not math.isfinite(mean):
            return "initial"
        missing = [m for m in self.objectives.metrics if m != self.metric and m not in others]
        if missing or enters_front(self.objectives, {**others, self.metric: mean}, trials):
            return "front"
        if spent >= self.paced_allowance(len(trials)):
            return None
        if enters_front(self.objectives, {**others, self.metric: mean + self._sign * std}, trials):
            return "optimistic"
        if self._uncertain(std / mean, trials):
            return "uncertain"
        return None

    def _claim(self, context: TrialContext) -> bool:
        with file_lock(context.lock):
            if self.spent(context.study.get_trials(deepcopy=False)) >= self.options.budget:
                return False
            context.trial.set_user_attr(SPENT_ATTR, True)
            return True

    def _measure(self, arch: Arch, context: TrialContext) -> tuple[float | None, str | None]:
        """(latency, None) or (None, reason) for one claimed measurement."""
        workdir = (context.directory or Path(".")) / MEASURE_DIR
        try:
            return self.source.measure(arch, workdir), None
        except MeasurementFailed as exc:
            return None, str(exc)

    def evaluate_trial(self, arch: Arch, context: TrialContext) -> dict[str, float]:
        """The trial's latency (measured or estimated) by the module's rule; writes `latency_source`
        (measured / estimated), `latency_std`, `latency_measured`, `latency_predicted[_std]`,
        `latency_measure_spent`, `latency_measure_reason`, `latency_measure_error`.

        Raises:
            InLoopError: the measurement failed (or none was left) and the model cannot estimate yet.
        """
        study, trial = context.study, context.trial
        trials = study.get_trials(deepcopy=False)
        self.sync(trials)
        key = self.space.to_string(arch)
        if key in self._measured:
            return self._record(trial, {SOURCE_ATTR: "measured", MEASURED_ATTR: self._measured[key], REASON_ATTR: "reused"}, self._measured[key])
        mean_array, std_array = self.model.predict([arch])
        mean, std = float(mean_array[0]), float(std_array[0])
        reason = self.reason_to_measure(mean, std, context.metrics, trials)
        error = None
        if reason is not None and self._claim(context):
            value, error = self._measure(arch, context)
            attrs: dict[str, Any] = {REASON_ATTR: reason}
            if math.isfinite(mean):
                attrs |= {PREDICTED_ATTR: mean, PREDICTED_STD_ATTR: std}
            if value is not None:
                self._measured[key] = value
                attrs |= {SOURCE_ATTR: "measured", MEASURED_ATTR: value}
                result = self._record(trial, attrs, value)
                self.write_measurements(context)
                return result
            trial.set_user_attr(ERROR_ATTR, error)
            self._record(trial, attrs, None)
            self.write_measurements(context)
        if not math.isfinite(mean):
            why = f"its measurement failed ({error})" if error else f"the measurement budget ({self.options.budget}) is spent"
            raise InLoopError(f"no {self.metric} for {key}: {why}, and the device's model has {len(self._measured)} of the {MIN_FIT} measurements it needs")
        return self._record(trial, {SOURCE_ATTR: "estimated", STD_ATTR: std, PREDICTED_ATTR: mean}, mean)

    def _record(self, trial: Any, attrs: Mapping[str, Any], value: float | None) -> dict[str, float]:
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        return {} if value is None else {self.metric: float(value)}

    # --- files in the run directory ---------------------------------------------------------------
    def write_measurements(self, context: TrialContext) -> None:
        """Rewrite `measurements.csv` and `measurement_failures.csv` from the study, under the run's lock."""
        if context.directory is None:
            return
        with file_lock(context.lock):
            trials = context.study.get_trials(deepcopy=False)
            measured = self.stored_measurements(trials)
            frame = pd.DataFrame({"arch_str": list(measured), self.device: list(measured.values())})
            write_atomic(context.directory / MEASUREMENTS_FILE, frame.to_csv(index=False))
            failures = [(t.number, self._arch_string(t), t.user_attrs[ERROR_ATTR]) for t in trials if ERROR_ATTR in t.user_attrs]
            if failures:
                table = pd.DataFrame(failures, columns=["trial", "arch_str", "reason"])
                write_atomic(context.directory / FAILURES_FILE, table.to_csv(index=False))

    # --- reporting --------------------------------------------------------------------------------
    def reference_values(self, space: Any) -> np.ndarray | None:
        """None: the device's worst latency over the space is not known before it is measured."""
        return None

    def pins(self) -> dict[str, Any]:
        return {"source": self.source.spec, **self.source.pins(), "reference_devices": list(self.reference.devices)}

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            **self.source.provenance(),
            "estimate": True,
            "model": "transfer (nas.cost.fit.TransferModel) refitted on the measurements",
            "reference_devices": list(self.reference.devices),
            "measure_budget": self.options.budget,
            "initial": self.options.initial,
        }

    def progress_note(self, trials: Sequence[Any]) -> str | None:
        return f"{self.device} measured {self.spent(trials)}/{self.options.budget}"

    def finish(self, directory: Path, trials: Sequence[Any]) -> str | None:
        """The device's model, fitted on every measurement of the study, saved as `directory/DEVICE.csv`."""
        path = save_device_lut(self, Path(directory), trials)
        if path is None:
            return None
        from nas.cost.lut import LUT

        v = LUT.load(path).meta["validation"][self.space.name]
        return (
            f"{self.metric}: {v['k']} measurements (RUN/measurements.csv); the device's model saved as {path} (leave-one-out error over them: "
            f"median {v['mdape']:.1%}, mean {v['mape']:.1%}, Spearman {v['spearman']:.3f}); copy it and its .json into $NAS_LUTS_DIR to search with {self.metric} later"
        )


def measured_latency(request: ProviderRequest) -> MeasuredLatency:
    """`measure:SOURCE` for `latency@DEVICE`: the provider its options describe, every input checked here.

    `request.options` holds `budget` (the run's `measure_budget`, None for the default) and the run's
    `measure_options`.
    """
    if request.objectives is None or request.metric not in request.objectives.metrics:
        raise InLoopError(f"--measure {request.metric}: the search has no objective or constraint on {request.metric}")
    options = dict(request.options)
    parsed = MeasureOptions.parse({k: v for k, v in options.items() if k != "budget"}, budget=options.get("budget"), trials=request.budget)
    try:
        source = parse_source(request.argument, request.space, parsed.source_options, dataset=request.dataset)
    except SourceError as exc:
        raise InLoopError(f"--measure {request.metric}: {exc}") from None
    device = str(MetricName.parse(request.metric).device)
    exclude = [device] + ([source.column] if hasattr(source, "column") else [])
    reference = reference_tables(request.space, exclude=exclude, devices=parsed.reference_devices, data_dir=request.data_dir)
    return MeasuredLatency(request.metric, request.space, source, reference, request.objectives, parsed, budget=request.budget)


# --- the end of a run -------------------------------------------------------------------------------
def save_device_lut(provider: MeasuredLatency, directory: Path, trials: Sequence[FrozenTrial], *, seed: int = 0) -> Path | None:
    """Distil the device's model (fitted on every measurement of the study) into `directory/DEVICE.csv`
    + sidecar, whose `validation[space]` holds the model's leave-one-out error over the measured archs.
    None when fewer than 3 measurements exist (leave-one-out needs 2 to fit on)."""
    from nas.cost.fit import fit_with_model, validation_figures
    from nas.cost.measurements import FitReport, save_fitted

    measured = provider.stored_measurements(trials)
    if len(measured) < MIN_FIT + 1:
        return None
    archs = [provider.space.from_string(s) for s in measured]
    y = np.fromiter(measured.values(), dtype=float, count=len(measured))
    fitted = fit_with_model(provider.space, archs, y, device=provider.device, method="transfer", seed=seed, reference=provider.reference)
    validation = {
        "kind": "fitted",
        "device": provider.device,
        "method": "transfer",
        "k": len(y),
        "seed": seed,
        "reference_devices": list(provider.reference.devices),
        "source": provider.source.spec,
        "heldout": "leave-one-out over the archs measured in the loop (the transfer model, before distillation)",
        **validation_figures(leave_one_out(provider.reference, archs, y), y),
        "distillation": fitted.lut.meta["fit"][provider.space.name]["distillation"],
    }
    return save_fitted(FitReport(fitted.lut, validation), directory / f"{provider.device}.csv", provider.space.name, overwrite=True)


evaluators.add(
    "measure",
    Evaluator(measured_latency, ("latency",), Tier.ESTIMATE, "measure:SOURCE", "latency of a device measured in the loop (--measure latency@DEV=SOURCE): few-shot estimate + budgeted measurements"),
)

__all__ = [
    "FewShotLatency",
    "InLoopError",
    "MeasureOptions",
    "MeasuredLatency",
    "enters_front",
    "leave_one_out",
    "measured_latency",
    "reference_tables",
    "save_device_lut",
]
