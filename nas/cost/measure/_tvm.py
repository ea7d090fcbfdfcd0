"""TVM backend: a PyTorch module compiled by Apache TVM (relax) for this machine's CPU.

Why TVM at all: published hardware-aware NAS results compare architectures as a deployment compiler runs
them, and a compiler fuses operators (conv + batch-norm + add + ReLU) and picks loop schedules per shape,
so its latency ranking differs from PyTorch eager. Why the care below:

- Untuned TVM (default relax pipeline) ran NB201 networks 12x slower than PyTorch eager here (median
  of 20 archs; 1.3-21x), while 32 MetaSchedule trials per task made them 2.8x faster (1.9-16x; see
  `benchmarks/results/tvm_vs_torch.md`): `tune_trials=0` is a correctness and smoke-test setting,
  never a latency proxy.
- MetaSchedule tuning costs seconds per trial, but architectures of one space share most of their fused
  blocks. Tuning is therefore done once per unique task and kept in a JSON database under `work_dir`; a
  later network only tunes the blocks the database has never seen. Tasks are keyed by their *anchor
  block* (the conv, pool or matmul a fused function is built around), not by the whole fused function:
  NB201 fuses a conv with 1-4 different epilogues (batch-norm, node sums, the next ReLU), and 20 random
  archs gave 108 structurally distinct fused functions but only 28 anchor blocks, whose schedules TVM
  transfers to every epilogue variant. Where that transfer fails (TVM rejects the replayed schedule;
  seen for a lone conv whose anchor was tuned with a batch-norm epilogue, which then ran 40x slow on
  the default schedule), the kernel is tuned as it is into an `exact` database beside the anchor one.
  Databases are written atomically in TVM's own JSON-lines layout, so a crash never leaves half a
  record and TVM tools can read them.
- TVM's runtime thread pool reads `TVM_NUM_THREADS` once and, left alone, pins the calling thread to one
  core when it runs single-threaded; that pin would also bind any PyTorch measurement later in the same
  process. The backend sets the pool explicitly to `threads` workers sharing the CPUs this process may
  use, and checks that the runtime reports exactly `threads`. Its idle workers also spin-wait between
  kernels by default: measured here, a "1-thread" run of a parallel kernel kept a second core 30 % busy.
  Unless the user set `TVM_THREAD_POOL_SPIN_COUNT`, the backend sets it to 0, so a 1-thread measurement
  uses one core and leaves the other to whatever runs beside it.

`tvm` is imported inside the methods: `import nas` must stay light and work without the optional extra.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas._io import write_atomic

MODULE_EQUALITY = "anchor-block"
#: Sub-folder of a database folder for kernels the anchor's schedule does not replay on (keyed exactly).
EXACT_FOLDER = "exact"
WORKLOAD_FILE = "database_workload.json"
RECORD_FILE = "database_tuning_record.json"
# TVM's ThreadGroup affinity mode "every worker may run on every listed CPU" (no per-core pinning).
_SHARE_ALL_CORES = -3


def _require_tvm() -> Any:
    os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "0")  # read when the thread pool starts
    try:
        import tvm
    except ImportError:
        raise ImportError("the TVM backend needs the optional extra: pip install -r requirements-tvm.txt -c constraints.txt") from None
    return tvm


def default_work_dir() -> Path:
    """Where tuning databases live unless a `work_dir` is given: `$NAS_TVM_WORK_DIR` or `~/.cache/nas/tvm`."""
    root = os.environ.get("NAS_TVM_WORK_DIR")
    return Path(root) if root else Path.home() / ".cache" / "nas" / "tvm"


def default_tune_trials() -> int:
    """`$NAS_TVM_TUNE_TRIALS` or 0.

    Why an environment variable: LUT builds and validations construct backends by name with no
    arguments, inside fresh processes; the variable reaches them, so they can measure tuned TVM.
    """
    text = os.environ.get("NAS_TVM_TUNE_TRIALS", "0")
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"NAS_TVM_TUNE_TRIALS must be an integer, got {text!r}") from None


#: Prefixes and names of LLVM x86 instruction-set features that `/proc/cpuinfo` lists under the same name
#: (once `_`, `-` and `.` are dropped); only these are checked, so a tuning flag is never switched off.
_CHECKED_FEATURE_PREFIXES = ("avx", "amx")
_CHECKED_FEATURES = {"gfni", "vaes", "vpclmulqdq", "fma", "f16c", "bmi", "bmi2", "movbe", "adx"}
_FEATURE_FLAG_ALIASES = {"bmi": "bmi1"}


def cpu_flags(path: str | Path = "/proc/cpuinfo") -> set[str]:
    """The CPU's instruction-set flags as the kernel reports them; empty where that file does not exist."""
    try:
        text = Path(path).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return set(value.split())
    return set()


