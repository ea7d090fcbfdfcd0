"""The HTML report of a run: content (self-contained, escaped, complete) and a real headless Chromium
render (plotly draws the points, nothing throws, the front's colour is on screen)."""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

try:
    import plotly  # noqa: F401
except ImportError:
    if os.environ.get("CI") == "true":  # CI installs plotly: a missing one is a broken setup, not a skip
        raise
    pytest.skip("the HTML report needs plotly (pip install plotly)", allow_module_level=True)

from nas.report.html import FRONT_COLOUR, ReportSummary, write_report
from nas.run import Run, RunConfig, load_run

NB201 = {"space": "nb201", "dataset": "cifar10", "strategy": "evolution", "seed": 0}
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_TIMEOUT_S = 120


# --- runs and reports, built once per module ----------------------------------------------------------
@pytest.fixture(scope="module")
def offline(tmp_path_factory):
    """The fresh-machine situation of `no_data_dir` (tests/conftest.py), for module-scoped runs: no
    benchmark data directory, so accuracy comes from the PyPI table and latency from the shipped LUT."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NAS_DATA_DIR", "none")
        yield


def _search(directory: Path, **config) -> Path:
    Run.open(directory, RunConfig(**NB201, **config)).search()
    return directory


@pytest.fixture(scope="module")
def flops_run(offline, tmp_path_factory) -> Path:
    return _search(tmp_path_factory.mktemp("flops") / "r", objectives=["accuracy:max", "flops:min"], budget=30)


@pytest.fixture(scope="module")
def latency_run(offline, tmp_path_factory) -> Path:
    """accuracy vs latency@raspi4 (the shipped measured table), with an accuracy bound some trials break."""
    return _search(
        tmp_path_factory.mktemp("latency") / "r", objectives=["accuracy:max", "latency@raspi4:min"], constraints=["accuracy>=85"], budget=30
    )


@pytest.fixture(scope="module")
def ranked_run(offline, tmp_path_factory) -> Path:
    """Three objectives, one an estimate (energy = nominal power x latency), ranked by a weighted sum."""
    return _search(
        tmp_path_factory.mktemp("ranked") / "r",
        objectives=["accuracy:max", "latency@raspi4:min", "energy@raspi4:min"],
        mode="scalarized",
        budget=10,
    )


def _report(run_dir: Path) -> tuple[ReportSummary, str]:
    summary = write_report(run_dir, run_dir.parent / "report.html")
    return summary, summary.path.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def flops_report(flops_run):
    return _report(flops_run)


@pytest.fixture(scope="module")
def latency_report(latency_run):
    return _report(latency_run)


@pytest.fixture(scope="module")
def ranked_report(ranked_run):
    return _report(ranked_run)


class _Resources(HTMLParser):
    """Every URL the markup would load or link (script/img/link/iframe src and href), scripts' text excluded."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        self._in_style = tag == "style"
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster") and value:
                self.urls.append((tag, value))

    def handle_data(self, data):
        if self._in_style:
            self.styles.append(data)

    def handle_endtag(self, tag):
        self._in_style = False


def _section(page: str, section_id: str) -> str:
    start = page.index(f'id="{section_id}"')
    return page[start : page.index("</section>", start)]


# --- content ------------------------------------------------------------------------------------------
def test_report_loads_nothing_from_the_network(latency_report):
    _, page = latency_report
    parser = _Resources()
    parser.feed(page)
    external = [(tag, url) for tag, url in parser.urls if re.match(r"^(https?:)?//", url.strip(), re.IGNORECASE)]
    assert external == []
    assert not any(tag == "script" for tag, _ in parser.urls), "plotly.js must be inline, not a <script src>"
    assert not any(re.search(r"@import|url\(\s*['\"]?(https?:)?//", css) for css in parser.styles)
    assert "Plotly.newPlot" in page and len(page) > 1_000_000  # plotly.js itself is embedded


def test_summary_counts_trials_and_front_and_file_size(latency_run, latency_report):
    summary, page = latency_report
    run = load_run(latency_run)
    assert summary.n_trials == len(run.trials()) == 30
    assert summary.n_front == len(run.pareto())
    assert summary.bytes == summary.path.stat().st_size == len(page.encode("utf-8"))


@pytest.mark.parametrize("which", ["flops", "latency"])
def test_every_front_arch_is_in_the_sortable_front_table_escaped(which, flops_run, latency_run, flops_report, latency_report):
    run_dir, (_, page) = {"flops": (flops_run, flops_report), "latency": (latency_run, latency_report)}[which]
    table = _section(page, "front-table-section")
    assert '<table id="front-table" class="sortable">' in table
    front = load_run(run_dir).pareto()
    assert len(front) > 0
    for arch in front["arch"]:
        assert f"<td>{html.escape(arch)}</td>" in table
    assert table.count("<tr>") == len(front) + 1  # header + one row per front arch
    assert 'th.addEventListener("click"' in page


