from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nas.accuracy.training import build_initialised
from nas.cli import app
from nas.export import ExportError, export_module, export_run, ordered_front, select
from nas.run import Run, RunConfig, load_run

LATENCY = dict(space="nb201", dataset="cifar10", objectives=["accuracy:max", "latency@raspi4:min"], strategy="evolution")


@pytest.fixture(scope="module")
def table_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("export")
        patch.setenv("NAS_DATA_DIR", "none")
        Run.open(root / "r", RunConfig(**LATENCY, budget=30, seed=0)).search()
        yield root / "r"


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        root = tmp_path_factory.mktemp("export_trained")
        patch.setenv("NAS_DATA_DIR", "none")
        config = RunConfig(
            space="nb201", objectives=["accuracy:max", "params:min"], accuracy="train:digits", strategy="random", budget=3, seed=0,
            training={"epochs": 1, "max_train": 60},
        )
        Run.open(root / "r", config).search()
        yield root / "r"


def _random_input(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_rank_one_of_a_pareto_run_is_its_most_accurate_front_member(table_run):
    run = load_run(table_run)
    order, frame = ordered_front(run)
    assert "accuracy (highest first)" in order
    assert frame["arch"].iloc[0] == run.pareto().sort_values("accuracy", ascending=False)["arch"].iloc[0]
    picked = select(run, rank=1)
    assert picked.arch == frame["arch"].iloc[0] and picked.trial is not None
    assert picked.metrics["latency@raspi4"] == pytest.approx(frame["latency@raspi4"].iloc[0])


def test_onnx_export_matches_pytorch_and_reports_latency_here_and_in_the_search(table_run, tmp_path):
    import onnxruntime as ort

    result = export_run(table_run, "onnx", tmp_path / "m", rank=1)
    assert result.path.endswith("m.onnx") and (tmp_path / "m.onnx").is_file()
    sidecar = json.loads((tmp_path / "m.onnx.json").read_text())
    assert sidecar["arch"] == result.arch and sidecar["input_shape"] == [1, 3, 32, 32]
    assert result.latency_ms > 0 and result.max_abs_diff < 1e-4
    run = load_run(table_run)
    assert result.search_latency == {"latency@raspi4": pytest.approx(select(run, rank=1).metrics["latency@raspi4"])}
    assert not result.trained and "untrained" in result.weights
    # The file alone reproduces the network the run builds for this arch (same initial weights).
    x = _random_input((1, 3, 32, 32), seed=7)
    module = build_initialised(run.space, run.space.from_string(result.arch), run.space.input_spec("cifar10"), 0).eval()
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, module(x).detach().numpy(), atol=1e-4)


def test_an_arch_the_run_never_evaluated_is_priced_by_the_runs_latency_model(table_run, tmp_path):
    run = load_run(table_run)
    seen = set(run.trials()["arch"])
    other = next(a for a in (run.space.to_string(run.space.sample(np.random.default_rng(i))) for i in range(100)) if a not in seen)
    result = export_run(table_run, "onnx", tmp_path / "o.onnx", arch=other, luts=["pixel3"])
    assert result.trial is None and result.arch == other
    expected = run.providers["latency@raspi4"].evaluate([run.space.from_string(other)])[0]
    assert result.search_latency["latency@raspi4"] == pytest.approx(expected)
    assert result.lut_latency["pixel3"] > 0


def test_torch_export_of_a_trained_trial_carries_its_trained_weights(trained_run, tmp_path):
    run = load_run(trained_run)
    picked = select(run, rank=1)
    assert picked.weights_file is not None
    result = export_run(trained_run, "torch", tmp_path / "t.pt2", rank=1)
    assert result.trained and result.weights.startswith("trained:") and result.input_shape == (1, 1, 8, 8)
    program = torch.export.load(tmp_path / "t.pt2").module()
    module = run.space.build(run.space.from_string(picked.arch), run.providers["accuracy"].input_spec)
    module.load_state_dict(torch.load(trained_run / picked.weights_file, weights_only=True))
    x = _random_input((1, 1, 8, 8), seed=3)
    assert torch.allclose(program(x), module.eval()(x), atol=1e-5)
    untrained = build_initialised(run.space, run.space.from_string(picked.arch), run.providers["accuracy"].input_spec, 0).eval()
    assert not torch.allclose(program(x), untrained(x), atol=1e-3)


