"""One self-contained HTML page for a run: its Pareto front, hypervolume, cost models and config.

Why one file with plotly.js inline: a report is mailed, attached to a ticket or opened on a machine
without network, months after the search; a page that fetches scripts or fonts from a CDN breaks in all
three. It reads only the run store (`nas.run.load_run`), so it works on a finished or a running search.

What the page holds: the front of the first two objectives over every trial (and the true front where
the space is listable and its metrics are cheap to tabulate), hypervolume over trials, the front as a
sortable table, each metric's provenance (with the shipped LUT's validation figures for
`latency@DEVICE`), an "estimate" label on every modelled metric, the config, and for scalarized or
lexicographic runs the best-ranked architectures.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from nas._io import write_atomic
from nas.objectives import MetricName

#: Marker colours: the front is a saturated red nothing else on the page uses (tests look for it).
FRONT_COLOUR = "#d62728"
TRIAL_COLOUR = "#b4b4b4"
INFEASIBLE_COLOUR = "#444444"
TRUE_FRONT_COLOUR = "#1f77b4"
HYPERVOLUME_COLOUR = "#2ca02c"
#: Rows of a ranked (scalarized / lexicographic) run shown in the report.
RANKED_ROWS = 10
#: What the column `RunStore.ranked` adds means, for the reader.
_RANK_MEANING = {
    "score": "score: weighted sum of the objectives min-max normalised over these trials, lower is better",
    "reward": "reward: MnasNet's accuracy x (cost / target)^w, higher is better",
    "order": "order: lexicographic place, 1 is best",
}
#: Sidecar validation fields shown for a shipped LUT, in this order (the rest stays in the provenance).
_LUT_FIGURES = ("n", "heldout", "spearman", "kendall", "mape", "mdape", "method", "k", "nearest_device", "source", "note")
#: Errors that mean "the whole space cannot be priced here" (missing data, unknown device, a provider that
#: cannot be built offline): the true front is then left out, the report goes on.
_UNAVAILABLE = (ValueError, KeyError, OSError, ImportError, RuntimeError)
#: Columns of trial tables never shown (bookkeeping paths).
_HIDDEN_COLUMNS = ("weights",)


@dataclass(frozen=True)
class ReportSummary:
    """What `write_report` wrote: the page, its size, and how many trials and front points it shows."""

    path: Path
    bytes: int
    n_trials: int
    n_front: int


@dataclass(frozen=True)
class _TrueFront:
    """The true front of the whole space (`frame`, None when unavailable) and why it is or is not shown."""

    frame: pd.DataFrame | None
    note: str


def write_report(run_dir: str | Path, out: str | Path, *, true_front: bool = True) -> ReportSummary:
    """Write one self-contained HTML report of the run in `run_dir` to `out`.

    The page embeds plotly.js (about 4.8 MB), so it opens offline; it is written atomically (a crash
    leaves the old file or the new one, never half a page). The true front of a listable space costs one
    pass of every provider over the space (seconds for NB201's 15,625 cells); `true_front=False` skips it.

    Args:
        run_dir: a run directory (holds `config.yaml` and the study).
        out: the HTML file to write (its folder must exist).
        true_front: whether to tabulate the whole space for the true front when it can be.

    Returns:
        The path written, its size in bytes, the number of completed trials and of front points.

    Raises:
        RunConfigError: `run_dir` is not a run directory.
        ImportError: plotly is not installed.
    """
    _require_plotly()
    from nas.run import load_run

    run = load_run(run_dir)
    out = Path(out)
    trials = run.trials().sort_values("trial", kind="stable").reset_index(drop=True)
    front = run.pareto()
    provenance = run.provenance()
    estimates = _estimated_metrics(provenance)
    truth = _true_front(run) if true_front else _TrueFront(None, "true front not computed (true_front=False)")
    page = _page(run, trials, front, provenance, estimates, truth)
    write_atomic(out, page)
    return ReportSummary(out, out.stat().st_size, len(trials), len(front))


# --- data ------------------------------------------------------------------------------------------
def _require_plotly() -> None:
    """Import plotly here, not at module import, so `import nas` stays light; one line if it is missing."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise ImportError("the HTML report needs plotly: pip install plotly") from None


def _estimated_metrics(provenance: Mapping[str, Any]) -> set[str]:
    """Metrics whose numbers are modelled, not measured or counted (`nas.run.sources.is_estimate`: a
    model's tier, an `estimate` flag, or a LUT), as `nas pareto` and pareto.json label them."""
    from nas.run.sources import is_estimate

    return {m for m, info in provenance.items() if isinstance(info, Mapping) and is_estimate(info)}


def _label(metric: str, estimates: set[str]) -> str:
    return f"{metric} (estimate)" if metric in estimates else metric


def _true_front(run: Any) -> _TrueFront:
    """The true front over every architecture of the run's space (`Run.true_front`), where it can be
    computed here; otherwise why not (the report goes on without it)."""
    if len(run.objectives.names) != 2:
        return _TrueFront(None, f"true front not shown: it is drawn for two objectives, the run has {len(run.objectives.names)}")
    try:
        frame = run.true_front()
    except _UNAVAILABLE as exc:  # too large, a slow metric, a moved source, or data this machine lacks
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return _TrueFront(None, f"true front not shown: {first}")
    return _TrueFront(
        frame,
        f"true front: {len(frame)} of {run.space.size} architectures of {run.space.name} (the view starts on the trials; double-click the plot to see all of it)",
    )


# --- formatting ------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    """A cell's text: floats to 5 significant digits, the rest as str."""
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{float(value):.5g}"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    return str(value)


def _esc(value: Any) -> str:
    return html.escape(_fmt(value), quote=True)


def _hover(row: Mapping[str, Any], columns: Sequence[str], estimates: set[str]) -> str:
    """Hover text of one point: its arch and every metric (plotly reads `<br>`; the rest is escaped)."""
    lines = [f"<b>{_esc(row['arch'])}</b>"]
    if "trial" in row:
        lines.append(f"trial {_esc(row['trial'])}")
    lines += [f"{html.escape(_label(c, estimates))}: {_esc(row[c])}" for c in columns]
    return "<br>".join(lines)


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("arch", "trial", *_HIDDEN_COLUMNS)]