def masked_features(implied: set[str] | Sequence[str], flags: set[str]) -> list[str]:
    """Features that LLVM assumes for a CPU model but the CPU does not enable, sorted.

    Why: LLVM names the host CPU by family and model (e.g. `znver4`), and that name implies AVX-512; a
    hypervisor may hide AVX-512 from the guest all the same (seen on a CI machine: family 25 model 17,
    no `avx512*` flag), and code compiled for the name then dies with an illegal instruction.
    """
    if not flags:
        return []
    have = {_normalise(flag) for flag in flags}
    out = []
    for name in implied:
        if not (name.startswith(_CHECKED_FEATURE_PREFIXES) or name in _CHECKED_FEATURES):
            continue
        if _normalise(_FEATURE_FLAG_ALIASES.get(name, name)) not in have:
            out.append(name)
    return sorted(out)


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(".", "")


def use_threads(threads: int) -> None:
    """Make TVM's runtime thread pool (of the calling thread) run kernels on exactly `threads` workers."""
    tvm = _require_tvm()
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    if threads < 1 or threads > len(cpus):
        raise ValueError(f"threads must be between 1 and the {len(cpus)} CPU(s) this process may use, got {threads}")
    os.environ["TVM_NUM_THREADS"] = str(threads)  # read by MetaSchedule's runner subprocesses
    tvm.get_global_func("runtime.config_threadpool")(_SHARE_ALL_CORES, threads, [str(c) for c in cpus])
    used = int(tvm.runtime.num_threads())
    if used != threads:
        raise RuntimeError(f"TVM's runtime thread pool runs {used} thread(s) though {threads} were requested")


class TVMRunner:
    """One compiled network: calling it runs one inference and returns TVM's output (an Array of tensors).

    Keeps the VM alive and re-applies the thread setting when called from another Python thread, because
    TVM keeps one thread pool per calling thread.
    """

    def __init__(self, vm: Any, inputs: Sequence[Any], threads: int) -> None:
        self.vm = vm
        self.threads = threads
        self._main = vm["main"]
        self._inputs = tuple(inputs)
        self._configured = threading.local()
        self._configured.done = True

    def __call__(self) -> Any:
        if not getattr(self._configured, "done", False):
            use_threads(self.threads)
            self._configured.done = True
        return self._main(*self._inputs)

    def numpy(self) -> list[Any]:
        """Run once and return the outputs as numpy arrays (for correctness checks, not for timing)."""
        out = self()
        items = [out] if hasattr(out, "numpy") else list(out)
        return [item.numpy() for item in items]


