"""Training on real data: the recipe, determinism across processes, `nas train`, and searches that train."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from nas.accuracy import training
from nas.accuracy.multifidelity import LearningCurves, SuccessiveHalving, training_fidelities
from nas.accuracy.training import Recipe, RecipeError, TrainingDivergedError, load_prepared, train_arch
from nas.cli import app
from nas.objectives import ObjectiveSet
from nas.run import Run, RunConfig, RunConfigError, load_run
from nas.spaces import get_space

SPACE = get_space("nb201")
ARCH = "|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|skip_connect~0|avg_pool_3x3~1|nor_conv_3x3~2|"
TINY = {"epochs": 3, "max_train": 60, "batch_size": 32}
OBJECTIVES = ["accuracy:max", "params:min"]


def tiny(**changes) -> Recipe:
    return Recipe.from_mapping({**TINY, **changes})


@pytest.mark.parametrize(
    "data, message",
    [
        ({"epoch": 3}, "unknown training key(s) ['epoch']"),
        ({"epochs": 0}, "training epochs must be an integer >= 1, got 0"),
        ({"lr": -1.0}, "training lr must be a number in (0, inf], got -1.0"),
        ({"optimizer": "lbfgs"}, "training optimizer 'lbfgs'; expected one of ['sgd', 'adam', 'adamw']"),
        ({"augmentation": ["rotate"]}, "training augmentation ['rotate']; expected some of ['crop', 'flip', 'noise']"),
        ({"warmup_epochs": 3, "epochs": 3}, "warmup_epochs (3) must be smaller than epochs (3)"),
        ({"val_fraction": 0.0}, "training val_fraction must be a number in (0, 1]"),
    ],
)
def test_bad_recipes_are_one_line_errors(data, message):
    with pytest.raises(RecipeError) as info:
        Recipe.from_mapping(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_training_is_deterministic_in_process_and_weights_come_from_the_seed():
    data = load_prepared("digits", tiny())
    arch = SPACE.from_string(ARCH)
    a = train_arch(SPACE, arch, data, tiny(), seed=0)
    b = train_arch(SPACE, arch, data, tiny(), seed=0)
    c = train_arch(SPACE, arch, data, tiny(), seed=1)
    assert [r.val_accuracy for r in a.curve] == [r.val_accuracy for r in b.curve] and a.test_accuracy == b.test_accuracy
    assert all(torch.equal(a.state_dict[k], b.state_dict[k]) for k in a.state_dict)
    assert not all(torch.equal(a.state_dict[k], c.state_dict[k]) for k in a.state_dict)
    assert a.epochs == 3 and len(a.curve) == 3 and 0 <= a.accuracy <= 100


def train_in_subprocess(out) -> str:
    cmd = [sys.executable, "-m", "nas.cli", "train", "--arch", ARCH, "--data", "digits", "--epochs", "3", "--seed", "0", "--out", str(out), "--no-progress"]
    for key, value in TINY.items():
        if key != "epochs":
            cmd += ["--training-option", f"{key}={value}"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_nas_train_gives_the_same_numbers_and_weights_in_two_processes(tmp_path):
    first, second = train_in_subprocess(tmp_path / "a"), train_in_subprocess(tmp_path / "b")
    assert first.startswith("accuracy=") and " test_accuracy=" in first and " epochs=3 seconds=" in first
    assert first.rsplit(" seconds=", 1)[0] == second.rsplit(" seconds=", 1)[0]
    wa = torch.load(tmp_path / "a" / "weights.pt", weights_only=True)
    wb = torch.load(tmp_path / "b" / "weights.pt", weights_only=True)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    record = json.loads((tmp_path / "a" / "recipe.json").read_text())
    assert record["arch"] == ARCH and record["recipe"]["epochs"] == 3 and record["input_spec"] == {"channels": 1, "height": 8, "width": 8, "classes": 10}
    module = SPACE.build(SPACE.from_string(ARCH), load_prepared("digits", tiny()).input_spec)
    module.load_state_dict(wa)
    assert (tmp_path / "a" / "curve.csv").read_text().count("\n") == 4


def test_nas_train_errors_are_one_line_and_write_nothing(tmp_path):
    runner = CliRunner()
    cases = [
        (["--arch", "|nope~0|", "--out", str(tmp_path / "x")], "malformed NB201 arch string"),
        (["--arch", ARCH, "--data", "npz:/no/such.npz", "--out", str(tmp_path / "x")], "does not exist; expected npz:PATH"),
        (["--arch", ARCH, "--data", "imagenet", "--out", str(tmp_path / "x")], "unknown dataset 'imagenet'; known: digits"),
        (["--arch", ARCH, "--training-option", "lr=1e6", "--training-option", "grad_clip=0", "--epochs", "2", "--out", str(tmp_path / "x"), "--no-progress"], "training diverged: loss"),
    ]
    for args, message in cases:
        result = runner.invoke(app, ["train", *args])
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
        assert not (tmp_path / "x").exists()
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "f").write_text("x")
    result = runner.invoke(app, ["train", "--arch", ARCH, "--out", str(tmp_path / "used")])
    assert result.exit_code == 2 and "exists and is not empty" in result.output


def test_divergence_names_the_epoch_and_step():
    data = load_prepared("digits", tiny())
    with pytest.raises(TrainingDivergedError, match=r"at epoch 1, step \d+ .*lower the learning rate"):
        train_arch(SPACE, SPACE.from_string(ARCH), data, tiny(lr=1e6, grad_clip=0.0), seed=0)


def train_config(tmp_path, budget, **changes) -> RunConfig:
    values = dict(space="nb201", objectives=OBJECTIVES, accuracy="train:digits", training=dict(TINY), budget=budget, seed=0, strategy="random")
    values.update(changes)
    return RunConfig(**values)


def test_a_search_that_trains_reports_curves_test_accuracy_and_keeps_weights(tmp_path):
    run = Run.open(tmp_path / "r", train_config(tmp_path, 4))
    front = run.search()
    done = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4
    assert all(sorted(t.intermediate_values) == [1, 2, 3] for t in done)
    assert all(t.intermediate_values[3] == t.user_attrs["metrics"]["accuracy"] for t in done)
    trials = run.trials()
    assert {"test_accuracy", "epochs", "train_seconds", "weights"} <= set(trials.columns)
    assert {"test_accuracy", "weights"} <= set(front.columns)
    assert (trials["epochs"] == 3).all()
    first = trials.iloc[0]
    state = torch.load(run.directory / first["weights"], weights_only=True)
    SPACE.build(SPACE.from_string(first["arch"]), load_prepared("digits", tiny()).input_spec).load_state_dict(state)
    stored = json.loads((run.directory / "training.json").read_text())
    assert stored["data"]["data"] == "digits" and stored["recipe"]["max_train"] == 60
    # the params a run that trains counts are of the network built for its data (1 channel)
    arch = SPACE.from_string(first["arch"])
    assert first["params"] == pytest.approx(sum(p.numel() for p in SPACE.build(arch, stored_spec(stored)).parameters()) / 1e6)


def stored_spec(stored):
    from nas.spaces.base import InputSpec

    d = stored["data"]
    return InputSpec(d["channels"], d["height"], d["width"], d["classes"])


def test_the_search_trial_of_an_arch_equals_nas_train_with_the_same_seed(tmp_path):
    run = Run.open(tmp_path / "r", train_config(tmp_path, 2))
    run.search()
    trial = run.trials().iloc[0]
    again = train_arch(SPACE, SPACE.from_string(trial["arch"]), load_prepared("digits", tiny()), tiny(), seed=0)
    assert again.accuracy == trial["accuracy"] and again.test_accuracy == trial["test_accuracy"]


def test_a_diverging_trial_fails_with_its_reason_and_the_search_goes_on(tmp_path, monkeypatch):
    real = training.TrainingAccuracy._train

    def sometimes_diverges(self, arch, on_epoch=None):
        if arch["edge_0_1"] in ("nor_conv_3x3", "nor_conv_1x1"):
            return train_arch(self.space, arch, self.data, tiny(lr=1e6, grad_clip=0.0), seed=self.seed, on_epoch=on_epoch)
        return real(self, arch, on_epoch)

    monkeypatch.setattr(training.TrainingAccuracy, "_train", sometimes_diverges)
    run = Run.open(tmp_path / "r", train_config(tmp_path, 10, seed=3))
    run.search()
    trials = run.study.get_trials()
    failed = [t for t in trials if t.state == TrialState.FAIL]
    assert len(trials) == 10 and failed and len(failed) < 10
    assert all(t.user_attrs["nas:error"].startswith("TrainingDivergedError: training diverged: loss") for t in failed)
    assert all(t.params["edge_0_1"] in ("nor_conv_3x3", "nor_conv_1x1") for t in failed)
    assert len(run.trials()) == 10 - len(failed)


@pytest.mark.parametrize("pruner", ["pareto-halving", "median", "hyperband"])
def test_pruners_stop_weak_trials_on_their_curves_and_pruned_trials_count_against_the_budget(tmp_path, pruner):
    options = {"pareto-halving": {"reduction_factor": 2}, "median": {"n_startup_trials": 2}, "hyperband": {}}[pruner]
    config = train_config(tmp_path, 12, seed=1, pruner=pruner, pruner_options=options, training={**TINY, "epochs": 4})
    run = Run.open(tmp_path / "r", config)
    run.search()
    trials = run.study.get_trials()
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(trials) == 12 == run.n_spent() and pruned and complete
    assert all(len(t.intermediate_values) < 4 for t in pruned) and all(len(t.intermediate_values) == 4 for t in complete)
    assert all("known_metrics" in t.user_attrs and "params" in t.user_attrs["known_metrics"] for t in trials)
    assert run.progress().pruned == len(pruned)
    if pruner != "pareto-halving":
        curves = [s for s in run.study._storage.get_all_studies() if s.study_name == "nas:curves"]
        assert curves and curves[0].directions[0].name == "MAXIMIZE"


def test_pareto_halving_trains_out_the_front_of_each_rung_and_stops_dominated_trials():
    from nas.accuracy.pruning import ParetoHalvingPruner

    import optuna

    objs = ObjectiveSet.parse("accuracy:max,params:min")
    study = optuna.create_study(directions=["maximize", "minimize"])
    pruner = ParetoHalvingPruner(objs, min_resource=1, reduction_factor=2, max_resource=4)
    trials = []
    for accuracy, params in ((90.0, 1.0), (80.0, 0.9), (85.0, 2.0), (20.0, 0.1)):
        t = study.ask()
        t.set_user_attr("known_metrics", {"params": params})
        study._storage.set_trial_intermediate_value(t._trial_id, 1, accuracy)
        trials.append(t)
    verdicts = [pruner.should_prune(study, t, 1, 0.0) for t in trials]
    assert verdicts == [False, False, True, False]  # the rung's front goes on, slow but cheap included; (85, 2.0) is dominated


def test_resume_with_other_data_or_recipe_is_refused_and_nothing_is_overwritten(tmp_path):
    path = tmp_path / "d.npz"
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.random((60, 1, 6, 6)).astype(np.float32), y=np.arange(60) % 3)
    config = train_config(tmp_path, 2, accuracy=f"train:npz:{path}")
    Run.open(tmp_path / "r", config).search()
    before = (tmp_path / "r" / "config.yaml").read_text()
    np.savez(path, x=rng.random((60, 1, 6, 6)).astype(np.float32), y=np.arange(60) % 3)
    with pytest.raises(RunConfigError) as info:
        Run.open(tmp_path / "r", train_config(tmp_path, 3, accuracy=f"train:npz:{path}"))
    assert "searched with other inputs (accuracy: data_sha256" in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(RunConfigError, match=r"holds a different search \(training:"):
        Run.open(tmp_path / "r", train_config(tmp_path, 3, accuracy=f"train:npz:{path}", training={**TINY, "lr": 0.1}))
    assert (tmp_path / "r" / "config.yaml").read_text() == before
    assert len(load_run(tmp_path / "r").trials()) == 2


def test_keep_weights_keeps_the_best_k_front_first(tmp_path):
    run = Run.open(tmp_path / "r", train_config(tmp_path, 5, keep_weights=1))
    run.search()
    kept = list((run.directory / "weights").glob("*.pt"))
    assert len(kept) == 1
    front = run.pareto()
    assert f"weights/{kept[0].name}" in front["weights"].dropna().tolist()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"accuracy": "train"}, "accuracy 'train' needs data: train:DATA with DATA one of digits, npz:PATH"),
        ({"accuracy": "train:mnist"}, "unknown dataset 'mnist'; known: digits"),
        ({"accuracy": "trian:digits"}, "unknown evaluator 'trian:digits' for accuracy; known: csv:PATH, ghn:PATH, predictor:MODEL[:ENCODING], supernet:PATH"),
        ({"accuracy": "table"}, "training options ['batch_size', 'epochs', 'max_train'] apply only when accuracy trains networks"),
        ({"accuracy": "table", "training": {}, "pruner": "median"}, "pruner 'median' stops trials on their learning curves, which only training reports"),
        ({"pruner": "asha"}, "unknown pruner 'asha'; expected one of ['none', 'median', 'hyperband', 'pareto-halving']"),
        ({"pruner": "median", "pruner_options": {"n_startup": 2}}, "unknown pruner option(s) ['n_startup'] for MedianPruner"),
        ({"training": {"epochs": "many"}}, "training epochs must be an integer >= 1"),
        ({"keep_weights": -1}, "keep_weights must be 'all' or an integer >= 0"),
        ({"accuracy": "latency@raspi4"}, "evaluator 'latency@raspi4' computes latency, not accuracy"),
    ],
)
def test_bad_training_configs_fail_before_anything_is_written(tmp_path, no_data_dir, changes, message):
    with pytest.raises(ValueError) as info:
        Run.open(tmp_path / "r", train_config(tmp_path, 3, **changes))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "r").exists()


def test_successive_halving_runs_over_real_learning_curves_and_pays_only_added_epochs():
    recipe = tiny(epochs=4)
    curves = LearningCurves(SPACE, load_prepared("digits", recipe), recipe, seed=0)
    archs = [SPACE.sample(np.random.default_rng(i)) for i in range(6)]
    fidelities = training_fidelities(curves, [1, 4])
    result = SuccessiveHalving(fidelities, ObjectiveSet.parse("accuracy:max"), {}, eta=3).run(archs)
    assert len(result.rungs[0]) == 6 and len(result.rungs[1]) == 2
    assert result.cost == 6 * 1 + 2 * 3 == curves.epochs_trained
    full = train_arch(SPACE, result.rungs[1]["arch"].iloc[0], curves.data, recipe, seed=0)
    assert result.rungs[1]["accuracy"].iloc[0] == full.accuracy
