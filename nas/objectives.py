"""Metric names, objectives, constraints, and the metric-provider protocol.

Why one module: a metric name such as `latency@raspi4` is parsed once here, and this is the single place
where "maximise" becomes "minimise" (`ObjectiveSet.to_minimisation`), so the Pareto code, the strategies
and the run all agree on signs without re-deriving them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import numpy as np

from nas.registry import Registry
from nas.spaces.base import Arch

Direction = Literal["max", "min"]

#: Metric kinds and the direction a user almost always means for them.
METRIC_KINDS: dict[str, Direction] = {
    "accuracy": "max",
    "latency": "min",
    "energy": "min",
    "params": "min",
    "flops": "min",
    "macs": "min",
    "memory": "min",
    "peak_memory": "min",
}

_METRIC_RE = re.compile(r"^(?P<kind>[a-z_][a-z0-9_]*)(?:@(?P<device>[A-Za-z0-9_.\-]+))?$")
_CONSTRAINT_RE = re.compile(r"^\s*(?P<metric>[^<>=\s]+)\s*(?P<op><=|>=|<|>)\s*(?P<bound>[-+0-9.eE]+)\s*$")


class ObjectiveError(ValueError):
    """An objective, constraint or metric name that does not parse."""


@dataclass(frozen=True)
class MetricName:
    """A parsed metric name: `kind` (accuracy, latency, ...) and optional `device` after `@`."""

    kind: str
    device: str | None = None

    @classmethod
    def parse(cls, text: str) -> MetricName:
        match = _METRIC_RE.match(text.strip())
        if not match or match.group("kind") not in METRIC_KINDS:
            raise ObjectiveError(
                f"metric {text!r} does not parse; expected KIND or KIND@DEVICE with KIND in {sorted(METRIC_KINDS)}"
                " (e.g. accuracy, latency@raspi4)"
            )
        if match.group("kind") in ("latency", "energy") and not match.group("device"):
            raise ObjectiveError(f"metric {text!r} needs a device, e.g. {match.group('kind')}@raspi4")
        return cls(match.group("kind"), match.group("device"))

    def __str__(self) -> str:
        return f"{self.kind}@{self.device}" if self.device else self.kind


@dataclass(frozen=True)
class Objective:
    """Optimise `metric` in `direction`."""

    metric: str
    direction: Direction

    @classmethod
    def parse(cls, text: str) -> Objective:
        """`accuracy:max`, `latency@raspi4:min`, or a bare metric (its usual direction)."""
        name, _, direction = text.strip().partition(":")
        metric = MetricName.parse(name)
        if not direction:
            direction = METRIC_KINDS[metric.kind]
        if direction not in ("max", "min"):
            raise ObjectiveError(f"objective {text!r}: direction must be 'max' or 'min', got {direction!r}")
        return cls(str(metric), direction)  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"{self.metric}:{self.direction}"


@dataclass(frozen=True)
class Constraint:
    """`metric op bound`, e.g. `latency@pixel3<=12`.

    `violation` follows Optuna's convention: <= 0 means satisfied, so constraint values can be handed to
    Optuna samplers unchanged.
    """

    metric: str
    op: Literal["<=", ">=", "<", ">"]
    bound: float

    @classmethod
    def parse(cls, text: str) -> Constraint:
        match = _CONSTRAINT_RE.match(text)
        if not match:
            raise ObjectiveError(f"constraint {text!r} does not parse; expected METRIC<=BOUND or METRIC>=BOUND, e.g. latency@pixel3<=12")
        metric = MetricName.parse(match.group("metric"))
        try:
            bound = float(match.group("bound"))
        except ValueError:
            raise ObjectiveError(f"constraint {text!r}: bound {match.group('bound')!r} is not a number") from None
        return cls(str(metric), match.group("op"), bound)  # type: ignore[arg-type]

    def violation(self, values: np.ndarray) -> np.ndarray:
        """Amount by which each value breaks the bound (<= 0 means satisfied; strict ops need > 0 slack)."""
        values = np.asarray(values, dtype=float)
        if self.op in ("<=", "<"):
            v = values - self.bound
        else:
            v = self.bound - values
        if self.op in ("<", ">"):
            v = np.where(v == 0, np.finfo(float).eps, v)
        return v

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.bound:g}"


def _split(spec: str | Sequence[str]) -> list[str]:
    items = spec.split(",") if isinstance(spec, str) else [s for part in spec for s in str(part).split(",")]
    return [s.strip() for s in items if s.strip()]


@dataclass(frozen=True)
class ObjectiveSet:
    """The objectives and constraints of one search, parsed once from the config.

    Example:
        >>> objs = ObjectiveSet.parse("accuracy:max,latency@raspi4:min", ["latency@pixel3<=12"])
        >>> objs.names
        ['accuracy', 'latency@raspi4']
        >>> objs.to_minimisation(np.array([[90.0, 5.0]])).tolist()
        [[-90.0, 5.0]]
        >>> objs.metrics
        ['accuracy', 'latency@raspi4', 'latency@pixel3']
    """

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = field(default=())

    @classmethod
    def parse(cls, objectives: str | Sequence[str], constraints: str | Sequence[str] | None = None) -> ObjectiveSet:
        objs = tuple(Objective.parse(s) for s in _split(objectives))
        if not objs:
            raise ObjectiveError("no objectives given; expected e.g. accuracy:max,latency@raspi4:min")
        names = [o.metric for o in objs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ObjectiveError(f"objective(s) {duplicates} given twice")
        cons = tuple(Constraint.parse(s) for s in ([] if constraints is None else ([constraints] if isinstance(constraints, str) else list(constraints))))
        return cls(objs, cons)

    @property
    def names(self) -> list[str]:
        return [o.metric for o in self.objectives]

    @property
    def metrics(self) -> list[str]:
        """Every metric the search must compute: objectives first, then constraint-only metrics."""
        out = list(self.names)
        for c in self.constraints:
            if c.metric not in out:
                out.append(c.metric)
        return out

    @property
    def optuna_directions(self) -> list[str]:
        return ["maximize" if o.direction == "max" else "minimize" for o in self.objectives]

    @property
    def signs(self) -> np.ndarray:
        """+1 for minimised objectives, -1 for maximised ones."""
        return np.array([-1.0 if o.direction == "max" else 1.0 for o in self.objectives])

    def to_minimisation(self, values: np.ndarray) -> np.ndarray:
        """`n x n_objectives` values in user units -> the same, all to be minimised (the one sign flip)."""
        values = np.asarray(values, dtype=float)
        return values * self.signs

    def from_minimisation(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values, dtype=float) * self.signs

    def violations(self, metrics: Mapping[str, np.ndarray]) -> np.ndarray:
        """`n x n_constraints` Optuna-style constraint values (<= 0 satisfied) from metric arrays."""
        if not self.constraints:
            n = len(next(iter(metrics.values()))) if metrics else 0
            return np.zeros((n, 0))
        return np.stack([c.violation(np.asarray(metrics[c.metric], dtype=float)) for c in self.constraints], axis=1)

    def enters_front(self, candidate: Mapping[str, float], rows: Sequence[Mapping[str, float]]) -> bool:
        """Whether `candidate` (a value for every objective and constraint metric) is feasible and weakly
        dominated by no feasible row of `rows` (the evaluated archs' metrics).

        Why here: the active accuracy labels and the device measured in the loop both spend their budget
        on candidates that would change the front, and must agree on what that means.

        Example:
            >>> objs = ObjectiveSet.parse("accuracy:max,latency@pixel3:min")
            >>> objs.enters_front({"accuracy": 90, "latency@pixel3": 5}, [{"accuracy": 91, "latency@pixel3": 4}])
            False
        """
        if (self.violations({m: np.array([candidate[m]], dtype=float) for m in self.metrics}) > 0).any():
            return False
        if not rows:
            return True
        points = self.to_minimisation(np.array([[r[n] for n in self.names] for r in rows], dtype=float))
        feasible = (self.violations({m: np.array([r[m] for r in rows], dtype=float) for m in self.metrics}) <= 0).all(axis=1)
        mine = self.to_minimisation(np.array([[candidate[n] for n in self.names]], dtype=float))[0]
        return not bool(np.all(points[feasible] <= mine, axis=1).any())

    def describe(self) -> dict[str, Any]:
        return {"objectives": [str(o) for o in self.objectives], "constraints": [str(c) for c in self.constraints]}


class Tier(str, Enum):
    """What a search may assume about a metric before it evaluates an architecture.

    - `known`: exact before evaluation (measured tables, LUTs, analytic counts); strategies may price
      the whole space with it and skip candidates that break a constraint on it.
    - `estimate`: cheap but uncertain (a predictor, a zero-cost proxy, supernet or hypernetwork weights);
      never treated as known.
    - `measured`: the expensive query the budget counts (a table's accuracy, training the network).
    """

    KNOWN = "known"
    ESTIMATE = "estimate"
    MEASURED = "measured"


@dataclass
class TrialContext:
    """What a provider may use while it evaluates the architecture of one trial.

    Why: a training provider reports its learning curve (so a pruner can stop it), keeps artefacts in
    the run directory and several metrics come out of one training; an active learner reads the study
    and the trial's other metrics. The run fills this in; providers never import the run.

    Attributes:
        study, trial: the Optuna study and its running trial (None outside a search).
        metrics: the metrics of this trial computed so far (known ones first).
        directory: the run directory (None outside a run): artefacts go below it.
        lock: a file that serialises decisions of workers sharing the run directory.
        reporter: `(step, value)` -> None, records an intermediate value of `metric`; with `pruning` it
            raises `optuna.TrialPruned` when the run's pruner stops the trial.
        pruning: whether `report` may stop the trial.
    """

    study: Any = None
    trial: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    directory: Path | None = None
    lock: Path | None = None
    reporter: Callable[[int, float, bool], None] | None = None
    pruning: bool = True

    def report(self, step: int, value: float) -> None:
        """Record the value at `step` (an epoch); may raise `optuna.TrialPruned` (see `pruning`)."""
        if self.reporter is not None:
            self.reporter(int(step), float(value), self.pruning)

    @property
    def number(self) -> int | None:
        """The trial number, or None outside a search."""
        return None if self.trial is None else int(self.trial.number)


class MetricProvider(ABC):
    """Computes one metric for architectures of one space, and declares its `tier` (see `Tier`).

    The run calls `setup` once per run directory (under the run's lock, so workers share what it
    builds), then `evaluate_trial` for each trial; strategies call `evaluate` on known metrics to price
    candidates. `evaluate_trial` may return metrics beside `metric` (listed in `reported`, e.g. the test
    accuracy of a training run): they are stored with the trial and reported, never optimised.
    """

    metric: str
    tier: Tier = Tier.KNOWN
    #: Further metrics `evaluate_trial` returns (reported, never optimised).
    reported: tuple[str, ...] = ()
    #: The input of the data the provider evaluates networks on (`InputSpec`), or None: counts and
    #: proxies of the run then describe the network built for that data.
    input_spec: Any = None
    #: Steps (epochs) of the learning curve `evaluate_trial` reports through `TrialContext.report`, or
    #: None when it reports none (a pruner needs one).
    curve_length: int | None = None
    #: Whether `evaluate` prices every arch of the space from a model the search refits (see
    #: `prices_version`): strategies may use it as a cost, never as a constraint known before evaluation.
    repriced: bool = False

    @property
    def known(self) -> bool:
        """Whether strategies may use the metric before evaluation (tier `known`)."""
        return self.tier is Tier.KNOWN

    @property
    def prices_space(self) -> bool:
        """Whether `evaluate` over a whole listable space is cheap (a table lookup, a LUT, a count), so a
        true front may be computed from it; training or a model per arch is not."""
        return self.known

    @abstractmethod
    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Values for many archs, shape `n_archs` (NaN where the provider has no value)."""

    def setup(self, directory: Path) -> None:
        """Once per run directory, before the first trial (default: nothing to prepare)."""

    def finish(self, directory: Path, trials: Sequence[Any]) -> str | None:
        """After a worker's search ended (the budget spent): write what the provider learnt from the
        study's `trials` into the run directory, e.g. a device's fitted model as a LUT, so a user of the
        Python API gets it as the CLI's does. Returns one line on what was written, or None (default:
        nothing to write). The caller holds the run's labels lock."""
        return None

    def progress_note(self, trials: Sequence[Any]) -> str | None:
        """A few words for the progress display on what the provider has spent of a budget of its own in the
        study's `trials` (a device measured in the loop: `measured 12/30`), or None (default: no budget)."""
        return None

    def evaluate_trial(self, arch: Arch, context: TrialContext) -> dict[str, float]:
        """`metric` (and any `reported` metrics) of the architecture of one trial."""
        return {self.metric: float(self.evaluate([arch])[0])}

    def network(self, arch: Arch) -> Any:
        """A `torch.nn.Module` of `arch` carrying the weights this provider scored it with, or None when
        it holds none (tables, counts, per-trial training: those weights live in the run store).

        Why here: `nas export` takes a found network away with the weights its accuracy came from, and
        only the provider knows where shared weights (a supernet, a hypernetwork) live.
        """
        return None

    def prices_version(self, trials: Sequence[Any]) -> Hashable | None:
        """For an estimate that prices the whole space from a model refitted during the search (`repriced`):
        brings the model up to date with the study's `trials` (its state lives there, so every worker
        and a resumed run agree) and returns a value that changes whenever `evaluate`'s prices change,
        or None while it cannot price yet. Why: a strategy may then aim at the front at each
        candidate's current price, re-pricing its pool once per change instead of once per ask.
        Providers whose prices never change (known tier) or cannot price the space return None."""
        return None

    def reference_values(self, space: Any) -> np.ndarray | None:
        """Values whose worst is the worst the metric takes over `space` (for a run's reference point),
        or None when unknowable without evaluating the space: a known metric of a listable space is
        evaluated over all of it."""
        if self.known and space is not None and space.can_list():
            return self.evaluate(space.enumerate())
        return None

    def pins(self) -> dict[str, Any]:
        """What must not change when a run resumes (a data digest, a recipe); stored at creation."""
        return {}

    def provenance(self) -> dict[str, Any]:
        """Where the numbers come from (provider, source file, versions), stored with every run."""
        return {"provider": type(self).__name__, "metric": self.metric, "tier": self.tier.value}


class PerArchProvider(MetricProvider):
    """A provider that computes one arch at a time (builds, traces, runs or sums its layers) and keeps
    every value it computed.

    Why: strategies ask for the same archs again and again (candidate pools every step, the whole space
    for a reference point), and each value is costly to compute but never changes.
    """

    _cache: dict[Arch, float]

    @abstractmethod
    def _value(self, arch: Arch) -> float:
        """The metric of one arch."""

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        if "_cache" not in self.__dict__:
            self._cache = {}
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            value = self._cache.get(arch)
            if value is None:
                value = self._cache[arch] = float(self._value(arch))
            out[i] = value
        return out


class TableColumnProvider(MetricProvider):
    """A metric read from one column of a table keyed by the space's canonical arch string.

    Why one class for accuracy and latency tables alike: a benchmark table lookup is the same vectorised
    string-to-row mapping whatever the column holds; only `tier` and provenance differ.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> a = space.enumerate()[0]
        >>> p = TableColumnProvider("latency@toy", space, [space.to_string(a)], [1.5], source={"table": "toy"})
        >>> p.evaluate([a]).tolist()
        [1.5]
    """

    def __init__(
        self,
        metric: str,
        space: Any,
        arch_strings: Sequence[str],
        values: Sequence[float] | np.ndarray,
        *,
        source: Mapping[str, Any],
        tier: Tier = Tier.KNOWN,
    ) -> None:
        import pandas as pd

        self.metric = metric
        self.space = space
        self.tier = tier
        self._index = pd.Index(list(arch_strings))
        self._values = np.asarray(values, dtype=float)
        if len(self._index) != len(self._values):
            raise ValueError(f"{metric}: {len(self._index)} arch strings but {len(self._values)} values")
        self._source = dict(source)

    @property
    def prices_space(self) -> bool:
        """A table lookup is cheap over any number of archs, whatever the column's tier."""
        return True

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        pos = self._index.get_indexer([self.space.to_string(a) for a in archs])
        out = self._values[np.clip(pos, 0, None)] if len(pos) else np.zeros(0)
        return np.where(pos >= 0, out, np.nan)

    def evaluate_all(self) -> tuple[list[str], np.ndarray]:
        """Every arch string in the table and its value (for true fronts and reference points)."""
        return list(self._index), self._values.copy()

    def reference_values(self, space: Any) -> np.ndarray | None:
        """The whole table's values, when it covers the space (a table is measured, whatever its tier)."""
        if space is not None and space.size is not None and len(self._values) >= space.size:
            return self._values.copy()
        return super().reference_values(space)

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), **self._source}


