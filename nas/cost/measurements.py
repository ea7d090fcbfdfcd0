"""Files behind `nas lut fit` and `nas lut predict`: measurement tables in, fitted LUTs and predictions out.

Why its own module: the fit itself (`nas.cost.fit`) works on arrays; turning a user's CSV into those
arrays is where bad input shows up (a missing column, a latency of 0, a malformed arch string on line
4,812), and each such problem must become one line that names the file, the line and the fix. A
measurement table has an `arch_str` column and one latency column (ms) per device, like the shared
`nb201/latency_ms.csv.gz`; columns named in `ID_COLUMNS` are identifiers, never devices.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._io import write_atomic
from nas.cost.fit import (
    MIN_CV_MEASUREMENTS,
    ArchPool,
    FitError,
    ReferenceTables,
    cross_validate,
    cv_figures,
    fit_with_model,
)
from nas.cost.lut import LUT, LUTError
from nas.spaces.base import Arch, InvalidArchError, SearchSpace

ARCH_COLUMN = "arch_str"
ID_COLUMNS = frozenset({"arch_str", "arch_idx", "idx", "config_id", "op_idx_list"})


class MeasurementError(ValueError):
    """A measurement or arch file that cannot be used; the message names the file and the fix."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _parse_archs(space: SearchSpace, texts: Sequence[str], path: Path, first_line: int | Sequence[int]) -> list[Arch]:
    lines = range(first_line, first_line + len(texts)) if isinstance(first_line, int) else first_line
    archs = []
    for text, line in zip(texts, lines):
        try:
            archs.append(space.from_string(str(text)))
        except InvalidArchError as exc:
            raise MeasurementError(f"{path} line {line}: {exc}") from None
    return archs


@dataclass
class Measurements:
    """A parsed measurement table: archs (file order) and their latencies per device (ms)."""

    path: Path
    space: SearchSpace
    archs: list[Arch]
    latencies: pd.DataFrame  # one float column per device, rows in file order
    sha256: str

    @property
    def devices(self) -> list[str]:
        return list(self.latencies.columns)

    def column(self, device: str) -> np.ndarray:
        """The latencies of `device`, checked numeric and positive (errors name the file line)."""
        if device not in self.latencies.columns:
            raise MeasurementError(f"{self.path} has no column {device!r}; its columns are {', '.join(self.devices)}")
        rows, values = self.measured(device)
        if len(rows) < len(self.archs):
            i = int(np.setdiff1d(np.arange(len(self.archs)), rows)[0])
            raise MeasurementError(f"{self.path} line {i + 2}: column {device!r} is empty there; a reference device needs a latency on every row")
        return values

    def measured(self, device: str) -> tuple[np.ndarray, np.ndarray]:
        """Rows where `device` has a latency, and those latencies (ms).

        An empty cell means "not measured on this device": a user who timed 20 networks adds their
        column to a table of reference devices and leaves the other rows empty (or NA, as pandas reads
        it); those rows still serve as the pool a transfer fit learns the references on. Text, infinities
        and values <= 0 are errors naming the file line.
        """
        if device not in self.latencies.columns:
            raise MeasurementError(f"{self.path} has no column {device!r}; its columns are {', '.join(self.devices)}")
        raw = self.latencies[device]
        empty = raw.isna().to_numpy()
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) & ~empty
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise MeasurementError(f"{self.path} line {i + 2}: latency {str(raw.iloc[i])!r} in column {device!r} is not a number")
        rows = np.flatnonzero(~empty)
        if not len(rows):
            raise MeasurementError(f"{self.path}: column {device!r} holds no latency")
        if (values[rows] <= 0).any():
            i = int(rows[np.flatnonzero(values[rows] <= 0)[0]])
            raise MeasurementError(f"{self.path} line {i + 2}: latency {values[i]:g} in column {device!r} is not positive")
        return rows, values[rows]


