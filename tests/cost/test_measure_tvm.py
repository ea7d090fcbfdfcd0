from __future__ import annotations

import os
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("tvm")

from nas.cost.measure import backends  # noqa: E402
from nas.cost.measure._tvm import (  # noqa: E402
    MODULE_EQUALITY,
    RECORD_FILE,
    WORKLOAD_FILE,
    TVMBackend,
    _import_torch,
    _prepare,
    cpu_flags,
    load_database,
    masked_features,
    save_database,
    use_threads,
)
from nas.spaces import NB201Space  # noqa: E402
from nas.spaces.nb201_network import ReLUConvBN  # noqa: E402

#: Every NB201 op, 4 channels, one cell per stage: all fusion patterns of the real network, compiled in seconds.
TINY = NB201Space("tiny", channels=4, cells_per_stage=1)
ARCH = "|nor_conv_3x3~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|skip_connect~0|none~1|nor_conv_3x3~2|"


def _tiny_network() -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    net = TINY.build(TINY.from_string(ARCH))
    for module in net.modules():  # non-trivial batch-norm statistics, so folding them wrongly would show
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return net.eval(), (torch.randn(1, 3, 16, 16),)


def _all_cpus() -> set[int]:
    return set(os.sched_getaffinity(0))


def test_tvm_is_a_registered_backend_reporting_its_versions():
    import tvm

    backend = backends.get("tvm")()
    assert backend.name == "tvm"
    versions = backend.versions()
    assert versions["tvm"] == tvm.__version__
    assert versions["tune_trials"] == "0"
    assert '"kind": "llvm"' in versions["target"]


def test_compiled_nb201_network_computes_what_pytorch_computes(tmp_path):
    net, inputs = _tiny_network()
    runner = TVMBackend(work_dir=tmp_path).compile(net, inputs, threads=1)
    with torch.no_grad():
        expected = net(*inputs).numpy()
    (got,) = runner.numpy()
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 1e-4


def test_compile_leaves_the_module_in_the_training_mode_it_had(tmp_path):
    net, inputs = _tiny_network()
    net.train()
    TVMBackend(work_dir=tmp_path).compile(net, inputs, threads=1)
    assert net.training


def test_thread_setting_is_exact_and_keeps_this_threads_cpu_affinity():
    import tvm

    before = _all_cpus()
    use_threads(1)
    assert tvm.runtime.num_threads() == 1
    assert _all_cpus() == before  # TVM's default single-thread set-up pins the caller to one core
    if len(before) >= 2:
        use_threads(2)
        assert tvm.runtime.num_threads() == 2
        use_threads(1)
        assert tvm.runtime.num_threads() == 1
        assert _all_cpus() == before


def _parallel_kernel():
    import tvm
    from tvm.script import tirx as T

    @T.prim_func
    def kernel(a: T.Buffer((64, 16384), "float32"), b: T.Buffer((64, 16384), "float32")):
        for i in T.parallel(64):
            for j in range(16384):
                b[i, j] = T.sqrt(T.exp(a[i, j]) + T.float32(1)) * T.log(a[i, j] + T.float32(2))

    lib = tvm.compile(tvm.IRModule({"main": kernel}), target="llvm")
    dev = tvm.cpu()
    a = tvm.runtime.tensor(np.random.default_rng(0).random((64, 16384), dtype=np.float32), dev)
    b = tvm.runtime.tensor(np.zeros((64, 16384), dtype=np.float32), dev)
    return lambda: lib["main"](a, b)


def _busy_threads(run, seconds_of_cpu: float = 0.4) -> int:
    """How many of this process's threads did a real share of the work while `run` was called repeatedly."""

    def ticks() -> dict[str, int]:
        out = {}
        for tid in os.listdir("/proc/self/task"):
            try:
                fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[tid] = int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
        return out

    run()
    start, cpu0 = ticks(), time.process_time()
    while time.process_time() - cpu0 < seconds_of_cpu:
        run()
    end = ticks()
    gained = {tid: value - start.get(tid, 0) for tid, value in end.items()}
    total = sum(gained.values())
    # A worker of a pool that was just shrunk can still spin for a few ticks before it sleeps; a thread
    # that shares the kernel's work gains a large share of the CPU time, so count only those.
    return sum(1 for value in gained.values() if value > 0.2 * total)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="per-thread CPU times need Linux /proc")
