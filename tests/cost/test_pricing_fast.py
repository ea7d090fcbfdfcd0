"""The fast whole-space pricing path gives exactly what listing layers arch by arch gives.

Why: `signature_counts` counts spaces with `layer_parts` from per-choice counts kept per space, and LUT
prices, params and FLOPs are computed from it; a mistake in any space's parts would silently misprice
networks, so every registered space is compared with the per-arch path (`signature_counts_by_layers`,
`CountProvider._value`): NB201 over all 15,625 cells, the others on samples.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import scipy.sparse as sp

import nas.cost.lut as lut_module
from nas.cost.counts import CountProvider, layer_macs, layer_params
from nas.cost.features import _PART_TABLES, signature_counts, signature_counts_by_layers
from nas.cost.lut import LUT, find_lut, lut_names
from nas.spaces import FBNetSpace, get_space, space_names
from nas.spaces.base import Arch, InputSpec, SearchSpace

OPTIONS = [
    {k: True for k, on in zip(("live_only", "fold_constants", "merge_identical"), bits) if on}
    for bits in itertools.product([False, True], repeat=3)
]


def _sample(space: SearchSpace, n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    return [space.sample(rng) for _ in range(n)]


def _aligned(fast: tuple[sp.csr_matrix, list], slow: tuple[sp.csr_matrix, list]) -> sp.csr_matrix:
    """`slow`'s counts with its columns in `fast`'s order; fails when the signature sets differ."""
    (_, fast_sigs), (counts, sigs) = fast, slow
    assert len(fast_sigs) == len(set(fast_sigs)) and set(fast_sigs) == set(sigs)
    position = {sig: j for j, sig in enumerate(sigs)}
    return counts[:, [position[sig] for sig in fast_sigs]]


def _assert_same_counts(space: SearchSpace, archs: list[Arch], **layer_kwargs) -> None:
    fast = signature_counts(space, archs, **layer_kwargs)
    slow = signature_counts_by_layers(space, archs, **layer_kwargs)
    expected = _aligned(fast, slow)
    assert fast[0].shape == expected.shape
    assert (fast[0] != expected).nnz == 0, f"{space.name} {layer_kwargs}: counts differ"


@functools.lru_cache(maxsize=None)
def _listed_nb201(options: tuple[tuple[str, bool], ...]) -> tuple[sp.csr_matrix, list]:
    """NB201's whole-space counts listed arch by arch (the old path; shared by the tests below)."""
    space = get_space("nb201")
    return signature_counts_by_layers(space, space.enumerate(), **dict(options))


ALL_OPTIONS = {"live_only": True, "fold_constants": True, "merge_identical": True}


@pytest.mark.parametrize("options", [{}, ALL_OPTIONS], ids=["plain", "graph-optimised"])
def test_nb201_whole_space_counts_equal_per_arch_listing_in_the_same_column_order(options):
    space = get_space("nb201")
    fast, fast_sigs = signature_counts(space, space.enumerate(), **options)
    slow, slow_sigs = _listed_nb201(tuple(sorted(options.items())))
    assert fast_sigs == slow_sigs
    assert np.array_equal(fast.indptr, slow.indptr) and np.array_equal(fast.indices, slow.indices) and np.array_equal(fast.data, slow.data)


@pytest.mark.parametrize("name", space_names())
def test_every_registered_space_counts_equal_per_arch_listing_under_every_layer_option(name):
    space = get_space(name)
    archs = _sample(space, 40 if name.startswith("darts") else 150)
    for options in OPTIONS:
        _assert_same_counts(space, archs, **options)


@pytest.mark.parametrize("name", space_names())
def test_counts_follow_the_input_spec_and_an_input_size_override(name):
    space = get_space(name)
    archs = _sample(space, 30, seed=1)
    _assert_same_counts(space, archs, input_spec=InputSpec(channels=1, height=8, width=8, classes=7))
    _assert_same_counts(space, archs, input_size=24, num_classes=5)


def test_parts_of_a_batch_equal_parts_of_each_arch_alone():
    """A part table filled by one batch counts later batches (and single archs) the same."""
    space = get_space("fbnet")
    archs = _sample(space, 300, seed=2)
    whole, sigs = signature_counts(space, archs)
    for i in (0, 17, 299):
        one, one_sigs = signature_counts(space, [archs[i]])
        row = dict(zip(sigs, whole[i].toarray().ravel()))
        assert dict(zip(one_sigs, one.toarray().ravel())) == {s: v for s, v in row.items() if v}


def test_a_sampled_batch_of_a_huge_space_computes_only_the_choices_it_holds():
    space = FBNetSpace()  # a fresh instance: its table holds nothing yet
    signature_counts(space, _sample(space, 5, seed=3))
    table = _PART_TABLES[space][()]
    held = sum(len(rows) for rows in table.row_of)
    assert held <= 1 + 5 * len(space.decisions) < 1 + 9 * len(space.decisions)


