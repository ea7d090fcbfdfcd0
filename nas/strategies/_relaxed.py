"""Continuous relaxations of cell spaces for differentiable search: mixed operations and their networks.

Why here and not in `nas.spaces`: a space describes discrete networks; relaxing every choice into a
softmax over operations is how one strategy (DARTS) searches them. The mixed networks are built from the
same operation modules as the spaces' networks (`nas.spaces.nb201_network`, `nas.spaces.darts_network`),
so `extract(arch)` hands a discrete network its inherited weights by name, and a one-hot architecture
weight gives exactly the discrete cell's output (the tests pin both).

A relaxation has `n_edges x n_ops` architecture weights. `indicators(archs)` writes a discrete
architecture in those coordinates (1 where the arch holds op o on edge e), so per-choice costs can be
fitted from whole-network costs and the relaxed cell's expected cost is `sum(weights * costs)`.
`discretise(weights)` turns weights back into an `Arch` of the space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.spaces.base import Arch, InputSpec, SearchSpace
from nas.spaces.darts import CELLS, MULTIPLIER, NODES, DartsSpace, _pair, reduction_cells
from nas.spaces.darts_network import FactorizedReduce, ReLUConvBN as DartsReLUConvBN, edge_module
from nas.spaces.nb201 import NB201Space
from nas.spaces.nb201_network import NB201Network, _edge_op, stage_blocks


class MixedEdge(nn.Module):
    """One edge holding every candidate operation; the output is their weighted sum (`none` adds nothing)."""

    def __init__(self, ops: Sequence[nn.Module | None]) -> None:
        super().__init__()
        self.live = [i for i, op in enumerate(ops) if op is not None]
        self.ops = nn.ModuleList(op if op is not None else nn.Identity() for op in ops)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor | None:
        total: torch.Tensor | None = None
        for i in self.live:
            out = weights[i] * self.ops[i](x)
            total = out if total is None else total + out
        return total


def _sum(parts: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
    live = [p for p in parts if p is not None]
    if not live:
        return torch.zeros_like(like)
    total = live[0]
    for p in live[1:]:
        total = total + p
    return total


# --- NAS-Bench-201 ---------------------------------------------------------------------------------------
class _MixedNB201Cell(nn.Module):
    def __init__(self, ops: Sequence[str], edges: Sequence[tuple[int, int]], channels: int) -> None:
        super().__init__()
        self.pairs = tuple(edges)
        self.edges = nn.ModuleList(MixedEdge([None if op == "none" else _edge_op(op, channels) for op in ops]) for _ in edges)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for target in range(1, 1 + max(d for _, d in self.pairs)):
            parts = [edge(nodes[s], weights[k]) for k, ((s, d), edge) in enumerate(zip(self.pairs, self.edges)) if d == target]
            nodes.append(_sum(parts, x))
        return nodes[-1]


class MixedNB201Network(nn.Module):
    """NB201's network with every cell relaxed; all cells share one `6 x n_ops` weight matrix."""

    def __init__(self, space: NB201Space, spec: InputSpec, *, channels: int, cells_per_stage: int) -> None:
        super().__init__()
        self.space, self.channels, self.cells_per_stage, self.spec = space, channels, cells_per_stage, spec
        self.stem = nn.Sequential(nn.Conv2d(spec.channels, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        blocks, width = stage_blocks(channels, cells_per_stage, lambda c: _MixedNB201Cell(space.ops, space.edges, c))
        self.cells = nn.ModuleList(blocks)
        self.lastact = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(width, spec.classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.cells:
            x = block(x, weights) if isinstance(block, _MixedNB201Cell) else block(x)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))

    def extract(self, arch: Arch) -> nn.Module:
        """The discrete network of `arch` at the supernet's size, holding the supernet's weights."""
        ops = self.space.edge_ops(self.space.validate(arch))
        net = NB201Network(ops, channels=self.channels, cells_per_stage=self.cells_per_stage, num_classes=self.spec.classes, in_channels=self.spec.channels)
        mine = self.state_dict()
        index = {op: i for i, op in enumerate(self.space.ops)}
        state = {}
        for name in net.state_dict():
            parts = name.split(".")
            if parts[0] == "cells" and parts[2] == "edges":
                parts = [*parts[:4], "ops", str(index[ops[int(parts[3])]]), *parts[4:]]
            state[name] = mine[".".join(parts)]
        net.load_state_dict(state)
        return net


class NB201Relaxation:
    """NB201's cell relaxed edge by edge (Dong & Yang's DARTS baseline): one weight per (edge, op)."""

    def __init__(self, space: NB201Space) -> None:
        self.space = space
        self.edge_names = [d.name for d in space.decisions]
        self.ops = tuple(space.ops)
        self.shape = (len(self.edge_names), len(self.ops))

    def choice_names(self) -> list[str]:
        return [f"{e}={op}" for e in self.edge_names for op in self.ops]

    def network(self, spec: InputSpec, *, channels: int, cells: int) -> MixedNB201Network:
        return MixedNB201Network(self.space, spec, channels=channels, cells_per_stage=cells)

    def indicators(self, archs: Sequence[Arch]) -> np.ndarray:
        idx = self.space.index_matrix(archs)
        out = np.zeros((len(archs), *self.shape))
        out[np.arange(len(archs))[:, None], np.arange(self.shape[0])[None, :], idx] = 1.0
        return out.reshape(len(archs), -1)

    def discretise(self, weights: np.ndarray) -> Arch:
        """The strongest op of every edge (`none` included, as NB201's DARTS baseline picks)."""
        best = np.asarray(weights).reshape(self.shape).argmax(axis=1)
        return self.space.validate({e: self.ops[b] for e, b in zip(self.edge_names, best)})

    def keep_rate(self) -> np.ndarray:
        """Per edge, how often discretising keeps it: every NB201 edge is kept (its op may be `none`)."""
        return np.ones(self.shape[0])

    def default_size(self, spec: InputSpec) -> tuple[int, int]:
        """(channels, cells per stage): NB201's own for images of 16 px or more, else a CPU size, 16 x 1
        (at 8 channels the supernet preferred parameter-free cells more often; benchmarks/results/darts.md)."""
        return (self.space.channels, self.space.cells_per_stage) if min(spec.height, spec.width) >= 16 else (16, 1)


# --- DARTS -------------------------------------------------------------------------------------------------
def _darts_edges() -> list[tuple[int, int]]:
    """(input, node) of every edge of a relaxed DARTS cell: node N reads every earlier state (14 edges)."""
    return [(i, n) for n in NODES for i in range(n)]


class _MixedDartsCell(nn.Module):
    def __init__(self, ops: Sequence[str], c_pp: int, c_p: int, c: int, *, reduction: bool, reduction_prev: bool) -> None:
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c) if reduction_prev else DartsReLUConvBN(c_pp, c)
        self.preprocess1 = DartsReLUConvBN(c_p, c)
        self.pairs = _darts_edges()
        self.edges = nn.ModuleList(
            MixedEdge([None if op == "none" else edge_module(op, c, 2 if reduction and i < 2 else 1) for op in ops]) for i, _ in self.pairs
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        like = states[1][:, :, ::2, ::2] if self.reduction else states[1]
        for n in NODES:
            parts = [self.edges[k](states[i], weights[k]) for k, (i, m) in enumerate(self.pairs) if m == n]
            states.append(_sum(parts, like))
        return torch.cat(states[2:], dim=1)


class MixedDartsNetwork(nn.Module):
    """DARTS's search network: normal cells share the first 14 weight rows, reduction cells the last 14."""

    def __init__(self, space: DartsSpace, spec: InputSpec, *, channels: int, layers: int) -> None:
        super().__init__()
        self.space, self.channels, self.layers, self.spec = space, channels, layers, spec
        c_stem = space.stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(spec.channels, c_stem, 3, padding=1, bias=False), nn.BatchNorm2d(c_stem))
        c_pp, c_p, c = c_stem, c_stem, channels
        reductions = reduction_cells(layers)
        cells, reduction_prev = [], False
        for i in range(layers):
            reduction = i in reductions
            c = 2 * c if reduction else c
            cells.append(_MixedDartsCell(space.ops, c_pp, c_p, c, reduction=reduction, reduction_prev=reduction_prev))
            c_pp, c_p, reduction_prev = c_p, MULTIPLIER * c, reduction
        self.cells = nn.ModuleList(cells)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, spec.classes)

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        half = weights.shape[0] // 2
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, weights[half:] if cell.reduction else weights[:half])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def extract(self, arch: Arch) -> nn.Module:
        """The discrete network of `arch` at the supernet's size, holding the supernet's weights."""
        from nas.spaces.darts_network import DartsNetwork

        arch = self.space.validate(arch)
        cells = {cell: self.space.cell_edges(arch, cell) for cell in CELLS}
        net = DartsNetwork(cells, channels=self.channels, layers=self.layers, stem_multiplier=self.space.stem_multiplier, num_classes=self.spec.classes, in_channels=self.spec.channels)
        pairs = _darts_edges()
        index = {op: i for i, op in enumerate(self.space.ops)}
        mine = self.state_dict()
        state = {}
        for name in net.state_dict():
            parts = name.split(".")
            if parts[0] == "cells" and parts[2] == "edges":
                block = net.cells[int(parts[1])]
                live = [(src, op, n) for n, node in zip(NODES, cells["reduce" if block.reduction else "normal"]) for src, op in node if op != "none"]
                src, op, n = live[int(parts[3])]
                parts = [*parts[:3], str(pairs.index((src, n))), "ops", str(index[op]), *parts[4:]]
            state[name] = mine[".".join(parts)]
        net.load_state_dict(state)
        return net


