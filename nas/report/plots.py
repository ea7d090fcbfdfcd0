"""Static figures of a run (matplotlib) for papers and slides: its front, its hypervolume, its devices.

Why static figures beside the HTML report: a paper or a slide needs a PDF/SVG/PNG that looks the same
everywhere and needs no browser. Like the report, the figures read only the run store
(`nas.run.load_run`), so they work on any finished or running search, and they price nothing they do not
have to: the run's own numbers come from its trials; the whole space is priced only where it is
listable and every metric can price it cheaply (a benchmark table or a `known` cost such as a LUT).

Kinds (`KINDS`):

- `pareto`: every trial (light), the run's feasible front of its first two objectives (step line and
  markers) and the true front of the whole space where it can be computed.
- `hv`: hypervolume of the run's feasible front after each completed trial, w.r.t. the run's reference
  point, with the true front's hypervolume where it can be computed.
- `devices`: one space's fronts on several devices, one panel per device: accuracy against
  `latency@DEVICE` of the run's architectures, each device's own front highlighted, and the true front
  of the whole space on that device.

matplotlib is imported only inside these functions (`import nas` stays light); figures are built on
`matplotlib.figure.Figure` directly, which needs neither pyplot nor a display.
"""

from __future__ import annotations

import math
import os
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from nas.objectives import ObjectiveSet
    from nas.run import Run

#: The figures `plot_run` draws.
KINDS: tuple[str, ...] = ("pareto", "hv", "devices")
#: File formats `plot_run` writes, chosen by the output's suffix.
FORMATS: tuple[str, ...] = ("png", "pdf", "svg")

#: Errors that mean "this metric cannot be priced over the whole space here" (missing data, unknown
#: device, a provider that cannot be built offline): the true front is then left out, not fatal.
_UNAVAILABLE = (ValueError, KeyError, OSError, ImportError)

_TRIALS: dict[str, Any] = {"s": 10, "color": "0.6", "alpha": 0.45, "linewidths": 0}
_FRONT: dict[str, Any] = {"color": "C0", "marker": "o", "markersize": 4, "linewidth": 1.5}
_TRUE: dict[str, Any] = {"color": "C3", "linestyle": "--", "linewidth": 1.0}


# --- public API ----------------------------------------------------------------------------------------
def plot_run(run_dir: str | Path, kind: str, out: str | Path, *, devices: Sequence[str] | None = None) -> Path:
    """Draw one figure of the run in `run_dir` and write it to `out` (format from its suffix).

    Why atomic: a figure is written to a temporary file beside `out` and renamed over it, so a failed or
    interrupted plot never leaves a half-written file (nor any file at all) behind.

    Args:
        run_dir: a run directory (finished or running).
        kind: one of `KINDS` (`pareto`, `hv`, `devices`).
        out: the file to write; `.png`, `.pdf` or `.svg`.
        devices: for kind `devices` only, the devices to draw (default: every device with a latency
            source for the run's space, see `latency_devices`).

    Returns:
        `out` as a Path.

    Raises:
        ValueError: an unknown kind, format or device, `devices` given for another kind, a run without
            what the kind needs (two objectives, a reference point, an accuracy objective).
        ImportError: matplotlib is not installed.
    """
    out = Path(out)
    fmt = _format_of(out)
    _check_kind(kind, devices)
    from nas.run import load_run

    figure = figure_for(load_run(run_dir), kind, devices=devices)
    _save_atomic(figure, out, fmt)
    return out


def figure_for(run: Run, kind: str, *, devices: Sequence[str] | None = None) -> Figure:
    """The figure `plot_run` writes, unsaved (tests and notebooks inspect its artists).

    Artists carry labels: the trials scatter `trials`, the run's front `front`, the true front
    `true front`, the hypervolume curve `hypervolume`.
    """
    _check_kind(kind, devices)
    _figure_class()  # fail before pricing anything when matplotlib is missing
    if run.trials().empty:
        raise ValueError(f"run {run.directory} has no completed trial to plot yet")
    if kind == "pareto":
        return _pareto_figure(run)
    if kind == "hv":
        return _hv_figure(run)
    return _devices_figure(run, devices)


# --- checks and saving -----------------------------------------------------------------------------------
def _format_of(out: Path) -> str:
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise ValueError(f"cannot tell the figure format of {str(out)!r}; use a suffix among {', '.join('.' + f for f in FORMATS)}")
    return fmt


