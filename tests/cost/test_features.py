from __future__ import annotations

import numpy as np
import pytest

from nas.cost.features import TermError, signature_counts, term_matrix, topology_terms
from nas.spaces import get_space

NB201 = get_space("nb201")
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_SKIP = "|skip_connect~0|+|skip_connect~0|skip_connect~1|+|skip_connect~0|skip_connect~1|skip_connect~2|"
# Every route from input to output crosses a `none` edge: convs run, but the cell output is zeros.
DEAD_END = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|nor_conv_3x3~2|"
ONE_ROUTE = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|none~0|none~1|avg_pool_3x3~2|"


def archs(*texts: str):
    return [NB201.from_string(t) for t in texts]


def test_signature_counts_hold_every_layer_once_per_occurrence():
    batch = archs(ALL_NONE, ALL_SKIP, ONE_ROUTE) + NB201.enumerate()[:20]
    counts, sigs = signature_counts(NB201, batch)
    assert counts.shape == (len(batch), len(sigs))
    assert len({s.key() for s in sigs}) == len(sigs)
    for i, arch in enumerate(batch):
        layers = NB201.layers(arch)
        assert counts[i].sum() == len(layers)
        for j, sig in enumerate(sigs):
            assert counts[i, j] == sum(layer == sig for layer in layers)


def test_live_paths_and_disconnected_follow_the_cell_graph():
    values = term_matrix(NB201, archs(ALL_NONE, ALL_SKIP, DEAD_END, ONE_ROUTE), ["term:live_paths", "term:disconnected"])
    assert values.tolist() == [[0, 1], [4, 0], [0, 1], [1, 0]]


def test_choice_terms_see_edges_that_emit_no_layer():
    # `none` and `skip_connect` emit no operator, so the layer lists of these two cells are equal...
    a, b = archs(
        "|none~0|+|skip_connect~0|none~1|+|none~0|none~1|skip_connect~2|",
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|",
    )
    assert NB201.layers(a) == NB201.layers(b)
    # ...but the terms tell them apart.
    keys = ["term:choice:edge_0_1=none", "term:choice:edge_0_2=skip_connect", "term:choices:none", "term:choices:skip_connect"]
    keys.append("term:live_paths")
    assert term_matrix(NB201, [a, b], keys).tolist() == [[1, 1, 4, 2, 1], [0, 0, 4, 2, 0]]


@pytest.mark.parametrize(
    "key, message",
    [
        ("term:bogus", "unknown LUT term 'term:bogus'; known kinds: choice, choices, disconnected, live_paths, path"),
        ("term:choice:edge_9_9=none", "has no decision 'edge_9_9'"),
        ("term:choice:edge_0_1=conv", "has no choice 'conv'"),
        ("term:choices:conv", "no decision of space 'nb201' offers choice 'conv'"),
        ("term:path:100", "needs a column index in 0..99"),
        ("term:live_paths:3", "takes no argument"),
    ],
)
def test_bad_term_keys_raise_one_line_errors(key, message):
    with pytest.raises(TermError) as info:
        term_matrix(NB201, archs(ALL_SKIP), [key])
    assert message in str(info.value) and "\n" not in str(info.value)


def test_path_terms_need_a_space_with_a_path_encoding():
    fbnet = get_space("fbnet")
    arch = fbnet.sample(np.random.default_rng(0))
    with pytest.raises(TermError, match="has no 'path' encoding"):
        term_matrix(fbnet, [arch], ["term:live_paths"])
    assert not any(k.startswith(("term:path", "term:live")) for k in topology_terms(fbnet, full=True))


def test_topology_term_sets_small_for_few_shots_full_for_distillation():
    small, full = topology_terms(NB201), topology_terms(NB201, full=True)
    assert small == ["term:live_paths", "term:disconnected", *(f"term:choices:{op}" for op in NB201.ops)]
    assert set(small) < set(full) and len(full) == len(small) + 100 + 6 * 5
    assert term_matrix(NB201, NB201.enumerate()[:30], full).shape == (30, len(full))


def test_whole_space_counts_are_reused_across_luts_but_not_across_redefined_spaces(tmp_path):
    import yaml

    from nas.spaces import spaces_dir

    everything = NB201.enumerate()
    first = signature_counts(NB201, everything)
    assert signature_counts(get_space("nb201"), NB201.enumerate()) is first  # a fresh instance of the same space
    definition = yaml.safe_load((spaces_dir() / "nb201.yaml").read_text())
    definition["channels"] = 2 * definition["channels"]
    (tmp_path / "nb201.yaml").write_text(yaml.safe_dump(definition))
    wider = get_space(str(tmp_path / "nb201.yaml"))
    counts, sigs = signature_counts(wider, wider.enumerate())
    assert sigs != first[1] and counts.shape[0] == len(everything)
