"""A non-editable install carries what nas reads at run time: LUTs, space definitions, measured tables.

Why a real install: the package-data mapping lives in setup.py/pyproject.toml, and only building and
installing shows whether a wheel holds the files. The search then runs from a folder with no `../shared`
and no `NAS_DATA_DIR`, as on a user's fresh machine.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
#: What a source distribution of nas holds: the build files, the package and the root data folders.
SOURCES = ("pyproject.toml", "setup.py", "README.md", "nas", "latency_luts", "search_spaces", "latency_tables")

#: Run inside the installed package: where each kind of shipped data was found, and the run's provenance.
PROBE = """
import json, sys
import nas
from nas._resources import shipped_dir
from nas.cost.lut import luts_dir
from nas.spaces import spaces_dir
from nas.run import load_run
run = load_run(sys.argv[1])
print(json.dumps({
    "nas": nas.__file__, "luts": str(luts_dir()), "spaces": str(spaces_dir()),
    "tables": str(shipped_dir("latency_tables")), "provenance": run.provenance(),
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """nas installed non-editable (`pip install --target`) from a copy of its sources, outside the repo."""
    root = tmp_path_factory.mktemp("install")
    source = root / "src"
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    target = root / "site"
    # Build with this environment's setuptools when it has one (offline); else pip fetches it as usual.
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") is not None else []
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", *isolation, "--no-compile", "--target", str(target), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    return target


def _fresh_env(target: Path) -> dict[str, str]:
    """The environment of a fresh machine: only the installed package on the path, no data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAS_") and k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)
    return env


def test_installed_package_holds_every_shipped_file(installed: Path) -> None:
    for folder, inside in (("latency_luts", "_luts"), ("search_spaces", "_spaces"), ("latency_tables", "_latency_tables")):
        shipped = sorted(p.name for p in (REPO / folder).iterdir() if p.is_file())
        assert sorted(p.name for p in (installed / "nas" / inside).iterdir()) == shipped, folder
    provenance = json.loads((installed / "nas" / "_latency_tables" / "provenance.json").read_text())
    for name, info in provenance["files"].items():
        assert hashlib.sha256((installed / "nas" / "_latency_tables" / name).read_bytes()).hexdigest() == info["sha256"]
    assert provenance["license"] == "MIT" and "HayeonLee" in (installed / "nas" / "_latency_tables" / "LICENSE").read_text()
    assert (installed / "nas" / "cost" / "device_power.json").is_file()


def test_search_from_a_non_editable_install_uses_its_package_data_and_measured_latency(installed: Path, tmp_path: Path) -> None:
    cwd = tmp_path / "user" / "work"
    cwd.mkdir(parents=True)
    assert not (cwd / ".." / "shared").exists() and not (cwd / ".." / ".." / "shared").exists()
    env = _fresh_env(installed)
    search = [
        sys.executable, "-m", "nas.cli", "search", "--space", "nb201", "--dataset", "cifar10",
        "--objectives", "accuracy:max,latency@raspi4:min", "--constraint", "latency@epyc_zen5__torch<=1000",
        "--strategy", "random", "--budget", "8", "--seed", "0", "--out", "run", "--no-progress",
    ]
    done = subprocess.run(search, capture_output=True, text=True, cwd=cwd, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    probe = subprocess.run([sys.executable, "-c", PROBE, "run"], capture_output=True, text=True, cwd=cwd, env=env)
    assert probe.returncode == 0, probe.stderr[-3000:]
    found = json.loads(probe.stdout.strip().splitlines()[-1])

    package = installed / "nas"
    assert Path(found["nas"]).parent == package
    assert (Path(found["luts"]), Path(found["spaces"]), Path(found["tables"])) == (package / "_luts", package / "_spaces", package / "_latency_tables")
    latency = found["provenance"]["latency@raspi4"]
    assert latency["source"] == str(package / "_latency_tables" / "nb201_latency_ms.csv.gz") and latency["estimate"] is False
    assert found["provenance"]["latency@epyc_zen5__torch"]["table"] == f"lut:{package / '_luts' / 'epyc_zen5__torch.csv'}"

    front = pd.read_csv(cwd / "run" / "pareto.csv", comment="#")
    measured = pd.read_csv(package / "_latency_tables" / "nb201_latency_ms.csv.gz").set_index("arch_str")["raspi4"]
    assert len(front) > 0
    assert front["latency@raspi4"].tolist() == measured.loc[front["arch"]].tolist()
