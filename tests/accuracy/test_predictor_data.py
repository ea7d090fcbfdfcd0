from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from nas.accuracy.predictors import TrainingDataError, from_csv, from_table, from_trials, make_predictor
from nas.spaces import get_space

SPACE = get_space("nb201")
A = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
B = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"


def test_csv_with_arch_and_target_trains_a_predictor(tmp_path):
    path = tmp_path / "acc.csv"
    pd.DataFrame({"arch": [A, B, A.replace("nor_conv_1x1~2", "avg_pool_3x3~2")], "target": [91.0, 10.0, 88.5]}).to_csv(path, index=False)
    archs, y = from_csv(path, SPACE)
    assert [SPACE.to_string(a) for a in archs[:2]] == [A, B] and y.tolist() == [91.0, 10.0, 88.5]
    assert make_predictor("rf", SPACE, n_estimators=5).fit(archs, y).predict(archs).shape == (3,)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"arch": [A], "accuracy": [1.0]}), r"has no column\(s\) \['target'\]"),
        (pd.DataFrame({"arch": [A, "|bad~0|"], "target": [1.0, 2.0]}), "row 1: malformed NB201 arch string"),
        (pd.DataFrame({"arch": [A, B], "target": [1.0, None]}), "1 row\\(s\\) have no numeric 'target' \\(first: row 1\\)"),
    ],
)
def test_bad_csv_rows_are_named_in_one_line(tmp_path, frame, message):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(TrainingDataError, match=message) as info:
        from_csv(path, SPACE)
    assert "\n" not in str(info.value)


def test_missing_csv_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        from_csv(tmp_path / "none.csv", SPACE)


def test_run_trials_give_their_completed_metric_as_labels():
    trials = pd.DataFrame({"trial": [0, 1, 2], "arch": [A, B, A], "accuracy": [90.0, np.nan, 91.0], "params": [0.5, 0.1, 0.5]})
    archs, y = from_trials(trials, SPACE)
    assert len(archs) == 2 and y.tolist() == [90.0, 91.0]
    with pytest.raises(TrainingDataError, match="no column"):
        from_trials(trials, SPACE, metric="latency@raspi4")


def test_table_gives_every_nb201_arch_with_its_accuracy(shared_data):
    archs, y = from_table(SPACE, "cifar100", data_dir=shared_data)
    assert len(archs) == 15_625 == len(set(archs)) and np.isfinite(y).all() and 0 < y.min() < y.max() < 100
    _, low = from_table(SPACE, "cifar100", fidelity="12ep", data_dir=shared_data)
    assert np.corrcoef(y, low)[0, 1] > 0.5 and not np.allclose(y, low)
