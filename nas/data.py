"""Datasets by name, their input spec, and seeded train / validation / test splits.

Why one module: a search that trains networks must say exactly what it trained on, so that two workers
or a resumed run see the same samples and a run can refuse different data. A dataset is named by a spec
string, as evaluators are:

- `digits`: scikit-learn's 8x8 handwritten digits (1,797 images, 10 classes; ships with scikit-learn).
- `npz:PATH`: a NumPy archive with arrays `x` and `y`. Images are NCHW or NHWC (the channel axis is the
  one of size 1, 3 or 4; NCHW when both are) or N x H x W (one channel); 2-D `x` holds feature vectors,
  which become `features` channels of a 1 x 1 image so every conv space builds over them. `y` holds
  integer class labels 0..K-1, every class present. Optional `x_test`, `y_test` are the test split.
- `folder:PATH`: one sub-folder per class (sorted names are the classes), images read with Pillow,
  resized to the most common size; grey when every image is grey, else RGB.
- `cifar10:DIR`, `cifar100:DIR`: the official python batches (`data_batch_1..5` + `test_batch`, or
  `train` + `test`), in DIR or its `cifar-10-batches-py` / `cifar-100-python` sub-folder. They are pickles,
  read with `nas._pickle.ArrayUnpickler`, which admits numeric arrays, lists, bytes and ints only.

Search selects on the validation split; the test split is reported at the end only. Splits are
stratified and drawn from `split_seed`, never from the search's seed, so every architecture of a run is
compared on the same samples.

Example:
    >>> data = load_data("digits")
    >>> data.input_spec, len(data.y)
    (InputSpec(channels=1, height=8, width=8, classes=10), 1797)
    >>> splits = data.split(val_fraction=0.2, test_fraction=0.2, seed=0)
    >>> len(splits.train), len(splits.val), len(splits.test)
    (1079, 359, 359)
"""

from __future__ import annotations

import hashlib
import pickle
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nas._pickle import safe_load_pickle
from nas.registry import Registry
from nas.spaces.base import InputSpec

_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})


class DataError(ValueError):
    """A dataset spec, file or array that cannot be used (one line naming the input and what was expected)."""


