"""Labelled training data for the predictors: from a benchmark table, a run's trials, or a CSV file.

Why three sources: a table gives ground truth for benchmarking a predictor; a run's completed trials are
the labels a search has actually paid for (the honest training set during a search); a CSV lets users
bring accuracies measured anywhere. Each returns `(archs, y)`: a list of Archs and an `n_archs` float
array, ready for `make_predictor(...).fit(archs, y)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from nas.accuracy.predictors._base import PredictorInputError
from nas.spaces.base import Arch, SearchSpace


class TrainingDataError(PredictorInputError):
    """A training-data source that is missing columns, rows or parsable archs."""


def _parse(space: SearchSpace, strings: pd.Series, where: str) -> list[Arch]:
    out = []
    for row, text in zip(strings.index, strings):
        if not isinstance(text, str):
            raise TrainingDataError(f"{where}: row {row} has no arch string")
        try:
            out.append(space.from_string(text))
        except ValueError as exc:
            raise TrainingDataError(f"{where}: row {row}: {exc}") from None
    return out


def from_frame(frame: pd.DataFrame, space: SearchSpace, target: str, *, where: str = "table", drop_missing: bool = False) -> tuple[list[Arch], np.ndarray]:
    """`(archs, y)` from any frame with an `arch` column (canonical strings) and a numeric `target` column.

    Rows without a target raise, unless `drop_missing` (then they are skipped).
    """
    missing = [c for c in ("arch", target) if c not in frame.columns]
    if missing:
        raise TrainingDataError(f"{where} has no column(s) {missing}; it has {list(frame.columns)}")
    y = pd.to_numeric(frame[target], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(y)
    if bad.any() and not drop_missing:
        raise TrainingDataError(f"{where}: {int(bad.sum())} row(s) have no numeric {target!r} (first: row {int(frame.index[bad][0])})")
    kept = frame.loc[~bad]
    return _parse(space, kept["arch"], where), y[~bad]


def from_table(space: SearchSpace, dataset: str = "cifar10", *, fidelity: str = "200ep", data_dir: str | Path | None = None) -> tuple[list[Arch], np.ndarray]:
    """Every NB201 arch and its validation accuracy (%), 200-epoch or `fidelity="12ep"`."""
    from nas.accuracy.tables import table_accuracy

    provider = table_accuracy(space, dataset, data_dir, fidelity=fidelity)
    strings, values = provider.evaluate_all()
    return [space.from_string(s) for s in strings], np.asarray(values, dtype=float)


def from_trials(trials: pd.DataFrame, space: SearchSpace, metric: str = "accuracy") -> tuple[list[Arch], np.ndarray]:
    """The completed trials of a run (`nas.load_run(RUN).trials()`), labelled by `metric`.

    Why a frame and not a run directory: `nas.accuracy` sits below `nas.run` and must not import it.
    """
    return from_frame(trials, space, metric, where="run trials", drop_missing=True)


def from_csv(path: str | Path, space: SearchSpace, *, target: str = "target") -> tuple[list[Arch], np.ndarray]:
    """A CSV file with columns `arch` (canonical strings) and `target` (e.g. accuracy in %)."""
    file = Path(path)
    try:
        frame = pd.read_csv(file)
    except FileNotFoundError:
        raise FileNotFoundError(f"training CSV {file} does not exist") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"{file} is not a CSV with columns arch,{target}: {str(exc).splitlines()[0]}") from None
    return from_frame(frame, space, target, where=str(file))


__all__ = ["TrainingDataError", "from_csv", "from_frame", "from_table", "from_trials"]
