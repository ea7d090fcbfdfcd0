from __future__ import annotations

import statistics

import numpy as np
import pandas as pd
import pytest

from nas.cost.build import build_lut, cpu_info, distinct_signatures, save_built, table_from_runs
from nas.spaces.base import LayerSignature
from nas.cost.lut import INTERCEPT, LUT, LUTError


def test_distinct_signatures_are_the_union_over_every_arch_of_a_finite_space(tiny_space):
    union = {sig for arch in tiny_space.enumerate() for sig in tiny_space.layers(arch, dataset="cifar10")}
    found = distinct_signatures(tiny_space, dataset="cifar10")
    assert set(found) == union and len(found) == len(union)
    assert [s.key() for s in found] == sorted(s.key() for s in found)


def test_distinct_signatures_of_given_archs_cover_only_those(tiny_space):
    arch = tiny_space.from_string("|skip_connect~0|+|none~0|none~1|+|none~0|none~1|skip_connect~2|")
    found = distinct_signatures(tiny_space, [arch], dataset="cifar10")
    assert set(found) == set(tiny_space.layers(arch, dataset="cifar10"))
    assert not any(s.op == "conv" and s.kernel == 3 and s.stride == 1 and s.in_shape[1] == s.out_channels == 4 for s in found)


def test_a_built_lut_prices_every_signature_of_the_space(tiny_space, tiny_torch_lut):
    table = tiny_torch_lut.table.set_index("key")
    keys = {s.key() for s in distinct_signatures(tiny_space, dataset="cifar10")}
    assert set(table.index) == keys | {INTERCEPT}
    assert list(tiny_torch_lut.table.columns) == ["space", "key", "latency_ms", "std_ms", "min_ms", "max_ms", "n"]
    assert (table["n"] == 1).all() and (table["latency_ms"] >= 0).all() and table["latency_ms"].max() > 0
    predicted = tiny_torch_lut.predict(tiny_space, tiny_space.enumerate()[:5], dataset="cifar10")
    assert (predicted > 0).all()


def test_rows_are_medians_over_processes_of_overhead_corrected_timings():
    relu = LayerSignature("relu", (1, 4, 8, 8), out_channels=4)
    bn = LayerSignature("bn", (1, 4, 8, 8), out_channels=4)
    runs = [
        {"null": 0.010, "per_op": 0.002, "delta": {relu.key(): 0.004, bn.key(): 0.003}},
        {"null": 0.012, "per_op": 0.003, "delta": {relu.key(): 0.005, bn.key(): -0.001}},
        {"null": 0.030, "per_op": 0.001, "delta": {relu.key(): 0.020, bn.key(): 0.002}},
    ]
    table = table_from_runs("s", [relu, bn], runs).set_index("key")
    assert table.loc[INTERCEPT, "latency_ms"] == pytest.approx(0.009)  # median of 0.008, 0.009, 0.029
    row = table.loc[relu.key()]  # delta + per_op: 0.006, 0.008, 0.021
    assert (row["latency_ms"], row["min_ms"], row["max_ms"], row["n"]) == pytest.approx((0.008, 0.006, 0.021, 3))
    assert row["std_ms"] == pytest.approx(statistics.pstdev([0.006, 0.008, 0.021]))
    assert table.loc[bn.key(), "latency_ms"] == pytest.approx(0.002)  # folded: marginal cost only, no per_op added
    clipped = table_from_runs("s", [bn], [{"null": 0.01, "per_op": 0.0, "delta": {bn.key(): -0.002}}])
    assert clipped.set_index("key").loc[bn.key(), "latency_ms"] == 0.0


