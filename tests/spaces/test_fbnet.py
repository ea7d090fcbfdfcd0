"""The FBNet space parses the published tables' strings, and its network and layer list agree."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.cost.counts import layer_params
from nas.spaces import FBNetSpace, InvalidArchError, families, get_space, space_names
from nas.spaces.base import Arch, LayerSignature
from nas.spaces.fbnet import FBNetMacro, FBNetOp, Slot, Stage
from nas.spaces.fbnet_network import ChannelShuffle, InvertedResidual

OPS = ["k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip"]


@pytest.fixture(scope="module")
def space() -> FBNetSpace:
    s = get_space("fbnet")
    assert isinstance(s, FBNetSpace)
    return s


def latency_table() -> Path:
    root = Path(os.environ.get("NAS_DATA_DIR") or Path(__file__).resolve().parents[3] / "shared" / "data")
    path = root / "fbnet" / "latency_ms.csv.gz"
    if not path.is_file():
        pytest.skip(f"FBNet latency table {path} is absent (set NAS_DATA_DIR to the shared data folder)")
    return path


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registered_and_yaml_equals_the_code_defaults(space: FBNetSpace) -> None:
    assert "fbnet" in families.names() and "fbnet" in space_names()
    default = FBNetSpace()
    assert (space.ops, space.macro, space.datasets) == (default.ops, default.macro, default.datasets)
    assert [op.name for op in space.ops] == OPS
    assert [d.name for d in space.decisions] == [f"layer_{i:02d}" for i in range(22)]
    assert [(s.in_channels, s.out_channels, s.stride) for s in space.slots if s.stride == 2 or s.in_channels != s.out_channels] == [
        (16, 24, 1), (24, 32, 2), (32, 64, 2), (64, 112, 1), (112, 184, 2), (184, 352, 1)
    ]  # fmt: skip


def test_every_shared_table_arch_parses_round_trips_and_indexes_like_op_idx_list(space: FBNetSpace) -> None:
    import pandas as pd

    table = pd.read_csv(latency_table(), usecols=["op_idx_list", "arch_str"])
    assert len(table) == 5000
    archs = [space.from_string(text) for text in table.arch_str]
    assert [space.to_string(a) for a in archs] == list(table.arch_str)
    op_idx = np.array([[int(i) for i in row.split()] for row in table.op_idx_list])
    np.testing.assert_array_equal(space.encode(archs, "integer"), op_idx)


def test_header_of_shared_table_names_the_string_column() -> None:
    with gzip.open(latency_table(), "rt") as fh:
        assert fh.readline().split(",")[:3] == ["idx", "op_idx_list", "arch_str"]


@pytest.mark.parametrize(
    "bad",
    ["", " ".join(["k3_e1"] * 21), " ".join(["k3_e1"] * 23), " ".join(["k3_e1"] * 21 + ["k7_e6"]), " ".join(["k3_e1"] * 21 + ["K3_E1"])],
)
def test_malformed_strings_raise_one_line_errors(space: FBNetSpace, bad: str) -> None:
    with pytest.raises(InvalidArchError) as info:
        space.from_string(bad)
    assert "\n" not in str(info.value) and "FBNet" in str(info.value)


def test_size_is_nine_to_the_22_and_enumerate_refuses(space: FBNetSpace) -> None:
    assert space.size == 9**22
    with pytest.raises(ValueError, match="more than the 200,000 nas lists at once") as info:
        space.enumerate()
    assert "\n" not in str(info.value)


def test_forward_returns_cifar100_logits(space: FBNetSpace) -> None:
    rng = np.random.default_rng(0)
    for arch in [space.sample(rng), space.from_string(" ".join(["skip"] * 22))]:
        with torch.no_grad():
            assert space.build(arch).eval()(torch.randn(1, 3, 32, 32)).shape == (1, 100)
    with torch.no_grad():
        assert space.build(space.sample(rng), num_classes=10).eval()(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_layer_params_sum_equals_module_params_for_30_random_archs(space: FBNetSpace) -> None:
    rng = np.random.default_rng(22)
    counts = set()
    for _ in range(30):
        arch = space.sample(rng)
        count = n_params(space.build(arch))
        assert sum(layer_params(sig) for sig in space.layers(arch)) == count, space.to_string(arch)
        counts.add(count)
    assert len(counts) == 30


def test_all_skip_arch_counts_stem_projections_head_and_classifier_by_hand(space: FBNetSpace) -> None:
    arch = space.from_string(" ".join(["skip"] * 22))
    stem = 3 * 16 * 9 + 2 * 16
    widths = [16, 24, 32, 64, 112, 184, 352]
    projections = sum(a * b + 2 * b for a, b in zip(widths, widths[1:]))  # 1x1 conv + BN where width changes
    head = 352 * 1504 + 2 * 1504 + 1504 * 100 + 100
    assert n_params(space.build(arch)) == stem + projections + head == 780660
    assert sum(layer_params(sig) for sig in space.layers(arch)) == 780660


def executed_signatures(net: nn.Module, size: int) -> list[LayerSignature]:
    """The operator modules `net` runs on one image, read from forward hooks (adds are not modules)."""
    seen: list[LayerSignature] = []

    def record(module: nn.Module, inputs: tuple[torch.Tensor, ...], _: torch.Tensor) -> None:
        shape = tuple(inputs[0].shape)
        if isinstance(module, nn.Conv2d):
            seen.append(LayerSignature("conv", shape, module.out_channels, module.kernel_size[0], module.stride[0], module.groups))
        elif isinstance(module, nn.Linear):
            seen.append(LayerSignature("linear", shape, module.out_features, bias=True))
        elif isinstance(module, ChannelShuffle):
            seen.append(LayerSignature("channel_shuffle", shape, shape[1], groups=module.groups))
        else:
            op = {nn.BatchNorm2d: "bn", nn.ReLU: "relu", nn.AdaptiveAvgPool2d: "global_avgpool"}[type(module)]
            seen.append(LayerSignature(op, shape, shape[1]))

    kinds = (nn.Conv2d, nn.Linear, ChannelShuffle, nn.BatchNorm2d, nn.ReLU, nn.AdaptiveAvgPool2d)
    handles = [m.register_forward_hook(record) for m in net.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        net.eval()(torch.randn(1, 3, size, size))
    for handle in handles:
        handle.remove()
    return seen


@pytest.mark.parametrize("shift", [0, 4, 8])
def test_layers_are_the_operators_forward_executes_in_order(space: FBNetSpace, shift: int) -> None:
    # Every op lands both on width/stride-changing layers and on shape-keeping ones across the shifts.
    arch = space.from_string(" ".join(OPS[(i + shift) % 9] for i in range(22)))
    listed = space.layers(arch)
    assert [sig for sig in listed if sig.op != "add"] == executed_signatures(space.build(arch), 32)
    residual = sum(1 for op, slot in zip(space.layer_ops(arch), space.slots) if op.name != "skip" and slot.keeps_shape)
    assert Counter(sig.op for sig in listed)["add"] == residual > 0


def test_inverted_residual_adds_its_input_only_when_shape_is_kept() -> None:
    op = FBNetOp("k3_e3", kernel=3, expansion=3)
    x = torch.randn(1, 8, 6, 6)
    for slot, expect_input in [(Slot(8, 8, 1), True), (Slot(8, 8, 2), False)]:
        block = InvertedResidual(op, slot).eval()
        nn.init.zeros_(block.bn3.weight)  # the conv path now outputs exactly zero
        with torch.no_grad():
            out = block(x)
        if expect_input:
            torch.testing.assert_close(out, x)
        else:
            assert out.shape == (1, 8, 3, 3) and out.abs().max() == 0


def test_channel_shuffle_interleaves_groups() -> None:
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert ChannelShuffle(2)(x).flatten().tolist() == [0, 3, 1, 4, 2, 5]


def test_moves_give_valid_archs_that_round_trip(space: FBNetSpace) -> None:
    rng = np.random.default_rng(3)
    a, b = space.sample(rng), space.sample(rng)
    neighbours = space.neighbours(a)
    assert len(neighbours) == len(set(neighbours)) == 22 * 8
    assert all(sum(n[k] != a[k] for k in a) == 1 for n in neighbours)
    mutant = space.mutate(a, rng, n_changes=3)
    assert sum(mutant[k] != a[k] for k in a) == 3
    child = space.crossover(a, b, rng)
    assert all(child[k] in (a[k], b[k]) for k in a)
    for arch in [*neighbours[::25], mutant, child]:
        assert space.validate(arch) == arch and space.from_string(space.to_string(arch)) == arch


def test_integer_and_onehot_encodings(space: FBNetSpace) -> None:
    archs = [space.sample(np.random.default_rng(i)) for i in range(5)]
    idx = space.encode(archs, "integer")
    onehot = space.encode(archs, "onehot")
    assert idx.shape == (5, 22) and onehot.shape == (5, 22 * 9)
    np.testing.assert_array_equal(onehot.reshape(5, 22, 9).argmax(axis=2), idx)
    assert space.from_index_matrix(idx) == archs


def test_yaml_variant_with_fewer_ops_and_layers(tmp_path: Path) -> None:
    path = tmp_path / "fbnet_tiny.yaml"
    path.write_text(
        "name: fbnet_tiny\nfamily: fbnet\n"
        "ops:\n  k3_e3: {kernel: 3, expansion: 3}\n  k5_e1_g2: {kernel: 5, expansion: 1, groups: 2}\n  skip: {block: skip}\n"
        "stem: {channels: 8}\nstages:\n  - {layers: 1, channels: 8}\n  - {layers: 2, channels: 16, stride: 2}\n"
        "head: {channels: 32}\ndatasets:\n  cifar10: {num_classes: 10, input_size: 16}\n"
    )
    tiny = get_space(str(path))
    assert isinstance(tiny, FBNetSpace) and tiny.name == "fbnet_tiny"
    archs = tiny.enumerate()
    assert len(set(archs)) == tiny.size == 27
    for arch in archs:
        assert sum(layer_params(sig) for sig in tiny.layers(arch)) == n_params(tiny.build(arch))
    arch = tiny.from_string("k5_e1_g2 skip k3_e3")
    assert [sig for sig in tiny.layers(arch) if sig.op != "add"] == executed_signatures(tiny.build(arch), 16)
    with torch.no_grad():
        assert tiny.build(arch).eval()(torch.randn(1, 3, 16, 16)).shape == (1, 10)
    with pytest.raises(InvalidArchError, match="k3_e6"):
        tiny.from_string("k3_e6 skip skip")


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"ops": {"k3_g3": {"kernel": 3, "groups": 3}}}, "does not divide"),
        ({"ops": {"k4": {"kernel": 4}}}, "odd kernel"),
        ({"ops": {"k3": {"kernel": 3, "dilation": 2}}}, "unknown keys"),
        ({"ops": {"pool": {"block": "maxpool"}}}, "block"),
        ({"stages": [{"layers": 2}]}, "stage"),
        ({"widths": [16]}, "unknown keys"),
        ({"ops": ["k3_e1", "skip"]}, "mapping"),
        ({"ops": {"k3": {"kernel": "three"}}}, "integers"),
    ],
)
def test_bad_definitions_raise_one_line_errors(config: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message) as info:
        FBNetSpace.from_config({"name": "bad", "family": "fbnet", **config})
    assert "\n" not in str(info.value)


def test_macro_rejects_empty_stages() -> None:
    with pytest.raises(ValueError, match="stages"):
        FBNetMacro(stages=())
    assert FBNetMacro(stages=(Stage(2, 8),)).slots() == (Slot(16, 8, 1), Slot(8, 8, 1))


def test_unknown_dataset_names_the_known_ones(space: FBNetSpace) -> None:
    arch = Arch({d.name: "skip" for d in space.decisions})
    with pytest.raises(ValueError, match="cifar100"):
        space.layers(arch, dataset="imagenet")