@dataclass(frozen=True)
class Splits:
    """Sample indices of the train / validation / test splits (into `Dataset.x`, or `x_test` for a
    dataset with its own test split, where `test` indexes `x_test`)."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray


@dataclass(frozen=True, eq=False)
class Dataset:
    """Images (`N x C x H x W` float32, values as loaded: digits 0-1, 8-bit images 0-1) and integer
    labels (`N`, 0..classes-1), with the source they came from.

    `x_test` / `y_test` hold an official test split when the source has one (CIFAR, an npz with them);
    otherwise `split` carves the test split out of `x`.
    """

    name: str
    x: np.ndarray
    y: np.ndarray
    source: dict[str, Any] = field(default_factory=dict)
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    def __post_init__(self) -> None:
        _check_arrays(self.name, self.x, self.y)
        if (self.x_test is None) != (self.y_test is None):
            raise DataError(f"dataset {self.name}: x_test and y_test come together; got only one of them")
        if self.x_test is not None:
            _check_arrays(f"{self.name} (test)", self.x_test, self.y_test)
            if self.x_test.shape[1:] != self.x.shape[1:]:
                raise DataError(f"dataset {self.name}: test images are {self.x_test.shape[1:]}, training images {self.x.shape[1:]}; expected the same shape")
            if int(self.y_test.max()) >= self.classes:
                raise DataError(f"dataset {self.name}: test label {int(self.y_test.max())} is out of range; training labels are 0..{self.classes - 1}")

    @property
    def classes(self) -> int:
        return int(self.y.max()) + 1

    @property
    def input_spec(self) -> InputSpec:
        _, channels, height, width = self.x.shape
        return InputSpec(int(channels), int(height), int(width), self.classes)

    def digest(self) -> str:
        """SHA-256 of the arrays (shapes, dtypes and bytes): what a run pins so it can refuse other data."""
        h = hashlib.sha256()
        for array in (self.x, self.y, self.x_test, self.y_test):
            if array is None:
                h.update(b"none")
                continue
            h.update(f"{array.shape}{array.dtype}".encode())
            h.update(np.ascontiguousarray(array).tobytes())
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """What a run stores about its data: name, source, input spec, sample counts and digest."""
        return {
            "data": self.name,
            **self.source,
            **self.input_spec.describe(),
            "samples": int(len(self.y)),
            "test_samples": None if self.y_test is None else int(len(self.y_test)),
            "sha256": self.digest(),
        }

    def split(self, *, val_fraction: float, test_fraction: float, seed: int, max_train: int | None = None) -> Splits:
        """Stratified, seeded splits: `test_fraction` of `x` for test (none when the dataset has its
        own test split), `val_fraction` of `x` for validation, the rest (at most `max_train`, kept
        stratified) for training.

        Raises:
            DataError: a fraction outside [0, 1), or too few samples for a split to hold every class.
        """
        own_test = self.x_test is not None
        for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
            if not 0 <= value < 1:
                raise DataError(f"{name} must be in [0, 1), got {value}")
        test_fraction = 0.0 if own_test else test_fraction
        if val_fraction + test_fraction >= 0.9:
            raise DataError(f"val_fraction + test_fraction = {val_fraction + test_fraction:g} leaves too little to train on; expected < 0.9")
        rng = np.random.default_rng(seed)
        parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
        for label in range(self.classes):
            members = rng.permutation(np.flatnonzero(self.y == label))
            n_test = int(round(test_fraction * len(members)))
            n_val = int(round(val_fraction * len(members)))
            if len(members) - n_test - n_val < 1 or (val_fraction and n_val < 1) or (test_fraction and n_test < 1):
                splits = f"validation ({val_fraction:g})" + ("" if own_test or not test_fraction else f" and test ({test_fraction:g})")
                raise DataError(
                    f"dataset {self.name}: class {label} has {len(members)} sample(s), too few to give the {splits} split(s) "
                    "one each and keep one to train on; lower the fractions or add samples"
                )
            parts["test"].append(members[:n_test])
            parts["val"].append(members[n_test : n_test + n_val])
            parts["train"].append(members[n_test + n_val :])
        train = np.concatenate(parts["train"])
        if max_train is not None and max_train < len(train):
            if max_train < self.classes:
                raise DataError(f"max_train {max_train} is smaller than the {self.classes} classes; expected at least one sample per class")
            train = _stratified_subset(train, self.y[train], max_train, rng)
        test = np.arange(len(self.y_test)) if own_test else np.sort(np.concatenate(parts["test"]))
        return Splits(np.sort(train), np.sort(np.concatenate(parts["val"])), test)


def _stratified_subset(indices: np.ndarray, labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` of `indices`, each class keeping its share (rounded, at least one)."""
    classes, counts = np.unique(labels, return_counts=True)
    take = np.maximum(1, np.floor(counts * n / len(indices)).astype(int))
    order = np.argsort(-(counts * n / len(indices) - take))
    for i in order[: max(0, n - int(take.sum()))]:
        take[i] += 1
    chosen = [rng.permutation(indices[labels == c])[:k] for c, k in zip(classes, take)]
    return np.concatenate(chosen)


def _check_arrays(name: str, x: np.ndarray, y: np.ndarray) -> None:
    if x.ndim != 4:
        raise DataError(f"dataset {name}: images must be N x C x H x W, got shape {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"dataset {name}: labels must be one per image ({len(x)}), got shape {y.shape}")
    if len(y) == 0:
        raise DataError(f"dataset {name} holds no samples")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"dataset {name}: labels must be integers 0..K-1, got dtype {y.dtype}")
    if int(y.min()) < 0:
        raise DataError(f"dataset {name}: label {int(y.min())} is out of range; expected integers 0..K-1")
    present = np.unique(y)
    if len(present) < 2:
        raise DataError(f"dataset {name}: labels hold {len(present)} class; expected at least 2")
    if len(present) != int(y.max()) + 1:
        missing = sorted(set(range(int(y.max()) + 1)) - set(present.tolist()))
        raise DataError(f"dataset {name}: labels skip class(es) {missing[:5]}; expected every class 0..{int(y.max())} to have samples")
    if not np.issubdtype(x.dtype, np.floating):
        raise DataError(f"dataset {name}: images must be float, got {x.dtype}")
    if not np.isfinite(x).all():
        raise DataError(f"dataset {name}: images hold {int((~np.isfinite(x)).sum())} NaN or infinite value(s)")