# --- the evaluator registry -------------------------------------------------------------------------
class EvaluatorError(ValueError):
    """An evaluator spec that does not parse, names no registered evaluator, or cannot serve a metric."""


@dataclass(frozen=True)
class ProviderRequest:
    """Everything a factory may use to build the provider of one metric for one run.

    Attributes:
        metric: the metric to compute (`accuracy`, `latency@raspi4`).
        spec: the evaluator spec (`train:digits`; for costs the metric itself).
        argument: what follows the spec's prefix (`digits`, `raspi4`; "" when none).
        space: the search space.
        dataset: the space's reference dataset setting (tables and LUTs are keyed on it).
        data_dir: folder of benchmark tables (None: the default search).
        objectives: the search's objectives and constraints.
        budget: the search's trial budget.
        seed: the search's seed.
        options: options of this evaluator (the run's `accuracy_options` for accuracy).
        training: the run's training recipe section.
        input_spec: the input of the data the run trains on (None when it trains nothing): counts and
            proxies describe the network built for it.
        resolve: builds the provider of another spec for another metric (`resolve(spec, metric)`):
            energy from a latency, an active learner's label source.
    """

    metric: str
    spec: str
    argument: str
    space: Any
    dataset: str = "cifar10"
    data_dir: str | None = None
    objectives: ObjectiveSet | None = None
    budget: int = 1
    seed: int | None = 0
    options: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    input_spec: Any = None
    resolve: Callable[[str, str], MetricProvider] | None = None


