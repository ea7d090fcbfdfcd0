"""Where a device's latency of one architecture comes from when a search measures it in the loop.

Why its own module: the search (`nas.cost.in_loop`) decides *which* architectures to measure; a source
only knows *how*, and each way fails differently. A source is one of

- `backend:onnxruntime|torch|tvm`: measured here, 1 thread, median over fresh processes, exactly as
  `nas lut build` times whole networks (`nas.cost.build.measure_archs`);
- `cmd:TEMPLATE`: a command the user gives (e.g. one that copies the ONNX file to a phone and runs a
  benchmark there); `{onnx}` is replaced by the exported file, and the last number it prints on stdout
  is the latency in ms;
- `csv:PATH:COLUMN`: a table of measured latencies (`arch_str` + one column per device, as `nas lut fit`
  reads): how benchmarks simulate a device.

A measurement that fails (the command exits non-zero, runs past its time limit, prints no number, gives
a negative or NaN latency, the CSV has no row for the arch) raises `MeasurementFailed` with its reason;
the search records the reason and goes on. Input that can never work (an unknown backend, a CSV whose
architectures are not in the space, a template without `{onnx}`) raises `SourceError` when the source is
built, before a run writes anything.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import signal
import subprocess
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nas.spaces.base import Arch, SearchSpace

PREFIXES = ("backend", "cmd", "csv")
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_PROCESSES = 3
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf", re.IGNORECASE)


class SourceError(ValueError):
    """A measurement source that cannot work at all (bad syntax, unknown backend, a CSV not of the space)."""


class MeasurementFailed(RuntimeError):
    """One measurement gave no usable latency; the message is its reason (one line)."""


def checked_latency(value: float, what: str) -> float:
    """`value` if it is a finite positive latency (ms); else MeasurementFailed naming `what` gave it."""
    if not math.isfinite(value) or value <= 0:
        raise MeasurementFailed(f"{what} gave latency {value!r}; expected a positive number of ms")
    return float(value)


class LatencySource(ABC):
    """Measures the latency (ms) of one architecture on the user's device."""

    #: The spec the source was parsed from (`csv:PATH:COLUMN`), stored with the run.
    spec: str

    @abstractmethod
    def measure(self, arch: Arch, workdir: Path) -> float:
        """Latency in ms of `arch`; `workdir` is a folder for files the measurement needs (the ONNX file).

        Raises:
            MeasurementFailed: this measurement gave no usable latency (the reason is the message).
        """

    def pins(self) -> dict[str, Any]:
        """What must not change when a run resumes (a CSV's digest)."""
        return {}

    def provenance(self) -> dict[str, Any]:
        return {"source": self.spec}


class BackendSource(LatencySource):
    """Measured on this machine through a `nas.cost.measure` backend, 1 thread, fresh processes."""

    def __init__(self, space: SearchSpace, backend: str, *, processes: int = DEFAULT_PROCESSES, dataset: str | None = None) -> None:
        from nas.cost.measure import backends

        if backend not in backends:
            raise SourceError(f"unknown backend {backend!r} in measure source 'backend:{backend}'; expected one of {', '.join(backends.names())}")
        if not isinstance(processes, int) or isinstance(processes, bool) or processes < 1:
            raise SourceError(f"measure option processes must be a positive integer, got {processes!r}")
        self.space, self.backend, self.processes = space, backend, processes
        self.layer_kwargs = {"dataset": dataset} if dataset else {}
        self.spec = f"backend:{backend}"

    def measure(self, arch: Arch, workdir: Path) -> float:
        from nas.cost.build import measure_archs

        try:
            median, _ = measure_archs(self.space, [arch], self.backend, processes=self.processes, threads=1, **self.layer_kwargs)
        except Exception as exc:  # a backend error costs this measurement, never the search
            raise MeasurementFailed(f"backend {self.backend}: {type(exc).__name__}: {_first_line(exc)}") from None
        return checked_latency(float(median[0]), f"backend {self.backend}")

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "threads": 1, "processes": self.processes}