@pytest.mark.skipif(importlib.util.find_spec("tvm") is None, reason="the TVM extra is not installed (pip install -r requirements-tvm.txt -c constraints.txt)")
def test_tvm_export_is_a_library_that_loads_and_matches_pytorch(table_run, tmp_path):
    import tvm
    from tvm import relax

    result = export_run(table_run, "tvm", tmp_path / "lib.so", rank=2, tune_trials=0)
    vm = relax.VirtualMachine(tvm.runtime.load_module(str(tmp_path / "lib.so")), tvm.cpu())
    x = _random_input(result.input_shape, seed=1)
    run = load_run(table_run)
    module = build_initialised(run.space, run.space.from_string(result.arch), run.space.input_spec("cifar10"), 0).eval()
    out = vm["main"](tvm.runtime.tensor(x.numpy(), tvm.cpu()))
    out = out[0] if not hasattr(out, "numpy") else out
    assert np.allclose(out.numpy(), module(x).detach().numpy(), atol=1e-4)
    assert result.backend["tune_trials"] == "0"


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=999), r"--rank 999 is outside the Pareto front by accuracy \(highest first\) of run .*, which holds \d+ architectures"),
        (dict(rank=0), r"--rank 0 is outside"),
        (dict(), "give exactly one of --rank K"),
        (dict(rank=1, arch="|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"), "give exactly one of --rank K"),
        (dict(arch="|conv~0|"), "malformed NB201 arch string"),
    ],
)
def test_bad_selections_are_refused_in_one_line_and_write_nothing(table_run, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        export_run(table_run, "onnx", tmp_path / "m.onnx", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "fmt, out, message",
    [
        ("keras", "m.h5", r"unknown export format 'keras'; expected one of \['torch', 'onnx', 'tvm'\]"),
        ("onnx", "m.pt2", r"--format onnx writes a .onnx file, got suffix '.pt2'"),
    ],
)
def test_bad_formats_and_file_names_are_refused(table_run, tmp_path, fmt, out, message):
    with pytest.raises(ExportError, match=message):
        export_run(table_run, fmt, tmp_path / out, rank=1)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is not a nas run directory"):
        export_run(tmp_path, "onnx", tmp_path / "m.onnx", rank=1)


def test_a_format_whose_extra_is_missing_names_the_install_command(table_run, tmp_path, monkeypatch):
    import nas.cost.measure._tvm as tvm_backend

    def missing():
        raise ImportError("the TVM backend needs the optional extra: pip install -r requirements-tvm.txt -c constraints.txt")

    monkeypatch.setattr(tvm_backend, "_require_tvm", missing)
    with pytest.raises(ImportError, match="pip install -r requirements-tvm.txt"):
        export_run(table_run, "tvm", tmp_path / "m.so", rank=1)
    assert list(tmp_path.iterdir()) == []


def test_an_export_that_differs_from_pytorch_is_refused_and_not_written(tmp_path, monkeypatch):
    import nas.export as export

    monkeypatch.setattr(export, "TOLERANCE", -1.0)
    with pytest.raises(ExportError, match="differs from PyTorch .* nothing written"):
        export_module(torch.nn.Linear(4, 2), (1, 4), "onnx", tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_nas_export_prints_latency_here_next_to_the_searchs(table_run, tmp_path):
    result = CliRunner().invoke(app, ["export", str(table_run), "--rank", "1", "--format", "onnx", "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 0, result.output
    assert "latency here (onnxruntime, 1 thread)" in result.output and "latency the search used: latency@raspi4" in result.output
    bad = CliRunner().invoke(app, ["export", str(table_run), "--rank", "500", "-o", str(tmp_path / "n.onnx")])
    assert bad.exit_code == 2 and "--rank 500 is outside" in bad.output and len(bad.output.strip().splitlines()) == 1
