"""The real FBNet network for one architecture of `FBNetSpace`.

Why a separate module: the space describes the network without torch (so strings, encodings and operator
signatures stay cheap to import); this module turns the same description into the `torch.nn.Module` that
HW-NAS-Bench measured (its `FBNet_Infer`, re-implemented): stem conv-BN-ReLU, one block per searchable
layer, 1x1 head conv-BN-ReLU, global average pool, linear classifier. Its modules run in the order
`FBNetSpace.layers()` lists them, which the tests check with forward hooks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.spaces.fbnet import SKIP, FBNetMacro, FBNetOp, Slot


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: lets the second grouped 1x1 conv see channels of every group."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class InvertedResidual(nn.Module):
    """MobileNetV2's block with FBNet's grouped 1x1 convs; the input is added back when shapes match."""

    def __init__(self, op: FBNetOp, slot: Slot) -> None:
        super().__init__()
        mid = slot.in_channels * op.expansion
        self.residual = slot.keeps_shape
        self.expand = nn.Conv2d(slot.in_channels, mid, 1, groups=op.groups, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.relu1 = nn.ReLU(inplace=True)
        self.shuffle = ChannelShuffle(op.groups) if op.groups > 1 else nn.Identity()
        self.depthwise = nn.Conv2d(mid, mid, op.kernel, stride=slot.stride, padding=op.kernel // 2, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.relu2 = nn.ReLU(inplace=True)
        self.project = nn.Conv2d(mid, slot.out_channels, 1, groups=op.groups, bias=False)
        self.bn3 = nn.BatchNorm2d(slot.out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.shuffle(self.relu1(self.bn1(self.expand(x))))
        out = self.bn3(self.project(self.relu2(self.bn2(self.depthwise(out)))))
        return out + x if self.residual else out


def _block(op: FBNetOp, slot: Slot) -> nn.Module:
    if op.block == SKIP:
        return nn.Identity() if slot.keeps_shape else _conv_bn_relu(slot.in_channels, slot.out_channels, 1, slot.stride)
    return InvertedResidual(op, slot)


class FBNetNetwork(nn.Module):
    """One FBNet architecture as a module: `forward` maps `N x in_channels x H x W` images to `N x num_classes` logits."""

    def __init__(self, layer_ops: Sequence[FBNetOp], macro: FBNetMacro, *, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        slots = macro.slots()
        if len(layer_ops) != len(slots) or num_classes < 1:
            raise ValueError(f"FBNet network needs {len(slots)} layer ops and num_classes >= 1; got {len(layer_ops)}, {num_classes}")
        self.stem = _conv_bn_relu(in_channels, macro.stem_channels, macro.stem_kernel, macro.stem_stride)
        self.blocks = nn.Sequential(*(_block(op, slot) for op, slot in zip(layer_ops, slots)))
        self.head = _conv_bn_relu(macro.stages[-1].channels, macro.head_channels, 1, 1)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(macro.head_channels, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        # HW-NAS-Bench's initialisation, so training from here reproduces its setting.
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.head(self.blocks(self.stem(x)))
        return self.classifier(self.global_pooling(features).flatten(1))
