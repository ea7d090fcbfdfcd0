"""The DARTS cell space (Liu, Simonyan & Yang, "DARTS: Differentiable Architecture Search", ICLR 2019).

Why its own family: a DARTS network stacks two searched cells, a normal one and a reduction one, each a
DAG of 4 intermediate nodes that sum two operations on two distinct earlier states. Published DARTS
results name architectures by their genotype (`Genotype(normal=[('sep_conv_3x3', 0), ...], ...)`), so
that text is the space's string, and the cells decide the real network users train and measure.

Decisions, per cell (`normal`, `reduce`) and intermediate node `N` in 2..5 (node `N` may read state 0 =
c_{k-2}, the cell before last, 1 = c_{k-1}, the last cell, or an earlier node 2..N-1):

- `{cell}_{N}_inputs`: the node's two distinct inputs as `"i,j"` with `i < j` (`C(N, 2)` choices);
- `{cell}_{N}_op0`: the operation on input `i`; `{cell}_{N}_op1`: the operation on input `j`.

Why inputs as one unordered pair: every combination of choices is then a valid cell, so samplers that
draw each decision on its own (Optuna's, the RL controller, `from_index_matrix`) never propose a node
with two equal inputs, and a node's two (op, input) edges have one order only, so two genotypes that
list a node's edges the other way round parse to one `Arch` and print as one string (by input index).
`canonical` goes further: the input of a `none` edge changes nothing, so it is set to the smallest
index the other edge leaves free. `size` counts those canonical cells.

This module describes the network without torch (strings, encodings, `layers()`, `graph()`);
`nas.spaces.darts_network` builds the `torch.nn.Module` from the same description.

`layers()` lists operators in the shared vocabulary ("conv", "bn", "relu", "avgpool", "add",
"global_avgpool", "linear") plus "maxpool" (`kernel`, `stride`, padding `kernel // 2`) and, for the
dilated depthwise convs of `dil_conv_*`, a "conv" `LayerSignature` with a `dilation`, padding
`dilation * (kernel // 2)`, keyed `...:d=2`). Concatenations and the one-pixel shift inside
`FactorizedReduce` move data without computing and are not listed, like the classifier's flatten.
"""

from __future__ import annotations

import ast
import math
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from nas.spaces.base import Arch, Choice, Decision, InputSpec, InvalidArchError, LayerPart, LayerSignature, SearchSpace

#: DARTS's candidate operations, in the order of its `PRIMITIVES` (the choice order of every op decision).
OPS: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
CELLS: tuple[str, ...] = ("normal", "reduce")
#: Intermediate nodes of a cell, numbered after the cell's two input states 0 and 1.
NODES: tuple[int, ...] = (2, 3, 4, 5)
#: The states a cell concatenates into its output: all of its intermediate nodes.
CONCAT: tuple[int, ...] = NODES
#: Channels of a cell's output per channel of its nodes (the concatenation of `len(CONCAT)` nodes).
MULTIPLIER = len(CONCAT)

#: One node of a cell: its two edges `(input, op)`, the lower input first.
NodeEdges = tuple[tuple[int, str], tuple[int, str]]

#: Kernel size of each convolution op; `dil_conv_*` space their taps `DILATION` pixels apart.
KERNELS = {"sep_conv_3x3": 3, "sep_conv_5x5": 5, "dil_conv_3x3": 3, "dil_conv_5x5": 5}
DILATION = 2
_GENOTYPE_RE = re.compile(r"^\s*Genotype\s*\((?P<body>.*)\)\s*$", re.DOTALL)
_RANGE_RE = re.compile(r"^range\(\s*(\d+)\s*,\s*(\d+)\s*\)$")
_EXAMPLE = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ...], normal_concat=[2, 3, 4, 5], reduce=[...], reduce_concat=[2, 3, 4, 5])"
)


