"""The real NAS-Bench-201 network (torch modules); its operator signatures live in `nb201_ops`.

Why: NB201's table gives accuracy, but hardware-aware search also needs the network itself (to measure
latency, to train on a new task). It must be the network the benchmark trained, so the module
re-implements NB201's evaluation network (`TinyNetwork` of cells `InferCell`, separated by the residual
block `ResNetBasicblock`, as in D-X-Y/AutoDL-Projects) and its parameter count equals the table's
`params_M` for every architecture. `nb201_ops.nb201_layers` lists the operators it executes (tests check
them with forward hooks); its names are re-exported here.

Architecture encoding: six edge operations in the official string's order,
(1<-0), (2<-0), (2<-1), (3<-0), (3<-1), (3<-2), each one of `OPS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from nas.spaces.nb201_ops import _CONV_KERNELS, EDGES, OPS, _check_edge_ops, _check_sizes, live_edges, nb201_layers, reaches_output

__all__ = [
    "EDGES",
    "OPS",
    "InferCell",
    "NB201Network",
    "ReLUConvBN",
    "ResNetBasicblock",
    "Zero",
    "build_nb201_network",
    "live_edges",
    "nb201_layers",
    "reaches_output",
    "stage_blocks",
]


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
