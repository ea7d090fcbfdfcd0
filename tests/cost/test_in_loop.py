"""A device measured in the search loop (`nas.cost.in_loop`): budget, refits, shared state, the saved LUT."""

from __future__ import annotations

import math
import stat
import sys
import threading

import numpy as np
import pandas as pd
import pytest
from optuna.trial import TrialState

from nas._resources import shipped_dir
from nas.cost.in_loop import FewShotLatency, MeasuredLatency, reference_tables
from nas.cost.lut import LUTProvider
from nas.run import Run, RunConfig, RunConfigError, resolve_provider
from nas.strategies._base import PricedMetrics

TABLE = shipped_dir("latency_tables") / "nb201_latency_ms.csv.gz"
METRIC = "latency@mydev"


@pytest.fixture(scope="module")
def truth() -> pd.Series:
    frame = pd.read_csv(TABLE)
    return frame.set_index("arch_str")["raspi4"]


def config(budget: int, measure_budget: int, *, source: str = f"csv:{TABLE}:raspi4", strategy: str = "random", **extra) -> RunConfig:
    return RunConfig(
        space="nb201", objectives=["accuracy:max", f"{METRIC}:min"], strategy=strategy, budget=budget, seed=3,
        measure={METRIC: source}, measure_budget=measure_budget, **extra,
    )


def measured_trials(run: Run) -> list:
    return [t for t in run.study.get_trials(deepcopy=False) if "latency_measured" in t.user_attrs]


def provider_of(run: Run) -> MeasuredLatency:
    provider = run.providers[METRIC]
    assert isinstance(provider, MeasuredLatency)
    return provider


def test_search_spends_at_most_the_budget_and_refits_as_measurements_arrive(tmp_path, no_data_dir, truth, monkeypatch):
    run = Run.open(tmp_path / "r", config(30, 8))
    lines: list[str] = []
    shown: list = []
    run.search(pareto_every=0, on_status=lines.append, on_trial=shown.append, progress_every=0)
    trials = run.study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == 30
    measured = measured_trials(run)
    spent = sum(t.user_attrs.get("latency_measure_spent") is True for t in trials)
    assert 5 <= len(measured) == spent <= 8
    assert shown[-1].notes == (f"mydev measured {spent}/8",)  # the progress display says what was spent
    assert [t.user_attrs["latency_measure_reason"] for t in measured[:5]] == ["initial"] * 5
    for t in measured:  # a measurement is the device's value, stored as the trial's metric
        assert t.user_attrs["latency_source"] == "measured"
        assert t.user_attrs["latency_measured"] == pytest.approx(truth[t.user_attrs["arch"]])
        assert t.user_attrs["metrics"][METRIC] == pytest.approx(truth[t.user_attrs["arch"]])
    estimated = [t for t in done if t.user_attrs["latency_source"] == "estimated"]
    assert len(estimated) == 30 - len(measured)
    # each estimate is the model refitted on exactly the measurements made before its trial
    reference = provider_of(run).reference
    for t in estimated:
        before = [m for m in measured if m.number < t.number]
        model = FewShotLatency(reference).fit([run.space.from_string(m.user_attrs["arch"]) for m in before], np.array([m.user_attrs["latency_measured"] for m in before]))
        mean, std = model.predict([run.space.from_string(t.user_attrs["arch"])])
        assert t.user_attrs["metrics"][METRIC] == pytest.approx(mean[0])
        assert t.user_attrs["latency_std"] == pytest.approx(std[0]) and math.isfinite(std[0]) and std[0] >= 0
    files = pd.read_csv(tmp_path / "r" / "measurements.csv")
    assert list(files.columns) == ["arch_str", "mydev"]
    assert dict(zip(files["arch_str"], files["mydev"])) == pytest.approx({t.user_attrs["arch"]: t.user_attrs["latency_measured"] for t in measured})

    # the search ended by saving the device's model as a LUT with its leave-one-out error (said in one
    # status line), which prices latency@mydev in a later search
    lut_path = tmp_path / "r" / "mydev.csv"
    assert lut_path.with_suffix(".json").is_file()
    assert [line for line in lines if "the device's model saved as" in line] == [line for line in lines if str(lut_path) in line] != []
    import json

    validation = json.loads(lut_path.with_suffix(".json").read_text())["validation"]["nb201"]
    assert validation["k"] == len(measured) and validation["n"] == len(measured) and 0 < validation["mdape"] < 0.5
    monkeypatch.setenv("NAS_LUTS_DIR", str(tmp_path / "r"))
    later = resolve_provider(METRIC, run.space, RunConfig(space="nb201", objectives=["accuracy:max", f"{METRIC}:min"]))
    assert isinstance(later, LUTProvider)
    prices = later.evaluate(run.space.enumerate()[:100])
    assert np.isfinite(prices).all() and (prices > 0).all()


