"""The two concepts every other part of `nas` builds on: an architecture and the space it lives in.

Why: strategies, cost models and accuracy providers must all agree on what one candidate network is,
without knowing which space it came from. `Arch` is that shared currency; `SearchSpace` is the protocol a
space implements so strategies can sample/mutate and cost models can read `layers(arch)`.
"""

from __future__ import annotations

import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import networkx

Choice = str | int | float

#: The most architectures any part of `nas` lists at once (`enumerate`, candidate pools, whole-space
#: tables, reference points). One limit for every space and caller: an `Arch` costs about 1 kB, so this
#: bounds a listing to a few hundred MB; larger spaces are sampled instead.
LIST_LIMIT = 200_000


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
        self._items: dict[str, Choice] = dict(choices)
        self._hash = hash(frozenset(self._items.items()))

    def __getitem__(self, key: str) -> Choice:
        return self._items[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Arch):
            return NotImplemented
        return self._hash == other._hash and self._items == other._items

    def __repr__(self) -> str:
        return f"Arch({self._items!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (Arch, (self._items,))

    def replace(self, **changes: Choice) -> Arch:
        """A copy with some decisions changed (decision order kept)."""
        unknown = set(changes) - set(self._items)
        if unknown:
            raise KeyError(f"unknown decisions {sorted(unknown)}")
        return Arch({**self._items, **changes})


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
    #: Spacing of a conv's kernel taps (padding `dilation * (kernel // 2)`); 1 for every other operator.
    dilation: int = 1

    def __post_init__(self) -> None:
        # kept: counting a whole space hashes millions of signatures (dict keys), and a frozen
        # dataclass would rebuild the tuple of its nine fields every time
        object.__setattr__(self, "_hash", hash(self._fields()))

    def _fields(self) -> tuple[Any, ...]:
        return (self.op, self.in_shape, self.out_channels, self.kernel, self.stride, self.groups, self.bits, self.bias, self.dilation)

    def __hash__(self) -> int:
        return self._hash  # type: ignore[no-any-return, attr-defined]

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles by fields, so the kept hash is computed anew in the process that unpickles it (string
        hashes differ between processes)."""
        return (LayerSignature, self._fields())

    def key(self) -> str:
        """Stable text form used as a LUT row key (`:d=N` only for a dilated conv, so existing keys stand)."""
        shape = "x".join(str(s) for s in self.in_shape)
        return (
            f"{self.op}:in={shape}:out={self.out_channels}:k={self.kernel}:s={self.stride}"
            f":g={self.groups}:b={self.bits}:bias={int(self.bias)}"
        ) + (f":d={self.dilation}" if self.dilation != 1 else "")


@dataclass(frozen=True)
class LayerPart:
    """Operators of a network that depend on a few decisions only (none: operators every network runs).

    Why: most operators of a network are decided by one or a few decisions (a layer's block, an edge's
    op, a block's kernel at the arch's resolution). Listing them once per combination of those choices,
    instead of once per architecture, lets cost models count the operators of a whole space or of a
    large batch with array operations (`SearchSpace.layer_parts`).

    `counts(choices)` takes one choice of each of `decisions`, in that order, and says how many times
    each operator signature runs for them.
    """

    decisions: tuple[str, ...]
    counts: Callable[[tuple[Choice, ...]], Mapping[LayerSignature, int]]


@dataclass(frozen=True)
class InputSpec:
    """What a network is built for: input `channels`, `height` x `width`, and `classes` to predict.

    Why in the space layer: `build(arch, input_spec)` takes it from the data (digits are 1 x 8 x 8 with
    10 classes, CIFAR-100 3 x 32 x 32 with 100), so no space hard-codes an input. Feature vectors are
    `channels` = features on a 1 x 1 image.

    Example:
        >>> InputSpec(channels=1, height=8, width=8, classes=10).shape
        (1, 1, 8, 8)
    """

    channels: int
    height: int
    width: int
    classes: int

    def __post_init__(self) -> None:
        values = (self.channels, self.height, self.width, self.classes)
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values) or self.classes < 2:
            raise ValueError(f"input spec needs positive integer channels, height, width and at least 2 classes; got {self}")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The NCHW shape of one input, batch 1."""
        return (1, self.channels, self.height, self.width)

    def describe(self) -> dict[str, int]:
        return {"channels": self.channels, "height": self.height, "width": self.width, "classes": self.classes}


#: `SearchSpace.enumerate()`'s listing of each space object that was listed.
_LISTED: weakref.WeakKeyDictionary[SearchSpace, tuple[Arch, ...]] = weakref.WeakKeyDictionary()


class InvalidArchError(ValueError):
    """An architecture string or mapping that the space cannot represent."""


class SpaceTooLargeError(ValueError):
    """A listing asked of a space with more than `LIST_LIMIT` architectures (or an uncountable one)."""


