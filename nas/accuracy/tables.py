"""Accuracy looked up in a benchmark table (NAS-Bench-201's 200-epoch validation accuracy).

Search only ever sees validation accuracy: test accuracy would leak the final evaluation into selection.
"""

from __future__ import annotations

from pathlib import Path

from nas import tables
from nas.objectives import TableColumnProvider
from nas.spaces.base import SearchSpace


def table_accuracy(
    space: SearchSpace, dataset: str, data_dir: str | Path | None = None, *, fidelity: str = "200ep"
) -> TableColumnProvider:
    """NB201 validation accuracy (%) for `dataset`; `fidelity="12ep"` gives the cheap 12-epoch column."""
    if space.name != "nb201":
        raise ValueError(f"no accuracy table for space {space.name!r}; tables exist for: nb201")
    frame = tables.nb201(dataset=dataset, devices=[], data_dir=data_dir)
    column = {"200ep": "accuracy", "12ep": "accuracy_12ep"}.get(fidelity)
    if column is None:
        raise ValueError(f"unknown fidelity {fidelity!r}; expected '200ep' or '12ep'")
    if column not in frame:
        tables.require_data_dir(data_dir, needed=f"the 12-epoch NB201 table for {dataset}")
    metric = "accuracy" if fidelity == "200ep" else "accuracy_12ep"
    return TableColumnProvider(
        metric,
        space,
        frame["arch"].tolist(),
        frame[column].to_numpy(),
        source={"table": f"nb201/{dataset}/{column}", "source": frame.attrs.get("source", "unknown")},
        cheap=False,
    )
