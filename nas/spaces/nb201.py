"""The NAS-Bench-201 cell space: 6 edges of a 4-node DAG, one operation per edge.

Why its own module: NB201 is the space every published hardware table is keyed on, so its canonical
string must be the official `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|` form, and its encodings (adjacency,
path) follow the cell's graph rather than a flat list of decisions.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nas.spaces.base import Arch, Decision, InputSpec, InvalidArchError, LayerPart, LayerSignature, SearchSpace

_NODE_RE = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


class NB201Space(SearchSpace):
    """NAS-Bench-201 (or a variant defined in YAML: other ops, width, depth).

    Decisions are named `edge_{src}_{dst}`, in the official string's edge order
    (0->1, 0->2, 1->2, 0->3, 1->3, 2->3).

    Example:
        >>> space = NB201Space()
        >>> arch = space.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|")
        >>> arch["edge_0_1"]
        'nor_conv_3x3'
        >>> space.to_string(arch) == "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
        True
        >>> space.size
        15625
    """

    def __init__(
        self,
        name: str = "nb201",
        *,
        ops: Sequence[str] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"),
        nodes: int = 4,
        channels: int = 16,
        cells_per_stage: int = 5,
        datasets: Mapping[str, Mapping[str, int]] | None = None,
        description: str = "",
    ) -> None:
        from nas.spaces.nb201_ops import OPS

        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ValueError(f"space {name!r}: unknown NB201 ops {unknown}; expected a subset of {list(OPS)}")
        if nodes != 4:
            raise ValueError(f"space {name!r}: nodes={nodes}; the NB201 network is defined for 4-node cells")
        self.name = name
        self.ops = tuple(ops)
        self.nodes = nodes
        self.channels = int(channels)
        self.cells_per_stage = int(cells_per_stage)
        self.datasets = {k: dict(v) for k, v in (datasets or {"cifar10": {"num_classes": 10, "input_size": 32}}).items()}
        self.description = description
        self.edges: tuple[tuple[int, int], ...] = tuple((src, dst) for dst in range(1, nodes) for src in range(dst))
        self._decisions = tuple(Decision(f"edge_{s}_{d}", self.ops) for s, d in self.edges)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> NB201Space:
        keys = {"ops", "nodes", "channels", "cells_per_stage", "datasets", "description"}
        return cls(config["name"], **{k: v for k, v in config.items() if k in keys})

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    # --- strings --------------------------------------------------------------------------------
    def to_string(self, arch: Arch) -> str:
        groups = []
        for dst in range(1, self.nodes):
            groups.append("|" + "|".join(f"{arch[f'edge_{src}_{dst}']}~{src}" for src in range(dst)) + "|")
        return "+".join(groups)

    def from_string(self, text: str) -> Arch:
        text = text.strip()
        groups = text.split("+")
        if len(groups) != self.nodes - 1:
            raise InvalidArchError(
                f"malformed NB201 arch string {text!r}: expected {self.nodes - 1} '+'-separated node groups "
                "like |nor_conv_3x3~0|+|none~0|skip_connect~1|+|..."
            )
        choices: dict[str, str] = {}
        for dst, group in enumerate(groups, start=1):
            if not (group.startswith("|") and group.endswith("|")):
                raise InvalidArchError(f"malformed NB201 arch string {text!r}: node group {group!r} must be |op~src|...|")
            items = group[1:-1].split("|")
            if len(items) != dst:
                raise InvalidArchError(f"malformed NB201 arch string {text!r}: node {dst} needs {dst} inputs, got {len(items)}")
            for expected_src, item in enumerate(items):
                match = _NODE_RE.match(item)
                if not match or int(match.group(2)) != expected_src:
                    raise InvalidArchError(f"malformed NB201 arch string {text!r}: bad edge {item!r}, expected op~{expected_src}")
                op = match.group(1)
                if op not in self.ops:
                    raise InvalidArchError(f"malformed NB201 arch string {text!r}: unknown op {op!r}; expected one of {list(self.ops)}")
                choices[f"edge_{expected_src}_{dst}"] = op
        return self.validate(choices)

    # --- encodings ------------------------------------------------------------------------------
    def encoding_kinds(self) -> list[str]:
        return ["integer", "onehot", "adjacency", "path"]

    def _encode_batch(self, archs: Sequence[Arch], kind: str) -> np.ndarray:
        if kind == "adjacency":
            return self.adjacency_encoding(archs)
        if kind == "path":
            return self.path_encoding(archs)
        return super()._encode_batch(archs, kind)

    def adjacency(self, archs: Sequence[Arch]) -> tuple[np.ndarray, np.ndarray]:
        """Ops-on-nodes graph form (as NAS-Bench-101/GNN predictors use).

        Nodes: cell input, one node per edge (its op), cell output, in that order. Returns
        `adj` (`n_archs x n_nodes x n_nodes`, 0/1, upper triangular) and `ops`
        (`n_archs x n_nodes x (n_ops + 2)`, one-hot with extra labels for input and output).
        Edges whose op is `none` are kept as nodes but disconnected, so shapes stay fixed.
        """
        n_edges = len(self.edges)
        n_nodes = n_edges + 2
        idx = self.index_matrix(archs)
        none = self.ops.index("none") if "none" in self.ops else -1
        # Static wiring: edge node e=(s,d) feeds every edge node leaving d, and the output if d is last.
        base = np.zeros((n_nodes, n_nodes), dtype=np.float32)
        for e, (src, dst) in enumerate(self.edges):
            if src == 0:
                base[0, e + 1] = 1
            for f, (src2, _) in enumerate(self.edges):
                if src2 == dst:
                    base[e + 1, f + 1] = 1
            if dst == self.nodes - 1:
                base[e + 1, n_nodes - 1] = 1
        adj = np.broadcast_to(base, (len(archs), n_nodes, n_nodes)).copy()
        dead = idx == none  # n_archs x n_edges
        node_dead = np.concatenate([np.zeros((len(archs), 1), bool), dead, np.zeros((len(archs), 1), bool)], axis=1)
        adj[node_dead[:, :, None].repeat(n_nodes, 2)] = 0
        adj[node_dead[:, None, :].repeat(n_nodes, 1)] = 0
        ops = np.zeros((len(archs), n_nodes, len(self.ops) + 2), dtype=np.float32)
        ops[:, 0, len(self.ops)] = 1
        ops[:, -1, len(self.ops) + 1] = 1
        rows = np.repeat(np.arange(len(archs)), n_edges)
        cols = np.tile(np.arange(1, n_edges + 1), len(archs))
        ops[rows, cols, idx.ravel()] = 1
        return adj, ops

    def adjacency_encoding(self, archs: Sequence[Arch]) -> np.ndarray:
        """Flattened upper triangle of the adjacency matrix followed by the flattened node labels."""
        adj, ops = self.adjacency(archs)
        iu = np.triu_indices(adj.shape[1], k=1)
        return np.concatenate([adj[:, iu[0], iu[1]], ops.reshape(len(archs), -1)], axis=1)

    def routes(self) -> list[tuple[int, ...]]:
        """Every input-to-output route through the cell, as tuples of edge positions."""
        out: list[tuple[int, ...]] = []
        edge_pos = {e: i for i, e in enumerate(self.edges)}
        inner = range(1, self.nodes - 1)
        for r in range(len(inner) + 1):
            for mids in itertools.combinations(inner, r):
                nodes = (0, *mids, self.nodes - 1)
                out.append(tuple(edge_pos[(a, b)] for a, b in zip(nodes[:-1], nodes[1:])))
        return out

    def path_encoding(self, archs: Sequence[Arch]) -> np.ndarray:
        """BANANAS-style path encoding: one feature per (route, sequence of non-`none` ops).

        A path is active when every edge along its route carries a real op; `none` cuts it. For NB201 this
        gives 4 + 16 + 16 + 64 = 100 binary features.
        """
        idx = self.index_matrix(archs)
        live_ops = [i for i, op in enumerate(self.ops) if op != "none"]
        code = np.full(len(self.ops), -1, dtype=np.int64)
        code[live_ops] = np.arange(len(live_ops))
        k = len(live_ops)
        blocks = []
        for route in self.routes():
            sub = code[idx[:, list(route)]]  # n_archs x len(route), -1 where `none`
            alive = (sub >= 0).all(axis=1)
            flat = np.zeros(len(archs), dtype=np.int64)
            for j in range(len(route)):
                flat = flat * k + np.where(sub[:, j] >= 0, sub[:, j], 0)
            block = np.zeros((len(archs), k ** len(route)), dtype=np.float32)
            block[np.flatnonzero(alive), flat[alive]] = 1.0
            blocks.append(block)
        return np.concatenate(blocks, axis=1)

    # --- identity -------------------------------------------------------------------------------
    def canonical(self, arch: Arch) -> Arch:
        """`arch` with every dead edge (one whose result never reaches the cell output) set to `none`.

        Why only those: a dead edge changes neither the cell's function nor what a graph optimiser runs,
        so the two strings name one network. An edge that reads an all-zero node is not dead: a conv of
        zeros still adds its BN bias. NAS-Bench-201's tables list every string, canonical or not (the
        trained weights of the dead edges differ), so lookups keep `to_string(arch)`.

        Example:
            >>> space = NB201Space()
            >>> a = space.from_string("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|none~2|")
            >>> space.to_string(space.canonical(a))
            '|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|'
        """
        from nas.spaces.nb201_ops import reaches_output

        arch = self.validate(arch)
        reaches = reaches_output(self.edge_ops(arch))
        return Arch({f"edge_{s}_{d}": (arch[f"edge_{s}_{d}"] if reaches[d] else "none") for s, d in self.edges})

    # --- realisation ----------------------------------------------------------------------------
    def dataset_info(self, dataset: str) -> dict[str, int]:
        """`num_classes` and `input_size` of a dataset setting this space defines."""
        try:
            return self.datasets[dataset]
        except KeyError:
            raise ValueError(f"space {self.name!r} has no dataset {dataset!r}; expected one of {sorted(self.datasets)}") from None

    def edge_ops(self, arch: Arch) -> list[str]:
        return [str(arch[d.name]) for d in self._decisions]

    def graph(self, arch: Arch) -> Any:
        """The cell as a DAG with one node per operation the network holds (`op`, and `edge`: its
        decision) between the cell's `input` and `output`; `none` edges hold nothing and are left out,
        node sums are implicit. Dead edges stay (the built module has their weights): they end in a
        node that feeds nothing, just as edges that read an all-zero node start at one fed by nothing."""
        import networkx as nx

        arch = self.validate(arch)
        g = nx.DiGraph()
        g.add_node("input", op="input")
        g.add_node("output", op="output")
        for s, d in self.edges:
            op = str(arch[f"edge_{s}_{d}"])
            if op != "none":
                g.add_node(f"edge_{s}_{d}", op=op, edge=(s, d))
        for s, d in self.edges:
            name = f"edge_{s}_{d}"
            if name not in g:
                continue
            if s == 0:
                g.add_edge("input", name)
            for s2, d2 in self.edges:
                if s2 == d and f"edge_{s2}_{d2}" in g:
                    g.add_edge(name, f"edge_{s2}_{d2}")
            if d == self.nodes - 1:
                g.add_edge(name, "output")
        return g

    def build(self, arch: Arch, input_spec: InputSpec | None = None, *, dataset: str | None = None, num_classes: int | None = None) -> Any:
        """The NB201 network (`torch.nn.Module`) for `arch` and `input_spec` (default: the `dataset`
        setting, else CIFAR-10); for 3-channel inputs its parameter count equals the table's."""
        from nas.spaces.nb201_network import build_nb201_network

        spec = self._resolve_input(input_spec, dataset, num_classes)
        return build_nb201_network(
            self.edge_ops(self.validate(arch)),
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
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
        """Operators of `build(arch)`; the three options list what a graph optimiser leaves (see `nb201_layers`).

        `input_spec` (the data's) or the `dataset` setting gives channels, size and classes; `input_size`
        and `num_classes` override them. Non-square inputs are listed at their height.
        """
        from nas.spaces.nb201_ops import nb201_layers

        spec = self._resolve_input(input_spec, dataset, num_classes)
        return nb201_layers(
            self.edge_ops(arch),
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
            input_size=int(input_size if input_size is not None else spec.height),
            num_classes=spec.classes,
            in_channels=spec.channels,
            live_only=live_only,
            fold_constants=fold_constants,
            merge_identical=merge_identical,
        )

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
    ) -> tuple[LayerPart, ...]:
        """`layers(arch, ...)` (same options) as parts over the edges (see `nb201_ops.nb201_layer_parts`)."""
        from nas.spaces.nb201_ops import nb201_layer_parts

        spec = self._resolve_input(input_spec, dataset, num_classes)
        parts = nb201_layer_parts(
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
            input_size=int(input_size if input_size is not None else spec.height),
            num_classes=spec.classes,
            in_channels=spec.channels,
            live_only=live_only,
            fold_constants=fold_constants,
            merge_identical=merge_identical,
        )
        return tuple(LayerPart(tuple(self._decisions[e].name for e in edges), counts) for edges, counts in parts)
