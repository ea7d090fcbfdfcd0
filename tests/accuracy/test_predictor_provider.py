from __future__ import annotations

import numpy as np
import pytest

from nas.accuracy.predictors import NaNTargetError, PredictorProvider
from nas.spaces import get_space

SPACE = get_space("nb201")


def conv_count(archs):
    return np.array([sum("conv" in str(op) for op in a.values()) for a in archs], dtype=float)


def archs(n, seed):
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys(SPACE.sample(rng) for _ in range(n)))


def test_nothing_is_predicted_before_enough_labels_were_observed():
    provider = PredictorProvider("rf", SPACE, min_train=5, n_estimators=10)
    seen = archs(4, 0)
    provider.observe(seen, conv_count(seen))
    assert np.isnan(provider.evaluate(archs(3, 1))).all()
    mean, std = provider.evaluate_with_std(archs(3, 1))
    assert np.isnan(mean).all() and np.isnan(std).all()


def test_predictions_follow_the_observed_labels_and_refit_only_on_new_ones():
    provider = PredictorProvider("rf", SPACE, encoding="onehot", min_train=5, n_estimators=30, seed=0)
    seen, unseen = archs(60, 0), archs(40, 1)
    provider.observe(seen, conv_count(seen))
    predicted = provider.evaluate(unseen)
    assert np.corrcoef(predicted, conv_count(unseen))[0, 1] > 0.8
    fitted = provider.pipeline.named_steps["model"].forest_
    provider.evaluate(unseen)
    assert provider.pipeline.named_steps["model"].forest_ is fitted
    provider.observe(unseen[:1], [100.0])
    provider.evaluate(unseen[:1])
    assert provider.pipeline.named_steps["model"].forest_ is not fitted
    assert provider.provenance()["trained_on"] == provider.n_observed


def test_select_returns_the_candidates_predicted_best():
    provider = PredictorProvider("rf", SPACE, min_train=5, n_estimators=30, seed=0)
    seen, candidates = archs(80, 0), archs(30, 2)
    provider.observe(seen, conv_count(seen))
    chosen = provider.select(candidates, 5)
    predicted = dict(zip(candidates, provider.evaluate(candidates)))
    assert sorted(predicted[a] for a in chosen) == sorted(predicted.values())[-5:]
    assert len(provider.select(candidates, 5, kappa=2.0)) == 5


def test_select_before_training_keeps_the_callers_order():
    provider = PredictorProvider("gp", SPACE, min_train=10)
    candidates = archs(6, 3)
    assert provider.select(candidates, 2) == candidates[:2]


def test_nan_labels_are_not_observations():
    provider = PredictorProvider("rf", SPACE)
    with pytest.raises(NaNTargetError, match="1 NaN label"):
        provider.observe(archs(2, 0), [1.0, np.nan])
