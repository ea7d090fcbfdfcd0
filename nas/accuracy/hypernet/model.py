"""The graph hypernetwork (GHN): a gated graph network over an NB201 cell's `space.graph(arch)` that emits
every conv, BatchNorm and linear weight of the network `build_nb201_network` builds for that cell.

Why this shape (GHN-1, Zhang et al. 2019; GHN-2, Knyazev et al. 2021): an architecture is a graph of
operators; message passing forward and backward along the DAG gives each operator an embedding that
knows what feeds it and what it feeds, and a decoder turns that embedding into the operator's weights.
The same cell is stacked several times, so each cell op's decoder also sees a learned embedding of the
cell's position. Tensors outside the cells (stem, reduction blocks, last BatchNorm, classifier) have no
node of their own: they are decoded from the graph's mean embedding plus a learned per-tensor embedding,
so they still change with the architecture.

One decoder per tensor kind and shape (`conv_16x16x3x3`, `bn_weight_16`, ...), shared by every tensor of
that shape wherever it sits. Conv and linear weights are scaled by `sqrt(2 / fan_in)` (He), so a decoder
output of unit scale is a sensible weight; BatchNorm weights are `1 + output`, as GHN-2 does.

The network itself is the real one (`NB201Network`), run with `torch.func.functional_call` on the
generated tensors, BatchNorm in batch-statistics mode (no running statistics exist for generated weights).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import torch
from torch import nn

from nas.spaces.nb201_network import InferCell, build_nb201_network

#: Node labels beside the space's ops.
ENDPOINTS = ("input", "output")


@dataclass(frozen=True)
class Slot:
    """One generated tensor of a built network.

    `name`: its key in `named_parameters()`; `kind`: conv, bn_weight, bn_bias, linear_weight or
    linear_bias; `decoder`: the decoder that emits it; `cell` and `node`: the position of its cell among
    the network's cells and the graph node of its op (None for tensors outside the cells).
    """

    name: str
    kind: str
    shape: tuple[int, ...]
    decoder: str
    cell: int | None = None
    node: str | None = None


def _kind(module: nn.Module, leaf: str) -> str:
    if isinstance(module, nn.Conv2d) and leaf == "weight":
        return "conv"
    if isinstance(module, nn.BatchNorm2d):
        return f"bn_{leaf}"
    if isinstance(module, nn.Linear):
        return f"linear_{leaf}"
    raise ValueError(f"the GHN cannot generate parameter {leaf!r} of a {type(module).__name__}; expected Conv2d weights, BatchNorm2d or Linear parameters")


def network_slots(net: nn.Module, node_names: Sequence[str]) -> list[Slot]:
    """Every parameter of an `NB201Network` as a `Slot`; `node_names[e]` is the graph node of edge `e`."""
    owners = {}
    position = 0
    for j, block in enumerate(net.cells):  # type: ignore[arg-type]
        if isinstance(block, InferCell):
            for e, op in enumerate(block.edges):
                for sub, _ in op.named_parameters():
                    owners[f"cells.{j}.edges.{e}.{sub}"] = (position, node_names[e])
            position += 1
    slots = []
    for name, p in net.named_parameters():
        prefix, _, leaf = name.rpartition(".")
        kind = _kind(net.get_submodule(prefix), leaf)
        shape = tuple(p.shape)
        cell, node = owners.get(name, (None, None))
        slots.append(Slot(name, kind, shape, f"{kind}_{'x'.join(map(str, shape))}", cell, node))
    return slots


def graph_arrays(graph: nx.DiGraph, labels: Sequence[str]) -> tuple[list[str], list[int], list[list[int]], list[list[int]]]:
    """A DAG in a fixed topological order: node names, label indices, predecessors and successors by position."""
    order = list(nx.lexicographical_topological_sort(graph))
    index = {n: i for i, n in enumerate(order)}
    try:
        ops = [labels.index(str(graph.nodes[n]["op"])) for n in order]
    except ValueError:
        raise ValueError(f"graph has ops {sorted({str(graph.nodes[n]['op']) for n in order})}; the GHN knows {list(labels)}") from None
    preds = [[index[p] for p in graph.predecessors(n)] for n in order]
    succs = [[index[s] for s in graph.successors(n)] for n in order]
    return order, ops, preds, succs


class GraphHyperNetwork(nn.Module):
    """Emits the weights of the NB201 network of any cell of a space's ops.

    Args:
        ops: the space's op names (node labels).
        in_channels, classes: the data's.
        channels, cells_per_stage: the width and depth of the networks it generates for.
        hidden: embedding size of nodes, cell positions and tensors.
        rounds: rounds of forward-then-backward message passing.

    Example:
        >>> ghn = GraphHyperNetwork(("none", "skip_connect", "nor_conv_3x3"), in_channels=1, classes=10, channels=4, cells_per_stage=1)
        >>> net = ghn.build(("nor_conv_3x3",) * 6)
        >>> g = nx.DiGraph([("input", "edge_0_1"), ("edge_0_1", "output")])
        >>> nx.set_node_attributes(g, {"input": "input", "output": "output", "edge_0_1": "nor_conv_3x3"}, "op")
        >>> params = ghn.generate(g, network_slots(net, ["edge_0_1"] * 6))
        >>> tuple(params["stem.0.weight"].shape)
        (4, 1, 3, 3)
    """

    def __init__(self, ops: Sequence[str], *, in_channels: int, classes: int, channels: int, cells_per_stage: int, hidden: int = 32, rounds: int = 1) -> None:
        super().__init__()
        self.ops = tuple(ops)
        self.labels = (*self.ops, *ENDPOINTS)
        self.in_channels, self.classes, self.channels, self.cells_per_stage = in_channels, classes, channels, cells_per_stage
        self.hidden, self.rounds = hidden, rounds
        self.embed = nn.Embedding(len(self.labels), hidden)
        self.message = nn.ModuleList(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU()) for _ in range(2))
        self.update = nn.ModuleList(nn.GRUCell(hidden, hidden) for _ in range(2))
        self.position = nn.Embedding(max(1, 3 * cells_per_stage), hidden)
        shapes: dict[str, int] = {}
        outer: list[str] = []
        for op in self.ops:  # the union of every tensor any cell of these ops can hold
            for slot in network_slots(self.build((op,) * 6), ["edge"] * 6):
                shapes[slot.decoder] = math.prod(slot.shape)
                if slot.cell is None and slot.name not in outer:
                    outer.append(slot.name)
        self.outer = {name: i for i, name in enumerate(outer)}
        self.tensor = nn.Embedding(len(outer), hidden)
        self.decoders = nn.ModuleDict(
            {key: nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, size)) for key, size in sorted(shapes.items())}
        )

    def build(self, edge_ops: Sequence[str]) -> nn.Module:
        """The network whose weights this GHN generates, for one cell's edge ops."""
        return build_nb201_network(edge_ops, channels=self.channels, cells_per_stage=self.cells_per_stage, num_classes=self.classes, in_channels=self.in_channels)

    def embed_graph(self, graph: nx.DiGraph) -> tuple[list[str], torch.Tensor]:
        """Node names in topological order and their embeddings (`n_nodes x hidden`) after message passing."""
        order, ops, preds, succs = graph_arrays(graph, self.labels)
        rows = list(self.embed(torch.tensor(ops)).unbind(0))
        forward = list(range(len(order)))
        for _ in range(self.rounds):
            for direction, (neighbours, sequence) in enumerate(((preds, forward), (succs, forward[::-1]))):
                for v in sequence:
                    if neighbours[v]:
                        m = self.message[direction](torch.stack([rows[u] for u in neighbours[v]])).sum(0, keepdim=True)
                        rows[v] = self.update[direction](m, rows[v][None])[0]
        return order, torch.stack(rows)

    def generate(self, graph: nx.DiGraph, slots: Sequence[Slot]) -> dict[str, torch.Tensor]:
        """The tensors of `slots` (a network built for `graph`'s cell) by parameter name."""
        order, h = self.embed_graph(graph)
        index = {n: i for i, n in enumerate(order)}
        pooled = h.mean(0)
        groups: dict[str, list[int]] = {}
        contexts = []
        for i, slot in enumerate(slots):
            if slot.cell is None:
                if slot.name not in self.outer:
                    raise ValueError(f"the GHN has no embedding for tensor {slot.name!r}: the network differs from the one it was made for")
                contexts.append(pooled + self.tensor.weight[self.outer[slot.name]])
            else:
                if slot.node not in index:
                    raise ValueError(f"tensor {slot.name!r} belongs to node {slot.node!r}, which the graph lacks")
                contexts.append(h[index[slot.node]] + self.position.weight[slot.cell])
            groups.setdefault(slot.decoder, []).append(i)
        stacked = torch.stack(contexts)
        out: dict[str, torch.Tensor] = {}
        for key, members in groups.items():
            if key not in self.decoders:
                raise ValueError(f"the GHN has no decoder for {key}: the network differs from the one it was made for")
            raw = self.decoders[key](stacked[members])
            for row, i in zip(raw, members):
                out[slots[i].name] = _finish(slots[i], row)
        return out


def _finish(slot: Slot, raw: torch.Tensor) -> torch.Tensor:
    """A decoder's flat output as the tensor of `slot`: He-scaled weights, BatchNorm weights around 1."""
    tensor = raw.reshape(slot.shape)
    if slot.kind in ("conv", "linear_weight"):
        return tensor * math.sqrt(2.0 / math.prod(slot.shape[1:]))
    if slot.kind == "bn_weight":
        return 1.0 + tensor
    return tensor


def run_network(net: nn.Module, params: Mapping[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Logits of `net` on `x` with the generated `params`, BatchNorm on the batch's statistics."""
    net.train()
    return torch.func.functional_call(net, dict(params), (x,))


__all__ = ["GraphHyperNetwork", "Slot", "graph_arrays", "network_slots", "run_network"]
