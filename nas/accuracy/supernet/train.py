"""Progressive shrinking: train the OFA supernet once, phase by phase, resumable after a kill.

Why phases (Cai et al., ICLR 2020): training every sub-network from the start makes the small ones drag
the large ones down; OFA first trains the largest network, then makes one dimension elastic at a time
(kernel, then depth, then expand ratio), each time distilling from the largest network so the
sub-networks learn what it learned. Here the distillation is in place (BigNAS): every step trains the
largest network on the labels and `subnets_per_step` sampled sub-networks on the labels plus the
largest network's soft outputs of the same batch. Resolution is elastic throughout: each batch is
resized to a resolution drawn from the space.

A run directory holds `supernet.pt` (the `state_dict` after the last finished phase, loadable with
`weights_only=True`), `phase_NAME.pt` per finished phase, and `manifest.json` (space and its definition,
data digest and input spec, recipe, settings, seed, finished phases with their figures). A killed
training resumes after its last finished phase; a directory made for another space, data, recipe or
seed is refused.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import check_keys, write_atomic
from nas.accuracy.training import PreparedData, Recipe, TrainingDivergedError, batched_accuracy, deterministic, resize_images, save_weights
from nas.spaces.base import Arch
from nas.spaces.ofa_mbv3 import OFAMobileNetV3Space

MANIFEST = "manifest.json"
WEIGHTS = "supernet.pt"
FORMAT = 1


class SupernetError(ValueError):
    """A supernet directory, checkpoint or setting that cannot be used (one line)."""


def _phases(space: OFAMobileNetV3Space) -> list[tuple[str, dict[str, tuple[int, ...]]]]:
    """OFA's schedule: largest, elastic kernel, depth (largest two, then all), expand (largest two, then all)."""
    top = {"kernels": (max(space.kernels),), "expands": (max(space.expands),), "depths": (max(space.depths),)}
    kernel = {**top, "kernels": space.kernels}
    out = [("largest", top), ("kernel", kernel)]
    if len(space.depths) > 1:
        out += [("depth_1", {**kernel, "depths": space.depths[-2:]}), ("depth_2", {**kernel, "depths": space.depths})]
    every_depth = {**kernel, "depths": space.depths}
    if len(space.expands) > 1:
        out += [("expand_1", {**every_depth, "expands": space.expands[-2:]}), ("expand_2", {**every_depth, "expands": space.expands})]
    return out


def phase_names(space: OFAMobileNetV3Space) -> list[str]:
    return [name for name, _ in _phases(space)]


@dataclass(frozen=True)
class SupernetSettings:
    """Progressive-shrinking settings beside the training recipe.

    `phase_epochs`: epochs per phase by name (largest, kernel, depth_1, depth_2, expand_1, expand_2;
    missing ones: the recipe's `epochs`); `subnets_per_step`: sampled sub-networks trained per batch
    beside the largest; `kd_ratio`: weight of distillation from the largest network;
    `calibration_batches`: training batches that recalibrate BatchNorm before a sub-network is scored.
    """

    phase_epochs: dict[str, int] = field(default_factory=dict)
    subnets_per_step: int = 2
    kd_ratio: float = 1.0
    calibration_batches: int = 4

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, space: OFAMobileNetV3Space) -> SupernetSettings:
        data = check_keys(cls, data, "supernet option", SupernetError)
        settings = cls(**data)
        names = phase_names(space)
        bad = sorted(set(settings.phase_epochs) - set(names))
        if bad or any(not isinstance(v, int) or v < 0 for v in settings.phase_epochs.values()):
            raise SupernetError(f"supernet phase_epochs {settings.phase_epochs} must map phases {names} to integers >= 0")
        if not isinstance(settings.subnets_per_step, int) or settings.subnets_per_step < 0:
            raise SupernetError(f"supernet subnets_per_step must be an integer >= 0, got {settings.subnets_per_step!r}")
        if not isinstance(settings.calibration_batches, int) or settings.calibration_batches < 1:
            raise SupernetError(f"supernet calibration_batches must be an integer >= 1, got {settings.calibration_batches!r}")
        if not isinstance(settings.kd_ratio, (int, float)) or settings.kd_ratio < 0:
            raise SupernetError(f"supernet kd_ratio must be a number >= 0, got {settings.kd_ratio!r}")
        return settings

    def epochs(self, phase: str, recipe: Recipe) -> int:
        return int(self.phase_epochs.get(phase, recipe.epochs))


