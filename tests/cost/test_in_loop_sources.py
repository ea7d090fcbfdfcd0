"""Measurement sources of a device measured in the loop: backend:, cmd: (a script the test writes), csv:."""

from __future__ import annotations

import math
import os
import signal
import stat
import sys
import time
from pathlib import Path

import pytest

from nas._resources import shipped_dir
from nas.cost.sources import BackendSource, CommandSource, CsvSource, MeasurementFailed, SourceError, parse_source
from nas.spaces import get_space

TABLE = shipped_dir("latency_tables") / "nb201_latency_ms.csv.gz"


@pytest.fixture(scope="module")
def nb201():
    return get_space("nb201")


def write_script(tmp_path, body: str):
    """An executable Python script; `{onnx}` is passed as its first argument."""
    path = tmp_path / "bench.py"
    path.write_text(f"#!{sys.executable}\nimport os, sys, time\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_csv_source_reads_the_column_and_fails_one_arch_it_lacks(nb201, tmp_path):
    import pandas as pd

    frame = pd.read_csv(TABLE).head(50)
    path = tmp_path / "m.csv"
    frame.to_csv(path, index=False)
    source = parse_source(f"csv:{path}:raspi4", nb201)
    assert isinstance(source, CsvSource) and source.pins()["sha256"]
    arch = nb201.from_string(frame["arch_str"].iloc[3])
    assert source.measure(arch, tmp_path) == pytest.approx(float(frame["raspi4"].iloc[3]))
    other = next(a for a in nb201.enumerate()[100:] if nb201.to_string(a) not in set(frame["arch_str"]))
    with pytest.raises(MeasurementFailed, match="has no row for"):
        source.measure(other, tmp_path)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [("|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", "line 3"), ("-1.5", "not positive"), ("fast", "not a number")],
)
def test_csv_source_refuses_archs_outside_the_space_and_bad_latencies_in_one_line(nb201, tmp_path, cell, expected):
    archs = [nb201.to_string(a) for a in nb201.enumerate()[:3]]
    values = ["1.0", "2.0", "3.0"]
    if cell.startswith("|"):
        archs[1] = cell
    else:
        values[1] = cell
    path = tmp_path / "m.csv"
    path.write_text("arch_str,mydev\n" + "".join(f"{a},{v}\n" for a, v in zip(archs, values)))
    with pytest.raises(SourceError, match=expected) as info:
        parse_source(f"csv:{path}:mydev", nb201)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("spec", ["bogus:x", "csv:only_a_path", "cmd:no placeholder", "backend:nope", "", "csv:"])
def test_bad_source_specs_are_one_line(nb201, spec):
    with pytest.raises(SourceError) as info:
        parse_source(spec, nb201)
    assert "\n" not in str(info.value) and "measure source" in str(info.value)


def test_command_source_exports_onnx_and_reads_the_last_number(tiny_space, tmp_path):
    script = write_script(tmp_path, "assert os.path.getsize(sys.argv[1]) > 0 and sys.argv[1].endswith('.onnx')\nprint('warm-up 99 runs')\nprint('latency: 3.25 ms')")
    source = parse_source(f"cmd:{script} {{onnx}}", tiny_space)
    assert isinstance(source, CommandSource)
    arch = tiny_space.enumerate()[5]
    assert source.measure(arch, tmp_path / "work") == 3.25
    assert not list((tmp_path / "work").glob("*.onnx")), "the exported file is removed after the measurement"


@pytest.mark.parametrize(
    ("body", "timeout", "reason"),
    [
        ("sys.exit('device offline')", 600, "exited with code 1: device offline"),
        ("time.sleep(30)", 0.5, "time limit of 0.5 s"),
        ("print('done')", 600, "printed no number"),
        ("print(-2.0)", 600, "expected a positive number"),
        ("print('nan')", 600, "expected a positive number"),
    ],
)
def test_command_source_failures_are_one_line_reasons(tiny_space, tmp_path, body, timeout, reason):
    script = write_script(tmp_path, body)
    source = CommandSource(tiny_space, f"{script} {{onnx}}", timeout_s=timeout)
    with pytest.raises(MeasurementFailed, match=reason) as info:
        source.measure(tiny_space.enumerate()[1], tmp_path)
    assert "\n" not in str(info.value)


def test_backend_source_measures_here_in_a_fresh_process(tiny_space, tmp_path):
    source = parse_source("backend:onnxruntime", tiny_space, {"processes": 1})
    assert isinstance(source, BackendSource) and source.provenance()["threads"] == 1
    value = source.measure(tiny_space.enumerate()[7], tmp_path)
    assert math.isfinite(value) and value > 0


def _running(pid: int) -> bool:
    """Whether `pid` is a live process (a killed one may linger as a zombie until init reaps it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_command_past_its_time_limit_is_killed_with_the_processes_it_started(tiny_space, tmp_path):
    """A measuring script's own children (adb, a benchmark binary) must not outlive a timed-out measurement."""
    pid_file = tmp_path / "child.pid"
    source = CommandSource(tiny_space, f"sleep 300 > /dev/null 2>&1 & echo $! > {pid_file}; wait; echo {{onnx}}", timeout_s=1)
    with pytest.raises(MeasurementFailed, match="time limit of 1 s"):
        source.measure(tiny_space.enumerate()[2], tmp_path)
    child = int(pid_file.read_text())
    for _ in range(50):  # a SIGKILL takes effect when the kernel next schedules the process
        if not _running(child):
            break
        time.sleep(0.1)
    if _running(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail(f"the command's child process {child} outlived the time limit")
