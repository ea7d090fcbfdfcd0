"""DARTS: mixed ops, expected cost, discretisation, and the one-shot lifecycle of a run (resume included)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nas.cli import app
from nas.objectives import ObjectiveSet
from nas.run import Run, RunConfig
from nas.spaces import get_space
from nas.spaces.base import InputSpec
from nas.strategies import DartsStrategy, OneShotError, SearchContext, fit_choice_costs, make_strategy
from nas.strategies._darts import DartsSettings
from nas.strategies._relaxed import relaxation_of

SPEC = InputSpec(1, 8, 8, 10)
TINY = {"epochs": 1, "channels": 4, "cells": 1, "batch_size": 128}


def params_context(space, metric: str = "params") -> SearchContext:
    """A context whose only known metric is an analytic count of the space (no tables needed)."""
    from nas.run import resolve_provider

    provider = resolve_provider(metric, space, RunConfig(space=space.name, objectives=["accuracy:max", f"{metric}:min"]))
    objectives = ObjectiveSet.parse(["accuracy:max", f"{metric}:min"])
    return SearchContext(objectives, (metric,), lambda archs: {metric: np.asarray(provider.evaluate(archs), dtype=float)})


@pytest.mark.parametrize("name,size", [("nb201", (4, 1)), ("darts_small", (4, 3))])
def test_one_hot_architecture_weights_give_the_discrete_networks_output(name, size):
    space = get_space(name)
    relaxation = relaxation_of(space)
    torch.manual_seed(0)
    supernet = relaxation.network(SPEC, channels=size[0], cells=size[1]).eval()
    rng = np.random.default_rng(1)
    x = torch.randn(3, 1, 8, 8)
    for _ in range(3):
        arch = space.sample(rng)
        one_hot = torch.tensor(relaxation.indicators([arch])[0].reshape(relaxation.shape), dtype=torch.float32)
        discrete = supernet.extract(arch).eval()
        assert type(discrete).__name__ == type(space.build(arch, SPEC)).__name__
        torch.testing.assert_close(supernet(x, one_hot), discrete(x), rtol=0, atol=0)


def test_mixed_edge_output_is_the_weighted_sum_of_its_ops():
    space = get_space("nb201")
    supernet = relaxation_of(space).network(SPEC, channels=4, cells=1)
    edge = supernet.cells[0].edges[0]
    x = torch.randn(2, 4, 8, 8)
    w = torch.tensor([0.1, 0.2, 0.3, 0.25, 0.15])
    expected = sum(w[i] * edge.ops[i](x) for i in range(1, 5))  # op 0 is none: adds nothing
    torch.testing.assert_close(edge(x, w), expected)


def test_expected_cost_gradient_is_the_softmax_jacobian_times_costs():
    space = get_space("nb201")
    strategy = DartsStrategy(space, context=params_context(space), latency_weights=[1.0], remedy="none", **TINY)
    costs = torch.tensor(strategy.costs.costs, dtype=torch.float32)
    alpha = torch.randn(strategy.relaxation.shape, dtype=torch.float32, requires_grad=True)
    settings = strategy.settings(8)
    strategy._penalty(alpha, costs, 2.0, settings).backward()
    w = torch.softmax(alpha.detach(), dim=-1)
    analytic = 2.0 * w * (costs - (w * costs).sum(-1, keepdim=True)) / strategy.costs.mean
    torch.testing.assert_close(alpha.grad, analytic, rtol=1e-4, atol=1e-9)


def test_params_are_additive_over_nb201_edges_so_fitted_choice_costs_are_exact():
    space = get_space("nb201")
    fit = fit_choice_costs(relaxation_of(space), params_context(space), "params")
    assert fit.n_archs == 15625
    assert fit.p90_error < 1e-6
    assert fit.spearman > 0.999
    # none and the parameter-free ops cost nothing more than each other on the same edge
    ops = list(space.ops)
    row = fit.costs[0]
    assert row[ops.index("nor_conv_3x3")] > row[ops.index("nor_conv_1x1")] > row[ops.index("skip_connect")]
    assert row[ops.index("skip_connect")] == pytest.approx(row[ops.index("none")], abs=1e-6 * fit.mean)


def test_a_cost_source_missing_a_choice_is_named():
    space = get_space("nb201")
    base = params_context(space)

    def known(archs):
        values = base.known(archs)["params"]
        values[[any(op == "avg_pool_3x3" for op in a.values()) for a in archs]] = np.nan
        return {"params": values}

    context = SearchContext(base.objectives, ("params",), known)
    with pytest.raises(ValueError, match=r"params has no cost for choice\(s\) \['edge_0_1=avg_pool_3x3'"):
        fit_choice_costs(relaxation_of(space), context, "params")


def test_nb201_discretisation_takes_the_strongest_op_of_every_edge():
    space = get_space("nb201")
    relaxation = relaxation_of(space)
    weights = np.full(relaxation.shape, 0.1)
    picks = ["nor_conv_3x3", "skip_connect", "none", "avg_pool_3x3", "nor_conv_1x1", "nor_conv_3x3"]
    for e, op in enumerate(picks):
        weights[e, space.ops.index(op)] = 0.6
    arch = relaxation.discretise(weights)
    assert [arch[d.name] for d in space.decisions] == picks


def test_darts_discretisation_keeps_each_nodes_two_strongest_inputs_and_ignores_none():
    space = get_space("darts_small")
    relaxation = relaxation_of(space)
    weights = np.full(relaxation.shape, 0.05)
    ops = list(space.ops)
    # normal node 4 (edges from states 0..3): none dominates input 0, which must not count
    rows = [k for k, (_, n) in enumerate(relaxation.pairs) if n == 4]
    weights[rows[0], ops.index("none")] = 0.9
    weights[rows[1], ops.index("sep_conv_5x5")] = 0.5
    weights[rows[3], ops.index("dil_conv_3x3")] = 0.7
    arch = relaxation.discretise(weights)
    assert arch["normal_4_inputs"] == "1,3"
    assert (arch["normal_4_op0"], arch["normal_4_op1"]) == ("sep_conv_5x5", "dil_conv_3x3")
    assert all(space.cell_edges(arch, cell)[k][0][0] != space.cell_edges(arch, cell)[k][1][0] for cell in ("normal", "reduce") for k in range(4))
    assert space.from_string(space.to_string(arch)) == arch


@pytest.mark.parametrize(
    "options,message",
    [
        ({"latency_weights": []}, "non-empty list of numbers >= 0"),
        ({"latency_weights": [0, -1]}, "non-empty list of numbers >= 0"),
        ({"order": 3}, "order must be 1"),
        ({"remedy": "magic"}, "remedy must be one of"),
        ({"cost_metric": "flops"}, "not a known metric"),
    ],
)
def test_bad_darts_options_are_refused_in_one_line(options, message):
    space = get_space("nb201")
    with pytest.raises(ValueError, match=message) as info:
        make_strategy("darts", space, seed=0, context=params_context(space), **options)
    assert "\n" not in str(info.value)


def test_a_latency_weight_without_a_known_cost_objective_is_refused():
    space = get_space("nb201")
    context = SearchContext(ObjectiveSet.parse(["accuracy:max"]))
    with pytest.raises(ValueError, match="need a cost objective known before evaluation"):
        DartsStrategy(space, context=context, latency_weights=[0, 1])
    assert DartsStrategy(space, context=context, latency_weights=[0]).costs is None


def test_nan_architecture_weights_stop_the_sweep_with_the_step(monkeypatch, tmp_path):
    space = get_space("nb201")
    strategy = DartsStrategy(space, seed=0, context=params_context(space), latency_weights=[1.0], **TINY)
    monkeypatch.setattr(DartsStrategy, "_penalty", lambda self, alpha, costs, weight, s: alpha.sum() * float("nan"))
    with pytest.raises(OneShotError, match=r"architecture weights became NaN at latency weight 1, epoch 1, step 1"):
        strategy.prepare(tmp_path)
    assert not list((tmp_path / "oneshot" / "darts").glob("sweep_*.json"))


def test_second_order_step_gives_a_finite_architecture_gradient():
    space = get_space("nb201")
    strategy = DartsStrategy(space, seed=0, context=params_context(space), latency_weights=[0.5], order=2, remedy="none", **TINY)
    settings = strategy.settings(8)
    torch.manual_seed(0)
    model = strategy.relaxation.network(SPEC, channels=4, cells=1)
    alpha = (1e-3 * torch.randn(strategy.relaxation.shape)).requires_grad_(True)
    costs = torch.tensor(strategy.costs.costs, dtype=torch.float32)
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    strategy._unrolled_grad(model, alpha, costs, 0.5, x, y, x.flip(0), y.flip(0), 0.025, settings)
    assert alpha.grad is not None and torch.isfinite(alpha.grad).all() and alpha.grad.abs().sum() > 0


def test_settings_follow_the_data_size_unless_given():
    space = get_space("nb201")
    strategy = DartsStrategy(space, context=params_context(space), latency_weights=[0])
    small, full = strategy.settings(8), strategy.settings(32)
    assert (small.channels, small.cells, small.epochs, small.warmup_epochs, small.remedy) == (16, 1, 30, 10, "beta_decay")
    assert (full.channels, full.cells, full.epochs, full.arch_lr) == (16, 5, 50, 3e-4)
    assert isinstance(small, DartsSettings) and small.digest() != full.digest()


# --- the lifecycle in a run --------------------------------------------------------------------------------
def darts_config(space: str = "nb201", weights=(0.0, 3.0), **options) -> RunConfig:
    return RunConfig(
        space=space,
        dataset="digits" if space == "darts_small" else None,
        objectives=["accuracy:max", "params:min"],
        accuracy="zero_cost:synflow",
        strategy="darts",
        strategy_options={"latency_weights": list(weights), **TINY, **({"cells": 3} if space == "darts_small" else {}), **options},
        budget=50,
        seed=0,
    )


@pytest.mark.parametrize("space", ["nb201", "darts_small"])
def test_darts_run_evaluates_each_selected_arch_once_and_keeps_its_artefacts(tmp_path, space):
    run = Run.open(tmp_path / "run", darts_config(space))
    front = run.search()
    folder = tmp_path / "run" / "oneshot" / "darts"
    records = [json.loads((folder / f"sweep_{k:02d}.json").read_text()) for k in range(2)]
    selected = {r["arch"] for r in records}
    trials = run.trials()
    assert sorted(trials["arch"]) == sorted(selected)
    assert run.n_spent() == len(selected) < run.config.budget
    assert not front.empty and set(front["arch"]) <= selected
    assert (folder / "supernet_00.pt").is_file() and (folder / "costs.json").is_file()
    assert all(r["history"][-1]["expected_cost"] is not None for r in records)
    assert torch.load(folder / "supernet_01.pt", weights_only=True)


def test_a_finished_run_searched_again_trains_nothing_and_adds_no_trial(tmp_path, monkeypatch):
    run = Run.open(tmp_path / "run", darts_config())
    run.search()
    before = run.n_spent()

    def no_training(*args, **kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(DartsStrategy, "_sweep", no_training)
    again = Run.open(tmp_path / "run", darts_config())
    again.search()
    assert again.n_spent() == before


def test_a_killed_one_shot_run_resumes_after_the_last_finished_weight(tmp_path, monkeypatch):
    trained: list[float] = []
    original = DartsStrategy._sweep

    def killed_on_second(self, data, settings, weight, **kwargs):
        if len(trained) == 1:
            raise KeyboardInterrupt
        trained.append(weight)
        return original(self, data, settings, weight, **kwargs)

    monkeypatch.setattr(DartsStrategy, "_sweep", killed_on_second)
    config = darts_config(weights=(0.0, 0.5, 3.0))
    with pytest.raises(KeyboardInterrupt):
        Run.open(tmp_path / "run", config).search()
    folder = tmp_path / "run" / "oneshot" / "darts"
    assert [p.name for p in sorted(folder.glob("sweep_*.json"))] == ["sweep_00.json"]
    first = (folder / "sweep_00.json").read_text()

    resumed: list[float] = []

    def counting(self, data, settings, weight, **kwargs):
        resumed.append(weight)
        return original(self, data, settings, weight, **kwargs)

    monkeypatch.setattr(DartsStrategy, "_sweep", counting)
    run = Run.open(tmp_path / "run", config)
    run.search()
    assert resumed == [0.5, 3.0]
    assert (folder / "sweep_00.json").read_text() == first
    assert run.n_spent() == len({json.loads(p.read_text())["arch"] for p in folder.glob("sweep_*.json")})


def test_cli_darts_search_writes_the_front_and_refuses_a_bad_sweep(tmp_path):
    runner = CliRunner()
    common = ["search", "--space", "nb201", "--strategy", "darts", "--data", "digits", "--objectives", "accuracy:max,params:min", "--accuracy", "zero_cost:synflow", "--no-progress"]
    tiny = [f"--option={k}={v}" for k, v in TINY.items()]
    result = runner.invoke(app, [*common, "--option", "latency_weights=[0,1]", *tiny, "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "ok" / "pareto.csv").is_file()
    bad = runner.invoke(app, [*common, "--option", "latency_weights=[]", "--out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "latency_weights must be a non-empty list" in bad.output
    assert not (tmp_path / "bad").exists()


def test_two_worker_processes_share_one_one_shot_step_and_evaluate_each_arch_once(tmp_path):
    import subprocess
    import sys

    Run.open(tmp_path / "run", darts_config(weights=(0.0, 3.0)))  # created once, as `nas search` does before workers join
    command = [sys.executable, "-m", "nas.cli", "worker", str(tmp_path / "run"), "--no-progress"]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [w.communicate(timeout=900)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    logs = "\n".join(outputs)
    assert logs.count("training the relaxed supernet") == 2  # each weight once, by whichever worker held the lock
    run = Run.open(tmp_path / "run")
    assert len(run.trials()) == run.n_spent() == len(set(run.trials()["arch"]))


def test_darts_keep_rates_count_two_kept_inputs_per_node():
    relaxation = relaxation_of(get_space("darts_small"))
    rate = relaxation.keep_rate()
    assert rate.shape == (relaxation.shape[0],)
    for cell in range(2):
        for n in (2, 3, 4, 5):
            rows = [cell * len(relaxation.pairs) + k for k, (_, m) in enumerate(relaxation.pairs) if m == n]
            assert rate[rows].sum() == pytest.approx(2.0)
    assert (relaxation_of(get_space("nb201")).keep_rate() == 1).all()
