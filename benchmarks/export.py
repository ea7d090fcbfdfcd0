"""Exported networks timed here next to the LUT the search used, and the HTML report's size and load time.

Why: `nas export` promises a network that runs as fast as the search assumed. This script checks that
promise on this machine for the top 5 of a front (by accuracy):

1. `lut`: measures an NB201 ONNX Runtime LUT on this machine (`nas lut build --backend onnxruntime
   --calibrate 10`, 3 fresh processes, 1 thread) into `latency_luts/epyc_zen4__onnxruntime.csv` (beside its
   `ofa_mbv3_small` rows) and validates it on 50 fresh networks (`nas lut validate`).
2. `export`: a 200-trial NB201 search on accuracy x `latency@epyc_zen4__onnxruntime`; its top 5 are
   exported as ONNX (`--repeats` times each: one export = one timing) and as tuned TVM libraries
   (`--tvm-trials` MetaSchedule trials per new kernel). ONNX is compared with the LUT the search used;
   TVM with `epyc_zen5__tvm`, the tuned TVM LUT shipped from an earlier VM (another host: a reference
   point, not a validation), and with this machine's ORT latency.
3. `report`: `nas report` on that run: file size, write time, and the time until both plots are drawn
   in headless Chromium (`performance.now()` the page records, 5 cold browser starts).

Writes benchmarks/results/export.csv, export_report.csv and export.md.

    python benchmarks/export.py lut export report summary [--tvm-trials 16]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pandas as pd

from nas._io import write_atomic

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
LUT_NAME = "epyc_zen4__onnxruntime"
RUN_DIR = RESULTS.parent / ".export_run"


def build_lut() -> None:
    from nas.cost.build import build_lut as build, save_built
    from nas.cost.lut import LUT
    from nas.cost.validate import validate_lut
    from nas.spaces import get_space

    space = get_space("nb201")
    path = ROOT / "latency_luts" / f"{LUT_NAME}.csv"
    started = time.time()
    lut = build(space, "onnxruntime", processes=3, threads=1, dataset="cifar10", device="epyc_zen4", calibrate=10, seed=0)
    save_built(lut, path, overwrite=True)
    print(f"built in {time.time() - started:.0f} s", flush=True)
    check = validate_lut(LUT.load(path), space, "onnxruntime", n_archs=50, seed=1, processes=3, dataset="cifar10")
    print(json.dumps({k: v for k, v in check.figures.items() if not isinstance(v, (dict, list))}, indent=1))


def search() -> None:
    from nas.run import Run, RunConfig

    if RUN_DIR.exists():
        shutil.rmtree(RUN_DIR)
    config = RunConfig(space="nb201", dataset="cifar10", objectives=["accuracy:max", f"latency@{LUT_NAME}:min"], strategy="evolution", budget=200, seed=0)
    Run.open(RUN_DIR, config).search()


def export(repeats: int, tvm_trials: int) -> None:
    from nas.export import export_run, ordered_front

    from nas.run import load_run

    search()
    _, front = ordered_front(load_run(RUN_DIR))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rank in range(1, 6):
            arch = front.loc[rank - 1, "arch"]
            for r in range(repeats):
                started = time.time()
                result = export_run(RUN_DIR, "onnx", Path(tmp) / f"{rank}_{r}.onnx", rank=rank, luts=["epyc_zen5__onnxruntime"])
                rows.append(_row(rank, arch, front.loc[rank - 1, "accuracy"], result, r, time.time() - started))
                print(rows[-1], flush=True)
            started = time.time()
            result = export_run(RUN_DIR, "tvm", Path(tmp) / f"{rank}.so", rank=rank, luts=["epyc_zen5__tvm"], tune_trials=tvm_trials)
            rows.append(_row(rank, arch, front.loc[rank - 1, "accuracy"], result, 0, time.time() - started))
            print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(RESULTS / "export.csv", index=False)


def _row(rank: int, arch: str, accuracy: float, result, repeat: int, seconds: float) -> dict:
    return {
        "rank": rank,
        "arch": arch,
        "accuracy": accuracy,
        "format": result.format,
        "repeat": repeat,
        "measured_min_ms": result.latency_ms,
        "measured_median_ms": result.latency_median_ms,
        "search_lut_ms": result.search_latency[f"latency@{LUT_NAME}"],
        "other_lut": next(iter(result.lut_latency)),
        "other_lut_ms": next(iter(result.lut_latency.values())),
        "max_abs_diff": result.max_abs_diff,
        "tune_trials": result.backend.get("tune_trials", ""),
        "seconds": seconds,
    }


def report(loads: int = 5) -> None:
    from nas.report.html import write_report

    chromium = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        started = time.time()
        summary = write_report(RUN_DIR, page)
        written = time.time() - started
        for i in range(loads):
            started = time.time()
            done = subprocess.run(
                [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND", f"--user-data-dir={tmp}/profile{i}", "--dump-dom", page.as_uri()],
                capture_output=True, text=True, timeout=120, check=True,
            )
            browser = time.time() - started
            drawn = re.search(r'data-rendered-ms="([0-9.]+)"', done.stdout)
            rows.append({
                "load": i, "bytes": summary.bytes, "trials": summary.n_trials, "front": summary.n_front, "write_s": written,
                "plots_drawn_ms": float(drawn.group(1)) if drawn else float("nan"), "browser_call_s": browser,
                "points": done.stdout.count('class="point"'),
            })
            print(rows[-1], flush=True)
    pd.DataFrame(rows).to_csv(RESULTS / "export_report.csv", index=False)


def summary() -> None:
    frame = pd.read_csv(RESULTS / "export.csv")
    onnx = frame[frame.format == "onnx"].groupby(["rank", "arch", "accuracy"], as_index=False).agg(
        measured_min_ms=("measured_min_ms", "median"), spread_ms=("measured_min_ms", lambda s: s.max() - s.min()), search_lut_ms=("search_lut_ms", "first"),
        zen5_lut_ms=("other_lut_ms", "first"),
    )
    onnx["lut_error_pct"] = (onnx.search_lut_ms / onnx.measured_min_ms - 1) * 100
    tvm = frame[frame.format == "tvm"][["rank", "measured_min_ms", "other_lut_ms", "tune_trials", "seconds"]].rename(
        columns={"measured_min_ms": "tvm_measured_ms", "other_lut_ms": "zen5_tvm_lut_ms", "seconds": "tvm_export_s"}
    )
    table = onnx.merge(tvm, on="rank")
    rep = pd.read_csv(RESULTS / "export_report.csv")
    lines = [
        "# Exported networks against the LUT the search used; the HTML report",
        "",
        "`python benchmarks/export.py lut export report summary` on the 2-core EPYC Zen 4 VM (1 thread).",
        f"Top 5 (by accuracy) of a 200-trial NB201 search on accuracy x `latency@{LUT_NAME}` (this machine's",
        "ONNX Runtime LUT, built by the `lut` step). ONNX: median over the repeats of one export's",
        "latency (min of 50 batched samples, thread CPU time), `spread_ms` the range over repeats. TVM:",
        "one tuned export each, beside the tuned TVM LUT shipped from the earlier Zen 5 VM (another host).",
        "",
        _markdown(table),
        "",
        f"ONNX: mean |LUT error| {table.lut_error_pct.abs().mean():.1f} %, max {table.lut_error_pct.abs().max():.1f} %.",
        "",
        "## HTML report (`nas report`) of that run",
        "",
        f"{rep.bytes.iloc[0]:,} bytes ({rep.trials.iloc[0]} trials, {rep.front.iloc[0]} on the front; plotly.js inline), "
        f"written in {rep.write_s.iloc[0]:.2f} s. Headless Chromium, {len(rep)} cold starts: plots drawn "
        f"{rep.plots_drawn_ms.min() / 1000:.2f}-{rep.plots_drawn_ms.max() / 1000:.2f} s after navigation; "
        f"whole `--dump-dom` call {rep.browser_call_s.min():.1f}-{rep.browser_call_s.max():.1f} s; {rep.points.iloc[0]} plotted points.",
    ]
    write_atomic(RESULTS / "export.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


def _markdown(table: pd.DataFrame) -> str:
    """A markdown table (pandas' `to_markdown` needs tabulate, which nas does not depend on)."""
    from tvm_vs_torch import _markdown as markdown  # the benchmarks' one table writer

    return markdown(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("steps", nargs="+", choices=["lut", "export", "report", "summary"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tvm-trials", type=int, default=16)
    args = parser.parse_args()
    for step in args.steps:
        if step == "lut":
            build_lut()
        elif step == "export":
            export(args.repeats, args.tvm_trials)
        elif step == "report":
            report()
        else:
            summary()


if __name__ == "__main__":
    main()
