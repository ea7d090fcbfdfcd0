"""How well a LUT predicts whole networks on this machine, and an optional calibration against them.

Why validate end to end: a LUT sums operators measured alone, but a network runs them back to back through
one framework call, with operator fusion, layout changes and dead-code removal in compiled backends. Only
measuring real networks with the same backend and threads says how far the sum is from the truth.
The figures (MAPE, share within +-10 %, Spearman, Kendall tau, bias) go into the LUT's sidecar under
`validation[space]` and the per-arch table beside the LUT as `NAME.validation.csv`, so `nas lut list` and
`LUTProvider.provenance()` show them. nn-Meter's anchor: 99.0 % of networks within +-10 % on a mobile CPU.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import least_squares, lsq_linear

from nas._io import write_atomic
from nas.cost.build import load_average, measure_archs, timing_settings
from nas.cost.lut import INTERCEPT, LUT, LUTError
from nas.spaces.base import Arch, SearchSpace

Progress = Callable[[int, int], None]


def accuracy_figures(predicted: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    """Agreement of predicted with measured latencies (both `n_archs`, ms).

    `bias` is the median of predicted/measured (1.0 = unbiased); `within_10pct` the share (%) of archs
    whose prediction is within +-10 % of the measurement.

    Example:
        >>> figs = accuracy_figures(np.array([1.0, 2.2, 3.0]), np.array([1.0, 2.0, 3.3]))
        >>> figs["within_10pct"], round(figs["mape_pct"], 2), figs["spearman"]
        (100.0, 6.36, 1.0)
    """
    predicted = np.asarray(predicted, dtype=float)
    measured = np.asarray(measured, dtype=float)
    if predicted.shape != measured.shape or predicted.ndim != 1 or len(predicted) < 2:
        raise ValueError(f"need two equal 1-D arrays of at least 2 latencies, got shapes {predicted.shape} and {measured.shape}")
    ratio = predicted / measured
    ape = np.abs(ratio - 1.0) * 100.0
    return {
        "n_archs": int(len(measured)),
        "mape_pct": float(ape.mean()),
        "within_10pct": float((ape <= 10.0 + 1e-9).mean() * 100.0),  # 10 % itself counts, despite rounding
        "within_5pct": float((ape <= 5.0 + 1e-9).mean() * 100.0),
        "worst_ape_pct": float(ape.max()),
        "spearman": float(stats.spearmanr(predicted, measured).statistic),
        "kendall_tau": float(stats.kendalltau(predicted, measured).statistic),
        "bias": float(np.median(ratio)),
    }


#: The keys `accuracy_figures` returns (a validation record's other keys are its conditions).
FIGURE_KEYS = ("n_archs", "mape_pct", "within_10pct", "within_5pct", "worst_ape_pct", "spearman", "kendall_tau", "bias")


def random_archs(space: SearchSpace, n: int, seed: int, exclude: Sequence[str] = ()) -> list[Arch]:
    """`n` distinct random archs (by canonical string), none in `exclude`, drawn with `seed`."""
    if n < 2:
        raise ValueError(f"need at least 2 archs to validate, got {n}")
    banned = set(exclude)
    if space.size is not None and space.size - len(banned) < n:
        raise ValueError(f"space {space.name!r} has {space.size} archs ({len(banned)} used for calibration); cannot draw {n} distinct ones")
    rng = np.random.default_rng(seed)
    picked: dict[str, Arch] = {}
    while len(picked) < n:
        arch = space.sample(rng)
        text = space.to_string(arch)
        if text not in banned:
            picked.setdefault(text, arch)
    return list(picked.values())


def _layer_kwargs(lut: LUT, space: SearchSpace, dataset: str | None) -> dict[str, Any]:
    if dataset is not None:
        return {"dataset": dataset}
    stored = lut.meta.get("build", {}).get(space.name, {}).get("layer_kwargs")
    return dict(stored) if isinstance(stored, Mapping) else {}


def _timing(lut: LUT, space: SearchSpace, timing: Mapping[str, Any] | None, threads: int) -> dict[str, Any]:
    """The LUT's own build timing (so networks are timed like its operators), then `timing`'s overrides."""
    stored = lut.meta.get("build", {}).get(space.name, {}).get("timing")
    stored = {"across": "median", **stored} if isinstance(stored, Mapping) else {}  # built before `across`: the median
    return timing_settings({**stored, **(timing or {})}, threads)


def _check_backend(lut: LUT, backend: str, threads: int, verb: str = "validate") -> None:
    built = lut.meta.get("backend")
    if built is not None and built != backend:
        raise LUTError(f"LUT {lut.name} was measured with backend {built!r}; {verb} it with --backend {built}, not {backend!r}")
    built_threads = lut.meta.get("threads")
    if built_threads is not None and int(built_threads) != threads:
        raise LUTError(f"LUT {lut.name} was measured with {built_threads} thread(s); {verb} it with --threads {built_threads}, not {threads}")


def used_archs(lut: LUT, space: str) -> list[str]:
    """Every arch string the LUT was fitted on: its calibration's and those of earlier calibrations (`history`).

    Why: validation must be held out; a network a past calibration (even on another machine) fitted
    the costs to is not a fresh test of them.
    """
    entries = [lut.meta.get("calibration", {}).get(space, {})]
    entries += [h.get("calibration") or {} for h in lut.meta.get("history", []) if isinstance(h, Mapping) and h.get("space") == space]
    return list(dict.fromkeys(a for e in entries if isinstance(e, Mapping) for a in e.get("archs", ())))


@dataclass
class Validation:
    """Figures (as stored in the sidecar) and the per-arch table (as written to `NAME.validation.csv`)."""

    figures: dict[str, Any]
    table: pd.DataFrame


def validation_path(lut_path: Path) -> Path:
    """`DIR/NAME.validation.csv` beside `DIR/NAME.csv`."""
    return lut_path.with_name(lut_path.name.removesuffix(".gz").removesuffix(".csv") + ".validation.csv")


def validate_lut(
    lut: LUT,
    space: SearchSpace,
    backend: str,
    *,
    n_archs: int = 50,
    seed: int = 0,
    processes: int = 3,
    threads: int = 1,
    dataset: str | None = None,
    timing: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    save: bool = True,
) -> Validation:
    """Measure `n_archs` random whole networks through `backend` and compare with `lut.predict`.

    Archs used to calibrate the LUT are never drawn. Networks are timed as the LUT's operators were (its
    recorded timing, `timing` overriding). With `save` and a LUT loaded from a file, the figures are
    written into its sidecar and the per-arch table beside it.
    """
    lut.check_space(space)
    _check_backend(lut, backend, threads)
    layer_kwargs = _layer_kwargs(lut, space, dataset)
    archs = random_archs(space, n_archs, seed, exclude=used_archs(lut, space.name))
    lut.predict(space, archs, **layer_kwargs)  # a missing signature fails here, before measuring
    settings = _timing(lut, space, timing, threads)
    load_before = load_average()
    _, per_process = measure_archs(
        space, archs, backend, processes=processes, threads=threads, timing=settings, seed=seed, progress=progress, **layer_kwargs
    )
    conditions = {"seed": seed, "processes": processes, "threads": threads, "backend": backend, "load_before": load_before, "load_after": load_average(), "timing": settings}
    return record_validation(lut, space, archs, per_process, conditions, save=save, **layer_kwargs)


def record_validation(
    lut: LUT, space: SearchSpace, archs: Sequence[Arch], per_process: np.ndarray, conditions: Mapping[str, Any], *, save: bool = True, **layer_kwargs: Any
) -> Validation:
    """Figures of `lut` against networks measured here (`per_process`: `processes x n_archs` ms, combined by the
    timing's `across`), stored under `validation[space]` with `conditions` (seed, backend, load, timing ...).

    Why separate from measuring: networks measured once (a benchmark's fresh set) can validate several
    LUTs, so long as none of them was fitted on those networks (checked here).
    """
    fitted = set(used_archs(lut, space.name)) & {space.to_string(a) for a in archs}
    if fitted:
        raise LUTError(f"LUT {lut.name} was fitted on {len(fitted)} of these networks (e.g. {sorted(fitted)[0]}); validate on fresh ones")
    per_process = np.asarray(per_process, dtype=float).reshape(-1, len(archs))
    across = dict(conditions.get("timing") or {}).get("across", "median")
    measured = per_process.min(axis=0) if across == "min" else np.median(per_process, axis=0)
    predicted = lut.predict(space, archs, **layer_kwargs)
    figures: dict[str, Any] = {
        **accuracy_figures(predicted, measured),
        **conditions,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "process_spread_pct": _process_spread(per_process),
    }
    table = pd.DataFrame(
        {
            "space": space.name,
            "arch": [space.to_string(a) for a in archs],
            "n_layers": [len(lut.layers(space, a, **layer_kwargs)) for a in archs],
            "measured_ms": measured,
            "predicted_ms": predicted,
            "ratio": predicted / measured,
        }
    )
    for p in range(per_process.shape[0]):
        table[f"process{p}_ms"] = per_process[p]
    lut.meta.setdefault("validation", {})[space.name] = figures
    if save and lut.path is not None:
        lut.save(lut.path)
        write_atomic(validation_path(lut.path), _with_other_spaces(validation_path(lut.path), table, lut, space).to_csv(index=False))
    return Validation(figures, table)


def _with_other_spaces(path: Path, table: pd.DataFrame, lut: LUT, space: SearchSpace) -> pd.DataFrame:
    """`table` after the rows of other spaces' validations already in `path`.

    Why: a LUT file may hold several spaces, and validating one must not erase another's per-network
    figures. Files written before the `space` column held one space's rows: they are kept, labelled
    with the LUT's other space, unless they parse as this space's archs (then they are this one's).
    """
    if not path.is_file():
        return table
    old = pd.read_csv(path, dtype={"arch": str})
    if "space" not in old.columns:
        others = [s for s in lut.spaces if s != space.name]
        try:
            space.from_string(str(old["arch"].iloc[0]))
            mine = True
        except (ValueError, IndexError):
            mine = False
        if mine or len(others) != 1:
            return table
        old.insert(0, "space", others[0])
    return pd.concat([old[old["space"] != space.name], table], ignore_index=True)


def _process_spread(per_process: np.ndarray) -> dict[str, float | None]:
    """How far single processes stray from the median of processes: median and max over archs, in %.

    With one process there is no spread to see: both are None, not 0.
    """
    if per_process.shape[0] < 2:
        return {"median": None, "max": None}
    med = np.median(per_process, axis=0)
    spread = (per_process.max(axis=0) - per_process.min(axis=0)) / med * 100.0
    return {"median": float(np.median(spread)), "max": float(spread.max())}


#: Calibration models `calibrate_lut` can fit (see its docstring).
CALIBRATION_MODELS = ("scale", "offset")
#: Weight of the prior "factor = 1" against the relative-error terms of the scale model.
RIDGE = 1e-6
#: Relative error beyond which the scale model's loss grows linearly rather than quadratically.
ROBUST_SCALE = 0.05


def calibration_group(key: str) -> str:
    """The calibration factor a LUT row shares: its operator type, and for convs also the kernel size.

    Why convs by kernel: a graph-optimising backend runs a 1x1 conv inside the network for much less than
    alone (no layout reorders around it, its add fused in), a 3x3 conv for about the same; one factor for
    both left ONNX Runtime's LUT 15-40 % high on networks of many 1x1 convs. A constant added to a
    tensor (`add` with bias) has its own factor: ONNX Runtime reorders the tensor's layout around it.
    """
    op, _, rest = key.partition(":")
    fields = dict(part.split("=", 1) for part in rest.split(":") if "=" in part)
    if op == "conv":
        kernel = fields.get("k", "?")
        return f"conv{kernel}x{kernel}"
    if op == "add" and fields.get("bias") == "1":
        return "add_constant"
    return op


def _sums_by_op(lut: LUT, space: SearchSpace, archs: Sequence[Arch], layer_kwargs: Mapping[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Calibration groups, `n_archs x n_groups` sums of their LUT rows, and `n_archs x n_groups` counts."""
    costs = lut.costs(space.name)
    keys = [[sig.key() for sig in lut.layers(space, a, **layer_kwargs)] for a in archs]
    groups = sorted({calibration_group(k) for arch_keys in keys for k in arch_keys})
    column = {g: j for j, g in enumerate(groups)}
    sums = np.zeros((len(archs), len(groups)))
    counts = np.zeros((len(archs), len(groups)))
    for i, arch_keys in enumerate(keys):
        for key in arch_keys:
            sums[i, column[calibration_group(key)]] += costs[key]
            counts[i, column[calibration_group(key)]] += 1
    return groups, sums, counts


def calibrate_lut(
    lut: LUT,
    space: SearchSpace,
    backend: str,
    *,
    n_archs: int = 30,
    model: str = "scale",
    seed: int = 0,
    processes: int = 3,
    threads: int = 1,
    timing: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    **layer_kwargs: Any,
) -> LUT:
    """A copy of `lut` corrected to match `n_archs` measured whole networks; format and keys unchanged.

    Models (fitted by least squares on relative error, so small and large networks weigh alike):
    - "scale": `measured = a + sum over op types t of s_t * (LUT sum of type t)`, `s_t >= 0`. Rows of type
      t are multiplied by `s_t`: this absorbs what a type costs inside a network on average (ONNX Runtime
      folds, fuses and de-duplicates some operators; eager frameworks pay dispatch per call). Types whose
      sum does not vary over the archs cannot be told from the intercept and keep `s_t = 1`; types that
      always occur together share what the data says, staying as close to 1 as it allows.
    - "offset": `measured = lut_sum + a + b * n_layers`; `b` is added to every operator row.
    `a` is added to the intercept. The archs (drawn with `seed + 1`) are recorded in the sidecar, and
    `validate_lut` never draws them.
    """
    if model not in CALIBRATION_MODELS:
        raise ValueError(f"unknown calibration model {model!r}; expected one of {list(CALIBRATION_MODELS)}")
    lut.check_space(space)
    _check_backend(lut, backend, threads)
    archs = random_archs(space, n_archs, seed + 1)
    lut.predict(space, archs, **layer_kwargs)  # a missing signature fails here, before measuring
    measured, _ = measure_archs(
        space, archs, backend, processes=processes, threads=threads, timing=_timing(lut, space, timing, threads), seed=seed + 1,
        progress=progress, **layer_kwargs,
    )
    calibrated = fit_calibration(lut, space, archs, measured, model=model, **layer_kwargs)
    calibrated.meta["calibration"][space.name]["seed"] = seed + 1
    return calibrated


def fit_calibration(lut: LUT, space: SearchSpace, archs: Sequence[Arch], measured: np.ndarray, *, model: str = "scale", **layer_kwargs: Any) -> LUT:
    """The fitting step of `calibrate_lut`, given the archs' measured latencies (`n_archs`, ms)."""
    if model not in CALIBRATION_MODELS:
        raise ValueError(f"unknown calibration model {model!r}; expected one of {list(CALIBRATION_MODELS)}")
    measured = np.asarray(measured, dtype=float)
    before = lut.predict(space, archs, **layer_kwargs)
    ops, sums, counts = _sums_by_op(lut, space, archs, layer_kwargs)
    weight = 1.0 / measured
    if model == "scale":
        varying = [j for j in range(len(ops)) if np.ptp(sums[:, j]) > 1e-12]
        design = np.column_stack([np.ones(len(archs)), sums[:, varying]]) * weight[:, None]
        target = (measured - (before - sums[:, varying].sum(axis=1))) * weight
        # A faint pull of every factor towards 1: where types always occur together (each NB201 conv
        # brings its ReLU and BatchNorm) the data cannot split their factors, and then none should move.
        prior = np.sqrt(RIDGE) * np.eye(len(varying) + 1)[1:]
        a_full = np.vstack([design, prior])
        b_full = np.concatenate([target, np.sqrt(RIDGE) * np.ones(len(varying))])
        start = np.clip(lsq_linear(a_full, b_full, bounds=([-np.inf] + [0.0] * len(varying), np.inf)).x, [-np.inf] + [1e-9] * len(varying), np.inf)
        # Robust (soft-L1 beyond ROBUST_SCALE relative error): one network a compiler folds to a constant
        # must not bend the factors of all the others.
        fit = least_squares(lambda x: a_full @ x - b_full, start, bounds=([-np.inf] + [0.0] * len(varying), np.inf), loss="soft_l1", f_scale=ROBUST_SCALE)
        offset, scales, per_layer = float(fit.x[0]), {ops[j]: float(s) for j, s in zip(varying, fit.x[1:])}, 0.0
    else:
        design = np.column_stack([np.ones(len(archs)), counts.sum(axis=1)])
        (offset, per_layer), *_ = np.linalg.lstsq(design * weight[:, None], (measured - before) * weight, rcond=None)
        offset, per_layer, scales = float(offset), float(per_layer), {}
    calibrated = LUT(_corrected(lut.table, space.name, offset, scales, per_layer), copy.deepcopy(lut.meta), lut.path)
    after = calibrated.predict(space, archs, **layer_kwargs)
    calibrated.meta.setdefault("calibration", {})[space.name] = {
        "model": model,
        "formula": "measured = a + sum_t s_t * lut_sum_t" if model == "scale" else "measured = lut_sum + a + b * n_layers",
        "intercept_ms": offset,
        "scales": scales,
        "per_layer_ms": per_layer,
        "n_archs": len(archs),
        "before": accuracy_figures(before, measured),
        "after_in_sample": accuracy_figures(after, measured),
        "archs": [space.to_string(a) for a in archs],
        "measured_ms": [float(v) for v in measured],
    }
    return calibrated


def _corrected(table: pd.DataFrame, space: str, offset: float, scales: Mapping[str, float], per_layer: float) -> pd.DataFrame:
    table = table.copy()
    rows = table["space"] == space
    if "measured_ms" not in table.columns:  # what was measured stays beside the calibrated cost
        table["measured_ms"] = table["latency_ms"]
    ops = table["key"].map(calibration_group)
    spread = [c for c in ("min_ms", "max_ms") if c in table.columns]
    for op, scale in scales.items():
        mask = rows & (ops == op)
        table.loc[mask, ["latency_ms", *spread, *(["std_ms"] if "std_ms" in table.columns else [])]] *= scale
    operators = rows & (table["key"] != INTERCEPT)
    table.loc[operators, ["latency_ms", *spread]] += per_layer
    if not (rows & (table["key"] == INTERCEPT)).any():
        table = pd.concat([table, pd.DataFrame([{"space": space, "key": INTERCEPT, "latency_ms": 0.0}])], ignore_index=True)
        rows = table["space"] == space
    table.loc[rows & (table["key"] == INTERCEPT), ["latency_ms", *spread]] += offset
    return table


def _uncorrected(table: pd.DataFrame, space: str, calibration: Mapping[str, Any]) -> pd.DataFrame:
    """`table` with `_corrected`'s recorded correction (`calibration[space]`) undone: the measured rows.

    Raises:
        LUTError: the undone costs are not the `measured_ms` the table keeps (the rows were changed since).
    """
    table = table.copy()
    rows = table["space"] == space
    offset = float(calibration.get("intercept_ms", 0.0))
    per_layer = float(calibration.get("per_layer_ms", 0.0))
    scales = {str(k): float(v) for k, v in (calibration.get("scales") or {}).items()}
    spread = [c for c in ("min_ms", "max_ms") if c in table.columns]
    intercept = rows & (table["key"] == INTERCEPT)
    table.loc[intercept, ["latency_ms", *spread]] -= offset
    operators = rows & ~intercept
    table.loc[operators, ["latency_ms", *spread]] -= per_layer
    ops = table["key"].map(calibration_group)
    for op, scale in scales.items():
        mask = operators & (ops == op)
        if scale > 0:
            table.loc[mask, ["latency_ms", *spread, *(["std_ms"] if "std_ms" in table.columns else [])]] /= scale
        else:  # a factor of 0 erased the rows: the measured ones are all that is left
            table.loc[mask, ["latency_ms", *spread]] = table.loc[mask, ["measured_ms"] * (1 + len(spread))].to_numpy()
    undone, kept = table.loc[rows, "latency_ms"].to_numpy(float), table.loc[rows, "measured_ms"].to_numpy(float)
    if not np.allclose(undone, kept, rtol=1e-6, atol=1e-9):
        raise LUTError("its rows are not its measured rows under its recorded calibration (edited since?); rebuild it with `nas lut build --calibrate N`")
    table.loc[rows, "latency_ms"] = kept
    return table


def refit_calibration(lut: LUT, space: SearchSpace, **layer_kwargs: Any) -> LUT:
    """`lut` calibrated afresh to the networks its sidecar records (`calibration[space]`: archs, measured ms),
    by the same model, pricing them as `nas` lists their operators today; nothing is measured.

    Why: when `nas` learns to list a backend's operators more faithfully (ONNX Runtime's layout reorders,
    2026-11-27), a LUT's factors, fitted to the old listing, are stale, while the measurements it was
    fitted to are not. The previous calibration moves to the sidecar's `history`.

    Raises:
        LUTError: the LUT has no such calibration (none, or a transfer from another machine), or its rows
            were changed after it.
    """
    from nas.cost.calibrate import history_entry  # calibrate imports this module

    lut.check_space(space)
    cal = lut.meta.get("calibration", {}).get(space.name)
    if not isinstance(cal, Mapping) or cal.get("model") not in CALIBRATION_MODELS or "measured_ms" not in lut.table.columns:
        raise LUTError(f"LUT {lut.name} records no `nas lut build --calibrate` calibration for {space.name} to refit")
    try:
        archs = [space.from_string(a) for a in cal["archs"]]
        measured = np.asarray(cal["measured_ms"], dtype=float)
    except (KeyError, TypeError, ValueError) as exc:
        raise LUTError(f"LUT {lut.name}: its calibration record is incomplete ({type(exc).__name__}: {exc})") from None
    try:
        raw = LUT(_uncorrected(lut.table, space.name, cal), copy.deepcopy(lut.meta), lut.path)
    except LUTError as exc:
        raise LUTError(f"LUT {lut.name}: {exc}") from None
    raw.meta["calibration"].pop(space.name)
    refitted = fit_calibration(raw, space, archs, measured, model=str(cal["model"]), **layer_kwargs)
    meta = refitted.meta
    meta["calibration"][space.name].update(
        {k: v for k, v in cal.items() if k not in meta["calibration"][space.name]},
        refit=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    )
    meta.pop("sha256", None)
    meta.setdefault("history", []).append({**history_entry(lut, space.name), "reason": "refit to the recorded networks"})
    return refitted


def revalidate_recorded(lut: LUT, space: SearchSpace, table: pd.DataFrame, **layer_kwargs: Any) -> Validation:
    """`lut`'s held-out figures recomputed from a per-network validation table it wrote (`NAME.validation.csv`:
    the networks and each process's time), with the recorded conditions; nothing is measured or saved."""
    rows = table[table["space"] == space.name] if "space" in table.columns else table
    columns = sorted((c for c in rows.columns if c.startswith("process") and c.endswith("_ms")), key=lambda c: int(c[7:-3]))
    if len(rows) < 2 or not columns:
        raise LUTError(f"LUT {lut.name}: its validation table holds no per-process times of {space.name} networks to recompute figures from")
    archs = [space.from_string(a) for a in rows["arch"]]
    old = dict(lut.meta.get("validation", {}).get(space.name, {}))
    conditions = {k: v for k, v in old.items() if k not in FIGURE_KEYS and k not in ("date", "process_spread_pct")}
    conditions["measured"] = old.get("date")
    return record_validation(lut, space, archs, rows[columns].to_numpy(float).T, conditions, save=False, **layer_kwargs)
