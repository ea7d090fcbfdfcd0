"""The NAS-Bench-201 cell's operators without torch: op names, the cell's program, operator signatures.

Why apart from `nb201_network`: pricing and counting an architecture (`NB201Space.layers`, LUTs, params,
FLOPs) and reading its strings must not import torch (seconds at start-up); only building the module does.
`nb201_network` re-exports these names.

`LayerSignature.op` naming convention used by `nb201_layers`:

- "conv": `nn.Conv2d`, padding `kernel // 2` ("same" padding, as every NB201 conv), never biased.
- "bn": `BatchNorm2d` over `in_shape[1]` channels (affine: 2 parameters per channel).
- "relu", "add" (one binary sum; `in_shape` is one operand's; `bias=True`: a sum that first reorders a
  conv's or pool's output out of the runtime's blocked layout, because its other operand is a constant,
  which a graph optimiser leaves where a folded edge meets a live one, or a plain tensor; measured as a
  constant added to one tensor, see `_cell_program_and_layout`), "avgpool" (`kernel`, `stride`; padding
  `kernel // 2` for the cell's 3x3 pool, none for the 2x2 reduction shortcut), "global_avgpool".
- "linear": `in_shape` is `(1, in_features)`, `out_channels` the number of classes, biased.

For every op but "conv" and "linear" the output has the input's channels, and `out_channels` says so.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from nas.spaces.base import InvalidArchError, LayerSignature

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

# (target node, source node) of each edge, in the official arch string's order.
EDGES: tuple[tuple[int, int], ...] = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))

_CONV_KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}


def _check_edge_ops(edge_ops: Sequence[str]) -> tuple[str, ...]:
    ops = tuple(edge_ops)
    if len(ops) != len(EDGES):
        raise InvalidArchError(f"NAS-Bench-201 cell needs {len(EDGES)} edge ops, got {len(ops)}: {list(ops)}")
    for op in ops:
        if op not in OPS:
            raise InvalidArchError(f"unknown NAS-Bench-201 op {op!r}; expected one of {list(OPS)}")
    return ops


def _check_sizes(channels: int, cells_per_stage: int, num_classes: int, in_channels: int = 3) -> None:
    if channels < 1 or cells_per_stage < 0 or num_classes < 1 or in_channels < 1:
        raise ValueError(
            f"need channels >= 1, cells_per_stage >= 0, num_classes >= 1, in_channels >= 1; "
            f"got {channels}, {cells_per_stage}, {num_classes}, {in_channels}"
        )




# --- operator signatures ---------------------------------------------------------------------------


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def _conv(c_in: int, c_out: int, size: int, kernel: int, stride: int) -> LayerSignature:
    return LayerSignature("conv", (1, c_in, size, size), out_channels=c_out, kernel=kernel, stride=stride)


def _same(op: str, channels: int, size: int, kernel: int = 1, stride: int = 1) -> LayerSignature:
    return LayerSignature(op, (1, channels, size, size), out_channels=channels, kernel=kernel, stride=stride)


def _relu_conv_bn(c_in: int, c_out: int, size: int, kernel: int, stride: int) -> list[LayerSignature]:
    out = _conv_out(size, kernel, stride)
    return [_same("relu", c_in, size), _conv(c_in, c_out, size, kernel, stride), _same("bn", c_out, out)]


def _node_status(ops: tuple[str, ...]) -> tuple[list[bool], list[bool]]:
    """Per node: does it depend on the cell input (else it is constant), and does it reach node 3."""
    variable = [True, False, False, False]
    for (target, source), name in zip(EDGES, ops):
        variable[target] |= name != "none" and variable[source]
    reaches = [False, False, False, True]
    for (target, source), name in reversed(list(zip(EDGES, ops))):
        reaches[source] |= name != "none" and reaches[target]
    return variable, reaches


def reaches_output(edge_ops: Sequence[str]) -> list[bool]:
    """Per node 0..3 of the cell: whether its value reaches the cell output (node 3) through live edges."""
    return _node_status(_check_edge_ops(edge_ops))[1]


def _output_is_constant(ops: tuple[str, ...]) -> bool:
    """No edge is live (see `live_edges`): no path of non-`none` edges leads from the input to node 3, which
    is the same thing, since every edge on such a path is live and a live edge lies on one."""
    return not _node_status(ops)[0][3]


def live_edges(edge_ops: Sequence[str]) -> list[bool]:
    """Which edges a graph optimiser keeps: not `none`, fed by the cell input, and reaching the output.

    An edge whose source node is fed by `none` edges only computes on constant zeros (ONNX Runtime folds
    it, TVM computes it); one whose target node never reaches node 3 is dead code (both remove it).
    """
    ops = _check_edge_ops(edge_ops)
    variable, reaches = _node_status(ops)
    return [name != "none" and variable[source] and reaches[target] for (target, source), name in zip(EDGES, ops)]


def _cell_program(
    ops: tuple[str, ...], *, live_only: bool = False, fold_constants: bool = False, merge_identical: bool = False, plain_input: bool = False
) -> list[tuple[str, bool]]:
    """`_cell_program_and_layout` without the output's layout."""
    return _cell_program_and_layout(ops, live_only=live_only, fold_constants=fold_constants, merge_identical=merge_identical, plain_input=plain_input)[0]


