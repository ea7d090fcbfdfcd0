"""The two concepts every other part of `nas` builds on: an architecture and the space it lives in.

Why: strategies, cost models and accuracy providers must all agree on what one candidate network is,
without knowing which space it came from. `Arch` is that shared currency; `SearchSpace` is the protocol a
space implements so strategies can sample/mutate and cost models can read `layers(arch)`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Choice = str | int | float


class Arch(Mapping[str, Choice]):
    """One candidate network: an immutable, hashable mapping decision name -> choice.

    Decision order is the order of the space's decisions, so two archs with the same choices are equal
    and hash alike whatever order they were built in.

    Example:
        >>> a = Arch({"edge_1_0": "skip_connect", "edge_2_0": "none"})
        >>> a["edge_1_0"]
        'skip_connect'
        >>> a == Arch({"edge_2_0": "none", "edge_1_0": "skip_connect"})
        True
    """

    __slots__ = ("_items", "_hash")

    def __init__(self, choices: Mapping[str, Choice] | Iterable[tuple[str, Choice]]) -> None:
        items = dict(choices)
        self._items: tuple[tuple[str, Choice], ...] = tuple(items.items())
        self._hash = hash(frozenset(self._items))

    def __getitem__(self, key: str) -> Choice:
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return (name for name, _ in self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Arch):
            return NotImplemented
        return self._hash == other._hash and dict(self._items) == dict(other._items)

    def __repr__(self) -> str:
        return f"Arch({dict(self._items)!r})"

    def replace(self, **changes: Choice) -> Arch:
        """A copy with some decisions changed (decision order kept)."""
        unknown = set(changes) - set(self)
        if unknown:
            raise KeyError(f"unknown decisions {sorted(unknown)}")
        return Arch({name: changes.get(name, value) for name, value in self._items})


@dataclass(frozen=True)
class Decision:
    """One architectural decision and its allowed choices (in canonical order)."""

    name: str
    choices: tuple[Choice, ...]


@dataclass(frozen=True)
class LayerSignature:
    """A concrete operator instance, as cost models key on it.

    `op` names the operator type (e.g. "conv", "bn", "relu", "avgpool", "linear", "add"); shapes are
    NCHW with batch 1 unless stated. Two layers with equal signatures cost the same on a device, which is
    what makes a lookup table (LUT) possible.
    """

    op: str
    in_shape: tuple[int, ...]
    out_channels: int = 0
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bits: int = 32
    bias: bool = False

    def key(self) -> str:
        """Stable text form used as a LUT row key."""
        shape = "x".join(str(s) for s in self.in_shape)
        return (
            f"{self.op}:in={shape}:out={self.out_channels}:k={self.kernel}:s={self.stride}"
            f":g={self.groups}:b={self.bits}:bias={int(self.bias)}"
        )


class InvalidArchError(ValueError):
    """An architecture string or mapping that the space cannot represent."""


class SearchSpace(ABC):
    """The protocol every search space implements.

    Spaces know nothing of costs or strategies. Finite spaces also implement `enumerate()` and `size`.
    """

    name: str

    @property
    @abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """The decisions, in canonical order."""

    # --- sampling and moves -------------------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> Arch:
        """A uniformly random architecture."""
        return Arch({d.name: d.choices[rng.integers(len(d.choices))] for d in self.decisions})

    def mutate(self, arch: Arch, rng: np.random.Generator, n_changes: int = 1) -> Arch:
        """Change `n_changes` distinct decisions to a different choice each."""
        decisions = [d for d in self.decisions if len(d.choices) > 1]
        picked = rng.choice(len(decisions), size=min(n_changes, len(decisions)), replace=False)
        changes = {}
        for i in picked:
            d = decisions[int(i)]
            others = [c for c in d.choices if c != arch[d.name]]
            changes[d.name] = others[rng.integers(len(others))]
        return arch.replace(**changes)

    def neighbours(self, arch: Arch) -> list[Arch]:
        """All architectures one decision away, in decision order."""
        out = []
        for d in self.decisions:
            for c in d.choices:
                if c != arch[d.name]:
                    out.append(arch.replace(**{d.name: c}))
        return out

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each decision taken from `a` or `b` with equal probability."""
        take_a = rng.random(len(self.decisions)) < 0.5
        return Arch({d.name: (a if t else b)[d.name] for d, t in zip(self.decisions, take_a)})

    # --- identity -----------------------------------------------------------------------------
    def validate(self, arch: Mapping[str, Choice]) -> Arch:
        """Return `arch` as an `Arch` in canonical order, or raise InvalidArchError."""
        names = [d.name for d in self.decisions]
        if set(arch) != set(names):
            missing = sorted(set(names) - set(arch))
            extra = sorted(set(arch) - set(names))
            raise InvalidArchError(
                f"architecture does not match space {self.name!r}: missing {missing}, unexpected {extra}"
            )
        for d in self.decisions:
            if arch[d.name] not in d.choices:
                raise InvalidArchError(
                    f"decision {d.name!r} of space {self.name!r} got {arch[d.name]!r}; expected one of {list(d.choices)}"
                )
        return Arch({n: arch[n] for n in names})

    @abstractmethod
    def to_string(self, arch: Arch) -> str:
        """Canonical string form; `from_string(to_string(a)) == a`."""

    @abstractmethod
    def from_string(self, text: str) -> Arch:
        """Parse the canonical string form; raise InvalidArchError with a one-line reason."""

    # --- encodings ----------------------------------------------------------------------------
    def index_matrix(self, archs: Sequence[Arch]) -> np.ndarray:
        """`n_archs x n_decisions` integer matrix of choice indices (the integer encoding)."""
        lookup = [{c: i for i, c in enumerate(d.choices)} for d in self.decisions]
        return np.array(
            [[lookup[j][a[d.name]] for j, d in enumerate(self.decisions)] for a in archs], dtype=np.int64
        ).reshape(len(archs), len(self.decisions))

    def from_index_matrix(self, indices: np.ndarray) -> list[Arch]:
        """Inverse of `index_matrix`."""
        names = [d.name for d in self.decisions]
        choices = [d.choices for d in self.decisions]
        return [Arch({n: choices[j][int(row[j])] for j, n in enumerate(names)}) for row in np.asarray(indices)]

    def encoding_kinds(self) -> list[str]:
        return ["integer", "onehot"]

    def encode(self, archs: Arch | Sequence[Arch], kind: str = "onehot") -> np.ndarray:
        """Encode one arch (1-D array) or many (`n_archs x n_features`)."""
        single = isinstance(archs, Arch)
        batch = [archs] if single else list(archs)
        encoded = self._encode_batch(batch, kind)
        return encoded[0] if single else encoded

    def _encode_batch(self, archs: Sequence[Arch], kind: str) -> np.ndarray:
        idx = self.index_matrix(archs)
        if kind == "integer":
            return idx
        if kind == "onehot":
            sizes = [len(d.choices) for d in self.decisions]
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            out = np.zeros((len(archs), sum(sizes)), dtype=np.float32)
            rows = np.repeat(np.arange(len(archs)), len(sizes))
            out[rows, (idx + offsets).ravel()] = 1.0
            return out
        raise ValueError(f"unknown encoding {kind!r} for space {self.name!r}; expected one of {self.encoding_kinds()}")

    # --- finite spaces ------------------------------------------------------------------------
    @property
    def size(self) -> int | None:
        """Number of architectures, or None when the space is not finite/enumerable."""
        return int(np.prod([len(d.choices) for d in self.decisions], dtype=object))

    def enumerate(self) -> list[Arch]:
        """Every architecture, in the space's canonical order (row-major over decisions)."""
        sizes = [len(d.choices) for d in self.decisions]
        grid = np.indices(sizes).reshape(len(sizes), -1).T
        return self.from_index_matrix(grid)

    # --- realisation --------------------------------------------------------------------------
    @abstractmethod
    def build(self, arch: Arch, **kwargs: Any) -> Any:
        """The real `torch.nn.Module` for `arch`."""

    @abstractmethod
    def layers(self, arch: Arch, **kwargs: Any) -> list[LayerSignature]:
        """Concrete operator signatures of the built network, in execution order."""
