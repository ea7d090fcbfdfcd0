"""A graph hypernetwork (GHN) trained once (`nas hypernet train`) scores any NB201 cell without training
it: `HypernetAccuracy`, spec `ghn:PATH`, tier `estimate`.

Why: training each candidate is the costly query of a search; a GHN generates the weights of any cell's
network from its graph in milliseconds, and the validation accuracy with those weights ranks cells
(how well: `benchmarks/ghn.py`). By default the networks it generates for are the space's own (its
`channels` and `cells_per_stage`, the network the `params` / `flops` objectives describe); a GHN trained
with smaller `GHNSettings.channels` / `cells_per_stage` (recorded in the manifest) scores a smaller
stand-in network, and `network(arch)` is then that smaller network.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas.accuracy.hypernet.train import ArchNetworks, GHNSettings, HypernetError, check_space, load_ghn, read_manifest, score, space_fingerprint, train_ghn
from nas.accuracy.training import deterministic, load_prepared
from nas.objectives import MetricProvider, Tier
from nas.spaces.base import Arch, SearchSpace


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class HypernetAccuracy(MetricProvider):
    """`ghn:PATH`: validation accuracy (%) of an architecture's network with weights a GHN generated
    from its graph, BatchNorm on the validation split's batch statistics (as GHNs are evaluated).

    The validation split is the one the GHN was trained beside (same data spec and data view), so no
    training image is scored. Architectures are scored in their canonical form (two strings naming one
    network get one score).

    Args:
        space: the space the GHN was trained for (checked against the manifest's name and fingerprint).
        path: the GHN directory (`nas hypernet train --out PATH`).
        data: a dataset spec (default: the manifest's); its input spec must match the GHN's.
        val_samples: score on the first this many validation images only (the split is shuffled, so a
            random subset). Why: the validation pass is nearly all of a score's cost (linear in the
            images) and at the space's full network size it takes well over 50 ms on a CPU core for
            the whole split; fewer images are faster but give a coarser score (`benchmarks/ghn.py`
            measures the trade-off). None: the whole split.
    """

    metric = "accuracy"
    tier = Tier.ESTIMATE

    def __init__(self, space: SearchSpace, path: str | Path, *, data: str | None = None, val_samples: int | None = None) -> None:
        if val_samples is not None and (not isinstance(val_samples, int) or isinstance(val_samples, bool) or val_samples < 2):
            raise HypernetError(f"accuracy option val_samples must be an integer >= 2, got {val_samples!r}")
        self.space = space
        self.path = Path(path)
        manifest = read_manifest(self.path)
        check_space(manifest, space, self.path)
        self.settings = GHNSettings.from_mapping(manifest.get("settings"))
        self.data_spec = data or str(manifest.get("data") or "digits")
        self.data = load_prepared(self.data_spec, self.settings.recipe())
        self.input_spec = self.data.input_spec
        self.val_samples = val_samples
        self.val_x, self.val_y = self.data.val_x[:val_samples], self.data.val_y[:val_samples]
        self.ghn, self.manifest = load_ghn(self.path, space, self.input_spec)
        self.networks = ArchNetworks(space, self.ghn)
        self._cache: dict[Arch, float] = {}

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Accuracy (%) per arch (`n_archs`); each arch's weights generated once, then kept."""
        out = np.empty(len(archs))
        with deterministic(self.settings.threads):
            for i, arch in enumerate(archs):
                arch = self.space.canonical(arch)
                if arch not in self._cache:
                    self._cache[arch] = score(self.ghn, self.networks, arch, self.val_x, self.val_y)
                out[i] = self._cache[arch]
        return out

    def network(self, arch: Arch) -> Any:
        """The network of `arch` holding its generated weights, in eval mode, its BatchNorm running
        statistics those of the training split (a deployed network sees one image at a time, so batch
        statistics must become stored ones)."""
        import torch

        arch = self.space.canonical(arch)
        graph, _, slots = self.networks.get(arch)
        with deterministic(self.settings.threads), torch.no_grad(), torch.random.fork_rng(devices=[]):
            net = self.ghn.build(self.space.edge_ops(arch))  # type: ignore[attr-defined]
            params = self.ghn.generate(graph, slots)
            for name, p in net.named_parameters():
                p.copy_(params[name])
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None  # cumulative average: one pass gives the split's statistics
            net.train()
            net(self.data.train_x)
        return net.eval()

    def reference_values(self, space: Any) -> np.ndarray:
        """Accuracy lies in [0, 100] %: the reference point's accuracy is 0."""
        return np.array([0.0, 100.0])

    def pins(self) -> dict[str, Any]:
        pins = {"ghn": str(self.path.resolve()), "weights_sha256": _digest(self.path / "ghn.pt"), "data_sha256": self.data.description["sha256"]}
        return pins if self.val_samples is None else {**pins, "val_samples": len(self.val_y)}

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(), "ghn": str(self.path), "weights_sha256": _digest(self.path / "ghn.pt"), "data": self.data_spec,
            "network": self.manifest.get("network"), "steps": self.manifest.get("steps"), "validation": self.manifest.get("validation"), "val_samples": len(self.val_y),
            "estimate": True, "note": "weights generated by a graph hypernetwork, BatchNorm on batch statistics",
        }


def hypernet_accuracy(request: Any) -> MetricProvider:
    """The `ghn:PATH` evaluator (options `data`, `val_samples`)."""
    unknown = sorted(set(request.options) - {"data", "val_samples"})
    if unknown:
        raise HypernetError(f"unknown accuracy option(s) {unknown} for {request.spec!r}; expected some of ['data', 'val_samples']")
    if not request.argument:
        raise HypernetError("accuracy 'ghn' needs a path: ghn:PATH (a directory written by `nas hypernet train`)")
    return HypernetAccuracy(request.space, request.argument, data=request.options.get("data"), val_samples=request.options.get("val_samples"))


__all__ = ["GHNSettings", "HypernetAccuracy", "HypernetError", "hypernet_accuracy", "space_fingerprint", "train_ghn"]
