from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.cost.counts import CountProvider, peak_activation_bytes
from nas.cost.memory import FX, HOOKS, PeakMemoryError, peak_activation
from nas.objectives import MetricName
from nas.run import Run, RunConfig, resolve_provider
from nas.spaces import get_space

FLOAT = 4  # bytes
IMAGE = (1, 1, 4, 4)  # 16 floats; conv1 makes 2x4x4 = 32 floats, conv2 16 floats again


class Chain(nn.Module):
    """conv(1->2) -> relu -> conv(2->1), all 3x3 "same" on a 4x4 image."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, padding=1)
        self.relu = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(2, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x)))


class Residual(Chain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.conv1(x))) + x


class ChainWithViews(Chain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv1(x)).flatten(1).view(1, 2, 4, 4).contiguous().unsqueeze(0).squeeze(0)
        return self.conv2(h.reshape(1, 2, 4, 4))


class TwoHeads(Chain):
    """relu's output feeds two convs; the first through a reshape that may or may not copy."""

    def __init__(self, transpose: bool) -> None:
        super().__init__()
        self.transpose = transpose

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv1(x))
        moved = h.transpose(2, 3) if self.transpose else h
        return self.conv2(moved.reshape(1, 32).view(1, 2, 4, 4)) + self.conv2(h)


class DataDependent(Chain):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.relu(self.conv1(x))
        if h.sum() >= 0:  # symbolic tracing cannot branch on a value
            return self.conv2(h)
        return h


def test_chain_peak_is_the_relu_input_and_output_counted_by_hand():
    # input 16 | conv1: 16 + 32 = 48 | relu: 32 + 32 = 64 (input dead) | conv2: 32 + 16 = 48 floats
    result = peak_activation(Chain(), torch.zeros(IMAGE))
    assert result == type(result)(64 * FLOAT, FX, "relu")


def test_residual_skip_keeps_the_input_alive_so_the_peak_grows():
    # relu runs while the input waits for the add: 16 + 32 + 32 = 80 floats
    assert peak_activation_bytes(Residual(), torch.zeros(IMAGE)) == 80 * FLOAT > peak_activation_bytes(Chain(), torch.zeros(IMAGE))


def test_views_and_reshapes_of_contiguous_tensors_add_no_memory():
    assert peak_activation_bytes(ChainWithViews(), torch.zeros(IMAGE)) == 64 * FLOAT


def test_a_reshape_that_must_copy_counts_its_copy():
    # relu output 32 stays alive for the second conv; the copied reshape 32 and the first head's 16 join it
    assert peak_activation_bytes(TwoHeads(transpose=True), torch.zeros(IMAGE)) == (32 + 32 + 16) * FLOAT
    # without the transpose the reshape is a view: at most relu's input + output (32 + 32) or 32 + 16 + 16
    assert peak_activation_bytes(TwoHeads(transpose=False), torch.zeros(IMAGE)) == 64 * FLOAT


def test_in_place_relu_allocates_nothing():
    # conv1: 16 + 32 | relu_: 32 | conv2: 32 + 16 -> 48 floats
    assert peak_activation_bytes(Chain(inplace=True), torch.zeros(IMAGE)) == 48 * FLOAT


def test_in_place_ops_never_modify_the_callers_input_and_training_mode_is_restored():
    x = -torch.ones(IMAGE)
    module = nn.ReLU(inplace=True)
    assert peak_activation_bytes(module, x) == 16 * FLOAT
    assert (x == -1).all() and module.training


def test_untraceable_module_falls_back_to_forward_hooks_with_the_same_peak():
    result = peak_activation(DataDependent(), torch.zeros(IMAGE))
    assert (result.bytes, result.method) == (64 * FLOAT, HOOKS)


def test_module_that_cannot_run_on_the_input_is_one_clear_line():
    with pytest.raises(PeakMemoryError, match=r"^cannot run Linear on an input of shape \(1, 3\): mat1 and mat2 shapes cannot be multiplied") as info:
        peak_activation_bytes(nn.Linear(10, 5), torch.zeros(1, 3))
    assert "\n" not in str(info.value)


def test_nb201_all_none_needs_less_peak_memory_than_all_conv_by_hand():
    space = get_space("nb201")
    provider = CountProvider("peak_memory", space, dataset="cifar10")
    none = space.from_string("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    conv = space.from_string("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|")
    values = provider.evaluate([none, conv, none])
    # none: the first reduction, its input kept for the shortcut + its ReLU output (16x32x32 each) + the
    # stride-2 conv's output (32x16x16) = 40,960 floats
    assert values[0] == values[2] == 40_960 * FLOAT / 1e6
    # conv: edge 1->2 of a stage-1 cell: the input (for 0->3), node 1 (for 1->3), the 0->2 result waiting
    # for the add, and this edge's ReLU and conv outputs: 5 x 16x32x32 = 81,920 floats
    assert values[1] == 81_920 * FLOAT / 1e6
    assert not provider.known


def test_fbnet_all_skip_peak_is_the_first_widening_projection_by_hand():
    space = get_space("fbnet")
    arch = space.from_string(" ".join(["skip"] * 22))
    # 16 -> 24 channels at 32x32: the 1x1 conv's and the BN's outputs (the ReLU is in place): 2 x 24x32x32
    assert CountProvider("peak_memory", space, dataset="cifar100").evaluate([arch])[0] == 2 * 24 * 32 * 32 * FLOAT / 1e6


def test_peak_memory_is_a_metric_name_with_a_provider_and_searchable(tmp_path, no_data_dir):
    assert MetricName.parse("peak_memory") == MetricName("peak_memory")
    config = RunConfig(objectives=["accuracy:max", "peak_memory:min"], strategy="random", budget=3, seed=0)
    assert isinstance(resolve_provider("peak_memory", get_space("nb201"), config), CountProvider)
    run = Run.open(tmp_path / "run", config)
    front = run.search()
    assert len(run.trials()) == 3 and (run.trials()["peak_memory"] > 0).all()
    assert list(front.columns[:3]) == ["arch", "accuracy", "peak_memory"]
