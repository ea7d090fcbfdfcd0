"""Label sources: the expensive evaluation that gives TRUE accuracy for the archs an active learner picks.

Why a protocol and a registry: today the true accuracy of an arch comes from a benchmark table or from a
CSV of accuracies a user measured themselves; tomorrow it may come from training the network. All of them
are a `MetricProvider` for `accuracy` (NaN where it has no value for an arch), looked up by a name of the
form `KIND` or `KIND:ARGUMENT`, so a training evaluator is one more `label_sources.add(...)`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pandas as pd

from nas.accuracy.tables import table_accuracy
from nas.objectives import MetricProvider, TableColumnProvider
from nas.registry import Registry
from nas.spaces.base import SearchSpace

#: `factory(argument, space, dataset, data_dir) -> MetricProvider` for `accuracy`, by the KIND before ':'.
LabelFactory = Callable[[str, SearchSpace, str, str | None], MetricProvider]

label_sources: Registry[LabelFactory] = Registry("label source")


class LabelSourceError(ValueError):
    """A label source that does not parse or cannot be read."""


def _table(argument: str, space: SearchSpace, dataset: str, data_dir: str | None) -> MetricProvider:
    if argument:
        raise LabelSourceError(f"label source 'table' takes no argument, got 'table:{argument}'")
    return table_accuracy(space, dataset, data_dir)


def csv_labels(path: str | Path, space: SearchSpace) -> TableColumnProvider:
    """True accuracies from a CSV with columns `arch` (canonical strings) and `accuracy`.

    Archs missing from the file get NaN: the active learner then keeps their predicted accuracy.

    Example:
        >>> import tempfile, os
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> a = space.enumerate()[0]
        >>> path = os.path.join(tempfile.mkdtemp(), "acc.csv")
        >>> _ = open(path, "w").write(f"arch,accuracy\\n{space.to_string(a)},91.5\\n")
        >>> csv_labels(path, space).evaluate([a]).tolist()
        [91.5]
    """
    from nas.accuracy.predictors.data import from_csv

    if not Path(path).is_file():
        raise LabelSourceError(f"label CSV {path} does not exist; expected a CSV with columns arch,accuracy")
    archs, y = from_csv(path, space, target="accuracy")
    strings = pd.Series([space.to_string(a) for a in archs], dtype=object)
    duplicates = strings[strings.duplicated()]
    if len(duplicates):
        raise LabelSourceError(
            f"label CSV {path} lists {len(duplicates)} arch(s) twice (first: {duplicates.iloc[0]}); expected one accuracy per arch"
        )
    return TableColumnProvider("accuracy", space, strings.tolist(), y, source={"table": f"csv:{path}", "rows": len(strings)}, cheap=False)


def _csv(argument: str, space: SearchSpace, dataset: str, data_dir: str | None) -> MetricProvider:
    if not argument:
        raise LabelSourceError("label source 'csv' needs a path: csv:PATH (a CSV with columns arch,accuracy)")
    return csv_labels(argument, space)


label_sources.add("table", _table)
label_sources.add("csv", _csv)


def check_label_spec(spec: object) -> str:
    """`spec` if it names a registered label source (`table`, `csv:PATH`); else a one-line error."""
    if not isinstance(spec, str) or not spec:
        raise LabelSourceError(f"labels must be a string like 'table' or 'csv:PATH', got {spec!r}")
    kind = spec.partition(":")[0]
    if kind not in label_sources:
        raise LabelSourceError(f"unknown label source {spec!r}; expected one of {', '.join(label_sources.names())} (csv as csv:PATH)")
    return spec


def label_source(spec: str, space: SearchSpace, dataset: str, data_dir: str | None = None) -> MetricProvider:
    """The provider of TRUE accuracy named by `spec` (`table` or `csv:PATH`) for `space`/`dataset`."""
    kind, _, argument = check_label_spec(spec).partition(":")
    return label_sources.get(kind)(argument, space, dataset, data_dir)


__all__ = ["LabelSourceError", "csv_labels", "label_source", "label_sources"]