class CommandSource(LatencySource):
    """A user's command run on the exported ONNX file of each architecture; prints milliseconds."""

    def __init__(self, space: SearchSpace, template: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, dataset: str | None = None) -> None:
        if "{onnx}" not in template:
            raise SourceError(f"measure source 'cmd:{template}' has no {{onnx}} placeholder; expected e.g. 'cmd:bench.sh {{onnx}}'")
        if not isinstance(timeout_s, (int, float)) or isinstance(timeout_s, bool) or not timeout_s > 0:
            raise SourceError(f"measure option timeout_s must be a positive number of seconds, got {timeout_s!r}")
        self.space, self.template, self.timeout_s = space, template, float(timeout_s)
        self.layer_kwargs = {"dataset": dataset} if dataset else {}
        self.spec = f"cmd:{template}"

    def export(self, arch: Arch, workdir: Path) -> Path:
        """The ONNX file of `arch` (random weights: latency does not depend on them) in `workdir`."""
        import torch

        from nas.cost.measure._onnxruntime import export_onnx

        shape = self.space.layers(arch, **self.layer_kwargs)[0].in_shape
        module = self.space.build(arch, **self.layer_kwargs).eval()
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        workdir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkstemp(prefix="arch-", suffix=".onnx", dir=workdir)[1])
        path.write_bytes(export_onnx(module, (x,)))
        return path

    def measure(self, arch: Arch, workdir: Path) -> float:
        try:
            onnx = self.export(arch, workdir)
        except Exception as exc:  # an export error costs this measurement, never the search
            raise MeasurementFailed(f"ONNX export failed: {type(exc).__name__}: {_first_line(exc)}") from None
        command = self.template.replace("{onnx}", shlex.quote(str(onnx)))
        try:
            done = _run_with_time_limit(command, self.timeout_s)
        finally:
            onnx.unlink(missing_ok=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()
            raise MeasurementFailed(f"command exited with code {done.returncode}: {tail[-1] if tail else 'no output'}")
        numbers = _NUMBER.findall(done.stdout)
        if not numbers:
            shown = done.stdout.strip().splitlines()
            raise MeasurementFailed(f"command printed no number of ms (stdout: {shown[-1][:80] if shown else 'empty'!r})")
        return checked_latency(float(numbers[-1]), "command")

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "timeout_s": self.timeout_s}


def _run_with_time_limit(command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a user's shell command; past `timeout_s`, kill its whole process group.

    Why a group: a script's own children (`adb shell ...`, `sleep`) inherit its output pipes, so killing
    the shell alone (as `subprocess.run(timeout=...)` does) would leave the search waiting for them."""
    with subprocess.Popen(
        command, shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, start_new_session=True
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise MeasurementFailed(f"command ran past its time limit of {timeout_s:g} s: {command}") from None
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


class CsvSource(LatencySource):
    """Latencies read from one column of a measurement table (`nas.cost.measurements` format)."""

    def __init__(self, space: SearchSpace, path: str, column: str) -> None:
        from nas.cost.measurements import MeasurementError, read_measurements

        try:
            table = read_measurements(path, space)
            values = table.column(column)
        except (MeasurementError, FileNotFoundError) as exc:
            raise SourceError(f"measure source 'csv:{path}:{column}': {exc}") from None
        self.space, self.path, self.column = space, Path(path), column
        self.sha256 = table.sha256
        self.values: Mapping[Arch, float] = dict(zip(table.archs, np.asarray(values, dtype=float)))
        self.spec = f"csv:{path}:{column}"

    def measure(self, arch: Arch, workdir: Path) -> float:
        value = self.values.get(arch)
        if value is None:
            raise MeasurementFailed(f"{self.path} has no row for {self.space.to_string(arch)}")
        return checked_latency(value, f"{self.path} column {self.column!r}")

    def pins(self) -> dict[str, Any]:
        return {"sha256": self.sha256}

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "sha256": self.sha256}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def parse_source(spec: object, space: SearchSpace, options: Mapping[str, Any] | None = None, *, dataset: str | None = None) -> LatencySource:
    """The source `spec` names (`backend:NAME`, `cmd:TEMPLATE`, `csv:PATH:COLUMN`), checked now.

    `options` may carry `processes` (backend) and `timeout_s` (cmd).

    Example:
        >>> from nas.spaces import get_space
        >>> parse_source("backend:onnxruntime", get_space("nb201")).spec
        'backend:onnxruntime'
    """
    options = dict(options or {})
    prefix, sep, argument = spec.partition(":") if isinstance(spec, str) else ("", "", "")
    if not sep or prefix not in PREFIXES or not argument.strip():
        raise SourceError(f"measure source {spec!r} does not parse; expected backend:onnxruntime|torch|tvm, cmd:TEMPLATE (with {{onnx}}) or csv:PATH:COLUMN")
    if prefix == "backend":
        return BackendSource(space, argument, processes=options.get("processes", DEFAULT_PROCESSES), dataset=dataset)
    if prefix == "cmd":
        return CommandSource(space, argument, timeout_s=options.get("timeout_s", DEFAULT_TIMEOUT_S), dataset=dataset)
    path, sep, column = argument.rpartition(":")
    if not sep or not path or not column:
        raise SourceError(f"measure source {spec!r} names no column; expected csv:PATH:COLUMN")
    return CsvSource(space, path, column)


__all__ = ["BackendSource", "CommandSource", "CsvSource", "LatencySource", "MeasurementFailed", "SourceError", "checked_latency", "parse_source"]
