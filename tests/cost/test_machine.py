from __future__ import annotations

import warnings

import pytest

from nas.cost import machine
from nas.cost.lut import LUT, LUTProvider, luts_dir
from nas.cost.machine import (
    LEGACY_CHECKED_FLAGS,
    OtherMachineWarning,
    cpu_info,
    differences,
    fingerprint,
    other_machine_message,
    recorded_fingerprint,
    warn_if_other_machine,
)

ZEN4 = "vendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse4_2 avx avx2 fma f16c\n"
ZEN5 = ZEN4.replace(": 25", ": 26").replace(": 17", ": 2").replace("f16c", "f16c avx512f avx512_vnni avx_vnni")


def test_cpu_info_reads_vendor_family_model_and_the_relevant_flags():
    info = cpu_info(ZEN4)
    assert (info["vendor_id"], info["cpu_family"], info["model"], info["model_name"]) == ("AuthenticAMD", "25", "17", "AMD EPYC")
    assert info["flags"] == ["sse4_2", "avx", "avx2", "fma", "f16c"] and "fpu" not in info["flags"]
    assert info["simd"] == ["avx2"]  # the older sidecars' subset, so old and new records compare


def test_differences_name_family_model_and_flags_and_nothing_for_the_same_machine():
    zen4 = fingerprint("onnxruntime", 1, cpu=cpu_info(ZEN4))
    zen5 = fingerprint("onnxruntime", 1, cpu=cpu_info(ZEN5))
    assert differences(zen4, zen4) == []
    assert differences(zen5, zen4) == ["cpu family 26 -> 25", "model 2 -> 17", "flags -avx512_vnni -avx512f -avx_vnni"]
    assert differences({**zen4, "threads": 2}, zen4) == ["threads 2 -> 1"]
    assert differences({**zen4, "backend_version": "1.31.0"}, {**zen4, "backend_version": "1.32.0"}) == ["backend version 1.31.0 -> 1.32.0"]


def test_fields_a_record_does_not_know_are_not_differences():
    partial = {"cpu": {"vendor_id": "AuthenticAMD"}, "threads": None, "backend_version": machine.UNKNOWN}
    assert differences(partial, fingerprint("torch", 1, cpu=cpu_info(ZEN5))) == []


def test_an_older_sidecar_gives_its_fingerprint_from_cpu_threads_and_versions():
    meta = {"backend": "onnxruntime", "threads": 1, "versions": {"onnxruntime": "1.32.0"},
            "cpu": {"vendor_id": "AuthenticAMD", "cpu_family": "26", "model": "2", "simd": ["avx2", "avx512f"]}}
    old = recorded_fingerprint(meta)
    assert old["backend_version"] == "1.32.0" and old["threads"] == 1
    assert old["cpu"]["flags"] == ["avx2", "avx512f"] and old["cpu"]["flags_checked"] == list(LEGACY_CHECKED_FLAGS)
    assert recorded_fingerprint({"backend": "torch"})["backend_version"] == machine.UNKNOWN


def test_the_message_is_for_measured_luts_of_another_machine_only():
    here = fingerprint("onnxruntime", 1, cpu=cpu_info(ZEN4))
    zen5 = {"kind": "measured", "machine": fingerprint("onnxruntime", 1, cpu=cpu_info(ZEN5))}
    message = other_machine_message(zen5, "x.csv", here=here)
    assert message is not None and "\n" not in message
    assert "cpu family 26 -> 25" in message and "nas lut calibrate x.csv --archs 10" in message
    assert other_machine_message({**zen5, "kind": "fitted"}, "x.csv", here=here) is None
    assert other_machine_message({"kind": "measured", "machine": here}, "x.csv", here=here) is None


def test_a_lut_of_another_machine_warns_once_when_a_provider_prices_with_it(monkeypatch):
    from nas.spaces import get_space

    monkeypatch.setattr(machine, "_warned", set())
    monkeypatch.setattr(machine, "cpu_info", lambda cpuinfo=None: cpu_info(ZEN4))
    lut = LUT.load(luts_dir() / "epyc_zen5__onnxruntime.csv")
    space = get_space("nb201")
    with pytest.warns(OtherMachineWarning, match=r"was measured on another machine \(cpu family 26 -> 25; model 2 -> 17"):
        LUTProvider("latency", lut, space)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        LUTProvider("latency", lut, space)  # once per LUT


def test_no_warning_for_a_lut_of_this_machine(monkeypatch):
    monkeypatch.setattr(machine, "_warned", set())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_other_machine({"kind": "measured", "backend": "torch", "threads": 1, "machine": fingerprint("torch", 1)}, "here.csv")


def test_a_built_lut_records_this_machine_and_raises_no_warning_here(tiny_torch_lut):
    assert tiny_torch_lut.meta["machine"] == fingerprint("torch", 1)
    assert other_machine_message(tiny_torch_lut.meta, "tiny.csv") is None
