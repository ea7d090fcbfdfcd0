"""From a run config to the providers of its metrics, and the whole-space views built on them.

Why here: the registry (`nas.objectives.evaluators`) knows how to build one provider from a spec; a run
must build all of its metrics' providers with the same context (space, dataset, seed, the data it
trains on) and wire the ones that need another (energy needs a latency, an active learner its label
source). The true front of a table and a run's reference point are views over those providers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

import nas.accuracy  # noqa: F401  (registers the accuracy evaluators)
import nas.cost  # noqa: F401  (registers the cost evaluators)
import nas.cost.in_loop  # noqa: F401  (registers measure:SOURCE, a device measured in the loop)
from nas.objectives import MetricName, MetricProvider, ObjectiveSet, ProviderRequest, make_provider, parse_spec
from nas.pareto import ParetoFront
from nas.run.config import RunConfig
from nas.spaces.base import Arch, SearchSpace, SpaceTooLargeError


def resolve_providers(space: SearchSpace, config: RunConfig) -> dict[str, MetricProvider]:
    """The provider of every objective and constraint metric of `config`, accuracy first (its data's
    input spec then shapes the networks the counts describe)."""
    return _resolve(space, config, config.objective_set().metrics)


def resolve_metrics(space: SearchSpace, config: RunConfig, metrics: Sequence[str]) -> dict[str, MetricProvider]:
    """The providers `config` gives `metrics` (which need not be among its objectives). The run's accuracy
    provider is resolved too when the config has one, since its data's input spec shapes what counts
    such as `flops` describe."""
    wanted = list(dict.fromkeys(metrics))
    with_accuracy = ["accuracy", *wanted] if "accuracy" in config.objective_set().metrics and "accuracy" not in wanted else wanted
    resolved = _resolve(space, config, with_accuracy)
    return {m: resolved[m] for m in wanted}


def resolve_provider(metric: str, space: SearchSpace, config: RunConfig) -> MetricProvider:
    """The provider `config` gives one metric (which need not be among its objectives)."""
    return _resolve(space, config, [metric])[metric]


def _resolve(space: SearchSpace, config: RunConfig, metrics: Sequence[str]) -> dict[str, MetricProvider]:
    objectives = config.objective_set()

    def build(metric: str, spec: str, options: Mapping[str, Any], input_spec: Any) -> MetricProvider:
        request = ProviderRequest(
            metric=metric,
            spec=spec,
            argument=parse_spec(spec)[1],
            space=space,
            dataset=config.dataset or next(iter(space.datasets)),
            data_dir=config.data_dir,
            objectives=objectives,
            budget=config.budget,
            seed=config.seed,
            options=options,
            training=config.training,
            input_spec=input_spec,
            resolve=lambda other_spec, other_metric: build(other_metric, other_spec, {}, input_spec),
        )
        return make_provider(request)

    providers: dict[str, MetricProvider] = {}
    input_spec = None
    if "accuracy" in metrics:
        providers["accuracy"] = build("accuracy", config.accuracy, config.accuracy_options, None)
        input_spec = providers["accuracy"].input_spec
    for metric in metrics:
        if metric not in providers:
            spec, options = config.measure_spec(metric) or (metric if MetricName.parse(metric).kind != "accuracy" else config.accuracy, {})
            providers[metric] = build(metric, spec, options, input_spec)
    return {m: providers[m] for m in metrics}


def reference_point(objset: ObjectiveSet, providers: Mapping[str, MetricProvider], space: SearchSpace | None = None) -> np.ndarray | None:
    """Worst value of each objective over the whole space (minimisation units), or None if unknowable.

    Why the whole space: it makes hypervolumes of different runs and strategies comparable, and it is the
    reference the published NB201 comparisons use. Each provider says what it knows (`reference_values`):
    a table covering the space, a known metric of a listable space, accuracy's 0 % for training.
    """
    worst = []
    for obj in objset.objectives:
        values = providers[obj.metric].reference_values(space)
        if values is None or not np.isfinite(values).any():
            return None
        worst.append(np.nanmin(values) if obj.direction == "max" else np.nanmax(values))
    return objset.to_minimisation(np.array([worst]))[0]


def space_table(space: SearchSpace, providers: Mapping[str, MetricProvider], archs: Sequence[Arch] | None = None) -> pd.DataFrame:
    """Every architecture of a listable space (or `archs`) with every metric: the table true fronts come from."""
    if archs is None:
        if not space.can_list():
            raise SpaceTooLargeError(f"space {space.name!r} is too large to tabulate ({space.size} archs)")
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


__all__ = ["front_of", "reference_point", "resolve_metrics", "resolve_provider", "resolve_providers", "space_table"]
