from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from nas.cost.measure import backends, time_runner
from nas.cost.measure._fresh import MeasurementInputError, run_fresh
from nas.cost.measure._jobs import time_signatures
from nas.cost.measure.ops import KNOWN_OPS, Chain, UnknownOperatorError, module_for_signature, null_module, producer_for
from nas.spaces import NB201Space
from nas.spaces.base import LayerSignature
from nas.spaces.nb201_network import ResNetBasicblock, _edge_op

TINY = NB201Space("tiny", ops=("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"), channels=4, cells_per_stage=1)
FAST = {"warmup": 1, "repeats": 2, "target_s": 0.001}


def _every_op_signature() -> list[LayerSignature]:
    arch = TINY.from_string("|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_3x3~1|avg_pool_3x3~2|")
    return TINY.layers(arch, input_size=9)  # odd size: the reduction's 2x2 pool must use ceil_mode


def test_every_operator_of_a_network_builds_with_the_shape_the_next_layer_expects():
    # NB201 lists every operator but the MBConv ones (`tests/cost/test_ofa_costs.py`) and DARTS's max pool (`tests/spaces/test_darts.py`).
    layers = _every_op_signature()
    assert {sig.op for sig in layers} == set(KNOWN_OPS) - {"hswish", "hsigmoid", "mul", "maxpool"}
    for sig in layers:
        module, inputs = module_for_signature(sig)
        out = module(*inputs)
        if sig.op == "linear":
            assert tuple(out.shape) == (1, sig.out_channels)
        elif sig.op == "global_avgpool":
            assert tuple(out.shape) == (1, sig.in_shape[1])
        else:
            assert out.shape[1] == sig.out_channels, sig.key()


def test_pools_compute_exactly_what_the_nb201_network_computes():
    x = torch.randn(1, 4, 9, 9)
    cell_pool, _ = module_for_signature(LayerSignature("avgpool", (1, 4, 9, 9), out_channels=4, kernel=3, stride=1))
    torch.testing.assert_close(cell_pool(x), _edge_op("avg_pool_3x3", 4)(x))
    shortcut, _ = module_for_signature(LayerSignature("avgpool", (1, 4, 9, 9), out_channels=4, kernel=2, stride=2))
    torch.testing.assert_close(shortcut(x), ResNetBasicblock(4, 8).downsample[0](x))


def test_a_constant_add_is_timed_as_a_tensor_plus_a_fixed_constant():
    module, inputs = module_for_signature(LayerSignature("add", (1, 4, 5, 5), out_channels=4, bias=True))
    assert len(inputs) == 1 and module.constant.shape == (1, 4, 5, 5)
    torch.testing.assert_close(module(*inputs), inputs[0] + module.constant)
    assert len(module_for_signature(LayerSignature("add", (1, 4, 5, 5), out_channels=4))[1]) == 2


def test_an_unknown_operator_is_a_one_line_error_listing_the_known_ones():
    with pytest.raises(UnknownOperatorError, match=r"unknown op 'gelu'; expected one of \['add', 'avgpool'") as info:
        module_for_signature(LayerSignature("gelu", (1, 4, 8, 8), out_channels=4))
    assert "\n" not in str(info.value)


def test_quantised_operators_are_refused_rather_than_timed_as_float():
    with pytest.raises(ValueError, match="only 32-bit float operators are supported, got bits=8"):
        module_for_signature(LayerSignature("conv", (1, 4, 8, 8), out_channels=4, kernel=3, bits=8))


def test_only_batchnorm_is_priced_after_the_conv_that_produces_its_input():
    bn = LayerSignature("bn", (1, 8, 4, 4), out_channels=8)
    assert producer_for(bn) == LayerSignature("conv", (1, 8, 4, 4), out_channels=8, kernel=1)
    assert producer_for(LayerSignature("relu", (1, 8, 4, 4), out_channels=8)) is None


@pytest.mark.parametrize("name", ["torch", "onnxruntime"])
def test_each_backend_runs_the_module_it_was_given(name):
    backend = backends.get(name)()
    module = Chain(*(module_for_signature(LayerSignature(op, (1, 5, 8, 8), out_channels=5, kernel=3))[0] for op in ("conv", "bn", "relu")))
    x = torch.randn(1, 5, 8, 8)
    out = backend.compile(module, (x,), threads=1)()
    got = out if isinstance(out, torch.Tensor) else torch.from_numpy(out[0].numpy())
    torch.testing.assert_close(got, module(x).detach(), rtol=1e-4, atol=1e-5)
    assert all(isinstance(v, str) and v for v in backend.versions().values())
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        backend.compile(module, (x,), threads=0)


def test_unknown_backend_names_the_known_ones():
    with pytest.raises(KeyError, match=r"unknown backend 'tvmx'; known: (\w+, )*onnxruntime, (\w+, )*torch"):
        backends.get("tvmx")


