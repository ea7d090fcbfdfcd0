"""The real NAS-Bench-201 network, and its operator signatures for cost models.

Why: NB201's table gives accuracy, but hardware-aware search also needs the network itself (to measure
latency, to train on a new task) and the exact operators it executes (to price it from a lookup table).
Both must describe the same network the benchmark trained, so the module re-implements NB201's evaluation
network (`TinyNetwork` of cells `InferCell`, separated by the residual block `ResNetBasicblock`, as in
D-X-Y/AutoDL-Projects) and its parameter count equals the table's `params_M` for every architecture.

Architecture encoding: six edge operations in the official string's order,
(1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2), each one of `OPS`.

`LayerSignature.op` naming convention used by `nb201_layers`:

- "conv": `nn.Conv2d`, padding `kernel // 2` ("same" padding, as every NB201 conv), never biased.
- "bn": `BatchNorm2d` over `in_shape[1]` channels (affine: 2 parameters per channel).
- "relu", "add" (one binary sum; `in_shape` is one operand's; `bias=True`: a constant added to one
  tensor, which a graph optimiser leaves where a folded edge meets a live one), "avgpool" (`kernel`, `stride`; padding
  `kernel // 2` for the cell's 3x3 pool, none for the 2x2 reduction shortcut), "global_avgpool".
- "linear": `in_shape` is `(1, in_features)`, `out_channels` the number of classes, biased.

For every op but "conv" and "linear" the output has the input's channels, and `out_channels` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

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


# --- the network -----------------------------------------------------------------------------------


class ReLUConvBN(nn.Sequential):
    """NB201's `nor_conv_kxk`: pre-activation conv, so a cell's node sums are of BN outputs."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),  # node tensors feed several edges; in-place would corrupt them
            nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, affine=True, track_running_stats=True),
        )


class Zero(nn.Module):
    """NB201's `none`: the edge is absent. Kept as a module so the cell mirrors the arch string."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)


def _edge_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        # count_include_pad=False as NB201: border outputs average only real pixels.
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return ReLUConvBN(channels, channels, _CONV_KERNELS[name], 1)


class InferCell(nn.Module):
    """One NB201 cell: a 4-node DAG whose node i is the sum of its incoming edges; node 3 is the output.

    `none` edges are skipped rather than added as zeros; a node with only `none` inputs is zeros.
    """

    def __init__(self, edge_ops: Sequence[str], channels: int) -> None:
        super().__init__()
        self.edge_ops = _check_edge_ops(edge_ops)
        self.edges = nn.ModuleList(_edge_op(op, channels) for op in self.edge_ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in (1, 2, 3):
            total: torch.Tensor | None = None
            for (node, source), name, op in zip(EDGES, self.edge_ops, self.edges):
                if node != target or name == "none":
                    continue
                out = op(nodes[source])
                total = out if total is None else total + out
            nodes.append(torch.zeros_like(x) if total is None else total)
        return nodes[3]


class ResNetBasicblock(nn.Module):
    """NB201's reduction between stages: halves resolution, changes width, keeps a residual path.

    The shortcut's 2x2 average pool uses `ceil_mode=True`: identical to NB201's for even sizes, and it
    keeps the shortcut's size equal to the stride-2 conv's when a stage sees an odd size.
    """

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2, padding=0, ceil_mode=True),
            nn.Conv2d(c_in, c_out, 1, stride=1, padding=0, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv_b(self.conv_a(x))
        return self.downsample(x) + out


def stage_blocks(channels: int, cells_per_stage: int, make_cell: Callable[[int], nn.Module]) -> tuple[list[nn.Module], int]:
    """NB201's body: 3 stages of `make_cell(width)` cells, joined by residual reductions that double the
    width; returns the blocks and the final width (shared with the relaxed search network)."""
    blocks: list[nn.Module] = []
    width = channels
    for stage in range(3):
        if stage > 0:
            blocks.append(ResNetBasicblock(width, 2 * width))
            width *= 2
        blocks.extend(make_cell(width) for _ in range(cells_per_stage))
    return blocks, width


class NB201Network(nn.Module):
    """NB201's evaluation network (`TinyNetwork`): stem, 3 stages of cells with 2 reductions, classifier."""

    def __init__(
        self, edge_ops: Sequence[str], *, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3
    ) -> None:
        super().__init__()
        _check_sizes(channels, cells_per_stage, num_classes, in_channels)
        self.edge_ops = _check_edge_ops(edge_ops)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels, affine=True, track_running_stats=True),
        )
        blocks, width = stage_blocks(channels, cells_per_stage, lambda c: InferCell(self.edge_ops, c))
        self.cells = nn.Sequential(*blocks)
        self.lastact = nn.Sequential(
            nn.BatchNorm2d(width, affine=True, track_running_stats=True), nn.ReLU(inplace=False)
        )
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.lastact(self.cells(self.stem(x)))
        return self.classifier(self.global_pooling(features).flatten(1))


def build_nb201_network(
    edge_ops: Sequence[str], *, channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10, in_channels: int = 3
) -> nn.Module:
    """The NB201 evaluation network for one architecture; forward maps NCHW images to logits.

    Defaults are NB201's CIFAR-10 setting; NB201 used `num_classes` 100 for CIFAR-100 and 120 for
    ImageNet16-120 (16x16 inputs). With 3 input channels the parameter count equals the benchmark's
    `params_M * 1e6`.
    """
    return NB201Network(edge_ops, channels=channels, cells_per_stage=cells_per_stage, num_classes=num_classes, in_channels=in_channels)


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


