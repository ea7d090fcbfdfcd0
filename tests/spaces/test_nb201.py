from __future__ import annotations

import numpy as np
import pytest

from nas.spaces import InvalidArchError, get_space
from nas.spaces.base import Arch
from nas.spaces.nb201 import NB201Space

OFFICIAL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"


@pytest.fixture(scope="module")
def space() -> NB201Space:
    s = get_space("nb201")
    assert isinstance(s, NB201Space)
    return s


def test_official_string_round_trips(space):
    arch = space.from_string(OFFICIAL)
    assert space.to_string(arch) == OFFICIAL
    assert arch["edge_0_1"] == "nor_conv_3x3" and arch["edge_2_3"] == "avg_pool_3x3"


def test_every_arch_round_trips_and_enumeration_is_unique(space):
    archs = space.enumerate()
    assert len(archs) == space.size == 15625
    strings = [space.to_string(a) for a in archs]
    assert len(set(strings)) == 15625
    assert all(space.from_string(s) == a for s, a in zip(strings[::97], archs[::97]))


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "|nor_conv_3x3~0|",
        "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|",
        "|nor_conv_3x3~1|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
        "|conv_7x7~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|avg_pool_3x3~2|",
        "nor_conv_3x3~0+none~0|skip_connect~1+skip_connect~0|none~1|avg_pool_3x3~2",
    ],
)
def test_malformed_strings_raise_one_line_errors(space, bad):
    with pytest.raises(InvalidArchError) as info:
        space.from_string(bad)
    assert "\n" not in str(info.value) and "NB201" in str(info.value)


def test_arch_equality_and_hash_ignore_construction_order():
    a = Arch({"x": 1, "y": 2})
    b = Arch({"y": 2, "x": 1})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1


def test_mutate_changes_exactly_the_requested_number_of_decisions(space):
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = space.sample(rng)
        for n in (1, 2, 3):
            b = space.mutate(a, rng, n_changes=n)
            assert sum(a[k] != b[k] for k in a) == n


def test_neighbours_are_all_single_edit_archs(space):
    a = space.from_string(OFFICIAL)
    nbrs = space.neighbours(a)
    assert len(nbrs) == 6 * 4 == len(set(nbrs))
    assert all(sum(a[k] != b[k] for k in a) == 1 for b in nbrs)


def test_integer_and_onehot_encodings_are_consistent(space):
    archs = space.enumerate()[:500]
    idx = space.encode(archs, "integer")
    onehot = space.encode(archs, "onehot")
    assert idx.shape == (500, 6) and onehot.shape == (500, 30)
    assert np.all(onehot.sum(axis=1) == 6)
    assert np.array_equal(onehot.reshape(500, 6, 5).argmax(axis=2), idx)
    assert space.from_index_matrix(idx) == archs
    assert np.array_equal(space.encode(archs[3], "onehot"), onehot[3])


def test_path_encoding_counts_live_routes(space):
    none = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    full = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    only_direct = space.from_string("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")
    enc = space.encode([none, full, only_direct], "path")
    assert enc.shape == (3, 4 + 16 + 16 + 64)
    assert enc[0].sum() == 0
    assert enc[1].sum() == 4  # four routes 0->3, 0->1->3, 0->2->3, 0->1->2->3, each one op sequence
    assert enc[2].sum() == 1


def test_path_encoding_distinguishes_op_order_along_a_route(space):
    a = space.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_1x1~2|")
    b = space.from_string("|nor_conv_1x1~0|+|none~0|skip_connect~1|+|none~0|none~1|nor_conv_3x3~2|")
    ea, eb = space.encode([a, b], "path")
    assert ea.sum() == eb.sum() == 1 and not np.array_equal(ea, eb)


def test_adjacency_encoding_disconnects_none_edges(space):
    a = space.from_string("|none~0|+|skip_connect~0|none~1|+|nor_conv_3x3~0|none~1|none~2|")
    adj, ops = space.adjacency([a])
    assert adj.shape == (1, 8, 8) and ops.shape == (1, 8, 7)
    # node 1 is edge 0->1 (none): no edges in or out
    assert adj[0, 1].sum() == 0 and adj[0, :, 1].sum() == 0
    # edge 0->3 (node 4) is wired input -> node -> output
    assert adj[0, 0, 4] == 1 and adj[0, 4, 7] == 1
    assert np.all(ops.sum(axis=2) == 1)
    flat = space.encode([a], "adjacency")
    assert flat.shape == (1, 28 + 56)


def test_unknown_encoding_names_the_valid_ones(space):
    with pytest.raises(ValueError, match="adjacency"):
        space.encode(space.enumerate()[:1], "graphviz")


def test_yaml_variant_defines_a_smaller_space(tmp_path):
    path = tmp_path / "nb201_small.yaml"
    path.write_text("family: nb201\nops: [none, skip_connect, nor_conv_3x3]\nchannels: 8\ncells_per_stage: 1\n")
    small = get_space(str(path))
    assert small.name == "nb201_small" and small.size == 3**6
    arch = small.sample(np.random.default_rng(1))
    assert small.from_string(small.to_string(arch)) == arch


def test_unknown_space_lists_known_ones():
    with pytest.raises(KeyError, match="nb201"):
        get_space("nb999")
