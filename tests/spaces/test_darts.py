"""The DARTS cell space: genotype strings, canonical forms, moves, size, the built network and its operators."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from nas.cost.counts import layer_params
from nas.cost.measure.ops import KNOWN_OPS, module_for_signature
from nas.spaces import get_space, space_names
from nas.spaces.base import Arch, InputSpec, InvalidArchError, LayerSignature
from nas.spaces.darts import CELLS, NODES, OPS, DartsSpace, reduction_cells
from nas.spaces.darts_network import Cell, DilConv, edge_module

#: DARTS_V2 as DARTS's `genotypes.py` lists it (some nodes' edges with the higher input first).
DARTS_V2 = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1), "
    "('skip_connect', 0), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 1), ('max_pool_3x3', 0), ('skip_connect', 2), ('skip_connect', 2), "
    "('max_pool_3x3', 1)], reduce_concat=[2, 3, 4, 5])"
)
#: The same cells as this space prints them: each node's edges by input index.
DARTS_V2_CANONICAL = (
    "Genotype(normal=[('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('skip_connect', 0), "
    "('sep_conv_3x3', 1), ('skip_connect', 0), ('dil_conv_3x3', 2)], normal_concat=[2, 3, 4, 5], reduce=[('max_pool_3x3', 0), "
    "('max_pool_3x3', 1), ('max_pool_3x3', 1), ('skip_connect', 2), ('max_pool_3x3', 0), ('skip_connect', 2), ('max_pool_3x3', 1), "
    "('skip_connect', 2)], reduce_concat=[2, 3, 4, 5])"
)
DIGITS = InputSpec(1, 8, 8, 10)
CIFAR10 = InputSpec(3, 32, 32, 10)


@pytest.fixture(scope="module")
def small() -> DartsSpace:
    space = get_space("darts_small")
    assert isinstance(space, DartsSpace)
    return space


def genotype(normal: list[tuple[str, int]], reduce: list[tuple[str, int]]) -> str:
    """A genotype string in DARTS's format from two lists of (op, input) pairs."""
    return f"Genotype(normal={normal!r}, normal_concat=[2, 3, 4, 5], reduce={reduce!r}, reduce_concat=[2, 3, 4, 5])"


def with_node(space: DartsSpace, arch: Arch, cell: str, node: int, edges: list[tuple[int, str]]) -> Arch:
    """`arch` with one node's two edges `(input, op)` replaced."""
    (i, a), (j, b) = sorted(edges)
    return arch.replace(**{f"{cell}_{node}_inputs": f"{i},{j}", f"{cell}_{node}_op0": a, f"{cell}_{node}_op1": b})


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- strings -----------------------------------------------------------------------------------------
def test_darts_v2_parses_and_prints_as_the_canonical_string_which_round_trips(small: DartsSpace) -> None:
    arch = small.from_string(DARTS_V2)
    assert small.to_string(arch) == DARTS_V2_CANONICAL
    assert small.from_string(DARTS_V2_CANONICAL) == arch
    assert arch["normal_4_inputs"] == "0,1" and arch["normal_4_op0"] == "skip_connect" and arch["normal_4_op1"] == "sep_conv_3x3"
    assert small.genotype(arch)["reduce"][2:4] == [("max_pool_3x3", 1), ("skip_connect", 2)]


def test_range_concat_and_free_whitespace_parse_like_the_list_form(small: DartsSpace) -> None:
    """DARTS derives genotypes with `concat=range(2, 6)`; that repr must read as the list form."""
    ranged = DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 6)").replace(
        "reduce_concat=[2, 3, 4, 5]", "reduce_concat = range(2,6)"
    )
    spaced = "  " + DARTS_V2.replace(", ", " ,  ").replace("Genotype(", "Genotype(\n") + "\n"
    assert small.from_string(ranged) == small.from_string(spaced) == small.from_string(DARTS_V2)