def live_edges(edge_ops: Sequence[str]) -> list[bool]:
    """Which edges a graph optimiser keeps: not `none`, fed by the cell input, and reaching the output.

    An edge whose source node is fed by `none` edges only computes on constant zeros (ONNX Runtime folds
    it, TVM computes it); one whose target node never reaches node 3 is dead code (both remove it).
    """
    ops = _check_edge_ops(edge_ops)
    variable, reaches = _node_status(ops)
    return [name != "none" and variable[source] and reaches[target] for (target, source), name in zip(EDGES, ops)]


def _cell_program(
    ops: tuple[str, ...], *, live_only: bool = False, fold_constants: bool = False, merge_identical: bool = False
) -> list[tuple[str, bool]]:
    """The cell's operators in forward order, as `(op, adds_a_constant)`, built as an expression graph.

    Each ReLU, conv (with its BN), pool and add is one expression over its operands' expressions, created
    in the order `InferCell.forward` runs them. `merge_identical` keys expressions by what they compute,
    so a ReLU, pool or partial sum of one tensor exists once (common-subexpression elimination; a conv
    never merges, each edge has its own weights). `live_only` keeps only expressions the cell output
    needs. `fold_constants` drops those that do not depend on the input, yet `x + c` still costs its
    add, flagged as adding a constant: runtimes run it differently from a sum of two tensors.
    The program depends on the edge ops only, so a network computes it once for all its cells.
    """
    # expression key -> (op, depends on the input, every operand does), in creation order
    created: dict[tuple, tuple[str, bool, bool]] = {}

    def make(op: str, operands: list[tuple], unique: int | None = None) -> tuple:
        key = (op, *operands, unique if unique is not None else (None if merge_identical else len(created)))
        variable = [created[o][1] if o in created else o == _INPUT for o in operands]
        created.setdefault(key, (op, any(variable), all(variable)))
        return key

    nodes: list[tuple] = [_INPUT]
    for target in (1, 2, 3):
        total: tuple | None = None
        for edge, ((node, source), name) in enumerate(zip(EDGES, ops)):
            if node != target or name == "none":
                continue
            tensor = nodes[source]
            if name == "skip_connect":
                out = tensor
            elif name == "avg_pool_3x3":
                out = make("avgpool", [tensor])
            else:
                out = make(name, [make("relu", [tensor])], unique=edge)
            total = out if total is None else make("add", [total, out])
        nodes.append(_ZEROS if total is None else total)
    needed = set(created) if not live_only else _operands_closure(nodes[3])
    program: list[tuple[str, bool]] = []
    for key, (op, variable, only_variables) in created.items():
        if key not in needed or (fold_constants and not variable):
            continue
        constant = op == "add" and fold_constants and not only_variables
        # x + c1 + c2: the tensor leaves the optimised layout once, for the first constant
        chained = constant and any(created.get(o, ("",))[0] == "add" and not created[o][2] for o in key[1:3])
        program.append((op, constant and not chained))
    return program


def _cell_layers(program: Sequence[tuple[str, bool]], channels: int, size: int) -> list[LayerSignature]:
    """The signatures of one cell running `program` (see `_cell_program`) on `channels` x `size` x `size`."""
    layers: list[LayerSignature] = []
    for op, adds_constant in program:
        if op in _CONV_KERNELS:
            layers.extend(_relu_conv_bn(channels, channels, size, _CONV_KERNELS[op], 1)[1:])
        elif op == "avgpool":
            layers.append(_same("avgpool", channels, size, kernel=3, stride=1))
        elif adds_constant:
            layers.append(LayerSignature("add", (1, channels, size, size), out_channels=channels, bias=True))
        else:
            layers.append(_same(op, channels, size))
    return layers


_INPUT: tuple = ("input",)
_ZEROS: tuple = ("zeros",)


def _operands_closure(root: tuple) -> set[tuple]:
    """Every expression `root` is computed from, itself included (keys hold their operands' keys)."""
    found, stack = set(), [root]
    while stack:
        key = stack.pop()
        if key in found or key in (_INPUT, _ZEROS):
            continue
        found.add(key)
        stack.extend(o for o in key[1:] if isinstance(o, tuple))
    return found


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
    if live_only and fold_constants and cells_per_stage > 0 and not any(live_edges(ops)):
        return []
    program = _cell_program(ops, live_only=live_only, fold_constants=fold_constants, merge_identical=merge_identical)
    size, width = input_size, channels
    layers = [_conv(in_channels, width, size, 3, 1), _same("bn", width, size)]
    for stage in range(3):
        if stage > 0:
            layers.extend(_reduction_layers(width, 2 * width, size))
            size, width = _conv_out(size, 3, 2), 2 * width
        for _ in range(cells_per_stage):
            layers.extend(_cell_layers(program, width, size))
    layers += [
        _same("bn", width, size),
        _same("relu", width, size),
        _same("global_avgpool", width, size),
        LayerSignature("linear", (1, width), out_channels=num_classes, bias=True),
    ]
    return layers