# --- array layout -------------------------------------------------------------------------------------
def as_images(x: Any, name: str) -> np.ndarray:
    """`x` as `N x C x H x W` float32: NCHW, NHWC (channels 1, 3 or 4), N x H x W, or N x F feature vectors
    (F channels of a 1 x 1 image); 8-bit integers are scaled to [0, 1]."""
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"dataset {name}: x must hold numbers, got dtype {x.dtype}")
    scale = 255.0 if x.dtype == np.uint8 else 1.0
    if x.ndim == 2:
        x = x[:, :, None, None]
    elif x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4:
        if x.shape[1] not in (1, 3, 4) and x.shape[-1] in (1, 3, 4):
            x = x.transpose(0, 3, 1, 2)
    else:
        raise DataError(f"dataset {name}: x must be N x F, N x H x W or N x C x H x W (or NHWC), got shape {x.shape}")
    out = np.ascontiguousarray(x, dtype=np.float32) / np.float32(scale)
    return out


def as_labels(y: Any, name: str) -> np.ndarray:
    """`y` as int64 class labels; float labels must be whole numbers."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.dtype.kind == "f":
        if not np.isfinite(y).all():
            raise DataError(f"dataset {name}: labels hold NaN or infinite values; expected integers 0..K-1")
        if not np.all(y == np.round(y)):
            raise DataError(f"dataset {name}: labels must be whole numbers 0..K-1, got fractional values")
    elif y.dtype.kind not in "biu":
        raise DataError(f"dataset {name}: labels must be integers 0..K-1, got dtype {y.dtype}")
    return y.astype(np.int64)


# --- loaders -------------------------------------------------------------------------------------------
#: `loader(argument) -> Dataset` by the spec's prefix.
Loader = Callable[[str], Dataset]
loaders: Registry[Loader] = Registry("dataset")


def _digits(argument: str) -> Dataset:
    from sklearn.datasets import load_digits

    if argument:
        raise DataError(f"dataset 'digits' takes no argument, got 'digits:{argument}'")
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    return Dataset("digits", x, d.target.astype(np.int64), source={"source": "sklearn.datasets.load_digits"})


def _npz(argument: str) -> Dataset:
    path = _existing(argument, "npz:PATH (a .npz with arrays x and y)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a NumPy .npz archive ({str(exc).splitlines()[0]}); expected arrays x and y saved with numpy.savez") from None
    with archive:
        missing = [k for k in ("x", "y") if k not in archive.files]
        if missing:
            raise DataError(f"{path} has no array(s) {missing}; expected x and y (and optionally x_test, y_test), found {archive.files}")
        name = f"npz:{path}"
        x, y = as_images(archive["x"], name), as_labels(archive["y"], name)
        x_test = y_test = None
        if "x_test" in archive.files or "y_test" in archive.files:
            if not {"x_test", "y_test"} <= set(archive.files):
                raise DataError(f"{path} holds only one of x_test, y_test; expected both or neither")
            x_test, y_test = as_images(archive["x_test"], name), as_labels(archive["y_test"], name)
    return Dataset(name, x, y, source={"source": str(path)}, x_test=x_test, y_test=y_test)


def _folder(argument: str) -> Dataset:
    from PIL import Image, UnidentifiedImageError

    root = _existing(argument, "folder:PATH (one sub-folder of images per class)")
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; expected folder:PATH with one sub-folder of images per class")
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(f"{root} has {len(class_dirs)} class sub-folder(s); expected one sub-folder per class, at least 2")
    images: list[Any] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"class folder {folder} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))})")
        for path in files:
            try:
                with Image.open(path) as im:
                    im.load()
                    images.append(im.copy())
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"{path} is not a readable image ({type(exc).__name__}); expected image files only in class folders") from None
            labels.append(label)
    grey = all(im.mode in ("1", "L", "I", "I;16", "F") for im in images)
    size = Counter(im.size for im in images).most_common(1)[0][0]
    arrays = []
    for im in images:
        im = im.convert("L" if grey else "RGB")
        if im.size != size:
            im = im.resize(size, Image.Resampling.BILINEAR)
        arrays.append(np.asarray(im))
    x = as_images(np.stack(arrays), f"folder:{root}")
    source = {"source": str(root), "classes_by_folder": [p.name for p in class_dirs]}
    return Dataset(f"folder:{root}", x, np.asarray(labels, dtype=np.int64), source=source)


def _read_batch(path: Path, label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = safe_load_pickle(path, arrays=True, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as exc:
        raise DataError(f"{path} is not a CIFAR python batch ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'unreadable'})") from None
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(f"{path} is not a CIFAR python batch: expected a dict with b'data' and {label_key!r}, got {keys}")
    data, labels = batch[b"data"], batch[label_key]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.dtype != np.uint8:
        raise DataError(f"{path}: b'data' must be an N x 3072 uint8 array, got {getattr(data, 'shape', type(data).__name__)}")
    if not isinstance(labels, (list, np.ndarray)) or len(labels) != len(data):
        raise DataError(f"{path}: {label_key!r} must list one label per image ({len(data)})")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def _cifar(argument: str, *, variant: str) -> Dataset:
    sub, train_files, label_key = {
        "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], b"labels"),
        "cifar100": ("cifar-100-python", ["train"], b"fine_labels"),
    }[variant]
    root = _existing(argument, f"{variant}:DIR (the folder of the official python batches)")
    if (root / sub).is_dir():
        root = root / sub
    missing = [f for f in [*train_files, "test_batch" if variant == "cifar10" else "test"] if not (root / f).is_file()]
    if missing:
        raise DataError(f"{root} lacks the {variant} batch file(s) {missing}; expected the official python version ({sub}/)")
    parts = [_read_batch(root / f, label_key) for f in train_files]
    x_test, y_test = _read_batch(root / ("test_batch" if variant == "cifar10" else "test"), label_key)
    name = f"{variant}:{root}"
    x = as_images(np.concatenate([p[0] for p in parts]), name)
    y = np.concatenate([p[1] for p in parts])
    return Dataset(name, x, y, source={"source": str(root)}, x_test=as_images(x_test, name), y_test=y_test)


def _existing(argument: str, syntax: str) -> Path:
    if not argument:
        raise DataError(f"dataset needs a path: {syntax}")
    path = Path(argument).expanduser()
    if not path.exists():
        raise DataError(f"{path} does not exist; expected {syntax}")
    return path


loaders.add("digits", _digits)
loaders.add("npz", _npz)
loaders.add("folder", _folder)
loaders.add("cifar10", lambda argument: _cifar(argument, variant="cifar10"))
loaders.add("cifar100", lambda argument: _cifar(argument, variant="cifar100"))

#: One line per dataset spec, for errors and help.
SYNTAX = ("digits", "npz:PATH", "folder:PATH", "cifar10:DIR", "cifar100:DIR")


def load_data(spec: str) -> Dataset:
    """The dataset a spec names (see the module docstring); every error is one `DataError` line.

    Loaded datasets are kept per process, keyed by the spec and the file's modification time, so the
    trials of a search read a file once.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"dataset spec must be a non-empty string, one of {', '.join(SYNTAX)}; got {spec!r}")
    prefix, _, argument = spec.strip().partition(":")
    if prefix not in loaders:
        raise DataError(f"unknown dataset {spec!r}; known: {', '.join(SYNTAX)}")
    path = Path(argument).expanduser() if argument else None
    stamp = path.stat().st_mtime_ns if path is not None and path.exists() else None
    return _load_cached(prefix, argument, stamp)


@lru_cache(maxsize=4)
def _load_cached(prefix: str, argument: str, stamp: int | None) -> Dataset:
    return loaders.get(prefix)(argument)


__all__ = ["SYNTAX", "DataError", "Dataset", "Splits", "as_images", "as_labels", "load_data", "loaders"]
