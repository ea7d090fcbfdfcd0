"""Once-for-All on digits, small variant: training cost, weight-sharing quality per phase, search cost, and
the front found over the supernet against stand-alone training.

Parts (results in `benchmarks/results/supernet_*.csv`; `summary` writes `supernet.md`):

- `train`: `nas supernet train --space ofa_mbv3_small --data digits` with its defaults (5 epochs per phase,
  all 1,079 training digits, 1 thread); seconds and accuracy of the largest/smallest net per phase.
- `sharing`: `--subnets` (32) sub-networks spanning the space (the smallest, the largest, and the rest at evenly spaced FLOPs
  quantiles of 4,000 random ones): inherited validation accuracy after every phase (BatchNorm
  recalibrated on 4 batches), and the accuracy of the same sub-network trained stand-alone from scratch
  with the same recipe for the same number of epochs the supernet trained (6 phases x 5). Kendall tau
  per phase. Writes `supernet_weight_sharing.csv` (`arch`, `inherited_accuracy`, `standalone_accuracy`, ...).
- `noise`: the same sub-networks stand-alone again with seed 1 (`supernet_standalone_seed1.csv`): the
  seed-to-seed Kendall tau is the most any ranking can reach against one stand-alone seed.
- `cost`: seconds to score one sub-network with inherited weights, to fit the predictor on 400 scores, per
  candidate with the predictor, and for a constrained search (`nas supernet search`) to its answer.
- `search`: `nas search --accuracy supernet:SN --objectives accuracy:max,flops:min --strategy evolution
  --budget 300`; its front's best members fine-tuned (`nas train --init supernet:SN`) and trained from
  scratch, next to their inherited accuracy.

    python benchmarks/supernet.py train sharing noise cost search summary   # ~2.5 h here
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd

RESULTS = Path(__file__).resolve().parent / "results"
SPACE_NAME = "ofa_mbv3_small"
RECIPE = {"epochs": 5, "max_train": None}


def _space():
    from nas.spaces import get_space

    return get_space(SPACE_NAME)


def train(workdir: Path) -> pd.DataFrame:
    cmd = [sys.executable, "-m", "nas.cli", "supernet", "train", "--space", SPACE_NAME, "--data", "digits", "--out", str(workdir / "sn"), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - start
    history = json.loads((workdir / "sn" / "manifest.json").read_text())["history"]
    frame = pd.DataFrame(history)
    frame["total_wall_seconds"] = wall
    frame.to_csv(RESULTS / "supernet_train.csv", index=False)
    return frame


def spanning_subnets(n: int = 30, seed: int = 0) -> list:
    from nas.cost.counts import CountProvider
    from nas.spaces.base import Arch

    space = _space()
    rng = np.random.default_rng(seed)
    pool = list(dict.fromkeys(space.sample(rng) for _ in range(4000)))
    flops = CountProvider("flops", space, dataset="digits").evaluate(pool)
    order = np.argsort(flops, kind="stable")
    picks = [pool[int(order[int(round(q))])] for q in np.linspace(0, len(pool) - 1, n)]
    largest = Arch({d.name: max(d.choices) for d in space.decisions})
    smallest = space.canonical(Arch({d.name: min(d.choices) for d in space.decisions}))
    return list(dict.fromkeys([smallest, *picks, space.canonical(largest)]))


def _standalone(jobs: list[str], out: Path, epochs: int, seed: int = 0) -> None:
    """Child: train `jobs` (arch strings) from scratch with `seed` and write their accuracies to `out` (JSON)."""
    from nas.accuracy.training import Recipe, load_prepared, train_arch

    space = _space()
    recipe = Recipe.from_mapping({**RECIPE, "epochs": epochs})
    data = load_prepared("digits", recipe)
    rows = []
    for text in jobs:
        start = time.perf_counter()
        result = train_arch(space, space.from_string(text), data, recipe, seed=seed)
        rows.append({"arch": text, "standalone_accuracy": result.accuracy, "standalone_test_accuracy": result.test_accuracy, "standalone_seconds": time.perf_counter() - start})
        print(json.dumps(rows[-1]), flush=True)
        out.write_text(json.dumps(rows))  # after each net: a kill keeps what was trained


def sharing(workdir: Path, subnets: int = 32) -> pd.DataFrame:
    import torch

    from nas.accuracy.supernet.train import SupernetSettings, evaluate_subnet, load_supernet, phase_names
    from nas.accuracy.training import Recipe, load_prepared

    space = _space()
    sn = workdir / "sn"
    manifest = json.loads((sn / "manifest.json").read_text())
    recipe = Recipe.from_mapping(manifest["recipe"])
    settings = SupernetSettings.from_mapping(manifest["settings"], space)
    data = load_prepared("digits", recipe)
    archs = spanning_subnets(subnets - 2)
    total_epochs = sum(h["epochs"] for h in manifest["history"])
    texts = [space.to_string(a) for a in archs]
    procs, outs = [], []
    for w in range(2):
        out = workdir / f"standalone_{w}.json"
        outs.append(out)
        procs.append(subprocess.Popen([sys.executable, __file__, "_standalone", "--jobs", json.dumps(texts[w::2]), "--out", str(out), "--epochs", str(total_epochs)]))
    model, _ = load_supernet(sn, space, data.input_spec)
    rows = {t: {"arch": t} for t in texts}
    for phase in phase_names(space):
        model.load_state_dict(torch.load(sn / f"phase_{phase}.pt", weights_only=True))
        for arch, text in zip(archs, texts):
            rows[text][f"inherited_{phase}"] = evaluate_subnet(model, arch, data, settings, recipe)
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("a stand-alone training worker failed")
    for out in outs:
        for r in json.loads(out.read_text()):
            rows[r["arch"]].update(r)
    from nas.cost.counts import CountProvider

    frame = pd.DataFrame(rows.values())
    frame.insert(1, "inherited_accuracy", frame[f"inherited_{phase_names(space)[-1]}"])
    frame.insert(2, "standalone_accuracy", frame.pop("standalone_accuracy"))
    frame["flops_M"] = CountProvider("flops", space, dataset="digits").evaluate(archs)
    frame["standalone_epochs"] = total_epochs
    frame.to_csv(RESULTS / "supernet_weight_sharing.csv", index=False)
    return frame


def noise(workdir: Path) -> pd.DataFrame:
    """The same sub-networks as `sharing`, trained stand-alone again with seed 1: how well stand-alone
    training ranks them against itself, the ceiling for any inherited ranking on this data."""
    frame = pd.read_csv(RESULTS / "supernet_weight_sharing.csv")
    texts, epochs = frame["arch"].tolist(), int(frame["standalone_epochs"].iloc[0])
    procs, outs = [], []
    for w in range(2):
        out = workdir / f"standalone_seed1_{w}.json"
        outs.append(out)
        procs.append(subprocess.Popen([sys.executable, __file__, "_standalone", "--jobs", json.dumps(texts[w::2]), "--out", str(out), "--epochs", str(epochs), "--seed", "1"]))
    for p in procs:
        if p.wait() != 0:
            raise SystemExit("a stand-alone training worker failed")
    rows = [r for out in outs for r in json.loads(out.read_text())]
    seed1 = pd.DataFrame(rows).rename(columns=lambda c: c.replace("standalone_", "seed1_") if c != "arch" else c)
    seed1.to_csv(RESULTS / "supernet_standalone_seed1.csv", index=False)
    return seed1


def cost(workdir: Path) -> pd.DataFrame:
    from nas.accuracy.supernet import SupernetAccuracy, SupernetPredictor

    space = _space()
    sn = workdir / "sn"
    rows = []
    start = time.perf_counter()
    scorer = SupernetAccuracy(space, sn)
    rows.append({"what": "load supernet and data", "seconds": time.perf_counter() - start})
    rng = np.random.default_rng(7)
    archs = [space.sample(rng) for _ in range(20)]
    start = time.perf_counter()
    scorer.evaluate(archs)
    rows.append({"what": "score one sub-network with inherited weights (BN recalibration + validation)", "seconds": (time.perf_counter() - start) / len(archs)})
    (sn / "predictor_samples.csv").unlink(missing_ok=True)
    start = time.perf_counter()
    predictor = SupernetPredictor(space, sn, samples=400, seed=0)
    rows.append({"what": "fit the accuracy predictor (score 400 sub-networks + fit)", "seconds": time.perf_counter() - start, **{f"predictor_{k}": v for k, v in predictor.validation.items()}})
    many = [space.sample(rng) for _ in range(2000)]
    start = time.perf_counter()
    predictor.evaluate(many)
    rows.append({"what": "predictor, per candidate (batch of 2,000)", "seconds": (time.perf_counter() - start) / len(many)})
    cmd = [sys.executable, "-m", "nas.cli", "supernet", "search", "--supernet", str(sn), "--space", SPACE_NAME, "-c", "flops<=3"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    line = " ".join(done.stdout.split())
    search_s = float(line.split("search ")[1].split(" s")[0])
    rows.append({"what": "constrained search to its answer (flops<=3, predictor ready; 100 x 50 generations)", "seconds": search_s, "output": line})
    frame = pd.DataFrame(rows)
    frame.to_csv(RESULTS / "supernet_cost.csv", index=False)
    return frame


def search(workdir: Path) -> pd.DataFrame:
    sn, run = workdir / "sn", workdir / "ofa_run"
    cmd = [sys.executable, "-m", "nas.cli", "search", "--space", SPACE_NAME, "--dataset", "digits", "--accuracy", f"supernet:{sn}",
           "--objectives", "accuracy:max,flops:min", "--strategy", "evolution", "--budget", "300", "--seed", "0", "--out", str(run), "--no-progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - start
    front = pd.read_csv(run / "pareto.csv").sort_values("accuracy", ascending=False)
    rows = []
    manifest = json.loads((sn / "manifest.json").read_text())
    epochs = sum(h["epochs"] for h in manifest["history"])
    for text, inherited, flops in front[["arch", "accuracy", "flops"]].head(3).itertuples(index=False):
        row = {"arch": text, "inherited_accuracy": inherited, "flops": flops, "search_seconds": wall, "front_size": len(front)}
        with tempfile.TemporaryDirectory() as tmp:
            tuned = subprocess.run([sys.executable, "-m", "nas.cli", "train", "--space", SPACE_NAME, "--arch", text, "--init", f"supernet:{sn}",
                                    "--epochs", "5", "--training-option", "max_train=null", "--out", str(Path(tmp) / "ft"), "--no-progress"], capture_output=True, text=True, check=True)
            row["finetuned_accuracy"] = float(tuned.stdout.split("accuracy=")[1].split()[0])
            scratch = subprocess.run([sys.executable, "-m", "nas.cli", "train", "--space", SPACE_NAME, "--arch", text, "--epochs", str(epochs),
                                      "--training-option", "max_train=null", "--out", str(Path(tmp) / "sc"), "--no-progress"], capture_output=True, text=True, check=True)
            row["standalone_accuracy"] = float(scratch.stdout.split("accuracy=")[1].split()[0])
        rows.append(row)
        print(row, flush=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(RESULTS / "supernet_search.csv", index=False)
    return frame


def _cell(text: str) -> str:
    """An arch string inside a markdown table cell (its `|` escaped)."""
    return text.replace("|", "\\|")


def _tau(a, b) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(a, b)[0])


def summary() -> str:
    lines = ["# Once-for-All on digits, `ofa_mbv3_small` (`benchmarks/supernet.py`)", ""]
    if (RESULTS / "supernet_train.csv").is_file():
        t = pd.read_csv(RESULTS / "supernet_train.csv")
        lines += ["## Supernet training (progressive shrinking, 1 thread)", "", "| phase | epochs | seconds | largest net, val % | smallest net of the phase, val % |", "|---|---|---|---|---|"]
        lines += [f"| {r.phase} | {r.epochs} | {r.seconds:.0f} | {r.largest_accuracy:.1f} | {r.smallest_accuracy:.1f} |" for r in t.itertuples()]
        lines += ["", f"Total {t.total_wall_seconds.iloc[0] / 60:.1f} min wall, start-up included.", ""]
    if (RESULTS / "supernet_weight_sharing.csv").is_file():
        w = pd.read_csv(RESULTS / "supernet_weight_sharing.csv")
        phases = [c.removeprefix("inherited_") for c in w.columns if c.startswith("inherited_") and c != "inherited_accuracy"]
        lines += [f"## Weight sharing: {len(w)} sub-networks, inherited vs stand-alone ({int(w.standalone_epochs.iloc[0])} epochs from scratch)", "",
                  "| after phase | Kendall tau (inherited vs stand-alone) | median inherited val % |", "|---|---|---|"]
        lines += [f"| {p} | {_tau(w[f'inherited_{p}'], w.standalone_accuracy):.3f} | {w[f'inherited_{p}'].median():.1f} |" for p in phases]
        lines += ["", f"Stand-alone accuracy: median {w.standalone_accuracy.median():.1f} % (min {w.standalone_accuracy.min():.1f}, max {w.standalone_accuracy.max():.1f}); "
                  f"Kendall tau of FLOPs vs stand-alone {_tau(w.flops_M, w.standalone_accuracy):.3f} (the proxy baseline).", ""]
        if (RESULTS / "supernet_standalone_seed1.csv").is_file():
            both = w.merge(pd.read_csv(RESULTS / "supernet_standalone_seed1.csv"), on="arch")
            mean = (both.standalone_accuracy + both.seed1_accuracy) / 2
            lines += [f"Stand-alone again with seed 1 ({len(both)} nets): Kendall tau seed 0 vs seed 1 {_tau(both.standalone_accuracy, both.seed1_accuracy):.3f} "
                      f"(the ceiling for any ranking on this data); mean |seed difference| {(both.standalone_accuracy - both.seed1_accuracy).abs().mean():.2f} points; "
                      f"inherited vs the mean of both seeds {_tau(both.inherited_accuracy, mean):.3f}; FLOPs vs that mean {_tau(both.flops_M, mean):.3f}.", ""]
    if (RESULTS / "supernet_cost.csv").is_file():
        c = pd.read_csv(RESULTS / "supernet_cost.csv")
        lines += ["## Cost", "", "| step | seconds |", "|---|---|"] + [f"| {r.what} | {r.seconds:.4g} |" for r in c.itertuples()]
        fit = c[c.what.str.startswith("fit the accuracy")].iloc[0]
        lines += ["", f"Predictor held-out (80/20 of its 400 scores): Spearman {fit.predictor_spearman:.3f}, Kendall {fit.predictor_kendall:.3f}.", ""]
    if (RESULTS / "supernet_search.csv").is_file():
        s = pd.read_csv(RESULTS / "supernet_search.csv")
        lines += [f"## Search over the supernet (evolution, 300 trials, {s.search_seconds.iloc[0]:.0f} s, front of {int(s.front_size.iloc[0])}): its 3 most accurate members", "",
                  "| arch | FLOPs (M) | inherited | fine-tuned 5 epochs | stand-alone from scratch |", "|---|---|---|---|---|"]
        lines += [f"| `{_cell(r.arch)}` | {r.flops:.2f} | {r.inherited_accuracy:.1f} | {r.finetuned_accuracy:.1f} | {r.standalone_accuracy:.1f} |" for r in s.itertuples()]
        lines.append("")
    text = "\n".join(lines)
    (RESULTS / "supernet.md").write_text(text)
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parts", nargs="+", choices=["train", "sharing", "noise", "cost", "search", "summary", "_standalone"])
    parser.add_argument("--workdir", type=Path, default=Path("runs/bench_supernet"))
    parser.add_argument("--subnets", type=int, default=32, help="sub-networks the sharing part trains stand-alone")
    parser.add_argument("--jobs"), parser.add_argument("--out", type=Path), parser.add_argument("--epochs", type=int), parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    args.workdir.mkdir(parents=True, exist_ok=True)
    for part in args.parts:
        if part == "_standalone":
            _standalone(json.loads(args.jobs), args.out, args.epochs, args.seed)
        elif part == "summary":
            print(summary())
        elif part == "sharing":
            sharing(args.workdir, args.subnets)
        else:
            {"train": train, "noise": noise, "cost": cost, "search": search}[part](args.workdir)


if __name__ == "__main__":
    main()