def space_definition(space: OFAMobileNetV3Space) -> dict[str, Any]:
    """What a checkpoint must match: the choices and the macro-architecture."""
    return {
        "kernels": list(space.kernels), "expands": list(space.expands), "depths": list(space.depths),
        "resolutions": list(space.resolutions), "macro": json.loads(json.dumps(asdict(space.macro))),
    }


def calibration_batches(data: PreparedData, n: int, batch_size: int, size: int, seed: int = 0) -> list[Any]:
    """`n` fixed training batches at resolution `size`, drawn with `seed` (the same for every sub-network)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.train_y), generator=g)
    return [resize_images(data.train_x[order[i * batch_size : (i + 1) * batch_size]], size) for i in range(n) if i * batch_size < len(order)]


def calibrate_subnet(model: Any, arch: Arch, data: PreparedData, settings: SupernetSettings, recipe: Recipe) -> None:
    """Make `arch` the supernet's active sub-network with BatchNorm recalibrated on fixed training batches
    at the arch's resolution: the state it is scored (and exported) in."""
    from nas.accuracy.supernet.elastic import recalibrate_bn

    size = int(arch["resolution"])
    with deterministic(recipe.threads):
        model.set_active(arch)
        recalibrate_bn(model, calibration_batches(data, settings.calibration_batches, recipe.batch_size, size))


def evaluate_subnet(model: Any, arch: Arch, data: PreparedData, settings: SupernetSettings, recipe: Recipe, split: str = "val") -> float:
    """Accuracy (%) of `arch` with inherited weights (`calibrate_subnet`), the `split` (val or test)
    evaluated at the arch's resolution."""
    size = int(arch["resolution"])
    calibrate_subnet(model, arch, data, settings, recipe)
    with deterministic(recipe.threads):
        x, y = (data.val_x, data.val_y) if split == "val" else (data.test_x, data.test_y)
        return batched_accuracy(model, x, y, transform=lambda batch: resize_images(batch, size))


@dataclass
class PhaseRecord:
    """What one finished phase left: its epochs, seconds and the accuracy of its largest and smallest nets."""

    phase: str
    epochs: int
    seconds: float
    largest_accuracy: float
    smallest_accuracy: float