def read_measurements(path: str | Path, space: SearchSpace) -> Measurements:
    """Read a CSV (optionally gzip) with an `arch_str` column and one latency column per device."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"measurement file {path} not found")
    try:
        frame = pd.read_csv(path, dtype={ARCH_COLUMN: str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise MeasurementError(f"{path} is not a readable CSV: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    keys: frozenset[str] = ID_COLUMNS
    if ARCH_COLUMN not in frame.columns and space.table_columns and set(space.table_columns) <= set(frame.columns):
        frame[ARCH_COLUMN] = frame[list(space.table_columns)].astype(str).agg("|".join, axis=1)
        keys = ID_COLUMNS | set(space.table_columns)
    if ARCH_COLUMN not in frame.columns:
        alternative = f" (or the columns {', '.join(space.table_columns)})" if space.table_columns else ""
        raise MeasurementError(f"{path} has no {ARCH_COLUMN!r} column{alternative}; its columns are {', '.join(map(str, frame.columns))}")
    if frame[ARCH_COLUMN].isna().any():
        i = int(np.flatnonzero(frame[ARCH_COLUMN].isna())[0])
        raise MeasurementError(f"{path} line {i + 2}: empty {ARCH_COLUMN}")
    archs = _parse_archs(space, frame[ARCH_COLUMN].tolist(), path, 2)
    devices = [str(c) for c in frame.columns if str(c) not in keys]
    return Measurements(path, space, archs, frame[devices], file_sha256(path))


def reference_devices(measurements: Measurements, device: str, choice: str) -> list[str]:
    """`all` (every other device column holding only positive numbers), `none`, or a comma list."""
    if choice == "none":
        return []
    if choice == "all":
        usable = []
        for name in measurements.devices:
            values = pd.to_numeric(measurements.latencies[name], errors="coerce")
            if name != device and values.notna().all() and (values > 0).all():
                usable.append(name)
        return usable
    names = [n.strip() for n in choice.split(",") if n.strip()]
    if device in names:
        raise MeasurementError(f"--reference-devices includes the device being fitted ({device!r}); leave it out")
    for name in names:
        measurements.column(name)
    return names


def sample_rows(n_rows: int, k: int, seed: int) -> np.ndarray:
    """K distinct random row indices (sorted), reproducible from the seed."""
    if k < 2:
        raise MeasurementError(f"--samples must be at least 2, got {k}")
    if k > n_rows:
        raise MeasurementError(f"--samples {k} is larger than the {n_rows} measured rows available")
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=k, replace=False))


@dataclass
class FitReport:
    """What `nas lut fit` stores in the sidecar's `validation[space]` and prints."""

    lut: LUT
    validation: dict[str, Any]


def fit_from_measurements(
    measurements: Measurements,
    device: str,
    *,
    samples: int | None = None,
    seed: int,
    references: Sequence[str],
    method: str | None = None,
    folds: int | None = None,
) -> FitReport:
    """Fit a LUT for `device` from its measured rows, with an honest error estimate.

    Two ways, by `samples`:
    - None, or every measured row (the default of `nas lut fit`): fit on all K measurements; the error
      is estimated by cross-validation (`nas.cost.fit.cross_validate`: leave-one-out up to 20 rows, else
      10 folds, or `folds`), each fold refitted from scratch. The sidecar's top-level figures are those
      out-of-fold ones; `in_sample` holds the final LUT's figures on the rows it was fitted on.
    - fewer: fit on `samples` random measured rows and validate on every other measured row.

    Rows whose `device` cell is empty are not measurements; they (and every measured row) form the pool
    a transfer LUT is distilled on. Without references the LUT is kept above its latency floor over the
    whole space when the space can be listed (else over the file).
    """
    measured_rows, measured = measurements.measured(device)
    k = len(measured_rows)
    method = method or ("transfer" if references else "nnls+terms")
    if method == "transfer" and not references:
        raise MeasurementError("method 'transfer' needs reference devices; pass --reference-devices all or a list")
    cross_validated = samples is None or samples == k
    if cross_validated:
        if k < MIN_CV_MEASUREMENTS:
            raise MeasurementError(
                f"{measurements.path}: column {device!r} has {k} measured row(s); fitting on all of them with a "
                f"cross-validated error needs at least {MIN_CV_MEASUREMENTS}"
            )
        if folds is not None and not 2 <= folds <= k:
            raise MeasurementError(f"--cv-folds {folds} must be between 2 and the {k} measured rows of column {device!r}")
        fit_rows = np.arange(k)
    else:
        assert samples is not None
        fit_rows = sample_rows(k, samples, seed)
        if k - samples < 2:
            raise MeasurementError(
                f"--samples {samples} leaves {k - samples} of the {k} measured rows of column {device!r} to validate on; "
                "leave at least 2, or omit --samples to fit on all of them with a cross-validated error"
            )
    try:
        pool = ArchPool(measurements.space, measurements.archs)
    except FitError as exc:
        raise MeasurementError(f"{measurements.path}: {exc}") from None
    # Without references the LUT must still price (and stay above its floor on) every network a search
    # may meet: the whole space where it can be listed, not only the measured file.
    whole = ArchPool(measurements.space, measurements.space.enumerate()) if method != "transfer" and measurements.space.can_list() else pool
    reference = None
    if references:
        reference = ReferenceTables(pool, np.column_stack([measurements.column(d) for d in references]), tuple(references))
    archs = [measurements.archs[i] for i in measured_rows]
    fit_archs = [archs[i] for i in fit_rows]
    settings: dict[str, Any] = {
        "device": device, "method": method, "seed": seed,
        "reference": reference if method == "transfer" else None, "pool": None if method == "transfer" else whole,
    }
    fitted = fit_with_model(measurements.space, fit_archs, measured[fit_rows], **settings)
    lut = fitted.lut
    predicted = pool.predict(lut)[measured_rows]
    validation: dict[str, Any] = {
        "kind": "fitted",
        "device": device,
        "method": method,
        "k": int(len(fit_rows)),
        "seed": int(seed),
        "reference_devices": list(references) if method == "transfer" else [],
        "source": measurements.path.name,
        "source_sha256": measurements.sha256,
    }
    teacher = None if fitted.model is None else fitted.model.predict()[pool.rows(archs)]
    if cross_validated:
        cv = cross_validate(measurements.space, archs, measured, folds=folds, **settings)
        validation |= {
            "estimate": "cross-validated",
            "heldout": f"cross-validation over the K measured rows ({cv.scheme}): each predicted by a LUT refitted without it",
            **cv.figures(),
            "cv": {"scheme": cv.scheme, "folds": cv.n_folds, **({"before_distillation": cv.figures(model=True)} if teacher is not None else {})},
            "in_sample": {**cv_figures(predicted, measured), "note": "the final LUT on the rows it was fitted on: optimistic"},
        }
    else:
        held = np.ones(k, dtype=bool)
        held[fit_rows] = False
        validation |= {"estimate": "held-out", "heldout": "every measured row of the source not used for fitting", **cv_figures(predicted[held], measured[held])}
        if teacher is not None:
            validation["before_distillation"] = cv_figures(teacher[held], measured[held])
    if fitted.model is not None:
        validation["distillation"] = lut.meta["fit"][measurements.space.name]["distillation"]
    if np.all(measured == np.round(measured)):
        validation["note"] = "measurements are whole milliseconds: ties in the truth cap rank correlation"
    return FitReport(lut, validation)