def test_hover_text_names_the_arch_and_every_metric(latency_run, latency_report):
    _, page = latency_report
    first = load_run(latency_run).trials().iloc[0]
    figures = page.replace("\\u003c", "<").replace("\\u003e", ">").replace("\\u002f", "/")  # plotly's JSON escapes
    hover = f"<b>{html.escape(first['arch'])}</b><br>trial {first['trial']}<br>accuracy: {first['accuracy']:.5g}<br>latency@raspi4: "
    assert hover in figures


def test_infeasible_trials_are_marked_in_their_own_trace(latency_run, latency_report):
    _, page = latency_report
    trials = load_run(latency_run).trials()
    assert (~trials["feasible"]).any(), "the accuracy bound should reject some trials"
    assert "infeasible (breaks a constraint)" in page


def test_true_front_is_drawn_for_a_listable_space_with_table_and_lut(latency_report):
    _, page = latency_report
    assert "true front of the space" in page
    assert re.search(r"true front: \d+ of 15625 architectures of nb201", page)


def test_config_yaml_is_embedded_escaped(latency_run, latency_report):
    _, page = latency_report
    text = (latency_run / "config.yaml").read_text()
    assert f"<pre>{html.escape(text)}</pre>" in page
    assert html.escape("accuracy>=85") in page and "accuracy>=85" not in _section(page, "config")


def test_latency_cost_model_shows_provenance_and_the_shipped_lut_for_comparison(latency_run, latency_report):
    import json

    from nas.cost.lut import find_lut

    _, page = latency_report
    costs = _section(page, "cost-models")
    provenance = load_run(latency_run).provenance()["latency@raspi4"]
    sidecar = json.loads(find_lut("raspi4", "nb201").with_suffix(".json").read_text())
    figures = sidecar["validation"]["nb201"]
    assert provenance["table"] == "nb201/latency_ms/raspi4" and html.escape(provenance["table"]) in costs
    assert "Shipped LUT <code>raspi4.csv</code>" in costs
    assert "the run took latency from nb201/latency_ms/raspi4; the shipped LUT" in costs
    for key in ("spearman", "kendall", "mdape"):
        assert f"<th>{key}</th><td>{figures[key]:.5g}</td>" in costs
    assert sidecar["sha256"] in costs
    assert "TableColumnProvider" in costs  # accuracy's provenance too


def test_estimates_are_labelled_in_headers_legend_and_cost_models(ranked_report):
    _, page = ranked_report
    assert '<th scope="col" title="click to sort">energy@raspi4 (estimate)</th>' in page
    assert "energy@raspi4 (estimate)" in _section(page, "front")
    assert '<h3>energy@raspi4 <span class="badge">estimate</span>' in _section(page, "cost-models")
    assert "accuracy (estimate)" not in page and "latency@raspi4 (estimate)" not in page


def test_a_lut_priced_metric_is_labelled_an_estimate_with_its_file_and_held_out_error(offline, tmp_path):
    from nas.run.sources import describe

    directory = tmp_path / "r"
    Run.open(directory, RunConfig(space="fbnet", objectives=["params:min", "latency@raspi4:min"], strategy="random", seed=0, budget=3)).search()
    write_report(directory, tmp_path / "report.html", true_front=False)
    page = (tmp_path / "report.html").read_text()
    costs = _section(page, "cost-models")
    line = describe(load_run(directory).provenance()["latency@raspi4"])
    assert "held-out" in line and "sha256" in line and html.escape(line) in costs
    assert '<h3>latency@raspi4 <span class="badge">estimate</span>' in costs and "latency@raspi4 (estimate)" in page
    assert '<h3>params <span class="badge">estimate</span>' not in costs


def test_three_objectives_plot_the_first_two_and_say_so(ranked_report):
    _, page = ranked_report
    note = _section(page, "front")
    assert "The run has 3 objectives; this plot shows the first two (accuracy, latency@raspi4)" in note
    assert "true front not shown" in note


def test_scalarized_run_shows_ranked_rows_and_the_best_arch(ranked_run, ranked_report):
    _, page = ranked_report
    column, ranked = load_run(ranked_run).ranked()
    section = _section(page, "ranked")
    assert f"by {column}" in section
    assert f'Best architecture: <code class="arch">{html.escape(ranked.iloc[0]["arch"])}</code>' in section
    rows = section[section.index('id="ranked-table"') :]
    assert rows.count("<tr>") == min(len(ranked), 10) + 1


def test_pareto_runs_have_no_ranked_section(latency_report):
    _, page = latency_report
    assert 'id="ranked"' not in page


