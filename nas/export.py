"""Take a found network away: a PyTorch program, an ONNX model or a TVM library, each checked and timed.

Why one module for all three: an export is only useful if it is the network the search scored, with the
weights its accuracy came from, and if it runs as fast as the search assumed. So every export
- picks the architecture from the run store (`--rank K` on the front, or `--arch STRING`);
- takes its weights from the run: a trained trial's `state_dict`, or the provider that scored it
  (`MetricProvider.network`: a supernet's inherited weights); otherwise the network is untrained and the
  result says so;
- is compiled by the same code the measurement backends use (`nas.cost.measure`: ONNX Runtime's
  exporter and session settings, TVM's relax build with the tuning database), written atomically, read
  back from the written file, checked against PyTorch on a random input, and timed on this machine with
  1 thread by default, next to the latency the search used.

Nothing is written unless every step succeeded.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import make_readable, write_atomic

#: Export formats and the file suffix each writes.
FORMATS: dict[str, str] = {"torch": ".pt2", "onnx": ".onnx", "tvm": ".so"}
#: The measurement backend each format is timed with (one home for the compile code).
BACKEND_OF: dict[str, str] = {"torch": "torch", "onnx": "onnxruntime", "tvm": "tvm"}
#: Relative tolerance of an export's outputs against PyTorch's (scaled by the largest output).
TOLERANCE = 1e-3


class ExportError(ValueError):
    """A bad export request (rank, arch, format, output path) or an export that does not match PyTorch."""


@dataclass(frozen=True)
class Selection:
    """The architecture an export takes: its string, trial number (None if the run never evaluated it),
    the run's metrics of it, and where its weights come from (a run-relative file or None)."""

    arch: str
    trial: int | None
    metrics: dict[str, float]
    weights_file: str | None = None


@dataclass(frozen=True)
class ExportResult:
    """What `export_run` wrote and measured.

    `latency_ms` is the minimum over batched samples (the statistic the LUTs use), `latency_median_ms`
    the median; `search_latency` holds the latency metrics the search used for this architecture,
    `lut_latency` the predictions of further LUTs asked for (`luts`), both in ms.
    """

    path: str
    format: str
    space: str
    arch: str
    trial: int | None
    weights: str
    input_shape: tuple[int, ...]
    threads: int
    latency_ms: float
    latency_median_ms: float
    max_abs_diff: float
    search_latency: dict[str, float] = field(default_factory=dict)
    lut_latency: dict[str, float] = field(default_factory=dict)
    backend: dict[str, str] = field(default_factory=dict)

    @property
    def trained(self) -> bool:
        return not self.weights.startswith("untrained")

    def lines(self) -> list[str]:
        """What `nas export` prints: the file, the weights, and latency here next to the search's."""
        out = [
            f"wrote {self.path} ({self.format}; {self.space} {self.arch})",
            f"weights: {self.weights}",
            f"checked against PyTorch: max |difference| {self.max_abs_diff:.3g} on a random input of shape {list(self.input_shape)}",
            f"latency here ({BACKEND_OF[self.format]}, {self.threads} thread{'s' if self.threads > 1 else ''}): "
            f"{self.latency_ms:.4g} ms (min; median {self.latency_median_ms:.4g} ms)",
        ]
        out += [f"latency the search used: {metric} = {value:.4g} ms" for metric, value in self.search_latency.items()]
        out += [f"latency predicted by LUT {name}: {value:.4g} ms" for name, value in self.lut_latency.items()]
        return out


# --- choosing the architecture -------------------------------------------------------------------------------


def ordered_front(run: Any) -> tuple[str, Any]:
    """The run's candidates best-first, and how they are ordered.

    Scalarized and lexicographic runs order by their mode (`Run.ranked`); a Pareto run's front is ordered
    by its first objective, best first (ties by the next objectives).
    """
    ranked = run.ranked()
    if ranked is not None:
        column, frame = ranked
        return f"{run.config.mode} mode ({column})", frame
    front = run.pareto()
    names = list(run.objectives.names)
    ascending = [obj.direction == "min" for obj in run.objectives.objectives]
    order = f"Pareto front by {names[0]} ({'lowest' if ascending[0] else 'highest'} first)"
    return order, front.sort_values(names, ascending=ascending, kind="stable").reset_index(drop=True)