def test_swapping_a_nodes_two_edges_names_the_same_arch_and_string(small: DartsSpace) -> None:
    rng = np.random.default_rng(0)
    for _ in range(10):
        arch = small.sample(rng)
        geno = small.genotype(arch)
        for cell in CELLS:
            k = int(rng.integers(len(NODES)))
            geno[cell][2 * k], geno[cell][2 * k + 1] = geno[cell][2 * k + 1], geno[cell][2 * k]
        swapped = small.from_string(genotype(geno["normal"], geno["reduce"]))
        assert swapped == arch and small.to_string(swapped) == small.to_string(arch)


def test_from_string_never_evaluates_code(small: DartsSpace) -> None:
    hostile = DARTS_V2.replace("[('sep_conv_3x3', 0),", "[__import__('os').getcwd(),", 1)
    with pytest.raises(InvalidArchError, match="is not a list literal"):
        small.from_string(hostile)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("certainly not a genotype", "malformed DARTS genotype"),
        ("Genotype(normal=[], normal_concat=[2, 3, 4, 5])", "expected the fields normal, normal_concat, reduce, reduce_concat"),
        (DARTS_V2.replace("normal_concat", "normal_cat"), "expected the fields"),
        (DARTS_V2[:-1], "malformed DARTS genotype"),
        (
            DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1),", "('sep_conv_3x3', 0), ('sep_conv_3x3' 1),", 1),
            "is not a list literal",
        ),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 2.0)"), "is not an (op name, input index) pair"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', True)"), "is not an (op name, input index) pair"),
        (DARTS_V2.replace("normal=[", "normal=7, x=[", 1), "expected the fields"),
        (DARTS_V2.replace("dil_conv_3x3", "conv_7x7"), "unknown op 'conv_7x7' in the normal cell"),
        (DARTS_V2.replace("('dil_conv_3x3', 2)", "('dil_conv_3x3', 5)"), "node 5 of the normal cell reads input 5; node 5 may read 0..4"),
        (
            DARTS_V2.replace("('max_pool_3x3', 0), ('max_pool_3x3', 1)", "('max_pool_3x3', 0), ('max_pool_3x3', 2)", 1),
            "node 2 of the reduce cell reads input 2",
        ),
        (
            DARTS_V2.replace(
                "('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1)",
                "('sep_conv_3x3', 1), ('sep_conv_3x3', 1), ('sep_conv_3x3', 1)",
            ),
            "node 3 of the normal cell has two equal inputs (1, 1)",
        ),
        (
            DARTS_V2.replace("('sep_conv_3x3', 0), ('sep_conv_3x3', 1), ", "", 1),
            "the normal cell lists 6 (op, input) pairs; a DARTS cell has 8",
        ),
        (
            DARTS_V2.replace("reduce_concat=[2, 3, 4, 5]", "reduce_concat=[4, 5]"),
            "reduce_concat=[4, 5]: this space concatenates every intermediate node",
        ),
        (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=range(2, 5)"), "normal_concat=[2, 3, 4]"),
        (DARTS_V2.replace("normal_concat=[2, 3, 4, 5]", "normal_concat=['a']"), "must be a list of node indices"),
    ],
)
def test_a_bad_genotype_is_a_one_line_invalid_arch_error(small: DartsSpace, text: str, message: str) -> None:
    with pytest.raises(InvalidArchError) as info:
        small.from_string(text)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_the_two_equal_inputs_error_says_exactly_which_node(small: DartsSpace) -> None:
    normal = [("sep_conv_3x3", 0), ("sep_conv_3x3", 1)] + [("skip_connect", 1), ("sep_conv_3x3", 1)] + [("none", 0), ("none", 1)] * 2
    reduce = [("max_pool_3x3", 0), ("max_pool_3x3", 1)] * 4
    with pytest.raises(InvalidArchError, match=r"^node 3 of the normal cell has two equal inputs \(1, 1\)"):
        small.from_string(genotype(normal, reduce))


