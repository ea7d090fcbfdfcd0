"""Static figures of a run (`nas.report.plots`): each kind is written as a real image and holds the run's data.

The runs are real searches on a fresh machine (no benchmark data directory): NB201 accuracy comes from the
packaged table and latency from the shipped LUTs, so the true front of the whole space is drawn offline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nas.pareto import pareto_mask
from nas.report import plots
from nas.cost.lut import latency_devices
from nas.report.plots import KINDS, figure_for, plot_run
from nas.run import Run, RunConfig, load_run

NB201 = {"space": "nb201", "dataset": "cifar10", "objectives": ["accuracy:max", "latency@raspi4:min"], "strategy": "evolution", "budget": 30, "seed": 0}
DEVICES = ["pixel3", "fpga"]


@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """No benchmark data directory for the whole module (the `no_data_dir` situation, module-wide)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_DATA_DIR", "none")
        yield


@pytest.fixture(scope="module")
def run_dir(offline, tmp_path_factory) -> Path:
    """A finished 30-trial NB201 search, accuracy against raspi4 latency."""
    directory = tmp_path_factory.mktemp("runs") / "nb201"
    Run.open(directory, RunConfig(**NB201)).search()
    return directory


@pytest.fixture(scope="module")
def no_reference_dir(offline, tmp_path_factory) -> Path:
    """A search whose space is too large to list, so its objectives have no known worst value."""
    directory = tmp_path_factory.mktemp("runs") / "fbnet"
    Run.open(directory, RunConfig(space="fbnet", objectives=["params:min", "latency@raspi4:min"], strategy="random", budget=5, seed=0)).search()
    return directory


@pytest.fixture(scope="module")
def drawn(run_dir, tmp_path_factory) -> dict[str, tuple[Path, object]]:
    """Each kind written once by `plot_run`, with the figure it wrote (spied on `figure_for`)."""
    out = tmp_path_factory.mktemp("figures")
    figures: dict[str, object] = {}

    def spy(run, kind, *, devices=None):
        figures[kind] = figure_for(run, kind, devices=devices)
        return figures[kind]

    written = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(plots, "figure_for", spy)
        for kind in KINDS:
            path = plot_run(run_dir, kind, out / f"{kind}.png", devices=DEVICES if kind == "devices" else None)
            written[kind] = (path, figures[kind])
    return written


def labelled(ax, label: str) -> list:
    return [a for a in [*ax.collections, *ax.lines] if a.get_label() == label]


def line_xy(ax, label: str) -> np.ndarray:
    (line,) = labelled(ax, label)
    return np.c_[line.get_xdata(), line.get_ydata()]


def scatter_xy(ax, label: str = "trials") -> np.ndarray:
    (points,) = labelled(ax, label)
    return np.asarray(points.get_offsets())


# --- every kind --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_writes_a_readable_png_and_no_temporary_file(drawn, kind):
    path, _ = drawn[kind]
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.width > 0 and image.height > 0
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_the_suffix_picks_the_format(no_reference_dir, tmp_path):
    pdf = plot_run(no_reference_dir, "pareto", tmp_path / "front.pdf")
    svg = plot_run(no_reference_dir, "pareto", tmp_path / "front.svg")
    assert pdf.read_bytes().startswith(b"%PDF")
    assert b"<svg" in svg.read_bytes()[:2000]


# --- pareto --------------------------------------------------------------------------------------------------------
def test_pareto_plot_shows_every_trial_and_exactly_the_runs_front(drawn, run_dir):
    run = load_run(run_dir)
    (ax,) = drawn["pareto"][1].axes
    trials, front = run.trials(), run.pareto()
    assert len(scatter_xy(ax)) == len(trials)
    xy = line_xy(ax, "front")
    assert len(xy) == len(front)
    assert sorted(map(tuple, xy)) == sorted(zip(front["latency@raspi4"], front["accuracy"]))


def test_pareto_plot_labels_axes_with_objective_and_direction(drawn):
    (ax,) = drawn["pareto"][1].axes
    assert ax.get_xlabel() == "latency@raspi4 (min)"
    assert ax.get_ylabel() == "accuracy (max)"


def test_pareto_plot_draws_the_true_front_of_the_whole_space_offline(drawn, run_dir):
    (ax,) = drawn["pareto"][1].axes
    true = line_xy(ax, "true front")
    assert len(true) > 0
    # no architecture the run found beats the true front: each run point is matched or dominated by one of it
    for latency, accuracy in line_xy(ax, "front"):
        assert ((true[:, 0] <= latency + 1e-9) & (true[:, 1] >= accuracy - 1e-9)).any()


def test_a_metric_flagged_as_estimate_is_labelled_so(run_dir):
    run = load_run(run_dir)
    run.provenance = lambda: {"accuracy": {"tier": "estimate"}, "latency@raspi4": {"estimate": True, "method": "fitted"}}
    assert plots._axis_label(run, "accuracy") == "accuracy (max) (estimate)"
    assert plots._axis_label(run, "latency@raspi4") == "latency@raspi4 (min) (estimate)"