def _trains_nothing(options: Mapping[str, Any]) -> bool:
    return False


@dataclass(frozen=True)
class Evaluator:
    """A registered source of metrics: its factory, the metric kinds it can compute, its tier, syntax.

    `trains(options)` says whether, with these options, it trains networks with the run's training
    recipe (a recipe given to a run that trains nothing is refused as a likely mistake).
    """

    factory: Callable[[ProviderRequest], MetricProvider]
    kinds: tuple[str, ...]
    tier: Tier
    syntax: str
    summary: str
    trains: Callable[[Mapping[str, Any]], bool] = _trains_nothing


#: Evaluators by spec prefix: `table`, `csv`, `train`, `predictor`, `zero_cost` for accuracy;
#: `latency`, `energy`, `params`, `flops`, `macs`, `peak_memory` for costs. Registered by
#: `nas.accuracy` and `nas.cost`.
evaluators: Registry[Evaluator] = Registry("evaluator")

_SPEC_RE = re.compile(r"^(?P<prefix>[a-z_][a-z0-9_\-]*)(?:(?P<sep>[:@])(?P<argument>.*))?$")


def parse_spec(spec: object) -> tuple[str, str]:
    """`(prefix, argument)` of an evaluator spec: `train:digits` -> (train, digits), `latency@raspi4` ->
    (latency, raspi4), `table` -> (table, "").

    Example:
        >>> parse_spec("predictor:rf:onehot")
        ('predictor', 'rf:onehot')
    """
    match = _SPEC_RE.match(spec.strip()) if isinstance(spec, str) else None
    if not match:
        raise EvaluatorError(f"evaluator {spec!r} does not parse; expected PREFIX or PREFIX:ARGUMENT with PREFIX in {evaluators.names()}")
    return match.group("prefix"), match.group("argument") or ""


