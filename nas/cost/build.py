"""Build a latency LUT on this machine: time every operator a space can produce, through one backend.

Why this recipe: a network's latency through a backend is (a fixed per-call cost) + (for each operator:
its kernel + the framework's per-operator overhead). Timing each operator alone measures kernel + the
whole fixed cost, so summing raw per-operator times counts the fixed cost once per operator (for ONNX
Runtime on NB201 raw sums were 1.8x the measured networks, median over 80 archs; 1.34x after the
correction below). So each process also times the cheapest real operator (`null`,
the fixed cost) and a chain of them (the per-operator overhead), and a LUT row holds
`operator - null + per_op`, with an `intercept` row of `null - per_op`. Operators that compilers fold
into their producer (BatchNorm after a conv) are timed as the marginal cost of appending them to it.
Every operator figure is the median over several fresh processes of a per-process figure (the minimum of many
short batched samples by default, see `DEFAULT_TIMING`; `run_fresh` says why fresh processes).

An optional calibration (`calibrate=N`) measures N random whole networks and fits what the sum still
misses (see `nas.cost.validate.calibrate_lut`); those archs are recorded in the sidecar and
`validate_lut` never validates on them.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas.cost.lut import INTERCEPT, LUT
from nas.cost.machine import cpu_info, fingerprint
from nas.cost.measure import backends
from nas.cost.measure._fresh import run_fresh
from nas.cost.measure._jobs import CHAIN, CLOCKS, STATISTICS, time_archs, time_signatures
from nas.spaces.base import Arch, LayerSignature, SearchSpace

Progress = Callable[[int, int], None]

#: Archs sampled from a space too large to enumerate.
SAMPLED_ARCHS = 20_000
#: Timing used unless a caller overrides it: `time_runner` settings, the per-process `statistic` and the
#: `clock` ("auto": the thread's CPU time with 1 thread, wall time otherwise).
#: Why CPU time and the minimum of many 2 ms samples: cores here are shared, and a wall-clock sample is
#: stretched by every slice another process runs. At a load average of 5-7 on 2 cores, a 16-channel 3x3
#: conv read 165-187 us as the median of 20 ms wall-clock samples, 90-98 us as the median of thread CPU
#: time (cache pollution remains), and 82-85 us as the minimum of 50 CPU-time samples of 2 ms, its
#: quiet-machine time, in each of 4-5 processes. A whole NB201 network (torch) read 15-20 ms wall-clock
#: against 7.0-7.5 ms CPU time. On a quiet machine median and minimum differ by 1-2 %.
#: Why 200 samples of ~0.5 ms and `across` = "min" (how a whole network's per-process figures combine):
#: other jobs on the two cores inflate CPU time too (caches, memory bandwidth), and a short sample more
#: often runs between two of their slices. At load 8-9, 12 NB201 networks through ONNX Runtime, 3 fresh
#: processes each: with 50 samples of 2 ms the processes differed by a median 13 % (max 59 %) and their
#: median missed this machine's LUT by more than 10 % for 5 of 12 networks (their minimum for none);
#: with 200 samples of 0.5 ms they differed by 2.7 % (max 30 %), and median and minimum missed none.
#: Operator rows stay the median of processes: each is a difference of two per-process figures.
DEFAULT_TIMING: dict[str, Any] = {"warmup": 10, "repeats": 200, "target_s": 0.0005, "statistic": "min", "clock": "auto", "across": "min"}
#: How per-process figures of a whole network combine (older sidecars without `across` mean "median").
ACROSS = ("median", "min")


def distinct_signatures(
    space: SearchSpace, archs: Sequence[Arch] | None = None, *, seed: int = 0, **layer_kwargs: Any
) -> list[LayerSignature]:
    """Every distinct operator signature of `archs` (default: all of a finite space), sorted by key.

    A space too large to list (`space.can_list()`) is covered by `SAMPLED_ARCHS` random archs drawn
    with `seed`; a LUT built from them may miss a rare signature, which `LUT.predict` then names.
    """
    if archs is None:
        archs = _coverage_archs(space, seed)
    found: set[LayerSignature] = set()
    for arch in archs:
        found.update(space.layers(arch, **layer_kwargs))
    return sorted(found, key=LayerSignature.key)


def _coverage_archs(space: SearchSpace, seed: int) -> Sequence[Arch]:
    if space.can_list():
        return space.enumerate()
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(SAMPLED_ARCHS)]


def _coverage_text(space: SearchSpace, archs: Sequence[Arch] | None) -> str:
    if archs is not None:
        return f"{len(archs)} given archs"
    return f"all {space.size} archs" if space.can_list() else f"{SAMPLED_ARCHS} sampled archs"


# --- the machine ------------------------------------------------------------------------------------
def load_average() -> list[float] | None:
    """1, 5 and 15-minute load averages (None where the OS does not say)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def timing_settings(timing: Mapping[str, Any] | None, threads: int = 1) -> dict[str, Any]:
    """`DEFAULT_TIMING` updated by `timing`, checked, with the clock resolved for `threads`."""
    settings = {**DEFAULT_TIMING, **(timing or {})}
    unknown = sorted(set(settings) - {"warmup", "repeats", "target_s", "number", "statistic", "clock", "across"})
    if unknown:
        raise ValueError(f"unknown timing setting(s) {unknown}; expected warmup, repeats, target_s, number, statistic, clock, across")
    if settings["across"] not in ACROSS:
        raise ValueError(f"unknown timing setting across={settings['across']!r}; expected one of {list(ACROSS)}")
    if settings["statistic"] not in STATISTICS:
        raise ValueError(f"unknown timing statistic {settings['statistic']!r}; expected one of {list(STATISTICS)}")
    if settings["clock"] == "auto":
        settings["clock"] = "thread" if threads == 1 else "wall"
    if settings["clock"] not in CLOCKS:
        raise ValueError(f"unknown timing clock {settings['clock']!r}; expected auto or one of {list(CLOCKS)}")
    if settings["clock"] == "thread" and threads != 1:
        raise ValueError(f"the thread CPU-time clock only measures single-threaded runs; use clock 'wall' with threads={threads}")
    return settings