class DartsRelaxation:
    """DARTS's relaxation: every node reads every earlier state through a mixed op, per cell type;
    discretising keeps each node's two strongest inputs and their strongest non-`none` ops."""

    def __init__(self, space: DartsSpace) -> None:
        self.space = space
        self.ops = tuple(space.ops)
        self.pairs = _darts_edges()
        self.shape = (len(CELLS) * len(self.pairs), len(self.ops))

    def choice_names(self) -> list[str]:
        return [f"{cell}_{i}->{n}={op}" for cell in CELLS for i, n in self.pairs for op in self.ops]

    def network(self, spec: InputSpec, *, channels: int, cells: int) -> MixedDartsNetwork:
        return MixedDartsNetwork(self.space, spec, channels=channels, layers=cells)

    def indicators(self, archs: Sequence[Arch]) -> np.ndarray:
        out = np.zeros((len(archs), *self.shape))
        row = {(cell, i, n): c * len(self.pairs) + k for c, cell in enumerate(CELLS) for k, (i, n) in enumerate(self.pairs)}
        col = {op: j for j, op in enumerate(self.ops)}
        for a, arch in enumerate(archs):
            for cell in CELLS:
                for n, node in zip(NODES, self.space.cell_edges(arch, cell)):
                    for src, op in node:
                        out[a, row[(cell, src, n)], col[op]] = 1.0
        return out.reshape(len(archs), -1)

    def discretise(self, weights: np.ndarray) -> Arch:
        w = np.asarray(weights).reshape(len(CELLS), len(self.pairs), len(self.ops))
        live = [j for j, op in enumerate(self.ops) if op != "none"]
        choices: dict[str, Any] = {}
        for c, cell in enumerate(CELLS):
            for n in NODES:
                rows = [k for k, (_, m) in enumerate(self.pairs) if m == n]
                strength = [float(w[c, k, live].max()) for k in rows]
                best = sorted(np.argsort(strength, kind="stable")[::-1][:2])
                (i, ki), (j, kj) = [(self.pairs[rows[b]][0], rows[b]) for b in best]
                choices[f"{cell}_{n}_inputs"] = _pair(i, j)
                choices[f"{cell}_{n}_op0"] = self.ops[live[int(w[c, ki, live].argmax())]]
                choices[f"{cell}_{n}_op1"] = self.ops[live[int(w[c, kj, live].argmax())]]
        return self.space.validate(choices)

    def keep_rate(self) -> np.ndarray:
        """Per edge, how often discretising keeps it: a node keeps 2 of its `n` candidate inputs, so each
        of its edges counts `2 / n` in the relaxed cell's expected cost."""
        return np.tile([2.0 / n for _, n in self.pairs], len(CELLS))

    def default_size(self, spec: InputSpec) -> tuple[int, int]:
        """(channels, cells): DARTS's search network (16 x 8) for images of 16 px or more, else 8 x 5."""
        return (16, 8) if min(spec.height, spec.width) >= 16 else (8, 5)


Relaxation = NB201Relaxation | DartsRelaxation


def relaxation_of(space: SearchSpace) -> Relaxation:
    """The relaxation of a cell space; other spaces cannot be searched by gradient descent (one line)."""
    if isinstance(space, NB201Space):
        return NB201Relaxation(space)
    if isinstance(space, DartsSpace):
        return DartsRelaxation(space)
    raise ValueError(f"strategy darts needs a cell space (family nb201 or darts); space {space.name!r} is a {type(space).__name__}")


__all__ = ["DartsRelaxation", "MixedDartsNetwork", "MixedEdge", "MixedNB201Network", "NB201Relaxation", "Relaxation", "relaxation_of"]
