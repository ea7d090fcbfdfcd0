"""Whole-space pricing: LUT latencies, params and FLOPs, per-arch listing (the old path) vs per-choice parts.

Why: a search whose metric is a LUT or a count prices the whole space (reference point, constraint check)
before its first trial. The old path lists `space.layers(arch)` arch by arch; the new one counts each
choice of each part once per space and layer options (`SearchSpace.layer_parts`) and prices a batch
with one sparse product (`nas.cost.features.signature_counts`). Both run side by side in this process,
on the same archs, and every row says whether their values are equal (`exact`: bit for bit; `max_rel`:
the largest relative difference).

Cases: NB201's 15,625 cells with a plain LUT (raspi4), a graph-optimised one (onnxruntime: every layer
option) and TVM's (live_only), params and FLOPs; FBNet (2,000 random archs per seed) and OFA MobileNetV3
(1,000 per seed) with a LUT and FLOPs. `cold` is the first call for a space and layer options in the
process (the per-choice counts are built), `warm` a later one (a new batch of the same space: kept
per-choice counts, no kept batch). Then `nas search` time to its first trial on the README's demo and
with a LUT and counted params (from process start to the first trial's start in the study), for HEAD's
committed tree and for the same tree with the files this work changed as they were before it (`--baseline
REV`), each extracted into a temporary folder.

    OMP_NUM_THREADS=1 python benchmarks/pricing.py [--repeats 3] [--old-repeats 1] [--baseline 6a21afa^]
writes benchmarks/results/pricing.csv and pricing.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nas.cost.features as features  # noqa: E402
import nas.cost.lut as lut_module  # noqa: E402
from nas.cost.counts import CountProvider  # noqa: E402
from nas.cost.lut import LUT, find_lut  # noqa: E402
from nas.spaces import get_space  # noqa: E402
from nas.spaces.base import Arch, SearchSpace  # noqa: E402
from tvm_vs_torch import _markdown as markdown  # noqa: E402  (the benchmarks' one table writer)

RESULTS = ROOT / "benchmarks" / "results"


def _forget(space: SearchSpace) -> None:
    """Drop every kept count of `space` (per-choice tables and kept batches): the next call is cold."""
    features._PART_TABLES.pop(space, None)
    features._COUNTS_CACHE.clear()


def _old_lut(lut: LUT, space: SearchSpace, archs: list[Arch]) -> np.ndarray:
    saved = lut_module.signature_counts
    lut_module.signature_counts = features.signature_counts_by_layers  # the old path: layers arch by arch
    try:
        return lut.predict(space, archs)
    finally:
        lut_module.signature_counts = saved


def _old_count(metric: str, space: SearchSpace, archs: list[Arch]) -> np.ndarray:
    """The old `CountProvider.evaluate`: `_value` (a sum over the arch's listed layers) arch by arch."""
    provider = CountProvider(metric, space)  # type: ignore[arg-type]
    return np.array([provider._value(a) for a in archs])


def _timed(fn: Callable[[], np.ndarray]) -> tuple[float, float, np.ndarray]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, out


def _case(name: str, space: SearchSpace, archs: list[Arch], metric: str, seed: int | None, repeats: int, old_repeats: int) -> list[dict]:
    if metric.startswith("lut:"):
        lut = LUT.load(find_lut(metric[4:], space.name))
        old, new = (lambda: _old_lut(lut, space, archs)), (lambda: lut.predict(space, archs))
    else:
        old, new = (lambda: _old_count(metric, space, archs)), (lambda: CountProvider(metric, space).evaluate(archs))  # type: ignore[arg-type]
    rows, reference = [], None
    for r in range(old_repeats):
        _forget(space)
        wall, cpu, reference = _timed(old)
        rows.append(dict(case=name, metric=metric, seed=seed, archs=len(archs), path="per-arch (old)", call="-", repeat=r, wall_s=wall, cpu_s=cpu))
    for r in range(repeats):
        _forget(space)
        for call in ("cold", "warm"):
            if call == "warm":
                features._COUNTS_CACHE.clear()
            wall, cpu, values = _timed(new)
            same = bool(np.array_equal(values, reference))
            rel = float(np.max(np.abs(values - reference) / np.maximum(np.abs(reference), 1e-300)))
            rows.append(dict(case=name, metric=metric, seed=seed, archs=len(archs), path="parts (new)", call=call, repeat=r, wall_s=wall, cpu_s=cpu, exact=same, max_rel=rel))
    return rows


def pricing(repeats: int, old_repeats: int, seeds: list[int]) -> pd.DataFrame:
    rows: list[dict] = []
    nb201 = get_space("nb201")
    everything = nb201.enumerate()
    for metric in ("lut:raspi4", "lut:epyc_zen5__onnxruntime", "lut:epyc_zen5__tvm", "params", "flops"):
        rows += _case("nb201 whole space", nb201, everything, metric, None, repeats, old_repeats)
        print(rows[-1], flush=True)
    for name, n, metrics in (("fbnet", 2000, ("lut:raspi4", "params")), ("ofa_mbv3", 1000, ("lut:titan_rtx_1", "flops"))):
        space = get_space(name)
        for seed in seeds:
            rng = np.random.default_rng(seed)
            archs = [space.sample(rng) for _ in range(n)]
            for metric in metrics:
                rows += _case(f"{name} {n} random", space, archs, metric, seed, 1, 1)
                print(rows[-1], flush=True)
    return pd.DataFrame(rows)


DEMO = ["--space", "nb201", "--dataset", "cifar10", "--strategy", "evolution", "--budget", "1", "--seed", "0"]
SEARCHES = {
    "demo (table latency)": ["--objectives", "accuracy:max,latency@raspi4:min"],
    "counted params": ["--objectives", "accuracy:max,params:min"],
    "LUT latency (onnxruntime)": ["--objectives", "accuracy:max,latency@epyc_zen5__onnxruntime:min"],
}


def _first_trial(tree: Path, args: list[str], out: Path) -> tuple[float, float]:
    """Seconds from starting `nas search` (tree's code) to its first trial's start, and to its exit."""
    env = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    start = dt.datetime.now()
    began = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from nas.cli import main; main()", "search", *DEMO, *args, "--out", str(out)], env=env, check=True, capture_output=True, cwd=tree)
    total = time.perf_counter() - began
    import optuna

    study = optuna.load_study(study_name="nas", storage=f"sqlite:///{out / 'study.db'}")
    first = min(t.datetime_start for t in study.trials)
    return (first - start).total_seconds(), total


#: The files this work changed: the baseline tree is HEAD with these at their state before it.
CHANGED = ["nas/cost/features.py", "nas/cost/counts.py", "nas/spaces"]


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], cwd=ROOT, check=True, capture_output=True).stdout


