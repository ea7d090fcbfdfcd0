"""The contract every registered search space keeps (one suite, run over each `search_spaces/*.yaml`)."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from nas.spaces import get_space, space_names
from nas.spaces.base import LIST_LIMIT, Arch, InputSpec, InvalidArchError, SearchSpace, SpaceTooLargeError

SPACES = space_names()


@pytest.fixture(params=SPACES)
def space(request):
    return get_space(request.param)


def samples(space, n=12, seed=0):
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def test_every_registered_space_is_in_the_suite():
    assert {"nb201", "fbnet", "ofa_mbv3", "ofa_mbv3_small"} <= set(SPACES)


def test_decisions_have_unique_names_and_choices(space):
    names = [d.name for d in space.decisions]
    assert names and len(set(names)) == len(names)
    assert all(len(d.choices) >= 1 and len(set(d.choices)) == len(d.choices) for d in space.decisions)


def test_samples_are_valid_and_strings_round_trip(space):
    for arch in samples(space):
        assert space.is_valid(arch)
        assert space.from_string(space.to_string(arch)) == arch
        assert all(arch[d.name] in d.choices for d in space.decisions)


def test_is_valid_and_validate_refuse_a_foreign_choice_or_a_missing_decision_in_one_line(space):
    arch = samples(space, 1)[0]
    first = space.decisions[0].name
    wrong = {**dict(arch), first: "no-such-choice"}
    missing = {k: v for k, v in arch.items() if k != first}
    for bad in (wrong, missing):
        assert not space.is_valid(bad)
        with pytest.raises(InvalidArchError) as info:
            space.validate(bad)
        assert "\n" not in str(info.value)
    with pytest.raises(InvalidArchError):
        space.from_string("certainly not an architecture")


def test_canonical_is_valid_idempotent_and_keeps_what_runs(space):
    for arch in samples(space, 30, seed=3):
        canon = space.canonical(arch)
        assert space.is_valid(canon) and space.canonical(canon) == canon
        assert space.layers(canon, live_only=True) == space.layers(arch, live_only=True)


def test_mutate_neighbours_and_crossover_stay_in_the_space(space):
    """Mutation changes `n` decisions (a space with switched-off choices may reset those too, and then
    names the network canonically); neighbours are distinct networks one decision away."""
    rng = np.random.default_rng(1)
    own_moves = type(space).mutate is not SearchSpace.mutate
    for a, b in zip(samples(space, 10, seed=2), samples(space, 10, seed=3)):
        for n in (1, 2):
            child = space.mutate(a, rng, n_changes=n)
            changed = sum(child[k] != a[k] for k in a)
            assert space.is_valid(child) and (changed >= 1 if own_moves else changed == n)
            if own_moves:  # spaces that move between canonical archs never propose a second name of one network
                assert space.canonical(child) == child and child != a
        neighbours = space.neighbours(a)
        assert neighbours and len(set(neighbours)) == len(neighbours) and a not in neighbours
        if not own_moves:
            assert len(neighbours) == sum(len(d.choices) - 1 for d in space.decisions)
            assert all(sum(x[k] != a[k] for k in a) == 1 for x in neighbours[:50])
        mixed = space.crossover(a, b, rng)
        assert space.is_valid(mixed) and all(mixed[k] in (a[k], b[k], space.canonical(mixed)[k]) for k in a)


def test_every_encoding_is_a_deterministic_matrix_and_integer_round_trips(space):
    archs = samples(space, 8)
    for kind in space.encoding_kinds():
        X = space.encode(archs, kind)
        assert X.shape[0] == 8 and X.ndim == 2 and np.array_equal(X, space.encode(archs, kind))
        assert np.array_equal(space.encode(archs[0], kind), X[0])
    assert space.from_index_matrix(space.encode(archs, "integer")) == archs


def test_size_and_listing_follow_the_one_shared_limit(space):
    size = space.size
    assert size is None or size >= 1
    assert space.can_list() == (size is not None and size <= LIST_LIMIT)
    if space.can_list():
        archs = space.enumerate()
        assert len(archs) == size and len(set(archs)) == size
    else:
        with pytest.raises(SpaceTooLargeError) as info:
            space.enumerate()
        assert "sample it instead" in str(info.value) and "\n" not in str(info.value)


def test_graph_is_a_dag_from_input_to_output_with_an_op_on_every_node(space):
    for arch in samples(space, 20, seed=4):
        g = space.graph(arch)
        assert nx.is_directed_acyclic_graph(g)
        assert g.in_degree("input") == 0 and g.out_degree("output") == 0
        assert all("op" in g.nodes[n] for n in g)
    chain = space.graph(samples(space, 1, seed=6)[0])
    assert nx.has_path(chain, "input", "output") or space.name.startswith("nb201")


@pytest.mark.parametrize("spec", [InputSpec(1, 8, 8, 7), InputSpec(3, 16, 16, 12)])
def test_build_takes_channels_size_and_classes_from_the_input_spec(space, spec):
    arch = samples(space, 1, seed=5)[0]
    size = space.input_size(arch) or spec.height
    torch.manual_seed(0)
    module = space.build(arch, spec).eval()
    with torch.no_grad():
        out = module(torch.randn(2, spec.channels, size, size))
    assert out.shape == (2, spec.classes)
    first_conv = next(m for m in module.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == spec.channels
    layers = space.layers(arch, input_spec=spec)
    assert layers[0].in_shape == (1, spec.channels, size, size) and layers[-1].out_channels == spec.classes
    from nas.cost.counts import layer_params

    assert sum(layer_params(sig) for sig in layers) == sum(p.numel() for p in module.parameters())


def test_decision_lookup_is_by_name(space):
    arch = samples(space, 1)[0]
    assert isinstance(arch, Arch)
    assert [arch[d.name] for d in space.decisions] == list(arch.values())
    assert hash(arch) == hash(Arch(dict(reversed(list(arch.items())))))