def save_fitted(report: FitReport, out: Path, space: str, *, overwrite: bool) -> Path:
    """Write the fitted rows into `out`, keeping rows (and figures) of other spaces already there."""
    lut = report.lut
    table, meta = lut.table, {**lut.meta}
    if out.exists():
        try:
            old = LUT.load(out)
        except LUTError as exc:
            raise MeasurementError(f"cannot add to {out}: {exc}") from None
        if space in old.spaces and not overwrite:
            raise MeasurementError(f"{out} already holds {space} rows; pass --overwrite to replace them or choose another --out")
        if old.meta.get("device") not in (None, meta.get("device")):
            raise MeasurementError(f"{out} is a LUT of device {old.meta.get('device')!r}, not {meta.get('device')!r}; choose another --out")
        kept = old.table[old.table["space"] != space]
        table = pd.concat([kept, table], ignore_index=True)
        for key in ("validation", "fit"):
            merged = {s: v for s, v in dict(old.meta.get(key, {})).items() if s != space}
            meta[key] = {**merged, **meta.get(key, {})}
    meta["validation"] = {**meta.get("validation", {}), space: report.validation}
    return LUT(table.reset_index(drop=True), meta).save(out)


def read_archs(path: str | Path, space: SearchSpace) -> list[Arch]:
    """Archs from a CSV with an `arch_str` column or from a text file of one arch string per line."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"arch file {path} not found")
    try:
        raw = path.read_bytes()
        text = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode("utf-8")
    except (OSError, UnicodeDecodeError, EOFError, gzip.BadGzipFile) as exc:
        raise MeasurementError(f"{path} is not a readable text file: {type(exc).__name__}") from None
    lines = text.splitlines()
    header = next(csv.reader([lines[0]])) if lines else []
    if ARCH_COLUMN in [h.strip() for h in header]:
        rows = list(csv.DictReader(io.StringIO(text)))
        texts = [(r.get(ARCH_COLUMN) or "").strip() for r in rows]
        if any(not t for t in texts):
            line = texts.index("") + 2
            raise MeasurementError(f"{path} line {line}: empty {ARCH_COLUMN}")
        archs = _parse_archs(space, texts, path, 2)
    else:
        numbered = [(i + 1, line.strip()) for i, line in enumerate(lines) if line.strip()]
        archs = _parse_archs(space, [t for _, t in numbered], path, [i for i, _ in numbered])
    if not archs:
        raise MeasurementError(f"{path} holds no architectures (expected an {ARCH_COLUMN} column or one arch string per line)")
    return archs


def write_predictions(path: Path, space: SearchSpace, archs: Sequence[Arch], latency_ms: np.ndarray) -> None:
    frame = pd.DataFrame({"arch_str": [space.to_string(a) for a in archs], "latency_ms": latency_ms})
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, frame.to_csv(index=False))
