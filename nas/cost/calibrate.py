"""Carry a LUT measured on one machine over to this one: measure a few networks here, refit, keep the past.

Why: a LUT built on another machine (or with other settings) ranks networks well but misses their
latency by a machine-wide factor and by per-operator shifts (another vector width changes convs more
than adds). Re-measuring every operator is what `nas lut build` does; `calibrate_here` instead measures
`n_archs` whole networks (10 take about a minute with ONNX Runtime) and fits one of `TRANSFER_MODELS`
to them, relative error weighted so small and large networks count alike:

- "scale": every row (operators, intercept, terms) times one factor `s`; the rank order stays.
- "affine": `s` times every row plus a constant `a` added to the intercept.
- "types": one factor per operator type (convs by kernel, as `nas.cost.validate.calibration_group`)
  plus one for the rest (intercept, terms), each pulled towards a shared factor with weight `PRIOR`:
  the old costs are the prior (their ratios stay unless the networks say otherwise), which is what
  nn-Meter-style kernel refits do with few samples.

The result keeps the old figures: the sidecar's `history` gains the previous machine's fingerprint,
build date, calibration, validation and per-row costs; `machine` and `cpu` become this machine's;
`calibration[space]` says what was fitted on which networks (never drawn again by `validate_lut`), and
`validation[space]`, held-out figures of another machine, moves to history until `nas lut validate`
(or `calibrate --validate N`) measures fresh networks here.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from nas.cost.build import load_average, measure_archs, timing_settings
from nas.cost.lut import INTERCEPT, LUT, LUTError
from nas.cost.machine import cpu_info, fingerprint, recorded_fingerprint
from nas.cost.measure._fresh import run_fresh
from nas.cost.measure._jobs import time_signatures
from nas.cost.validate import ROBUST_SCALE, _check_backend, _layer_kwargs, _sums_by_op, accuracy_figures, calibration_group, random_archs, used_archs
from nas.spaces.base import Arch, SearchSpace

Progress = Callable[[int, int], None]

#: Models `fit_transfer` knows (see the module docstring).
TRANSFER_MODELS = ("scale", "affine", "types")
#: Weight of "each type's factor equals the shared factor" against the networks' relative errors ("types").
PRIOR = 0.01
#: Group of rows that are not operators (intercept, topology terms).
REST = "rest"
#: Key of the shared (machine-wide) factor among the fitted factors; it also prices a call that runs nothing.
SHARED = "shared"


def _group(key: str) -> str:
    return REST if key == INTERCEPT or key.startswith("term:") else calibration_group(key)


def _relative_fit(design: np.ndarray, measured: np.ndarray, start: np.ndarray, prior_rows: np.ndarray | None = None) -> np.ndarray:
    """Parameters x minimising soft-L1 (beyond `ROBUST_SCALE`, shared with `nas lut build --calibrate`: one odd network
    must not bend the rest) of (design @ x - measured) / measured, plus `prior_rows @ x` as extra residuals."""
    weight = 1.0 / measured

    def residuals(x: np.ndarray) -> np.ndarray:
        data = (design @ x - measured) * weight
        return data if prior_rows is None else np.concatenate([data, prior_rows @ x])

    return least_squares(residuals, start, loss="soft_l1", f_scale=ROBUST_SCALE).x


def fit_transfer(
    lut: LUT, space: SearchSpace, archs: Sequence[Arch], measured: np.ndarray, *, model: str = "types", prior: float = PRIOR, **layer_kwargs: Any
) -> tuple[dict[str, float], float]:
    """Per-group factors (`REST` and operator groups) and an added intercept (ms) that fit `measured` (`n_archs`, ms).

    `prior` (model "types") weighs each type's pull towards the shared factor against the networks.
    """
    if model not in TRANSFER_MODELS:
        raise ValueError(f"unknown calibration model {model!r}; expected one of {list(TRANSFER_MODELS)}")
    measured = np.asarray(measured, dtype=float)
    if measured.shape != (len(archs),) or not np.all(measured > 0):
        raise ValueError(f"need one positive latency (ms) per arch, got shape {measured.shape} for {len(archs)} archs")
    predicted = lut.predict(space, archs, **layer_kwargs)
    s0 = float(np.median(measured / predicted))
    if model == "scale":
        (s,) = _relative_fit(predicted[:, None], measured, np.array([s0]))
        return {SHARED: float(s), REST: float(s), **{g: float(s) for g in _groups(lut, space)}}, 0.0
    if model == "affine":
        s, a = _relative_fit(np.column_stack([predicted, np.ones(len(archs))]), measured, np.array([s0, 0.0]))
        return {SHARED: float(s), REST: float(s), **{g: float(s) for g in _groups(lut, space)}}, float(a)
    groups, sums, _ = _sums_by_op(lut, space, archs, layer_kwargs)
    design = np.column_stack([predicted - sums.sum(axis=1), sums])  # REST first, then each group's sum
    names = [REST, *groups]
    # Parameters: one factor per column, then the shared factor; prior rows pull each towards the shared one.
    prior_rows = np.sqrt(prior) * np.column_stack([np.eye(len(names)), -np.ones(len(names))])
    x = _relative_fit(np.column_stack([design, np.zeros(len(archs))]), measured, np.full(len(names) + 1, s0), prior_rows)
    shared = float(x[-1])
    factors = {name: max(float(v), 0.0) for name, v in zip(names, x[:-1])}
    return {SHARED: shared, **{g: shared for g in _groups(lut, space)}, **factors}, 0.0


def _groups(lut: LUT, space: SearchSpace) -> list[str]:
    return sorted({_group(k) for k in lut.costs(space.name)})


def apply_transfer(lut: LUT, space: str, factors: Mapping[str, float], added_ms: float = 0.0) -> pd.DataFrame:
    """`lut`'s table with each of `space`'s rows times its group's factor and `added_ms` on the intercept."""
    table = lut.table.copy()
    rows = table["space"] == space
    factor = table.loc[rows, "key"].map(lambda k: factors.get(_group(k), factors.get(REST, 1.0))).astype(float)
    for column in ("latency_ms", "std_ms", "min_ms", "max_ms"):
        if column in table.columns:
            table.loc[rows, column] = table.loc[rows, column].astype(float) * factor
    if added_ms:
        if not (rows & (table["key"] == INTERCEPT)).any():
            table = pd.concat([table, pd.DataFrame([{"space": space, "key": INTERCEPT, "latency_ms": 0.0}])], ignore_index=True)
            rows = table["space"] == space
        table.loc[rows & (table["key"] == INTERCEPT), "latency_ms"] += added_ms
    return table


