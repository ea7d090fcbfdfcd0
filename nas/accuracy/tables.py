"""Accuracy looked up in a table: NAS-Bench-201's 200-epoch validation accuracy, or a user's own CSV.

Search only ever sees validation accuracy: test accuracy would leak the final evaluation into selection.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from nas import tables
from nas.objectives import TableColumnProvider, Tier
from nas.spaces.base import SearchSpace


class AccuracyTableError(ValueError):
    """An accuracy table that is missing, malformed or lists an architecture twice."""


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
        tier=Tier.MEASURED,
    )


def csv_accuracy(path: str | Path, space: SearchSpace) -> TableColumnProvider:
    """Accuracies a user measured: a CSV with columns `arch` (canonical strings) and `accuracy`.

    Archs missing from the file get NaN (an active learner then keeps their predicted accuracy).

    Example:
        >>> import tempfile, os
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> a = space.enumerate()[0]
        >>> path = os.path.join(tempfile.mkdtemp(), "acc.csv")
        >>> _ = open(path, "w").write(f"arch,accuracy\\n{space.to_string(a)},91.5\\n")
        >>> csv_accuracy(path, space).evaluate([a]).tolist()
        [91.5]
    """
    from nas.accuracy.predictors.data import from_csv

    if not Path(path).is_file():
        raise AccuracyTableError(f"accuracy CSV {path} does not exist; expected a CSV with columns arch,accuracy")
    archs, y = from_csv(path, space, target="accuracy")
    strings = pd.Series([space.to_string(a) for a in archs], dtype=object)
    duplicates = strings[strings.duplicated()]
    if len(duplicates):
        raise AccuracyTableError(
            f"accuracy CSV {path} lists {len(duplicates)} arch(s) twice (first: {duplicates.iloc[0]}); expected one accuracy per arch"
        )
    return TableColumnProvider("accuracy", space, strings.tolist(), y, source={"table": f"csv:{path}", "rows": len(strings)}, tier=Tier.MEASURED)