# --- identity and moves ------------------------------------------------------------------------------
def test_canonical_frees_the_input_of_none_edges_and_keeps_the_network(small: DartsSpace) -> None:
    base = small.from_string(DARTS_V2)
    cases = [  # (node edges as written, node edges canonical)
        ([(2, "none"), (3, "sep_conv_3x3")], [(0, "none"), (3, "sep_conv_3x3")]),
        ([(0, "sep_conv_3x3"), (3, "none")], [(0, "sep_conv_3x3"), (1, "none")]),
        ([(1, "max_pool_3x3"), (2, "none")], [(0, "none"), (1, "max_pool_3x3")]),
        ([(2, "none"), (3, "none")], [(0, "none"), (1, "none")]),
        ([(2, "skip_connect"), (3, "dil_conv_5x5")], [(2, "skip_connect"), (3, "dil_conv_5x5")]),
    ]
    for written, canonical in cases:
        arch = with_node(small, base, "normal", 4, written)
        canon = small.canonical(arch)
        assert canon == with_node(small, base, "normal", 4, canonical)
        assert small.layers(canon) == small.layers(arch)
        assert n_params(small.build(canon, DIGITS)) == n_params(small.build(arch, DIGITS))


def test_sample_mutate_neighbours_and_crossover_give_valid_canonical_archs(small: DartsSpace) -> None:
    rng = np.random.default_rng(3)
    for _ in range(40):
        a, b = small.sample(rng), small.sample(rng)
        assert small.is_valid(a) and small.canonical(a) == a
        for n in (1, 2, 3):
            child = small.mutate(a, rng, n_changes=n)
            assert small.is_valid(child) and small.canonical(child) == child and child != a
        mixed = small.crossover(a, b, rng)
        assert small.is_valid(mixed) and small.canonical(mixed) == mixed
        for cell, node in itertools.product(CELLS, NODES):  # nodes travel whole: inputs with their ops
            keys = [f"{cell}_{node}_{s}" for s in ("inputs", "op0", "op1")]
            assert [mixed[k] for k in keys] in ([a[k] for k in keys], [b[k] for k in keys])
    neighbours = small.neighbours(a)
    assert len(set(neighbours)) == len(neighbours) and a not in neighbours
    assert all(small.canonical(x) == x for x in neighbours)


def test_one_mutation_changes_one_edge_op_or_one_live_edge_input(small: DartsSpace) -> None:
    rng = np.random.default_rng(5)
    for _ in range(50):
        a = small.sample(rng)
        child = small.mutate(a, rng)
        before = {
            cell: {(n, src, op) for n, edges in zip(NODES, small.cell_edges(a, cell)) for src, op in edges if op != "none"}
            for cell in CELLS
        }
        after = {
            cell: {(n, src, op) for n, edges in zip(NODES, small.cell_edges(child, cell)) for src, op in edges if op != "none"}
            for cell in CELLS
        }
        changed = [
            (cell, n) for cell in CELLS for n, x, y in zip(NODES, small.cell_edges(a, cell), small.cell_edges(child, cell)) if x != y
        ]
        assert len(changed) == 1  # one node of one cell
        lost = before[changed[0][0]] - after[changed[0][0]]
        gained = after[changed[0][0]] - before[changed[0][0]]
        assert len(lost) <= 1 and len(gained) <= 1 and (lost or gained)


def test_size_counts_the_canonical_cells_exactly() -> None:
    """Per node, count by brute force the distinct canonical (inputs, op0, op1) choices; cells multiply."""
    space = DartsSpace()
    per_cell = 1
    for node in NODES:
        pairs = [(i, j) for i in range(node) for j in range(i + 1, node)]
        found = {tuple(sorted(space._canonical_edges([(i, a), (j, b)]))) for (i, j), a, b in itertools.product(pairs, OPS, OPS)}
        assert len(found) == math.comb(node, 2) * 49 + 7 * node + 1
        per_cell *= len(found)
    assert space.size == per_cell**2 == (64 * 169 * 323 * 526) ** 2 == 3_376_835_386_034_765_824
    assert not space.can_list()
    without_none = DartsSpace(ops=[op for op in OPS if op != "none"])
    assert without_none.size == (math.prod(math.comb(n, 2) for n in NODES) * 7**8) ** 2


