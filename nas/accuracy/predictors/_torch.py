"""Small PyTorch helpers shared by the neural predictors: seeded initialisation and a training loop.

Why here: the MLP ensemble and the graph network must be reproducible from `random_state` alone, so every
random draw (initial weights, minibatch order) comes from an explicit `torch.Generator`, never from
torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn


def member_seeds(random_state: int | None, n: int) -> list[int]:
    """`n` independent seeds derived from `random_state` (fresh entropy when None)."""
    return [int(s) for s in np.random.default_rng(random_state).integers(0, 2**31 - 1, size=n)]


def reset_linear_(module: nn.Module, generator: torch.Generator) -> nn.Module:
    """Re-draws every `nn.Linear` as PyTorch's default does, U(+-1/sqrt(fan_in)), from `generator`."""
    with torch.no_grad():
        for layer in module.modules():
            if isinstance(layer, nn.Linear):
                bound = 1.0 / np.sqrt(layer.in_features)
                layer.weight.copy_((torch.rand(layer.weight.shape, generator=generator, dtype=layer.weight.dtype) * 2 - 1) * bound)
                if layer.bias is not None:
                    layer.bias.copy_((torch.rand(layer.bias.shape, generator=generator, dtype=layer.bias.dtype) * 2 - 1) * bound)
    return module


def train(
    loss_of: Callable[[torch.Tensor], torch.Tensor],
    parameters: Sequence[torch.Tensor],
    n_samples: int,
    *,
    epochs: int,
    lr: float,
    weight_decay: float,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """Adam on `loss_of(batch_indices)` for `epochs` passes over `n_samples` rows; returns the last loss.

    Full batch when `n_samples <= batch_size` (the usual case for NAS predictors: tens to hundreds of
    archs), else minibatches in an order drawn from `generator`.
    """
    optimiser = torch.optim.Adam(list(parameters), lr=lr, weight_decay=weight_decay)
    everything = torch.arange(n_samples)
    loss = torch.zeros(())
    for _ in range(epochs):
        order = everything if n_samples <= batch_size else torch.randperm(n_samples, generator=generator)
        for start in range(0, n_samples, batch_size):
            optimiser.zero_grad()
            loss = loss_of(order[start : start + batch_size])
            loss.backward()
            optimiser.step()
    return float(loss.detach())