def _cell_program_and_layout(
    ops: tuple[str, ...], *, live_only: bool = False, fold_constants: bool = False, merge_identical: bool = False, plain_input: bool = False
) -> tuple[list[tuple[str, bool]], bool]:
    """The cell's operators in forward order, as `(op, reorders)`, built as an expression graph.

    Each ReLU, conv (with its BN), pool and add is one expression over its operands' expressions, created
    in the order `InferCell.forward` runs them. `merge_identical` keys expressions by what they compute,
    so a ReLU, pool or partial sum of one tensor exists once (common-subexpression elimination; a conv
    never merges, each edge has its own weights). `live_only` keeps only expressions the cell output
    needs. `fold_constants` drops those that do not depend on the input, yet `x + c` still costs its
    add. Such an add is flagged where it first takes a tensor out of the runtime's blocked layout:
    ONNX Runtime runs convs and pools in NCHWc and reorders a tensor back to NCHW before adding a
    constant or a plain tensor to it, so `x + c` costs that reorder when `x` comes from a conv or pool,
    and a plain add when `x` is plain already: after an earlier constant (`x + c1 + c2`), or as the cell
    input (`plain_input`) when the cell before ended in one; `conv(x) + (x + c)` reorders the conv's
    output. A ReLU keeps its operand's layout, a sum with a plain operand is plain (ORT's optimised
    graphs, checked in `tests/cost/test_measure.py`).
    The program depends on the edge ops and the input's layout only, so a network computes it at most
    twice for all its cells; the second value returned says whether the cell's output is plain.
    """
    # expressions in creation order, numbered; an operand is an earlier number, _INPUT or _ZEROS
    kinds: list[str] = []
    variable: list[bool] = []  # depends on the input
    only_variables: list[bool] = []  # every operand does
    operands: list[tuple[int, ...]] = []
    plain: list[bool] = []  # in the plain (NCHW) layout, not the blocked one convs and pools leave
    merged: dict[tuple, int] = {}  # (op, operands, unique) -> number, for merge_identical and convs

    def is_plain(a: int) -> bool:
        return plain[a] if a >= 0 else a == _ZEROS or plain_input

    def make(op: str, args: tuple[int, ...], unique: int | None = None) -> int:
        if merge_identical or unique is not None:
            key = (op, args, unique)
            found = merged.get(key)
            if found is not None:
                return found
            merged[key] = len(kinds)
        flags = [variable[a] if a >= 0 else a == _INPUT for a in args]
        kinds.append(op)
        variable.append(any(flags))
        only_variables.append(all(flags))
        operands.append(args)
        if not fold_constants:  # no add is flagged (see below): the layout is never read
            plain.append(False)
        elif op == "relu":
            plain.append(is_plain(args[0]))
        elif op == "add":
            plain.append(not all(flags) or any(is_plain(a) for a in args))
        else:
            plain.append(False)
        return len(kinds) - 1

    def reorders(args: tuple[int, ...]) -> bool:
        """An add that first takes a blocked operand to the plain layout: one of a constant or plain tensor."""
        tensors = [a for a in args if (variable[a] if a >= 0 else a == _INPUT)]
        layouts = [is_plain(a) for a in tensors]
        return (len(tensors) < len(args) or any(layouts)) and not all(layouts)

    nodes: list[int] = [_INPUT]
    for target in (1, 2, 3):
        total: int | None = None
        for edge, ((node, source), name) in enumerate(zip(EDGES, ops)):
            if node != target or name == "none":
                continue
            tensor = nodes[source]
            if name == "skip_connect":
                out = tensor
            elif name == "avg_pool_3x3":
                out = make("avgpool", (tensor,))
            else:
                out = make(name, (make("relu", (tensor,)),), unique=edge)
            total = out if total is None else make("add", (total, out))
        nodes.append(_ZEROS if total is None else total)
    needed = [not live_only] * len(kinds)
    if live_only and nodes[3] >= 0:  # every expression the output is computed from (operands come first)
        needed[nodes[3]] = True
        for i in range(nodes[3], -1, -1):
            if needed[i]:
                for a in operands[i]:
                    if a >= 0:
                        needed[a] = True
    program: list[tuple[str, bool]] = []
    for i, op in enumerate(kinds):
        if not needed[i] or (fold_constants and not variable[i]):
            continue
        program.append((op, fold_constants and op == "add" and reorders(operands[i])))
    return program, fold_constants and is_plain(nodes[3])


