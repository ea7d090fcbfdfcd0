from __future__ import annotations

import pytest
import yaml

from nas.spaces import get_space

#: A tiny NB201 variant: 729 archs, 4 channels, one cell per stage, 8x8 inputs: every measurement is fast.
TINY_SPACE = {
    "name": "tiny201",
    "family": "nb201",
    "ops": ["none", "skip_connect", "nor_conv_3x3"],
    "channels": 4,
    "cells_per_stage": 1,
    "datasets": {"cifar10": {"num_classes": 10, "input_size": 8}},
}
#: Few, short timing samples: the tests check the machinery, not the machine.
FAST_TIMING = {"warmup": 1, "repeats": 3, "target_s": 0.001}


@pytest.fixture
def fast_timing() -> dict[str, float]:
    return dict(FAST_TIMING)


@pytest.fixture(scope="session")
def tiny_space_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spaces") / "tiny201.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE))
    return path


@pytest.fixture(scope="session")
def tiny_space(tiny_space_file):
    return get_space(str(tiny_space_file))


@pytest.fixture(scope="session")
def tiny_torch_lut(tiny_space):
    """One LUT measured once per session (one fresh process), shared by the build and validate tests."""
    from nas.cost.build import build_lut

    return build_lut(tiny_space, "torch", processes=1, dataset="cifar10", timing=FAST_TIMING, device="test-cpu")
