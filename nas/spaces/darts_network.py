"""The real DARTS network for one architecture of `DartsSpace`.

Why a separate module: the space describes the network without torch (strings, encodings, operator
signatures stay cheap to import); this module builds DARTS's evaluation network (`NetworkCIFAR` of
Liu et al., re-implemented): a 3x3 conv + BN stem, `layers` cells (reduction cells at 1/3 and 2/3 of the
depth), global average pooling and a linear classifier. Its modules run in the order `DartsSpace.layers()`
lists them, which the tests check with forward hooks.

Left out, because only training uses them: drop path and the auxiliary head. Two choices where DARTS's
code leaves a case open: a node fed only by `none` edges is zeros of the node's shape (DARTS multiplies
its input by 0, which for a stride-2 edge samples every other pixel first), and `FactorizedReduce` shifts
its second path by padding one zero row and column before dropping the first ones, which equals DARTS's
`x[:, :, 1:, 1:]` on even sizes and keeps both paths the same size on odd ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from nas.spaces.darts import CELLS, DILATION, KERNELS, MULTIPLIER, NODES, NodeEdges, reduction_cells


class ReLUConvBN(nn.Sequential):
    """ReLU, 1x1 conv, BN: how a cell brings an input state to its own width."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__(nn.ReLU(inplace=False), nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))


class SepConv(nn.Sequential):
    """`sep_conv_kxk`: twice ReLU, kxk depthwise conv, 1x1 conv, BN (only the first depthwise strides)."""

    def __init__(self, c: int, kernel: int, stride: int) -> None:
        layers: list[nn.Module] = []
        for s in (stride, 1):
            layers += [
                nn.ReLU(inplace=False),  # states feed several edges; in-place would corrupt them
                nn.Conv2d(c, c, kernel, stride=s, padding=kernel // 2, groups=c, bias=False),
                nn.Conv2d(c, c, 1, bias=False),
                nn.BatchNorm2d(c),
            ]
        super().__init__(*layers)


class DilConv(nn.Sequential):
    """`dil_conv_kxk`: ReLU, kxk depthwise conv with dilation 2, 1x1 conv, BN."""

    def __init__(self, c: int, kernel: int, stride: int) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride=stride, padding=DILATION * (kernel // 2), dilation=DILATION, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )


class FactorizedReduce(nn.Module):
    """Halves resolution without losing every other pixel: two stride-2 1x1 convs, the second on the
    input shifted by one pixel, concatenated, then BN. A stride-2 `skip_connect`, and a cell's
    preprocessing of the state from before a reduction."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(shifted)], dim=1))


def edge_module(op: str, c: int, stride: int) -> nn.Module:
    """The module of one live edge (`none` edges are not built) on `c` channels."""
    if op == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(c, c)
    if op == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if op.startswith("sep_conv_"):
        return SepConv(c, KERNELS[op], stride)
    if op.startswith("dil_conv_"):
        return DilConv(c, KERNELS[op], stride)
    raise ValueError(f"unknown DARTS op {op!r}")


class Cell(nn.Module):
    """One DARTS cell: preprocess both input states to `c` channels, then each intermediate node sums
    its live edges (zeros when both are `none`); the output concatenates the 4 nodes (`4 c` channels).
    In a reduction cell the edges that read the cell inputs have stride 2."""

    def __init__(self, nodes: Sequence[NodeEdges], c_pp: int, c_p: int, c: int, *, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        if len(nodes) != len(NODES):
            raise ValueError(f"a DARTS cell has {len(NODES)} intermediate nodes, got {len(nodes)}")
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c)
        self.preprocess1 = ReLUConvBN(c_p, c)
        self.node_inputs: list[list[int]] = []
        edges: list[nn.Module] = []
        for node in nodes:
            live = [(src, op) for src, op in node if op != "none"]
            self.node_inputs.append([src for src, _ in live])
            edges += [edge_module(op, c, 2 if reduction and src < 2 else 1) for src, op in live]
        self.edges = nn.ModuleList(edges)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        k = 0
        for inputs in self.node_inputs:
            total: torch.Tensor | None = None
            for src in inputs:
                out = self.edges[k](states[src])
                k += 1
                total = out if total is None else total + out
            if total is None:
                total = torch.zeros_like(states[1][:, :, ::2, ::2] if self.reduction else states[1])
            states.append(total)
        return torch.cat(states[2:], dim=1)


class DartsNetwork(nn.Module):
    """DARTS's evaluation network: `forward` maps `N x in_channels x H x W` images to `N x num_classes` logits.

    `cells` maps "normal" and "reduce" to their 4 nodes' edges `((input, op), (input, op))`.
    """

    def __init__(
        self,
        cells: Mapping[str, Sequence[NodeEdges]],
        *,
        channels: int = 36,
        layers: int = 20,
        stem_multiplier: int = 3,
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        if set(cells) != set(CELLS) or channels < 2 or layers < 1 or stem_multiplier < 1 or num_classes < 1 or in_channels < 1:
            raise ValueError(
                f"DARTS network needs normal and reduce cells, channels >= 2, layers >= 1, stem_multiplier >= 1, "
                f"num_classes >= 1, in_channels >= 1; got cells {sorted(cells)}, {channels}, {layers}, {stem_multiplier}, {num_classes}, {in_channels}"
            )
        c_stem = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions = reduction_cells(layers)
        reduction_prev = False
        blocks = []
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c *= 2
            blocks.append(
                Cell(cells["reduce" if reduction else "normal"], c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev)
            )
            c_pp, c_p = c_p, MULTIPLIER * c
            reduction_prev = reduction
        self.cells = nn.ModuleList(blocks)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.global_pooling(s1).flatten(1))