def select(run: Any, *, rank: int | None = None, arch: str | None = None) -> Selection:
    """The architecture at 1-based `rank` of `ordered_front(run)`, or the one `arch` names."""
    if (rank is None) == (arch is None):
        raise ExportError("give exactly one of --rank K (place on the run's front) or --arch STRING")
    trials = run.trials()
    metric_columns = [c for c in trials.columns if c not in ("trial", "arch", "feasible", "weights", "accuracy_source")]
    if rank is not None:
        order, frame = ordered_front(run)
        if frame.empty:
            raise ExportError(f"run {run.directory} has no feasible architecture to export yet")
        if not 1 <= rank <= len(frame):
            raise ExportError(f"--rank {rank} is outside the {order} of run {run.directory}, which holds {len(frame)} architectures (1-{len(frame)})")
        text = str(frame.iloc[rank - 1]["arch"])
    else:
        text = run.space.to_string(run.space.from_string(str(arch)))
    rows = trials[trials["arch"] == text]
    if rows.empty:
        return Selection(text, None, {})
    row = rows.iloc[0]
    metrics = {c: float(row[c]) for c in metric_columns if isinstance(row[c], (int, float, np.number)) and np.isfinite(row[c])}
    weights = row.get("weights") if "weights" in rows.columns else None
    weights = str(weights) if isinstance(weights, str) and weights else None
    return Selection(text, int(row["trial"]), metrics, weights)


# --- the network with its weights ----------------------------------------------------------------------------


def input_spec_of(run: Any) -> Any:
    """The input the run's networks take: the data an accuracy provider trains or scores on, else the
    space's reference input (the one tables and LUTs were measured with)."""
    providers = run.providers
    for provider in sorted(providers.values(), key=lambda p: p.metric != "accuracy"):
        if getattr(provider, "input_spec", None) is not None:
            return provider.input_spec
    return run.space.input_spec(run.config.dataset)


def network_of(run: Any, selection: Selection, *, seed: int = 0) -> tuple[Any, tuple[int, ...], str]:
    """(module in eval mode, input shape, where its weights come from) for the selected architecture."""
    import torch

    from nas.accuracy.training import build_initialised

    space = run.space
    arch = space.from_string(selection.arch)
    spec = input_spec_of(run)
    size = space.input_size(arch)
    shape = (1, spec.channels, size or spec.height, size or spec.width)
    if selection.weights_file is not None:
        path = run.directory / selection.weights_file
        module = space.build(arch, spec)
        module.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return module.eval(), shape, f"trained: {path} (trial {selection.trial})"
    for metric, provider in run.providers.items():
        module = provider.network(arch)
        if module is not None:
            spec = run.config.accuracy if metric == "accuracy" else metric
            return module.eval(), shape, f"inherited: the weights {metric} was scored with ({spec})"
    module = build_initialised(space, arch, spec, seed)
    return module.eval(), shape, f"untrained (the run keeps no weights for this architecture: initial weights from seed {seed})"


# --- writing one format --------------------------------------------------------------------------------------


def _require_format(fmt: str) -> None:
    """Fail before any work when the format's optional library is missing (naming the install command)."""
    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; expected one of {list(FORMATS)}")
    if fmt == "onnx":
        from nas.cost.measure._onnxruntime import _require

        _require("onnx")
        _require("onnxruntime")
    elif fmt == "tvm":
        from nas.cost.measure._tvm import _require_tvm

        _require_tvm()


