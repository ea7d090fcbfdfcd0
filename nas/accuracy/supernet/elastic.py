"""The elastic OFA MobileNetV3 supernet: one set of weights, any sub-network of the space active at once.

Why these mechanisms (Cai et al., ICLR 2020): a sub-network inherits the supernet's weights, so every
elastic dimension must map a smaller choice onto the largest weights:

- **kernel**: a kxk depthwise filter is the centre of the next larger one passed through a learned
  (k*k) x (k*k) transformation (7 -> 5 -> 3), one matrix per block and kernel step, shared by channels;
- **expand ratio**: a block uses the first `mid` channels of its inverted bottleneck; before the expand
  ratio becomes elastic, channels are sorted by importance (L1 norm of the project weights that read
  them), so the first channels are the ones that matter;
- **depth**: a stage runs its first `d` blocks;
- **resolution**: the input is resized to the sub-network's resolution (done by the caller).

BatchNorm layers keep statistics of the largest network; a sub-network's are recalibrated on a few
training batches before it is evaluated (`recalibrate_bn`). `extract(arch)` copies a sub-network's
weights into a stand-alone `OFASubnet` that computes exactly what the supernet computes with that
sub-network active.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nas.spaces.base import Arch
from nas.spaces.ofa_mbv3 import ActiveBlock, OFAMobileNetV3Space, make_divisible
from nas.spaces.ofa_mbv3_network import MBConv, OFASubnet, activation


def _bn(x: torch.Tensor, bn: nn.BatchNorm2d, channels: int) -> torch.Tensor:
    """`bn` applied to the first `channels` channels (its running statistics sliced in place)."""
    if channels == bn.num_features:
        return bn(x)
    momentum = 0.0
    if bn.training and bn.track_running_stats:
        bn.num_batches_tracked += 1
        momentum = (1.0 / float(bn.num_batches_tracked)) if bn.momentum is None else bn.momentum
    return F.batch_norm(
        x,
        bn.running_mean[:channels],
        bn.running_var[:channels],
        bn.weight[:channels],
        bn.bias[:channels],
        bn.training or not bn.track_running_stats,
        momentum,
        bn.eps,
    )


def _copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, index: torch.Tensor | slice) -> None:
    target.weight.data.copy_(source.weight.data[index])
    target.bias.data.copy_(source.bias.data[index])
    target.running_mean.copy_(source.running_mean[index])
    target.running_var.copy_(source.running_var[index])
    target.num_batches_tracked.copy_(source.num_batches_tracked)
    target.momentum, target.eps = source.momentum, source.eps


class ElasticMBConv(nn.Module):
    """An MBConv block at its largest kernel and expand ratio; `active` picks the sub-block it runs.

    Args:
        block: the block at its largest choices (in/out channels, stride, activation, squeeze-excite).
        kernels: the kernel choices (the largest is stored).
        expands: the expand choices (the largest is stored).
    """

    def __init__(self, block: ActiveBlock, kernels: tuple[int, ...], expands: tuple[int, ...]) -> None:
        super().__init__()
        self.in_channels, self.out_channels, self.stride = block.in_channels, block.out_channels, block.stride
        self.kernels, self.expands = kernels, expands
        self.max_mid = make_divisible(round(block.in_channels * max(expands)))
        k = max(kernels)
        self.expand_conv = nn.Conv2d(block.in_channels, self.max_mid, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(self.max_mid)
        self.depthwise = nn.Conv2d(self.max_mid, self.max_mid, k, block.stride, k // 2, groups=self.max_mid, bias=False)
        self.depthwise_bn = nn.BatchNorm2d(self.max_mid)
        self.transforms = nn.ParameterDict(
            {f"{big}to{small}": nn.Parameter(torch.eye(small * small)) for big, small in zip(kernels[:0:-1], kernels[-2::-1])}
        )
        self.act = activation(block.act)
        self.se = block.se
        if block.se:
            self.se_max = make_divisible(self.max_mid // 4)
            self.se_reduce = nn.Conv2d(self.max_mid, self.se_max, 1, bias=True)
            self.se_expand = nn.Conv2d(self.se_max, self.max_mid, 1, bias=True)
        self.project = nn.Conv2d(self.max_mid, block.out_channels, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(block.out_channels)
        self.active_kernel, self.active_expand = k, max(expands)

    def mid(self, expand: int | None = None) -> int:
        return make_divisible(round(self.in_channels * (self.active_expand if expand is None else expand)))

    def kernel_filter(self, kernel: int, mid: int) -> torch.Tensor:
        """The `mid x 1 x kernel x kernel` depthwise filter: centre crops of the largest filter, each
        passed through its learned transformation, step by step down to `kernel`."""
        weight = self.depthwise.weight[:mid]
        size = weight.shape[-1]
        for small in sorted((k for k in self.kernels if kernel <= k < size), reverse=True):
            start = (size - small) // 2
            centre = weight[:, :, start : start + small, start : start + small].reshape(mid, 1, small * small)
            weight = F.linear(centre, self.transforms[f"{size}to{small}"]).reshape(mid, 1, small, small)
            size = small
        return weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mid, k = self.mid(), self.active_kernel
        out = self.act(_bn(F.conv2d(x, self.expand_conv.weight[:mid]), self.expand_bn, mid))
        out = F.conv2d(out, self.kernel_filter(k, mid), None, self.stride, k // 2, 1, mid)
        out = self.act(_bn(out, self.depthwise_bn, mid))
        if self.se:
            hidden = make_divisible(mid // 4)
            s = out.mean((2, 3), keepdim=True)
            s = F.relu(F.conv2d(s, self.se_reduce.weight[:hidden, :mid], self.se_reduce.bias[:hidden]))
            s = F.hardsigmoid(F.conv2d(s, self.se_expand.weight[:mid, :hidden], self.se_expand.bias[:mid]))
            out = out * s
        out = _bn(F.conv2d(out, self.project.weight[:, :mid]), self.project_bn, self.out_channels)
        return out + x if self.stride == 1 and self.in_channels == self.out_channels else out

    @torch.no_grad()
    def sort_channels(self) -> None:
        """Reorder the bottleneck channels by importance (L1 norm of the project weights reading them),
        and the squeeze-excite hidden channels by the L1 norm of the weights they write, most important
        first: a smaller expand ratio then keeps the channels that matter."""
        order = torch.argsort(self.project.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
        self.project.weight.data = self.project.weight.data[:, order]
        if self.se:
            self.se_expand.weight.data = self.se_expand.weight.data[order]
            self.se_expand.bias.data = self.se_expand.bias.data[order]
            self.se_reduce.weight.data = self.se_reduce.weight.data[:, order]
            hidden = torch.argsort(self.se_expand.weight.abs().sum(dim=(0, 2, 3)), descending=True, stable=True)
            self.se_expand.weight.data = self.se_expand.weight.data[:, hidden]
            self.se_reduce.weight.data = self.se_reduce.weight.data[hidden]
            self.se_reduce.bias.data = self.se_reduce.bias.data[hidden]
        self.depthwise.weight.data = self.depthwise.weight.data[order]
        self.expand_conv.weight.data = self.expand_conv.weight.data[order]
        for bn in (self.depthwise_bn, self.expand_bn):
            bn.weight.data, bn.bias.data = bn.weight.data[order], bn.bias.data[order]
            bn.running_mean.copy_(bn.running_mean[order])
            bn.running_var.copy_(bn.running_var[order])

    @torch.no_grad()
    def extract_into(self, target: MBConv, kernel: int, expand: int) -> None:
        """Copy the weights of the sub-block (`kernel`, `expand`) into a stand-alone `MBConv`."""
        mid = self.mid(expand)
        assert target.expand is not None
        target.expand[0].weight.copy_(self.expand_conv.weight[:mid])
        _copy_bn(target.expand[1], self.expand_bn, slice(0, mid))
        target.depthwise[0].weight.copy_(self.kernel_filter(kernel, mid))
        _copy_bn(target.depthwise[1], self.depthwise_bn, slice(0, mid))
        if self.se:
            assert target.se is not None
            hidden = make_divisible(mid // 4)
            target.se.reduce.weight.copy_(self.se_reduce.weight[:hidden, :mid])
            target.se.reduce.bias.copy_(self.se_reduce.bias[:hidden])
            target.se.expand.weight.copy_(self.se_expand.weight[:mid, :hidden])
            target.se.expand.bias.copy_(self.se_expand.bias[:mid])
        target.project[0].weight.copy_(self.project.weight[:, :mid])
        _copy_bn(target.project[1], self.project_bn, slice(None))


class OFASupernet(nn.Module):
    """The whole OFA space as one network: `set_active(arch)` picks the sub-network `forward` runs.

    Args:
        space: an `OFAMobileNetV3Space`.
        in_channels, num_classes: from the data's input spec.
    """

    def __init__(self, space: OFAMobileNetV3Space, *, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.space = space
        largest = space.canonical(self.largest_arch(space))
        template = OFASubnet([], space.macro, in_channels=in_channels, num_classes=num_classes)
        self.stem, self.first_block = template.stem, template.first_block
        self.final_expand, self.feature_mix, self.classifier = template.final_expand, template.feature_mix, template.classifier
        self.blocks = nn.ModuleList(ElasticMBConv(b, space.kernels, space.expands) for b in space.active_blocks(largest))
        self.in_channels, self.num_classes = in_channels, num_classes
        self._depths = [space.max_depth] * len(space.macro.stages)
        self.active: Arch = largest

    @staticmethod
    def largest_arch(space: OFAMobileNetV3Space) -> Arch:
        """Every decision at its largest choice (largest resolution too)."""
        return Arch({d.name: max(d.choices) for d in space.decisions})

    def set_active(self, arch: Mapping[str, Any]) -> None:
        """Make `arch` (validated) the sub-network `forward` runs."""
        arch = self.space.validate(arch)
        for s in range(len(self.space.macro.stages)):
            self._depths[s] = int(arch[f"stage{s + 1}_depth"])
        for b, block in enumerate(self.blocks):
            name = self.space.block_name(b)
            block.active_kernel, block.active_expand = int(arch[f"{name}_kernel"]), int(arch[f"{name}_expand"])
        self.active = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.first_block(self.stem(x))
        for s in range(len(self.space.macro.stages)):
            for b in self.space.stage_blocks(s)[: self._depths[s]]:
                x = self.blocks[b](x)
        x = self.feature_mix(self.final_expand(x).mean((2, 3), keepdim=True))
        return self.classifier(x.flatten(1))

    def sort_channels(self) -> None:
        """Sort every block's bottleneck channels by importance (before the expand ratio becomes elastic)."""
        for block in self.blocks:
            block.sort_channels()

    @torch.no_grad()
    def extract(self, arch: Mapping[str, Any]) -> OFASubnet:
        """The stand-alone sub-network of `arch` with the supernet's weights (BN statistics as they are now)."""
        arch = self.space.validate(arch)
        active = self.space.active_blocks(arch)
        subnet = OFASubnet(active, self.space.macro, in_channels=self.in_channels, num_classes=self.num_classes)
        subnet.stem.load_state_dict(self.stem.state_dict())
        subnet.first_block.load_state_dict(self.first_block.state_dict())
        for target, blk in zip(subnet.blocks, active):
            self.blocks[blk.index].extract_into(target, blk.kernel, blk.expand)
        subnet.final_expand.load_state_dict(self.final_expand.state_dict())
        subnet.feature_mix.load_state_dict(self.feature_mix.state_dict())
        subnet.classifier.load_state_dict(self.classifier.state_dict())
        return subnet


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every BatchNorm's statistics of `module` (as it is configured now) from `batches`:
    reset, then a cumulative average over forward passes in training mode; the module ends in eval mode.

    Why: the supernet's statistics are the largest network's (or a mixture of many sub-networks');
    a smaller sub-network's activations have other statistics, and inherited accuracy without this is
    close to chance (OFA recalibrates on 2,000 training images).
    """
    bns = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    saved = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    module.train()
    for x in batches:
        module(x)
    for bn, momentum in zip(bns, saved):
        bn.momentum = momentum
    module.eval()


def sample_arch(space: OFAMobileNetV3Space, rng: np.random.Generator, allowed: Mapping[str, tuple[int, ...]]) -> Arch:
    """A canonical arch with each kernel/expand/depth/resolution drawn uniformly from `allowed[...]`
    (keys `kernels`, `expands`, `depths`, `resolutions`; missing keys: the space's choices)."""
    pools = {"kernel": allowed.get("kernels", space.kernels), "expand": allowed.get("expands", space.expands)}
    depths, resolutions = allowed.get("depths", space.depths), allowed.get("resolutions", space.resolutions)
    choices: dict[str, Any] = {"resolution": int(rng.choice(resolutions))}
    for d in space.decisions[1:]:
        if d.name.endswith("_depth"):
            choices[d.name] = int(rng.choice(depths))
        else:
            choices[d.name] = int(rng.choice(pools[d.name.rsplit("_", 1)[1]]))
    return space.canonical(Arch(choices))


__all__ = ["ElasticMBConv", "OFASupernet", "recalibrate_bn", "sample_arch"]
