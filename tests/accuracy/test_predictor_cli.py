from __future__ import annotations

import re

from typer.testing import CliRunner

from nas.cli import app

runner = CliRunner()


def test_predictor_list_names_every_model_and_its_encodings():
    result = runner.invoke(app, ["predictor", "list"])
    assert result.exit_code == 0, result.output
    for name in ("rf", "gbm", "mlp", "gp", "gin"):
        assert re.search(rf"^{name}: ", result.output, re.M)
    assert "effective" in result.output and "adjacency" in result.output


def test_predictor_eval_prints_one_line_of_rank_correlations(shared_data):
    result = runner.invoke(app, ["predictor", "eval", "--model", "gbm", "--train-size", "50", "--seed", "1", "--data-dir", str(shared_data)])
    assert result.exit_code == 0, result.output
    match = re.fullmatch(r"spearman=(\S+) kendall=(\S+) n_test=15575\n", result.output)
    assert match and 0.6 < float(match.group(1)) <= 1 and 0.4 < float(match.group(2)) <= 1


def test_predictor_eval_bad_input_is_one_error_line_and_exit_2(no_data_dir):
    result = runner.invoke(app, ["predictor", "eval", "--model", "rf", "--train-size", "1"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error:") and "needs at least 2 training samples" in result.output
    result = runner.invoke(app, ["predictor", "eval", "--model", "gin", "--encoding", "path"])
    assert result.exit_code == 2 and "cannot use encoding 'path'" in result.output
