"""An ensemble of small MLPs (PyTorch), BANANAS-style: the spread of its members is the uncertainty.

Why an ensemble in one set of batched weights: members differ only in their initial weights, so training
all of them as one `n_members x ...` tensor program is as cheap as training one, and `predict(X,
return_std=True)` gets an uncertainty for free (White et al. 2021, BANANAS).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nas.accuracy.predictors._base import ArchRegressor, standardise
from nas.accuracy.predictors._torch import member_seeds, train


class _EnsembleMLP(nn.Module):
    """`n_members` independent MLPs d -> hidden... -> 1, evaluated together: `n x d` -> `n_members x n`."""

    def __init__(self, n_features: int, hidden: tuple[int, ...], n_members: int, seeds: list[int]) -> None:
        super().__init__()
        sizes = [n_features, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            w = torch.empty(n_members, fan_in, fan_out, dtype=torch.float64)
            b = torch.empty(n_members, 1, fan_out, dtype=torch.float64)
            bound = 1.0 / np.sqrt(fan_in)
            for m, seed in enumerate(seeds):
                g = torch.Generator().manual_seed(seed + 7919 * len(self.weights))
                w[m] = (torch.rand(fan_in, fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound
                b[m] = (torch.rand(1, fan_out, generator=g, dtype=torch.float64) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = torch.relu(h)
        return h.squeeze(-1)


class MLPEnsemblePredictor(ArchRegressor):
    """Ensemble of ReLU MLPs on standardised encodings and targets, trained with Adam on MSE.

    Args:
        n_members: ensemble size; `predict(X, return_std=True)` needs at least 2.
        hidden: widths of the hidden layers.
        epochs: passes over the training set.
        lr: Adam learning rate.
        weight_decay: L2 penalty (Adam's).
        batch_size: rows per step; the whole set when it is smaller.
        random_state: seed of initial weights and minibatch order.

    Example:
        >>> X = np.random.default_rng(0).random((30, 4)); y = X @ [1.0, 2.0, 0.0, -1.0]
        >>> model = MLPEnsemblePredictor(n_members=3, epochs=50, random_state=0).fit(X, y)
        >>> mean, std = model.predict(X[:5], return_std=True)
        >>> mean.shape, std.shape
        ((5,), (5,))
    """

    def __init__(
        self,
        n_members: int = 5,
        hidden: tuple[int, ...] = (64, 64),
        epochs: int = 300,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 512,
        random_state: int | None = None,
    ) -> None:
        self.n_members = n_members
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.random_state = random_state

    def _gives_std(self) -> bool:
        return self.n_members >= 2

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        if self.n_members < 1 or self.epochs < 1:
            raise ValueError(f"MLPEnsemblePredictor needs n_members >= 1 and epochs >= 1, got {self.n_members} and {self.epochs}")
        self.x_mean_, self.x_scale_ = standardise(X)
        self.y_mean_, self.y_scale_ = (float(v[0]) for v in standardise(y[:, None]))
        seeds = member_seeds(self.random_state, self.n_members + 1)
        self.net_ = _EnsembleMLP(X.shape[1], tuple(self.hidden), self.n_members, seeds[:-1])
        inputs = torch.tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float64)
        targets = torch.tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float64)

        def loss_of(rows: torch.Tensor) -> torch.Tensor:
            return ((self.net_(inputs[rows]) - targets[rows]) ** 2).mean()

        self.net_.train()
        self.final_loss_ = train(
            loss_of,
            list(self.net_.parameters()),
            len(X),
            epochs=self.epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            batch_size=self.batch_size,
            generator=torch.Generator().manual_seed(seeds[-1]),
        )

    def _predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        with torch.no_grad():
            per_member = self.net_(torch.tensor((X - self.x_mean_) / self.x_scale_, dtype=torch.float64)).numpy()
        per_member = per_member * self.y_scale_ + self.y_mean_  # n_members x n_archs
        return per_member.mean(axis=0), (per_member.std(axis=0) if return_std else None)
