"""Tests for nas.tables: data-dir resolution, embedded and shared NB201 tables, official file loaders."""

from __future__ import annotations

import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from nas import tables

SHARED = tables.find_data_dir()
_LOOKED = SHARED or "$NAS_DATA_DIR, ../shared/data"
needs_shared = pytest.mark.skipif(
    SHARED is None or not (SHARED / "nb201" / "accuracy_200ep.csv.gz").is_file(),
    reason=f"shared NAS-Bench-201 CSVs not found (looked in {_LOOKED}/nb201); set NAS_DATA_DIR to run these",
)
SEED_COLUMNS = ["accuracy_seed0", "accuracy_seed1", "accuracy_seed2"]


@pytest.fixture
def no_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Forces "no data directory": NAS_DATA_DIR is authoritative, and `none` asks for no directory."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tables.DATA_DIR_ENV, tables.NO_DATA_DIR)


# ------------------------------------------------------------------------------------ embedded table


def test_embedded_table_has_every_arch_once_in_index_order() -> None:
    df = tables.nb201_embedded_accuracy("cifar10")
    assert len(df) == tables.NB201_NUM_ARCHS
    assert df["arch"].is_unique
    assert (df["arch_idx"].to_numpy() == np.arange(tables.NB201_NUM_ARCHS)).all()
    op = "[a-z_0-9]+"
    assert df["arch"].str.fullmatch(rf"\|{op}~0\|\+\|{op}~0\|{op}~1\|\+\|{op}~0\|{op}~1\|{op}~2\|").all()
    assert df["accuracy"].between(0, 100).all()


def test_embedded_arch_strings_follow_official_edge_order() -> None:
    assert tables.config_id_to_arch(["421211", "000000"]) == [
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    ]
    with pytest.raises(ValueError, match="6 digits"):
        tables.config_id_to_arch(["42121"])
    with pytest.raises(ValueError, match="0-4"):
        tables.config_id_to_arch(["421215"])


def test_embedded_two_seed_archs_average_the_seeds_they_have() -> None:
    df = tables.nb201_embedded_accuracy("cifar100")
    two_seeds = df["accuracy_seed2"].isna()
    assert 0 < two_seeds.sum() < len(df)
    np.testing.assert_allclose(df["accuracy"], df[SEED_COLUMNS].mean(axis=1, skipna=True))


def test_returned_tables_are_copies_so_mutation_does_not_leak() -> None:
    first = tables.nb201_embedded_accuracy("cifar10")
    first.loc[0, "accuracy"] = -1.0
    first["junk"] = 1
    again = tables.nb201_embedded_accuracy("cifar10")
    assert again.loc[0, "accuracy"] > 0
    assert "junk" not in again.columns


@needs_shared
def test_embedded_index_order_matches_shared_csv() -> None:
    shared = tables.load_nb201_accuracy_200ep(SHARED)
    embedded = tables.nb201_embedded_accuracy("cifar10")
    assert (shared.index.to_numpy() == embedded["arch_idx"].to_numpy()).all()
    assert (shared["arch_str"].to_numpy() == embedded["arch"].to_numpy()).all()
    assert (shared["config_id"].astype(str).str.zfill(6).to_numpy() == embedded["config_id"].to_numpy()).all()


@needs_shared
@pytest.mark.parametrize("dataset", tables.NB201_DATASETS)
def test_embedded_and_shared_accuracies_agree(dataset: str) -> None:
    shared = tables.nb201(dataset, devices=[], data_dir=SHARED)
    embedded = tables.nb201_embedded_accuracy(dataset)
    assert (shared["arch"].to_numpy() == embedded["arch"].to_numpy()).all()
    for column in ["accuracy", *SEED_COLUMNS, "params_M"]:
        np.testing.assert_allclose(shared[column], embedded[column], rtol=0, atol=1e-9, err_msg=column)


@needs_shared
def test_shared_loaders_share_one_arch_index() -> None:
    acc = tables.load_nb201_accuracy_200ep(SHARED)
    low = tables.load_nb201_accuracy_12ep(SHARED)
    lat = tables.load_nb201_latency(SHARED)
    for df in (acc, low, lat):
        assert df.index.name == "arch_idx"
        assert (df.index.to_numpy() == np.arange(tables.NB201_NUM_ARCHS)).all()
        assert (df["arch_str"].to_numpy() == acc["arch_str"].to_numpy()).all()
    assert set(tables.NB201_DEVICES) <= set(lat.columns)
    assert tuple(c for c in lat.columns if c != "arch_str") == tables.NB201_DEVICES


