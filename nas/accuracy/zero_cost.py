"""Zero-cost proxies: scores of an untrained network on one mini-batch that rank architectures.

Why: a proxy costs one forward/backward pass instead of a training run, so it can rank thousands of
candidates or pre-filter a search. Definitions follow Abdelfattah et al. 2021 ("Zero-cost proxies for
lightweight NAS": snip, grad_norm, fisher, jacob_cov, synflow, computed per conv/linear weight and summed
over the network) and Mellor et al. 2021 (NWOT / NASWOT: log-determinant of the kernel of binary ReLU
codes). All data-dependent proxies share one forward pass of the network in training mode (as the
reference implementations run them) and differ only in what they read from it; synflow is data-free
(an all-ones input through a BN-free, |weight| copy of the network in float64).

Any `(inputs, targets)` works: `inputs` is an `n x C x H x W` float tensor, `targets` `n` class indices.
Tests and benchmarks use `digits_batch()` (scikit-learn's 8x8 digits, upsampled to 3x32x32).

Example:
    >>> from nas.spaces import get_space
    >>> space = get_space("nb201")
    >>> arch = space.from_string("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|")
    >>> X, y = digits_batch(8, seed=0)
    >>> scores = arch_proxies(space, arch, X, y, proxies=("nwot", "params"), seed=0)
    >>> sorted(scores), X.shape
    (['nwot', 'params'], torch.Size([8, 3, 32, 32]))
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from nas.objectives import PerArchProvider, Tier
from nas.spaces.base import Arch, InputSpec, SearchSpace

PROXIES: tuple[str, ...] = ("synflow", "snip", "grad_norm", "fisher", "jacob_cov", "nwot", "params", "flops")
_DATA_PROXIES = frozenset({"snip", "grad_norm", "fisher", "jacob_cov", "nwot"})
_LOSS_PROXIES = frozenset({"snip", "grad_norm", "fisher"})


class ZeroCostInputError(ValueError):
    """Unknown proxy names or an unusable mini-batch."""


def digits_batch(n: int = 64, *, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` scikit-learn digits as `n x 3 x size x size` float32 (bilinear upsampled, standardised) and labels.

    Why digits: the only real images available offline; the proxies need a realistic input distribution,
    not the task itself.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    if not 1 <= n <= len(digits.target):
        raise ZeroCostInputError(f"digits_batch needs 1 <= n <= {len(digits.target)}, got {n}")
    rows = np.random.default_rng(seed).choice(len(digits.target), size=n, replace=False)
    images = torch.tensor(digits.images[rows] / 16.0, dtype=torch.float32).unsqueeze(1)
    images = nn.functional.interpolate(images, size=(size, size), mode="bilinear", align_corners=False)
    images = (images - images.mean()) / images.std()
    return images.expand(-1, 3, -1, -1).contiguous(), torch.tensor(digits.target[rows], dtype=torch.int64)


def _check_proxies(proxies: Sequence[str]) -> tuple[str, ...]:
    names = tuple(proxies)
    unknown = [p for p in names if p not in PROXIES]
    if unknown or not names:
        raise ZeroCostInputError(f"unknown zero-cost proxies {unknown}; expected some of {list(PROXIES)}")
    return names


def _weighted_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


def synflow(net: nn.Module, input_shape: Sequence[int]) -> float:
    """Synaptic flow (Tanaka et al. 2020) as Abdelfattah et al. score it: sum over conv/linear weights of
    |w * dR/dw|, where R is the summed output for an all-ones input through a copy with |weights|, no BN,
    in float64. `input_shape` is `C x H x W`."""
    clone = copy.deepcopy(net).double()
    for name, module in list(clone.named_modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, nn.modules.batchnorm._BatchNorm):
                setattr(module, child_name, nn.Identity())
    with torch.no_grad():
        for p in clone.parameters():
            p.abs_()
    clone.zero_grad()
    clone.train()
    clone(torch.ones((1, *input_shape), dtype=torch.float64)).sum().backward()
    total = 0.0
    for layer in _weighted_layers(clone):
        if layer.weight.grad is not None:
            total += float((layer.weight * layer.weight.grad).abs().sum().detach())
    return total


def _nwot_score(codes: list[torch.Tensor]) -> float:
    """log|K| with K = sum over ReLUs of c c^T + (1-c)(1-c)^T, c the `n x units` binary codes."""
    n = codes[0].shape[0]
    kernel = torch.zeros(n, n, dtype=torch.float64)
    for c in codes:
        # (1-c)(1-c)^T = units - r_i - r_j + c c^T with r the active counts: one matmul per ReLU, and
        # float32 is exact here (integer sums far below 2**24)
        c = c.to(torch.float32)
        active = c.sum(dim=1, dtype=torch.float64)
        kernel += 2 * (c @ c.T).double() - active[:, None] - active[None, :] + c.shape[1]
    return float(torch.linalg.slogdet(kernel)[1])


def _jacob_cov_score(jacobian: torch.Tensor) -> float:
    """-sum(log(v + k) + 1/(v + k)) over eigenvalues v of the correlation matrix of per-sample input
    Jacobians (`n x features`), k = 1e-5 (Mellor et al.'s first proxy, as Abdelfattah et al. use it)."""
    flat = jacobian.reshape(jacobian.shape[0], -1).double().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(flat)
    if not np.isfinite(corr).all():
        return float("nan")
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(np.clip(v, 0, None) + k) + 1.0 / (np.clip(v, 0, None) + k)))