def _as_numpy(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach"):  # a torch tensor
        return value.detach().numpy()
    return np.asarray(value.numpy())  # an ONNX Runtime or TVM value


def _outputs(value: Any) -> list[np.ndarray]:
    """A network's outputs as a list of arrays, whether it returned one tensor or several."""
    if isinstance(value, (list, tuple)):
        return [_as_numpy(v) for v in value]
    return [_as_numpy(value)]


def _write_torch(backend: Any, module: Any, inputs: tuple[Any, ...], tmp: Path, threads: int) -> tuple[Callable[[], Any], Any]:
    import torch

    with torch.no_grad():
        torch.export.save(torch.export.export(module, inputs), tmp)
    loaded = torch.export.load(tmp).module()
    runner = backend.compile(loaded, inputs, threads=threads)
    return runner, runner()


def _write_onnx(backend: Any, module: Any, inputs: tuple[Any, ...], tmp: Path, threads: int) -> tuple[Callable[[], Any], Any]:
    from nas.cost.measure._onnxruntime import export_onnx

    tmp.write_bytes(export_onnx(module, inputs))
    runner = backend.runner(backend.session(str(tmp), threads=threads), inputs)
    return runner, runner()


def _write_tvm(backend: Any, module: Any, inputs: tuple[Any, ...], tmp: Path, threads: int) -> tuple[Callable[[], Any], Any]:
    import tvm

    backend.build(module, inputs, threads=threads).export_library(str(tmp))
    runner = backend.runner(tvm.runtime.load_module(str(tmp)), inputs, threads=threads)
    return runner, runner.numpy()


_WRITERS: dict[str, Callable[[Any, Any, tuple[Any, ...], Path, int], tuple[Callable[[], Any], Any]]] = {
    "torch": _write_torch,
    "onnx": _write_onnx,
    "tvm": _write_tvm,
}


def output_path(out: str | Path, fmt: str) -> Path:
    """`out` with the format's suffix added when it has none; another suffix is refused (one line)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"-o {out} is a folder; expected a file name ending in {FORMATS[fmt]}")
    if not out.suffix:
        return out.with_name(out.name + FORMATS[fmt])
    if out.suffix != FORMATS[fmt]:
        raise ExportError(f"-o {out}: --format {fmt} writes a {FORMATS[fmt]} file, got suffix {out.suffix!r}")
    return out


def export_module(
    module: Any, input_shape: Sequence[int], fmt: str, out: str | Path, *, threads: int = 1, seed: int = 0, tune_trials: int | None = None
) -> dict[str, Any]:
    """Write `module` as `fmt` to `out` (atomically), read it back, check it against PyTorch, time it.

    `tune_trials` (TVM only) tunes the network's kernels the tuning database lacks before building
    (default `$NAS_TVM_TUNE_TRIALS` or 0: untuned TVM is many times slower than tuned).

    Returns `latency_ms` (min), `latency_median_ms`, `max_abs_diff` and the backend's `versions()`.
    Raises ExportError (and writes nothing) when the written file's outputs differ from PyTorch's.
    """
    import torch

    from nas.cost.build import timing_settings
    from nas.cost.measure import backends, time_runner
    from nas.cost.measure._jobs import CLOCKS

    _require_format(fmt)
    out = output_path(out, fmt)
    x = torch.randn(*input_shape, generator=torch.Generator().manual_seed(seed))
    module.eval()
    with torch.no_grad():
        expected = _outputs(module(x))
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=out.suffix, dir=out.parent)
    os.close(handle)
    tmp = Path(name)
    try:
        backend = backends.get(BACKEND_OF[fmt])(**({"tune_trials": tune_trials} if fmt == "tvm" and tune_trials is not None else {}))
        runner, first = _WRITERS[fmt](backend, module, (x,), tmp, threads)
        got = _outputs(first)
        diff = max(float(np.max(np.abs(g - e))) for g, e in zip(got, expected)) if got else float("inf")
        scale = max(1.0, max(float(np.max(np.abs(e))) for e in expected))
        if len(got) != len(expected) or not diff <= TOLERANCE * scale:
            raise ExportError(f"the exported {fmt} network differs from PyTorch by {diff:.3g} (tolerance {TOLERANCE * scale:.3g}); nothing written")
        settings = timing_settings(None, threads)
        settings.pop("statistic")
        settings.pop("across")  # one process here: nothing to combine
        clock = CLOCKS[settings.pop("clock")]
        timing = time_runner(runner, clock=clock, **settings)
        make_readable(tmp)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "latency_ms": timing.min_ms,
        "latency_median_ms": timing.median_ms,
        "max_abs_diff": diff,
        "backend": backend.versions(),
    }


# --- the whole export ----------------------------------------------------------------------------------------


def _latency_metrics(run: Any, selection: Selection, luts: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """The search's latency of the arch (from its trial, else priced by the run's providers) and that of
    further LUTs / device tables named in `luts`."""
    from nas.run.providers import resolve_provider

    arch = run.space.from_string(selection.arch)
    latency = [m for m in run.objectives.metrics if m.startswith("latency@")]
    used = {m: selection.metrics[m] for m in latency if m in selection.metrics}
    for metric in latency:
        if metric not in used:
            used[metric] = float(run.providers[metric].evaluate([arch])[0])
    predicted = {}
    for name in luts:
        metric = name if name.startswith("latency@") else f"latency@{name}"
        predicted[metric.removeprefix("latency@")] = float(resolve_provider(metric, run.space, run.config).evaluate([arch])[0])
    return used, predicted


def export_run(
    run_dir: str | Path,
    fmt: str,
    out: str | Path,
    *,
    rank: int | None = None,
    arch: str | None = None,
    threads: int = 1,
    luts: Sequence[str] = (),
    tune_trials: int | None = None,
) -> ExportResult:
    """Export one architecture of a run (see the module docstring); writes `out` and `out` + `.json`.

    Args:
        run_dir: a run directory made by `nas search`.
        fmt: `torch` (a `torch.export` program: `torch.export.load(path).module()`), `onnx` or `tvm`
            (a shared library: `tvm.runtime.load_module` + `relax.VirtualMachine`).
        out: the file to write; its JSON sidecar records arch, weights, input shape and latencies.
        rank: 1-based place on the run's front (`ordered_front`), or
        arch: an architecture string of the run's space (need not have been evaluated).
        threads: threads the export is timed with (1: the setting LUTs are measured with).
        luts: further devices / LUT names (`epyc_zen5__onnxruntime`) whose predicted latency to print.
        tune_trials: TVM only: MetaSchedule trials per kernel the tuning database lacks (see `export_module`).
    """
    from nas.run import load_run

    if threads < 1:
        raise ExportError(f"--threads must be >= 1, got {threads}")
    _require_format(fmt)
    output_path(out, fmt)
    run = load_run(run_dir)
    selection = select(run, rank=rank, arch=arch)
    search_latency, lut_latency = _latency_metrics(run, selection, luts)
    module, shape, weights = network_of(run, selection, seed=run.config.seed or 0)
    out = output_path(out, fmt)
    measured = export_module(module, shape, fmt, out, threads=threads, tune_trials=tune_trials)
    result = ExportResult(
        path=str(out),
        format=fmt,
        space=run.space.name,
        arch=selection.arch,
        trial=selection.trial,
        weights=weights,
        input_shape=tuple(shape),
        threads=threads,
        search_latency=search_latency,
        lut_latency=lut_latency,
        **measured,
    )
    record = {**asdict(result), "run": str(Path(run_dir).resolve()), "metrics": selection.metrics}
    write_atomic(Path(f"{out}.json"), json.dumps(record, indent=2, default=str))
    return result


def describe_formats() -> Mapping[str, str]:
    """Each format with what it writes and how to load it without nas."""
    return {
        "torch": "torch.export program (.pt2): torch.export.load(PATH).module()",
        "onnx": "ONNX model (.onnx), opset 17: onnxruntime.InferenceSession(PATH)",
        "tvm": "TVM relax library (.so) for this CPU: relax.VirtualMachine(tvm.runtime.load_module(PATH), tvm.cpu())",
    }


__all__ = [
    "BACKEND_OF",
    "FORMATS",
    "ExportError",
    "ExportResult",
    "Selection",
    "describe_formats",
    "export_module",
    "export_run",
    "network_of",
    "ordered_front",
    "output_path",
    "select",
]