def test_a_built_lut_records_where_and_how_it_was_measured(tiny_torch_lut):
    meta = tiny_torch_lut.meta
    assert meta["backend"] == "torch" and meta["threads"] == 1 and meta["processes"] == 1 and meta["device"] == "test-cpu"
    assert meta["versions"]["torch"].startswith("2.")
    assert meta["cpu"]["model_name"] == cpu_info()["model_name"]
    build = meta["build"]["tiny201"]
    assert build["coverage"] == "all 729 archs" and build["dataset"] == "cifar10" and build["date"][:2] == "20"
    assert build["timing"]["repeats"] == 3 and build["timing"]["statistic"] == "min" and len(build["null_ms"]) == 1 and build["seconds"] > 0


def test_bad_build_arguments_fail_before_measuring_with_one_line(tiny_space):
    with pytest.raises(KeyError, match=r"unknown backend 'tvmx'; known: (\w+, )*onnxruntime, (\w+, )*torch"):
        build_lut(tiny_space, "tvmx")
    with pytest.raises(ValueError, match="processes must be >= 1, got 0"):
        build_lut(tiny_space, "torch", processes=0)
    with pytest.raises(ValueError, match=r"unknown timing statistic 'mean'; expected one of \['min', 'median'\]"):
        build_lut(tiny_space, "torch", timing={"statistic": "mean"})


def _toy(space: str, backend: str = "torch") -> LUT:
    lut = LUT.from_costs(space, {INTERCEPT: 0.1, "relu:x": 0.01}, device="toy", backend=backend, meta={"threads": 1})
    lut.meta["build"] = {space: {"signatures": 1}}
    return lut


def test_saving_into_an_existing_lut_keeps_other_spaces_and_refuses_to_clobber(tmp_path):
    out = tmp_path / "toy__torch.csv"
    save_built(_toy("a"), out)
    save_built(_toy("b"), out)
    merged = LUT.load(out)
    assert merged.spaces == ["a", "b"] and set(merged.meta["build"]) == {"a", "b"}
    with pytest.raises(LUTError, match="already holds a rows; pass --overwrite"):
        save_built(_toy("a"), out)
    save_built(_toy("a"), out, overwrite=True)
    assert len(pd.read_csv(out)) == 4
    # the replaced rows of "a" are kept, with their build, under history
    (entry,) = LUT.load(out).meta["history"]
    assert entry["space"] == "a" and entry["reason"] == "rebuilt" and entry["latency_ms"] == {INTERCEPT: 0.1, "relu:x": 0.01}
    with pytest.raises(LUTError, match="holds backend='torch' measurements, not 'onnxruntime'"):
        save_built(_toy("c", backend="onnxruntime"), out)


def test_a_lut_for_a_graph_optimising_backend_prices_only_what_that_backend_runs(tiny_space, tiny_torch_lut, fast_timing, tmp_path):
    pytest.importorskip("onnxruntime")
    lut = build_lut(tiny_space, "onnxruntime", processes=1, dataset="cifar10", timing=fast_timing, device="test-cpu")
    assert lut.layer_options(tiny_space.name) == {"live_only": True, "fold_constants": True, "merge_identical": True}
    assert tiny_torch_lut.layer_options(tiny_space.name) == {}
    dead = tiny_space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|none~1|none~2|")
    pruned = tiny_space.from_string("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|")  # what ORT keeps of it
    reloaded = LUT.load(save_built(lut, tmp_path / "ort.csv"))
    for priced in (lut, reloaded):
        on_dead, on_pruned = priced.predict(tiny_space, [dead, pruned], dataset="cifar10")
        assert on_dead == on_pruned
    on_dead, on_pruned = tiny_torch_lut.predict(tiny_space, [dead, pruned], dataset="cifar10")
    assert on_dead > on_pruned  # eager PyTorch runs the dead convs
    # an output that does not depend on the input folds to nothing: one call of the backend
    constant = tiny_space.from_string("|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    assert lut.predict(tiny_space, [constant], dataset="cifar10")[0] == pytest.approx(float(np.median(lut.meta["build"][tiny_space.name]["null_ms"])))
    assert tiny_torch_lut.predict(tiny_space, [constant], dataset="cifar10")[0] > tiny_torch_lut.null_ms(tiny_space.name)
