"""The graph hypernetwork: generated shapes, dependence on the graph, training, checkpoints, the `ghn:PATH`
evaluator inside a run, and `nas hypernet train`."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from optuna.trial import TrialState
from typer.testing import CliRunner

from nas.accuracy.hypernet import GHNSettings, HypernetAccuracy, HypernetError, train_ghn
from nas.accuracy.hypernet.model import network_slots, run_network
from nas.accuracy.hypernet.train import ArchNetworks, make_ghn, train_steps
from nas.accuracy.training import load_prepared
from nas.cli import app
from nas.run import Run, RunConfig
from nas.spaces import get_space
from nas.spaces.nb201 import NB201Space

SPACE = get_space("nb201")
TINY = {"channels": 2, "cells_per_stage": 1, "hidden": 8, "max_train": 60, "batch_size": 16, "archs_per_step": 2}
SETTINGS = GHNSettings.from_mapping(TINY)
OPS = SPACE.ops


def _arch(ops: list[str]):
    return SPACE.validate({d.name: op for d, op in zip(SPACE.decisions, ops)})


@pytest.fixture(scope="module")
def data():
    return load_prepared("digits", SETTINGS.recipe())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("ghn") / "g"
    manifest = train_ghn(SPACE, "digits", out, SETTINGS, steps=3, seed=0)
    return out, manifest


def _ghn(data, seed: int = 0):
    torch.manual_seed(seed)
    return make_ghn(SPACE, SETTINGS, data.input_spec)


@pytest.mark.parametrize("op", OPS)
def test_generated_tensors_have_the_built_networks_parameter_shapes_for_every_op(data, op):
    ghn = _ghn(data)
    mixed = [op, "nor_conv_3x3", op, "nor_conv_1x1", op, "skip_connect"]
    for arch in (_arch([op] * 6), _arch(mixed)):
        net = ghn.build(SPACE.edge_ops(arch))
        params = ghn.generate(SPACE.graph(arch), network_slots(net, [d.name for d in SPACE.decisions]))
        expected = {name: tuple(p.shape) for name, p in net.named_parameters()}
        assert {name: tuple(t.shape) for name, t in params.items()} == expected
        assert type(net).__name__ == "NB201Network"
        assert run_network(net, params, data.val_x[:8]).shape == (8, data.input_spec.classes)


def test_generated_weights_depend_on_the_cell_graph(data):
    ghn = _ghn(data)
    a = _arch(["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3"])
    b = _arch(["nor_conv_3x3", "none", "nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1"])
    networks = ArchNetworks(SPACE, ghn)
    with torch.no_grad():
        pa, pb = (ghn.generate(networks.get(x)[0], networks.get(x)[2]) for x in (a, b))
        again = ghn.generate(networks.get(a)[0], networks.get(a)[2])
    shared = "cells.0.edges.0.1.weight"  # edge 0->1 is a 3x3 conv in both cells
    assert pa[shared].shape == pb[shared].shape and not torch.allclose(pa[shared], pb[shared])
    assert not torch.allclose(pa["stem.0.weight"], pb["stem.0.weight"])  # outside the cells too
    assert all(torch.equal(pa[k], again[k]) for k in pa)


def test_training_a_few_steps_lowers_the_loss_on_held_fixed_cells_and_batch(data):
    settings = GHNSettings.from_mapping({**TINY, "channels": 4, "lr": 0.01})
    torch.manual_seed(1)
    ghn = make_ghn(SPACE, settings, data.input_spec)
    rng = np.random.default_rng(7)
    archs = [a for a in (SPACE.sample(rng) for _ in range(12)) if "none" not in SPACE.edge_ops(a)[3:]][:4]
    networks = ArchNetworks(SPACE, ghn)
    x, y = data.train_x[:60], data.train_y[:60]

    def loss() -> float:
        with torch.no_grad():
            return float(np.mean([F.cross_entropy(run_network(n, ghn.generate(g, s), x), y) for g, n, s in map(networks.get, archs)]))

    before = loss()
    log = train_steps(ghn, SPACE, data, settings, 80, seed=0)
    after = loss()
    assert after < before - 0.3, (before, after)  # untrained: about ln(10) = 2.30 nats
    assert len(log.losses) == 80 and log.last_loss < log.first_loss


def test_a_checkpoint_round_trips_to_the_same_scores(trained, data):
    out, manifest = trained
    assert (out / "ghn.pt").is_file() and json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["space"]["name"] == "nb201" and manifest["network"]["channels"] == 2 and manifest["steps"] == 3
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left
    archs = [SPACE.sample(np.random.default_rng(s)) for s in range(5)]
    first = HypernetAccuracy(SPACE, out).evaluate(archs)
    second = HypernetAccuracy(SPACE, out)
    assert np.array_equal(first, second.evaluate(archs)) and ((0 <= first) & (first <= 100)).all()
    state = torch.load(out / "ghn.pt", weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in second.ghn.state_dict().items())
    assert second.pins()["weights_sha256"] == second.provenance()["weights_sha256"]


def test_the_network_size_defaults_to_the_spaces_own_and_the_manifest_records_it(tmp_path):
    assert GHNSettings().network_size(SPACE) == (16, 5)  # nb201's network, as params/flops describe it
    assert GHNSettings.from_mapping({"channels": 4}).network_size(SPACE) == (4, 5)
    small = NB201Space("nb201", channels=2, cells_per_stage=1)  # same decisions, a tiny network
    settings = GHNSettings.from_mapping({k: v for k, v in TINY.items() if k not in ("channels", "cells_per_stage")})
    manifest = train_ghn(small, "digits", tmp_path / "g", settings, steps=1, seed=0)
    assert manifest["network"]["channels"] == 2 and manifest["network"]["cells_per_stage"] == 1
    assert manifest["settings"]["channels"] == 2 and manifest["settings"]["cells_per_stage"] == 1
    provider = HypernetAccuracy(small, tmp_path / "g")
    arch = _arch(["nor_conv_3x3"] * 6)
    assert provider.network(arch).cells[0].edges[0][1].out_channels == 2
    with pytest.raises(HypernetError, match="channels must be an integer >= 1 or null"):
        GHNSettings.from_mapping({"channels": 0})


def test_val_samples_scores_on_the_first_validation_images_only(trained):
    out, _ = trained
    provider = HypernetAccuracy(SPACE, out, val_samples=10)
    assert len(provider.val_y) == 10 and torch.equal(provider.val_y, provider.data.val_y[:10])
    scores = provider.evaluate([SPACE.sample(np.random.default_rng(s)) for s in range(3)])
    assert np.allclose(scores / 10, np.round(scores / 10))  # accuracy over 10 images: multiples of 10 %
    assert provider.pins()["val_samples"] == 10 and "val_samples" not in HypernetAccuracy(SPACE, out).pins()
    with pytest.raises(HypernetError, match="val_samples must be an integer >= 2"):
        HypernetAccuracy(SPACE, out, val_samples=1)


def test_the_ghn_evaluator_takes_val_samples_and_refuses_unknown_options(trained, tmp_path):
    out, _ = trained
    base = {"space": "nb201", "objectives": ["accuracy:max", "params:min"], "accuracy": f"ghn:{out}", "budget": 2}
    run = Run.open(tmp_path / "r", RunConfig(**base, accuracy_options={"val_samples": 12}))
    assert len(run.providers["accuracy"].val_y) == 12
    with pytest.raises(ValueError, match=r"unknown accuracy option\(s\) \['val'\].*expected some of \['data', 'val_samples'\]"):
        Run.open(tmp_path / "r2", RunConfig(**base, accuracy_options={"val": 12}))


def test_the_exported_network_holds_the_generated_weights(trained):
    out, _ = trained
    provider = HypernetAccuracy(SPACE, out)
    arch = _arch(["nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "nor_conv_3x3"])
    net = provider.network(arch)
    graph, _, slots = provider.networks.get(arch)
    with torch.no_grad():
        params = provider.ghn.generate(graph, slots)
    assert not net.training and all(torch.equal(p, params[name]) for name, p in net.named_parameters())
    bn = net.stem[1]
    with torch.no_grad():
        features = torch.nn.functional.conv2d(provider.data.train_x, params["stem.0.weight"], padding=1)
    assert torch.allclose(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)


def test_a_checkpoint_of_another_space_is_refused_in_one_line_naming_it(trained, tmp_path):
    out, _ = trained
    other = tmp_path / "other"
    shutil.copytree(out, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["space"]["name"] = "darts_small"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError) as info:
        HypernetAccuracy(SPACE, other)
    message = str(info.value)
    assert "'darts_small'" in message and str(other) in message and "'nb201'" in message and "\n" not in message
    with pytest.raises(HypernetError, match="trained for space .nb201.*space is .fbnet."):
        HypernetAccuracy(get_space("fbnet"), out)


def test_a_missing_folder_or_manifest_is_refused_in_one_line(tmp_path):
    with pytest.raises(ValueError, match=r"does not exist; expected a directory written by `nas hypernet train`") as info:
        HypernetAccuracy(SPACE, tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"holds no trained GHN \(no manifest.json\)"):
        HypernetAccuracy(SPACE, tmp_path / "empty")


def test_the_ghn_evaluator_scores_a_real_run_with_tier_estimate(trained, tmp_path):
    out, _ = trained
    config = RunConfig(space="nb201", objectives=["accuracy:max", "params:min"], accuracy=f"ghn:{out}", strategy="random", budget=4, seed=0)
    run = Run.open(tmp_path / "r", config)
    run.search()
    done = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 4 and all(0 <= t.values[0] <= 100 for t in done)
    provider = run.providers["accuracy"]
    assert provider.tier.value == "estimate" and isinstance(provider, HypernetAccuracy)
    archs = [SPACE.from_string(t.user_attrs["arch"]) for t in done]
    assert np.allclose([t.values[0] for t in done], HypernetAccuracy(SPACE, out).evaluate(archs))
    bad = RunConfig(space="nb201", objectives=["accuracy:max", "params:min"], accuracy=f"ghn:{tmp_path / 'missing'}", budget=2)
    with pytest.raises(ValueError, match="does not exist"):
        Run.open(tmp_path / "r2", bad)
    assert not (tmp_path / "r2").exists()


def test_nas_hypernet_train_writes_weights_and_manifest_and_refuses_a_used_out(tmp_path):
    out = tmp_path / "ghn"
    args = ["hypernet", "train", "--out", str(out), "--steps", "2", "--no-progress", *[x for k, v in TINY.items() for x in ("--option", f"{k}={v}")]]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert sorted(p.name for p in out.iterdir()) == ["ghn.pt", "manifest.json"]
    assert manifest["space"]["name"] == "nb201" and manifest["data"] == "digits" and manifest["settings"]["hidden"] == 8
    assert f"ghn:{out}" in " ".join(result.output.split())
    before = (out / "ghn.pt").read_bytes()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "not an empty directory" in again.output
    assert (out / "ghn.pt").read_bytes() == before
    wrong = CliRunner().invoke(app, ["hypernet", "train", "--out", str(tmp_path / "x"), "--steps", "2", "--space", "fbnet"])
    assert wrong.exit_code == 2 and "not of family nb201" in " ".join(wrong.output.split()) and not (tmp_path / "x").exists()
    typo = CliRunner().invoke(app, ["hypernet", "train", "--out", str(tmp_path / "y"), "--option", "hiden=4"])
    assert typo.exit_code == 2 and "unknown GHN option(s) ['hiden']" in typo.output and not (tmp_path / "y").exists()