def test_every_combination_of_choices_is_a_valid_cell(small: DartsSpace) -> None:
    """Why inputs are one unordered pair: samplers that draw decisions independently stay in the space."""
    rng = np.random.default_rng(2)
    sizes = [len(d.choices) for d in small.decisions]
    rows = np.stack([rng.integers(s, size=200) for s in sizes], axis=1)
    for arch in small.from_index_matrix(rows):
        assert small.is_valid(arch)
        assert small.from_string(small.to_string(arch)) == arch


# --- encodings and graph -----------------------------------------------------------------------------
def test_adjacency_encoding_has_one_node_per_edge_slot_between_input_and_output(small: DartsSpace) -> None:
    archs = [small.from_string(DARTS_V2), *[small.sample(np.random.default_rng(i)) for i in range(5)]]
    adj, labels = small.adjacency(archs)
    n_nodes = len(small.edges) + 2  # what the GIN predictor assumes of a space with `edges`
    assert adj.shape == (6, n_nodes, n_nodes) and labels.shape == (6, n_nodes, len(small.ops) + 5)
    assert np.array_equal(adj, np.triu(adj, k=1))
    X = small.encode(archs, "adjacency")
    assert X.shape == (6, n_nodes * (n_nodes - 1) // 2 + n_nodes * (len(small.ops) + 5))
    # DARTS_V2: the reduction cell's 5 max pools + 3 skips all feed the output; normal node 5's
    # dil_conv (reading node 2) is fed by node 2's two sep_convs
    slot = {e: k + 1 for k, e in enumerate(small.edges)}
    assert adj[0, :, -1].sum() == 8
    assert adj[0, slot[("normal", 2, 0)], slot[("normal", 5, 1)]] == adj[0, slot[("normal", 2, 1)], slot[("normal", 5, 1)]] == 1
    assert adj[0, 0, slot[("normal", 5, 1)]] == 0 and adj[0, 0, slot[("normal", 5, 0)]] == 1


def test_graph_holds_the_live_edges_of_both_cells_between_input_and_output(small: DartsSpace) -> None:
    arch = small.from_string(DARTS_V2)
    g = small.graph(arch)
    assert nx.is_directed_acyclic_graph(g) and nx.has_path(g, "input", "output")
    assert len(g) == 16 + 2 and g.nodes["normal_2_5"] == {"op": "dil_conv_3x3", "cell": "normal", "edge": (2, 5)}
    assert set(g.predecessors("normal_2_5")) == {"normal_0_2", "normal_1_2"}
    assert set(g.predecessors("reduce_0_2")) == {n for n in g if n.startswith("normal_")}
    sparse = with_node(small, arch, "normal", 3, [(0, "none"), (1, "none")])
    h = small.graph(sparse)
    assert len(h) == 16 and "normal_0_3" not in h


# --- the network -------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [DIGITS, CIFAR10], ids=["digits", "cifar10"])
def test_build_maps_images_to_logits_for_digits_and_cifar10(small: DartsSpace, spec: InputSpec) -> None:
    torch.manual_seed(0)
    for arch in (small.from_string(DARTS_V2), small.sample(np.random.default_rng(1))):
        module = small.build(arch, spec).eval()
        with torch.no_grad():
            out = module(torch.randn(3, spec.channels, spec.height, spec.width))
        assert out.shape == (3, spec.classes) and torch.isfinite(out).all()


def test_reduction_cells_halve_the_resolution_and_double_the_channels(small: DartsSpace) -> None:
    assert reduction_cells(20) == (6, 13) and reduction_cells(5) == (1, 3)
    module = small.build(small.from_string(DARTS_V2), DIGITS).eval()
    shapes: list[tuple[int, ...]] = []
    hooks = [cell.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape))) for cell in module.cells]
    with torch.no_grad():
        module(torch.randn(1, 1, 8, 8))
    for h in hooks:
        h.remove()
    c = small.channels
    assert shapes == [(1, 4 * c, 8, 8), (1, 8 * c, 4, 4), (1, 8 * c, 4, 4), (1, 16 * c, 2, 2), (1, 16 * c, 2, 2)]


