"""The stand-alone MobileNetV3 sub-network of the OFA space (what a sub-network is once extracted).

Why separate from the space: the space describes a sub-network without torch; this module builds it as
an ordinary `nn.Module` (stem, first block, MBConv blocks, head) that trains, exports and runs on its
own. The elastic supernet (`nas.accuracy.supernet`) copies its weights into exactly these modules, and
its modules run in the order `OFAMobileNetV3Space.layers()` lists them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from nas.spaces.ofa_mbv3 import ActiveBlock, OFAMacro


def activation(name: str) -> nn.Module:
    """OFA's activations: ReLU or hard swish."""
    return nn.ReLU(inplace=True) if name == "relu" else nn.Hardswish(inplace=True)


class SqueezeExcite(nn.Module):
    """Channel attention: global pool, 1x1 reduce (ReLU), 1x1 expand (hard sigmoid), scale."""

    def __init__(self, channels: int, hidden: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = nn.functional.hardsigmoid(self.expand(nn.functional.relu(self.reduce(s))))
        return x * s


class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm [+ activation]."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1, act: str | None = None) -> None:
        layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
        if act is not None:
            layers.append(activation(act))
        super().__init__(*layers)


class MBConv(nn.Module):
    """MobileNet's inverted bottleneck: 1x1 expand (absent at expand 1), kxk depthwise, optional
    squeeze-excite, 1x1 project; the input is added back when shapes match."""

    def __init__(self, block: ActiveBlock) -> None:
        super().__init__()
        b = block
        self.expand = ConvBN(b.in_channels, b.mid_channels, 1, act=b.act) if b.expand != 1 else None
        self.depthwise = ConvBN(b.mid_channels, b.mid_channels, b.kernel, b.stride, groups=b.mid_channels, act=b.act)
        self.se = SqueezeExcite(b.mid_channels, b.se_channels) if b.se else None
        self.project = ConvBN(b.mid_channels, b.out_channels, 1)
        self.residual = b.residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x if self.expand is None else self.expand(x)
        out = self.depthwise(out)
        if self.se is not None:
            out = self.se(out)
        out = self.project(out)
        return out + x if self.residual else out


class OFASubnet(nn.Module):
    """One OFA MobileNetV3 sub-network: `forward` maps `N x in_channels x R x R` images (R the arch's
    resolution) to `N x num_classes` logits."""

    def __init__(self, blocks: Sequence[ActiveBlock], macro: OFAMacro, *, in_channels: int = 3, num_classes: int = 1000) -> None:
        super().__init__()
        m = macro
        self.stem = ConvBN(in_channels, m.stem_channels, 3, m.stem_stride, act="h_swish")
        self.first_block = MBConv(ActiveBlock(-1, -1, 3, 1, m.stem_channels, m.stem_channels, m.first_block_channels, 1, "relu", False))
        self.blocks = nn.Sequential(*(MBConv(b) for b in blocks))
        self.final_expand = ConvBN(m.stages[-1].channels, m.final_expand, 1, act="h_swish")
        self.feature_mix = nn.Sequential(nn.Conv2d(m.final_expand, m.feature_mix, 1, bias=False), nn.Hardswish(inplace=True))
        self.classifier = nn.Sequential(nn.Dropout(m.dropout), nn.Linear(m.feature_mix, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.final_expand(self.blocks(self.first_block(self.stem(x))))
        x = self.feature_mix(x.mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))


__all__ = ["ConvBN", "MBConv", "OFASubnet", "SqueezeExcite", "activation"]