def _cell_layers(program: Sequence[tuple[str, bool]], channels: int, size: int) -> list[LayerSignature]:
    """The signatures of one cell running `program` (see `_cell_program`) on `channels` x `size` x `size`."""
    return [sig for step in program for sig in _step_layers(step, channels, size)]


@functools.lru_cache(maxsize=256)
def _step_layers(step: tuple[str, bool], channels: int, size: int) -> tuple[LayerSignature, ...]:
    """The signatures of one program step (kept: whole-space counting lists the same few steps 10^5 times)."""
    op, reorders = step
    if op in _CONV_KERNELS:
        return tuple(_relu_conv_bn(channels, channels, size, _CONV_KERNELS[op], 1)[1:])
    if op == "avgpool":
        return (_same("avgpool", channels, size, kernel=3, stride=1),)
    if reorders:  # priced as the operator measured for it: a constant added to one tensor
        return (LayerSignature("add", (1, channels, size, size), out_channels=channels, bias=True),)
    return (_same(op, channels, size),)


_INPUT, _ZEROS = -1, -2  # the operands of `_cell_program` that are not expressions: the cell input, zeros


def _reduction_layers(c_in: int, c_out: int, size: int) -> list[LayerSignature]:
    half = _conv_out(size, 3, 2)
    return [
        *_relu_conv_bn(c_in, c_out, size, 3, 2),
        *_relu_conv_bn(c_out, c_out, half, 3, 1),
        _same("avgpool", c_in, size, kernel=2, stride=2),
        _conv(c_in, c_out, half, 1, 1),
        _same("add", c_out, half),
    ]


def nb201_layers(
    edge_ops: Sequence[str],
    *,
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    input_size: int = 32,
    in_channels: int = 3,
    live_only: bool = False,
    fold_constants: bool = False,
    merge_identical: bool = False,
) -> list[LayerSignature]:
    """The operators `build_nb201_network(...)` executes on one `input_size`-square image, in order.

    `none` edges execute nothing. By default edges whose result never reaches the cell output are still
    listed, because PyTorch computes every node; summing `layer_params` then gives the module's
    parameter count. The options list what a graph optimiser leaves to run instead:

    - `live_only`: drops edges whose result never reaches the cell output (dead code; ONNX Runtime and
      TVM both remove it);
    - `fold_constants`: drops edges computed from a node fed by `none` edges only (zeros), keeping the
      add of their constant result (ONNX Runtime folds them; TVM computes them: its constant folding
      does not evaluate the zeros tensor). With both, nothing is left when the cell output is constant,
      because then so are the logits;
    - `merge_identical`: lists once the ReLU, pool or partial sum that several edges compute from one
      tensor (ONNX Runtime does, TVM does not).
    """
    ops = _check_edge_ops(edge_ops)
    _check_sizes(channels, cells_per_stage, num_classes, in_channels)
    if input_size < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size}")
    if live_only and fold_constants and cells_per_stage > 0 and _output_is_constant(ops):
        return []
    programs = _stage_programs(ops, live_only=live_only, fold_constants=fold_constants, merge_identical=merge_identical)
    skeleton = _skeleton(channels=channels, num_classes=num_classes, input_size=input_size, in_channels=in_channels)
    return list(_network_layers(skeleton, programs, cells_per_stage))


def _network_layers(
    skeleton: tuple[list[tuple[list[LayerSignature], int, int]], list[LayerSignature]],
    programs: tuple[list[tuple[str, bool]], list[tuple[str, bool]]],
    cells_per_stage: int,
    *,
    with_fixed: bool = True,
) -> Iterator[LayerSignature]:
    """The network's operators in order: per stage its stem or reduction, then its cells running the
    stage's first and later programs (`_stage_programs`); then the head. Without `with_fixed`, the cells only."""
    stages, head = skeleton
    first, later = programs
    for before, width, size in stages:
        if with_fixed:
            yield from before
        for cell in range(cells_per_stage):
            yield from _cell_layers(later if cell else first, width, size)
    if with_fixed:
        yield from head


