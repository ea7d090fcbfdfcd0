"""Train an architecture on real data: the recipe, the trainer, and the `train:DATA` accuracy provider.

Why here: a user with their own data and device has no benchmark table; the accuracy of a candidate is
then what the network reaches when trained with one fixed recipe on their data. Three promises:

- **Deterministic.** With the same seed, recipe and data, training gives the same numbers in any
  process: weights are initialised from the seed (torch's global RNG is restored afterwards), batches
  and augmentation come from a generator seeded the same way, `torch.use_deterministic_algorithms`
  is on while training and the thread count is the recipe's. The seed is the same for every
  architecture of a search (common random numbers: every candidate sees the same batches, so
  differences in accuracy are the architecture's, not the shuffle's).
- **Honest splits.** Selection uses the validation split; the test split is evaluated once, at the end.
- **Failures are the trial's.** A NaN or diverging loss raises `TrainingDivergedError` naming the epoch
  and step; a search records it as that trial's failure and goes on.

The recipe's defaults are tuned so that on `digits` at its native 8 x 8 the accuracies of NB201
architectures spread and rank repeatably instead of bunching at the top: 500 training samples (50 per
class), 20 epochs, no augmentation. In a pilot over 21 NB201 archs (2 seeds each), seed-to-seed Kendall
tau was 0.77 with 12 epochs and random shifts, 0.85 with 20 epochs and shifts, 0.90 with 20 epochs and
none; 800 training samples bunched the accuracies (median 97.6 %) and dropped the tau among archs above
80 % on CIFAR-10 to 0.22 (`benchmarks/training.py` measures the chosen recipe on 60 archs).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nas._io import check_keys, write_atomic
from nas.data import DataError, Dataset, load_data
from nas.objectives import MetricProvider, Tier, TrialContext
from nas.spaces.base import Arch, InputSpec, SearchSpace

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("cosine", "constant", "step")
AUGMENTATIONS = ("crop", "flip", "noise")
#: Recipe keys that shape the data a network sees (the rest shape how it is trained).
DATA_KEYS = ("input_size", "val_fraction", "test_fraction", "max_train", "split_seed", "normalize")


class RecipeError(ValueError):
    """A training recipe key or value that is invalid (one line naming it and what was expected)."""


class TrainingDivergedError(RuntimeError):
    """The loss became NaN/infinite or exploded: the trial fails with this reason, the search goes on."""


@dataclass(frozen=True)
class Recipe:
    """How every candidate of a search is trained, and on which view of the data.

    Training: `epochs`, `batch_size`, `optimizer` (sgd, adam, adamw), `lr`, `momentum` and `nesterov`
    (sgd), `weight_decay`, `schedule` (cosine, constant, step: x0.1 at 50 % and 75 %), `warmup_epochs`
    (linear), `label_smoothing`, `augmentation` (any of crop: random shifts of up to 1/8 of the size;
    flip: horizontal; noise: Gaussian of `noise_std`), `grad_clip` (max gradient norm, 0 = off),
    `threads` (torch intra-op threads; results are repeatable per thread count).

    Data: `input_size` (resize images to this square size; None keeps them), `val_fraction`,
    `test_fraction` (of the samples, stratified; no test fraction when the data has its own test split),
    `max_train` (train on at most this many samples, stratified: fewer samples per class make the task
    discriminative), `split_seed`, `normalize` (standardise channels with training-split statistics).

    Example:
        >>> Recipe.from_mapping({"epochs": 5, "lr": 0.1}).epochs
        5
        >>> Recipe.from_mapping({"epoch": 5})
        Traceback (most recent call last):
        ...
        nas.accuracy.training.RecipeError: unknown training key(s) ['epoch']; expected some of ['augmentation', 'batch_size', 'epochs', 'grad_clip', 'input_size', 'label_smoothing', 'lr', 'max_train', 'momentum', 'nesterov', 'noise_std', 'normalize', 'optimizer', 'schedule', 'split_seed', 'test_fraction', 'threads', 'val_fraction', 'warmup_epochs', 'weight_decay']
    """

    epochs: int = 20
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup_epochs: int = 0
    label_smoothing: float = 0.0
    augmentation: tuple[str, ...] = ()
    noise_std: float = 0.1
    grad_clip: float = 5.0
    threads: int = 1
    input_size: int | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.2
    max_train: int | None = 500
    split_seed: int = 0
    normalize: bool = True

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None) -> Recipe:
        """A recipe from a config section; unknown keys and bad values raise one `RecipeError` line."""
        data = check_keys(cls, data, "training key", RecipeError)
        if "augmentation" in data:
            aug = data["augmentation"]
            if aug is None or aug == "none":
                aug = ()
            elif isinstance(aug, str):
                aug = tuple(a.strip() for a in aug.split(",") if a.strip())
            if not isinstance(aug, (list, tuple)):
                raise RecipeError(f"training augmentation must be a list of {list(AUGMENTATIONS)}, got {aug!r}")
            data["augmentation"] = tuple(aug)
        recipe = cls(**data)
        recipe.validate()
        return recipe

    def validate(self) -> None:
        def integer(name: str, minimum: int, optional: bool = False) -> None:
            v = getattr(self, name)
            if optional and v is None:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                raise RecipeError(f"training {name} must be an integer >= {minimum}{' or null' if optional else ''}, got {v!r}")

        def number(name: str, low: float, high: float = math.inf, low_open: bool = False) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < low or v > high or (low_open and v == low):
                raise RecipeError(f"training {name} must be a number in {'(' if low_open else '['}{low:g}, {high:g}], got {v!r}")

        integer("epochs", 1)
        integer("batch_size", 1)
        integer("warmup_epochs", 0)
        integer("threads", 1)
        integer("input_size", 1, optional=True)
        integer("max_train", 2, optional=True)
        integer("split_seed", 0)
        number("lr", 0.0, low_open=True)
        number("momentum", 0.0, 1.0)
        number("weight_decay", 0.0)
        number("label_smoothing", 0.0, 1.0)
        number("noise_std", 0.0)
        number("grad_clip", 0.0)
        number("val_fraction", 0.0, 1.0, low_open=True)
        number("test_fraction", 0.0, 1.0)
        if self.optimizer not in OPTIMIZERS:
            raise RecipeError(f"training optimizer {self.optimizer!r}; expected one of {list(OPTIMIZERS)}")
        if self.schedule not in SCHEDULES:
            raise RecipeError(f"training schedule {self.schedule!r}; expected one of {list(SCHEDULES)}")
        bad = [a for a in self.augmentation if a not in AUGMENTATIONS]
        if bad:
            raise RecipeError(f"training augmentation {bad}; expected some of {list(AUGMENTATIONS)}")
        for name in ("nesterov", "normalize"):
            if not isinstance(getattr(self, name), bool):
                raise RecipeError(f"training {name} must be true or false, got {getattr(self, name)!r}")
        if self.warmup_epochs >= self.epochs:
            raise RecipeError(f"training warmup_epochs ({self.warmup_epochs}) must be smaller than epochs ({self.epochs})")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["augmentation"] = list(self.augmentation)
        return out

    def data_key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, k) for k in DATA_KEYS)


# --- the data as tensors -------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class PreparedData:
    """A dataset's splits as float32 tensors, resized and normalised as the recipe says."""

    name: str
    input_spec: InputSpec
    train_x: Any
    train_y: Any
    val_x: Any
    val_y: Any
    test_x: Any
    test_y: Any
    description: dict[str, Any] = field(default_factory=dict)