def test_a_node_fed_only_by_none_edges_is_zeros_and_the_network_still_runs(small: DartsSpace) -> None:
    arch = small.from_string(DARTS_V2)
    arch = with_node(small, arch, "normal", 3, [(0, "none"), (1, "none")])
    arch = with_node(small, arch, "normal", 4, [(1, "skip_connect"), (3, "sep_conv_3x3")])  # reads the zero node
    arch = with_node(small, arch, "reduce", 2, [(0, "none"), (1, "none")])  # zeros at the reduced size
    module = small.build(arch, DIGITS).eval()
    outputs: dict[int, torch.Tensor] = {}
    hooks = [cell.register_forward_hook(lambda _m, _i, out, k=k: outputs.__setitem__(k, out)) for k, cell in enumerate(module.cells)]
    with torch.no_grad():
        logits = module(torch.randn(2, 1, 8, 8))
    for h in hooks:
        h.remove()
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()
    c = small.channels
    assert torch.count_nonzero(outputs[0][:, c : 2 * c]) == 0  # normal node 3, the cell's second chunk
    assert outputs[1].shape[-1] == 4 and torch.count_nonzero(outputs[1][:, : 2 * c]) == 0  # reduce node 2
    assert sum(layer_params(sig) for sig in small.layers(arch, input_spec=DIGITS)) == n_params(module)


def test_the_darts_v2_network_has_the_papers_3_3_million_parameters() -> None:
    space = get_space("darts")
    module = space.build(space.from_string(DARTS_V2), CIFAR10)
    assert round(n_params(module) / 1e6, 1) == 3.3  # DARTS (2nd order): 3.3M, auxiliary head excluded
    assert sum(layer_params(sig) for sig in space.layers(space.from_string(DARTS_V2), input_spec=CIFAR10)) == n_params(module)


def test_the_small_network_exports_with_torch_export(small: DartsSpace) -> None:
    arch = with_node(small, small.from_string(DARTS_V2), "reduce", 3, [(0, "none"), (1, "none")])
    module = small.build(arch, DIGITS).eval()
    x = torch.randn(2, 1, 8, 8)
    program = torch.export.export(module, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), module(x))