def _axis_title(objective: Any, estimates: set[str]) -> str:
    arrow = "higher is better" if objective.direction == "max" else "lower is better"
    return html.escape(f"{_label(objective.metric, estimates)} ({arrow})")


# --- figures ---------------------------------------------------------------------------------------
def _front_figure(run: Any, trials: pd.DataFrame, front: pd.DataFrame, estimates: set[str], truth: _TrueFront) -> Any:
    """Scatter of the first two objectives: every trial grey, infeasible ones crossed, the front red,
    the true front as a blue line. A single-objective run plots its objective over trials instead."""
    import plotly.graph_objects as go

    objs = run.objectives.objectives
    columns = _metric_columns(trials)
    on_front = trials["trial"].isin(front["trial"]).to_numpy() if len(front) else np.zeros(len(trials), dtype=bool)
    feasible = trials["feasible"].to_numpy(dtype=bool) if len(trials) else np.zeros(0, dtype=bool)
    single = len(objs) == 1
    x_name = "trial" if single else objs[0].metric
    y_name = objs[0].metric if single else objs[1].metric
    fig = go.Figure()
    groups = (
        ("trials", feasible & ~on_front, {"color": TRIAL_COLOUR, "size": 7, "opacity": 0.7}),
        ("infeasible (breaks a constraint)", ~feasible, {"color": INFEASIBLE_COLOUR, "size": 8, "symbol": "x"}),
        ("Pareto front of the run", on_front, {"color": FRONT_COLOUR, "size": 10, "line": {"color": "#7f1010", "width": 1}}),
    )
    for name, mask, marker in groups:
        part = trials[mask]
        if part.empty and name != "Pareto front of the run":
            continue
        fig.add_trace(
            go.Scatter(
                x=part[x_name].tolist(),
                y=part[y_name].tolist(),
                mode="markers",
                name=name,
                marker=marker,
                hovertext=[_hover(r, columns, estimates) for r in part.to_dict("records")],
                hoverinfo="text",
            )
        )
    if truth.frame is not None and not single:
        line = truth.frame.sort_values(x_name, kind="stable")
        fig.add_trace(
            go.Scatter(
                x=line[x_name].tolist(),
                y=line[y_name].tolist(),
                mode="lines+markers",
                name="true front of the space",
                line={"color": TRUE_FRONT_COLOUR, "width": 1.5, "shape": "linear"},
                marker={"color": TRUE_FRONT_COLOUR, "size": 4},
                hovertext=[_hover(r, _metric_columns(line), estimates) for r in line.to_dict("records")],
                hoverinfo="text",
            )
        )
    if truth.frame is not None and not single and len(trials) >= 2:
        _focus_on_trials(fig, trials[[x_name, y_name]].to_numpy(dtype=float), truth.frame[[x_name, y_name]].to_numpy(dtype=float))
    x_title = "trial" if single else _axis_title(objs[0], estimates)
    y_title = _axis_title(objs[0] if single else objs[1], estimates)
    fig.update_layout(
        height=560,
        margin={"l": 70, "r": 20, "t": 30, "b": 60},
        xaxis_title=x_title,
        yaxis_title=y_title,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.01, "x": 0},
        template="plotly_white",
        hoverlabel={"align": "left"},
    )
    return fig