def _tree(folder: Path, baseline: str | None) -> Path:
    """HEAD's committed tree in `folder`; with `baseline`, the `CHANGED` files as they were at it."""
    folder.mkdir()
    subprocess.run(["tar", "-x", "-C", str(folder)], input=_git("archive", "HEAD"), check=True)
    if baseline:
        for line in _git("diff", "--name-status", baseline, "HEAD", "--", *CHANGED).decode().splitlines():
            status, path = line.split("\t")[0], line.split("\t")[-1]
            if status.startswith("A"):
                (folder / path).unlink()
            else:
                (folder / path).write_bytes(_git("show", f"{baseline}:{path}"))
    return folder


def startup(baseline: str | None, repeats: int) -> pd.DataFrame:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"HEAD": _tree(Path(tmp) / "head", None)}
        if baseline:
            trees[f"HEAD, pricing files at {baseline}"] = _tree(Path(tmp) / "baseline", baseline)
        for r in range(repeats):
            for search, args in SEARCHES.items():
                for label, tree in trees.items():
                    out = Path(tmp) / f"run_{r}_{len(rows)}"
                    first, total = _first_trial(tree, args, out)
                    rows.append(dict(search=search, code=label, repeat=r, first_trial_s=first, exit_s=total))
                    print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def _summary(prices: pd.DataFrame, starts: pd.DataFrame) -> str:
    group = ["case", "metric", "path", "call"]
    table = prices.groupby(group, sort=False).agg(
        runs=("wall_s", "size"), wall_s_median=("wall_s", "median"), wall_s_max=("wall_s", "max"), cpu_s_median=("cpu_s", "median")
    ).reset_index()
    checks = prices[prices["path"] == "parts (new)"].groupby(["case", "metric"], sort=False).agg(all_exact=("exact", "all"), max_rel=("max_rel", "max")).reset_index()
    load = os.getloadavg()
    lines = [
        "# Whole-space pricing: per-arch listing vs per-choice parts",
        "",
        f"Measured {dt.date.today()} on {os.cpu_count()} CPUs, OMP_NUM_THREADS=1, one process; load average while measuring "
        f"{load[0]:.1f} (this process counts 1; more means other work shared the machine and inflated wall times; cpu_s is this process's CPU time).",
        "`cold`: first call for the space and layer options (per-choice counts built); `warm`: a new batch of the same space.",
        "",
        markdown(table),
        "",
        "Equality of the new values with the old path's (per batch; `all_exact`: bit for bit in every repeat and seed):",
        "",
        markdown(checks),
        "",
    ]
    if len(starts):
        s = starts.groupby(["search", "code"], sort=False).agg(runs=("first_trial_s", "size"), first_trial_s_median=("first_trial_s", "median"),
                                                              first_trial_s_max=("first_trial_s", "max"), exit_s_median=("exit_s", "median")).reset_index()
        lines += ["`nas search ... --budget 1` from process start to its first trial's start (study.db), and to exit:", "", markdown(s), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old-repeats", type=int, default=1)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--baseline", default="6a21afa^", help="revision of the pricing files to compare start-up with ('' for none)")
    parser.add_argument("--startup-repeats", type=int, default=2)
    parser.add_argument("--skip-pricing", action="store_true")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.skip_pricing:  # keep the pricing rows of the last run, measure start-up again
        stored = pd.read_csv(RESULTS / "pricing.csv")
        prices = stored[stored["kind"] == "pricing"].drop(columns=["kind"]).dropna(axis=1, how="all")
    else:
        prices = pricing(args.repeats, args.old_repeats, args.seeds)
    starts = startup(args.baseline or None, args.startup_repeats) if args.startup_repeats else pd.DataFrame()
    frame = pd.concat([prices.assign(kind="pricing"), starts.assign(kind="startup")], ignore_index=True)
    frame.to_csv(RESULTS / "pricing.csv", index=False)
    (RESULTS / "pricing.md").write_text(_summary(prices, starts))
    print(_summary(prices, starts))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