def _flops(net: nn.Module, input_shape: Sequence[int]) -> float:
    """Multiply-accumulates (millions) of conv and linear layers for one input of shape `C x H x W`."""
    total = [0]

    def count(module: nn.Module, _: Any, out: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            total[0] += out[0].numel() * module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        else:
            total[0] += module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in _weighted_layers(net)]
    try:
        was_training = net.training
        net.eval()
        with torch.no_grad():
            net(torch.zeros((1, *input_shape)))
        net.train(was_training)
    finally:
        for h in hooks:
            h.remove()
    return total[0] / 1e6


def compute_proxies(
    net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, proxies: Sequence[str] = PROXIES, *, loss_fn: nn.Module | None = None
) -> dict[str, float]:
    """Zero-cost scores of `net` as built (untrained); larger means predicted-better for every proxy
    except `params` and `flops`, which are sizes (params in millions, flops in millions of MACs).

    Args:
        net: the network; it is modified only in its BN running statistics.
        inputs: `n x C x H x W` float mini-batch (n >= 2 for nwot and jacob_cov).
        targets: `n` integer class labels (used by snip, grad_norm, fisher).
        proxies: names from `PROXIES`.
        loss_fn: loss for the gradient-based proxies; cross-entropy by default.
    """
    names = _check_proxies(proxies)
    if inputs.ndim != 4 or len(inputs) != len(targets) or len(inputs) < 2:
        raise ZeroCostInputError(f"zero-cost proxies need inputs n x C x H x W with n >= 2 and one target each; got {tuple(inputs.shape)} and {tuple(targets.shape)}")
    out: dict[str, float] = {}
    if "params" in names:
        out["params"] = sum(p.numel() for p in net.parameters()) / 1e6
    if "flops" in names:
        out["flops"] = _flops(net, inputs.shape[1:])
    if "synflow" in names:
        out["synflow"] = synflow(net, inputs.shape[1:])
    if _DATA_PROXIES & set(names):
        out.update(_data_proxies(net, inputs, targets, names, loss_fn or nn.CrossEntropyLoss()))
    return {name: out[name] for name in names}