def test_bo_prices_the_space_with_the_devices_current_model_once_per_refit(tmp_path, no_data_dir, monkeypatch):
    """bo uses the measured device's estimates as a priced cost: the whole space is priced once per set of
    measurements the model was fitted on, the measure budget holds and no architecture is proposed twice."""
    pricings: list[int] = []
    price = PricedMetrics.__call__

    def counted(self, archs):
        pricings.append(len(archs))
        return price(self, archs)

    monkeypatch.setattr(PricedMetrics, "__call__", counted)
    run = Run.open(tmp_path / "r", config(16, 7, strategy="bo", strategy_options={"surrogate_options": {"n_restarts": 0}}))
    run.search(pareto_every=0)
    trials = run.study.get_trials(deepcopy=False)
    archs = [t.user_attrs["arch"] for t in trials]
    assert len(archs) == len(set(archs)) == 16
    measured = measured_trials(run)
    assert 5 <= len(measured) == sum(t.user_attrs.get("latency_measure_spent") is True for t in trials) <= 7
    # the model's versions seen before each trial: the measurement sets of the trials before it, from 2 on
    fitted_sets = {len([m for m in measured if m.number < t.number]) for t in trials} - {0, 1}
    assert pricings and set(pricings) == {run.space.size} and len(pricings) <= len(fitted_sets)
    versions = run.context().priced.versions(trials)
    assert versions == {METRIC: tuple(sorted((m.user_attrs["arch"], m.user_attrs["latency_measured"]) for m in measured))}


def test_resume_and_two_workers_share_the_measurements(tmp_path, no_data_dir):
    first = Run.open(tmp_path / "r", config(10, 7))
    first.search(pareto_every=0)
    before = {t.user_attrs["arch"] for t in measured_trials(first)}
    assert 5 <= len(before) <= 7  # the initial ones, then what the rule chose
    Run.open(tmp_path / "r", config(40, 7))  # resume with a larger trial budget
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            Run.open(tmp_path / "r").search(pareto_every=0)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    run = Run.open(tmp_path / "r", for_search=False)
    trials = run.study.get_trials(deepcopy=False)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 40
    measured = measured_trials(run)
    archs = [t.user_attrs["arch"] for t in measured]
    assert len(set(archs)) == len(archs), "no architecture is measured twice"
    assert sum(t.user_attrs.get("latency_measure_spent") is True for t in trials) == len(measured) <= 7
    assert before <= set(archs) and set(pd.read_csv(tmp_path / "r" / "measurements.csv")["arch_str"]) == set(archs)


def test_a_failing_command_costs_its_measurement_and_the_search_goes_on(tmp_path, no_data_dir):
    script = tmp_path / "bench.py"
    script.write_text(f"#!{sys.executable}\nimport sys\nsys.exit('device offline')\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    run = Run.open(tmp_path / "r", config(4, 2, source=f"cmd:{script} {{onnx}}"))
    front = run.search(pareto_every=0)
    trials = run.study.get_trials(deepcopy=False)
    assert front.empty and all(t.state == TrialState.FAIL for t in trials) and len(trials) == 4
    assert sum(t.user_attrs.get("latency_measure_spent") is True for t in trials) == 2
    assert all("device offline" in t.user_attrs["latency_measure_error"] for t in trials[:2])
    assert "budget (2) is spent" in trials[3].user_attrs["nas:error"]
    failures = pd.read_csv(tmp_path / "r" / "measurement_failures.csv")
    assert len(failures) == 2 and failures["reason"].str.contains("exited with code 1: device offline").all()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"measure": {"latency@other:min": "backend:torch"}}, "not an objective or constraint"),
        ({"measure": {"latency@other": "backend:torch"}}, "not an objective or constraint"),
        ({"measure": {}, "measure_budget": 5}, "apply only with --measure"),
        ({"measure_budget": 1}, "measure_budget must be an integer >= 2"),
        ({"measure": {METRIC: ""}}, "expected METRIC=SOURCE"),
    ],
)
def test_config_refuses_bad_measure_settings_in_one_line(changes, message):
    data = {**config(10, 4).to_dict(), **changes}
    with pytest.raises(RunConfigError, match=message) as info:
        RunConfig.from_mapping(data)
    assert "\n" not in str(info.value)


def test_a_csv_outside_the_space_stops_the_run_before_anything_is_written(tmp_path, no_data_dir):
    bad = tmp_path / "bad.csv"
    bad.write_text("arch_str,mydev\n|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|,3.0\n")
    with pytest.raises(ValueError, match="line 2") as info:
        Run.open(tmp_path / "r", config(10, 4, source=f"csv:{bad}:mydev"))
    assert "\n" not in str(info.value) and not (tmp_path / "r").exists()


def test_reference_devices_leave_out_the_device_and_its_csv_column(no_data_dir):
    from nas.spaces import get_space

    space = get_space("nb201")
    reference = reference_tables(space, exclude=["mydev", "raspi4"])
    assert "raspi4" not in reference.devices and len(reference.devices) == 17
    with pytest.raises(ValueError, match="unknown reference device"):
        reference_tables(space, devices=["nope"])
