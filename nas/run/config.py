"""The resolved config of a run: everything that defines a search, stored as `RUN/config.yaml`.

Why its own module: the config is checked in one place, before anything is written, and the same checks
decide whether a run directory may be resumed with a config (only `RESUMABLE` keys may differ).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from nas._io import read_yaml_mapping
from nas.objectives import EvaluatorError, Mode, ObjectiveSet, Tier, evaluator_of


class RunConfigError(ValueError):
    """A run config that is invalid or clashes with an existing run directory."""


@dataclass
class RunConfig:
    """Everything that defines a search; stored as `config.yaml` in the run directory.

    Keys: `space`; `dataset` (the space's reference setting: tables, LUTs; default its first);
    `objectives`, `constraints`;
    `strategy`, `strategy_options`; `mode`, `mode_options`; `budget` (trials, pruned ones included);
    `seed`; `data_dir` (benchmark tables); `storage` (Optuna storage URL); `accuracy` (an evaluator spec:
    `table`, `csv:PATH`, `train:DATA`, `predictor:MODEL[:ENCODING]`, `zero_cost:PROXY`) and
    `accuracy_options`; `training` (the recipe of `nas.accuracy.training.Recipe` when accuracy trains);
    `pruner` (none, median, hyperband, pareto-halving) and `pruner_options`; `keep_weights` (`all`, or
    keep the weights of the best K trials, front first); `measure` (metric -> measurement source, e.g.
    `{"latency@mydev": "backend:onnxruntime"}`: that device is measured in the loop, `nas.cost.in_loop`),
    `measure_budget` (most measurements; default 30 % of the budget) and `measure_options`.

    Example:
        >>> cfg = RunConfig(objectives=["accuracy:max", "params:min"], budget=50)
        >>> cfg.objective_set().names
        ['accuracy', 'params']
    """

    space: str = "nb201"
    dataset: str | None = None
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
    training: dict[str, Any] = field(default_factory=dict)
    pruner: str = "none"
    pruner_options: dict[str, Any] = field(default_factory=dict)
    keep_weights: str | int = "all"
    measure: dict[str, str] = field(default_factory=dict)
    measure_budget: int | None = None
    measure_options: dict[str, Any] = field(default_factory=dict)

    #: Keys that may change when a run is resumed (the rest must match the stored config).
    RESUMABLE = ("budget", "data_dir", "keep_weights")

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
        for key in ("strategy_options", "mode_options", "accuracy_options", "training", "pruner_options", "measure", "measure_options"):
            if values.get(key) is None and key in values:
                values[key] = {}
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        try:
            data = read_yaml_mapping(path, "of keys like space, objectives, budget")
        except ValueError as exc:
            raise RunConfigError(f"config {exc}") from None
        return cls.from_mapping(data)

    def validate(self) -> None:
        """Checks every key that needs no data or table; providers check the rest when a run opens."""
        if not isinstance(self.budget, int) or isinstance(self.budget, bool) or self.budget < 1:
            raise RunConfigError(f"budget must be a positive integer, got {self.budget!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise RunConfigError(f"seed must be an integer, got {self.seed!r}")
        for key in ("strategy_options", "mode_options", "accuracy_options", "training", "pruner_options", "measure", "measure_options"):
            if not isinstance(getattr(self, key), dict):
                raise RunConfigError(f"{key} must be a mapping, got {getattr(self, key)!r}")
        if self.keep_weights != "all" and (not isinstance(self.keep_weights, int) or isinstance(self.keep_weights, bool) or self.keep_weights < 0):
            raise RunConfigError(f"keep_weights must be 'all' or an integer >= 0, got {self.keep_weights!r}")
        self.search_mode()
        self._validate_accuracy()
        self._validate_measure()

    def _validate_measure(self) -> None:
        """`measure` names latency metrics the search computes, one device per run, each with a source."""
        metrics = self.objective_set().metrics
        for metric, source in self.measure.items():
            if metric not in metrics:
                raise RunConfigError(f"--measure {metric}: not an objective or constraint of this search (it computes {metrics})")
            if not metric.startswith("latency@"):
                raise RunConfigError(f"--measure {metric}: only a latency@DEVICE metric can be measured in the loop")
            if not isinstance(source, str) or not source.strip():
                raise RunConfigError(f"--measure {metric}: expected METRIC=SOURCE with SOURCE backend:NAME, cmd:TEMPLATE or csv:PATH:COLUMN, got {source!r}")
        if len(self.measure) > 1:
            raise RunConfigError(f"--measure names {len(self.measure)} devices ({', '.join(self.measure)}); a run measures one device in the loop")
        if not self.measure and (self.measure_budget is not None or self.measure_options):
            raise RunConfigError("--measure-budget and measure options apply only with --measure latency@DEVICE=SOURCE")
        if self.measure_budget is not None and (not isinstance(self.measure_budget, int) or isinstance(self.measure_budget, bool) or self.measure_budget < 2):
            raise RunConfigError(f"measure_budget must be an integer >= 2, got {self.measure_budget!r}")

    def measure_spec(self, metric: str) -> tuple[str, dict[str, Any]] | None:
        """The evaluator spec (`measure:SOURCE`) and options of a metric measured in the loop, else None."""
        if metric not in self.measure:
            return None
        return f"measure:{self.measure[metric]}", {**self.measure_options, "budget": self.measure_budget}

    def _validate_accuracy(self) -> None:
        from nas.accuracy.pruning import PRUNERS

        try:
            evaluator = evaluator_of(self.accuracy, "accuracy")
        except EvaluatorError as exc:
            raise RunConfigError(str(exc)) from None
        metrics = self.objective_set().metrics
        if self.accuracy != "table" and "accuracy" not in metrics:
            raise RunConfigError(f"accuracy {self.accuracy!r} needs an objective or constraint on accuracy; the search computes only {metrics}")
        trains = evaluator.trains(self.accuracy_options)
        if self.training and not trains:
            raise RunConfigError(
                f"training options {sorted(self.training)} apply only when accuracy trains networks (train:DATA, or predictor with labels=train:DATA); accuracy is {self.accuracy!r}"
            )
        if self.training:
            from nas.accuracy.training import Recipe

            Recipe.from_mapping(self.training)
        if self.pruner not in PRUNERS:
            raise RunConfigError(f"unknown pruner {self.pruner!r}; expected one of {list(PRUNERS)}")
        if self.pruner != "none" and not (trains and evaluator.tier is Tier.MEASURED):
            raise RunConfigError(f"pruner {self.pruner!r} stops trials on their learning curves, which only training reports; use --accuracy train:DATA")
        if self.pruner == "none" and self.pruner_options:
            raise RunConfigError(f"pruner_options {sorted(self.pruner_options)} given without a pruner; pass --pruner median|hyperband|pareto-halving")

    def objective_set(self) -> ObjectiveSet:
        return ObjectiveSet.parse(self.objectives, self.constraints)

    def search_mode(self) -> Mode:
        return Mode.parse(self.mode, self.objective_set(), **self.mode_options)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def resolve_dataset(self, datasets: Mapping[str, Any], space: str) -> None:
        """Fill in the space's first dataset setting when none was given; refuse one it lacks."""
        if self.dataset is None:
            self.dataset = next(iter(datasets))
        elif self.dataset not in datasets:
            raise RunConfigError(f"space {space!r} has no dataset {self.dataset!r}; expected one of {sorted(datasets)}")

    def differences(self, other: RunConfig) -> list[str]:
        mine, theirs = self.to_dict(), other.to_dict()
        return [k for k in mine if k not in self.RESUMABLE and mine[k] != theirs[k]]


__all__ = ["RunConfig", "RunConfigError"]