def test_null_operator_is_cheaper_than_a_real_convolution():
    backend = backends.get("torch")()
    null = time_runner(backend.compile(*null_module(), threads=1), **FAST, number=50)
    conv = module_for_signature(LayerSignature("conv", (1, 32, 32, 32), out_channels=32, kernel=3))
    real = time_runner(backend.compile(*conv, threads=1), **FAST, number=5)
    assert real.min_ms > null.min_ms


def test_a_fresh_process_measures_and_reports_progress():
    signatures = [LayerSignature("relu", (1, 4, 8, 8), out_channels=4), LayerSignature("bn", (1, 4, 8, 8), out_channels=4)]
    ticks: list[int] = []
    result = run_fresh(time_signatures, ("torch", signatures, 1, FAST, 0), on_tick=ticks.append)
    assert sum(ticks) == len(signatures)
    assert set(result["delta"]) == {s.key() for s in signatures}
    assert result["null"] > 0 and np.isfinite(result["per_op"])


def test_an_input_error_inside_a_fresh_process_comes_back_as_one_line():
    bad = [LayerSignature("gelu", (1, 4, 8, 8), out_channels=4)]
    with pytest.raises(MeasurementInputError, match="unknown op 'gelu'") as info:
        run_fresh(time_signatures, ("torch", bad, 1, FAST, 0))
    assert "\n" not in str(info.value)


def _onnxruntime_optimised_graph(module: torch.nn.Module, x: torch.Tensor):
    """The graph ONNX Runtime actually runs for `module` (ORT_ENABLE_ALL, as the backend sets it)."""
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from nas.cost.measure._onnxruntime import OnnxRuntimeBackend

    return OnnxRuntimeBackend().optimised_graph(module, (x,))


def test_onnxruntime_runs_exactly_the_convs_and_pools_its_layer_options_list():
    from nas.spaces import get_space

    space = get_space("nb201")
    options = backends.get("onnxruntime").layer_options
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    archs.append(space.from_string("|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|"))  # constant output
    for arch in archs:
        graph = _onnxruntime_optimised_graph(space.build(arch).eval(), torch.randn(1, 3, 32, 32))
        groups = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in graph.node}
        # ORT turns a BatchNorm it cannot fold into a depthwise conv (group > 1): not one of the listed convs
        convs = sum(n.op_type == "Conv" and groups[n.name] == 1 for n in graph.node)
        pools = sum(n.op_type == "AveragePool" for n in graph.node)
        listed = Counter(sig.op for sig in space.layers(arch, **options))
        assert (convs, pools) == (listed["conv"], listed["avgpool"]), space.to_string(arch)
        if not any(space.layers(arch, live_only=True, fold_constants=True)):
            assert len(graph.node) == 0


def test_onnxruntime_keeps_the_adds_of_constants_its_layer_options_list():
    from nas.spaces import get_space

    space = get_space("nb201")
    options = backends.get("onnxruntime").layer_options
    # cells without convs, whose nodes add constants (pools and convs of an all-`none` node)
    for text in (
        "|none~0|+|avg_pool_3x3~0|none~1|+|avg_pool_3x3~0|avg_pool_3x3~1|avg_pool_3x3~2|",
        "|none~0|+|none~0|none~1|+|avg_pool_3x3~0|nor_conv_3x3~1|avg_pool_3x3~2|",
    ):
        arch = space.from_string(text)
        graph = _onnxruntime_optimised_graph(space.build(arch).eval(), torch.randn(1, 3, 32, 32))
        listed = Counter(sig.op for sig in space.layers(arch, **options))
        # the two reduction blocks' adds fuse into their shortcut convs; every cell add stays an Add
        assert sum(n.op_type == "Add" for n in graph.node) == listed["add"] - 2 > 0, text


def test_onnxruntime_reorders_a_tensor_before_exactly_the_adds_its_layer_options_flag():
    from nas.spaces import get_space

    space = get_space("nb201")
    options = backends.get("onnxruntime").layer_options
    rng = np.random.default_rng(3)
    # mostly none, skip and pool edges: the cells where constants meet plain and blocked tensors
    ops = rng.choice(["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"], size=(40, 6), p=[0.3, 0.3, 0.1, 0.1, 0.2])
    for row in ops:
        arch = space.from_string("|{}~0|+|{}~0|{}~1|+|{}~0|{}~1|{}~2|".format(*row))
        graph = _onnxruntime_optimised_graph(space.build(arch).eval(), torch.randn(1, 3, 32, 32))
        producer = {name: node.op_type for node in graph.node for name in node.output}
        reordered = sum(node.op_type == "Add" and any(producer.get(name) == "ReorderOutput" for name in node.input) for node in graph.node)
        listed = sum(sig.op == "add" and sig.bias for sig in space.layers(arch, **options))
        assert reordered == listed, space.to_string(arch)