def reduction_cells(layers: int) -> tuple[int, ...]:
    """Indices of the reduction cells in a network of `layers` cells: at 1/3 and 2/3 of its depth, as DARTS."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


def _pair(i: int, j: int) -> str:
    return f"{i},{j}"


def _unpair(text: Choice) -> tuple[int, int]:
    i, j = str(text).split(",")
    return int(i), int(j)


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


# --- operator signatures as an expression graph ------------------------------------------------------
_INPUT, _ZEROS = -1, -2


class _Expr(NamedTuple):
    """One computed tensor: `sig` (None for a data move that lists no operator: `kind` "concat"/"shift")."""

    kind: str
    sig: LayerSignature | None
    operands: tuple[int, ...]
    variable: bool  # depends on the network input
    only_variables: bool  # every operand does


class _Program:
    """The operators a DARTS network runs, created in the order its `forward` runs them.

    Each operator is one expression over its operands' expressions. With `merge`, parameter-free
    expressions (ReLU, pools, adds, data moves) are keyed by what they compute, so an operator applied
    twice to one tensor (the ReLU that two cells' preprocessing and several edges start with) exists
    once; convolutions and their BatchNorms never merge (each has its own weights).
    """

    def __init__(self, merge: bool) -> None:
        self.merge = merge
        self.exprs: list[_Expr] = []
        self._keys: dict[tuple[Any, ...], int] = {}

    def make(self, kind: str, sig: LayerSignature | None, operands: tuple[int, ...], mergeable: bool = True) -> int:
        key = (kind, sig, operands) if self.merge and mergeable else None
        if key is not None and key in self._keys:
            return self._keys[key]
        flags = [o == _INPUT or (o >= 0 and self.exprs[o].variable) for o in operands]
        self.exprs.append(_Expr(kind, sig, operands, any(flags), all(flags)))
        if key is not None:
            self._keys[key] = len(self.exprs) - 1
        return len(self.exprs) - 1

    # -- building blocks, each mirroring one module of `darts_network` --
    def op(self, op: str, x: int, c: int, h: int, w: int, *, kernel: int = 1, stride: int = 1, mergeable: bool = True) -> int:
        sig = LayerSignature(op, (1, c, h, w), out_channels=c, kernel=kernel, stride=stride)
        return self.make(op, sig, (x,), mergeable)

    def conv(self, x: int, c_in: int, c_out: int, h: int, w: int, kernel: int, stride: int = 1, groups: int = 1, dilation: int = 1) -> int:
        sig = LayerSignature("conv", (1, c_in, h, w), out_channels=c_out, kernel=kernel, stride=stride, groups=groups, dilation=dilation)
        return self.make("conv", sig, (x,), mergeable=False)

    def relu_conv_bn(self, x: int, c_in: int, c_out: int, h: int, w: int) -> int:
        """ReLU, 1x1 conv, BN: a cell's preprocessing of an input state."""
        r = self.op("relu", x, c_in, h, w)
        return self.op("bn", self.conv(r, c_in, c_out, h, w, 1), c_out, h, w, mergeable=False)

    def factorized_reduce(self, x: int, c_in: int, c_out: int, h: int, w: int) -> int:
        """ReLU, two stride-2 1x1 convs (the second on the input shifted by one pixel), concat, BN."""
        r = self.op("relu", x, c_in, h, w)
        a = self.conv(r, c_in, c_out // 2, h, w, 1, 2)
        b = self.conv(self.make("shift", None, (r,)), c_in, c_out - c_out // 2, h, w, 1, 2)
        cat = self.make("concat", None, (a, b))
        return self.op("bn", cat, c_out, _conv_out(h, 1, 2), _conv_out(w, 1, 2), mergeable=False)

    def edge(self, op: str, x: int, c: int, h: int, w: int, stride: int) -> int:
        """One edge's operation on state `x` (`c` x `h` x `w`); `none` edges are never built."""
        if op == "skip_connect":
            return x if stride == 1 else self.factorized_reduce(x, c, c, h, w)
        if op in ("max_pool_3x3", "avg_pool_3x3"):
            return self.op(op[:3] + "pool", x, c, h, w, kernel=3, stride=stride)
        kernel = KERNELS[op]
        dilation = DILATION if op.startswith("dil_") else 1
        rounds = 2 if op.startswith("sep_") else 1
        for _ in range(rounds):
            r = self.op("relu", x, c, h, w)
            d = self.conv(r, c, c, h, w, kernel, stride, groups=c, dilation=dilation)
            h, w = _conv_out(h, kernel, stride), _conv_out(w, kernel, stride)
            x = self.op("bn", self.conv(d, c, c, h, w, 1), c, h, w, mergeable=False)
            stride = 1
        return x

    def closure(self, root: int) -> set[int]:
        """Every expression `root` is computed from, itself included."""
        found, stack = set(), [root]
        while stack:
            e = stack.pop()
            if e < 0 or e in found:
                continue
            found.add(e)
            stack.extend(self.exprs[e].operands)
        return found


def _network_program(
    cells: Mapping[str, Sequence[NodeEdges]],
    *,
    channels: int,
    layers: int,
    stem_multiplier: int,
    in_channels: int,
    height: int,
    width: int,
    num_classes: int,
    merge: bool,
) -> tuple[_Program, int]:
    """The expression graph of the whole network (see `darts_network.DartsNetwork`) and its output."""
    p = _Program(merge)
    c_stem = stem_multiplier * channels
    stem = p.make("conv", LayerSignature("conv", (1, in_channels, height, width), out_channels=c_stem, kernel=3), (_INPUT,), False)
    stem = p.op("bn", stem, c_stem, height, width, mergeable=False)
    s0, s1 = stem, stem
    c_p, size_p = c_stem, (height, width)
    for g in _cell_geometries(channels=channels, layers=layers, stem_multiplier=stem_multiplier, height=height, width=width):
        if g.reduction_prev:
            t0 = p.factorized_reduce(s0, g.c_pp, g.c, *g.size_pp)
        else:
            t0 = p.relu_conv_bn(s0, g.c_pp, g.c, *g.size_pp)
        t1 = p.relu_conv_bn(s1, g.c_p, g.c, *g.size_p)
        states = [t0, t1]
        for edges in cells["reduce" if g.reduction else "normal"]:
            outs = [_node_edge(p, g, op, states[src], src) for src, op in edges if op != "none"]
            if not outs:
                states.append(_ZEROS)
            elif len(outs) == 1:
                states.append(outs[0])
            else:
                states.append(p.make("add", LayerSignature("add", (1, g.c, *g.size_out), out_channels=g.c), tuple(outs)))
        s0, s1 = s1, p.make("concat", None, tuple(states[n] for n in CONCAT))
        c_p, size_p = MULTIPLIER * g.c, g.size_out
    pooled = p.op("global_avgpool", s1, c_p, *size_p)
    logits = p.make("linear", LayerSignature("linear", (1, c_p), out_channels=num_classes, bias=True), (pooled,), False)
    return p, logits


class _CellGeometry(NamedTuple):
    """Where one cell of the network sits: its kind, its inputs' channels and sizes, its own."""

    reduction: bool
    reduction_prev: bool
    c_pp: int
    c_p: int
    c: int
    size_pp: tuple[int, int]
    size_p: tuple[int, int]
    size_out: tuple[int, int]


def _cell_geometries(*, channels: int, layers: int, stem_multiplier: int, height: int, width: int) -> list[_CellGeometry]:
    """Every cell's `_CellGeometry`, in order (DARTS's channel doubling and stride-2 reduction cells)."""
    c_stem = stem_multiplier * channels
    c_pp, c_p, c = c_stem, c_stem, channels
    size_pp, size_p = (height, width), (height, width)
    reductions = reduction_cells(layers)
    reduction_prev = False
    out = []
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c *= 2
        h, w = size_p
        size_out = (_conv_out(h, 3, 2), _conv_out(w, 3, 2)) if reduction else (h, w)
        out.append(_CellGeometry(reduction, reduction_prev, c_pp, c_p, c, size_pp, size_p, size_out))
        c_pp, c_p = c_p, MULTIPLIER * c
        size_pp, size_p = size_p, size_out
        reduction_prev = reduction
    return out


def _node_edge(p: _Program, g: _CellGeometry, op: str, x: int, src: int) -> int:
    """One live edge of a node of the cell at `g`, reading state `src` (`x`)."""
    stride = 2 if g.reduction and src < 2 else 1
    return p.edge(op, x, g.c, *(g.size_p if src < 2 else g.size_out), stride)


def _select(p: _Program, output: int, *, live_only: bool, fold_constants: bool) -> list[LayerSignature]:
    """The listed operators of program `p` under the graph-optimiser options (see `DartsSpace.layers`)."""
    needed = p.closure(output) if live_only else None
    out: list[LayerSignature] = []
    for e, expr in enumerate(p.exprs):
        if expr.sig is None or (needed is not None and e not in needed) or (fold_constants and not expr.variable):
            continue
        sig = expr.sig
        if fold_constants and expr.kind == "add" and not expr.only_variables:
            # x + c1 + c2: the tensor leaves the optimised layout once, for the first constant (as NB201)
            chained = any(o >= 0 and p.exprs[o].kind == "add" and not p.exprs[o].only_variables for o in expr.operands)
            if not chained:
                sig = LayerSignature("add", sig.in_shape, out_channels=sig.out_channels, bias=True)
        out.append(sig)
    return out


class DartsSpace(SearchSpace):
    """DARTS's cell space (or a YAML variant: fewer ops, other widths and depths).

    The network is DARTS's evaluation network: stem 3x3 conv + BN at `stem_multiplier * channels`,
    `layers` cells with reduction cells (stride 2, channels doubled) at `layers // 3` and
    `2 * layers // 3`, global average pooling and a linear classifier. The default is the paper's
    CIFAR-10 setting (36 channels, 20 cells); drop path and the auxiliary head, which only training
    uses, are left out.

    Example:
        >>> space = DartsSpace()
        >>> text = ("Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), "
        ...         "('skip_connect', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], "
        ...         "reduce=[('max_pool_3x3', 0), ('max_pool_3x3', 1), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), "
        ...         "('skip_connect', 2), ('max_pool_3x3', 1), ('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])")
        >>> arch = space.from_string(text)
        >>> arch["normal_5_inputs"], arch["normal_5_op0"], arch["normal_5_op1"]
        ('0,2', 'skip_connect', 'dil_conv_3x3')
        >>> space.to_string(arch) == text
        True
        >>> space.size == (64 * 169 * 323 * 526) ** 2
        True
    """

    def __init__(
        self,
        name: str = "darts",
        *,
        ops: Sequence[str] = OPS,
        channels: int = 36,
        layers: int = 20,
        stem_multiplier: int = 3,
        datasets: Mapping[str, Mapping[str, int]] | None = None,
        description: str = "",
    ) -> None:
        unknown = [op for op in ops if op not in OPS]
        if unknown or not ops or len(set(ops)) != len(ops):
            raise ValueError(
                f"space {name!r}: ops must be distinct DARTS ops; got unknown {unknown} in {list(ops)}; expected a subset of {list(OPS)}"
            )
        values = {"channels": channels, "layers": layers, "stem_multiplier": stem_multiplier}
        if any(not isinstance(v, int) or isinstance(v, bool) for v in values.values()) or channels < 2 or layers < 1 or stem_multiplier < 1:
            raise ValueError(f"space {name!r}: need integer channels >= 2, layers >= 1, stem_multiplier >= 1; got {values}")
        self.name = name
        self.ops = tuple(op for op in OPS if op in ops)  # PRIMITIVES order whatever the YAML's
        self.channels = channels
        self.n_layers = layers
        self.stem_multiplier = stem_multiplier
        self.datasets = {k: dict(v) for k, v in (datasets or {"cifar10": {"num_classes": 10, "input_size": 32}}).items()}
        self.description = description
        #: The edge slots `(cell, node, slot)`: slot 0 reads the node's lower input. One node per slot in
        #: the `adjacency` encoding (between an input and an output node), as graph predictors expect.
        self.edges: tuple[tuple[str, int, int], ...] = tuple((cell, n, s) for cell in CELLS for n in NODES for s in (0, 1))
        decisions = []
        for cell in CELLS:
            for n in NODES:
                pairs = tuple(_pair(i, j) for i in range(n) for j in range(i + 1, n))
                decisions += [
                    Decision(f"{cell}_{n}_inputs", pairs),
                    Decision(f"{cell}_{n}_op0", self.ops),
                    Decision(f"{cell}_{n}_op1", self.ops),
                ]
        self._decisions = tuple(decisions)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> DartsSpace:
        """A space from a YAML definition (see `search_spaces/darts.yaml` for the keys)."""
        keys = {"name", "family", "description", "ops", "channels", "layers", "stem_multiplier", "datasets"}
        unknown = set(config) - keys
        if unknown:
            raise ValueError(f"DARTS space {config.get('name')!r}: unknown keys {sorted(unknown)}; expected some of {sorted(keys)}")
        kwargs = {k: config[k] for k in ("ops", "channels", "layers", "stem_multiplier", "datasets") if k in config}
        return cls(str(config["name"]), description=str(config.get("description", "")), **kwargs)

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # --- the cells -------------------------------------------------------------------------------
    def cell_edges(self, arch: Mapping[str, Choice], cell: str) -> list[NodeEdges]:
        """Per intermediate node of `cell`, its two edges `(input, op)`, the lower input first."""
        out = []
        for n in NODES:
            i, j = _unpair(arch[f"{cell}_{n}_inputs"])
            out.append(((i, str(arch[f"{cell}_{n}_op0"])), (j, str(arch[f"{cell}_{n}_op1"]))))
        return out

    def genotype(self, arch: Arch) -> dict[str, list[tuple[str, int]]]:
        """DARTS's genotype lists: `{"normal": [(op, input), ...8], "reduce": [...]}`."""
        arch = self.validate(arch)
        return {cell: [(op, i) for edges in self.cell_edges(arch, cell) for i, op in edges] for cell in CELLS}

    def _node_choices(self, cell: str, n: int, edges: Sequence[tuple[int, str]], *, free_none: bool = True) -> dict[str, Choice]:
        """The decisions of node `n` for its two edges `(input, op)` in any order; with `free_none` a
        `none` edge's input is set as `canonical` sets it, else kept (as a genotype string gives it)."""
        (i, a), (j, b) = sorted(self._canonical_edges(edges) if free_none else edges)
        return {f"{cell}_{n}_inputs": _pair(i, j), f"{cell}_{n}_op0": a, f"{cell}_{n}_op1": b}

    def _canonical_edges(self, edges: Sequence[tuple[int, str]]) -> list[tuple[int, str]]:
        if "none" not in self.ops:
            return list(edges)
        live = [e for e in edges if e[1] != "none"]
        if len(live) == 2:
            return live
        if not live:
            return [(0, "none"), (1, "none")]
        k, op = live[0]
        return [(k, op), (1 if k == 0 else 0, "none")]

    # --- strings ---------------------------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        """DARTS's `Genotype(...)` repr with each node's edges by input index."""
        lists = {cell: "[" + ", ".join(f"({op!r}, {i})" for op, i in edges) + "]" for cell, edges in self.genotype(arch).items()}
        concat = "[" + ", ".join(str(n) for n in CONCAT) + "]"
        return f"Genotype(normal={lists['normal']}, normal_concat={concat}, reduce={lists['reduce']}, reduce_concat={concat})"

    def from_string(self, text: str) -> Arch:
        """Parse a DARTS genotype (as `to_string` writes it, or DARTS's `genotypes.py` does: the edges of
        a node in either order, `range(2, 6)` for the concatenation), without evaluating it as code."""
        fields = self._genotype_fields(text)
        choices: dict[str, Choice] = {}
        for cell in CELLS:
            edges = self._cell_list(fields[cell], cell)
            for k, n in enumerate(NODES):
                pair = edges[2 * k : 2 * k + 2]
                for op, i in pair:
                    if op not in self.ops:
                        raise InvalidArchError(
                            f"unknown op {op!r} in the {cell} cell of the DARTS genotype; expected one of {list(self.ops)}"
                        )
                    if not 0 <= i < n:
                        raise InvalidArchError(
                            f"node {n} of the {cell} cell reads input {i}; node {n} may read 0..{n - 1} (0, 1: the two cell inputs, 2..: earlier nodes)"
                        )
                (a, i), (b, j) = pair
                if i == j:
                    raise InvalidArchError(
                        f"node {n} of the {cell} cell has two equal inputs ({i}, {j}); a DARTS node sums two distinct inputs"
                    )
                choices.update(self._node_choices(cell, n, [(i, a), (j, b)], free_none=False))
            concat = self._concat(fields[f"{cell}_concat"], cell)
            if concat != list(CONCAT):
                raise InvalidArchError(f"{cell}_concat={concat}: this space concatenates every intermediate node, {list(CONCAT)}")
        return self.validate(choices)

    def _genotype_fields(self, text: str) -> dict[str, str]:
        if not isinstance(text, str):
            raise InvalidArchError(f"a DARTS genotype is a string like {_EXAMPLE}; got {type(text).__name__}")
        shown = text if len(text) <= 80 else text[:77] + "..."
        match = _GENOTYPE_RE.match(text)
        if not match:
            raise InvalidArchError(f"malformed DARTS genotype {shown!r}: expected {_EXAMPLE}")
        parts, depth, start, body = [], 0, 0, match.group("body")
        for pos, char in enumerate(body):
            depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
            if depth < 0:
                break
            if char == "," and depth == 0:
                parts.append(body[start:pos])
                start = pos + 1
        parts.append(body[start:])
        fields: dict[str, str] = {}
        for part in parts:
            key, eq, value = part.partition("=")
            fields[key.strip()] = value.strip() if eq else ""
        expected = {"normal", "normal_concat", "reduce", "reduce_concat"}
        if depth != 0 or set(fields) != expected or not all(fields.values()):
            raise InvalidArchError(
                f"malformed DARTS genotype {shown!r}: expected the fields normal, normal_concat, reduce, reduce_concat as in {_EXAMPLE}"
            )
        return fields

    @staticmethod
    def _literal(value: str, what: str) -> Any:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise InvalidArchError(f"malformed DARTS genotype: {what} {value[:60]!r} is not a list literal") from None

    def _cell_list(self, value: str, cell: str) -> list[tuple[str, int]]:
        edges = self._literal(value, cell)
        if not isinstance(edges, list | tuple):
            raise InvalidArchError(f"malformed DARTS genotype: {cell}= must be a list of (op, input) pairs, got {value[:60]!r}")
        if len(edges) != 2 * len(NODES):
            raise InvalidArchError(
                f"the {cell} cell lists {len(edges)} (op, input) pairs; a DARTS cell has {2 * len(NODES)}, two for each node {NODES[0]}..{NODES[-1]}"
            )
        out = []
        for edge in edges:
            if not (
                isinstance(edge, list | tuple)
                and len(edge) == 2
                and isinstance(edge[0], str)
                and isinstance(edge[1], int)
                and not isinstance(edge[1], bool)
            ):
                raise InvalidArchError(f"malformed DARTS genotype: {cell} cell entry {edge!r} is not an (op name, input index) pair")
            out.append((edge[0], edge[1]))
        return out

    def _concat(self, value: str, cell: str) -> list[int]:
        ranged = _RANGE_RE.match(value)
        if ranged:
            return list(range(int(ranged.group(1)), int(ranged.group(2))))
        concat = self._literal(value, f"{cell}_concat")
        if not isinstance(concat, list | tuple) or not all(isinstance(n, int) and not isinstance(n, bool) for n in concat):
            raise InvalidArchError(
                f"malformed DARTS genotype: {cell}_concat must be a list of node indices like {list(CONCAT)}, got {value[:60]!r}"
            )
        return list(concat)

    # --- identity and moves ----------------------------------------------------------------------
    def canonical(self, arch: Arch) -> Arch:
        """`arch` with the input of every `none` edge set to the smallest index the node's other edge
        leaves free (0, or 1 when the other edge reads 0; both `none`: 0 and 1).

        Why: a `none` edge contributes nothing whatever it reads, so those archs are one network (same
        function, weights and operators); nothing else in a DARTS cell is inert (every node feeds the
        cell output, and an op that reads an all-zero node still runs).

        Example:
            >>> space = DartsSpace()
            >>> a = space.sample(np.random.default_rng(0)).replace(normal_4_inputs="2,3", normal_4_op0="none", normal_4_op1="sep_conv_3x3")
            >>> b = space.canonical(a)
            >>> b["normal_4_inputs"], b["normal_4_op0"], b["normal_4_op1"]
            ('0,3', 'none', 'sep_conv_3x3')
        """
        arch = self.validate(arch)
        changes: dict[str, Choice] = {}
        for cell in CELLS:
            for n, edges in zip(NODES, self.cell_edges(arch, cell)):
                changes.update(self._node_choices(cell, n, edges))
        return Arch({d.name: changes[d.name] for d in self._decisions})

    @property
    def size(self) -> int:
        """Distinct networks (canonical archs): per node with `m` possible inputs and `o` ops besides
        `none`, `C(m, 2) o^2` cells with two live edges, `m o` with one and 1 with none; cells multiply."""
        live = len(self.ops) - ("none" in self.ops)
        per_cell = 1
        for m in NODES:
            per_cell *= math.comb(m, 2) * live**2 + ((m * live + 1) if "none" in self.ops else 0)
        return per_cell ** len(CELLS)

    def sample(self, rng: np.random.Generator) -> Arch:
        """A random canonical arch (each decision uniform, then `canonical`)."""
        return self.canonical(super().sample(rng))

    def _moves(self, arch: Arch) -> list[tuple[str, int, int, str, Choice]]:
        """Every single change that gives another network: `(cell, node, slot, "op"|"input", value)`:
        any edge's op, or a live edge's input (to one the node's other live edge does not read)."""
        moves: list[tuple[str, int, int, str, Choice]] = []
        for cell in CELLS:
            for n, edges in zip(NODES, self.cell_edges(arch, cell)):
                for slot, (src, op) in enumerate(edges):
                    other_src, other_op = edges[1 - slot]
                    moves += [(cell, n, slot, "op", o) for o in self.ops if o != op]
                    if op != "none":
                        taken = other_src if other_op != "none" else -1
                        moves += [(cell, n, slot, "input", i) for i in range(n) if i not in (src, taken)]
        return moves

    def _apply(self, arch: Arch, move: tuple[str, int, int, str, Choice]) -> Arch:
        cell, n, slot, kind, value = move
        edges = [list(e) for e in self.cell_edges(arch, cell)[NODES.index(n)]]
        edges[slot][0 if kind == "input" else 1] = value  # an input a `none` edge read is freed below
        return arch.replace(**self._node_choices(cell, n, [(int(i), str(op)) for i, op in edges]))

    def mutate(self, arch: Arch, rng: np.random.Generator, n_changes: int = 1) -> Arch:
        """`n_changes` successive single changes (an edge's op or a live edge's input), each to a network
        not seen on the way, so the child is a canonical arch other than `arch`."""
        current = self.canonical(arch)
        seen = {current}
        for _ in range(max(1, n_changes)):
            moves = self._moves(current)
            for k in rng.permutation(len(moves)):
                child = self._apply(current, moves[int(k)])
                if child not in seen:
                    seen.add(child)
                    current = child
                    break
        return current

    def neighbours(self, arch: Arch) -> list[Arch]:
        """Every distinct canonical arch one change (an edge's op, or a live edge's input) away."""
        arch = self.canonical(arch)
        out = dict.fromkeys(self._apply(arch, m) for m in self._moves(arch))
        out.pop(arch, None)
        return list(out)

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Each node (its inputs and both ops) taken whole from `a` or `b`, so edges keep their inputs."""
        take_a = rng.random(len(CELLS) * len(NODES)) < 0.5
        choices: dict[str, Choice] = {}
        for k, (cell, n) in enumerate((cell, n) for cell in CELLS for n in NODES):
            parent = a if take_a[k] else b
            for suffix in ("inputs", "op0", "op1"):
                choices[f"{cell}_{n}_{suffix}"] = parent[f"{cell}_{n}_{suffix}"]
        return self.canonical(Arch(choices))

    # --- encodings -------------------------------------------------------------------------------
    def encoding_kinds(self) -> list[str]:
        return ["integer", "onehot", "adjacency"]

    def _encode_batch(self, archs: Sequence[Arch], kind: str) -> np.ndarray:
        if kind == "adjacency":
            return self.adjacency_encoding(archs)
        return super()._encode_batch(archs, kind)

    def _slot_arrays(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """`src` and `op` index (`n_archs x len(self.edges)`) of every edge slot."""
        idx = self.index_matrix(archs)
        names = [d.name for d in self._decisions]
        src = np.zeros((len(archs), len(self.edges)), dtype=np.int64)
        ops = np.zeros_like(src)
        for e, (cell, n, slot) in enumerate(self.edges):
            pairs = np.array([_unpair(p)[slot] for p in self._decisions[names.index(f"{cell}_{n}_inputs")].choices])
            src[:, e] = pairs[idx[:, names.index(f"{cell}_{n}_inputs")]]
            ops[:, e] = idx[:, names.index(f"{cell}_{n}_op{slot}")]
        return src, ops

    def adjacency(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Ops-on-nodes graph of the two cells, as `NB201Space.adjacency` for one cell.

        Nodes: the input, one node per edge slot (`self.edges`: normal cell, then reduction cell), the
        output. A normal-cell edge reading a cell input is fed by the input node; one reading node N by
        the edges into N; a reduction-cell edge reading a cell input by every normal-cell edge (the
        normal cell's output concatenates its nodes); reduction-cell edges feed the output. `none`
        edges stay as nodes, disconnected. Returns `adj` (`n_archs x n_nodes x n_nodes`, 0/1, upper
        triangular) and `labels` (`n_archs x n_nodes x (n_ops + 5)`: one-hot op, input and output
        flags, and for live edges whether they read c_{k-2} or c_{k-1} and lie in the reduction cell).
        """
        n = len(archs)
        src, ops = self._slot_arrays(archs)
        none = self.ops.index("none") if "none" in self.ops else -1
        live = ops != none
        n_slots = len(self.edges)
        n_nodes = n_slots + 2
        adj = np.zeros((n, n_nodes, n_nodes), dtype=np.float32)
        for t, (cell_t, _, _) in enumerate(self.edges):
            reads_input = src[:, t] < 2
            if cell_t == "normal":
                adj[:, 0, t + 1] = live[:, t] & reads_input
            else:
                adj[:, t + 1, n_nodes - 1] = live[:, t]
            for s, (cell_s, node_s, _) in enumerate(self.edges):
                if cell_s == cell_t:
                    feeds = src[:, t] == node_s
                elif cell_s == "normal":
                    feeds = reads_input
                else:
                    continue
                adj[:, s + 1, t + 1] = live[:, s] & live[:, t] & feeds
        n_ops = len(self.ops)
        labels = np.zeros((n, n_nodes, n_ops + 5), dtype=np.float32)
        labels[:, 0, n_ops] = 1
        labels[:, -1, n_ops + 1] = 1
        rows = np.repeat(np.arange(n), n_slots)
        cols = np.tile(np.arange(1, n_slots + 1), n)
        labels[rows, cols, ops.ravel()] = 1
        labels[:, 1:-1, n_ops + 2] = live & (src == 0)
        labels[:, 1:-1, n_ops + 3] = live & (src == 1)
        labels[:, 1:-1, n_ops + 4] = live & np.array([cell == "reduce" for cell, _, _ in self.edges])
        return adj, labels

    def adjacency_encoding(self, archs: Sequence[Arch]) -> np.ndarray:
        """Flattened upper triangle of the adjacency matrix followed by the flattened node labels
        (`n_archs x (n_nodes (n_nodes - 1) / 2 + n_nodes (n_ops + 5))`, n_nodes = 18)."""
        adj, labels = self.adjacency(archs)
        iu = np.triu_indices(adj.shape[1], k=1)
        return np.concatenate([adj[:, iu[0], iu[1]], labels.reshape(len(archs), -1)], axis=1)

    def graph(self, arch: Arch) -> Any:
        """The two cells as one DAG, with the wiring of `adjacency`: one node per live edge (`op`, `cell`,
        `edge` = (input, node)) between an `input` node (the stem) and an `output` node; node sums and
        concatenations are implicit, and the normal cell's output feeds the reduction cell's inputs."""
        import networkx as nx

        arch = self.validate(arch)
        g = nx.DiGraph()
        g.add_node("input", op="input")
        g.add_node("output", op="output")
        nodes: dict[str, list[tuple[str, int, int]]] = {}
        for cell in CELLS:
            nodes[cell] = []
            for n, edges in zip(NODES, self.cell_edges(arch, cell)):
                for src, op in edges:
                    if op != "none":
                        name = f"{cell}_{src}_{n}"
                        g.add_node(name, op=op, cell=cell, edge=(src, n))
                        nodes[cell].append((name, src, n))
        for cell in CELLS:
            for name, src, _ in nodes[cell]:
                if src >= 2:
                    feeders = [m for m, _, dst in nodes[cell] if dst == src]
                else:
                    feeders = ["input"] if cell == "normal" else [m for m, _, _ in nodes["normal"]]
                g.add_edges_from((f, name) for f in feeders)
                if cell == "reduce":
                    g.add_edge(name, "output")
        return g

    # --- realisation -----------------------------------------------------------------------------
    def build(self, arch: Arch, input_spec: InputSpec | None = None, *, dataset: str | None = None, num_classes: int | None = None) -> Any:
        """DARTS's evaluation network (`torch.nn.Module`, NCHW images -> logits) for `arch` and
        `input_spec` (default: the `dataset` setting, else the first); no drop path, no auxiliary head."""
        from nas.spaces.darts_network import DartsNetwork

        arch = self.validate(arch)
        spec = self._resolve_input(input_spec, dataset, num_classes)
        return DartsNetwork(
            {cell: self.cell_edges(arch, cell) for cell in CELLS},
            channels=self.channels,
            layers=self.n_layers,
            stem_multiplier=self.stem_multiplier,
            num_classes=spec.classes,
            in_channels=spec.channels,
        )

    def layers(
        self,
        arch: Arch,
        *,
        input_spec: InputSpec | None = None,
        dataset: str | None = None,
        num_classes: int | None = None,
        input_size: int | None = None,
        live_only: bool = False,
        fold_constants: bool = False,
        merge_identical: bool = False,
    ) -> list[LayerSignature]:
        """The operators `build(arch)` runs on one image, in the order its `forward` runs them.

        `none` edges run nothing (a node fed only by them is zeros); a node with two live edges adds
        them. By default every operator PyTorch runs is listed, so summing `layer_params` gives the
        module's parameter count. The options list what a graph optimiser leaves, as for NB201:

        - `live_only`: drops what never reaches the logits: a cell's preprocessing of an input state
          none of its live edges reads (and, transitively, cells whose output nothing live reads);
        - `fold_constants`: drops operators computed from all-zero nodes only, keeping the add of their
          constant result (`add` with `bias=True`);
        - `merge_identical`: lists once a ReLU, pool or sum that several consumers compute from one
          tensor (a cell output's ReLU in the next two cells' preprocessing, an input's ReLU or pool in
          several edges).

        `input_spec` (the data's) or the `dataset` setting gives channels, size and classes;
        `input_size` (square) and `num_classes` override them.
        """
        arch = self.validate(arch)
        spec = self._resolve_input(input_spec, dataset, num_classes)
        height, width = (int(input_size), int(input_size)) if input_size is not None else (spec.height, spec.width)
        if height < 1 or width < 1:
            raise ValueError(f"need input_size >= 1; got {height} x {width}")
        program, output = _network_program(
            {cell: self.cell_edges(arch, cell) for cell in CELLS},
            channels=self.channels,
            layers=self.n_layers,
            stem_multiplier=self.stem_multiplier,
            in_channels=spec.channels,
            height=height,
            width=width,
            num_classes=spec.classes,
            merge=merge_identical,
        )
        return _select(program, output, live_only=live_only, fold_constants=fold_constants)

    def layer_parts(
        self,
        *,
        input_spec: InputSpec | None = None,
        dataset: str | None = None,
        num_classes: int | None = None,
        input_size: int | None = None,
        live_only: bool = False,
        fold_constants: bool = False,
        merge_identical: bool = False,
    ) -> tuple[LayerPart, ...] | None:
        """`layers(arch, ...)` as parts: what every network runs (stem, each cell's preprocessing, head),
        and per node of each cell kind, its two edges and their sum in every cell of that kind.

        Why only without graph-optimiser options: what is live, constant or shared then depends on
        several nodes and cells at once, so those are counted arch by arch (None).
        """
        if live_only or fold_constants or merge_identical:
            return None
        spec = self._resolve_input(input_spec, dataset, num_classes)
        height, width = (int(input_size), int(input_size)) if input_size is not None else (spec.height, spec.width)
        if height < 1 or width < 1:
            raise ValueError(f"need input_size >= 1; got {height} x {width}")
        shape = {"channels": self.channels, "layers": self.n_layers, "stem_multiplier": self.stem_multiplier, "height": height, "width": width}
        nothing = ((0, "none"), (1, "none"))
        program, output = _network_program(
            {cell: [nothing] * len(NODES) for cell in CELLS}, in_channels=spec.channels, num_classes=spec.classes, merge=False, **shape
        )
        fixed = Counter(_select(program, output, live_only=False, fold_constants=False))
        geometries = _cell_geometries(**shape)

        def node_part(cell: str, n: int) -> LayerPart:
            where = [g for g in geometries if g.reduction == (cell == "reduce")]

            def counts(choices: tuple[Choice, ...]) -> Counter[LayerSignature]:
                pair, op0, op1 = choices
                p = _Program(merge=False)
                for g in where:
                    live = [_node_edge(p, g, str(op), _INPUT, src) for src, op in zip(_unpair(pair), (op0, op1)) if op != "none"]
                    if len(live) == 2:
                        p.make("add", LayerSignature("add", (1, g.c, *g.size_out), out_channels=g.c), tuple(live))
                return Counter(_select(p, _INPUT, live_only=False, fold_constants=False))

            return LayerPart((f"{cell}_{n}_inputs", f"{cell}_{n}_op0", f"{cell}_{n}_op1"), counts)

        return (LayerPart((), lambda choices: fixed), *(node_part(cell, n) for cell in CELLS for n in NODES))
