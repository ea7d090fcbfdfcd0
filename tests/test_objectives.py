from __future__ import annotations

import numpy as np
import pytest

from nas.objectives import Constraint, MetricName, Objective, ObjectiveError, ObjectiveSet


def test_objectives_parse_with_explicit_and_default_directions():
    objs = ObjectiveSet.parse("accuracy:max, latency@raspi4:min,params")
    assert objs.names == ["accuracy", "latency@raspi4", "params"]
    assert [o.direction for o in objs.objectives] == ["max", "min", "min"]
    assert objs.optuna_directions == ["maximize", "minimize", "minimize"]


def test_minimisation_flips_only_maximised_objectives():
    objs = ObjectiveSet.parse("accuracy:max,latency@raspi4:min")
    values = np.array([[90.0, 3.0], [80.0, 1.0]])
    assert objs.to_minimisation(values).tolist() == [[-90.0, 3.0], [-80.0, 1.0]]
    assert np.array_equal(objs.from_minimisation(objs.to_minimisation(values)), values)


@pytest.mark.parametrize("bad", ["acc:max", "accuracy:up", "latency:min", "latency@:min", "accuracy:max,accuracy:min", ""])
def test_objectives_that_do_not_parse_raise_one_line(bad):
    with pytest.raises(ObjectiveError) as info:
        ObjectiveSet.parse(bad)
    assert "\n" not in str(info.value)


def test_constraint_violation_follows_optuna_convention():
    c = Constraint.parse("latency@pixel3<=12")
    assert c.metric == "latency@pixel3" and c.bound == 12
    assert c.violation(np.array([10.0, 12.0, 13.5])).tolist() == [-2.0, 0.0, 1.5]
    g = Constraint.parse("accuracy >= 90")
    assert g.violation(np.array([91.0, 89.0])).tolist() == [-1.0, 1.0]
    strict = Constraint.parse("params<1")
    assert strict.violation(np.array([1.0]))[0] > 0


@pytest.mark.parametrize("bad", ["latency@pixel3=<12", "latency@pixel3<=twelve", "speed<=3", "latency<=3"])
def test_constraints_that_do_not_parse_raise(bad):
    with pytest.raises(ObjectiveError):
        Constraint.parse(bad)


def test_constraint_only_metrics_are_computed_too():
    objs = ObjectiveSet.parse("accuracy,latency@raspi4", ["latency@pixel3<=12", "latency@raspi4<=30"])
    assert objs.metrics == ["accuracy", "latency@raspi4", "latency@pixel3"]
    v = objs.violations({"latency@pixel3": np.array([10.0, 20.0]), "latency@raspi4": np.array([40.0, 1.0])})
    assert v.tolist() == [[-2.0, 10.0], [8.0, -29.0]]


def test_metric_names_round_trip():
    assert str(MetricName.parse("energy@eyeriss")) == "energy@eyeriss"
    assert str(Objective.parse("flops")) == "flops:min"
