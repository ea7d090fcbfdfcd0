from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn.utils.estimator_checks import check_estimator

from nas.accuracy.predictors import (
    ArchEncoder,
    ForeignArchError,
    GINPredictor,
    GPPredictor,
    GradientBoostingPredictor,
    MLPEnsemblePredictor,
    NaNTargetError,
    NoUncertaintyError,
    RandomForestPredictor,
    TooFewSamplesError,
    TreeEnsemblePredictor,
    UnknownEncodingError,
    effective_features,
    make_predictor,
    predictors,
)
from nas.accuracy.predictors.evaluate import holdout_score
from nas.spaces import Arch, get_space

torch.set_num_threads(1)
SPACE = get_space("nb201")


def conv_count(archs: list[Arch]) -> np.ndarray:
    """A target every encoding can express: convolutions on the cell's edges."""
    return np.array([sum("conv" in str(op) for op in a.values()) for a in archs], dtype=float)


def sample(n: int, seed: int = 0) -> list[Arch]:
    rng = np.random.default_rng(seed)
    return list(dict.fromkeys(SPACE.sample(rng) for _ in range(n)))


@pytest.mark.parametrize(
    "estimator",
    [
        RandomForestPredictor(n_estimators=10),
        GradientBoostingPredictor(n_estimators=30),
        MLPEnsemblePredictor(n_members=2, epochs=40, hidden=(32,)),
        GINPredictor(n_members=2, epochs=40, hidden=16, n_layers=1),
        GPPredictor(n_restarts=0),
        TreeEnsemblePredictor(n_boosting=20, n_trees=10),
    ],
    ids=lambda e: type(e).__name__,
)
def test_estimators_pass_scikit_learn_check_estimator(estimator):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(estimator, on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results if r["status"] == "failed"]
    assert not failed


@pytest.mark.parametrize("name", predictors.names())
def test_every_registered_model_fits_archs_and_strings_and_tracks_a_simple_target(name):
    train, test = sample(120, seed=1)[:80], sample(60, seed=2)
    small = {"gin": {"epochs": 60, "n_members": 2}, "mlp": {"epochs": 150, "n_members": 3}, "rf": {"n_estimators": 30}, "gbm": {"n_estimators": 60}, "trees": {"n_boosting": 60, "n_trees": 30}}
    model = make_predictor(name, SPACE, random_state=0, **small.get(name, {})).fit(train, conv_count(train))
    predicted = model.predict([SPACE.to_string(a) for a in test])
    assert predicted.shape == (len(test),)
    assert np.corrcoef(predicted, conv_count(test))[0, 1] > 0.7


@pytest.mark.parametrize("name", ["rf", "gp", "mlp", "gin", "trees"])
def test_models_with_uncertainty_return_a_nonnegative_std(name):
    archs = sample(40)
    small = {"gin": {"epochs": 20, "n_members": 2}, "mlp": {"epochs": 30, "n_members": 3}, "rf": {"n_estimators": 10}, "trees": {"n_boosting": 10, "n_trees": 10}}
    mean, std = make_predictor(name, SPACE, random_state=0, **small.get(name, {})).fit(archs, conv_count(archs)).predict(archs[:5], return_std=True)
    assert mean.shape == std.shape == (5,) and (std >= 0).all() and std.max() > 0


def test_gradient_boosting_refuses_return_std_in_one_line():
    archs = sample(10)
    model = make_predictor("gbm", SPACE, n_estimators=5).fit(archs, conv_count(archs))
    with pytest.raises(NoUncertaintyError, match="gives no uncertainty") as info:
        model.predict(archs, return_std=True)
    assert "\n" not in str(info.value)


def test_random_forest_std_is_the_spread_of_its_trees():
    X = np.random.default_rng(0).random((30, 4))
    model = RandomForestPredictor(n_estimators=7, random_state=0).fit(X, X.sum(axis=1))
    per_tree = np.stack([t.predict(X[:3]) for t in model.forest_.estimators_])
    mean, std = model.predict(X[:3], return_std=True)
    np.testing.assert_allclose(mean, per_tree.mean(axis=0))
    np.testing.assert_allclose(std, per_tree.std(axis=0))


def test_tree_ensemble_predicts_the_mean_of_its_three_members():
    X = np.random.default_rng(0).random((30, 4))
    model = TreeEnsemblePredictor(n_boosting=15, n_trees=7, random_state=0).fit(X, X.sum(axis=1))
    members = [model.booster_.predict(X[:3])] + [forest.predict(X[:3]) for forest in model.forests_]
    np.testing.assert_allclose(model.predict(X[:3]), np.mean(members, axis=0))
    assert [type(f).__name__ for f in model.forests_] == ["RandomForestRegressor", "ExtraTreesRegressor"]