def test_a_parallel_kernel_runs_on_exactly_the_requested_number_of_threads():
    run = _parallel_kernel()
    use_threads(1)
    assert _busy_threads(run) == 1
    if len(_all_cpus()) >= 2:
        use_threads(2)
        assert _busy_threads(run) == 2
        use_threads(1)
        assert _busy_threads(run) == 1


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="tune_trials must be >= 0, got -1"):
        TVMBackend(tune_trials=-1)
    with pytest.raises(ValueError, match=r"threads must be between 1 and the \d+ CPU\(s\) this process may use, got 0"):
        use_threads(0)
    with pytest.raises(ValueError, match="threads must be between 1"):
        use_threads(len(_all_cpus()) + 1)


def test_tune_trials_default_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("NAS_TVM_TUNE_TRIALS", "7")
    assert TVMBackend().tune_trials == 7
    monkeypatch.setenv("NAS_TVM_TUNE_TRIALS", "many")
    with pytest.raises(ValueError, match="NAS_TVM_TUNE_TRIALS must be an integer, got 'many'"):
        TVMBackend()


class _SharedConv(torch.nn.Module):
    """Two ReLU-Conv-BN blocks of one shape, the second fused with a residual add: one tuning task, two uses."""

    def __init__(self) -> None:
        super().__init__()
        self.a = ReLUConvBN(4, 4, 3, 1)
        self.b = ReLUConvBN(4, 4, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.a(x)
        return self.b(y) + y


def _database_with_a_schedule_per_task(backend: TVMBackend, net, inputs, folder: Path) -> list[str]:
    """Commit one valid (unmeasured) schedule per task of `net`, as tuning commits its best one, and save.

    The schedule is MetaSchedule's first design space with its post-processors applied, which is the
    form of a measured candidate; TVM then transfers it to every fused function with the same anchor.
    """
    from tvm.s_tir import meta_schedule as ms

    from nas.cost.measure._tvm import _extract_tasks, _import_torch, _prepare

    target = backend.target(1)
    database = ms.database.MemoryDatabase(module_equality=MODULE_EQUALITY)
    tasks = _extract_tasks(_prepare(_import_torch(net, inputs), target), target)
    for task in tasks:
        mod = task.dispatched[0]
        context = ms.TuneContext(mod=mod, target=target, space_generator="post-order-apply", task_name=task.task_name)
        schedule = context.generate_design_space()[0]
        schedule.enter_postproc()
        assert all(post.apply(schedule) for post in context.space_generator.postprocs)
        args = ms.arg_info.ArgInfo.from_prim_func(mod["main"])
        database.commit_tuning_record(ms.database.TuningRecord(schedule.trace, database.commit_workload(mod), [1e-3], target, args))
    save_database(database, folder)
    return [t.task_name for t in tasks]


def test_a_tuning_database_survives_its_json_files_and_tvm_reads_them_too(tmp_path):
    from tvm.s_tir import meta_schedule as ms

    net, inputs = _SharedConv().eval(), (torch.randn(1, 4, 8, 8),)
    backend = TVMBackend(tune_trials=2, work_dir=tmp_path)
    folder = backend.database_dir(1)
    names = _database_with_a_schedule_per_task(backend, net, inputs, folder)
    assert len(load_database(folder).get_all_tuning_records()) == len(names)
    with_tvm = ms.database.JSONDatabase(work_dir=str(folder), allow_missing=False, module_equality=MODULE_EQUALITY)
    assert len(with_tvm.get_all_tuning_records()) == len(names)


def test_tasks_already_in_the_database_are_not_tuned_again(tmp_path):
    net, inputs = _SharedConv().eval(), (torch.randn(1, 4, 8, 8),)
    backend = TVMBackend(tune_trials=2, work_dir=tmp_path)
    before = backend.untuned_tasks(net, inputs)
    assert len([name for name in before if "conv2d" in name]) == 1  # both convs, different epilogues: one task
    _database_with_a_schedule_per_task(backend, net, inputs, backend.database_dir(1))
    assert backend.untuned_tasks(net, inputs) == []
    runner = backend.compile(net, inputs, threads=1)
    assert backend.last_tuned_tasks == []
    with torch.no_grad():
        expected = net(*inputs).numpy()
    assert np.abs(runner.numpy()[0] - expected).max() < 1e-4


def test_a_corrupted_database_is_a_one_line_error(tmp_path):
    (tmp_path / WORKLOAD_FILE).write_text("[1, 2\n")
    (tmp_path / RECORD_FILE).write_text("")
    with pytest.raises(ValueError, match="TVM tuning database .* is corrupted") as info:
        load_database(tmp_path)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "arch",
    [
        "|avg_pool_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|skip_connect~0|skip_connect~1|none~2|",  # node 2 dead
        "|none~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_1x1~0|nor_conv_3x3~1|nor_conv_3x3~2|",  # node 1 zeros
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_1x1~1|+|nor_conv_3x3~0|nor_conv_1x1~1|nor_conv_1x1~2|",  # all live
    ],
)
def test_tvm_runs_exactly_the_convs_and_relus_its_layer_options_list(arch):
    from nas.spaces import get_space

    space = get_space("nb201")  # full size: relax's constant folding depends on tensor sizes
    net = space.build(space.from_string(arch)).eval()
    lowered = _prepare(_import_torch(net, (torch.randn(1, 3, 32, 32),)), TVMBackend(tune_trials=0).target(1))
    kernels = re.findall(r"R\.call_tir\((\w+),", lowered["main"].script())
    listed = Counter(s.op for s in space.layers(space.from_string(arch), **backends.get("tvm").layer_options))
    assert sum("conv2d" in k for k in kernels) == listed["conv"]
    assert sum(k.count("relu") for k in kernels) == listed["relu"]


