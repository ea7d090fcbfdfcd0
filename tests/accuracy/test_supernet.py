"""The OFA supernet: elastic operators, the kernel transform, extraction, checkpoints, resume, scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from optuna.trial import TrialState
from typer.testing import CliRunner

from nas.accuracy.supernet import SupernetAccuracy, SupernetError, SupernetPredictor
from nas.accuracy.supernet.elastic import OFASupernet, sample_arch
from nas.accuracy.supernet.train import SupernetSettings, SupernetTrainer, load_supernet, phase_names
from nas.accuracy.training import Recipe, TrainingDivergedError, load_prepared
from nas.cli import app
from nas.run import Run, RunConfig
from nas.spaces import get_space
from nas.spaces.base import InputSpec

SPACE = get_space("ofa_mbv3_small")
RECIPE = Recipe.from_mapping({"epochs": 1, "max_train": 40, "batch_size": 20})
ONE_EACH = {"phase_epochs": {"largest": 1}, "subnets_per_step": 1, "calibration_batches": 1}


def perturbed_supernet(seed: int = 0) -> OFASupernet:
    """A supernet whose BatchNorm statistics and kernel transforms are not the identity, so equality
    between it and an extracted sub-network means something."""
    torch.manual_seed(seed)
    model = OFASupernet(SPACE, in_channels=1, num_classes=10)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    for block in model.blocks:
        for p in block.transforms.values():
            p.data += 0.1 * torch.randn_like(p)
    return model.eval()


def test_an_extracted_subnet_computes_what_the_supernet_computes_with_it_active():
    model = perturbed_supernet()
    rng = np.random.default_rng(0)
    for _ in range(6):
        arch = SPACE.sample(rng)
        model.set_active(arch)
        size = SPACE.input_size(arch)
        x = torch.randn(3, 1, size, size)
        subnet = model.extract(arch).eval()
        with torch.no_grad():
            assert torch.allclose(model(x), subnet(x), atol=1e-5)
        assert sum(p.numel() for p in subnet.parameters()) == sum(p.numel() for p in SPACE.build(arch, InputSpec(1, size, size, 10)).parameters())


def test_the_kernel_transform_maps_centre_crops_through_the_learned_matrices():
    block = perturbed_supernet(1).blocks[0]
    mid = block.mid(6)
    w7 = block.depthwise.weight[:mid]
    crop5 = w7[:, :, 1:6, 1:6].reshape(mid, 1, 25)
    w5 = (crop5 @ block.transforms["7to5"].T).reshape(mid, 1, 5, 5)
    w3 = (w5[:, :, 1:4, 1:4].reshape(mid, 1, 9) @ block.transforms["5to3"].T).reshape(mid, 1, 3, 3)
    assert torch.allclose(block.kernel_filter(7, mid), w7)
    assert torch.allclose(block.kernel_filter(5, mid), w5, atol=1e-6)
    assert torch.allclose(block.kernel_filter(3, mid), w3, atol=1e-6)
    fresh = OFASupernet(SPACE, in_channels=1, num_classes=10).blocks[0]  # identity transforms: plain centre crops
    assert torch.equal(fresh.kernel_filter(3, mid), fresh.depthwise.weight[:mid, :, 2:5, 2:5])


def test_sorting_channels_keeps_the_largest_network_and_puts_important_channels_first():
    model = perturbed_supernet(2)
    largest = OFASupernet.largest_arch(SPACE)
    model.set_active(largest)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        before = model(x)
        model.sort_channels()
        after = model(x)
    assert torch.allclose(before, after, atol=1e-5)
    importance = model.blocks[3].project.weight.abs().sum(dim=(0, 2, 3))
    assert torch.all(importance[:-1] >= importance[1:])


def test_ofa_table_rows_round_trip_and_canonical_strings_name_one_network():
    import pandas as pd

    space = get_space("ofa_mbv3")
    path = "../shared/data/ofa_mbv3/latency_ms.csv.gz"
    rows = pd.read_csv(path, nrows=50) if __import__("os").path.isfile(path) else pd.DataFrame(
        {"ks": ["7 5 5 5 7 7 5 7 5 7 3 7 5 3 7 3 5 3 5 3"], "e": ["6 4 4 6 6 3 4 3 3 6 3 3 3 6 3 4 6 4 3 6"], "d": ["2 2 2 2 3"], "r": [204]}
    )
    for row in rows.itertuples():
        arch = space.from_table_row(row.ks, row.e, row.d, row.r)
        assert space.table_row(arch) == {"ks": row.ks, "e": row.e, "d": row.d, "r": str(row.r)}
        canon = space.canonical(arch)
        assert space.layers(canon) == space.layers(arch) and space.canonical(canon) == canon
    with pytest.raises(ValueError, match="expected 20 kernels, 20 expand ratios, 5 depths"):
        space.from_string("3 3|3 3|2|128")
    with pytest.raises(ValueError, match="decision 'resolution' of space 'ofa_mbv3' got 100"):
        space.from_string("|".join([" ".join(["3"] * 20), " ".join(["3"] * 20), "2 2 2 2 2", "100"]))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("sn") / "sn"
    data = load_prepared("digits", RECIPE)
    trainer = SupernetTrainer(SPACE, data, RECIPE, SupernetSettings.from_mapping(ONE_EACH, SPACE), out, seed=0, data_spec="digits")
    return out, trainer.train(), data


def test_progressive_shrinking_runs_every_phase_and_checkpoints_each(trained):
    out, records, _ = trained
    assert [r.phase for r in records] == phase_names(SPACE) == ["largest", "kernel", "depth_1", "depth_2", "expand_1", "expand_2"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["space"] == "ofa_mbv3_small" and manifest["data"] == "digits" and len(manifest["history"]) == 6
    for phase in phase_names(SPACE):
        state = torch.load(out / f"phase_{phase}.pt", weights_only=True)
        assert state.keys() == torch.load(out / "supernet.pt", weights_only=True).keys()
    model, _ = load_supernet(out, SPACE, InputSpec(1, 8, 8, 10))
    saved = torch.load(out / "supernet.pt", weights_only=True)
    assert all(torch.equal(saved[k], v) for k, v in model.state_dict().items())


def test_a_killed_training_resumes_after_its_last_finished_phase(tmp_path):
    data = load_prepared("digits", RECIPE)
    settings = SupernetSettings.from_mapping(ONE_EACH, SPACE)

    def kill_in_depth(phase, epoch, epochs):
        if phase == "depth_1":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        SupernetTrainer(SPACE, data, RECIPE, settings, tmp_path / "sn", seed=0).train(progress=kill_in_depth)
    first = json.loads((tmp_path / "sn" / "manifest.json").read_text())["history"]
    assert [h["phase"] for h in first] == ["largest", "kernel"]
    seen = []
    records = SupernetTrainer(SPACE, data, RECIPE, settings, tmp_path / "sn", seed=0).train(progress=lambda p, e, n: seen.append(p))
    assert [r.phase for r in records] == phase_names(SPACE) and records[0].seconds == first[0]["seconds"]
    assert "largest" not in seen and "kernel" not in seen
    (tmp_path / "sn" / "phase_expand_2.pt").unlink()
    more = SupernetSettings.from_mapping({**ONE_EACH, "kd_ratio": 0.5}, SPACE)
    with pytest.raises(SupernetError, match="holds a supernet of another settings"):
        SupernetTrainer(SPACE, data, RECIPE, more, tmp_path / "sn", seed=0).train()


def test_a_missing_phase_checkpoint_is_refused_on_resume(tmp_path):
    data = load_prepared("digits", RECIPE)
    settings = SupernetSettings.from_mapping({**ONE_EACH, "phase_epochs": {"largest": 1, "kernel": 0, "depth_1": 0, "depth_2": 0, "expand_1": 0, "expand_2": 0}}, SPACE)

    def stop(phase, epoch, epochs):
        raise KeyboardInterrupt

    SupernetTrainer(SPACE, data, RECIPE, settings, tmp_path / "sn", seed=0).train()
    manifest = json.loads((tmp_path / "sn" / "manifest.json").read_text())
    manifest["history"] = manifest["history"][:2]
    (tmp_path / "sn" / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "sn" / "phase_kernel.pt").unlink()
    with pytest.raises(SupernetError, match="phase 'kernel' is recorded as finished but phase_kernel.pt is missing"):
        SupernetTrainer(SPACE, data, RECIPE, settings, tmp_path / "sn", seed=0).train(progress=stop)


def test_nan_loss_stops_training_naming_the_phase_and_step(tmp_path):
    data = load_prepared("digits", RECIPE)
    wild = Recipe.from_mapping({**RECIPE.to_dict(), "lr": 1e6, "grad_clip": 0.0, "epochs": 3})
    with pytest.raises(TrainingDivergedError, match=r"in phase largest, epoch \d+, step \d+"):
        SupernetTrainer(SPACE, data, wild, SupernetSettings.from_mapping({}, SPACE), tmp_path / "sn", seed=0).train()


def test_a_checkpoint_of_another_space_or_input_is_refused(trained, tmp_path):
    out, _, _ = trained
    other = get_space("ofa_mbv3")
    with pytest.raises(SupernetError, match="trained for space 'ofa_mbv3_small' with another definition"):
        load_supernet(out, other, InputSpec(1, 8, 8, 10))
    with pytest.raises(SupernetError, match="was trained on inputs"):
        load_supernet(out, SPACE, InputSpec(3, 8, 8, 10))
    with pytest.raises(SupernetError, match="holds no trained supernet"):
        load_supernet(tmp_path, SPACE, InputSpec(1, 8, 8, 10))


def test_inherited_scores_and_the_predictor_score_any_subnet(trained):
    out, _, _ = trained
    scorer = SupernetAccuracy(SPACE, out)
    rng = np.random.default_rng(3)
    archs = [SPACE.sample(rng) for _ in range(4)]
    scores = scorer.evaluate(archs)
    assert np.all((scores >= 0) & (scores <= 100)) and np.array_equal(scores, scorer.evaluate(archs))
    assert scorer.tier.value == "estimate"
    predictor = SupernetPredictor(SPACE, out, samples=24, seed=0)
    assert (out / "predictor_samples.csv").is_file() and predictor.validation["held_out"] == 5
    assert np.isfinite(predictor.evaluate(archs)).all()
    again = SupernetPredictor(SPACE, out, samples=24, seed=0)  # reuses the scored samples
    assert np.allclose(again.evaluate(archs), predictor.evaluate(archs))


def test_a_search_scores_subnets_with_the_supernet(trained, tmp_path):
    out, _, _ = trained
    config = RunConfig(space="ofa_mbv3_small", dataset="digits", objectives=["accuracy:max", "params:min"], accuracy=f"supernet:{out}", strategy="evolution", budget=6, seed=0)
    run = Run.open(tmp_path / "r", config)
    run.search()
    done = run.study.get_trials(states=(TrialState.COMPLETE,))
    assert len(done) == 6 and all(0 <= t.values[0] <= 100 for t in done)
    assert run.providers["accuracy"].tier.value == "estimate"
    assert all(SPACE.canonical(SPACE.from_string(t.user_attrs["arch"])) == SPACE.from_string(t.user_attrs["arch"]) for t in done)


def test_nas_train_fine_tunes_an_extracted_subnet(trained, tmp_path):
    out, _, _ = trained
    arch = SPACE.to_string(sample_arch(SPACE, np.random.default_rng(5), {}))
    result = CliRunner().invoke(app, ["train", "--space", "ofa_mbv3_small", "--arch", arch, "--init", f"supernet:{out}", "--epochs", "1", "--training-option", "max_train=40", "--out", str(tmp_path / "t"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "inherited from" in result.output and "accuracy=" in result.output
    bad = CliRunner().invoke(app, ["train", "--space", "nb201", "--arch", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|", "--init", f"supernet:{out}", "--out", str(tmp_path / "u")])
    assert bad.exit_code == 2 and "needs an OFA space" in bad.output


def test_supernet_evaluator_errors_are_one_line(tmp_path, no_data_dir):
    config = RunConfig(space="nb201", objectives=["accuracy:max", "params:min"], accuracy=f"supernet:{tmp_path}", budget=2)
    with pytest.raises(ValueError) as info:
        Run.open(tmp_path / "r", config)
    assert "needs an OFA space" in str(info.value) and "\n" not in str(info.value)
    config = RunConfig(space="ofa_mbv3_small", dataset="digits", objectives=["accuracy:max", "params:min"], accuracy=f"supernet:{tmp_path}", budget=2)
    with pytest.raises(ValueError, match="holds no trained supernet"):
        Run.open(tmp_path / "r", config)


def test_supernet_search_finds_the_best_predicted_subnet_under_a_cost_bound(trained):
    out, _, _ = trained
    result = CliRunner().invoke(app, ["supernet", "search", "--supernet", str(out), "--space", "ofa_mbv3_small", "-c", "flops<=2", "--samples", "24", "--generations", "5", "--population", "20"])
    assert result.exit_code == 0, result.output
    arch = SPACE.from_string(result.output.splitlines()[0].strip())
    from nas.cost.counts import CountProvider

    assert CountProvider("flops", SPACE, dataset="digits").evaluate([arch])[0] <= 2
    assert "predicted accuracy" in result.output and "inherited" in result.output
    bad = CliRunner().invoke(app, ["supernet", "search", "--supernet", str(out), "-c", "flops<=0.0001", "--samples", "24"])
    assert bad.exit_code == 2 and "relax the bound" in " ".join(bad.output.split())


def test_export_takes_a_subnet_away_with_the_weights_it_was_scored_with(trained, tmp_path):
    from nas.accuracy.supernet.train import calibrate_subnet
    from nas.export import export_run
    from nas.run import load_run

    out, _, _ = trained
    config = RunConfig(space="ofa_mbv3_small", dataset="digits", objectives=["accuracy:max", "params:min"], accuracy=f"supernet:{out}", strategy="random", budget=3, seed=0)
    Run.open(tmp_path / "r", config).search()
    result = export_run(tmp_path / "r", "torch", tmp_path / "s.pt2", rank=1)
    assert result.weights.startswith("inherited") and result.input_shape[2] == SPACE.input_size(SPACE.from_string(result.arch))
    provider = load_run(tmp_path / "r").providers["accuracy"]
    calibrate_subnet(provider.model, SPACE.from_string(result.arch), provider.data, provider.settings, provider.recipe)
    x = torch.randn(*result.input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = provider.model.eval()(x)
    assert torch.allclose(torch.export.load(tmp_path / "s.pt2").module()(x), expected, atol=1e-4)