def _data_proxies(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, names: Sequence[str], loss_fn: nn.Module) -> dict[str, float]:
    layers = _weighted_layers(net)
    acts: dict[nn.Module, torch.Tensor] = {}
    codes: list[torch.Tensor] = []
    hooks = [layer.register_forward_hook(lambda m, _i, o: acts.__setitem__(m, o)) for layer in layers]
    if "nwot" in names:
        hooks += [m.register_forward_hook(lambda _m, i, _o: codes.append((i[0].detach() > 0).flatten(1))) for m in net.modules() if isinstance(m, nn.ReLU)]
    x = inputs.detach().clone().requires_grad_("jacob_cov" in names)
    net.train()
    net.zero_grad()
    try:
        logits = net(x)
    finally:
        for h in hooks:
            h.remove()
    out: dict[str, float] = {}
    used = [layer for layer in layers if layer in acts]
    w_grads: Sequence[torch.Tensor | None] = ()
    a_grads: Sequence[torch.Tensor | None] = ()
    if _LOSS_PROXIES & set(names):  # nwot and jacob_cov need no loss backward (a third of the cost)
        loss = loss_fn(logits, targets)
        grads = torch.autograd.grad(loss, [m.weight for m in used] + [acts[m] for m in used], retain_graph="jacob_cov" in names, allow_unused=True)
        w_grads, a_grads = grads[: len(used)], grads[len(used) :]
    if "snip" in names:
        out["snip"] = float(sum(float((m.weight.detach() * g).abs().sum()) for m, g in zip(used, w_grads) if g is not None))
    if "grad_norm" in names:
        out["grad_norm"] = float(sum(float(g.norm()) for g in w_grads if g is not None))
    if "fisher" in names:
        total = 0.0
        for m, g in zip(used, a_grads):
            if g is None:
                continue
            act = acts[m].detach()
            per_channel = (act * g).sum(dim=tuple(range(2, act.ndim))) if act.ndim > 2 else act * g  # n x channels
            # one value per output channel, spread over that channel's weights as the reference does
            total += float((0.5 * per_channel.pow(2).mean(dim=0)).sum()) * (m.weight[0].numel())
        out["fisher"] = total
    if "jacob_cov" in names:
        (jac,) = torch.autograd.grad(logits.sum(), x, allow_unused=True)
        # no path from input to output (every cell's output node fed only by `none`): undefined, as the
        # reference implementation's failed correlation gives
        out["jacob_cov"] = float("nan") if jac is None else _jacob_cov_score(jac)
    if "nwot" in names:
        out["nwot"] = _nwot_score(codes)
    return out


def arch_proxies(
    space: SearchSpace,
    arch: Arch,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    proxies: Sequence[str] = PROXIES,
    *,
    seed: int = 0,
    num_classes: int | None = None,
) -> dict[str, float]:
    """Builds `arch` for the batch's input (channels, size) with initial weights drawn from `seed` (torch's
    global RNG is left as it was) and scores it; `num_classes` defaults to the number of distinct classes
    the targets could hold (max + 1)."""
    classes = int(num_classes if num_classes is not None else int(targets.max()) + 1)
    _, channels, height, width = inputs.shape
    spec = InputSpec(int(channels), int(height), int(width), max(2, classes))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = space.build(arch, spec)
    return compute_proxies(net, inputs, targets, proxies)


class ZeroCostProvider(PerArchProvider):
    """One proxy as a cheap accuracy stand-in: `evaluate(archs)` gives scores (higher = predicted better),
    not accuracies in %, so use it to rank or pre-filter, never to report accuracy. Tier `estimate`.

    Args:
        space: the space the archs come from (it must `build` them).
        proxy: one of `PROXIES`.
        inputs, targets: the mini-batch (see `digits_batch`).
        seed: initial weights of every built network.
    """

    metric = "accuracy"
    tier = Tier.ESTIMATE

    def __init__(self, space: SearchSpace, proxy: str, inputs: torch.Tensor, targets: torch.Tensor, *, seed: int = 0) -> None:
        (self.proxy,) = _check_proxies([proxy])
        self.space = space
        self.inputs, self.targets, self.seed = inputs, targets, seed
        _, channels, height, width = inputs.shape
        self.input_spec = InputSpec(int(channels), int(height), int(width), max(2, int(targets.max()) + 1))

    def _value(self, arch: Arch) -> float:
        return arch_proxies(self.space, arch, self.inputs, self.targets, (self.proxy,), seed=self.seed)[self.proxy]

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "proxy": self.proxy, "batch": list(self.inputs.shape), "seed": self.seed}


def data_batch(spec: str, n: int, *, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` random samples of dataset `spec` (see `nas.data`), channels standardised, and their labels."""
    from nas.data import load_data

    data = load_data(spec)
    if not 1 <= n <= len(data.y):
        raise ZeroCostInputError(f"zero-cost batch of {n} from {spec}: expected 1 <= batch_size <= {len(data.y)}")
    rows = np.sort(np.random.default_rng(seed).choice(len(data.y), size=n, replace=False))
    x = torch.from_numpy(data.x[rows])
    x = (x - x.mean(dim=(0, 2, 3), keepdim=True)) / x.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return x.contiguous(), torch.from_numpy(data.y[rows])


__all__ = ["PROXIES", "ZeroCostInputError", "ZeroCostProvider", "arch_proxies", "compute_proxies", "data_batch", "digits_batch", "synflow"]