def _check_kind(kind: str, devices: Sequence[str] | None) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown plot kind {kind!r}; kinds: {', '.join(KINDS)}")
    if devices and kind != "devices":
        raise ValueError(f"devices apply to plot kind 'devices' only, not {kind!r}")


def _figure_class() -> type[Figure]:
    """matplotlib's Figure (no pyplot, no global state), or a one-line ImportError saying what to install."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("static plots need matplotlib: pip install matplotlib") from exc
    return Figure


def _new_figure(**kwargs: Any) -> Figure:
    return _figure_class()(layout="constrained", **kwargs)


def _save_atomic(figure: Figure, out: Path, fmt: str) -> None:
    """Write to a temporary file in `out`'s folder, then rename it over `out` (same file system)."""
    from nas._io import make_readable

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            figure.savefig(handle, format=fmt, dpi=200)
            handle.flush()
            os.fsync(handle.fileno())
        make_readable(tmp)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --- labels and fronts -------------------------------------------------------------------------------------
def _title(run: Run, detail: str) -> str:
    where = run.space.name + (f" / {run.config.dataset}" if run.config.dataset else "")
    return f"{where}: {detail}"


def _axis_label(run: Run, name: str) -> str:
    """`accuracy (max)`; `(estimate)` added where the run's provenance flags the metric as modelled."""
    direction = next((o.direction for o in run.objectives.objectives if o.metric == name), None)
    from nas.run.sources import is_estimate

    info = run.provenance().get(name, {})
    estimate = isinstance(info, Mapping) and is_estimate(info)
    return name + (f" ({direction})" if direction else "") + (" (estimate)" if estimate else "")


def _first_two(objset: ObjectiveSet) -> ObjectiveSet:
    from nas.objectives import ObjectiveSet

    if len(objset.objectives) < 2:
        raise ValueError(f"a front plot needs two objectives; this run has {objset.names}")
    return ObjectiveSet(objset.objectives[:2], objset.constraints)