class SupernetTrainer:
    """Trains an `OFASupernet` by progressive shrinking into a directory (see the module docstring).

    Args:
        space: the OFA space.
        data: prepared data (its input spec sets channels and classes).
        recipe: optimiser, learning rate, batch size, threads (`epochs`: per phase unless set).
        settings: progressive-shrinking settings.
        directory: where checkpoints and the manifest live.
        seed: initial weights, batches, sampled sub-networks.
        data_spec: the dataset spec, recorded in the manifest.
    """

    def __init__(
        self, space: OFAMobileNetV3Space, data: PreparedData, recipe: Recipe, settings: SupernetSettings, directory: Path, *, seed: int = 0, data_spec: str = ""
    ) -> None:
        self.space, self.data, self.recipe, self.settings = space, data, recipe, settings
        self.directory = Path(directory)
        self.seed = int(seed)
        self.data_spec = data_spec

    # --- the manifest ----------------------------------------------------------------------------
    def identity(self) -> dict[str, Any]:
        """What a checkpoint directory must match to be resumed or scored."""
        return {
            "format": FORMAT, "space": self.space.name, "definition": space_definition(self.space),
            "data_sha256": self.data.description["sha256"], "input_spec": self.data.input_spec.describe(),
            "recipe": self.recipe.to_dict(), "settings": asdict(self.settings), "seed": self.seed,
        }

    def _manifest(self) -> dict[str, Any] | None:
        path = self.directory / MANIFEST
        if not path.is_file():
            return None
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SupernetError(f"{path} is not a supernet manifest ({exc}); choose a new --out") from None
        mine = self.identity()
        diff = [k for k in mine if manifest.get(k) != mine[k]]
        if diff:
            raise SupernetError(f"{self.directory} holds a supernet of another {'/'.join(diff)} ({manifest.get('space')}); refusing to mix them, choose a new --out")
        return manifest

    # --- training --------------------------------------------------------------------------------
    def train(self, progress: Callable[[str, int, int], None] | None = None) -> list[PhaseRecord]:
        """Run every phase not finished yet; returns the records of all finished phases.

        Raises:
            SupernetError: another space/data/recipe in the directory, or a finished phase's weights missing.
            TrainingDivergedError: the loss turned NaN or exploded (names the phase and step).
        """
        import torch

        from nas.accuracy.supernet.elastic import OFASupernet

        if self.directory.exists() and not self.directory.is_dir():
            raise SupernetError(f"{self.directory} is not a directory")
        manifest = self._manifest()
        if manifest is None and self.directory.exists() and any(self.directory.iterdir()):
            raise SupernetError(f"{self.directory} exists and is not a supernet directory (no {MANIFEST}); choose a new --out")
        self.directory.mkdir(parents=True, exist_ok=True)
        done = [PhaseRecord(**r) for r in (manifest or {}).get("history", [])]
        spec = self.data.input_spec
        with deterministic(self.recipe.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = OFASupernet(self.space, in_channels=spec.channels, num_classes=spec.classes)
        if done:
            weights = self.directory / f"phase_{done[-1].phase}.pt"
            if not weights.is_file():
                raise SupernetError(f"{self.directory}: phase {done[-1].phase!r} is recorded as finished but {weights.name} is missing; its weights cannot be resumed")
            model.load_state_dict(torch.load(weights, weights_only=True))
        finished = {r.phase for r in done}
        for index, (phase, allowed) in enumerate(_phases(self.space)):
            if phase in finished:
                continue
            if phase == "expand_1":
                model.sort_channels()
            record = self._phase(model, index, phase, allowed, progress)
            done.append(record)
            save_weights(model.state_dict(), self.directory / f"phase_{phase}.pt")
            save_weights(model.state_dict(), self.directory / WEIGHTS)
            write_atomic(self.directory / MANIFEST, json.dumps({**self.identity(), "data": self.data_spec, "history": [asdict(r) for r in done]}, indent=2))
        return done

    def _phase(self, model: Any, index: int, phase: str, allowed: Mapping[str, tuple[int, ...]], progress: Callable[[str, int, int], None] | None) -> PhaseRecord:
        import torch
        import torch.nn.functional as F

        from nas.accuracy.supernet.elastic import sample_arch

        r, d = self.recipe, self.data
        epochs = self.settings.epochs(phase, r)
        rng = np.random.default_rng([self.seed, index])
        generator = torch.Generator().manual_seed(self.seed * 1000 + index)
        largest = self.space.canonical(Arch({dd.name: max(dd.choices) for dd in self.space.decisions}))
        optimizer = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov and r.momentum > 0, weight_decay=r.weight_decay)
        steps_per_epoch = max(1, math.ceil(len(d.train_y) / r.batch_size))
        total = max(1, epochs * steps_per_epoch)
        start = time.perf_counter()
        step = 0
        with deterministic(r.threads):
            for epoch in range(epochs):
                model.train()
                order = torch.randperm(len(d.train_y), generator=generator)
                for batch, first in enumerate(range(0, len(order), r.batch_size)):
                    rows = order[first : first + r.batch_size]
                    size = int(rng.choice(self.space.resolutions))
                    x, y = resize_images(d.train_x[rows], size), d.train_y[rows]
                    for group in optimizer.param_groups:
                        group["lr"] = r.lr * 0.5 * (1 + math.cos(math.pi * step / total))
                    optimizer.zero_grad(set_to_none=True)
                    model.set_active(largest.replace(resolution=size))
                    teacher = model(x)
                    loss = F.cross_entropy(teacher, y, label_smoothing=r.label_smoothing)
                    self._check(loss, phase, epoch, batch)
                    loss.backward()
                    soft = F.softmax(teacher.detach(), dim=1)
                    for _ in range(self.settings.subnets_per_step if phase != "largest" else 0):
                        model.set_active(sample_arch(self.space, rng, {**allowed, "resolutions": (size,)}))
                        out = model(x)
                        sub = F.cross_entropy(out, y, label_smoothing=r.label_smoothing)
                        if self.settings.kd_ratio:
                            sub = sub + self.settings.kd_ratio * F.kl_div(F.log_softmax(out, dim=1), soft, reduction="batchmean")
                        self._check(sub, phase, epoch, batch)
                        sub.backward()
                    if r.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), r.grad_clip)
                    optimizer.step()
                    step += 1
                if progress is not None:
                    progress(phase, epoch + 1, epochs)
        seconds = time.perf_counter() - start
        smallest = self.space.canonical(Arch({dd.name: min(allowed.get(_key(dd.name), dd.choices)) for dd in self.space.decisions}))
        biggest = largest.replace(resolution=max(self.space.resolutions))
        return PhaseRecord(
            phase, epochs, round(seconds, 2),
            evaluate_subnet(model, biggest, d, self.settings, r), evaluate_subnet(model, smallest.replace(resolution=max(self.space.resolutions)), d, self.settings, r),
        )

    @staticmethod
    def _check(loss: Any, phase: str, epoch: int, batch: int) -> None:
        value = float(loss.detach())
        if not math.isfinite(value) or value > 1e4:
            raise TrainingDivergedError(f"supernet training diverged: loss {value:.4g} in phase {phase}, epoch {epoch + 1}, step {batch + 1}; lower the learning rate")