# --- operators ---------------------------------------------------------------------------------------
def executed_signatures(net: nn.Module, spec: InputSpec) -> list[LayerSignature]:
    """The operator modules `net` runs on one image, read from forward hooks (adds are not modules)."""
    seen: list[LayerSignature] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        shape = tuple(inputs[0].shape)
        if isinstance(module, nn.Conv2d):
            fields = {
                "out_channels": module.out_channels,
                "kernel": module.kernel_size[0],
                "stride": module.stride[0],
                "groups": module.groups,
            }
            if module.dilation[0] > 1:
                seen.append(LayerSignature("conv", shape, **fields, dilation=module.dilation[0]))
            else:
                seen.append(LayerSignature("conv", shape, **fields))
        elif isinstance(module, nn.Linear):
            seen.append(LayerSignature("linear", shape, module.out_features, bias=True))
        elif isinstance(module, nn.AvgPool2d | nn.MaxPool2d):
            op = "avgpool" if isinstance(module, nn.AvgPool2d) else "maxpool"
            seen.append(LayerSignature(op, shape, shape[1], module.kernel_size, module.stride))
        else:
            op = {nn.BatchNorm2d: "bn", nn.ReLU: "relu", nn.AdaptiveAvgPool2d: "global_avgpool"}[type(module)]
            seen.append(LayerSignature(op, shape, shape[1]))

    kinds = (nn.Conv2d, nn.Linear, nn.AvgPool2d, nn.MaxPool2d, nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d)
    handles = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        net.eval()(torch.randn(1, spec.channels, spec.height, spec.width))
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("spec", [DIGITS, CIFAR10, InputSpec(3, 7, 9, 5)], ids=["digits", "cifar10", "odd-7x9"])
def test_layers_are_the_operators_forward_executes_in_order_and_count_its_parameters(small: DartsSpace, spec: InputSpec) -> None:
    rng = np.random.default_rng(11)
    archs = [small.from_string(DARTS_V2), *[small.sample(rng) for _ in range(6)]]
    archs.append(with_node(small, archs[1], "normal", 2, [(0, "none"), (1, "none")]))
    for arch in archs:
        module = small.build(arch, spec)
        listed = small.layers(arch, input_spec=spec)
        assert [sig for sig in listed if sig.op != "add"] == executed_signatures(module, spec), small.to_string(arch)
        assert sum(layer_params(sig) for sig in listed) == n_params(module)
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == sum(sig.op == "conv" for sig in listed)
        # one add per node with two live edges, in every cell of its type
        assert sum(sig.op == "add" for sig in listed) == sum(_cells_of(small, cell) * _two_live(arch, cell) for cell in CELLS)


def _two_live(arch: Arch, cell: str) -> int:
    """Nodes of `cell` whose two edges are both live."""
    return sum(arch[f"{cell}_{n}_op0"] != "none" and arch[f"{cell}_{n}_op1"] != "none" for n in NODES)


def _cells_of(space: DartsSpace, cell: str) -> int:
    reductions = len(reduction_cells(space.n_layers))
    return reductions if cell == "reduce" else space.n_layers - reductions


#: A cell whose live edges never read c_{k-2} (input 0): its preprocess0 is dead code.
NO_C0_READ = [
    ("sep_conv_3x3", 1),
    ("none", 0),
    ("max_pool_3x3", 1),
    ("sep_conv_3x3", 2),
    ("skip_connect", 1),
    ("dil_conv_5x5", 3),
    ("avg_pool_3x3", 2),
    ("skip_connect", 4),
]


def test_live_only_drops_the_preprocessing_of_inputs_no_live_edge_reads(small: DartsSpace) -> None:
    """No edge reads c_{k-2}: every cell's preprocess0 is dead (a 1x1 conv, or FactorizedReduce's two
    after a reduction), and nothing else is (every cell output feeds the next cell's preprocess1)."""
    normal = NO_C0_READ
    reduce = [
        ("avg_pool_3x3", 1),
        ("none", 0),
        ("sep_conv_5x5", 1),
        ("skip_connect", 2),
        ("max_pool_3x3", 1),
        ("none", 0),
        ("skip_connect", 1),
        ("none", 0),
    ]
    arch = small.from_string(genotype(normal, reduce))
    full = Counter(sig.op for sig in small.layers(arch))
    live = Counter(sig.op for sig in small.layers(arch, live_only=True))
    after_reduction = len([i for i in reduction_cells(small.n_layers) if i + 1 < small.n_layers])
    dead_convs = small.n_layers + after_reduction
    assert full - live == Counter({"conv": dead_convs, "bn": small.n_layers, "relu": small.n_layers})
    assert small.layers(small.from_string(DARTS_V2), live_only=True) == small.layers(small.from_string(DARTS_V2))


