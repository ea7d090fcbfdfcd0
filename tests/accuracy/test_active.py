from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from nas.accuracy import table_accuracy
from nas.accuracy.active import STD_MIN_SEEN, STD_QUANTILE, STD_WINDOW
from nas.cli import app
from nas.run import Run, RunConfig, RunConfigError, load_run
from nas.spaces import get_space

SPACE = get_space("nb201")
BASE = dict(space="nb201", dataset="cifar10", objectives=["accuracy:max", "params:min"], strategy="evolution")


def predictor_config(budget: int, seed: int = 0, model: str = "rf", **options) -> RunConfig:
    return RunConfig(**BASE, budget=budget, seed=seed, accuracy=f"predictor:{model}", accuracy_options={"n_estimators": 30, **options})


def trials_in_order(run: Run):
    return sorted(run.study.get_trials(deepcopy=False), key=lambda t: t.number)


def test_first_initial_labels_trials_are_labelled_then_the_label_budget_is_never_exceeded(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", predictor_config(30, label_budget=10, initial_labels=5))
    run.search()
    trials = trials_in_order(run)
    assert all(t.state == TrialState.COMPLETE for t in trials) and len(trials) == 30
    assert [t.user_attrs["label_reason"] for t in trials[:5]] == ["initial"] * 5
    assert all(t.user_attrs["accuracy_source"] == "label" and t.user_attrs["label_spent"] is True for t in trials[:5])
    assert all(t.user_attrs.get("label_reason") != "initial" for t in trials[5:])
    spent = sum(t.user_attrs.get("label_spent") is True for t in trials)
    assert spent == run.labels_spent() == 10  # the budget is used up, and not one label more
    assert run.progress().labels == 10 and run.progress().label_budget == 10
    sources = run.trials()["accuracy_source"]
    assert (sources == "label").sum() == 10 and (sources == "predicted").sum() == 20


def test_the_labelling_rule_replays_from_the_stored_trials(tmp_path, no_data_dir):
    """After the initial labels, while labels remain: label a trial whose predicted point enters the front
    (`front`); else, within the paced allowance, one whose mean + std enters it (`optimistic`) or whose std
    reaches the top quartile of recent stds (`uncertain`)."""
    budget, label_budget, initial = 40, 16, 5
    run = Run.open(tmp_path / "r", predictor_config(budget, seed=1, label_budget=label_budget, initial_labels=initial))
    run.search()
    trials = trials_in_order(run)

    def enters_front(accuracy, params, before):
        F = np.array([[-p.user_attrs["metrics"]["accuracy"], p.user_attrs["metrics"]["params"]] for p in before])
        return not np.all(F <= np.array([-accuracy, params]), axis=1).any()

    reasons = []
    for k, t in enumerate(trials[initial:], start=initial):
        before = trials[:k]
        spent = sum(p.user_attrs.get("label_spent") is True for p in before)
        a = t.user_attrs
        mean = a.get("accuracy_predicted", a["accuracy"]) if a["accuracy_source"] == "label" else a["accuracy"]
        std = a.get("accuracy_predicted_std", a.get("accuracy_std"))
        params = a["metrics"]["params"]
        stds = [p.user_attrs.get("accuracy_std", p.user_attrs.get("accuracy_predicted_std")) for p in before]
        stds = [s for s in stds if s is not None][-STD_WINDOW:]
        paced = spent < initial + math.ceil((label_budget - initial) * (k + 1) / budget)
        if spent >= label_budget:
            expected = None
        elif enters_front(mean, params, before):
            expected = "front"
        elif paced and enters_front(mean + std, params, before):
            expected = "optimistic"
        elif paced and len(stds) >= STD_MIN_SEEN and std >= np.quantile(stds, STD_QUANTILE):
            expected = "uncertain"
        else:
            expected = None
        assert a.get("label_reason") == expected, f"trial {k}"
        reasons.append(expected)
        if a["accuracy_source"] == "predicted":  # what the strategy was told, and the model's uncertainty
            assert a["metrics"]["accuracy"] == a["accuracy"] == t.values[0] and a["accuracy_std"] >= 0 and "label_spent" not in a
    assert {"front", "optimistic", None} <= set(reasons)  # the branches of the rule were exercised


def test_resume_reads_labels_back_from_the_study_and_continues_the_count(tmp_path, no_data_dir):
    options = dict(label_budget=10, initial_labels=5)
    first = Run.open(tmp_path / "r", predictor_config(8, **options))
    first.search()
    spent_first = first.labels_spent()
    assert 5 <= spent_first < 10
    resumed = Run.open(tmp_path / "r", predictor_config(28, **options))
    resumed.search()
    trials = trials_in_order(resumed)
    assert len(trials) == 28
    assert sum(t.user_attrs.get("label_reason") == "initial" for t in trials) == 5  # not spent again after resuming
    assert resumed.labels_spent() == sum(t.user_attrs.get("label_spent") is True for t in trials) == 10
    assert sum(t.user_attrs.get("label_spent") is True for t in trials[8:]) == 10 - spent_first


def test_labelled_points_carry_the_true_table_accuracy(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", predictor_config(25, label_budget=10, initial_labels=5))
    front = run.search()
    truth = table_accuracy(SPACE, "cifar10")
    trials = run.trials()
    labelled = trials[trials["accuracy_source"] == "label"]
    true = truth.evaluate([SPACE.from_string(s) for s in labelled["arch"]])
    np.testing.assert_array_equal(labelled["accuracy"].to_numpy(), true)
    predicted = trials[trials["accuracy_source"] == "predicted"]
    assert not np.array_equal(predicted["accuracy"].to_numpy(), truth.evaluate([SPACE.from_string(s) for s in predicted["arch"]]))
    assert list(front.columns) == ["arch", "accuracy", "params", "accuracy_source", "trial"]
    on_front = front[front["accuracy_source"] == "label"]
    assert len(on_front) >= 1
    np.testing.assert_array_equal(on_front["accuracy"].to_numpy(), truth.evaluate([SPACE.from_string(s) for s in on_front["arch"]]))
    on_disk = pd.read_csv(tmp_path / "r" / "pareto.csv")
    assert on_disk["accuracy_source"].tolist() == front["accuracy_source"].tolist()
    assert run.reference is not None  # the label table covers the space: hypervolumes stay comparable


def test_csv_labels_label_only_the_archs_the_csv_lists(tmp_path, no_data_dir):
    archs = SPACE.enumerate()
    listed = [a for a in archs if not SPACE.to_string(a).startswith("|none~0|")]
    made_up = {SPACE.to_string(a): float(10 * sum("conv" in str(op) for op in a.values()) + 3) for a in listed}
    path = tmp_path / "measured.csv"
    pd.DataFrame({"arch": list(made_up), "accuracy": list(made_up.values())}).to_csv(path, index=False)
    run = Run.open(tmp_path / "r", predictor_config(25, labels=f"csv:{path}", label_budget=10, initial_labels=5))
    run.search()
    trials = run.trials()
    labelled = trials[trials["accuracy_source"] == "label"]
    assert len(labelled) >= 5
    assert labelled["arch"].isin(list(made_up)).all()
    assert labelled["accuracy"].tolist() == [made_up[s] for s in labelled["arch"]]
    unlisted = trials[~trials["arch"].isin(list(made_up))]
    assert (unlisted["accuracy_source"] == "predicted").all()
    assert run.labels_spent() == len(labelled) <= 10
    assert run.study.user_attrs["nas:provenance"]["accuracy"]["labels"]["table"] == f"csv:{path}"


def test_predicted_accuracy_is_an_estimate_never_a_known_metric_for_strategies(tmp_path, no_data_dir):
    run = Run.open(tmp_path / "r", predictor_config(5, label_budget=4, initial_labels=2))
    assert run.providers["accuracy"].tier.value == "estimate" and not run.providers["accuracy"].known
    assert run.context().known_metrics == ("params",)


def test_resume_with_another_accuracy_source_is_refused(tmp_path, no_data_dir):
    Run.open(tmp_path / "r", predictor_config(6, label_budget=4, initial_labels=2)).search()
    with pytest.raises(RunConfigError, match="accuracy"):
        Run.open(tmp_path / "r", predictor_config(6, model="gbm", label_budget=4, initial_labels=2))
    with pytest.raises(RunConfigError, match="accuracy_options"):
        Run.open(tmp_path / "r", predictor_config(6, label_budget=5, initial_labels=2))


def _write_csv(tmp_path, columns: str) -> str:
    path = tmp_path / "labels.csv"
    a = SPACE.to_string(SPACE.enumerate()[0])
    path.write_text(f"{columns}\n{a},90.0\n")
    return str(path)


@pytest.mark.parametrize(
    "accuracy, options, message",
    [
        ("predictor:xgb", {}, "unknown predictor 'xgb' in accuracy 'predictor:xgb'; known: gbm, gin, gp, mlp, rf"),
        ("predictor:rf:braille", {}, "predictor 'rf' cannot use encoding 'braille' on space 'nb201'; expected one of"),
        ("tabel", {}, "unknown evaluator 'tabel' for accuracy; known: csv:PATH, ghn:PATH, predictor:MODEL[:ENCODING], supernet:PATH, supernet-predictor:PATH, table, train:DATA, zero_cost:PROXY"),
        ("predictor:rf", {"label_budget": 5, "initial_labels": 8}, "label_budget (5) must be at least initial_labels (8)"),
        ("predictor:rf", {"initial_labels": 1}, "initial_labels must be at least 2"),
        ("predictor:rf", {"n_trees": 5}, "unknown accuracy option(s) ['n_trees']"),
        ("predictor:rf", {"n_estimators": -3}, "predictor 'rf' rejects accuracy options {'n_estimators': -3}"),
        ("predictor:rf", {"labels": "oracle"}, "labels 'oracle': unknown evaluator 'oracle' for accuracy; known: csv:PATH"),
        ("predictor:rf", {"labels": "zero_cost:synflow"}, "labels 'zero_cost:synflow' are not measured accuracies; expected table, csv:PATH or train:DATA"),
        ("predictor:rf", {"labels": "csv:{missing}"}, "does not exist; expected a CSV with columns arch,accuracy"),
        ("predictor:rf", {"labels": "csv:{no_accuracy}"}, "has no column(s) ['accuracy']"),
        ("table", {"label_budget": 5}, "accuracy_options ['label_budget'] do not apply to accuracy 'table'"),
    ],
)
def test_bad_accuracy_inputs_are_one_line_errors_before_anything_is_written(tmp_path, no_data_dir, accuracy, options, message):
    paths = {"missing": str(tmp_path / "nope.csv"), "no_accuracy": _write_csv(tmp_path, "arch,acc")}
    options = {k: v.format(**paths) if isinstance(v, str) else v for k, v in options.items()}
    out = tmp_path / "r"
    with pytest.raises(ValueError) as err:
        Run.open(out, RunConfig(**BASE, budget=20, accuracy=accuracy, accuracy_options=options))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not out.exists()


def test_predictor_accuracy_needs_an_accuracy_objective(tmp_path, no_data_dir):
    config = RunConfig(space="nb201", objectives=["params:min", "flops:min"], accuracy="predictor:rf")
    with pytest.raises(RunConfigError, match="needs an objective or constraint on accuracy"):
        Run.open(tmp_path / "r", config)
    assert not (tmp_path / "r").exists()


def test_cli_search_with_a_predictor_and_pareto_show_the_accuracy_source(tmp_path, no_data_dir):
    runner = CliRunner()
    out = tmp_path / "r"
    args = ["search", "--objectives", "accuracy:max,params:min", "--budget", "12", "--accuracy", "predictor:gbm", "--out", str(out), "--no-progress"]
    for option in ("label_budget=6", "initial_labels=4", "n_estimators=20"):
        args += ["--accuracy-option", option]
    result = runner.invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert re.search(r"labels spent: [456] of 6 \(table\)", " ".join(result.output.split())), result.output
    assert load_run(out).config.accuracy_options == {"label_budget": 6, "initial_labels": 4, "n_estimators": 20}
    shown = runner.invoke(app, ["pareto", str(out)], catch_exceptions=False)
    assert shown.exit_code == 0 and "accuracy_source" in shown.output
    bad = runner.invoke(app, ["search", "--accuracy", "predictor:rf", "--accuracy-option", "label_budget", "--out", str(tmp_path / "x"), "--no-progress"])
    assert bad.exit_code == 2 and "--accuracy-option 'label_budget' must be KEY=VALUE" in " ".join(bad.output.split())


def test_two_workers_share_the_label_budget(tmp_path, no_data_dir):
    Run.open(tmp_path / "r", predictor_config(20, seed=2, label_budget=8, initial_labels=4))
    workers = [
        subprocess.Popen([sys.executable, "-m", "nas.cli", "worker", str(tmp_path / "r"), "--no-progress"], env={**os.environ}, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for w in workers:
        assert w.wait(timeout=300) == 0, w.stderr.read().decode()[-2000:]
    run = load_run(tmp_path / "r")
    trials = run.study.get_trials(deepcopy=False)
    assert sum(t.user_attrs.get("label_spent") is True for t in trials) == run.labels_spent() == 8
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert {t.user_attrs["accuracy_source"] for t in done} == {"label", "predicted"}