def prepare(data: Dataset, recipe: Recipe) -> PreparedData:
    """Split `data` with the recipe's data keys and turn the splits into tensors."""
    return _prepare_cached(data, recipe.data_key())


@lru_cache(maxsize=4)
def _prepare_cached(data: Dataset, key: tuple[Any, ...]) -> PreparedData:
    import torch

    settings = dict(zip(DATA_KEYS, key))
    splits = data.split(val_fraction=settings["val_fraction"], test_fraction=settings["test_fraction"], seed=settings["split_seed"], max_train=settings["max_train"])
    x = torch.from_numpy(data.x)
    test_source = torch.from_numpy(data.x_test) if data.x_test is not None else x
    test_labels = data.y_test if data.y_test is not None else data.y
    parts = {
        "train": (x[splits.train], data.y[splits.train]),
        "val": (x[splits.val], data.y[splits.val]),
        "test": (test_source[splits.test], test_labels[splits.test]),
    }
    if not len(parts["test"][1]):
        raise DataError(f"dataset {data.name}: the test split is empty; set test_fraction > 0 or give the data a test split")
    size = settings["input_size"]
    if size is not None:
        parts = {k: (resize_images(v, size), y) for k, (v, y) in parts.items()}
    if settings["normalize"]:
        mean = parts["train"][0].mean(dim=(0, 2, 3), keepdim=True)
        std = parts["train"][0].std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
        parts = {k: ((v - mean) / std, y) for k, (v, y) in parts.items()}
    spec = data.input_spec if size is None else InputSpec(data.input_spec.channels, size, size, data.classes)
    tensors = {k: (v.contiguous(), torch.from_numpy(np.ascontiguousarray(y))) for k, (v, y) in parts.items()}
    description = {**data.describe(), **spec.describe(), "train_samples": len(splits.train), "val_samples": len(splits.val), "test_split_samples": len(splits.test)}
    return PreparedData(
        data.name, spec, *tensors["train"], *tensors["val"], *tensors["test"], description=description  # type: ignore[arg-type]
    )