def test_fold_constants_drops_what_reads_only_zeros_and_keeps_its_add_as_a_constant(small: DartsSpace) -> None:
    arch = with_node(small, small.from_string(DARTS_V2), "normal", 3, [(0, "none"), (1, "none")])
    arch = with_node(small, arch, "normal", 4, [(1, "avg_pool_3x3"), (3, "sep_conv_3x3")])  # a sep_conv on zeros
    full = small.layers(arch)
    folded = small.layers(arch, fold_constants=True)
    normal_cells = _cells_of(small, "normal")
    removed = Counter(sig.op for sig in full) - Counter(sig.op for sig in folded)
    assert removed == Counter({"relu": 2 * normal_cells, "conv": 4 * normal_cells, "bn": 2 * normal_cells})
    assert sum(sig.op == "add" and sig.bias for sig in folded) == normal_cells  # avg_pool(x) + constant
    assert not any(sig.bias for sig in full if sig.op == "add")


def test_merge_identical_lists_once_what_several_consumers_compute_from_one_tensor(small: DartsSpace) -> None:
    """DARTS_V2 on darts_small: per normal cell, ReLU(c_{k-2}) starts 2 sep_convs and ReLU(c_{k-1}) 3;
    per reduction cell, max_pool(c_{k-2}) runs twice and max_pool(c_{k-1}) three times, and nodes 3 and
    5 add the same two tensors; the stem's ReLU starts the preprocessing of cell 0 (twice) and cell 1's
    of c_{k-2}, and the ReLU of each other cell output the preprocessing of the next two cells."""
    arch = small.from_string(DARTS_V2)
    merged = Counter(sig.op for sig in small.layers(arch, merge_identical=True))
    full = Counter(sig.op for sig in small.layers(arch))
    normal, reduce = _cells_of(small, "normal"), _cells_of(small, "reduce")
    shared_outputs = small.n_layers - 2  # cells whose output two later cells preprocess
    assert full - merged == Counter({"relu": 3 * normal + 2 + shared_outputs, "maxpool": 3 * reduce, "add": reduce})


def _onnxruntime_graph(module: nn.Module, x: torch.Tensor) -> Any:
    """The graph ONNX Runtime runs for `module` (ORT_ENABLE_ALL, as its measurement backend sets it)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from nas.cost.measure._onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend().optimised_graph(module, (x,))


def test_onnxruntime_runs_exactly_the_convs_and_pools_its_layer_options_list(small: DartsSpace) -> None:
    """Dead preprocessing, operators on all-zero nodes and repeated pools are what ORT removes; the
    layer options must list what it keeps. ORT fuses ReLUs and adds into convs (calibration prices
    that), and turns the BatchNorm after FactorizedReduce's concat into a 1x1 depthwise conv, not listed."""
    from nas.cost.measure import backends

    options = backends.get("onnxruntime").layer_options
    zero = [
        ("none", 0),
        ("none", 1),
        ("avg_pool_3x3", 1),
        ("sep_conv_3x3", 2),
        ("dil_conv_3x3", 2),
        ("max_pool_3x3", 3),
        ("sep_conv_5x5", 2),
        ("skip_connect", 4),
    ]
    v2 = small.genotype(small.from_string(DARTS_V2))
    archs = [small.from_string(DARTS_V2), small.from_string(genotype(zero, NO_C0_READ)), small.from_string(genotype(NO_C0_READ, v2["reduce"]))]
    archs += [small.sample(np.random.default_rng(i)) for i in range(3)]
    for arch in archs:
        graph = _onnxruntime_graph(small.build(arch, DIGITS).eval(), torch.randn(1, 1, 8, 8))
        weights = {init.name: list(init.dims) for init in graph.initializer}
        groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in graph.node}
        batchnorm_as_conv = [
            n for n in graph.node if n.op_type == "Conv" and groups[n.name] > 1 and weights.get(n.input[1], [])[1:] == [1, 1, 1]
        ]
        ran = Counter(n.op_type for n in graph.node)
        listed = Counter(sig.op for sig in small.layers(arch, input_spec=DIGITS, **options))
        assert ran["Conv"] - len(batchnorm_as_conv) == listed["conv"], small.to_string(arch)
        assert (ran["MaxPool"], ran["AveragePool"]) == (listed["maxpool"], listed["avgpool"]), small.to_string(arch)


