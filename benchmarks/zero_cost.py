"""Zero-cost proxies on NB201: our implementation on digits vs the 200-epoch table and vs published scores.

For the 725 NB201 architectures of NAS-Bench-Suite-Zero's subset (`nb201/zero_cost_725.csv.gz`), every
proxy of `nas.accuracy.zero_cost` is computed once per arch on one mini-batch of scikit-learn digits
(upsampled to 3x32x32, a 10-class network, initial weights from seed 0). Then:

* Spearman / Kendall of each proxy with the 200-epoch validation accuracy of CIFAR-10, CIFAR-100 and
  ImageNet16-120 (higher score = predicted better; params and flops as they are);
* the same correlations for the published scores (computed on the real datasets), on the same archs;
* Spearman between our score and the published score of the same proxy, per dataset. Different data
  (digits vs CIFAR/ImageNet): this is reported, nothing is tuned to it.

Writes `benchmarks/results/zero_cost.csv` (the correlations), `benchmarks/results/zero_cost_scores.csv`
(our raw scores per arch) and `benchmarks/results/zero_cost.md`. Single-threaded.

    python benchmarks/zero_cost.py                    # 725 archs, batch 32 (about 6-8 CPU minutes)
    python benchmarks/zero_cost.py --n-archs 50       # quick look
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau, spearmanr

from nas import tables
from nas.accuracy.zero_cost import PROXIES, arch_proxies, digits_batch
from nas.spaces import get_space

RESULTS = Path(__file__).resolve().parent / "results"
DATASETS = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet": "ImageNet16-120"}
# our proxy -> column of the published file
PUBLISHED = {"synflow": "synflow", "snip": "snip", "grad_norm": "grad_norm", "fisher": "fisher", "jacob_cov": "jacov", "nwot": "nwot", "params": "params_M", "flops": "flops_M"}


def _corr(a: np.ndarray, b: np.ndarray) -> tuple[float, float, int]:
    """Rank correlations over rows where both are defined; -inf (nwot of a cell with no path) ranks last."""
    ok = ~np.isnan(a) & ~np.isnan(b)
    return float(spearmanr(a[ok], b[ok])[0]), float(kendalltau(a[ok], b[ok])[0]), int(ok.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--n-archs", type=int, default=None, help="first N of the 725 archs (default: all)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = tables.require_data_dir(args.data_dir, needed="nb201/zero_cost_725.csv.gz")
    published = pd.read_csv(Path(data) / "nb201" / "zero_cost_725.csv.gz")
    space = get_space("nb201")
    archs_frame = published[published["dataset"] == "cifar10"].reset_index(drop=True)
    if args.n_archs:
        archs_frame = archs_frame.iloc[: args.n_archs]
    X, y = digits_batch(args.batch, seed=args.seed)
    rows, start = [], time.process_time()
    for arch_str in archs_frame["arch_str"]:
        scores = arch_proxies(space, space.from_string(arch_str), X, y, PROXIES, seed=args.seed, num_classes=10)
        rows.append({"arch": arch_str, **scores})
    cpu_s = time.process_time() - start
    ours = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    ours.to_csv(RESULTS / "zero_cost_scores.csv", index=False)

    results = []
    for dataset, key in DATASETS.items():
        acc = tables.nb201(dataset=dataset, devices=[], data_dir=args.data_dir).set_index("arch")["accuracy"]
        pub = published[published["dataset"] == key].set_index("arch_str")
        target = acc.reindex(ours["arch"]).to_numpy()
        pub_rows = pub.reindex(ours["arch"])
        for proxy in PROXIES:
            mine = ours[proxy].to_numpy(dtype=float)
            theirs = pub_rows[PUBLISHED[proxy]].to_numpy(dtype=float)
            rho, tau, n = _corr(mine, target)
            prho, ptau, _ = _corr(theirs, target)
            agree, _, n_agree = _corr(mine, theirs)
            results.append(
                {
                    "dataset": dataset,
                    "proxy": proxy,
                    "spearman_ours": rho,
                    "kendall_ours": tau,
                    "spearman_published": prho,
                    "kendall_published": ptau,
                    "spearman_ours_vs_published": agree,
                    "n_archs": n,
                    "n_published": n_agree,
                }
            )
    frame = pd.DataFrame(results)
    frame.to_csv(RESULTS / "zero_cost.csv", index=False)
    write_markdown(frame, len(ours), args.batch, cpu_s)
    print(frame.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"CPU time for the proxies: {cpu_s:.0f} s ({cpu_s / len(ours):.2f} s per arch)")


def write_markdown(frame: pd.DataFrame, n_archs: int, batch: int, cpu_s: float) -> None:
    lines = [
        "# Zero-cost proxies on NB201 (ours on digits vs published on CIFAR/ImageNet16)",
        "",
        f"{n_archs} archs of `nb201/zero_cost_725.csv.gz`; our proxies on one batch of {batch} scikit-learn digits",
        "(3x32x32, 10-class network, init seed 0); the published ones on the real datasets (NAS-Bench-Suite-Zero).",
        "rho = Spearman with the 200-epoch validation accuracy; tau = Kendall; 'ours vs published' = Spearman",
        "between our score and the published score of the same proxy on the same archs (different data: reported,",
        f"not tuned). CPU time for our proxies: {cpu_s:.0f} s single-threaded. Reproduce: `python benchmarks/zero_cost.py`.",
        "",
    ]
    for dataset, part in frame.groupby("dataset", sort=False):
        lines += [
            f"## {dataset}",
            "",
            "| proxy | rho ours | tau ours | rho published | tau published | ours vs published (rho) | n |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in part.itertuples(index=False):
            lines.append(
                f"| {r.proxy} | {r.spearman_ours:.3f} | {r.kendall_ours:.3f} | {r.spearman_published:.3f} | {r.kendall_published:.3f} | {r.spearman_ours_vs_published:.3f} | {r.n_archs} |"
            )
        lines.append("")
    (RESULTS / "zero_cost.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