def _focus_on_trials(fig: Any, trials: np.ndarray, truth: np.ndarray, pad: float = 0.06) -> None:
    """Start the view on the trials (and the true front beside them), not on the far ends of the truth.

    Why: a space's true front runs out to degenerate networks (NB201's all-`none` cell: 10 % accuracy,
    no latency) that squash the trials into a corner; double-clicking the plot still shows all of it.
    """
    trials = trials[np.isfinite(trials).all(axis=1)]
    if len(trials) < 2:
        return
    lo, hi = trials.min(axis=0), trials.max(axis=0)
    span = np.where(hi > lo, hi - lo, np.abs(hi) + 1.0)
    x_lo, x_hi = lo[0] - pad * span[0], hi[0] + pad * span[0]
    beside = truth[(truth[:, 0] >= x_lo) & (truth[:, 0] <= x_hi) & np.isfinite(truth).all(axis=1)]
    y_lo, y_hi = min(lo[1], beside[:, 1].min(initial=lo[1])), max(hi[1], beside[:, 1].max(initial=hi[1]))
    y_pad = pad * (y_hi - y_lo if y_hi > y_lo else abs(y_hi) + 1.0)
    fig.update_xaxes(range=[x_lo, x_hi])
    fig.update_yaxes(range=[y_lo - y_pad, y_hi + y_pad])


def _hypervolume_figure(trials: pd.DataFrame, curve: np.ndarray) -> Any:
    import plotly.graph_objects as go

    fig = go.Figure(
        go.Scatter(
            x=trials["trial"].tolist(),
            y=curve.tolist(),
            mode="lines",
            line={"color": HYPERVOLUME_COLOUR, "width": 2, "shape": "hv"},
            name="hypervolume",
            hovertemplate="trial %{x}<br>hypervolume %{y:.6g}<extra></extra>",
        )
    )
    fig.update_layout(
        height=360, margin={"l": 70, "r": 20, "t": 20, "b": 50}, xaxis_title="trial", yaxis_title="hypervolume", template="plotly_white"
    )
    return fig