# ---------------------------------------------------------------------------------------- nb201()


@needs_shared
def test_nb201_one_device_has_expected_columns_and_no_missing_values() -> None:
    df = tables.nb201("cifar10", devices=["raspi4"], data_dir=SHARED)
    assert list(df.columns) == [
        "arch",
        "arch_idx",
        "accuracy",
        *SEED_COLUMNS,
        "accuracy_12ep",
        "params_M",
        "latency@raspi4",
    ]
    assert len(df) == tables.NB201_NUM_ARCHS
    assert (df["arch_idx"].to_numpy() == np.arange(tables.NB201_NUM_ARCHS)).all()
    assert (df.index.to_numpy() == df["arch_idx"].to_numpy()).all()
    # Seed 2 is genuinely missing for archs trained with two seeds; every other cell must be present.
    assert not df.drop(columns="accuracy_seed2").isna().any().any()
    assert (df["latency@raspi4"] > 0).all()


@needs_shared
def test_nb201_never_shows_test_accuracy_unless_asked() -> None:
    default = tables.nb201("cifar100", devices="all", data_dir=SHARED)
    assert not [c for c in default.columns if "test" in c]
    assert [c for c in default.columns if c.startswith("latency@")] == [
        f"latency@{d}" for d in tables.NB201_DEVICES
    ]
    with_test = tables.nb201("cifar100", devices=[], data_dir=SHARED, include_test=True)
    assert "accuracy_12ep_test" in with_test.columns
    low = tables.load_nb201_accuracy_12ep(SHARED)
    np.testing.assert_array_equal(with_test["accuracy_12ep_test"], low["cifar100-test"])
    np.testing.assert_array_equal(with_test["accuracy_12ep"], low["cifar100-val"])


@needs_shared
def test_nb201_device_selection_accepts_metric_names_and_dedupes() -> None:
    df = tables.nb201("imagenet", devices=["latency@pixel3", "fpga", "pixel3"], data_dir=SHARED)
    assert [c for c in df.columns if c.startswith("latency@")] == ["latency@pixel3", "latency@fpga"]
    lat = tables.load_nb201_latency(SHARED)
    np.testing.assert_array_equal(df["latency@fpga"], lat["fpga"].astype(float))


@needs_shared
def test_nb201_cached_load_returns_equal_independent_frames() -> None:
    first = tables.nb201("cifar10", devices="all", data_dir=SHARED)
    second = tables.nb201("cifar10", devices="all", data_dir=SHARED)
    pd.testing.assert_frame_equal(first, second)
    first.loc[0, "latency@raspi4"] = -1.0
    assert tables.nb201("cifar10", devices="all", data_dir=SHARED).loc[0, "latency@raspi4"] > 0


@needs_shared
def test_nb201_finds_data_through_env_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(tables.DATA_DIR_ENV, str(SHARED))
    assert tables.find_data_dir() == SHARED
    assert "latency@eyeriss" in tables.nb201(devices=None).columns


def test_nb201_without_data_dir_uses_embedded_accuracy_only(no_data_dir: None) -> None:
    df = tables.nb201("cifar10", devices=[])
    assert list(df.columns) == ["arch", "arch_idx", "accuracy", *SEED_COLUMNS, "params_M"]
    pd.testing.assert_frame_equal(
        df, tables.nb201_embedded_accuracy("cifar10").drop(columns="config_id"), check_dtype=False
    )


def test_unknown_device_message_lists_known_devices() -> None:
    with pytest.raises(tables.UnknownDeviceError) as info:
        tables.nb201(devices=["raspi5"])
    assert isinstance(info.value, KeyError)
    message = str(info.value)
    assert message.startswith("unknown device 'raspi5'; known: 1080ti_1, ")
    assert "raspi4" in message and "\n" not in message


def test_unknown_dataset_message_lists_valid_datasets() -> None:
    expected = r"unknown NAS-Bench-201 dataset 'mnist'; expected one of cifar10, cifar100, imagenet"
    with pytest.raises(ValueError, match=expected):
        tables.nb201("mnist")
    with pytest.raises(ValueError, match="cifar10, cifar100, imagenet"):
        tables.nb201_embedded_accuracy("svhn")