def _stage_programs(ops: tuple[str, ...], **options: bool) -> tuple[list[tuple[str, bool]], list[tuple[str, bool]]]:
    """The programs (`_cell_program_and_layout`) of a stage's first cell and of each later one.

    The first reads the blocked output of the stem or a reduction (each ends in a conv), each later one
    its predecessor's. A plain input only makes more tensors plain, so a cell whose output is blocked
    from a blocked input gives blocked outputs throughout, and one whose output is plain from a blocked
    input gives plain ones from then on: two programs cover every stage.
    """
    if not options.get("fold_constants"):  # no add is flagged: every cell runs one program
        program = _cell_program(ops, **options)
        return program, program
    first, plain = _cell_program_and_layout(ops, **options)
    return first, (_cell_program(ops, plain_input=True, **options) if plain else first)


def _skeleton(*, channels: int, num_classes: int, input_size: int, in_channels: int) -> tuple[list[tuple[list[LayerSignature], int, int]], list[LayerSignature]]:
    """The network around its cells: per stage, the operators before its cells (stem, reduction) and the
    cells' width and size; then the head."""
    size, width = input_size, channels
    before = [_conv(in_channels, width, size, 3, 1), _same("bn", width, size)]
    stages = []
    for stage in range(3):
        if stage > 0:
            before = _reduction_layers(width, 2 * width, size)
            size, width = _conv_out(size, 3, 2), 2 * width
        stages.append((before, width, size))
    head = [
        _same("bn", width, size),
        _same("relu", width, size),
        _same("global_avgpool", width, size),
        LayerSignature("linear", (1, width), out_channels=num_classes, bias=True),
    ]
    return stages, head


#: One part of `nb201_layer_parts`: the edges (positions in `EDGES`) it depends on, and the counts of
#: the operators it runs for one op on each of them.
EdgePart = tuple[tuple[int, ...], Callable[[tuple[str, ...]], Counter[LayerSignature]]]


def nb201_layer_parts(
    *,
    channels: int = 16,
    cells_per_stage: int = 5,
    num_classes: int = 10,
    input_size: int = 32,
    in_channels: int = 3,
    live_only: bool = False,
    fold_constants: bool = False,
    merge_identical: bool = False,
) -> list[EdgePart]:
    """`nb201_layers` (same settings) as parts: for every cell, the operators it lists, counted, are the
    sum of each part's counts for its edges' ops.

    Why this split: the cell program is one function of the six ops, repeated in every cell, so a part's
    counts come from its program's operator kinds times their signatures in the 3 stages (computed once).
    Without graph-optimiser options each node's operators depend only on its own incoming edges (an edge
    reading a node fed by `none` edges still runs), so there are three small parts (1 + 5 + 25 + 125
    programs); with any option liveness, folding and merging couple the edges, so the cell is one part of
    all six (every program once); with both `live_only` and `fold_constants` a cell with no live edge
    leaves nothing at all to run, so that part holds the whole network.
    """
    _check_sizes(channels, cells_per_stage, num_classes, in_channels)
    if input_size < 1:
        raise ValueError(f"input_size must be >= 1, got {input_size}")
    options = {"live_only": live_only, "fold_constants": fold_constants, "merge_identical": merge_identical}
    skeleton = _skeleton(channels=channels, num_classes=num_classes, input_size=input_size, in_channels=in_channels)
    stages, head = skeleton
    fixed = Counter(sig for before, _, _ in stages for sig in before) + Counter(head)
    # many op combinations run the same steps in another order: count each multiset of steps once, in
    # the listing order of the first (whose signatures a part table meets first, so its columns follow it)
    by_steps: dict[tuple[bool, frozenset[tuple[tuple[str, bool], int]], frozenset[tuple[tuple[str, bool], int]] | None], Counter[LayerSignature]] = {}

    def cell_counts(ops: tuple[str, ...], *, with_fixed: bool = False) -> Counter[LayerSignature]:
        first, later = programs = _stage_programs(ops, **options)
        key = (with_fixed, frozenset(Counter(first).items()), None if later is first else frozenset(Counter(later).items()))
        if key not in by_steps:
            by_steps[key] = Counter(_network_layers(skeleton, programs, cells_per_stage, with_fixed=with_fixed))
        return by_steps[key]

    everything = tuple(range(len(EDGES)))
    if live_only and fold_constants and cells_per_stage > 0:
        return [(everything, lambda ops: Counter() if _output_is_constant(ops) else cell_counts(ops, with_fixed=True))]
    if any(options.values()):
        return [((), lambda ops: fixed), (everything, cell_counts)]

    def node_part(target: int) -> EdgePart:
        edges = tuple(e for e, (node, _) in enumerate(EDGES) if node == target)

        def counts(ops: tuple[str, ...]) -> Counter[LayerSignature]:
            cell = ["none"] * len(EDGES)
            for e, op in zip(edges, ops):
                cell[e] = op
            return cell_counts(tuple(cell))

        return edges, counts

    return [((), lambda ops: fixed), *(node_part(t) for t in (1, 2, 3))]