def _check_args(backend: str, processes: int, threads: int) -> Any:
    if processes < 1:
        raise ValueError(f"processes must be >= 1, got {processes}")
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    return backends.get(backend)()


def _progress_counter(progress: Progress | None, total: int) -> Callable[[int], None]:
    """A `tick(n)` that counts items done and reports `progress(done, total)`."""
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    return tick


# --- whole networks ---------------------------------------------------------------------------------
def measure_archs(
    space: SearchSpace,
    archs: Sequence[Arch],
    backend: str,
    *,
    processes: int = 3,
    threads: int = 1,
    timing: Mapping[str, Any] | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    **layer_kwargs: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """End-to-end latency (ms) of each arch: the timing's `across` ("min" or "median") over `processes`
    fresh processes of per-process figures.

    Returns `(median, per_process)` with shapes `n_archs` and `processes x n_archs`.
    """
    _check_args(backend, processes, threads)
    strings = [space.to_string(a) for a in archs]
    tick = _progress_counter(progress, processes * len(strings))
    settings = timing_settings(timing, threads)
    rows = [
        run_fresh(time_archs, (space, strings, backend, threads, settings, seed * 1000 + p, dict(layer_kwargs)), on_tick=tick)
        for p in range(processes)
    ]
    per_process = np.array(rows, dtype=float).reshape(processes, len(strings))
    combined = per_process.min(axis=0) if settings["across"] == "min" else np.median(per_process, axis=0)
    return combined, per_process


# --- the LUT ----------------------------------------------------------------------------------------
def _spread(values: Sequence[float]) -> dict[str, float]:
    return {
        "latency_ms": max(statistics.median(values), 0.0),
        "std_ms": statistics.pstdev(values) if len(values) > 1 else 0.0,
        "min_ms": min(values),
        "max_ms": max(values),
        "n": len(values),
    }


def table_from_runs(space_name: str, signatures: Sequence[LayerSignature], runs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """LUT rows from per-process operator timings (the dicts `time_signatures` returns).

    Per process, a row's value is `delta + per_op` (`delta` alone for folded operators, whose marginal
    cost already holds their overhead) and the intercept's `null - per_op`; `latency_ms` is the median
    over processes (clipped at 0), `std_ms`/`min_ms`/`max_ms` their spread and `n` their number.
    """
    from nas.cost.measure.ops import producer_for

    rows = [{"space": space_name, "key": INTERCEPT, **_spread([r["null"] - r["per_op"] for r in runs])}]
    for sig in signatures:
        key = sig.key()
        folded = producer_for(sig) is not None
        rows.append({"space": space_name, "key": key, **_spread([r["delta"][key] + (0.0 if folded else r["per_op"]) for r in runs])})
    return pd.DataFrame(rows, columns=["space", "key", "latency_ms", "std_ms", "min_ms", "max_ms", "n"])


def build_lut(
    space: SearchSpace,
    backend: str,
    *,
    processes: int = 3,
    threads: int = 1,
    dataset: str | None = None,
    archs: Sequence[Arch] | None = None,
    device: str | None = None,
    timing: Mapping[str, Any] | None = None,
    calibrate: int = 0,
    calibration_model: str = "scale",
    seed: int = 0,
    progress: Progress | None = None,
    layer_options: Mapping[str, Any] | None = None,
) -> LUT:
    """Measure every distinct signature of `space` (or of `archs`) through `backend` on this machine.

    Args:
        space: the search space; only its `layers()` are timed (and `build()` when calibrating).
        backend: a name registered in `nas.cost.measure.backends` ("torch", "onnxruntime", ...).
        processes: fresh processes, run one after the other; each figure is their median.
        threads: intra-op threads of the backend.
        dataset: passed to `space.layers`/`space.build` (input size, classes).
        archs: restrict the LUT to the signatures of these archs (default: the whole space).
        device: name recorded in the sidecar (default: the CPU model).
        timing: overrides of `DEFAULT_TIMING` (`warmup`, `repeats`, `target_s`, `number`, `statistic`, `clock`).
        calibrate: measure this many random whole networks and fit a correction to them (0: none).
        calibration_model: "scale" or "offset" (see `nas.cost.validate.calibrate_lut`).
        seed: order of measurement inside processes, and the calibration archs.
        progress: called as `progress(done, total)` after each timed item.
        layer_options: how `space.layers` lists an arch's operators for this LUT, stored in the sidecar
            and applied wherever the LUT prices an arch (default: the backend's `layer_options`, what its
            graph optimiser leaves to run; `{}` lists every operator PyTorch runs).

    Returns:
        The LUT (not yet saved); `meta` holds provenance, `meta["build"][space.name]` the details.
    """
    backend_obj = _check_args(backend, processes, threads)
    if calibrate < 0:
        raise ValueError(f"calibrate must be >= 0 archs, got {calibrate}")
    from nas.cost.validate import CALIBRATION_MODELS

    if calibration_model not in CALIBRATION_MODELS:
        raise ValueError(f"unknown calibration model {calibration_model!r}; expected one of {list(CALIBRATION_MODELS)}")
    versions = backend_obj.versions()  # imports the backend's library here, so a missing one fails before any process starts
    layer_kwargs = {"dataset": dataset} if dataset else {}
    options = dict(backend_obj.layer_options if layer_options is None else layer_options)
    started = time.perf_counter()
    load_before = load_average()
    signatures = distinct_signatures(space, archs, seed=seed, **layer_kwargs, **options)
    settings = timing_settings(timing, threads)
    total = processes * (len(signatures) + calibrate)
    tick = _progress_counter(progress, total)
    runs = [run_fresh(time_signatures, (backend, signatures, threads, settings, seed * 1000 + p), on_tick=tick) for p in range(processes)]
    cpu = cpu_info()
    build_info: dict[str, Any] = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "dataset": dataset,
        "layer_kwargs": layer_kwargs,
        "layer_options": options,
        "coverage": _coverage_text(space, archs),
        "signatures": len(signatures),
        "processes": processes,
        "threads": threads,
        "timing": settings,
        "null_ms": [r["null"] for r in runs],
        "per_op_ms": [r["per_op"] for r in runs],
        "chain": CHAIN,
    }
    meta = {
        "device": device or cpu.get("model_name", "unknown"),
        "backend": backend,
        "kind": "measured",
        "units": "ms",
        "versions": versions,
        "threads": threads,
        "processes": processes,
        "cpu": cpu,
        "machine": fingerprint(backend, threads, cpu=cpu),
        "method": (
            "per-operator LUT: each row = operator - null + per_op (fixed call cost removed, per-operator overhead added), "
            "folded operators (bn after conv) as their marginal cost after a 1x1 conv; intercept = null - per_op; "
            "median over fresh processes of the per-process timing statistic; std/min/max across processes; latency clipped at 0"
        ),
        "build": {space.name: build_info},
    }
    lut = LUT(table_from_runs(space.name, signatures, runs), meta)
    if calibrate:
        from nas.cost.validate import calibrate_lut

        offset = len(signatures) * processes
        lut = calibrate_lut(
            lut, space, backend, n_archs=calibrate, model=calibration_model, seed=seed, processes=processes, threads=threads, timing=settings,
            progress=(lambda d, _t: progress(offset + d, total)) if progress else None, **layer_kwargs,
        )
    lut.meta["build"][space.name].update(
        seconds=round(time.perf_counter() - started, 1), load_before=load_before, load_after=load_average()
    )
    return lut


# --- saving -----------------------------------------------------------------------------------------
#: Sidecar sections keyed by space name.
PER_SPACE_META = ("build", "validation", "calibration")


def save_built(lut: LUT, out: str | Path, *, overwrite: bool = False) -> Path:
    """Write a built LUT to `out`, keeping rows (and figures) of other spaces already there.

    A file may hold several spaces only when they were measured the same way (backend, threads). Rows of
    a space it replaces (`overwrite`) move, with their machine, build, calibration and validation, to
    the sidecar's `history`, after the file's earlier history.
    """
    from nas.cost.calibrate import history_entry
    from nas.cost.lut import LUTError

    out = Path(out)
    table, meta = lut.table, dict(lut.meta)
    if out.exists():
        old = LUT.load(out)
        new_spaces = sorted(set(table["space"]))
        clash = [s for s in new_spaces if s in old.spaces]
        if clash and not overwrite:
            raise LUTError(f"{out} already holds {clash[0]} rows; pass --overwrite to replace them or choose another --out")
        for key in ("backend", "threads"):
            if old.meta.get(key) is not None and old.meta.get(key) != meta.get(key):
                raise LUTError(f"{out} holds {key}={old.meta.get(key)!r} measurements, not {meta.get(key)!r}; choose another --out")
        table = pd.concat([old.table[~old.table["space"].isin(new_spaces)], table], ignore_index=True)
        for key in PER_SPACE_META:
            kept = {s: v for s, v in dict(old.meta.get(key, {})).items() if s not in new_spaces}
            meta[key] = {**kept, **meta.get(key, {})}
        replaced = [{**history_entry(old, s), "reason": "rebuilt"} for s in clash]
        history = [*old.meta.get("history", []), *replaced, *meta.get("history", [])]
        if history:
            meta["history"] = history
    result = LUT(table.reset_index(drop=True), meta)
    result.save(out)
    return out