def evaluator_of(spec: str, metric: str) -> Evaluator:
    """The registered evaluator of `spec`, checked to compute `metric`'s kind (one-line errors)."""
    prefix, _ = parse_spec(spec)
    if prefix not in evaluators:
        serving = [n for n in evaluators.names() if MetricName.parse(metric).kind in evaluators.get(n).kinds]
        raise EvaluatorError(f"unknown evaluator {spec!r} for {metric}; known: {', '.join(evaluators.get(n).syntax for n in serving)}")
    found = evaluators.get(prefix)
    kind = MetricName.parse(metric).kind
    if kind not in found.kinds:
        raise EvaluatorError(f"evaluator {spec!r} computes {'/'.join(found.kinds)}, not {metric}")
    return found


def make_provider(request: ProviderRequest) -> MetricProvider:
    """The provider `request.spec` names for `request.metric`, built by its registered factory."""
    provider = evaluator_of(request.spec, request.metric).factory(request)
    if provider.metric != request.metric:
        raise EvaluatorError(f"evaluator {request.spec!r} built a provider of {provider.metric!r}, not {request.metric!r}")
    return provider


MODES = ("pareto", "lexicographic", "scalarized", "hybrid")


@dataclass(frozen=True)
class Mode:
    """How a strategy ranks candidates: the whole front, or one preferred trade-off.

    - `pareto` (default): Pareto rank, then diversity.
    - `lexicographic`: objectives in `order`, each compared within relative `tolerances` before the next.
    - `scalarized`: `kind="weighted_sum"` of min-max normalised objectives with `weights`, or
      `kind="product"`: MnasNet's soft constraint ACC * (LAT / target)^w, with `targets` per cost
      objective and exponent `exponent` (w = -0.07 in the paper).
    - `hybrid`: weighted sums whose weights rotate over the simplex as the search proceeds, so the
      search sweeps across the front instead of collapsing on one point.

    Example:
        >>> objs = ObjectiveSet.parse("accuracy:max,latency@raspi4:min")
        >>> Mode.parse("scalarized", objs, weights=[0.7, 0.3]).weights
        (0.7, 0.3)
    """

    name: str = "pareto"
    order: tuple[int, ...] = ()
    tolerances: tuple[float, ...] = ()
    weights: tuple[float, ...] = ()
    kind: str = "weighted_sum"
    targets: tuple[float | None, ...] = ()
    exponent: float = -0.07

    @classmethod
    def parse(cls, name: str, objectives: ObjectiveSet, **options: Any) -> Mode:
        if name not in MODES:
            raise ObjectiveError(f"unknown mode {name!r}; expected one of {list(MODES)}")
        valid = {"pareto": set(), "lexicographic": {"order", "tolerances"}, "scalarized": {"weights", "kind", "targets", "exponent"}, "hybrid": set()}[name]
        unknown = sorted(set(options) - valid)
        if unknown:
            raise ObjectiveError(f"unknown option(s) {unknown} for mode {name!r}; valid: {sorted(valid)}")
        names = objectives.names
        n = len(names)
        order: tuple[int, ...] = ()
        tolerances: tuple[float, ...] = ()
        weights: tuple[float, ...] = ()
        targets: tuple[float | None, ...] = ()
        if name == "lexicographic":
            raw = options.get("order", names)
            raw = [s.strip() for s in raw.split(",")] if isinstance(raw, str) else list(raw)
            bad = [o for o in raw if o not in names]
            if bad:
                raise ObjectiveError(f"lexicographic order names unknown objective(s) {bad}; objectives are {names}")
            order = tuple(names.index(o) for o in raw)
            tol = options.get("tolerances", [0.0] * len(order))
            tolerances = tuple(float(t) for t in ([tol] * len(order) if isinstance(tol, (int, float)) else tol))
            if len(tolerances) != len(order) or any(t < 0 for t in tolerances):
                raise ObjectiveError(f"lexicographic tolerances {list(tolerances)} must be {len(order)} non-negative numbers")
        if name == "scalarized":
            kind = options.get("kind", "weighted_sum")
            if kind not in ("weighted_sum", "product"):
                raise ObjectiveError(f"scalarized kind {kind!r}; expected 'weighted_sum' or 'product'")
            if kind == "weighted_sum":
                w = options.get("weights", [1.0 / n] * n)
                if len(w) != n or any(float(x) < 0 for x in w) or sum(float(x) for x in w) <= 0:
                    raise ObjectiveError(f"weights {list(w)} do not match the {n} objectives {names}; expected {n} non-negative numbers")
                weights = tuple(float(x) for x in w)
            else:
                raw_targets = options.get("targets")
                if raw_targets is None or len(raw_targets) != n:
                    raise ObjectiveError(f"product mode needs `targets`: one per objective {names} (null for accuracy), e.g. [null, 12]")
                targets = tuple(None if t is None else float(t) for t in raw_targets)
            return cls(name, weights=weights, kind=kind, targets=targets, exponent=float(options.get("exponent", -0.07)))
        return cls(name, order=order, tolerances=tolerances)

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in ((), None)}