def _key(decision: str) -> str:
    """The `allowed` key of a decision name (`stage1_depth` -> depths, `block01_kernel` -> kernels)."""
    if decision == "resolution":
        return "resolutions"
    return {"depth": "depths", "kernel": "kernels", "expand": "expands"}[decision.rsplit("_", 1)[1]]


def read_manifest(directory: str | Path) -> dict[str, Any]:
    """The manifest of a supernet directory (one-line `SupernetError` when there is none)."""
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise SupernetError(f"{directory} holds no trained supernet (no {MANIFEST}); train one with `nas supernet train`")
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SupernetError(f"{path} is not a supernet manifest ({str(exc).splitlines()[0]})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise SupernetError(f"{path} is not a supernet manifest of format {FORMAT}")
    return manifest


def load_supernet(directory: str | Path, space: OFAMobileNetV3Space, input_spec: Any) -> tuple[Any, dict[str, Any]]:
    """The trained supernet of `directory` (weights after its last finished phase) and its manifest.

    Raises:
        SupernetError: no manifest or weights, another space or configuration, or data of another shape.
    """
    import torch

    from nas.accuracy.supernet.elastic import OFASupernet

    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest.get("space") != space.name or manifest.get("definition") != space_definition(space):
        raise SupernetError(f"supernet {directory} was trained for space {manifest.get('space')!r} with another definition; this run's space is {space.name!r}")
    if manifest.get("input_spec") != input_spec.describe():
        raise SupernetError(f"supernet {directory} was trained on inputs {manifest.get('input_spec')}, but this data is {input_spec.describe()}")
    if not manifest.get("history"):
        raise SupernetError(f"supernet {directory} has no finished phase yet; resume `nas supernet train`")
    model = OFASupernet(space, in_channels=input_spec.channels, num_classes=input_spec.classes)
    model.load_state_dict(torch.load(directory / WEIGHTS, weights_only=True))
    model.eval()
    return model, manifest


__all__ = ["SupernetError", "SupernetSettings", "SupernetTrainer", "evaluate_subnet", "load_supernet", "phase_names", "read_manifest"]