def test_a_kernel_its_anchor_schedule_does_not_fit_is_tuned_as_it_is_once(tmp_path):
    from nas.cost.measure._tvm import EXACT_FOLDER

    backend = TVMBackend(tune_trials=2, work_dir=tmp_path)
    inputs = (torch.randn(1, 4, 8, 8),)
    # the database knows the conv only with a batch-norm epilogue, whose schedule fails on a lone conv
    _database_with_a_schedule_per_task(backend, ReLUConvBN(4, 4, 3, 1).eval(), inputs, backend.database_dir(1))
    lone = torch.nn.Conv2d(4, 4, 3, padding=1, bias=False).eval()
    runner = backend.compile(lone, inputs)
    assert backend.last_tuned_tasks == ["conv2d"] and backend.last_default_kernels == []
    exact = load_database(backend.database_dir(1) / EXACT_FOLDER, equality="structural")
    assert len(exact.get_all_tuning_records()) == 1
    with torch.no_grad():
        assert np.abs(runner.numpy()[0] - lone(*inputs).numpy()).max() < 1e-4
    backend.compile(lone, inputs)
    assert backend.last_tuned_tasks == [] and backend.last_default_kernels == []


def test_features_a_cpu_model_implies_but_the_cpu_hides_are_switched_off(tmp_path: Path) -> None:
    # A Zen 4 guest whose hypervisor hides AVX-512: LLVM's `znver4` implies it, the flags do not list it.
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_1 avx avx2 fma bmi1 bmi2 f16c avx_vnni vaes vpclmulqdq\n")
    flags = cpu_flags(cpuinfo)
    implied = {"avx", "avx2", "avx512f", "avx512vnni", "avxvnni", "fma", "bmi", "bmi2", "gfni", "vaes", "macrofusion", "sse4.1"}
    assert masked_features(implied, flags) == ["avx512f", "avx512vnni", "gfni"]
    assert masked_features(implied, set()) == []  # unreadable flags: trust LLVM
    assert cpu_flags(tmp_path / "missing") == set()


def test_the_host_target_and_database_name_carry_the_masked_features() -> None:
    import tvm

    backend = TVMBackend()
    attrs = backend.target_attrs()
    implied = tvm.target.codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": attrs["mcpu"]}))
    masked = masked_features(implied, cpu_flags())
    assert attrs.get("mattr", []) == [f"-{name}" for name in masked]
    plain = f"llvm-{attrs['mcpu']}-1t"
    assert (backend.database_dir().name != plain) == bool(masked)
    assert TVMBackend(mcpu="x86-64").target_attrs() == {"kind": "llvm", "mcpu": "x86-64"}