def test_official_dataset_names_are_accepted() -> None:
    a = tables.nb201_embedded_accuracy("ImageNet16-120")
    b = tables.nb201_embedded_accuracy("imagenet")
    pd.testing.assert_frame_equal(a, b)


# --------------------------------------------------------------------------------- data directory


def test_latency_without_data_dir_comes_from_the_shipped_measured_table(no_data_dir: None) -> None:
    assert tables.find_data_dir() is None
    df = tables.nb201(devices=None)
    assert [c for c in df.columns if c.startswith("latency@")] == [f"latency@{d}" for d in tables.NB201_DEVICES]
    shipped = tables.shipped_latency_table("nb201")
    assert df.attrs["latency_source"] == str(shipped) and tables.nb201_latency_file() == shipped
    raw = pd.read_csv(shipped).set_index("arch_idx").sort_index()
    np.testing.assert_array_equal(df["latency@raspi4"].to_numpy(), raw["raspi4"].to_numpy(dtype=float))
    assert (df["arch"].to_numpy() == raw["arch_str"].to_numpy()).all()


@needs_shared
def test_shipped_latency_table_is_the_data_directory_table_byte_for_byte() -> None:
    shipped = tables.shipped_latency_table("nb201")
    assert tables.file_sha256(shipped) == tables.file_sha256(SHARED / "nb201" / "latency_ms.csv.gz")
    assert tables.file_sha256(tables.shipped_latency_table("fbnet")) == tables.file_sha256(SHARED / "fbnet" / "latency_ms.csv.gz")
    with_dir = tables.nb201(devices=["raspi4", "pixel3"], data_dir=SHARED)
    assert with_dir.attrs["latency_source"] == str(SHARED / "nb201" / "latency_ms.csv.gz")
    assert with_dir.attrs["latency_sha256"] == tables.file_sha256(shipped)


def test_a_space_without_a_shipped_table_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="no measured latency table ships for space 'darts'; tables ship for nb201, fbnet"):
        tables.shipped_latency_table("darts")


def test_test_accuracy_without_data_dir_says_what_needs_it(no_data_dir: None) -> None:
    with pytest.raises(tables.DataDirError, match="accuracy_12ep_test") as info:
        tables.nb201(include_test=True)
    assert "NAS_DATA_DIR=none" in str(info.value) and "\n" not in str(info.value)


def test_require_data_dir_lists_every_default_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake_repo = tmp_path / "repo" / "nas"
    fake_repo.mkdir(parents=True)
    cwd = tmp_path / "elsewhere" / "cwd"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(tables.DATA_DIR_ENV, raising=False)
    monkeypatch.setattr(tables, "__file__", str(fake_repo / "tables.py"))
    assert tables.find_data_dir() is None
    with pytest.raises(tables.DataDirError) as info:
        tables.require_data_dir(None, "latency@pixel3")
    message = str(info.value)
    assert "latency@pixel3" in message
    assert str(cwd / ".." / "shared" / "data") in message
    assert str(tmp_path / "repo" / ".." / "shared" / "data") in message
    assert "--data-dir" in message and "NAS_DATA_DIR" in message


def test_default_places_are_searched_in_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cwd = tmp_path / "project"
    cwd.mkdir()
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(cwd)
    monkeypatch.delenv(tables.DATA_DIR_ENV, raising=False)
    assert tables.find_data_dir() == (tmp_path / "shared" / "data").resolve()
    explicit = tmp_path / "mine"
    explicit.mkdir()
    monkeypatch.setenv(tables.DATA_DIR_ENV, str(explicit))
    assert tables.find_data_dir() == explicit.resolve()
    assert tables.find_data_dir(tmp_path) == tmp_path.resolve()


def test_explicit_missing_data_dir_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(tables.DataDirError, match=r"does not exist; pass --data-dir or set NAS_DATA_DIR"):
        tables.find_data_dir(tmp_path / "missing")


def test_misspelled_nas_data_dir_is_an_error_not_a_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "shared")  # ../shared/data would be found if the setting were ignored
    monkeypatch.setenv(tables.DATA_DIR_ENV, str(tmp_path / "shraed"))
    with pytest.raises(tables.DataDirError) as info:
        tables.find_data_dir()
    assert f"$NAS_DATA_DIR={tmp_path / 'shraed'} does not exist" in str(info.value) and "\n" not in str(info.value)


def test_data_dir_without_the_file_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(tables.DataDirError, match="accuracy_12ep.csv.gz not found"):
        tables.load_nb201_accuracy_12ep(tmp_path)
    with pytest.raises(tables.DataDirError, match="accuracy_200ep.csv.gz not found"):
        tables.load_nb201_accuracy_200ep(tmp_path)


