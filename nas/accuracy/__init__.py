"""Accuracy providers, registered as evaluators by spec prefix.

| spec | tier | what |
|---|---|---|
| `table` | measured | NAS-Bench-201's 200-epoch validation accuracy (`nas.accuracy.tables`) |
| `csv:PATH` | measured | a user's table of accuracies (columns `arch`, `accuracy`) |
| `train:DATA` | measured | training with the run's recipe on a dataset (`nas.accuracy.training`, `nas.data`) |
| `predictor:MODEL[:ENCODING]` | estimate | a predictor refitted on labels from a measured source (`nas.accuracy.active`) |
| `zero_cost:PROXY` | estimate | a zero-cost proxy score on one batch (`nas.accuracy.zero_cost`) |
| `supernet:PATH` | estimate | an OFA sub-network with inherited weights (`nas.accuracy.supernet`) |
| `supernet-predictor:PATH` | estimate | OFA's accuracy predictor fitted on supernet scores |

Heavy modules (torch, scikit-learn models) load inside the factories, so `import nas.accuracy` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nas.accuracy.tables import csv_accuracy, table_accuracy
from nas.objectives import Evaluator, EvaluatorError, MetricProvider, ProviderRequest, Tier, evaluators

__all__ = ["csv_accuracy", "table_accuracy"]


def _no_options(request: ProviderRequest) -> None:
    if request.options:
        raise EvaluatorError(f"accuracy_options {sorted(request.options)} do not apply to accuracy {request.spec!r}")


def _no_argument(request: ProviderRequest) -> None:
    if request.argument:
        raise EvaluatorError(f"accuracy {request.spec!r}: '{request.spec.partition(':')[0]}' takes no argument")


def _table(request: ProviderRequest) -> MetricProvider:
    _no_argument(request)
    _no_options(request)
    return table_accuracy(request.space, request.dataset, request.data_dir)


def _csv(request: ProviderRequest) -> MetricProvider:
    _no_options(request)
    if not request.argument:
        raise EvaluatorError("accuracy 'csv' needs a path: csv:PATH (a CSV with columns arch,accuracy)")
    return csv_accuracy(request.argument, request.space)


def _train(request: ProviderRequest) -> MetricProvider:
    from nas.accuracy.training import Recipe, TrainingAccuracy
    from nas.data import SYNTAX

    _no_options(request)
    if not request.argument:
        raise EvaluatorError(f"accuracy 'train' needs data: train:DATA with DATA one of {', '.join(SYNTAX)}")
    return TrainingAccuracy(request.space, request.argument, Recipe.from_mapping(request.training), seed=request.seed)


def _predictor(request: ProviderRequest) -> MetricProvider:
    from nas.accuracy.active import active_accuracy

    return active_accuracy(request)


ZERO_COST_OPTIONS = ("data", "batch_size")


def _zero_cost(request: ProviderRequest) -> MetricProvider:
    from nas.accuracy.zero_cost import PROXIES, ZeroCostProvider, data_batch

    unknown = sorted(set(request.options) - set(ZERO_COST_OPTIONS))
    if unknown:
        raise EvaluatorError(f"unknown accuracy option(s) {unknown} for {request.spec!r}; expected some of {list(ZERO_COST_OPTIONS)}")
    if request.argument not in PROXIES:
        raise EvaluatorError(f"accuracy {request.spec!r}: unknown zero-cost proxy {request.argument!r}; expected zero_cost:PROXY with PROXY in {list(PROXIES)}")
    batch_size = request.options.get("batch_size", 64)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 2:
        raise EvaluatorError(f"accuracy option batch_size must be an integer >= 2, got {batch_size!r}")
    seed = 0 if request.seed is None else int(request.seed)
    inputs, targets = data_batch(str(request.options.get("data", "digits")), batch_size, seed=seed)
    return ZeroCostProvider(request.space, request.argument, inputs, targets, seed=seed)


def _labels_train(options: Mapping[str, Any]) -> bool:
    from nas.accuracy.active import trains_labels

    return trains_labels(options)


evaluators.add("table", Evaluator(_table, ("accuracy",), Tier.MEASURED, "table", "NAS-Bench-201's 200-epoch validation accuracy (the run's --dataset)"))
evaluators.add("csv", Evaluator(_csv, ("accuracy",), Tier.MEASURED, "csv:PATH", "accuracies you measured: a CSV with columns arch,accuracy"))
evaluators.add(
    "train",
    Evaluator(
        _train, ("accuracy",), Tier.MEASURED, "train:DATA", "train each architecture with the run's recipe on DATA (digits, npz:PATH, folder:PATH, cifar10:DIR, cifar100:DIR)",
        trains=lambda options: True,
    ),
)
evaluators.add(
    "predictor",
    Evaluator(
        _predictor, ("accuracy",), Tier.ESTIMATE, "predictor:MODEL[:ENCODING]", "a predictor refitted on the labels the search spends (active learning; accuracy option labels=table|csv:PATH|train:DATA)",
        trains=_labels_train,
    ),
)
def _supernet(request: ProviderRequest) -> MetricProvider:
    from nas.accuracy.supernet import supernet_accuracy

    return supernet_accuracy(request)


def _supernet_predictor(request: ProviderRequest) -> MetricProvider:
    from nas.accuracy.supernet import supernet_predictor

    return supernet_predictor(request)


evaluators.add("supernet", Evaluator(_supernet, ("accuracy",), Tier.ESTIMATE, "supernet:PATH", "OFA sub-network accuracy with weights inherited from a supernet (BatchNorm recalibrated); option data"))
evaluators.add(
    "supernet-predictor",
    Evaluator(_supernet_predictor, ("accuracy",), Tier.ESTIMATE, "supernet-predictor:PATH", "an MLP fitted on supernet scores of sampled sub-networks (microseconds per candidate); options samples, data"),
)
evaluators.add("zero_cost", Evaluator(_zero_cost, ("accuracy",), Tier.ESTIMATE, "zero_cost:PROXY", "a zero-cost proxy score of the untrained network on one batch (options data, batch_size)"))