def test_hypervolume_curve_rises_to_the_runs_hypervolume(latency_run):
    run = load_run(latency_run)
    curve = run.hypervolume_trace()
    assert len(curve) == len(run.trials())
    assert np.all(np.diff(curve) >= 0)
    assert curve[-1] == pytest.approx(run.hypervolume(), rel=1e-12)


def test_missing_plotly_raises_one_line_import_error_naming_pip_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "plotly", None)
    with pytest.raises(ImportError, match=r"pip install plotly") as info:
        write_report(tmp_path, tmp_path / "report.html")
    assert "\n" not in str(info.value)


def test_a_failed_write_leaves_the_previous_report_whole(latency_run, latency_report, tmp_path, monkeypatch):
    import nas.report.html as report

    out = tmp_path / "report.html"
    out.write_text("previous report")

    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report, "_page", broken)
    with pytest.raises(RuntimeError):
        report.write_report(latency_run, out, true_front=False)
    assert out.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_rewriting_replaces_the_file_and_leaves_no_temporary(latency_run, tmp_path):
    out = tmp_path / "report.html"
    out.write_text("old")
    summary = write_report(latency_run, out, true_front=False)
    assert summary.path == out and out.read_text().startswith("<!DOCTYPE html>")
    assert "true front not computed" in out.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_import_nas_report_does_not_import_plotly():
    code = "import sys, nas, nas.report, nas.report.html; print('plotly' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


# --- a real browser -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium() -> str:
    """A Chromium binary; skipped where none is installed, except on CI (which installs one)."""
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI") == "true":
        pytest.fail(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}); CI must install one (apt-get install chromium)")
    pytest.skip(f"no Chromium found (looked for {', '.join(CHROMIUM_NAMES)}); install chromium to run the browser tests")


def _browse(chromium: str, page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    """Open `page` headless with the network cut off (any fetch fails), logging the console to stderr."""
    cmd = [
        chromium,
        "--headless=new",
        "--no-sandbox",  # tests may run as root (containers, CI)
        "--disable-gpu",
        "--hide-scrollbars",
        "--enable-logging=stderr",
        "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=15000",
        *extra,
        page.resolve().as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S, check=True)


def console_messages(stderr: str) -> list[str]:
    """Every message the page wrote to the console (Chromium logs them all as `INFO:CONSOLE`, whatever
    their level, so errors are not told apart: the report must log nothing at all)."""
    return [line for line in stderr.splitlines() if re.search(r":CONSOLE[:(]", line)]


@pytest.fixture(scope="module")
def rendered(chromium, latency_report, tmp_path_factory) -> tuple[str, str]:
    """The DOM after plotly drew the latency report, and Chromium's log."""
    summary, _ = latency_report
    done = _browse(chromium, summary.path, tmp_path_factory.mktemp("profile"), "--dump-dom")
    return done.stdout, done.stderr


@pytest.mark.parametrize(
    "script",
    ['throw new Error("x")', 'Promise.reject(new Error("y"))', 'console.error("z")'],
    ids=["throw", "rejection", "console-error"],
)
def test_console_check_catches_a_page_that_errors(script, chromium, tmp_path):
    page = tmp_path / "broken.html"
    page.write_text(f"<!DOCTYPE html><html><body><p>broken</p><script>{script}</script></body></html>")
    done = _browse(chromium, page, tmp_path / "profile", "--dump-dom")
    assert console_messages(done.stderr), done.stderr[-2000:]


def test_report_draws_every_trial_as_a_plotly_point_in_chromium(rendered, latency_report):
    dom, _ = rendered
    summary, _ = latency_report
    assert 'data-plots-rendered="2"' in dom  # both figures' Plotly.newPlot promises resolved
    assert re.search(r'data-rendered-ms="[0-9.]+"', dom)
    points = dom.count('class="point"')
    assert points >= summary.n_trials
    red = dom.count("fill: rgb(214, 39, 40)")  # FRONT_COLOUR: each front point, and its legend symbol
    assert red in (summary.n_front, summary.n_front + 1)


def test_report_logs_nothing_to_the_console_in_chromium(rendered):
    _, log = rendered
    assert console_messages(log) == []


def test_screenshot_shows_the_front_markers_in_the_front_colour(chromium, latency_report, tmp_path):
    from PIL import Image

    summary, _ = latency_report
    shot = tmp_path / "report.png"
    _browse(chromium, summary.path, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,1600")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=int)
    target = np.array([int(FRONT_COLOUR[i : i + 2], 16) for i in (1, 3, 5)])
    close = (np.abs(pixels - target).sum(axis=2) <= 30).sum()
    assert close >= 20 * summary.n_front, f"{close} pixels near {FRONT_COLOUR}"
