"""Measurement noise of each backend on this machine: NB201 networks timed in several fresh processes.

Why: a LUT's validation figures cannot be better than the measurement they are checked against. This
script times the same random NB201 networks (CIFAR-10 network, 1x3x32x32, batch 1, 1 thread) through
PyTorch eager, ONNX Runtime and TVM, each in `--processes` fresh processes run one after the other, with
the LUT builder's timing (`nas.cost.build.DEFAULT_TIMING`: 200 batched samples of ~0.5 ms since
2026-11-26, 50 of ~2 ms in the stored results; thread CPU time)
and reports, per backend, over networks:

- within a process: (max - min) / median of the 50 samples, and (median - min) / min;
- between processes: (max - min) / median of the per-process minima (the statistic LUTs use).

TVM uses the MetaSchedule database that `NAS_TVM_WORK_DIR` points to, with `NAS_TVM_TUNE_TRIALS` (32 for
the shipped LUT); networks whose tasks are all in it compile without tuning.

Writes benchmarks/results/backend_noise.{csv,md}.

    NAS_TVM_TUNE_TRIALS=32 NAS_TVM_WORK_DIR=~/.cache/nas/tvm/lut \\
        python benchmarks/backend_noise.py [--archs 10] [--processes 3] [--backends torch,onnxruntime,tvm]
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from pathlib import Path

import pandas as pd

from nas._io import write_atomic
from nas.cost.build import cpu_info, load_average, timing_settings
from nas.cost.measure._fresh import run_fresh
from nas.cost.measure._jobs import time_archs_spread
from nas.cost.validate import random_archs
from nas.spaces import get_space

RESULTS = Path(__file__).resolve().parent / "results"


def run(n_archs: int, processes: int, names: list[str], seed: int) -> pd.DataFrame:
    space = get_space("nb201")
    strings = [space.to_string(a) for a in random_archs(space, n_archs, seed)]
    settings = timing_settings(None, threads=1)
    rows = []
    for name in names:
        for p in range(processes):
            started = time.time()
            timings = run_fresh(time_archs_spread, (space, strings, name, 1, settings, seed * 1000 + p, {"dataset": "cifar10"}))
            rows += [{"backend": name, "process": p, "arch": arch, **t} for arch, t in zip(strings, timings)]
            print(f"{name} process {p}: {time.time() - started:.0f} s", flush=True)
    return pd.DataFrame(rows)


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.assign(
        within_range_pct=(frame.max_ms - frame.min_ms) / frame.median_ms * 100,
        median_over_min_pct=(frame.median_ms / frame.min_ms - 1) * 100,
    )
    per_net = frame.groupby(["backend", "arch"]).agg(
        min_ms=("min_ms", "median"),
        within_range_pct=("within_range_pct", "median"),
        median_over_min_pct=("median_over_min_pct", "median"),
        between_pct=("min_ms", lambda v: (v.max() - v.min()) / v.median() * 100),
    )
    rows = []
    for backend, group in per_net.groupby(level="backend"):
        row = {"backend": backend, "networks": len(group), "latency_ms_median": group.min_ms.median()}
        for col in ("within_range_pct", "median_over_min_pct", "between_pct"):
            row[f"{col}_median"] = group[col].median()
            row[f"{col}_max"] = group[col].max()
        rows.append(row)
    return pd.DataFrame(rows)


def report(frame: pd.DataFrame, table: pd.DataFrame, processes: int, seed: int) -> str:
    lines = [
        "# Measurement noise per backend, NB201 (CIFAR-10 network, 1x3x32x32, batch 1, 1 thread)",
        "",
        f"{table.networks.iloc[0]} random networks (seed {seed}), each timed in {processes} fresh processes per backend, one after "
        "the other, with the LUT builder's timing: 50 samples of ~2 ms of batched calls, thread CPU time. "
        "Within a process: spread of the 50 samples; between processes: spread of the per-process minima "
        "(the figure a LUT and its validation use). Median and max over networks. Reproduce: "
        "`NAS_TVM_TUNE_TRIALS=32 NAS_TVM_WORK_DIR=~/.cache/nas/tvm/lut python benchmarks/backend_noise.py`.",
        "",
        "| backend | latency ms (median net) | samples (max-min)/median: median, max | (median-min)/min: median, max | between processes (max-min)/median: median, max |",
        "|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.backend} | {r.latency_ms_median:.3f} | {r.within_range_pct_median:.1f} %, {r.within_range_pct_max:.1f} % | "
            f"{r.median_over_min_pct_median:.1f} %, {r.median_over_min_pct_max:.1f} % | {r.between_pct_median:.1f} %, {r.between_pct_max:.1f} % |"
        )
    cpu = cpu_info()
    lines += ["", f"Machine: {cpu.get('model_name')}; load average at the end {load_average()}; {dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=10)
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--backends", default="torch,onnxruntime,tvm")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    frame = run(args.archs, args.processes, args.backends.split(","), args.seed)
    table = summary(frame)
    RESULTS.mkdir(exist_ok=True)
    write_atomic(RESULTS / "backend_noise.csv", frame.to_csv(index=False))
    write_atomic(RESULTS / "backend_noise.md", report(frame, table, args.processes, args.seed))
    print(table.to_string(index=False))


if __name__ == "__main__":
    main()