def test_data_dir_without_a_latency_table_reads_the_shipped_one(tmp_path: Path) -> None:
    assert tables.nb201_latency_file(tmp_path) == tables.shipped_latency_table("nb201")
    df = tables.nb201(devices=["raspi4"], data_dir=tmp_path)
    assert df.attrs["latency_source"] == str(tables.shipped_latency_table("nb201"))
    assert len(tables.load_nb201_latency(tmp_path)) == tables.NB201_NUM_ARCHS


def test_data_dir_with_only_some_files_gives_what_it_can(tmp_path: Path) -> None:
    # A latency table for a different index must be refused, not silently joined.
    (tmp_path / "nb201").mkdir()
    pd.DataFrame({"arch_idx": [0, 1], "arch_str": ["a", "b"], "raspi4": [1.0, 2.0]}).to_csv(
        tmp_path / "nb201" / "latency_ms.csv.gz", index=False
    )
    with pytest.raises(ValueError, match="arch_idx 0..15624"):
        tables.nb201(devices=["raspi4"], data_dir=tmp_path)


# --------------------------------------------------------------------------------------- pickles


def _write_hw_pickle(path: Path, n: int = 3) -> dict:
    metrics = {
        "edgegpu_latency": [1.0 + i for i in range(n)],
        "edgegpu_energy": [10.0 + i for i in range(n)],
        "raspi4_latency": [100.0 + i for i in range(n)],
        "eyeriss_arithmetic_intensity": [0.5 * i for i in range(n)],
        "average_hw_metric": [7.0] * n,
    }
    data = {
        "nasbench201": {
            "cifar10": metrics,
            "cifar100": {k: [v * 2 for v in vs] for k, vs in metrics.items()},
            "ImageNet16-120": {k: [v * 3 for v in vs] for k, vs in metrics.items()},
        },
        "fbnet": {"cifar100": {"edgegpu_latency": [1.0]}},
    }
    path.write_bytes(pickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))
    return data


def test_hw_nas_bench_loader_renames_latency_and_energy(tmp_path: Path) -> None:
    path = tmp_path / "HW-NAS-Bench-v1_0.pickle"
    _write_hw_pickle(path)
    df = tables.load_hw_nas_bench(path)
    assert list(df.columns) == [
        "arch_idx",
        "latency@edgegpu",
        "energy@edgegpu",
        "latency@raspi4",
        "eyeriss_arithmetic_intensity",
        "average_hw_metric",
    ]
    assert df["arch_idx"].tolist() == [0, 1, 2]
    assert df["latency@raspi4"].tolist() == [100.0, 101.0, 102.0]
    imagenet = tables.load_hw_nas_bench(path, dataset="imagenet")
    assert imagenet["energy@edgegpu"].tolist() == [30.0, 33.0, 36.0]
    pd.testing.assert_frame_equal(imagenet, tables.load_hw_nas_bench(path, dataset="ImageNet16-120"))


def test_hw_nas_bench_loader_rejects_other_layouts(tmp_path: Path) -> None:
    path = tmp_path / "other.pickle"
    path.write_bytes(pickle.dumps({"cifar10": {"edgegpu_latency": [1.0]}}))
    expected = r"other.pickle is not an HW-NAS-Bench pickle; expected d\[\"nasbench201\"\]"
    with pytest.raises(ValueError, match=expected):
        tables.load_hw_nas_bench(path)
    ragged = {"a_latency": [1.0], "b_latency": [1.0, 2.0]}
    path.write_bytes(pickle.dumps({"nasbench201": {"cifar10": ragged}}))
    with pytest.raises(ValueError, match="different lengths"):
        tables.load_hw_nas_bench(path)
    path.write_bytes(pickle.dumps({"nasbench201": {"cifar10": {"a_latency": [[1.0], [2.0]]}}}))
    with pytest.raises(ValueError, match="not a list of numbers"):
        tables.load_hw_nas_bench(path)
    with pytest.raises(ValueError, match="no HW-NAS-Bench dataset 'cifar100'"):
        tables.load_hw_nas_bench(path, dataset="cifar100")
    with pytest.raises(ValueError, match="unknown HW-NAS-Bench dataset 'mnist'"):
        tables.load_hw_nas_bench(path, dataset="mnist")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tables.load_hw_nas_bench(tmp_path / "missing.pickle")