class TVMBackend:
    """`tvm` measurement backend: torch.export -> relax -> `tvm.compile` for the host CPU (llvm).

    Args:
        tune_trials: MetaSchedule trials for each fused task the database has not seen; 0 compiles with
            the default relax pipeline only (plus dlight's CPU rules where they apply); default
            `default_tune_trials()`.
        work_dir: root of the tuning databases (one sub-folder per target and thread count); default
            `default_work_dir()`. Only one process should tune into one database at a time.
        mcpu: LLVM CPU name; default the host's, as TVM detects it.
        seed: seed of MetaSchedule's search, so a tuning run can be repeated.
        run_timeout_s: limit for measuring one batch of candidates while tuning. TVM's default is 30 s;
            at a load of 7-9 on 2 cores its equally long build limit killed most builds, each kill
            restarting a worker that imports TVM again (14 s at that load).

    Example:
        >>> from nas.cost.measure import backends
        >>> backends.get("tvm")().name
        'tvm'
    """

    name = "tvm"
    # Read off the lowered IR of NB201 networks: relax removes dead operators, but computes the zeros of
    # an all-`none` node (`full`) and every edge from it at run time, and does not merge the ReLUs two
    # conv edges apply to one node.
    layer_options: dict[str, bool] = {"live_only": True}

    def __init__(
        self,
        *,
        tune_trials: int | None = None,
        work_dir: str | Path | None = None,
        mcpu: str | None = None,
        seed: int = 0,
        run_timeout_s: float = 120.0,
    ) -> None:
        tune_trials = default_tune_trials() if tune_trials is None else tune_trials
        if tune_trials < 0:
            raise ValueError(f"tune_trials must be >= 0, got {tune_trials}")
        if run_timeout_s <= 0:
            raise ValueError(f"run_timeout_s must be > 0, got {run_timeout_s}")
        self.tune_trials = int(tune_trials)
        self.work_dir = Path(work_dir) if work_dir is not None else None
        self.mcpu = mcpu
        self.seed = int(seed)
        self.run_timeout_s = float(run_timeout_s)
        self.last_tuned_tasks: list[str] = []
        #: Kernels of the last compile that kept the default schedule because their anchor's trace failed.
        self.last_default_kernels: list[str] = []

    # --- target and database --------------------------------------------------------------------
    def host_mcpu(self) -> str:
        if self.mcpu:
            return self.mcpu
        tvm = _require_tvm()
        return str(tvm.target.Target.from_device(tvm.cpu()).attrs.get("mcpu", "generic"))

    def host_mattr(self) -> list[str]:
        """LLVM features to switch off: those `mcpu` implies that this CPU does not enable (see `masked_features`).

        Empty when the user named `mcpu` (they chose the target) or the CPU's flags cannot be read.
        """
        if self.mcpu:
            return []
        tvm = _require_tvm()
        from tvm.target import codegen

        mcpu = self.host_mcpu()
        implied = codegen.llvm_get_cpu_features(tvm.target.Target({"kind": "llvm", "mcpu": mcpu}))
        return [f"-{name}" for name in masked_features(implied, cpu_flags())]

    def target_attrs(self) -> dict[str, Any]:
        attrs: dict[str, Any] = {"kind": "llvm", "mcpu": self.host_mcpu()}
        mattr = self.host_mattr()
        if mattr:
            attrs["mattr"] = mattr
        return attrs

    def target(self, threads: int = 1) -> Any:
        tvm = _require_tvm()
        return tvm.target.Target({**self.target_attrs(), "num-cores": int(threads)})

    def database_dir(self, threads: int = 1) -> Path:
        """Tuned schedules depend on the CPU, its enabled features and the thread count: each has its own database."""
        mattr = self.host_mattr()
        features = "-" + hashlib.sha1(",".join(mattr).encode()).hexdigest()[:8] if mattr else ""
        return (self.work_dir or default_work_dir()) / f"llvm-{self.host_mcpu()}{features}-{threads}t"

    # --- protocol ---------------------------------------------------------------------------------
    def compile(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> Callable[[], Any]:
        return self.runner(self.build(module, example_inputs, threads=threads), example_inputs, threads=threads)

    def build(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> Any:
        """The relax executable of `module` for this CPU (tuned from the database when `tune_trials > 0`).

        `nas export --format tvm` writes it with `export_library`, so an export is the network measured.
        """
        use_threads(threads)
        target = self.target(threads)
        lowered = _prepare(_import_torch(module, example_inputs), target)
        self.last_tuned_tasks, self.last_default_kernels = [], []
        if self.tune_trials > 0:
            lowered, self.last_default_kernels, self.last_tuned_tasks = self._tune_lowered(lowered, target, self.database_dir(threads))
        return _build(lowered, target)

    def runner(self, executable: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> TVMRunner:
        """A runner of an executable or of a library loaded with `tvm.runtime.load_module`."""
        tvm = _require_tvm()
        from tvm import relax

        use_threads(threads)
        vm = relax.VirtualMachine(executable, tvm.cpu())
        inputs = [tvm.runtime.tensor(x.detach().cpu().contiguous().numpy(), tvm.cpu()) for x in example_inputs]
        return TVMRunner(vm, inputs, threads)

    def versions(self) -> dict[str, str]:
        tvm = _require_tvm()
        import tvm_ffi

        out = {
            "tvm": tvm.__version__,
            "tvm_ffi": tvm_ffi.__version__,
            "target": json.dumps(self.target_attrs()),
            "pipeline": "relax default + dlight cpu" + (" + meta_schedule" if self.tune_trials else ""),
            "tune_trials": str(self.tune_trials),
        }
        if self.tune_trials:
            out["seed"] = str(self.seed)
        return out

    # --- tuning ----------------------------------------------------------------------------------
    def tune(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> list[str]:
        """Tune the tasks of `module` the database lacks, without compiling it; returns their names.

        Lets a caller tune many networks first and measure later, so tuning never overlaps a timing.
        """
        if self.tune_trials == 0:
            raise ValueError("tune() needs tune_trials > 0")
        use_threads(threads)
        target = self.target(threads)
        lowered = _prepare(_import_torch(module, example_inputs), target)
        self.last_tuned_tasks = self._tune_lowered(lowered, target, self.database_dir(threads))[2]
        return list(self.last_tuned_tasks)

    def untuned_tasks(self, module: Any, example_inputs: tuple[Any, ...], *, threads: int = 1) -> list[str]:
        """Names of the fused tasks of `module` that the database has no schedule for (what tuning would cost)."""
        target = self.target(threads)
        tasks = _extract_tasks(_prepare(_import_torch(module, example_inputs), target), target)
        database = load_database(self.database_dir(threads))
        return [t.task_name for t in tasks if not _has_record(database, t, target)]

    def _tune_lowered(self, lowered: Any, target: Any, folder: Path) -> tuple[Any, list[str], list[str]]:
        """`lowered` scheduled from the databases (exact first, then anchor-keyed) after tuning what they
        lack; the kernels left on the default schedule; the tasks tuned.

        A kernel whose anchor schedule does not replay on it is tuned as it is into the exact database.
        """
        databases = [load_database(folder / EXACT_FOLDER, equality="structural"), load_database(folder)]
        tuned = self._tune_new_tasks(lowered, target, databases[1], folder)
        scheduled, failed = _apply_database(lowered, target, databases)
        if failed:
            tuned += self._tune_new_tasks(lowered, target, databases[0], folder / EXACT_FOLDER, equality="structural", only=failed)
            scheduled, failed = _apply_database(lowered, target, databases)
        return scheduled, failed, tuned

    def _tune_new_tasks(
        self, lowered: Any, target: Any, database: Any, folder: Path, *, equality: str = MODULE_EQUALITY, only: Sequence[str] | None = None
    ) -> list[str]:
        from tvm.s_tir import meta_schedule as ms

        new = [
            t for t in _extract_tasks(lowered, target, equality)
            if not _has_record(database, t, target) and (only is None or t.task_name in only)
        ]  # fmt: skip
        if not new:
            return []
        # Each search round scores `population_size` candidates with the cost model to pick the few it
        # measures; TVM's 512 suits budgets of hundreds of trials per task, ours are tens.
        strategy = ms.search_strategy.EvolutionarySearch(population_size=min(512, max(64, 8 * self.tune_trials)))
        _quiet_tuning_logs()
        with tempfile.TemporaryDirectory(prefix="nas-tvm-logs-") as logs:
            contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(new, work_dir=logs, strategy=strategy, seed=self.seed)
            ms.tune_tasks(
                tasks=contexts,
                task_weights=weights,
                work_dir=logs,
                max_trials_global=self.tune_trials * len(contexts),
                max_trials_per_task=self.tune_trials,
                num_trials_per_iter=min(64, self.tune_trials),
                builder=_in_process_builder(),
                runner=ms.runner.LocalRunner(timeout_sec=self.run_timeout_s),
                database=database,
                task_scheduler="round-robin",
                module_equality=equality,
            )
        save_database(database, folder, equality=equality)
        return [t.task_name for t in new]


# --- helpers ----------------------------------------------------------------------------------------


def _import_torch(module: Any, example_inputs: tuple[Any, ...]) -> Any:
    """The relax IRModule of `module` in inference mode, with weights bound as constants."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            exported = torch.export.export(module, tuple(example_inputs))
    finally:
        module.train(was_training)
    return from_exported_program(exported, keep_params_as_input=False)


def _prepare(mod: Any, target: Any) -> Any:
    """Legalise and fuse, exactly as the tuning tasks are keyed (so database lookups find them)."""
    import tvm
    from tvm import relax

    with target:
        return tvm.transform.Sequential(
            [
                relax.transform.DecomposeOpsForInference(),
                relax.transform.CanonicalizeBindings(),
                relax.transform.LegalizeOps(),
                relax.transform.AnnotateTIROpPattern(),
                relax.transform.FoldConstant(),
                relax.transform.FuseOps(),
                relax.transform.FuseTIR(),
            ]
        )(mod)


def _extract_tasks(lowered: Any, target: Any, equality: str = MODULE_EQUALITY) -> list[Any]:
    from tvm.s_tir import meta_schedule as ms

    tasks = ms.relax_integration.extract_tasks(lowered, target, module_equality=equality)
    return [t for t in tasks if not t.mod.attrs.get("tirx.is_scheduled", False)]


_QUIETED: list[bool] = []


def _quiet_tuning_logs() -> None:
    """Keep MetaSchedule's console at WARNING unless the user set its level before our first tuning.

    TVM prints every trial's table to stdout at DEBUG, and after its first tuning it sets that level
    itself, so "is the level unset" only tells us something the first time.
    """
    quiet = logging.getLogger("tvm.s_tir.meta_schedule")
    if not _QUIETED:
        _QUIETED.append(quiet.level == logging.NOTSET)
    if _QUIETED[0]:
        quiet.setLevel(logging.WARNING)


def _in_process_builder() -> Any:
    """A MetaSchedule builder that compiles candidates in this process.

    Why: TVM's LocalBuilder starts a fresh worker process for every batch (to dodge a memory leak), and
    each worker imports TVM: 14 s of a ~1 min task on a loaded 2-core machine, against ~1 s to compile
    the batch. A failed build is reported as a failed candidate, as LocalBuilder does.
    """
    from tvm.ir.utils import derived_object
    from tvm.s_tir.meta_schedule.builder import BuilderResult, PyBuilder
    from tvm.s_tir.meta_schedule.builder.local_builder import default_build, default_export

    @derived_object
    class InProcessBuilder(PyBuilder):
        def build(self, build_inputs: list[Any]) -> list[Any]:
            results = []
            for item in build_inputs:
                try:
                    results.append(BuilderResult(default_export(default_build(item.mod, item.target, None)), None))
                except Exception as exc:  # noqa: BLE001 - TVM raises its own error types for bad schedules
                    results.append(BuilderResult(None, f"in-process build failed: {type(exc).__name__}: {str(exc)[:2000]}"))
            return results

    return InProcessBuilder()


def _has_record(database: Any, task: Any, target: Any) -> bool:
    return database.query_tuning_record(task.dispatched[0], target, task.task_name) is not None


def _build(lowered: Any, target: Any) -> Any:
    """The executable; kernels no database scheduled get dlight's default schedules."""
    import tvm
    from tvm.s_tir import dlight as dl

    with target:
        lowered = dl.ApplyDefaultSchedule(dl.cpu.GEMV(), dl.cpu.Reduction())(lowered)
    return tvm.compile(lowered, target)


def _apply_database(lowered: Any, target: Any, databases: Sequence[Any]) -> tuple[Any, list[str]]:
    """Each kernel scheduled from the first database whose schedule applies, one kernel at a time.

    Why one at a time: with anchor-block equality TVM replays the anchor's trace on every kernel built
    around that anchor, and on some kernels the replay fails an internal check (seen: a lone conv, whose
    anchor was tuned with a batch-norm epilogue), which would abort `MetaScheduleApplyDatabase` for the
    whole module. Such a kernel is returned by name: the caller tunes it exactly, or it keeps the
    default schedule; every other kernel still gets its tuned one.
    """
    import tvm
    from tvm import relax

    scheduled, failed = lowered, []
    for var, func in lowered.functions_items():
        if not isinstance(func, tvm.tirx.PrimFunc) or func.attrs and func.attrs.get("tirx.is_scheduled", False):
            continue
        refused = False
        for database in databases:
            try:
                with target, database:
                    one = relax.transform.MetaScheduleApplyDatabase()(tvm.IRModule({var.name_hint: func}))[var.name_hint]
            except tvm.error.InternalError:
                refused = True
                continue
            if one.attrs and one.attrs.get("tirx.is_scheduled", False):
                scheduled = _replaced(scheduled, var, one)
                break
        else:
            if refused:
                failed.append(var.name_hint)
    return scheduled, failed


def _replaced(module: Any, var: Any, func: Any) -> Any:
    import tvm

    functions = {v: (func if v.same_as(var) else f) for v, f in module.functions_items()}
    return tvm.IRModule(functions, attrs=module.attrs, global_infos=module.global_infos)


def load_database(folder: Path, *, equality: str = MODULE_EQUALITY) -> Any:
    """An in-memory MetaSchedule database holding the best record per workload stored in `folder`."""
    from tvm.s_tir import meta_schedule as ms

    database = ms.database.MemoryDatabase(module_equality=equality)
    workloads_path, records_path = folder / WORKLOAD_FILE, folder / RECORD_FILE
    if not (workloads_path.is_file() and records_path.is_file()):
        return database
    try:
        workloads = [ms.database.Workload.from_json(json.loads(line)) for line in _lines(workloads_path)]
        committed = [database.commit_workload(w.mod) for w in workloads]
        for line in _lines(records_path):
            index, record = json.loads(line)
            database.commit_tuning_record(ms.database.TuningRecord.from_json(record, committed[int(index)]))
    except (ValueError, IndexError, TypeError) as exc:
        raise ValueError(f"TVM tuning database {folder} is corrupted ({type(exc).__name__}); delete the folder to re-tune") from None
    return database


def save_database(database: Any, folder: Path, *, equality: str = MODULE_EQUALITY) -> None:
    """Write the best record per workload in TVM's JSON-lines layout, each file atomically."""
    from tvm.s_tir import meta_schedule as ms

    best = ms.database.MemoryDatabase(module_equality=equality)
    database.dump_pruned(best)
    records = best.get_all_tuning_records()
    folder.mkdir(parents=True, exist_ok=True)
    index: dict[str, int] = {}
    workload_lines: list[str] = []
    record_lines: list[str] = []
    for record in records:
        workload = record.workload.as_json()
        key = workload[0]
        if key not in index:
            index[key] = len(workload_lines)
            workload_lines.append(json.dumps(workload))
        record_lines.append(json.dumps([index[key], record.as_json()]))
    write_atomic(folder / WORKLOAD_FILE, "".join(f"{line}\n" for line in workload_lines))
    write_atomic(folder / RECORD_FILE, "".join(f"{line}\n" for line in record_lines))


def _lines(path: Path) -> list[str]:
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