@lru_cache(maxsize=8)
def at_resolution(data: PreparedData, size: int) -> PreparedData:
    """`data` with every split resized to `size` x `size` (for spaces whose archs decide their input
    resolution, `SearchSpace.input_size`)."""
    if (data.input_spec.height, data.input_spec.width) == (size, size):
        return data
    spec = InputSpec(data.input_spec.channels, size, size, data.input_spec.classes)
    parts = [(resize_images(x, size).contiguous(), y) for x, y in ((data.train_x, data.train_y), (data.val_x, data.val_y), (data.test_x, data.test_y))]
    return PreparedData(data.name, spec, *parts[0], *parts[1], *parts[2], description={**data.description, **spec.describe()})  # type: ignore[arg-type]


def batched_accuracy(module: Any, x: Any, y: Any, transform: Callable[[Any], Any] | None = None, batch: int = 512) -> float:
    """Top-1 accuracy (%) of `module` on `x`, `y` in batches of `batch`, each passed through `transform` first."""
    import torch

    correct = 0
    with torch.no_grad():
        for first in range(0, len(y), batch):
            inputs = x[first : first + batch]
            correct += int((module(inputs if transform is None else transform(inputs)).argmax(1) == y[first : first + batch]).sum())
    return 100.0 * correct / len(y)


def resize_images(x: Any, size: int) -> Any:
    """NCHW images resized (bilinear, antialiased when shrinking) to `size` x `size`; unchanged when they are that size."""
    import torch.nn.functional as F

    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=x.shape[-1] > size)


# --- training ------------------------------------------------------------------------------------------
@dataclass
class EpochRecord:
    """One line of a learning curve."""

    epoch: int
    train_loss: float
    train_accuracy: float
    val_accuracy: float
    seconds: float


@dataclass
class TrainResult:
    """What training one architecture gave: final validation and test accuracy (%), the learning curve,
    epochs run, wall seconds, and the trained weights (`state_dict`)."""

    accuracy: float
    test_accuracy: float
    epochs: int
    seconds: float
    curve: list[EpochRecord]
    state_dict: dict[str, Any]

    def line(self) -> str:
        """The one-line summary `nas train` prints."""
        return f"accuracy={self.accuracy:.2f} test_accuracy={self.test_accuracy:.2f} epochs={self.epochs} seconds={self.seconds:.1f}"