def _staircase(frame: pd.DataFrame, objset: ObjectiveSet) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of a 2-objective front in user units (x = second objective, y = first), ordered so that
    `step(where="post")` draws the boundary of what the front attains."""
    names = objset.names[:2]
    points = objset.to_minimisation(frame[names].to_numpy(dtype=float))
    points = points[np.isfinite(points).all(axis=1)]
    order = np.lexsort((points[:, 0], points[:, 1]))
    user = objset.from_minimisation(points[order])
    return user[:, 1], user[:, 0]


def _draw_front(ax: Axes, frame: pd.DataFrame, objset: ObjectiveSet, label: str, style: Mapping[str, Any]) -> None:
    x, y = _staircase(frame, objset)
    ax.step(x, y, where="post", label=label, **style)


# --- pricing the whole space ----------------------------------------------------------------------------------
def _true_front_table(run: Run, metrics: Sequence[str]) -> pd.DataFrame | None:
    """Every arch of the run's space with `metrics` (`Run.space_table`), or None where that cannot be had
    here (too large, a slow metric, missing data); a source that moved since the search is warned about."""
    from nas.run import SpaceTableUnavailable

    try:
        return run.space_table(metrics)
    except SpaceTableUnavailable as exc:
        if "another source" in str(exc):
            warnings.warn(f"true front left out: {exc}", stacklevel=4)
        return None
    except _UNAVAILABLE:
        return None


# --- pareto ------------------------------------------------------------------------------------------------------
def _pareto_figure(run: Run) -> Figure:
    from nas.run import front_of

    objset = run.objectives
    two = _first_two(objset)
    trials = run.trials()
    front = run.pareto() if len(objset.names) == 2 else front_of(trials.drop_duplicates("arch"), two).frame()
    fig = _new_figure(figsize=(5.0, 3.8))
    ax = fig.add_subplot()
    y_name, x_name = two.names
    ax.scatter(trials[x_name], trials[y_name], label="trials", **_TRIALS)
    infeasible = trials[~trials["feasible"].astype(bool)] if len(trials) else trials
    if len(infeasible):
        ax.scatter(infeasible[x_name], infeasible[y_name], marker="x", s=12, color="0.35", linewidths=0.8, label="infeasible")
    _draw_front(ax, front, two, "front", _FRONT)
    whole = _true_front_table(run, objset.metrics)
    if whole is not None:
        _draw_front(ax, front_of(whole, two).frame(), two, "true front", _TRUE)
    ax.set_xlabel(_axis_label(run, x_name))
    ax.set_ylabel(_axis_label(run, y_name))
    ax.set_title(_title(run, f"{len(trials)} trials, {len(front)} on the front"), fontsize="medium")
    ax.legend(fontsize="small")
    return fig


# --- hypervolume ---------------------------------------------------------------------------------------------------
def _hv_figure(run: Run) -> Figure:
    from nas.run import front_of

    if run.reference is None:
        raise ValueError(f"run {run.directory} has no reference point (the worst of {run.objectives.names} over the space is unknown), so it has no hypervolume")
    curve = run.hypervolume_trace()
    fig = _new_figure(figsize=(5.0, 3.5))
    ax = fig.add_subplot()
    ax.step(np.arange(1, len(curve) + 1), curve, where="post", color="C0", label="hypervolume")
    whole = _true_front_table(run, run.objectives.metrics)
    if whole is not None:
        true_hv = front_of(whole, run.objectives).hypervolume(run.reference)
        ax.axhline(true_hv, label="true front", **_TRUE)
    ax.set_xlabel("completed trials")
    ax.set_ylabel("hypervolume")
    ref = run.objectives.from_minimisation(run.reference[None])[0]
    where = ", ".join(f"{n} {v:.4g}" for n, v in zip(run.objectives.names, ref))
    ax.set_title(_title(run, f"hypervolume of the front\nreference point: {where}"), fontsize="small")
    ax.legend(fontsize="small")
    return fig


# --- devices ----------------------------------------------------------------------------------------------------------
def _chosen_devices(run: Run, devices: Sequence[str] | None) -> list[str]:
    from nas.cost.lut import latency_devices

    available = latency_devices(run.space, run.config.data_dir)
    if not devices:
        if not available:
            raise ValueError(f"no device has a latency source for space {run.space.name!r}")
        return available
    chosen = [d.removeprefix("latency@") for d in devices]
    unknown = [d for d in chosen if d not in available]
    if unknown:
        raise ValueError(f"unknown device(s) {', '.join(unknown)} for space {run.space.name!r}; devices with a latency source: {', '.join(available)}")
    return list(dict.fromkeys(chosen))


def _devices_figure(run: Run, devices: Sequence[str] | None) -> Figure:
    from nas.objectives import ObjectiveSet
    from nas.run import front_of, resolve_provider

    if "accuracy" not in run.objectives.names:
        raise ValueError(f"the devices plot draws accuracy against latency; this run's objectives {run.objectives.names} have no accuracy")
    chosen = _chosen_devices(run, devices)
    space = run.space
    archs_frame = run.trials().drop_duplicates("arch").reset_index(drop=True)[["arch", "accuracy"]]
    archs = [space.from_string(s) for s in archs_frame["arch"]]
    whole = _true_front_table(run, ["accuracy"])
    everything = space.enumerate() if whole is not None else []
    ncols = min(4, len(chosen))
    nrows = math.ceil(len(chosen) / ncols)
    fig = _new_figure(figsize=(3.2 * ncols, 2.7 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax in axes[len(chosen):]:
        fig.delaxes(ax)
    for ax, device in zip(axes, chosen):
        metric = f"latency@{device}"
        provider = resolve_provider(metric, space, run.config)
        objset = ObjectiveSet.parse(["accuracy:max", f"{metric}:min"])
        frame = archs_frame.assign(**{metric: provider.evaluate(archs)})
        ax.scatter(frame[metric], frame["accuracy"], label="trials", **_TRIALS)
        _draw_front(ax, front_of(frame, objset).frame(), objset, "front", _FRONT)
        if whole is not None:
            _draw_front(ax, front_of(whole.assign(**{metric: provider.evaluate(everything)}), objset).frame(), objset, "true front", _TRUE)
        ax.set_title(device, fontsize="medium")
        ax.set_xlabel(f"{metric} (ms)", fontsize="small")
        ax.tick_params(labelsize="small")
    for ax in axes[: len(chosen) : ncols]:
        ax.set_ylabel(_axis_label(run, "accuracy"), fontsize="small")
    axes[0].legend(fontsize="x-small")
    fig.suptitle(_title(run, f"{len(archs)} archs of the run on {len(chosen)} devices"), fontsize="medium")
    return fig


__all__ = ["FORMATS", "KINDS", "figure_for", "plot_run"]
