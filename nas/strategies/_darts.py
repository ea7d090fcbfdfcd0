"""Latency-aware DARTS (Liu et al. 2019) as a one-shot strategy, with a switchable remedy against collapse.

Why: DARTS replaces thousands of trainings by one: every edge's choice becomes a softmax over operations,
the shared weights and the architecture weights are trained by alternating gradient steps (weights on
one half of the training split, architecture weights on the other), and the strongest op of each edge
is kept. With the relaxed cell's expected cost in the architecture loss, `loss + lambda * E[cost] /
mean cost`, each latency weight lambda finds one point of the accuracy-cost trade-off; a sweep of
weights yields the front. The expected cost is `sum(softmax weight x cost of that choice)`, with
per-choice costs fitted (least squares) to the cost provider's whole-network costs of the space,
reached through the search context: the strategy never opens a LUT. How well those additive costs rank
whole networks is measured (held-out Spearman) and stored with the artefacts.

Plain DARTS collapses to parameter-free operations (54 % on NB201's CIFAR-10). Remedies, each with a
weights-only warm-up (a third of the epochs) so parametric ops are trained before they compete:
`beta_decay` (Ye et al. 2022: penalise the log-sum-exp of the architecture parameters; the default),
`dirichlet` (DrNAS, Chen et al. 2021: architecture weights are samples of a Dirichlet whose
concentrations are learned, which smooths the landscape), `none` (plain DARTS, no warm-up).

Artefacts (`RUN/oneshot/darts/`): `costs.json` (the fitted per-choice costs and their quality), and
per latency weight `sweep_KK.json` (selected arch, architecture weights, per-epoch history) and
`supernet_KK.pt` (its shared weights, a state_dict). Each is written atomically when its weight has
finished, so a killed run resumes after the last finished weight.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nas._io import write_atomic
from nas.spaces.base import Arch, SearchSpace
from nas.strategies._base import SearchContext
from nas.strategies._oneshot import OneShotStrategy

if TYPE_CHECKING:
    from nas.strategies._relaxed import Relaxation

REMEDIES = ("dirichlet", "beta_decay", "none")
#: Archs sampled to fit per-choice costs in spaces too large to list.
COST_SAMPLES = 1000


class OneShotError(ValueError):
    """A one-shot search that cannot go on (diverged architecture weights); one line."""


@dataclass(frozen=True)
class ChoiceCosts:
    """Per-choice costs of a relaxation (`n_edges x n_ops`) fitted to whole-network costs.

    `predicted = intercept + sum(indicators * costs)`; `spearman` is measured on a fifth of the archs
    held out of the fit; `median_error` and `p90_error` are relative errors over all fitted archs (0
    when the cost is additive over the choices; near-empty cells of a few microseconds inflate them).
    """

    metric: str
    costs: np.ndarray
    intercept: float
    mean: float
    spearman: float
    median_error: float
    p90_error: float
    n_archs: int

    def describe(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "intercept": self.intercept, "mean": self.mean, "spearman_held_out": self.spearman,
            "median_relative_error": self.median_error, "p90_relative_error": self.p90_error, "n_archs": self.n_archs, "costs": self.costs.tolist(),
        }


def fit_choice_costs(relaxation: Relaxation, context: SearchContext, metric: str, *, seed: int = 0) -> ChoiceCosts:
    """Fit per-choice costs of `metric` (a known metric of `context`) over the space: every arch of a
    listable space, else `COST_SAMPLES` random ones. A choice no arch with a cost holds is named."""
    from scipy.stats import spearmanr

    space = relaxation.space
    rng = np.random.default_rng(seed)
    archs = space.enumerate() if space.can_list() else [space.sample(rng) for _ in range(COST_SAMPLES)]
    if context.known is None:
        raise ValueError(f"strategy darts needs the costs of {metric} from the run's cost provider; none was given")
    try:
        y = np.asarray(context.known(archs)[metric], dtype=float)
    except (KeyError, ValueError) as exc:
        raise ValueError(f"{metric} cannot price the relaxed space of {space.name!r}: {str(exc).splitlines()[0]}") from None
    X = relaxation.indicators(archs)
    ok = np.isfinite(y)
    covered = X[ok].sum(axis=0) > 0
    held = X.sum(axis=0) > 0
    missing = [name for name, c, h in zip(relaxation.choice_names(), covered, held) if h and not c]
    if missing:
        raise ValueError(f"{metric} has no cost for choice(s) {missing[:5]}{' ...' if len(missing) > 5 else ''} of space {space.name!r}; give a cost source that prices every op")
    X, y = X[ok], y[ok]
    design = np.hstack([X, np.ones((len(y), 1))])
    order = rng.permutation(len(y))
    test, train = order[: len(y) // 5], order[len(y) // 5 :]
    coef, *_ = np.linalg.lstsq(design[train], y[train], rcond=None)
    scale = max(float(np.abs(y).max()), 1e-12)  # rounded, so float noise does not split ties of equal costs
    spearman = float(spearmanr(np.round(design[test] @ coef / scale, 9), y[test]).statistic) if len(test) > 2 else float("nan")
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    fitted = design @ coef
    errors = np.abs(fitted - y) / np.maximum(np.abs(y), 1e-12)
    return ChoiceCosts(
        metric, coef[:-1].reshape(relaxation.shape), float(coef[-1]), float(y.mean()), spearman, float(np.median(errors)), float(np.quantile(errors, 0.9)), int(len(y))
    )


@dataclass(frozen=True)
class DartsSettings:
    """The resolved training settings of one sweep (sizes filled in from the data), hashed into artefacts."""

    data: str
    order: int
    remedy: str
    remedy_strength: float
    epochs: int
    warmup_epochs: int
    channels: int
    cells: int
    batch_size: int
    lr: float
    arch_lr: float
    weight_decay: float
    arch_weight_decay: float
    threads: int

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


class DartsStrategy(OneShotStrategy):
    """Differentiable search over a cell space (NB201 or DARTS), one sweep per latency weight.

    Args:
        latency_weights: the lambdas of `loss + lambda * E[cost] / mean cost`; one selected arch each.
        cost_metric: the known metric to trade against (default: the first known objective).
        data: the dataset spec the supernet trains on (`digits`, `npz:PATH`, ...).
        order: 1 (first-order DARTS) or 2 (the unrolled second-order approximation).
        remedy: `beta_decay` (default), `dirichlet` or `none` (plain DARTS).
        remedy_strength: the weight of the beta-decay penalty.
        epochs, channels, cells: the supernet's training length and size; None: the space's search
            setting for images of 16 px or more (50 epochs), a CPU size for smaller ones (digits: 30).
        warmup_epochs: epochs that train only the shared weights first (PC-DARTS, DrNAS), so parametric
            ops are trained before they compete with parameter-free ones; None: a third of the epochs
            with a remedy, 0 for plain DARTS (as the paper).
        batch_size, lr, arch_lr, weight_decay, arch_weight_decay: DARTS's optimisers (SGD with cosine
            schedule for weights, Adam for architecture weights); arch_lr None: 3e-4 at the full
            setting, 3e-3 at the CPU one (fewer steps).
        threads: torch threads (results are repeatable per thread count).
    """

    def __init__(
        self,
        space: SearchSpace,
        *,
        seed: int | None = None,
        context: SearchContext | None = None,
        latency_weights: Sequence[float] = (0.0, 0.1, 0.3, 1.0, 3.0),
        cost_metric: str | None = None,
        data: str = "digits",
        order: int = 1,
        remedy: str = "beta_decay",
        remedy_strength: float = 0.5,
        epochs: int | None = None,
        warmup_epochs: int | None = None,
        channels: int | None = None,
        cells: int | None = None,
        batch_size: int = 64,
        lr: float = 0.025,
        arch_lr: float | None = None,
        weight_decay: float = 3e-4,
        arch_weight_decay: float = 1e-3,
        threads: int = 1,
    ) -> None:
        from nas.strategies._relaxed import relaxation_of  # torch: imported only when the strategy is built

        super().__init__(space, seed=seed, context=context)
        self.relaxation = relaxation_of(space)
        weights = list(latency_weights) if isinstance(latency_weights, (list, tuple)) else None
        if not weights or any(isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0 for w in weights):
            raise ValueError(f"strategy darts: latency_weights must be a non-empty list of numbers >= 0, e.g. [0,0.1,0.3,1,3]; got {latency_weights!r}")
        self.latency_weights = [float(w) for w in weights]
        if order not in (1, 2):
            raise ValueError(f"strategy darts: order must be 1 (first order) or 2 (second order), got {order!r}")
        if remedy not in REMEDIES:
            raise ValueError(f"strategy darts: remedy must be one of {list(REMEDIES)}, got {remedy!r}")
        if warmup_epochs is not None and (isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0 or (epochs is not None and warmup_epochs >= epochs)):
            raise ValueError(f"strategy darts: warmup_epochs must be an integer >= 0 and below epochs, got {warmup_epochs!r}")
        for name, value in (("epochs", epochs), ("channels", channels), ("cells", cells), ("batch_size", batch_size), ("threads", threads)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"strategy darts: {name} must be a positive integer, got {value!r}")
        for name, value in (("lr", lr), ("arch_lr", arch_lr), ("remedy_strength", remedy_strength), ("weight_decay", weight_decay), ("arch_weight_decay", arch_weight_decay)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0):
                raise ValueError(f"strategy darts: {name} must be a number >= 0, got {value!r}")
        self.cost_metric = self._cost_metric(cost_metric)
        self._options = dict(
            data=data, order=order, remedy=remedy, remedy_strength=float(remedy_strength), epochs=epochs, warmup_epochs=warmup_epochs, channels=channels, cells=cells,
            batch_size=batch_size, lr=float(lr), arch_lr=arch_lr, weight_decay=float(weight_decay), arch_weight_decay=float(arch_weight_decay), threads=threads,
        )
        self.costs: ChoiceCosts | None = None
        if self.cost_metric is not None:
            self.costs = fit_choice_costs(self.relaxation, context, self.cost_metric, seed=seed or 0)  # type: ignore[arg-type]

    def _cost_metric(self, name: str | None) -> str | None:
        known = tuple(self.context.known_metrics) if self.context is not None else ()
        needs = any(w > 0 for w in self.latency_weights)
        if name is None:
            objectives = self.context.objectives.objectives if self.context is not None else ()
            candidates = [o.metric for o in objectives if o.metric in known and o.direction == "min"]
            if not candidates:
                if needs:
                    raise ValueError(f"strategy darts: latency_weights {self.latency_weights} need a cost objective known before evaluation (a LUT, table or count, e.g. latency@raspi4:min); the run has {list(known) or 'none'}")
                return None
            return candidates[0]
        if name not in known:
            raise ValueError(f"strategy darts: cost_metric {name!r} is not a known metric of the run; expected one of {list(known)}")
        return name

    # --- the lifecycle ---------------------------------------------------------------------------------
    def settings(self, input_size: int) -> DartsSettings:
        from nas.spaces.base import InputSpec

        o = self._options
        small = input_size < 16
        channels, cells = self.relaxation.default_size(InputSpec(1, input_size, input_size, 2))
        epochs = o["epochs"] or (30 if small else 50)
        warmup = o["warmup_epochs"] if o["warmup_epochs"] is not None else (0 if o["remedy"] == "none" else epochs // 3)
        return DartsSettings(
            data=o["data"], order=o["order"], remedy=o["remedy"], remedy_strength=o["remedy_strength"],
            epochs=epochs, warmup_epochs=min(warmup, epochs - 1), channels=o["channels"] or channels, cells=o["cells"] or cells,
            batch_size=o["batch_size"], lr=o["lr"], arch_lr=o["arch_lr"] if o["arch_lr"] is not None else (3e-3 if small else 3e-4),
            weight_decay=o["weight_decay"], arch_weight_decay=o["arch_weight_decay"], threads=o["threads"],
        )

    def prepare(self, directory: Path, log: Callable[[str], None] | None = None) -> list[Arch]:
        from nas.accuracy.training import Recipe, load_prepared, save_weights

        folder = self.artefacts(directory, "darts")
        data = load_prepared(self._options["data"], Recipe(max_train=None, test_fraction=0.2, val_fraction=0.2))
        settings = self.settings(int(data.input_spec.height))
        if self.costs is not None:
            write_atomic(folder / "costs.json", json.dumps(self.costs.describe()))
            if log is not None:
                c = self.costs
                log(f"darts: per-choice costs of {c.metric} fitted on {c.n_archs} archs: held-out Spearman {c.spearman:.4f}, median error {100 * c.median_error:.1f} %")
        selected: list[Arch] = []
        for k, weight in enumerate(self.latency_weights):
            record_path = folder / f"sweep_{k:02d}.json"
            record = _read_record(record_path, settings, weight)
            if record is None:
                if log is not None:
                    log(f"darts: latency weight {weight:g} ({k + 1}/{len(self.latency_weights)}): training the relaxed supernet ({settings.epochs} epochs)")
                model, record = self._sweep(data, settings, weight, seed=(self._seed or 0) * 1000 + k, log=log)
                save_weights(model.state_dict(), folder / f"supernet_{k:02d}.pt")
                write_atomic(record_path, json.dumps(record))
            elif log is not None:
                log(f"darts: latency weight {weight:g} already done ({record['arch']})")
            selected.append(self.space.from_string(record["arch"]))
        return selected

    # --- one weight ------------------------------------------------------------------------------------
    def _sweep(self, data: Any, s: DartsSettings, weight: float, *, seed: int, log: Callable[[str], None] | None) -> tuple[Any, dict[str, Any]]:
        import torch
        import torch.nn.functional as F

        from nas.accuracy.training import batched_accuracy, deterministic

        start = time.perf_counter()
        with deterministic(s.threads), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = self.relaxation.network(data.input_spec, channels=s.channels, cells=s.cells)
            alpha = (1e-3 * torch.randn(self.relaxation.shape)).requires_grad_(True)
            costs = None if self.costs is None else torch.tensor(self.costs.costs * self.relaxation.keep_rate()[:, None], dtype=torch.float32)
            w_opt = torch.optim.SGD(model.parameters(), lr=s.lr, momentum=0.9, weight_decay=s.weight_decay)
            a_opt = torch.optim.Adam([alpha], lr=s.arch_lr, betas=(0.5, 0.999), weight_decay=s.arch_weight_decay)
            generator = torch.Generator().manual_seed(seed)
            halves = torch.randperm(len(data.train_y), generator=generator)
            part_w, part_a = halves[: len(halves) // 2], halves[len(halves) // 2 :]
            steps = max(1, len(part_w) // s.batch_size)
            total = s.epochs * steps
            history = []
            for epoch in range(s.epochs):
                model.train()
                order_w = part_w[torch.randperm(len(part_w), generator=generator)]
                order_a = part_a[torch.randperm(len(part_a), generator=generator)]
                losses = []
                for step in range(steps):
                    rows_w = order_w[step * s.batch_size : (step + 1) * s.batch_size]
                    rows_a = order_a[step * s.batch_size : (step + 1) * s.batch_size]
                    lr = 0.001 + 0.5 * (s.lr - 0.001) * (1 + math.cos(math.pi * (epoch * steps + step) / total))
                    for group in w_opt.param_groups:
                        group["lr"] = lr
                    a_opt.zero_grad(set_to_none=True)
                    if epoch < s.warmup_epochs:
                        pass  # warm-up: shared weights only, so parametric ops are trained before they compete
                    elif s.order == 2:
                        self._unrolled_grad(model, alpha, costs, weight, data.train_x[rows_w], data.train_y[rows_w], data.train_x[rows_a], data.train_y[rows_a], lr, s)
                    else:
                        arch_loss = F.cross_entropy(model(data.train_x[rows_a], self._weights(alpha, s, sample=True)), data.train_y[rows_a])
                        arch_loss = arch_loss + self._penalty(alpha, costs, weight, s)
                        arch_loss.backward()
                    if epoch >= s.warmup_epochs:
                        a_opt.step()
                    if not torch.isfinite(alpha).all():
                        raise OneShotError(f"strategy darts: architecture weights became NaN at latency weight {weight:g}, epoch {epoch + 1}, step {step + 1}; lower arch_lr")
                    w_opt.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model(data.train_x[rows_w], self._weights(alpha, s, sample=True).detach()), data.train_y[rows_w])
                    if not torch.isfinite(loss):
                        raise OneShotError(f"strategy darts: supernet loss became NaN at latency weight {weight:g}, epoch {epoch + 1}, step {step + 1}; lower lr")
                    loss.backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
                    w_opt.step()
                    losses.append(float(loss.detach()))
                mean_w = self._weights(alpha, s, sample=False).detach()
                model.eval()
                val = batched_accuracy(lambda x: model(x, mean_w), data.val_x, data.val_y)
                expected = None if costs is None else float(self.costs.intercept + (mean_w * costs).sum())  # type: ignore[union-attr]
                history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "supernet_val_accuracy": val, "expected_cost": expected})
                if log is not None and (epoch + 1) % max(1, s.epochs // 5) == 0:
                    log(f"darts: weight {weight:g} epoch {epoch + 1}/{s.epochs}: loss {np.mean(losses):.3f}, supernet val {val:.1f} %" + ("" if expected is None else f", E[{self.cost_metric}] {expected:.4g}"))
            final = self._weights(alpha, s, sample=False).detach().numpy()
        arch = self.relaxation.discretise(final)
        record = {
            "latency_weight": weight, "arch": self.space.to_string(arch), "settings": asdict(s), "settings_digest": s.digest(),
            "cost_metric": self.cost_metric, "alpha": alpha.detach().numpy().tolist(), "weights": final.tolist(),
            "history": history, "seconds": time.perf_counter() - start, "seed": seed,
            "predicted_cost": None if self.costs is None else float(self.costs.intercept + (self.relaxation.indicators([arch])[0] * self.costs.costs.ravel()).sum()),
        }
        return model, record

    @staticmethod
    def _weights(alpha: Any, s: DartsSettings, *, sample: bool) -> Any:
        import torch
        import torch.nn.functional as F

        if s.remedy == "dirichlet":
            concentration = F.elu(alpha) + 1.0
            if sample:
                return torch.distributions.Dirichlet(concentration).rsample()
            return concentration / concentration.sum(-1, keepdim=True)
        return F.softmax(alpha, dim=-1)

    def _penalty(self, alpha: Any, costs: Any, weight: float, s: DartsSettings) -> Any:
        """The latency term on the expected (mean) weights, plus the beta-decay regulariser when chosen."""
        import torch

        total = torch.zeros(())
        if costs is not None and weight > 0:
            total = total + weight * (self.costs.intercept + (self._weights(alpha, s, sample=False) * costs).sum()) / self.costs.mean  # type: ignore[union-attr]
        if s.remedy == "beta_decay":
            total = total + s.remedy_strength * torch.logsumexp(alpha, dim=-1).mean()
        return total

    def _unrolled_grad(self, model: Any, alpha: Any, costs: Any, weight: float, xw: Any, yw: Any, xa: Any, ya: Any, lr: float, s: DartsSettings) -> None:
        """Second-order DARTS: the architecture gradient at the weights after one virtual SGD step, with
        the Hessian-vector product by finite differences (Liu et al. 2019, eq. 7-8)."""
        import torch
        import torch.nn.functional as F
        from torch.func import functional_call

        names = [n for n, _ in model.named_parameters()]
        params = [p for _, p in model.named_parameters()]
        fixed = self._weights(alpha, s, sample=False).detach()
        grads = torch.autograd.grad(F.cross_entropy(model(xw, fixed), yw), params)
        unrolled = [(p - lr * g).detach().requires_grad_(True) for p, g in zip(params, grads)]
        arch_w = self._weights(alpha, s, sample=True)
        loss = F.cross_entropy(functional_call(model, dict(zip(names, unrolled)), (xa, arch_w)), ya) + self._penalty(alpha, costs, weight, s)
        d_alpha, *d_w = torch.autograd.grad(loss, [alpha, *unrolled])
        eps = 0.01 / torch.sqrt(sum((d * d).sum() for d in d_w)).clamp_min(1e-12)
        hessian = []
        for sign in (1.0, -1.0):
            moved = {n: (p + sign * eps * d).detach() for n, p, d in zip(names, params, d_w)}
            train_loss = F.cross_entropy(functional_call(model, moved, (xw, self._weights(alpha, s, sample=False))), yw)
            hessian.append(torch.autograd.grad(train_loss, alpha)[0])
        alpha.grad = d_alpha - lr * (hessian[0] - hessian[1]) / (2 * eps)


def _read_record(path: Path, settings: DartsSettings, weight: float) -> dict[str, Any] | None:
    """A finished weight's record, if it was made with these settings and this weight."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("settings_digest") != settings.digest() or record.get("latency_weight") != weight:
        return None
    return record


__all__ = ["ChoiceCosts", "DartsSettings", "DartsStrategy", "OneShotError", "REMEDIES", "fit_choice_costs"]