def test_module_for_signature_builds_every_distinct_operator_of_sampled_archs(small: DartsSpace) -> None:
    """What `nas lut build --space darts_small` measures: each signature rebuilt alone, shapes as listed."""
    rng = np.random.default_rng(4)
    archs = [small.from_string(DARTS_V2), *[small.sample(rng) for _ in range(6)]]
    signatures: set[LayerSignature] = set()
    for options in ({}, {"live_only": True}, {"live_only": True, "fold_constants": True, "merge_identical": True}):
        for arch in archs:
            signatures.update(small.layers(arch, **options))
    assert {sig.op for sig in signatures} <= set(KNOWN_OPS) and {"maxpool", "avgpool", "conv", "add"} <= {sig.op for sig in signatures}
    assert any(sig.op == "conv" and sig.dilation == 2 for sig in signatures)
    for sig in signatures:
        module, inputs = module_for_signature(sig)
        with torch.no_grad():
            out = module(*inputs)
        expected = sig.out_channels if sig.op != "global_avgpool" else sig.in_shape[1]
        assert out.shape[1] == expected, sig.key()
        if len(sig.in_shape) == 4 and sig.op != "global_avgpool":
            assert out.shape[2] == math.ceil(sig.in_shape[2] / sig.stride), sig.key()


def test_measured_pools_and_dilated_convs_compute_what_the_network_computes() -> None:
    x = torch.randn(1, 6, 7, 7)
    for stride in (1, 2):
        pool, _ = module_for_signature(LayerSignature("maxpool", (1, 6, 7, 7), out_channels=6, kernel=3, stride=stride))
        torch.testing.assert_close(pool(x), edge_module("max_pool_3x3", 6, stride)(x))
        avg, _ = module_for_signature(LayerSignature("avgpool", (1, 6, 7, 7), out_channels=6, kernel=3, stride=stride))
        torch.testing.assert_close(avg(x), edge_module("avg_pool_3x3", 6, stride)(x))
        for kernel in (3, 5):
            ours = DilConv(6, kernel, stride)[1]
            sig = LayerSignature("conv", (1, 6, 7, 7), out_channels=6, kernel=kernel, stride=stride, groups=6, dilation=2)
            conv, _ = module_for_signature(sig)
            conv.load_state_dict(ours.state_dict())
            torch.testing.assert_close(conv(x), ours(x))
            assert sig.key().endswith(":d=2") and sig.key() != LayerSignature("conv", sig.in_shape, 6, kernel, stride, 6).key()


# --- registration ------------------------------------------------------------------------------------
def test_darts_and_darts_small_are_registered_with_their_yaml_settings() -> None:
    assert {"darts", "darts_small"} <= set(space_names())
    paper, small = get_space("darts"), get_space("darts_small")
    assert isinstance(paper, DartsSpace) and isinstance(small, DartsSpace)
    assert (paper.channels, paper.n_layers, paper.stem_multiplier, paper.input_spec()) == (36, 20, 3, CIFAR10)
    assert (small.channels, small.n_layers, small.input_spec()) == (8, 5, DIGITS)
    assert paper.ops == small.ops == OPS


def test_a_yaml_with_an_unknown_key_or_op_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        DartsSpace.from_config({"name": "x", "family": "darts", "cells": 3})
    with pytest.raises(ValueError, match="unknown"):
        DartsSpace.from_config({"name": "x", "family": "darts", "ops": ["none", "conv_7x7"]})
    with pytest.raises(ValueError, match="channels >= 2"):
        DartsSpace.from_config({"name": "x", "family": "darts", "channels": 1})


def test_cells_check_their_node_count() -> None:
    with pytest.raises(ValueError, match="4 intermediate nodes"):
        Cell([((0, "skip_connect"), (1, "none"))], 4, 4, 4, reduction=False, reduction_prev=False)
