"""A graph network (GIN-style message passing, PyTorch) on the cell's adjacency matrix and node ops.

Why a graph model: the adjacency + op encoding states the cell as the DAG it is, and message passing
along its edges (both directions) lets the model see which ops feed which, as the GCN/GIN predictors of
BRP-NAS and NPENAS do. The estimator takes the flattened encoding the space's `adjacency` kind gives
(`n_archs x (n_nodes*(n_nodes-1)/2 + n_nodes*n_labels)`: upper triangle, then node one-hots) and reshapes
it inside, so it stays a plain 2-D regressor: with `n_nodes=None` each row is read as one node's labels (no
edges), so any 2-D array fits and scikit-learn's `check_estimator` passes (tests/accuracy/test_predictors.py).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from nas.accuracy.predictors._base import ArchRegressor, PredictorInputError, standardise
from nas.accuracy.predictors._torch import member_seeds, reset_linear_, train


def split_adjacency(X: np.ndarray, n_nodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Flattened encoding (`n x n_features`) -> `adj` (`n x n_nodes x n_nodes`) and `ops` (`n x n_nodes x n_labels`)."""
    n_edges = n_nodes * (n_nodes - 1) // 2
    rest = X.shape[1] - n_edges
    if n_nodes < 1 or rest <= 0 or rest % n_nodes:
        raise PredictorInputError(
            f"{X.shape[1]} features do not form an adjacency encoding of {n_nodes} nodes "
            f"(expected {n_edges} + {n_nodes} * n_labels); use encoding 'adjacency'"
        )
    adj = np.zeros((len(X), n_nodes, n_nodes))
    iu = np.triu_indices(n_nodes, k=1)
    adj[:, iu[0], iu[1]] = X[:, :n_edges]
    return adj, X[:, n_edges:].reshape(len(X), n_nodes, rest // n_nodes)


class _DirectedLayer(nn.Module):
    """h_v <- h_v + ReLU(W_self h_v + W_in sum_{u->v} h_u + W_out sum_{v->w} h_w)."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.self_ = nn.Linear(hidden, hidden)
        self.incoming = nn.Linear(hidden, hidden, bias=False)
        self.outgoing = nn.Linear(hidden, hidden, bias=False)

    def forward(self, h: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        return h + torch.relu(self.self_(h) + self.incoming(adj.transpose(1, 2) @ h) + self.outgoing(adj @ h))


class _GraphNet(nn.Module):
    """Embeds node labels, passes messages, reads out mean-of-nodes and the output node -> one number."""

    def __init__(self, n_labels: int, hidden: int, n_layers: int) -> None:
        super().__init__()
        self.embed = nn.Linear(n_labels, hidden)
        self.layers = nn.ModuleList(_DirectedLayer(hidden) for _ in range(n_layers))
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, adj: torch.Tensor, ops: torch.Tensor) -> torch.Tensor:
        h = self.embed(ops)
        for layer in self.layers:
            h = layer(h, adj)
        return self.head(torch.cat([h.mean(dim=1), h[:, -1]], dim=1)).squeeze(-1)


class GINPredictor(ArchRegressor):
    """Ensemble of graph networks on the flattened adjacency + op encoding.

    Args:
        n_nodes: nodes of the encoded graph (NB201: 8 = input, 6 edge-op nodes, output); `make_predictor`
            sets it from the space. None: one node whose labels are the row (no message passing, an MLP
            in effect), so the estimator accepts any `n x d` array as scikit-learn's checks require.
        n_members: ensemble size; `predict(X, return_std=True)` needs at least 2.
        hidden: width of node states.
        n_layers: message-passing rounds.
        epochs, lr, weight_decay, batch_size: Adam training on MSE of standardised targets.
        random_state: seed of weights and minibatch order.
    """

    def __init__(
        self,
        n_nodes: int | None = None,
        n_members: int = 3,
        hidden: int = 64,
        n_layers: int = 3,
        epochs: int = 200,
        lr: float = 3e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 128,
        random_state: int | None = None,
    ) -> None:
        self.n_nodes = n_nodes
        self.n_members = n_members
        self.hidden = hidden
        self.n_layers = n_layers
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.random_state = random_state

    def _gives_std(self) -> bool:
        return self.n_members >= 2

    def _graphs(self, X: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """`adj` and `ops` in float64, as the MLP ensemble: in float32 a row's prediction moved by 2e-7
        with the rows batched beside it, which scikit-learn's subset-invariance check refuses."""
        adj, ops = split_adjacency(X, self.n_nodes or 1)
        return torch.tensor(adj, dtype=torch.float64), torch.tensor(ops, dtype=torch.float64)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        adj, ops = self._graphs(X)
        self.y_mean_, self.y_scale_ = (float(v[0]) for v in standardise(y[:, None]))
        targets = torch.tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float64)
        seeds = member_seeds(self.random_state, self.n_members)
        self.nets_ = []
        for seed in seeds:
            generator = torch.Generator().manual_seed(seed)
            net = reset_linear_(_GraphNet(ops.shape[2], self.hidden, self.n_layers).double(), generator)

            def loss_of(rows: torch.Tensor, net: _GraphNet = net) -> torch.Tensor:
                return ((net(adj[rows], ops[rows]) - targets[rows]) ** 2).mean()

            train(loss_of, list(net.parameters()), len(X), epochs=self.epochs, lr=self.lr, weight_decay=self.weight_decay, batch_size=self.batch_size, generator=generator)
            net.eval()
            self.nets_.append(net)

    def _predict(self, X: np.ndarray, return_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        adj, ops = self._graphs(X)
        with torch.no_grad():
            per_member = np.stack([net(adj, ops).numpy().astype(np.float64) for net in self.nets_])
        per_member = per_member * self.y_scale_ + self.y_mean_
        return per_member.mean(axis=0), (per_member.std(axis=0) if return_std else None)