def test_large_batches_of_unlistable_spaces_price_like_per_arch_listing():
    for name in ("fbnet", "ofa_mbv3"):
        space = get_space(name)
        _assert_same_counts(space, _sample(space, 3000, seed=4))


def _old_predict(lut: LUT, space: SearchSpace, archs: list[Arch], monkeypatch: pytest.MonkeyPatch, listed=signature_counts_by_layers) -> np.ndarray:
    with monkeypatch.context() as patch:
        patch.setattr(lut_module, "signature_counts", listed)
        return lut.predict(space, archs)


@pytest.mark.parametrize("device", ["raspi4", "epyc_zen5__onnxruntime", "epyc_zen5__tvm", "epyc_zen5__torch"])
def test_nb201_whole_space_lut_prices_equal_per_arch_listing(device, monkeypatch):
    space = get_space("nb201")
    path = find_lut(device, "nb201")
    assert path is not None, f"no shipped LUT {device} for nb201"
    lut = LUT.load(path)
    everything = space.enumerate()

    def listed(space, archs, **options):
        assert archs == everything
        return _listed_nb201(tuple(sorted(options.items())))

    assert np.array_equal(lut.predict(space, everything), _old_predict(lut, space, everything, monkeypatch, listed))


@pytest.mark.parametrize("name", ["fbnet", "ofa_mbv3", "ofa_mbv3_small"])
def test_lut_prices_of_other_spaces_equal_per_arch_listing(name, monkeypatch):
    space = get_space(name)
    archs = _sample(space, 400, seed=5)
    for device in lut_names(name)[:3]:
        lut = LUT.load(find_lut(device, name))
        new, old = lut.predict(space, archs), _old_predict(lut, space, archs, monkeypatch)
        np.testing.assert_allclose(new, old, rtol=1e-12, atol=0)


def _per_arch_counts(space: SearchSpace, archs: list[Arch], **layer_kwargs) -> tuple[np.ndarray, np.ndarray]:
    params, macs = [], []
    for arch in archs:
        layers = space.layers(arch, **layer_kwargs)
        params.append(sum(layer_params(s) for s in layers) / 1e6)
        macs.append(sum(layer_macs(s) for s in layers) / 1e6)
    return np.array(params), np.array(macs)


def test_nb201_whole_space_params_and_flops_equal_per_arch_sums():
    space = get_space("nb201")
    everything = space.enumerate()
    counts, sigs = _listed_nb201(())
    integers = counts.astype(np.int64)
    for kind, counter in (("params", layer_params), ("flops", layer_macs)):
        exact = (integers @ np.array([counter(s) for s in sigs], dtype=np.int64)) / 1e6  # integer sums of the listed layers
        assert np.array_equal(CountProvider(kind, space).evaluate(everything), exact)
    params, flops = _per_arch_counts(space, everything[::97])  # and the per-arch sums themselves, on a spread
    assert np.array_equal(CountProvider("params", space).evaluate(everything[::97]), params)
    assert np.array_equal(CountProvider("flops", space).evaluate(everything[::97]), flops)


@pytest.mark.parametrize("name", space_names())
def test_params_and_flops_of_every_space_equal_per_arch_sums(name):
    space = get_space(name)
    archs = _sample(space, 60, seed=6)
    spec = InputSpec(channels=1, height=16, width=16, classes=10)
    params, flops = _per_arch_counts(space, archs, input_spec=spec)
    assert np.array_equal(CountProvider("params", space, input_spec=spec).evaluate(archs), params)
    provider = CountProvider("flops", space, input_spec=spec)
    assert np.array_equal(provider.evaluate(archs), flops)
    assert [provider._value(a) for a in archs[:5]] == flops[:5].tolist()
    # cached values are returned for repeats, in the order asked
    assert np.array_equal(provider.evaluate(archs[::-1] + archs[:3]), np.concatenate([flops[::-1], flops[:3]]))


def test_threads_sharing_one_space_count_like_per_arch_listing():
    """Threads of one study share providers and so one part table (`study.optimize(n_jobs=...)`)."""
    import threading

    space = FBNetSpace()
    batches = [_sample(space, 120, seed=10 + t) for t in range(6)]
    results: dict[int, tuple[sp.csr_matrix, list]] = {}
    threads = [threading.Thread(target=lambda t=t: results.__setitem__(t, signature_counts(space, batches[t]))) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for t, batch in enumerate(batches):
        assert (results[t][0] != _aligned(results[t], signature_counts_by_layers(space, batch))).nnz == 0