def test_mlp_ensemble_is_reproducible_from_its_random_state():
    X = np.random.default_rng(0).random((25, 5))
    y = X @ np.arange(5.0)
    fit = lambda seed: MLPEnsemblePredictor(n_members=2, epochs=20, random_state=seed).fit(X, y).predict(X)  # noqa: E731
    np.testing.assert_array_equal(fit(3), fit(3))
    assert not np.allclose(fit(3), fit(4))


def test_too_few_training_archs_says_how_many_are_needed():
    archs = sample(1)
    with pytest.raises(TooFewSamplesError, match="needs at least 2 training samples, got 1 sample"):
        make_predictor("rf", SPACE).fit(archs, [50.0])


def test_nan_targets_are_refused_with_their_count():
    archs = sample(5)
    with pytest.raises(NaNTargetError, match="2 of 5 training targets are NaN"):
        make_predictor("mlp", SPACE).fit(archs, [1.0, np.nan, 3.0, np.nan, 5.0])


def test_archs_of_another_space_are_refused_in_one_line():
    model = make_predictor("rf", SPACE, n_estimators=5)
    foreign = Arch({"stage1_depth": 2, "stage2_depth": 3})
    with pytest.raises(ForeignArchError, match="architecture #0 is not from space 'nb201'") as info:
        model.fit([foreign, foreign], [1.0, 2.0])
    assert "\n" not in str(info.value)
    with pytest.raises(ForeignArchError, match="#1"):
        model.fit([SPACE.sample(np.random.default_rng(0)), "|conv~0|+|oops|"], [1.0, 2.0])


def test_encodings_the_model_or_space_lacks_are_refused():
    with pytest.raises(UnknownEncodingError, match="expected one of \\['adjacency'\\]"):
        make_predictor("gin", SPACE, "onehot")
    with pytest.raises(UnknownEncodingError, match="unknown encoding 'bogus'"):
        ArchEncoder(SPACE, "bogus").fit([])
    with pytest.raises(KeyError, match="unknown predictor 'svm'"):
        make_predictor("svm", SPACE)


def test_gin_reads_the_graph_from_the_flattened_adjacency_encoding():
    archs = sample(4)
    X = SPACE.encode(archs, "adjacency")
    adj, ops = SPACE.adjacency(archs)
    from nas.accuracy.predictors._gin import split_adjacency

    got_adj, got_ops = split_adjacency(X, 8)
    np.testing.assert_array_equal(got_adj, adj)
    np.testing.assert_array_equal(got_ops, ops)
    with pytest.raises(ValueError, match="do not form an adjacency encoding"):
        GINPredictor(n_nodes=8).fit(np.ones((4, 10)), np.arange(4.0))


def test_effective_encoding_equates_cells_that_differ_only_in_dead_edges():
    # edge 0->1 feeds node 1, whose only outgoing edges are `none`: its op cannot change the output
    dead_conv = SPACE.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    dead_pool = SPACE.from_string("|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|")
    live_change = SPACE.from_string("|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|skip_connect~1|nor_conv_3x3~2|")
    features = effective_features(SPACE, [dead_conv, dead_pool, live_change])
    np.testing.assert_array_equal(features[0], features[1])
    assert not np.array_equal(features[0], features[2])
    assert not np.array_equal(SPACE.encode(dead_conv, "onehot"), SPACE.encode(dead_pool, "onehot"))


def test_rf_on_the_effective_encoding_ranks_cifar10_holdout(shared_data):
    from nas.accuracy.predictors import from_table

    archs, y = from_table(SPACE, "cifar10", data_dir=shared_data)
    effective = holdout_score("rf", SPACE, archs, y, train_size=100, seed=0, n_estimators=100)
    onehot = holdout_score("rf", SPACE, archs, y, train_size=100, seed=0, encoding="onehot", n_estimators=100)
    assert effective.n_test == len(archs) - 100
    assert effective.spearman > 0.85 and effective.spearman > onehot.spearman + 0.1


def test_cached_encodings_match_fresh_ones_and_cannot_be_corrupted_by_callers():
    from nas.accuracy.predictors import ArchEncoder

    archs = sample(20)
    enc = ArchEncoder(SPACE, "effective").fit(archs)
    first = enc.transform(archs)
    first[:] = -1.0  # a caller writing into its result must not change what the cache returns later
    again = enc.transform(list(reversed(archs)))[::-1]
    fresh = ArchEncoder(SPACE, "effective").fit(archs)._encode(archs)
    np.testing.assert_array_equal(again, fresh)
    strings = enc.transform([SPACE.to_string(a) for a in archs])
    np.testing.assert_array_equal(strings, fresh)
