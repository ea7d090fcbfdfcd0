"""Search strategies, each an Optuna sampler, looked up by name.

`make_strategy(name, space, seed=..., context=..., constraints_func=..., **options)` returns a sampler.
Our own architecture-aware strategies sit beside Optuna's generic samplers (prefixed `optuna-`), so every
comparison runs through the same Run and the same study; ours keep Optuna's sampler contract (they
pickle, leave foreign params to `sample_independent`, take `constraints_func`), tested for all of them
in tests/strategies/test_contract.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial

from nas.registry import Registry
from nas.spaces.base import SearchSpace
from nas.strategies._base import CONSTRAINTS_ATTR, ERROR_ATTR, ArchSampler, ConstraintsFunc, History, KnownMetrics, SearchContext, counted_before, interrupted, space_distributions
from nas.strategies._aging import AgingEvolutionSampler
from nas.strategies._bayesian import BayesianSampler
from nas.strategies._constrained_evolution import EvolutionResult, constrained_evolution
from nas.strategies._darts import ChoiceCosts, DartsStrategy, OneShotError, fit_choice_costs
from nas.strategies._local import LocalSearchSampler
from nas.strategies._oneshot import ONESHOT_DIR, OneShotStrategy
from nas.strategies._rl import PolicyGradientSampler
from nas.strategies._evolution import EvolutionSampler
from nas.strategies._random import RandomArchSampler

__all__ = [
    "AgingEvolutionSampler",
    "ArchSampler",
    "LocalSearchSampler",
    "PolicyGradientSampler",
    "BayesianSampler",
    "CONSTRAINTS_ATTR",
    "ERROR_ATTR",
    "ChoiceCosts",
    "ConstraintsFunc",
    "DartsStrategy",
    "ONESHOT_DIR",
    "OneShotError",
    "OneShotStrategy",
    "fit_choice_costs",
    "EvolutionResult",
    "EvolutionSampler",
    "History",
    "KnownMetrics",
    "RandomArchSampler",
    "SearchContext",
    "constrained_evolution",
    "counted_before",
    "interrupted",
    "StrategyInfo",
    "make_strategy",
    "space_distributions",
    "strategies",
]


@dataclass(frozen=True)
class StrategyInfo:
    """A named strategy: how to build it and one line on what it is good for."""

    factory: Callable[..., BaseSampler]
    summary: str


strategies: Registry[StrategyInfo] = Registry("strategy")


def _constraints_func(trial: FrozenTrial) -> list[float]:
    """The run's constraint values of a trial (`CONSTRAINTS_ATTR`), for Optuna's constrained samplers."""
    return list(trial.user_attrs.get(CONSTRAINTS_ATTR) or [])


def _ours(cls: type[ArchSampler], space_defaults: Callable[[SearchSpace], dict[str, Any]] | None = None, **defaults: Any) -> Callable[..., BaseSampler]:
    """Factory of one of our samplers: `defaults` (then `space_defaults(space)`) under the user's options.

    `constrained` needs nothing here: our samplers read the run's `CONSTRAINTS_ATTR` unless given an
    Optuna-style `constraints_func`.
    """

    def make(
        space: SearchSpace,
        *,
        seed: int | None,
        constrained: bool,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
        **options: Any,
    ) -> BaseSampler:
        extra = {"constraints_func": constraints_func} if constraints_func is not None else {}
        if extra and "constraints_func" not in inspect.signature(cls).parameters:
            raise ValueError(f"{cls.__name__} takes no constraints_func (it proposes its archs up front, not from the trials' feasibility)")
        return cls(space, seed=seed, context=context, **{**defaults, **(space_defaults(space) if space_defaults else {}), **options, **extra})

    make.__wrapped__ = cls  # type: ignore[attr-defined]
    return make


def _optuna(cls: type[BaseSampler], takes_constraints: bool = True) -> Callable[..., BaseSampler]:
    def make(
        space: SearchSpace,
        *,
        seed: int | None,
        constrained: bool,
        context: SearchContext | None = None,
        constraints_func: ConstraintsFunc | None = None,
        **options: Any,
    ) -> BaseSampler:
        if constraints_func is not None:
            if not takes_constraints:
                raise ValueError(f"{cls.__name__} takes no constraints_func")
            options["constraints_func"] = constraints_func
        elif constrained and takes_constraints:
            options["constraints_func"] = _constraints_func
        return cls(seed=seed, **options)

    make.__wrapped__ = cls  # type: ignore[attr-defined]
    return make


def _path_encoding_where_offered(space: SearchSpace) -> dict[str, Any]:
    """BANANAS reads path encodings; a space without them (FBNet) leaves the MLP its own best encoding."""
    return {"encoding": "path"} if "path" in space.encoding_kinds() else {}


strategies.add("random", StrategyInfo(_ours(RandomArchSampler), "uniform random architectures, no repeats: the baseline"))
strategies.add(
    "evolution",
    StrategyInfo(_ours(EvolutionSampler), "multi-objective evolution (NSGA-II selection, space-aware mutation, no repeats): a strong default"),
)
strategies.add("nsga2", StrategyInfo(_ours(EvolutionSampler), "alias of evolution: NSGA-II selection with space-aware mutation and crossover"))
strategies.add(
    "aging",
    StrategyInfo(_ours(AgingEvolutionSampler), "regularised (aging) evolution (Real et al. 2019), mode-aware tournament: robust on cell spaces"),
)
strategies.add("rl", StrategyInfo(_ours(PolicyGradientSampler), "REINFORCE controller (factorised policy, rank or MnasNet reward): for scalarised/soft-constraint searches"))
strategies.add("local", StrategyInfo(_ours(LocalSearchSampler), "local search around the front: cheap refinement, finds many true-front members"))
strategies.add(
    "bo",
    StrategyInfo(
        _ours(BayesianSampler, surrogate_options={"n_restarts": 0}),
        "Bayesian optimisation: GP surrogate of (power-warped) accuracy, exact expected HV improvement at known costs over the whole space: fewest queries",
    ),
)
strategies.add(
    "bananas",
    StrategyInfo(
        _ours(BayesianSampler, _path_encoding_where_offered, surrogate="mlp", acquisition="thompson"),
        "BANANAS: neural ensemble on path encodings (where the space has them) with Thompson sampling at known costs",
    ),
)
strategies.add(
    "darts",
    StrategyInfo(
        _ours(DartsStrategy),
        "one-shot DARTS on cell spaces (nb201, darts): relaxed supernet trained once per latency weight, expected cost from the cost provider, collapse remedy",
    ),
)
strategies.add("optuna-random", StrategyInfo(_optuna(optuna.samplers.RandomSampler, False), "Optuna's RandomSampler (with repeats), for comparison"))
strategies.add("optuna-nsga2", StrategyInfo(_optuna(optuna.samplers.NSGAIISampler), "Optuna's NSGAIISampler, architecture-blind, for comparison"))
strategies.add("optuna-tpe", StrategyInfo(_optuna(optuna.samplers.TPESampler), "Optuna's multi-objective TPESampler, for comparison"))
strategies.add("optuna-gp", StrategyInfo(_optuna(optuna.samplers.GPSampler), "Optuna's GPSampler (slow per trial), for comparison"))


def strategy_options(name: str) -> list[str]:
    """Keyword options a strategy accepts (besides `seed`)."""
    target = getattr(strategies.get(name).factory, "__wrapped__")
    params = inspect.signature(target).parameters
    return [p for p, v in params.items() if v.kind == v.KEYWORD_ONLY and p not in ("seed", "constraints_func", "context")]


def make_strategy(
    name: str,
    space: SearchSpace,
    *,
    seed: int | None = None,
    constrained: bool = False,
    context: SearchContext | None = None,
    constraints_func: ConstraintsFunc | None = None,
    **options: Any,
) -> BaseSampler:
    """Build the sampler `name`; unknown options raise one line listing the valid ones.

    `context` tells architecture-aware strategies the objectives, the search mode and the metrics known
    before evaluation; Optuna's samplers are black-box and ignore it. `constraints_func` is Optuna's (a
    finished FrozenTrial -> constraint values, <= 0 feasible); without it a `constrained` run's
    samplers read the values the run stores on each trial (`CONSTRAINTS_ATTR`).
    """
    info = strategies.get(name)
    valid = strategy_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for strategy {name!r}; valid: {valid}")
    if constraints_func is not None and not callable(constraints_func):
        raise TypeError(f"constraints_func must be a callable FrozenTrial -> sequence of floats (<= 0 feasible), got {constraints_func!r}")
    return info.factory(space, seed=seed, constrained=constrained, context=context, constraints_func=constraints_func, **options)
