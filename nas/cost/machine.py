"""Which machine a LUT was measured on, and whether this is the same one.

Why: a LUT measured here is a model of this CPU, this backend release and this thread count. The shipped
ONNX Runtime LUT built on a Zen 5 VM re-validated on a Zen 4 VM of the same kind ranked networks almost
perfectly (Spearman 0.99) but predicted 0.57x their latency: 0 % of 30 networks within +-10 %. So every
LUT built by `nas lut build` records the fingerprint of its machine (`cpu` and `machine` in the sidecar),
and loading a locally measured LUT for a search or a prediction on a machine with another fingerprint
warns once per LUT (`OtherMachineWarning`), naming what differs and how to fix it (`nas lut calibrate`).

Only cheap sources are read: /proc/cpuinfo (Linux), `platform`, and installed package versions through
`importlib.metadata` (no backend is imported).
"""

from __future__ import annotations

import os
import platform
import warnings
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

#: CPU flags that change which kernels a backend picks (vector width, dot-product and matrix units).
RELEVANT_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "f16c", "avx_vnni",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "amx_tile", "amx_bf16", "amx_int8", "neon", "asimd", "sve",
)
#: The flags older sidecars checked (their `cpu.simd` lists which of these were present).
LEGACY_CHECKED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "avx_vnni")
#: Distribution that carries each backend's library (its version is read without importing it).
BACKEND_DISTRIBUTIONS = {"torch": "torch", "onnxruntime": "onnxruntime", "tvm": "apache-tvm"}
#: Fields of `cpu` whose difference makes a LUT another machine's.
IDENTITY_FIELDS = ("vendor_id", "cpu_family", "model", "model_name")
UNKNOWN = "unknown"


class OtherMachineWarning(UserWarning):
    """A LUT measured on another machine (or with other settings) is used here; its latencies are not this machine's."""


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """This CPU's identity: vendor, family, model, model name, the `RELEVANT_FLAGS` present, logical CPUs.

    `cpuinfo` is the text of /proc/cpuinfo (read when None); where there is none, `platform` fills the
    model name and the Linux-only fields are absent rather than guessed. `simd` keeps the older sidecars'
    subset (`LEGACY_CHECKED_FLAGS`) so old and new records compare.

    Example:
        >>> text = "vendor_id : AuthenticAMD\\ncpu family : 25\\nmodel : 17\\nmodel name : AMD EPYC\\nflags : fpu avx2 fma\\n"
        >>> info = cpu_info(text)
        >>> info["cpu_family"], info["model"], info["flags"]
        ('25', '17', ['avx2', 'fma'])
    """
    info: dict[str, Any] = {"machine": platform.machine(), "logical_cpus": os.cpu_count()}
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
        except OSError:
            info["model_name"] = platform.processor() or UNKNOWN
            return info
    fields = {"model name": "model_name", "vendor_id": "vendor_id", "cpu family": "cpu_family", "model": "model",
              "Features": "flags", "flags": "flags", "CPU implementer": "vendor_id", "CPU part": "model"}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        name = fields.get(key.strip())
        if name is None or name in info:
            continue
        if name == "flags":
            present = set(value.split())
            info["flags"] = [f for f in RELEVANT_FLAGS if f in present]
            info["flags_checked"] = list(RELEVANT_FLAGS)
            info["simd"] = sorted(f for f in present if f in LEGACY_CHECKED_FLAGS)
        else:
            info[name] = value.strip()
    info.setdefault("model_name", platform.processor() or UNKNOWN)
    return info


def backend_version(backend: str) -> str:
    """The installed version of `backend`'s library, read from package metadata (no import), or `UNKNOWN`."""
    dist = BACKEND_DISTRIBUTIONS.get(backend, backend)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return UNKNOWN