def _figure_html(fig: Any, div_id: str, *, first: bool, n_figures: int) -> str:
    """A figure's div and script; the first embeds plotly.js inline. Each marks the page once drawn
    (`data-plots-rendered`, `data-rendered-ms` on <body>) so a headless browser can check the drawing."""
    import plotly.io as pio

    mark = (
        "var b=document.body;var n=(+b.getAttribute('data-plots-rendered')||0)+1;b.setAttribute('data-plots-rendered',n);"
        f"if(n==={n_figures}){{b.setAttribute('data-rendered-ms',performance.now().toFixed(1));}}"
    )
    config = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"filename": div_id}}
    return pio.to_html(fig, full_html=False, include_plotlyjs=first, div_id=div_id, config=config, post_script=mark)


# --- sections --------------------------------------------------------------------------------------
def _table(frame: pd.DataFrame, estimates: set[str], table_id: str) -> str:
    """An HTML table of `frame`; numbers carry their exact value in `data-v` so sorting is numeric."""
    columns = [c for c in frame.columns if c not in _HIDDEN_COLUMNS]
    head = "".join(f'<th scope="col" title="click to sort">{html.escape(_label(str(c), estimates))}</th>' for c in columns)
    rows = []
    for record in frame[columns].itertuples(index=False):
        cells = []
        for value in record:
            numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
            data = f' data-v="{float(value)!r}"' if numeric and not math.isnan(float(value)) else ""
            cls = ' class="num"' if numeric else ""
            cells.append(f"<td{cls}{data}>{_esc(value)}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{table_id}" class="sortable"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _value_html(value: Any) -> str:
    """A provenance value: mappings as nested tables, lists joined, scalars escaped."""
    if isinstance(value, Mapping):
        if not value:
            return "<i>none</i>"
        rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{_value_html(v)}</td></tr>" for k, v in value.items())
        return f'<table class="kv">{rows}</table>'
    if isinstance(value, (list, tuple)):
        return html.escape(", ".join(_fmt(v) for v in value))
    if value is None:
        return "<i>none</i>"
    return _esc(value)


def _lut_sidecar(metric: str, space: str, provenance: Mapping[str, Any]) -> str:
    """The shipped LUT's key figures for a `latency@DEVICE` metric (located as `nas.cost.lut` does)."""
    from nas.cost.lut import LUT, LUTError, find_lut

    name = MetricName.parse(metric)
    if name.kind != "latency" or not name.device:
        return ""
    path = find_lut(name.device, space)
    if path is None:
        return f"<p>No shipped LUT covers {html.escape(metric)} on {html.escape(space)}.</p>"
    try:
        lut = LUT.load(path)
    except (LUTError, OSError) as exc:
        return f"<p>Shipped LUT {html.escape(path.name)} is unreadable: {html.escape(str(exc).splitlines()[0])}</p>"
    meta, validation = lut.meta, lut.validation(space)
    figures: dict[str, Any] = {k: meta.get(k) for k in ("device", "kind", "backend", "units", "sha256")}
    figures.update({k: validation[k] for k in _LUT_FIGURES if k in validation})
    for stage in ("before_distillation", "distillation"):
        if isinstance(validation.get(stage), Mapping):
            figures[stage] = {k: v for k, v in validation[stage].items() if k in ("n", "spearman", "kendall", "mape", "mdape")}
    used = str(provenance.get("table", ""))
    if used.startswith("lut:"):
        same = provenance.get("lut_sha256") in (None, meta.get("sha256"))
        usage = "the run priced latency with this LUT" + ("" if same else " as it was then: its sha256 differs from the shipped file now")
    else:
        usage = f"the run took latency from {used or 'another source'}; the shipped LUT's figures are shown for comparison"
    return (
        f'<div class="lut"><h4>Shipped LUT <code>{html.escape(path.name)}</code> (validation on {html.escape(space)})</h4>'
        f"<p>{html.escape(usage)}.</p>{_value_html(figures)}</div>"
    )


def _cost_models(run: Any, provenance: Mapping[str, Any], estimates: set[str]) -> str:
    from nas.run.sources import describe

    parts = []
    for metric in run.objectives.metrics:
        info = provenance.get(metric, {})
        badge = ' <span class="badge">estimate</span>' if metric in estimates else ""
        tier = info.get("tier", "?") if isinstance(info, Mapping) else "?"
        info = info if isinstance(info, Mapping) else {"value": info}
        parts.append(
            f'<div class="metric"><h3>{html.escape(metric)}{badge} <span class="tier">tier: {html.escape(str(tier))}</span></h3>'
            f"<p>{_esc(info.get('provider', 'provider unknown'))}: {_esc(describe(info))}</p>"
            f"{_lut_sidecar(metric, run.space.name, info)}"
            f"<details><summary>full provenance of {html.escape(metric)}</summary>{_value_html(info)}</details></div>"
        )
    return "".join(parts)


def _ranked(run: Any, estimates: set[str]) -> str:
    ranked = run.ranked()
    if ranked is None:
        return ""
    column, frame = ranked
    mode = run.config.search_mode().describe()
    if frame.empty:
        body = "<p>No feasible architecture yet.</p>"
    else:
        body = f'<p>Best architecture: <code class="arch">{_esc(frame.iloc[0]["arch"])}</code></p>' + _table(
            frame.head(RANKED_ROWS), estimates, "ranked-table"
        )
    return (
        f'<section id="ranked"><h2>Ranked architectures ({html.escape(str(mode.get("name", run.config.mode)))}, by {html.escape(column)})</h2>'
        f'<p class="note">{html.escape(_RANK_MEANING.get(column, column))}; the {min(len(frame), RANKED_ROWS)} best of {len(frame)} feasible architectures.</p>'
        f'<div class="mode">{_value_html(mode)}</div>{body}</section>'
    )


def _summary(run: Any, trials: pd.DataFrame, front: pd.DataFrame) -> str:
    hv = run.hypervolume()
    ref = run.reference
    items = {
        "run": str(run.directory),
        "space": run.space.name,
        "dataset": run.config.dataset,
        "objectives": ", ".join(str(o) for o in run.objectives.objectives),
        "constraints": ", ".join(str(c) for c in run.objectives.constraints) or "none",
        "strategy": run.config.strategy,
        "mode": run.config.mode,
        "completed trials": f"{len(trials)} (budget {run.config.budget})",
        "feasible trials": int(trials["feasible"].sum()) if len(trials) else 0,
        "front size": len(front),
        "hypervolume": "no reference point" if hv is None else f"{hv:.6g}",
        "reference point (minimisation units)": "none" if ref is None else ", ".join(f"{v:.6g}" for v in ref),
    }
    return _value_html(items)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.2em 2em;color:#222;max-width:1400px}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h3{font-size:1.05em;margin:.8em 0 .3em}h4{font-size:.95em;margin:.6em 0 .2em}
table{border-collapse:collapse;font-size:.85em;margin:.4em 0}th,td{border:1px solid #ddd;padding:.2em .5em;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}table.sortable th{cursor:pointer;background:#f4f4f4;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" \\25B2"}table.sortable th[aria-sort=descending]::after{content:" \\25BC"}
table.kv th{background:#fafafa;font-weight:600}table table{font-size:1em}details{margin:.3em 0}summary{cursor:pointer;color:#345}code,.arch,pre{font-family:ui-monospace,Menlo,Consolas,monospace}
pre{background:#f7f7f7;border:1px solid #ddd;padding:.6em;overflow:auto}
.badge{background:#8a5a00;color:#fff;border-radius:3px;padding:0 .35em;font-size:.75em;vertical-align:middle}
.tier{color:#666;font-weight:normal;font-size:.8em}.note{color:#555;font-size:.9em}.metric{margin-bottom:1em}
.summary{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
"""

#: Click a header to sort its table (numbers by `data-v`, text otherwise); click again to reverse.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function(table){
  var heads=table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads,function(th,col){
    th.addEventListener("click",function(){
      var asc=th.getAttribute("aria-sort")!=="ascending";
      Array.prototype.forEach.call(heads,function(h){h.removeAttribute("aria-sort");});
      th.setAttribute("aria-sort",asc?"ascending":"descending");
      var body=table.tBodies[0],rows=Array.prototype.slice.call(body.rows);
      rows.sort(function(a,b){
        var x=a.cells[col],y=b.cells[col],vx=x.getAttribute("data-v"),vy=y.getAttribute("data-v"),d;
        if(vx!==null&&vy!==null){d=parseFloat(vx)-parseFloat(vy);}
        else if(vx!==null||vy!==null){d=vx!==null?-1:1;}
        else{d=x.textContent.localeCompare(y.textContent);}
        return asc?d:-d;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
});
"""


def _page(
    run: Any, trials: pd.DataFrame, front: pd.DataFrame, provenance: Mapping[str, Any], estimates: set[str], truth: _TrueFront
) -> str:
    """The whole document: summary, front plot, hypervolume, front table, cost models, ranked, config."""
    from nas.run import CONFIG_FILE

    reference = run.reference
    show_hv = reference is not None
    n_figures = 2 if show_hv else 1
    objs = run.objectives.objectives
    notes = []
    if len(objs) > 2:
        notes.append(
            f"The run has {len(objs)} objectives; this plot shows the first two ({objs[0].metric}, {objs[1].metric}), so front points may look dominated here."
        )
    if len(objs) == 1:
        notes.append("The run has one objective; the plot shows it over trials.")
    notes.append(truth.note)
    if estimates:
        notes.append(f"Estimates (modelled, not measured): {', '.join(sorted(estimates))}.")
    front_plot = _figure_html(_front_figure(run, trials, front, estimates, truth), "front-plot", first=True, n_figures=n_figures)
    if show_hv:
        curve = run.hypervolume_trace()
        hv_section = (
            '<section id="hypervolume"><h2>Hypervolume over trials</h2>'
            f'<p class="note">Hypervolume of the feasible front of the trials up to each one, w.r.t. the reference point '
            f"({html.escape(', '.join(f'{v:.6g}' for v in reference))}, minimisation units: the worst of each objective over the space).</p>"
            f"{_figure_html(_hypervolume_figure(trials, curve), 'hypervolume-plot', first=False, n_figures=n_figures)}</section>"
        )
    else:
        hv_section = (
            '<section id="hypervolume"><h2>Hypervolume over trials</h2><p>The run has no reference point, so no hypervolume.</p></section>'
        )
    config_text = (run.directory / CONFIG_FILE).read_text(encoding="utf-8")
    title = f"nas report: {run.directory.name}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{html.escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<div class="summary">{_summary(run, trials, front)}</div>
<section id="front"><h2>Pareto front: {html.escape(" vs ".join(_label(o.metric, estimates) for o in objs[:2]))}</h2>
{"".join(f'<p class="note">{html.escape(n)}</p>' for n in notes)}
{front_plot}</section>
{hv_section}
<section id="front-table-section"><h2>Front ({len(front)} architectures; click a header to sort)</h2>
{_table(front, estimates, "front-table")}</section>
<section id="cost-models"><h2>Cost models and provenance</h2>{_cost_models(run, provenance, estimates)}</section>
{_ranked(run, estimates)}
<section id="config"><h2>Config (<code>{html.escape(CONFIG_FILE)}</code>)</h2><pre>{html.escape(config_text)}</pre></section>
<script>{_SORT_JS}</script>
</body></html>
"""


__all__ = ["ReportSummary", "write_report"]
