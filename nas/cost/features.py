"""What a LUT row can price: operator signatures (counted per network) and topology terms.

Why a separate module: fitted LUTs (`nas.cost.fit`) and LUT lookup (`nas.cost.lut`) must build the same
features from an architecture, and both may only see a space through `space.layers(arch)` and the
encodings it offers. A plain per-operator sum cannot see what emits no operator: in NB201 a `none` edge
and a `skip_connect` edge both execute nothing in `layers()`, yet they decide which nodes are summed,
whether the cell output is connected at all, and (on devices whose runtime executes NAS-Bench-201's
`Zero` module or prunes dead branches) how much really runs. Topology terms are extra LUT rows keyed
`term:KIND[:ARG]` whose value per network is computed here, so a LUT file stays plain data.

Term kinds (registered in `term_kinds`, listed by `term_kinds.names()`):

- `term:live_paths` — input-to-output routes whose every edge carries an op (spaces with a `path`
  encoding).
- `term:disconnected` — 1 when there is no such route (the cell output is all zeros).
- `term:path:J` — column J of the space's `path` encoding (one route with one op sequence).
- `term:choice:DECISION=CHOICE` — 1 when the decision takes that choice.
- `term:choices:CHOICE` — how many decisions take that choice.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from nas.registry import Registry, UnknownNameError
from nas.spaces.base import Arch, LayerPart, LayerSignature, SearchSpace

TERM_PREFIX = "term:"


class TermError(ValueError):
    """A term key that is malformed, unknown, or does not apply to the space."""


def is_term(key: str) -> bool:
    return key.startswith(TERM_PREFIX)


# --- operator signatures ---------------------------------------------------------------------------
#: Batches at least this large (a whole space being priced) keep their counts for the next LUT (spaces
#: without `layer_parts`, whose counts are listed arch by arch).
CACHE_MIN_ARCHS = 2048
_COUNTS_CACHE: OrderedDict[tuple[Any, ...], tuple[sp.csr_matrix, list[LayerSignature]]] = OrderedDict()
_CACHE_SIZE = 4
#: Per space object, per layer options: the counts of every part choice seen so far (`_PartTable`).
_PART_TABLES: weakref.WeakKeyDictionary[SearchSpace, dict[tuple[Any, ...], _PartTable | None]] = weakref.WeakKeyDictionary()


def signature_counts(space: SearchSpace, archs: Sequence[Arch], **layer_kwargs: Any) -> tuple[sp.csr_matrix, list[LayerSignature]]:
    """How often each operator signature occurs in each network.

    Why two ways: listing the layers of every network arch by arch is slow (about 15 s for NB201's
    15,625 cells here). Spaces that split their layers into parts (`SearchSpace.layer_parts`) are counted
    from the counts of each part choice, computed once per space and layer options and kept: a batch is
    then one sparse product. Other spaces are listed arch by arch. Either way large batches (the last
    few; a whole space priced for several LUTs) are kept, keyed by the space's identity, the layer
    options, the archs, and the layers of the first and last arch (so a redefined space of the same name
    misses).

    Returns:
        `counts` (`n_archs x n_signatures`, sparse, canonical; shared, do not modify) and the signatures
        of its columns (their `key()` is the LUT row key), every one occurring in some arch, ordered by
        the first arch each occurs in. Within one arch the order is its layers' listed arch by arch, and
        the part table's (when first met) from parts: the same counts, columns in another order, so sums
        of per-signature costs agree to rounding (a few ulps) and integer counts (params, MACs) exactly.
    """
    if len(archs) < CACHE_MIN_ARCHS:
        return _count_fast(space, archs, layer_kwargs)
    key = (
        type(space).__qualname__,
        space.name,
        repr(sorted(layer_kwargs.items())),
        tuple(archs),
        tuple(space.layers(archs[0], **layer_kwargs)),
        tuple(space.layers(archs[-1], **layer_kwargs)),
    )
    if key in _COUNTS_CACHE:
        _COUNTS_CACHE.move_to_end(key)
        return _COUNTS_CACHE[key]
    result = _count_fast(space, archs, layer_kwargs)
    _COUNTS_CACHE[key] = result
    while len(_COUNTS_CACHE) > _CACHE_SIZE:
        _COUNTS_CACHE.popitem(last=False)
    return result


def signature_counts_by_layers(space: SearchSpace, archs: Sequence[Arch], **layer_kwargs: Any) -> tuple[sp.csr_matrix, list[LayerSignature]]:
    """`signature_counts` listed arch by arch from `space.layers(arch)`, never from parts nor a cache:
    the reference the fast path is tested and benchmarked against."""
    return _count(space, archs, layer_kwargs)


def _count_fast(space: SearchSpace, archs: Sequence[Arch], layer_kwargs: dict[str, Any]) -> tuple[sp.csr_matrix, list[LayerSignature]]:
    table = _part_table(space, layer_kwargs)
    return table.signature_counts(archs) if table is not None else _count(space, archs, layer_kwargs)


def _count(space: SearchSpace, archs: Sequence[Arch], layer_kwargs: dict[str, Any]) -> tuple[sp.csr_matrix, list[LayerSignature]]:
    key_of: dict[LayerSignature, int] = {}
    keys: list[LayerSignature] = []
    rows: list[int] = []
    cols: list[int] = []
    for i, arch in enumerate(archs):
        for sig in space.layers(arch, **layer_kwargs):
            j = key_of.get(sig)
            if j is None:
                j = key_of[sig] = len(keys)
                keys.append(sig)
            rows.append(i)
            cols.append(j)
    data = np.ones(len(rows), dtype=np.float64)
    counts = sp.csr_matrix((data, (rows, cols)), shape=(len(archs), len(keys)))
    counts.sum_duplicates()
    return counts, keys


def _part_table(space: SearchSpace, layer_kwargs: dict[str, Any]) -> _PartTable | None:
    """The kept `_PartTable` of `space` under `layer_kwargs` (None: the space has no parts for them)."""
    key = tuple(sorted(layer_kwargs.items()))
    try:
        hash(key)
    except TypeError:  # an unhashable option: count without keeping anything
        parts = space.layer_parts(**layer_kwargs)
        return _PartTable(space, parts) if parts is not None else None
    tables = _PART_TABLES.setdefault(space, {})
    if key not in tables:
        parts = space.layer_parts(**layer_kwargs)
        tables[key] = _PartTable(space, parts) if parts is not None else None
    return tables[key]


class _PartTable:
    """The operator counts of every choice of every part of one space under one set of layer options.

    A part's choices are numbered by their mixed-radix index over its decisions; a choice's counts are
    computed the first time a batch holds it (so a sampled batch of a huge space computes only the
    choices it holds) and kept as one row of `_rows`. A batch's counts are then `D @ rows`, where `D`
    (`n_archs x n_rows`) holds a 1 at each arch's row of each part.
    """

    def __init__(self, space: SearchSpace, parts: Sequence[LayerPart]) -> None:
        names = {d.name: j for j, d in enumerate(space.decisions)}
        self.space = space
        self.parts = tuple(parts)
        self.positions = [np.array([names[n] for n in p.decisions], dtype=np.int64) for p in self.parts]
        self.radices = [tuple(len(space.decisions[j].choices) for j in pos) for pos in self.positions]
        if any(int(np.prod(r, dtype=object)) >= 2**62 for r in self.radices):
            raise ValueError(f"space {space.name!r}: a layer part depends on too many choices to number them")
        self.column: dict[LayerSignature, int] = {}
        self.signatures: list[LayerSignature] = []
        self.row_of: list[dict[int, int]] = [{} for _ in self.parts]
        self._cols: list[np.ndarray] = []
        self._vals: list[np.ndarray] = []
        self._matrix: sp.csr_matrix | None = None
        self._lock = threading.Lock()
        # a part may return one mapping for many choices (NB201: one per multiset of cell steps); each
        # is converted to columns once, and kept with its arrays so its id is never reused meanwhile
        self._converted: dict[int, tuple[Mapping[LayerSignature, int], np.ndarray, np.ndarray]] = {}

    def _add_rows(self, part: int, combos: Sequence[int]) -> None:
        """Compute and keep the rows of `combos` (choice numbers of `part` not kept yet)."""
        if self.radices[part]:
            index = np.unravel_index(np.asarray(combos, dtype=np.int64), self.radices[part])
            options = [self.space.decisions[j].choices for j in self.positions[part]]
            chosen = zip(*([opts[i] for i in column.tolist()] for opts, column in zip(options, index)))
        else:
            chosen = iter([()] * len(combos))
        for combo, choices in zip(combos, chosen):
            self._add_row(part, combo, choices)

    def _add_row(self, part: int, combo: int, choices: tuple) -> None:
        counts = self.parts[part].counts(choices)
        converted = self._converted.get(id(counts))
        if converted is None or converted[0] is not counts:
            cols, vals = [], []
            for sig, n in counts.items():
                if n:
                    j = self.column.get(sig)
                    if j is None:
                        j = self.column[sig] = len(self.signatures)
                        self.signatures.append(sig)
                    cols.append(j)
                    vals.append(n)
            converted = self._converted[id(counts)] = (counts, np.array(cols, dtype=np.int64), np.array(vals, dtype=np.float64))
        self._cols.append(converted[1])
        self._vals.append(converted[2])
        self._matrix = None
        self.row_of[part][combo] = len(self._cols) - 1

    def _rows(self) -> sp.csr_matrix:
        if self._matrix is None or self._matrix.shape != (len(self._cols), len(self.signatures)):
            indptr = np.concatenate([[0], np.cumsum([len(c) for c in self._cols])])
            self._matrix = sp.csr_matrix(
                (np.concatenate(self._vals), np.concatenate(self._cols), indptr), shape=(len(self._cols), len(self.signatures))
            )
        return self._matrix

    def counts(self, indices: np.ndarray) -> sp.csr_matrix:
        """`n_archs x len(signatures)` counts of the archs whose choice indices are `indices`
        (`n_archs x n_decisions`, as `SearchSpace.index_matrix`).

        Under a lock: threads of one study (`study.optimize(n_jobs=...)`) share providers and so this
        table, and a row's id is its position among rows appended so far.
        """
        with self._lock:
            return self._counts(indices)

    def _counts(self, indices: np.ndarray) -> sp.csr_matrix:
        n, k = len(indices), len(self.parts)
        rows = np.empty((n, k), dtype=np.int64)
        for p, (pos, radix) in enumerate(zip(self.positions, self.radices)):
            combos = np.ravel_multi_index(tuple(indices[:, pos].T), radix) if len(pos) else np.zeros(n, dtype=np.int64)
            unique, inverse = np.unique(combos, return_inverse=True)
            kept = self.row_of[p]
            self._add_rows(p, [c for c in unique.tolist() if c not in kept])
            rows[:, p] = np.array([kept[c] for c in unique.tolist()], dtype=np.int64)[inverse.reshape(-1)]
        table = self._rows()
        design = sp.csr_matrix((np.ones(n * k), rows.reshape(-1), np.arange(0, n * k + 1, k)), shape=(n, table.shape[0]))
        return (design @ table).tocsr()

    def signature_counts(self, archs: Sequence[Arch]) -> tuple[sp.csr_matrix, list[LayerSignature]]:
        """`signature_counts(space, archs)` from the parts: the counts of only the signatures the archs
        run, columns ordered by the first arch each occurs in (then by when the table first met them)."""
        counts = self.counts(self.space.index_matrix(archs)).tocsc()
        counts.sort_indices()
        used = np.flatnonzero(np.diff(counts.indptr))
        first_row = counts.indices[counts.indptr[used]]
        columns = used[np.lexsort((used, first_row))]
        counts = counts[:, columns].tocsr()
        counts.sum_duplicates()
        counts.sort_indices()
        return counts, [self.signatures[j] for j in columns]


# --- topology terms ----------------------------------------------------------------------------------
class _Encodings:
    """Encodings of one batch of archs, each computed at most once however many terms read it."""

    def __init__(self, space: SearchSpace, archs: Sequence[Arch]) -> None:
        self.space = space
        self.archs = archs
        self._cache: dict[str, np.ndarray] = {}

    def get(self, kind: str) -> np.ndarray:
        if kind not in self._cache:
            if kind not in self.space.encoding_kinds():
                raise TermError(f"space {self.space.name!r} has no {kind!r} encoding (it offers {self.space.encoding_kinds()})")
            self._cache[kind] = np.asarray(self.space.encode(list(self.archs), kind), dtype=np.float64)
        return self._cache[kind]


@dataclass(frozen=True)
class TermKind:
    """One kind of topology term.

    `compute(encodings, arg)` returns one value per arch; `keys(space)` lists every term of this kind
    the space supports (empty when it does not apply).
    """

    name: str
    summary: str
    compute: Callable[[_Encodings, str], np.ndarray]
    keys: Callable[[SearchSpace], list[str]]


term_kinds: Registry[TermKind] = Registry("LUT term kind")


def _no_arg(name: str, arg: str) -> None:
    if arg:
        raise TermError(f"term {TERM_PREFIX}{name} takes no argument, got {arg!r}")


def _has(space: SearchSpace, encoding: str) -> bool:
    return encoding in space.encoding_kinds()


def _live_paths(enc: _Encodings, arg: str) -> np.ndarray:
    _no_arg("live_paths", arg)
    return enc.get("path").sum(axis=1)


def _disconnected(enc: _Encodings, arg: str) -> np.ndarray:
    _no_arg("disconnected", arg)
    return (enc.get("path").sum(axis=1) == 0).astype(np.float64)


def _path(enc: _Encodings, arg: str) -> np.ndarray:
    path = enc.get("path")
    if not arg.isdigit() or int(arg) >= path.shape[1]:
        raise TermError(f"term {TERM_PREFIX}path:{arg} needs a column index in 0..{path.shape[1] - 1}")
    return path[:, int(arg)]


def _decision_choice(space: SearchSpace, arg: str) -> tuple[int, int]:
    name, sep, choice = arg.partition("=")
    decisions = list(space.decisions)
    for j, d in enumerate(decisions):
        if d.name == name:
            for c, value in enumerate(d.choices):
                if str(value) == choice:
                    return j, c
            raise TermError(
                f"term {TERM_PREFIX}choice:{arg}: decision {name!r} has no choice {choice!r}; expected one of {list(d.choices)}"
            )
    if not sep:
        raise TermError(f"term {TERM_PREFIX}choice:{arg} must be choice:DECISION=CHOICE")
    raise TermError(f"term {TERM_PREFIX}choice:{arg}: space {space.name!r} has no decision {name!r}")


def _choice(enc: _Encodings, arg: str) -> np.ndarray:
    j, c = _decision_choice(enc.space, arg)
    return (enc.get("integer")[:, j] == c).astype(np.float64)


def _choices(enc: _Encodings, arg: str) -> np.ndarray:
    index = [next((c for c, v in enumerate(d.choices) if str(v) == arg), -1) for d in enc.space.decisions]
    if all(c < 0 for c in index):
        raise TermError(f"term {TERM_PREFIX}choices:{arg}: no decision of space {enc.space.name!r} offers choice {arg!r}")
    return (enc.get("integer") == np.asarray(index)[None, :]).sum(axis=1).astype(np.float64)


def _path_width(space: SearchSpace) -> int:
    probe = space.sample(np.random.default_rng(0))
    return int(np.asarray(space.encode([probe], "path")).shape[1])


def _shared_choices(space: SearchSpace) -> list[str]:
    """Choices every decision offers (NB201: all five ops; FBNet: all nine blocks)."""
    common = [str(c) for c in space.decisions[0].choices] if space.decisions else []
    return [c for c in common if all(c in map(str, d.choices) for d in space.decisions)]


def _if_path(*keys: str) -> Callable[[SearchSpace], list[str]]:
    return lambda space: [f"{TERM_PREFIX}{k}" for k in keys] if _has(space, "path") else []


def _path_keys(space: SearchSpace) -> list[str]:
    return [f"{TERM_PREFIX}path:{j}" for j in range(_path_width(space))] if _has(space, "path") else []


def _choice_keys(space: SearchSpace) -> list[str]:
    return [f"{TERM_PREFIX}choice:{d.name}={c}" for d in space.decisions for c in d.choices]


def _choices_keys(space: SearchSpace) -> list[str]:
    return [f"{TERM_PREFIX}choices:{c}" for c in _shared_choices(space)]


for _kind in (
    TermKind("live_paths", "input-to-output routes with an op on every edge", _live_paths, _if_path("live_paths")),
    TermKind("disconnected", "1 when no route connects input and output", _disconnected, _if_path("disconnected")),
    TermKind("path", "one column of the path encoding", _path, _path_keys),
    TermKind("choice", "1 when DECISION takes CHOICE", _choice, _choice_keys),
    TermKind("choices", "how many decisions take CHOICE", _choices, _choices_keys),
):
    term_kinds.add(_kind.name, _kind)


def parse_term(key: str) -> tuple[str, str]:
    """`term:KIND[:ARG]` -> (KIND, ARG); unknown kinds raise TermError listing the known ones."""
    if not is_term(key):
        raise TermError(f"{key!r} is not a term key (terms start with {TERM_PREFIX!r})")
    kind, _, arg = key[len(TERM_PREFIX):].partition(":")
    if kind not in term_kinds:
        raise TermError(f"unknown LUT term {key!r}; known kinds: {', '.join(term_kinds.names())}")
    return kind, arg


def term_matrix(space: SearchSpace, archs: Sequence[Arch], keys: Sequence[str]) -> np.ndarray:
    """Values of the terms `keys` for each arch: `n_archs x n_keys`."""
    enc = _Encodings(space, archs)
    out = np.empty((len(archs), len(keys)), dtype=np.float64)
    for j, key in enumerate(keys):
        kind, arg = parse_term(key)
        try:
            out[:, j] = term_kinds.get(kind).compute(enc, arg)
        except UnknownNameError as exc:  # pragma: no cover - parse_term checked the kind
            raise TermError(str(exc)) from None
    return out


def topology_terms(space: SearchSpace, *, full: bool = False) -> list[str]:
    """The terms a fit uses for `space`.

    The small set (route counts and per-choice counts) has few enough rows to fit from a handful of
    measured networks; the full set (every path-encoding column and every decision/choice pair) is for
    distilling a model fitted on a whole table, where thousands of rows pin each coefficient.
    """
    kinds = ("live_paths", "disconnected", "choices") + (("path", "choice") if full else ())
    return [key for kind in kinds for key in term_kinds.get(kind).keys(space)]