def history_entry(lut: LUT, space: str) -> dict[str, Any]:
    """What the LUT said about `space` before a calibration, refit or rebuild replaces it: its machine, build,
    calibration (with its networks), figures and costs, for the sidecar's `history`."""
    meta = lut.meta
    return {
        "superseded": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "space": space,
        "device": meta.get("device"),
        "sha256": meta.get("sha256", lut.digest()),
        "machine": recorded_fingerprint(meta),
        "build_date": meta.get("build", {}).get(space, {}).get("date"),
        "timing": meta.get("build", {}).get(space, {}).get("timing"),
        "calibration": {k: v for k, v in meta.get("calibration", {}).get(space, {}).items()},
        "validation": meta.get("validation", {}).get(space),
        "latency_ms": lut.costs(space),
        "null_ms": meta.get("build", {}).get(space, {}).get("null_ms"),
    }


def calibrated_lut(lut: LUT, space: SearchSpace, archs: Sequence[Arch], measured: np.ndarray, *, model: str = "types", **layer_kwargs: Any) -> LUT:
    """A new LUT: `lut` refitted to `measured` (`n_archs`, ms, on this machine), its past kept under `history`."""
    factors, added = fit_transfer(lut, space, archs, measured, model=model, **layer_kwargs)
    before = lut.predict(space, archs, **layer_kwargs)
    meta = copy.deepcopy(lut.meta)
    meta.setdefault("history", []).append(history_entry(lut, space.name))
    meta.pop("sha256", None)
    build = meta.setdefault("build", {}).setdefault(space.name, {})
    if isinstance(build.get("null_ms"), list):  # a call that runs nothing: the machine-wide factor, not the intercept's
        build["null_ms"] = [v * factors[SHARED] for v in build["null_ms"]]
    here = fingerprint(meta.get("backend"), meta.get("threads"), cpu=cpu_info())
    meta["machine"], meta["cpu"] = here, here["cpu"]
    result = LUT(apply_transfer(lut, space.name, factors, added), meta, lut.path)
    after = result.predict(space, archs, **layer_kwargs)
    meta.setdefault("validation", {}).pop(space.name, None)
    meta.setdefault("calibration", {})[space.name] = {
        "kind": "transfer",
        "model": model,
        "factors": factors,
        "intercept_added_ms": added,
        "n_archs": len(archs),
        "archs": [space.to_string(a) for a in archs],
        "measured_ms": [float(v) for v in measured],
        "before": accuracy_figures(before, np.asarray(measured, dtype=float)),
        "after_in_sample": accuracy_figures(after, np.asarray(measured, dtype=float)),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return result


def calibrate_here(
    lut: LUT,
    space: SearchSpace,
    backend: str,
    *,
    n_archs: int = 10,
    model: str = "types",
    seed: int = 0,
    processes: int = 3,
    threads: int = 1,
    dataset: str | None = None,
    timing: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
) -> LUT:
    """Measure `n_archs` random networks (drawn with `seed`, never ones the LUT was fitted or calibrated on)
    through `backend` here and return `calibrated_lut` of them. Nothing is written.

    Raises:
        LUTError: `backend` or `threads` differ from the LUT's (its operators were timed with those).
    """
    if model not in TRANSFER_MODELS:
        raise ValueError(f"unknown calibration model {model!r}; expected one of {list(TRANSFER_MODELS)}")
    lut.check_space(space)
    if lut.meta.get("backend") is None:
        raise LUTError(f"LUT {lut.name} records no backend (kind {lut.meta.get('kind')!r}); only a LUT measured with `nas lut build` can be calibrated here")
    _check_backend(lut, backend, threads, verb="calibrate")
    layer_kwargs = _layer_kwargs(lut, space, dataset)
    archs = random_archs(space, n_archs, seed, exclude=used_archs(lut, space.name))
    lut.predict(space, archs, **layer_kwargs)  # a missing signature fails here, before measuring
    # Today's default timing, not the LUT's: the refit absorbs how its operators were timed, and networks
    # here are best timed the robust way; later validations time them the same way (build timing updated).
    settings = timing_settings(timing, threads)
    load_before = load_average()
    measured, per_process = measure_archs(
        space, archs, backend, processes=processes, threads=threads, timing=settings, seed=seed, progress=progress, **layer_kwargs,
    )
    result = calibrated_lut(lut, space, archs, measured, model=model, **layer_kwargs)
    # A network that runs nothing costs one call of the backend here; calls do not scale like kernels (ORT:
    # 1.6x from Zen 5 to Zen 4 where networks took 2.5x), so it is timed, not scaled (a few seconds).
    nulls = [run_fresh(time_signatures, (backend, [], threads, settings, seed * 1000 + p))["null"] for p in range(processes)]
    result.meta["build"][space.name].update(timing=settings, null_ms=nulls)
    result.meta["calibration"][space.name].update(
        seed=seed, processes=processes, timing=settings, load_before=load_before, load_after=load_average(), per_process_ms=per_process.tolist()
    )
    return result