# --- hypervolume ---------------------------------------------------------------------------------------------------
def test_hv_plot_has_one_point_per_trial_and_ends_at_the_runs_hypervolume(drawn, run_dir):
    run = load_run(run_dir)
    (ax,) = drawn["hv"][1].axes
    xy = line_xy(ax, "hypervolume")
    assert len(xy) == len(run.trials())
    assert xy[-1, 1] == pytest.approx(run.hypervolume())
    assert (np.diff(xy[:, 1]) >= 0).all()
    (true,) = labelled(ax, "true front")
    assert true.get_ydata()[0] >= xy[-1, 1]


def test_hypervolume_curve_matches_the_front_of_each_prefix_of_trials(run_dir):
    run = load_run(run_dir)
    curve = run.hypervolume_trace()
    trials = run.trials().sort_values("trial")
    for k in (1, len(trials) // 2, len(trials)):
        assert curve[k - 1] == pytest.approx(run.store.hypervolume(trials.iloc[:k]))


def test_hv_without_a_reference_point_fails_in_one_line_and_writes_nothing(no_reference_dir, tmp_path):
    out = tmp_path / "hv.png"
    with pytest.raises(ValueError, match="no reference point") as err:
        plot_run(no_reference_dir, "hv", out)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


# --- devices -------------------------------------------------------------------------------------------------------
def test_devices_plot_has_one_panel_per_device_each_with_the_runs_archs(drawn, run_dir):
    run = load_run(run_dir)
    axes = drawn["devices"][1].axes
    assert [ax.get_title() for ax in axes] == DEVICES
    n_archs = run.trials()["arch"].nunique()
    for ax in axes:
        assert len(scatter_xy(ax)) == n_archs
        assert len(line_xy(ax, "true front")) > 0


def test_each_device_panel_highlights_that_devices_front_of_the_runs_archs(drawn):
    for ax in drawn["devices"][1].axes:
        points = scatter_xy(ax)
        expected = points[pareto_mask(np.c_[points[:, 0], -points[:, 1]])]
        assert sorted(map(tuple, line_xy(ax, "front"))) == sorted(map(tuple, expected))


def test_devices_differ_in_latency_not_in_accuracy(drawn):
    first, second = (scatter_xy(ax) for ax in drawn["devices"][1].axes)
    assert np.array_equal(first[:, 1], second[:, 1])
    assert not np.allclose(first[:, 0], second[:, 0])


def test_default_devices_are_every_device_with_a_latency_source_offline(offline):
    from nas.spaces import get_space
    from nas.tables import NB201_DEVICES

    found = latency_devices(get_space("nb201"))
    assert set(NB201_DEVICES) <= set(found)
    assert found == sorted(found)


def test_unknown_device_fails_naming_it_and_the_known_ones(run_dir, tmp_path):
    out = tmp_path / "devices.png"
    with pytest.raises(ValueError, match="toaster") as err:
        plot_run(run_dir, "devices", out, devices=["raspi4", "toaster"])
    message = str(err.value)
    assert "\n" not in message and "pixel3" in message
    assert list(tmp_path.iterdir()) == []


def test_devices_plot_needs_an_accuracy_objective(no_reference_dir, tmp_path):
    with pytest.raises(ValueError, match="accuracy"):
        plot_run(no_reference_dir, "devices", tmp_path / "d.png", devices=["raspi4"])
    assert list(tmp_path.iterdir()) == []


# --- bad requests and failures -----------------------------------------------------------------------------------
def test_unknown_kind_fails_listing_the_kinds(run_dir, tmp_path):
    with pytest.raises(ValueError, match="pareto, hv, devices") as err:
        plot_run(run_dir, "scatter", tmp_path / "x.png")
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_unknown_suffix_fails_listing_the_formats(run_dir, tmp_path):
    with pytest.raises(ValueError, match=r"\.png, \.pdf, \.svg"):
        plot_run(run_dir, "pareto", tmp_path / "x.jpg")
    assert list(tmp_path.iterdir()) == []


def test_devices_given_to_another_kind_are_refused(run_dir, tmp_path):
    with pytest.raises(ValueError, match="devices"):
        plot_run(run_dir, "hv", tmp_path / "x.png", devices=["raspi4"])


def test_a_failure_while_writing_leaves_the_previous_file_and_no_partial_one(no_reference_dir, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    out = tmp_path / "front.png"
    out.write_bytes(b"previous figure")

    def broken_savefig(self, handle, **kwargs):
        handle.write(b"half a png")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", broken_savefig)
    with pytest.raises(OSError, match="disk full"):
        plot_run(no_reference_dir, "pareto", out)
    assert out.read_bytes() == b"previous figure"
    assert [p.name for p in tmp_path.iterdir()] == ["front.png"]


def test_true_front_is_left_out_with_a_warning_when_a_metric_now_has_another_source(run_dir):
    run = load_run(run_dir)
    stored = run.provenance()
    stored["latency@raspi4"] = {**stored["latency@raspi4"], "lut_sha256": "another-lut"}
    run.provenance = lambda: stored
    with pytest.warns(UserWarning, match="latency@raspi4"):
        figure = figure_for(run, "pareto")
    (ax,) = figure.axes
    assert labelled(ax, "true front") == []
    assert len(line_xy(ax, "front")) == len(run.pareto())


def test_missing_matplotlib_fails_naming_the_install_command(run_dir, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        plot_run(run_dir, "pareto", tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []
