"""Once-for-All: an elastic supernet trained once (`train`), whose sub-networks are scored with inherited
weights (`SupernetAccuracy`, spec `supernet:PATH`) or by an accuracy predictor fitted on such scores
(`SupernetPredictor`, spec `supernet-predictor:PATH`), both of tier `estimate`.

Why a predictor on top (as OFA does): scoring a sub-network with inherited weights still runs it
(BatchNorm recalibration, then the validation split: a fraction of a second on the small variant); an
MLP on OFA's one-hot encoding, fitted once on a few hundred such scores, prices a candidate in
microseconds, so an evolutionary search over thousands of candidates takes seconds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import file_lock, write_atomic
from nas.accuracy.supernet.train import SupernetError, SupernetSettings, calibrate_subnet, evaluate_subnet, load_supernet, read_manifest
from nas.accuracy.training import Recipe, load_prepared
from nas.objectives import MetricProvider, Tier
from nas.spaces.base import Arch, InputSpec
from nas.spaces.ofa_mbv3 import OFAMobileNetV3Space

PREDICTOR_DATA = "predictor_samples.csv"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _ofa_space(space: Any) -> OFAMobileNetV3Space:
    if not isinstance(space, OFAMobileNetV3Space):
        raise SupernetError(f"supernet accuracy needs an OFA space (family ofa_mbv3), got space {space.name!r}")
    return space


class SupernetAccuracy(MetricProvider):
    """`supernet:PATH`: validation accuracy (%) of a sub-network with the supernet's weights, its
    BatchNorm recalibrated on a few training batches first. Tier `estimate` (weight sharing ranks
    sub-networks imperfectly: `benchmarks/supernet.py` measures how well).

    Args:
        space: the OFA space the supernet was trained for.
        path: the supernet directory (`nas supernet train --out PATH`).
        data: a dataset spec (default: the one the supernet was trained on); its input spec must match.
    """

    metric = "accuracy"
    tier = Tier.ESTIMATE

    def __init__(self, space: Any, path: str | Path, *, data: str | None = None) -> None:
        self.space = _ofa_space(space)
        self.path = Path(path)
        manifest = read_manifest(self.path)
        self.recipe = Recipe.from_mapping(manifest.get("recipe"))
        self.settings = SupernetSettings.from_mapping(manifest.get("settings"), self.space)
        self.data_spec = data or manifest.get("data") or "digits"
        self.data = load_prepared(self.data_spec, self.recipe)
        self.input_spec = self.data.input_spec
        self.model, self.manifest = load_supernet(self.path, self.space, self.input_spec)
        self._cache: dict[Arch, float] = {}

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        out = np.empty(len(archs))
        for i, arch in enumerate(archs):
            arch = self.space.canonical(arch)
            if arch not in self._cache:
                self._cache[arch] = evaluate_subnet(self.model, arch, self.data, self.settings, self.recipe)
            out[i] = self._cache[arch]
        return out

    def network(self, arch: Arch) -> Any:
        """The stand-alone sub-network of `arch` with inherited weights, BatchNorm recalibrated as when scored."""
        from nas.accuracy.training import deterministic

        arch = self.space.canonical(arch)
        calibrate_subnet(self.model, arch, self.data, self.settings, self.recipe)
        with deterministic(self.recipe.threads):
            return self.model.extract(arch).eval()

    def pins(self) -> dict[str, Any]:
        return {"supernet": str(self.path.resolve()), "weights_sha256": _digest(self.path / "supernet.pt"), "data_sha256": self.data.description["sha256"]}

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(), "supernet": str(self.path), "phases": [h["phase"] for h in self.manifest.get("history", [])],
            "estimate": True, "note": "inherited weights with recalibrated BatchNorm", "data": self.data_spec,
        }


class SupernetPredictor(MetricProvider):
    """`supernet-predictor:PATH`: an MLP on OFA's one-hot encoding fitted on the inherited accuracy of
    `samples` random sub-networks (scored once and kept in `PATH/predictor_samples.csv`), as OFA's
    accuracy predictor. Tier `estimate`.

    Args:
        space: the OFA space.
        path: the supernet directory.
        samples: sub-networks to score for fitting (more are scored only if the file has fewer).
        seed: the sample and the model.
        data: as for `SupernetAccuracy`.
    """

    metric = "accuracy"
    tier = Tier.ESTIMATE

    def __init__(self, space: Any, path: str | Path, *, samples: int = 400, seed: int = 0, data: str | None = None) -> None:
        from scipy.stats import kendalltau, spearmanr

        from nas.accuracy.predictors import make_predictor

        self.space = _ofa_space(space)
        self.path = Path(path)
        if not isinstance(samples, int) or samples < 20:
            raise SupernetError(f"supernet-predictor samples must be an integer >= 20, got {samples!r}")
        self.samples, self.seed = samples, seed
        self.input_spec = InputSpec(**read_manifest(self.path)["input_spec"])
        archs, y = self._labelled(data)
        cut = int(0.8 * len(archs))
        held = make_predictor("mlp", self.space, "onehot", random_state=seed).fit(archs[:cut], y[:cut])
        guess = held.predict(archs[cut:])
        self.validation = {"train": cut, "held_out": len(archs) - cut, "spearman": float(spearmanr(guess, y[cut:])[0]), "kendall": float(kendalltau(guess, y[cut:])[0])}
        self.model = make_predictor("mlp", self.space, "onehot", random_state=seed).fit(archs, y)

    def _labelled(self, data: str | None) -> tuple[list[Arch], np.ndarray]:
        """The scored sub-networks of `PATH/predictor_samples.csv`, scoring more under a lock if needed."""
        import pandas as pd

        csv = self.path / PREDICTOR_DATA
        with file_lock(self.path / ".predictor.lock"):
            frame = pd.read_csv(csv) if csv.is_file() else pd.DataFrame(columns=["arch", "accuracy"])
            weights = _digest(self.path / "supernet.pt") if (self.path / "supernet.pt").is_file() else None
            meta_path = self.path / "predictor_samples.json"
            if meta_path.is_file() and json.loads(meta_path.read_text()).get("weights_sha256") != weights:
                frame = frame.iloc[0:0]  # the supernet trained further: its old scores no longer hold
            if len(frame) < self.samples:
                scorer = SupernetAccuracy(self.space, self.path, data=data)
                rng = np.random.default_rng(self.seed)
                have = set(frame["arch"])
                new = []
                while len(have) + len(new) < self.samples:
                    arch = self.space.sample(rng)
                    text = self.space.to_string(arch)
                    if text not in have and text not in {t for t, _ in new}:
                        new.append((text, float(scorer.evaluate([arch])[0])))
                frame = pd.concat([frame, pd.DataFrame(new, columns=["arch", "accuracy"])], ignore_index=True)
                write_atomic(csv, frame.to_csv(index=False))
                write_atomic(meta_path, json.dumps({"weights_sha256": weights, "data": scorer.data_spec}))
        frame = frame.iloc[: self.samples]
        return [self.space.from_string(s) for s in frame["arch"]], frame["accuracy"].to_numpy(dtype=float)

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted accuracy (`n_archs`), vectorised over the one-hot encoding."""
        return np.asarray(self.model.predict([self.space.canonical(a) for a in archs]), dtype=float)

    def pins(self) -> dict[str, Any]:
        return {"supernet": str(self.path.resolve()), "weights_sha256": _digest(self.path / "supernet.pt"), "samples": self.samples, "seed": self.seed}

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "supernet": str(self.path), "model": "mlp on OFA one-hot", "validation": self.validation, "estimate": True, "note": f"predictor fitted on {self.samples} supernet scores"}


def supernet_accuracy(request: Any) -> MetricProvider:
    """The `supernet:PATH` evaluator (option `data`)."""
    unknown = sorted(set(request.options) - {"data"})
    if unknown:
        raise SupernetError(f"unknown accuracy option(s) {unknown} for {request.spec!r}; expected data")
    if not request.argument:
        raise SupernetError("accuracy 'supernet' needs a path: supernet:PATH (a directory written by `nas supernet train`)")
    return SupernetAccuracy(request.space, request.argument, data=request.options.get("data"))


def supernet_predictor(request: Any) -> MetricProvider:
    """The `supernet-predictor:PATH` evaluator (options `samples`, `data`)."""
    options: Mapping[str, Any] = request.options
    unknown = sorted(set(options) - {"samples", "data"})
    if unknown:
        raise SupernetError(f"unknown accuracy option(s) {unknown} for {request.spec!r}; expected samples, data")
    if not request.argument:
        raise SupernetError("accuracy 'supernet-predictor' needs a path: supernet-predictor:PATH")
    return SupernetPredictor(request.space, request.argument, samples=options.get("samples", 400), seed=0 if request.seed is None else int(request.seed), data=options.get("data"))


__all__ = ["SupernetAccuracy", "SupernetError", "SupernetPredictor", "supernet_accuracy", "supernet_predictor"]