def fingerprint(backend: str | None, threads: int | None, *, cpu: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a LUT's numbers depend on besides the network: the CPU, the threads, the backend and its version."""
    return {
        "cpu": dict(cpu if cpu is not None else cpu_info()),
        "threads": threads,
        "backend": backend,
        "backend_version": backend_version(backend) if backend else UNKNOWN,
    }


def recorded_fingerprint(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint a LUT sidecar records: its `machine` section, else what older sidecars hold.

    Older sidecars (before `machine`) recorded `cpu`, `threads`, `backend` and `versions`; fields they
    did not record are `UNKNOWN`, never guessed.
    """
    stored = meta.get("machine")
    if isinstance(stored, Mapping):
        return dict(stored)
    backend = meta.get("backend")
    versions = meta.get("versions") if isinstance(meta.get("versions"), Mapping) else {}
    cpu = dict(meta["cpu"]) if isinstance(meta.get("cpu"), Mapping) else {}
    if "simd" in cpu and "flags" not in cpu:
        cpu["flags"] = list(cpu["simd"])
        cpu["flags_checked"] = list(LEGACY_CHECKED_FLAGS)
    return {
        "cpu": cpu,
        "threads": meta.get("threads"),
        "backend": backend,
        "backend_version": str(versions.get(backend, UNKNOWN)) if backend else UNKNOWN,
    }


def differences(recorded: Mapping[str, Any], here: Mapping[str, Any]) -> list[str]:
    """What differs between two fingerprints, as short `field recorded -> here` texts (empty: same machine).

    Fields one side does not know are skipped; flags are compared only over the flags both checked.

    Example:
        >>> zen5 = {"cpu": {"vendor_id": "AuthenticAMD", "cpu_family": "26", "model": "2"}, "threads": 1}
        >>> zen4 = {"cpu": {"vendor_id": "AuthenticAMD", "cpu_family": "25", "model": "17"}, "threads": 1}
        >>> differences(zen5, zen4)
        ['cpu family 26 -> 25', 'model 2 -> 17']
    """
    out: list[str] = []
    old_cpu, new_cpu = dict(recorded.get("cpu") or {}), dict(here.get("cpu") or {})
    for field in IDENTITY_FIELDS:
        a, b = old_cpu.get(field), new_cpu.get(field)
        if a not in (None, UNKNOWN) and b not in (None, UNKNOWN) and str(a) != str(b):
            out.append(f"{field.replace('_', ' ').replace('vendor id', 'vendor')} {a} -> {b}")
    checked = set(old_cpu.get("flags_checked") or ()) & set(new_cpu.get("flags_checked") or ())
    if checked and "flags" in old_cpu and "flags" in new_cpu:
        lost = sorted(checked & set(old_cpu["flags"]) - set(new_cpu["flags"]))
        gained = sorted(checked & set(new_cpu["flags"]) - set(old_cpu["flags"]))
        if lost or gained:
            out.append("flags " + " ".join([*(f"-{f}" for f in lost), *(f"+{f}" for f in gained)]))
    for field in ("threads", "backend_version"):
        a, b = recorded.get(field), here.get(field)
        if a not in (None, UNKNOWN) and b not in (None, UNKNOWN) and str(a) != str(b):
            out.append(f"{field.replace('_', ' ')} {a} -> {b}")
    return out


def other_machine_message(meta: Mapping[str, Any], name: str, *, here: Mapping[str, Any] | None = None) -> str | None:
    """One line saying a locally measured LUT comes from another machine, or None (same machine, or not measured).

    Fitted LUTs (`kind` other than "measured") model a named device, not this one: no message.
    """
    if meta.get("kind") != "measured":
        return None
    recorded = recorded_fingerprint(meta)
    current = here if here is not None else fingerprint(recorded.get("backend"), recorded.get("threads"))
    diff = differences(recorded, current)
    if not diff:
        return None
    return (
        f"LUT {name} was measured on another machine ({'; '.join(diff)}): its latencies are that machine's; "
        f"calibrate it here with `nas lut calibrate {name} --archs 10`"
    )


_warned: set[str] = set()


def warn_if_other_machine(meta: Mapping[str, Any], name: str) -> None:
    """`OtherMachineWarning` once per LUT (by name and digest) when `other_machine_message` has something to say."""
    key = f"{name}:{meta.get('sha256')}"
    if key in _warned:
        return
    message = other_machine_message(meta, name)
    _warned.add(key)
    if message:
        warnings.warn(message, OtherMachineWarning, stacklevel=3)