class _RunsShell:
    """Pickles to `os.system(command)`, the classic pickle payload."""

    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self) -> tuple:
        return (os.system, (self.command,))


def test_pickle_with_disallowed_global_is_refused_and_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "HW-NAS-Bench-v1_0.pickle"
    payload = {"x_latency": [_RunsShell(f"touch {marker}")]}
    path.write_bytes(pickle.dumps({"nasbench201": {"cifar10": payload}}))
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle global"):
        tables.load_hw_nas_bench(path)
    assert not marker.exists()

    bare = tmp_path / "bare.pickle"
    bare.write_bytes(pickle.dumps(os.system))
    with pytest.raises(pickle.UnpicklingError, match=r"system"):
        tables.safe_load_pickle(bare)


def test_restricted_unpickler_allows_plain_builtin_containers(tmp_path: Path) -> None:
    value = {"a": [1, 2.5, "x"], "b": (True, None), "c": {1, 2}, "d": frozenset({3}), "e": -3j}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"plain{protocol}.pickle"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        assert tables.safe_load_pickle(path) == value
    # Protocols 0-2 spell bytes as a call to _codecs.encode, a global outside the whitelist; 3+ need none.
    path.write_bytes(pickle.dumps(b"raw", protocol=3))
    assert tables.safe_load_pickle(path) == b"raw"


# ------------------------------------------------------------------------------------- NATS-Bench


class _FakeNatsApi:
    """Three archs with accuracies that encode (index, dataset, hp) so the test can check the wiring."""

    archs = [
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|skip_connect~0|+|none~0|none~1|+|none~0|none~1|none~2|",
    ]
    datasets = {"cifar10-valid": 10.0, "cifar100": 20.0, "ImageNet16-120": 30.0}

    def __init__(self, path: str, search_space: str, fast_mode: bool, verbose: bool) -> None:
        assert search_space == "tss" and fast_mode and not verbose
        self.path = path

    def __len__(self) -> int:
        return len(self.archs)

    def arch(self, index: int) -> str:
        return self.archs[index]

    def get_more_info(self, index: int, dataset: str, hp: str, is_random: bool) -> dict:
        assert is_random is False
        base = self.datasets[dataset] + index + (0.5 if hp == "12" else 0.0)
        return {"valid-accuracy": base, "test-accuracy": base + 100.0, "train-accuracy": 99.0}

    def get_cost_info(self, index: int, dataset: str, hp: str) -> dict:
        return {"params": 0.1 * (index + 1), "flops": 10.0 * (index + 1), "latency": 0.01}


@pytest.fixture
def fake_nats(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("nats_bench")
    module.create = _FakeNatsApi  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "nats_bench", module)
    return module


def test_nats_loader_reads_validation_accuracy_through_the_api(
    fake_nats: types.ModuleType, tmp_path: Path
) -> None:
    path = tmp_path / "NATS-tss-v1_0-3ffb9-simple"
    path.mkdir()
    df = tables.load_nats_topology(path)
    assert list(df.columns) == ["arch", "arch_idx", "accuracy", "params_M", "flops_M"]
    assert df["arch"].tolist() == _FakeNatsApi.archs
    assert df["arch_idx"].tolist() == [0, 1, 2]
    assert df["accuracy"].tolist() == [10.0, 11.0, 12.0]
    np.testing.assert_allclose(df["params_M"], [0.1, 0.2, 0.3])

    low = tables.load_nats_topology(path, dataset="imagenet", hp=12, include_test=True)
    assert low["accuracy"].tolist() == [30.5, 31.5, 32.5]
    assert low["accuracy_test"].tolist() == [130.5, 131.5, 132.5]
    assert tables.load_nats_topology(path, dataset="cifar100")["accuracy"].tolist() == [20.0, 21.0, 22.0]


def test_nats_loader_validates_hp_and_path(fake_nats: types.ModuleType, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown NATS-Bench hp '90'; expected one of 12, 200"):
        tables.load_nats_topology(tmp_path, hp=90)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tables.load_nats_topology(tmp_path / "missing")


def test_nats_loader_without_package_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # None in sys.modules makes `import nats_bench` raise ImportError even where it is installed.
    monkeypatch.setitem(sys.modules, "nats_bench", None)
    with pytest.raises(ImportError, match="pip install nats_bench") as info:
        tables.load_nats_topology(tmp_path)
    assert "\n" not in str(info.value)