class SearchSpace(ABC):
    """The protocol every search space implements.

    Spaces know nothing of costs, data loading or strategies. `size` is None where counting is
    meaningless; `enumerate()` works only up to `LIST_LIMIT` architectures (`can_list()`), so every
    caller that would list a space asks `can_list()` and samples otherwise.
    """

    name: str
    #: Reference input settings by name (`cifar10: {num_classes: 10, input_size: 32}`), from the YAML.
    datasets: dict[str, dict[str, int]]
    #: Columns a published table keys architectures by when it has no single arch string (OFA's `ks`,
    #: `e`, `d`, `r`); their values joined by `|` are the space's string.
    table_columns: tuple[str, ...] = ()

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
    def is_valid(self, arch: Mapping[str, Choice]) -> bool:
        """Whether `arch` names an architecture of this space (every decision, each an allowed choice)."""
        try:
            self.validate(arch)
        except InvalidArchError:
            return False
        return True

    def canonical(self, arch: Arch) -> Arch:
        """The one representative of the networks `arch` names: choices that change nothing about the
        network's function set to one fixed value, so two canonical archs never name one network.

        The default has no such choices; spaces with them (dead edges, switched-off blocks) override it.
        """
        return self.validate(arch)

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
        decisions = [(d.name, {c: i for i, c in enumerate(d.choices)}) for d in self.decisions]
        return np.array([[lookup[a[name]] for name, lookup in decisions] for a in archs], dtype=np.int64).reshape(len(archs), len(decisions))

    def from_index_matrix(self, indices: np.ndarray) -> list[Arch]:
        """Inverse of `index_matrix`."""
        names = [d.name for d in self.decisions]
        choices = [d.choices for d in self.decisions]
        rows = np.asarray(indices).tolist()  # Python ints: indexing numpy scalars is what made listing slow
        return [Arch(zip(names, [c[i] for c, i in zip(choices, row)])) for row in rows]

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

    # --- size ---------------------------------------------------------------------------------
    @property
    def size(self) -> int | None:
        """Number of architectures, or None when counting is meaningless."""
        return int(np.prod([len(d.choices) for d in self.decisions], dtype=object))

    def can_list(self) -> bool:
        """Whether `enumerate()` may list this space (at most `LIST_LIMIT` architectures)."""
        size = self.size
        return size is not None and size <= LIST_LIMIT

    def enumerate(self) -> list[Arch]:
        """Every architecture, in the space's canonical order (row-major over decisions).

        The listing is kept per space object (beside it, not in it, so a pickled space stays small): a
        search start lists the space several times (reference point, constraint check, candidate pool)
        and each listing built every `Arch` again.

        Raises:
            SpaceTooLargeError: the space has more than `LIST_LIMIT` architectures.
        """
        if not self.can_list():
            size = "an uncountable number of" if self.size is None else f"{self.size:.3g}"
            raise SpaceTooLargeError(f"space {self.name!r} has {size} architectures, more than the {LIST_LIMIT:,} nas lists at once; sample it instead")
        listed = _LISTED.get(self)
        if listed is None:
            sizes = [len(d.choices) for d in self.decisions]
            listed = _LISTED[self] = tuple(self.from_index_matrix(np.indices(sizes).reshape(len(sizes), -1).T))
        return list(listed)

    # --- realisation --------------------------------------------------------------------------
    def input_spec(self, dataset: str | None = None) -> InputSpec:
        """The reference input of a dataset setting the space defines (its YAML `datasets`; None: the
        first), e.g. NB201's `cifar10` is 3 x 32 x 32 with 10 classes. Data of the user's own gives its own."""
        if dataset is None:
            dataset = next(iter(self.datasets))
        try:
            info = self.datasets[dataset]
        except KeyError:
            raise ValueError(f"space {self.name!r} has no dataset {dataset!r}; expected one of {sorted(self.datasets)}") from None
        size = int(info["input_size"])
        return InputSpec(int(info.get("channels", 3)), size, size, int(info["num_classes"]))

    def input_size(self, arch: Mapping[str, Choice]) -> int | None:
        """The input resolution `arch` itself decides (elastic-resolution spaces such as OFA's), or None
        when the data decides it; training and measurement resize inputs to it."""
        return None

    def _resolve_input(self, input_spec: InputSpec | None, dataset: str | None, num_classes: int | None) -> InputSpec:
        """`input_spec` if given, else the dataset setting's, with `num_classes` overriding its classes."""
        spec = input_spec if input_spec is not None else self.input_spec(dataset)
        if num_classes is not None and num_classes != spec.classes:
            spec = InputSpec(spec.channels, spec.height, spec.width, int(num_classes))
        return spec

    @abstractmethod
    def build(self, arch: Arch, input_spec: InputSpec | None = None, **kwargs: Any) -> Any:
        """The real `torch.nn.Module` for `arch`, for inputs and classes of `input_spec` (default: the
        space's first dataset setting)."""

    @abstractmethod
    def layers(self, arch: Arch, **kwargs: Any) -> list[LayerSignature]:
        """Concrete operator signatures of the built network, in execution order."""

    def layer_parts(self, **kwargs: Any) -> tuple[LayerPart, ...] | None:
        """`layers(arch, **kwargs)` as a sum of parts: for every arch, the operators it runs, counted, are
        the sum over parts `p` of `p.counts(tuple(arch[d] for d in p.decisions))`.

        None (the default) where no such split is known, e.g. where whether an operator runs depends on
        many decisions at once: cost models then list `layers(arch)` architecture by architecture. A
        space that overrides this must keep the identity exactly; the space contract tests check it.
        """
        return None

    def graph(self, arch: Arch) -> networkx.DiGraph:
        """The network as a DAG of operators (node attribute `op`; one `input` source, one `output` sink),
        for graph predictors and hypernetworks.

        The default is a chain of the decisions in order (a layer-wise space); cell spaces override it.
        """
        import networkx as nx

        arch = self.validate(arch)
        g = nx.DiGraph()
        g.add_node("input", op="input")
        previous = "input"
        for d in self.decisions:
            g.add_node(d.name, op=str(arch[d.name]))
            g.add_edge(previous, d.name)
            previous = d.name
        g.add_node("output", op="output")
        g.add_edge(previous, "output")
        return g
