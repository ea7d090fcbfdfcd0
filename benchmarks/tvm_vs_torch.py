"""TVM-compiled vs PyTorch-eager end-to-end latency of the same random NB201 networks (issue #3).

Published hardware-aware NAS work reports TVM 1.2-3.8x faster than PyTorch eager on CPUs; this script
checks that claim on this machine for NB201 (CIFAR-10 network, 1x3x32x32, batch 1, 1 thread), side by
side in one process, for TVM untuned (the default relax pipeline) and tuned by MetaSchedule.

Why in two phases: tuning first (every arch's new tasks into one database; NB201 archs share most
fused blocks, so later archs tune little or nothing), then, once the machine is quiet, every network is
compiled and timed through the three backends in interleaved rounds, so tuning never overlaps a timing
and a slow spell of the machine hits all three alike. Timings are CPU time of the calling thread (all
three run single-threaded on it), minimum of many short batched samples, minimum over rounds: the
statistic that resists other processes on a shared machine (see `nas.cost.build.DEFAULT_TIMING`).

Writes benchmarks/results/tvm_vs_torch.{csv,md}.

    python benchmarks/tvm_vs_torch.py [--archs 20] [--seed 0] [--tune-trials 8,32] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from nas._io import write_atomic
from nas.cost.build import cpu_info, load_average
from nas.cost.measure import backends, time_runner
from nas.cost.measure._tvm import TVMBackend, default_work_dir
from nas.spaces import get_space

RESULTS = Path(__file__).resolve().parent / "results"
TIMING = {"warmup": 10, "repeats": 50, "target_s": 0.002}


def wait_for_quiet(max_load: float, poll_s: float, max_wait_s: float) -> tuple[float, list[float] | None]:
    """Wait until the 1-minute load average is at most `max_load` (or `max_wait_s` passed); returns (waited s, load)."""
    start = time.monotonic()
    while True:
        load = load_average()
        if load is None or load[0] <= max_load or time.monotonic() - start >= max_wait_s:
            return time.monotonic() - start, load
        print(f"load {load[0]:.2f} > {max_load}: waiting", flush=True)
        time.sleep(poll_s)


def _time(runner) -> tuple[float, float]:
    """(thread CPU time, min over samples; wall time, median over samples), both ms per inference."""
    cpu = time_runner(runner, clock=time.thread_time, **TIMING).min_ms
    wall = time_runner(runner, **TIMING).median_ms
    return cpu, wall


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tune-trials", default="8,32", help="comma-separated MetaSchedule trials per new task, one tuned variant each")
    parser.add_argument("--work-dir", default=str(default_work_dir() / "benchmark"), help="tuning databases go to WORK_DIR/trialsN")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-load", type=float, default=1.5)
    parser.add_argument("--max-wait-s", type=float, default=900.0)
    parser.add_argument("--out", default=str(RESULTS / "tvm_vs_torch"))
    args = parser.parse_args(argv)
    budgets = [int(t) for t in str(args.tune_trials).split(",") if t.strip() and int(t) > 0]

    space = get_space("nb201")
    rng = np.random.default_rng(args.seed)
    archs = list(dict.fromkeys(space.sample(rng) for _ in range(10 * args.archs)))[: args.archs]
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    eager = backends.get("torch")()
    variants: dict[str, TVMBackend] = {"untuned": TVMBackend(tune_trials=0)}
    for trials in budgets:
        variants[f"tuned{trials}"] = TVMBackend(tune_trials=trials, work_dir=Path(args.work_dir) / f"trials{trials}", seed=args.seed)

    # --- phase 1: tuning ---------------------------------------------------------------------------
    tuning: dict[str, list[tuple[int, float]]] = {}
    load_tuning = load_average()
    for variant, backend in variants.items():
        if backend.tune_trials == 0:
            continue
        tuning[variant] = []
        for i, arch in enumerate(archs):
            t0 = time.perf_counter()
            names = backend.tune(space.build(arch), (x,), threads=1)
            tuning[variant].append((len(names), time.perf_counter() - t0))
            print(f"[tune {variant} {i + 1}/{len(archs)}] {len(names)} new task(s) in {tuning[variant][-1][1]:.0f} s", flush=True)

    # --- phase 2: measuring ------------------------------------------------------------------------
    waited, load_start = wait_for_quiet(args.max_load, 30.0, args.max_wait_s)
    rows = []
    for i, arch in enumerate(archs):
        net = space.build(arch).eval()
        with torch.no_grad():
            expected = net(x).numpy()
        row: dict[str, object] = {"arch": space.to_string(arch)}
        runners = {"torch": eager.compile(net, (x,), threads=1)}
        for variant, backend in variants.items():
            t0 = time.perf_counter()
            runners[variant] = backend.compile(net, (x,), threads=1)
            row[f"compile_s_{variant}"] = time.perf_counter() - t0
            row[f"max_abs_err_{variant}"] = float(np.abs(runners[variant].numpy()[0] - expected).max())
        cpu = {name: np.inf for name in runners}
        wall: dict[str, list[float]] = {name: [] for name in runners}
        for _ in range(args.rounds):
            for name, runner in runners.items():
                c, w = _time(runner)
                cpu[name], wall[name] = min(cpu[name], c), [*wall[name], w]
        for name in runners:
            row[f"{name}_ms"], row[f"{name}_wall_ms"] = cpu[name], float(np.median(wall[name]))
        for variant in variants:
            row[f"speedup_{variant}"] = cpu["torch"] / cpu[variant]
        for variant, per_arch in tuning.items():
            row[f"tasks_tuned_{variant}"], row[f"tune_s_{variant}"] = per_arch[i]
        rows.append(row)
        print(f"[measure {i + 1}/{len(archs)}] " + ", ".join(f"{k}={v:.3g}" for k, v in row.items() if str(k).startswith(("speedup", "torch_ms"))), flush=True)
    table = pd.DataFrame(rows)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out.with_suffix(".csv"), table.to_csv(index=False, float_format="%.6g"))
    info = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_info().get("model_name"),
        "load_tuning_start": load_tuning,
        "load_measure_start": load_start,
        "waited_s": round(waited),
        "load_end": load_average(),
        "versions": {**eager.versions(), **{k: v for k, v in variants["untuned"].versions().items() if k != "tune_trials"}},
        "args": vars(args),
        "variants": list(variants),
    }
    write_atomic(out.with_suffix(".md"), _report(table, info))
    return table


def _markdown(table: pd.DataFrame) -> str:
    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else "`" + value.replace("|", "\\|") + "`" if isinstance(value, str) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _summary(values: pd.Series) -> str:
    return f"{values.median():.2f}x (min {values.min():.2f}x, max {values.max():.2f}x)"


def _report(table: pd.DataFrame, info: dict) -> str:
    args = info["args"]
    lines = [
        "# TVM-compiled vs PyTorch eager, end to end, NB201 (CIFAR-10 network, 1x3x32x32, batch 1, 1 thread)",
        "",
        f"{len(table)} random NB201 archs (seed {args['seed']}), each compiled by every variant and timed side by side in one "
        f"process, {args['rounds']} interleaved rounds. Latency = CPU time of the calling thread, minimum of 50 batched samples "
        "of ~2 ms, minimum over rounds; `*_wall_ms` = wall-clock median (inflated by other processes on a shared machine). "
        "Speedup = eager ms / TVM ms (>1: TVM faster). `untuned` = relax's default pipeline; `tunedN` = MetaSchedule, "
        "N trials per task, tasks keyed by anchor block, one database per N reused across the archs.",
        "",
        "| TVM variant | speedup over eager: median (min, max) | TVM ms median | eager ms median | max abs err vs PyTorch | tasks tuned | tuning time |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant in info["variants"]:
        tasks = table.get(f"tasks_tuned_{variant}")
        seconds = table.get(f"tune_s_{variant}")
        tuned = "-" if tasks is None else str(int(tasks.sum()))
        spent = "-" if seconds is None else f"{seconds[tasks > 0].sum() / 60:.1f} min (+{seconds[tasks == 0].sum() / 60:.1f} min export/extract of archs with nothing new)"
        lines.append(
            f"| {variant} | {_summary(table[f'speedup_{variant}'])} | {table[f'{variant}_ms'].median():.3f} | "
            f"{table['torch_ms'].median():.3f} | {table[f'max_abs_err_{variant}'].max():.1e} | {tuned} | {spent} |"
        )
    lines += [""]
    for variant in info["variants"]:
        tasks = table.get(f"tasks_tuned_{variant}")
        if tasks is not None and tasks.sum() == 0:
            lines.append(f"- {variant}: every task was already in its database (tuned by an earlier run of this script).")
        elif tasks is not None:
            first = int((tasks.cumsum() < tasks.sum()).sum()) + 1
            lines.append(f"- {variant}: all {int(tasks.sum())} tasks were new by arch {first}; the other archs reused the database.")
    lines += [
        "",
        f"Machine: {info['cpu']}; load average at tuning start {info['load_tuning_start']}, at measuring start {info['load_measure_start']} "
        f"(after waiting {info['waited_s']} s for 1-min load <= {args['max_load']}), at the end {info['load_end']}. {info['date']}.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()),
        "",
        "## Per arch",
        "",
        _markdown(table),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