@contextlib.contextmanager
def deterministic(threads: int) -> Iterator[None]:
    """Deterministic algorithms and a fixed intra-op thread count for the duration, restored after."""
    import torch

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), torch.get_num_threads())
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.set_num_threads(before[2])


class Trainer:
    """Trains one network epoch by epoch with a recipe, so a caller can stop after any epoch (pruning)
    or continue later (successive halving on learning curves).

    Args:
        module: the untrained network (`space.build(arch, data.input_spec)`).
        data: the prepared splits.
        recipe: the training recipe.
        seed: seeds batch order and augmentation (the caller seeded the initial weights).
    """

    def __init__(self, module: Any, data: PreparedData, recipe: Recipe, *, seed: int) -> None:
        import torch

        self.module = module
        self.data = data
        self.recipe = recipe
        self.epoch = 0
        self.curve: list[EpochRecord] = []
        self.seconds = 0.0
        self._generator = torch.Generator().manual_seed(int(seed))
        params = [p for p in module.parameters() if p.requires_grad]
        if recipe.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay)
        elif recipe.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        else:
            self.optimizer = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
        self._steps_per_epoch = max(1, math.ceil(len(data.train_y) / recipe.batch_size))
        self._step = 0

    def _lr_factor(self, step: int) -> float:
        r = self.recipe
        total = r.epochs * self._steps_per_epoch
        warm = r.warmup_epochs * self._steps_per_epoch
        if step < warm:
            return (step + 1) / warm
        if r.schedule == "constant":
            return 1.0
        if r.schedule == "step":
            progress = step / total
            return 0.01 if progress >= 0.75 else 0.1 if progress >= 0.5 else 1.0
        progress = (step - warm) / max(1, total - warm)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    def _augment(self, x: Any) -> Any:
        import torch
        import torch.nn.functional as F

        r, g = self.recipe, self._generator
        if "crop" in r.augmentation:
            pad = max(1, x.shape[-1] // 8)
            padded = F.pad(x, (pad, pad, pad, pad))
            shifts = torch.randint(0, 2 * pad + 1, (len(x), 2), generator=g)
            out = torch.empty_like(x)
            h, w = x.shape[-2:]
            for dy, dx in torch.unique(shifts, dim=0).tolist():
                rows = ((shifts[:, 0] == dy) & (shifts[:, 1] == dx)).nonzero().flatten()
                out[rows] = padded[rows, :, dy : dy + h, dx : dx + w]
            x = out
        if "flip" in r.augmentation:
            flip = (torch.rand(len(x), generator=g) < 0.5).nonzero().flatten()
            x = x.clone()
            x[flip] = x[flip].flip(-1)
        if "noise" in r.augmentation:
            x = x + r.noise_std * torch.randn(x.shape, generator=g)
        return x

    def train_epoch(self) -> EpochRecord:
        """One pass over the training split; raises `TrainingDivergedError` on a NaN or exploding loss."""
        import torch
        import torch.nn.functional as F

        r, d = self.recipe, self.data
        start = time.perf_counter()
        with deterministic(r.threads):
            self.module.train()
            order = torch.randperm(len(d.train_y), generator=self._generator)
            total_loss, correct, seen = 0.0, 0, 0
            for batch, first in enumerate(range(0, len(order), r.batch_size)):
                rows = order[first : first + r.batch_size]
                x, y = self._augment(d.train_x[rows]), d.train_y[rows]
                for group in self.optimizer.param_groups:
                    group["lr"] = r.lr * self._lr_factor(self._step)
                logits = self.module(x)
                loss = F.cross_entropy(logits, y, label_smoothing=r.label_smoothing)
                value = float(loss.detach())
                if not math.isfinite(value) or value > 1e4:
                    raise TrainingDivergedError(
                        f"training diverged: loss {value:.4g} at epoch {self.epoch + 1}, step {batch + 1} (lr {r.lr * self._lr_factor(self._step):.3g}); lower the learning rate"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if r.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(self.module.parameters(), r.grad_clip)
                self.optimizer.step()
                self._step += 1
                total_loss += value * len(rows)
                correct += int((logits.argmax(1) == y).sum())
                seen += len(rows)
            val = self._accuracy(d.val_x, d.val_y)
        self.epoch += 1
        elapsed = time.perf_counter() - start
        self.seconds += elapsed
        record = EpochRecord(self.epoch, total_loss / seen, 100.0 * correct / seen, val, elapsed)
        self.curve.append(record)
        return record

    def _accuracy(self, x: Any, y: Any) -> float:
        self.module.eval()
        return batched_accuracy(self.module, x, y)

    def test_accuracy(self) -> float:
        """Accuracy (%) on the test split: call once, at the end."""
        with deterministic(self.recipe.threads):
            return self._accuracy(self.data.test_x, self.data.test_y)

    def run(self, until: int | None = None, on_epoch: Callable[[EpochRecord], None] | None = None) -> None:
        """Train up to epoch `until` (default: the recipe's), calling `on_epoch` after each epoch; a
        callback may raise (a pruner stopping the trial) to stop here."""
        end = self.recipe.epochs if until is None else min(until, self.recipe.epochs)
        while self.epoch < end:
            record = self.train_epoch()
            if on_epoch is not None:
                on_epoch(record)

    def result(self) -> TrainResult:
        """The result after the epochs run so far (test accuracy evaluated now)."""
        last = self.curve[-1].val_accuracy if self.curve else float("nan")
        return TrainResult(last, self.test_accuracy(), self.epoch, self.seconds, list(self.curve), self.module.state_dict())


def build_initialised(space: SearchSpace, arch: Arch, input_spec: InputSpec, seed: int) -> Any:
    """`space.build(arch, input_spec)` with initial weights drawn from `seed`; torch's global RNG is
    left as it was."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        return space.build(arch, input_spec)


def make_trainer(space: SearchSpace, arch: Arch, data: PreparedData, recipe: Recipe, *, seed: int) -> Trainer:
    """A `Trainer` for `arch` on `data` (resized to the arch's own resolution where the space has one),
    its initial weights and batches drawn from `seed`."""
    size = space.input_size(arch)
    if size is not None:
        data = at_resolution(data, int(size))
    with deterministic(recipe.threads):
        module = build_initialised(space, space.validate(arch), data.input_spec, seed)
    return Trainer(module, data, recipe, seed=seed)


def train_arch(
    space: SearchSpace,
    arch: Arch,
    data: PreparedData,
    recipe: Recipe,
    *,
    seed: int,
    on_epoch: Callable[[EpochRecord], None] | None = None,
) -> TrainResult:
    """Train `arch` from scratch with `recipe` on `data`; the final validation and test accuracy.

    Raises:
        TrainingDivergedError: the loss became NaN, infinite or exploded.
    """
    trainer = make_trainer(space, arch, data, recipe, seed=seed)
    trainer.run(on_epoch=on_epoch)
    return trainer.result()


def load_prepared(spec: str, recipe: Recipe) -> PreparedData:
    """The dataset `spec` (see `nas.data`) split and prepared as `recipe` says."""
    return prepare(load_data(spec), recipe)


# --- the provider --------------------------------------------------------------------------------------
WEIGHTS_DIR = "weights"
WEIGHTS_ATTR = "weights"
DATA_FILE = "training.json"


def weights_path(directory: Path, trial_number: int) -> Path:
    """Where the weights of a run's trial are kept: `RUN/weights/trial_00012.pt`."""
    return directory / WEIGHTS_DIR / f"trial_{trial_number:05d}.pt"


def save_weights(state_dict: Mapping[str, Any], path: Path) -> None:
    """`torch.save(state_dict)` so a crash leaves the old file or the new one; load with `weights_only=True`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(dict(state_dict), tmp)
    os.replace(tmp, path)


class TrainingAccuracy(MetricProvider):
    """`train:DATA`: the validation accuracy (%) an architecture reaches trained with the run's recipe.

    Tier `measured`: training is the query the budget counts. Each trial reports its per-epoch validation
    accuracy (a pruner may stop it), and returns the test accuracy, epochs and seconds beside it; the
    weights of a trial go to `RUN/weights/trial_NNNNN.pt`. The data is loaded and checked when the
    provider is built, so bad data stops a run before anything is written.

    Args:
        space: the search space.
        data: a dataset spec (`digits`, `npz:PATH`, ...; see `nas.data`).
        recipe: the training recipe.
        seed: initial weights and batch order of every architecture.

    Example:
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> p = TrainingAccuracy(space, "digits", Recipe(epochs=1, max_train=50), seed=0)
        >>> p.tier.value, p.input_spec
        ('measured', InputSpec(channels=1, height=8, width=8, classes=10))
    """

    metric = "accuracy"
    tier = Tier.MEASURED
    reported = ("test_accuracy", "epochs", "train_seconds")

    def __init__(self, space: SearchSpace, data: str, recipe: Recipe, *, seed: int | None = 0) -> None:
        self.space = space
        self.data_spec = data
        self.recipe = recipe
        self.seed = 0 if seed is None else int(seed)
        self.data = load_prepared(data, recipe)
        self.input_spec = self.data.input_spec
        self.curve_length = recipe.epochs

    def pins(self) -> dict[str, Any]:
        return {"data": self.data_spec, "data_sha256": self.data.description["sha256"], "recipe": self.recipe.to_dict(), "seed": self.seed}

    def setup(self, directory: Path) -> None:
        """Writes `RUN/training.json` (data, splits, recipe) once; refuses a run made with other data."""
        path = directory / DATA_FILE
        mine = {"data": self.data.description, "recipe": self.recipe.to_dict(), "seed": self.seed}
        if path.is_file():
            stored = json.loads(path.read_text())
            if stored.get("data", {}).get("sha256") != mine["data"]["sha256"]:
                raise DataError(
                    f"run {directory} was trained on other data ({stored.get('data', {}).get('data')}, sha256 {str(stored.get('data', {}).get('sha256'))[:12]}) "
                    f"than {self.data_spec} (sha256 {mine['data']['sha256'][:12]}); refusing to mix them, choose a new --out"
                )
            return
        write_atomic(path, json.dumps(mine, indent=2))

    def _train(self, arch: Arch, on_epoch: Callable[[EpochRecord], None] | None = None) -> TrainResult:
        return train_arch(self.space, arch, self.data, self.recipe, seed=self.seed, on_epoch=on_epoch)

    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Trains each arch (outside a search: nothing is reported or kept)."""
        return np.array([self._train(a).accuracy for a in archs], dtype=float)

    def evaluate_trial(self, arch: Arch, context: TrialContext) -> dict[str, float]:
        result = self._train(arch, on_epoch=lambda record: context.report(record.epoch, record.val_accuracy))
        if context.directory is not None and context.number is not None:
            path = weights_path(context.directory, context.number)
            save_weights(result.state_dict, path)
            if context.trial is not None:
                context.trial.set_user_attr(WEIGHTS_ATTR, str(path.relative_to(context.directory)))
        return {"accuracy": result.accuracy, "test_accuracy": result.test_accuracy, "epochs": float(result.epochs), "train_seconds": result.seconds}

    def reference_values(self, space: Any) -> np.ndarray:
        """Accuracy lies in [0, 100] %: the reference point's accuracy is 0."""
        return np.array([0.0, 100.0])

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "data": self.data.description, "recipe": self.recipe.to_dict(), "seed": self.seed}


__all__ = [
    "AUGMENTATIONS",
    "EpochRecord",
    "OPTIMIZERS",
    "PreparedData",
    "Recipe",
    "RecipeError",
    "SCHEDULES",
    "TrainResult",
    "Trainer",
    "TrainingAccuracy",
    "TrainingDivergedError",
    "build_initialised",
    "load_prepared",
    "make_trainer",
    "prepare",
    "train_arch",
]

