"""The `nas` command: search, pareto, bench, worker, and listings.

Every user error is printed as one line (`error: ...`) with a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import optuna
import typer
import yaml
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Hardware-aware neural architecture search: accurate AND cheap networks, as a Pareto front.", no_args_is_help=True, rich_markup_mode=None, add_completion=False)
bench_app = typer.Typer(help="Query benchmark tables offline.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(bench_app, name="bench")
lut_app = typer.Typer(help="Latency lookup tables: build on this machine, validate, fit from measurements, predict.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(lut_app, name="lut")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _user_errors() -> tuple[type[BaseException], ...]:
    from nas.registry import UnknownNameError
    from nas.tables import DataDirError

    return (ValueError, KeyError, FileNotFoundError, DataDirError, UnknownNameError, ImportError)


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


def _parse_options(items: list[str], flag: str = "--option", example: str = "population_size=40") -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{flag} {item!r} must be KEY=VALUE, e.g. {example}")
        parsed = yaml.safe_load(value)
        if isinstance(parsed, str):  # YAML 1.1 reads 1e-3 as a string; a user means the number
            try:
                parsed = float(parsed)
            except ValueError:
                pass
        options[key.strip()] = parsed
    return options


def _print_estimate_notes(provenance: dict[str, Any]) -> None:
    """Where each metric's numbers come from: one `sources:` line for measured and counted metrics, and a
    `note: M is an estimate (...)` line per modelled one (a LUT with its held-out error, a power model)."""
    from nas.run.sources import source_lines

    for line in source_lines(provenance):
        console.print(line, highlight=False, soft_wrap=True)


#: Columns kept in `pareto.csv` but left out of the printed front (paths and bookkeeping).
_UNPRINTED = ("weights", "train_seconds", "epochs")


def _print_frame(frame: Any, title: str) -> None:
    frame = frame.drop(columns=[c for c in _UNPRINTED if c in frame.columns])
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


@app.command()
def search(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config (keys: space, dataset, objectives, constraints, strategy, strategy_options, mode, mode_options, budget, seed, data_dir, storage, accuracy, accuracy_options, training, pruner, pruner_options, keep_weights, measure, measure_budget, measure_options); flags override it.")] = None,
    space: Annotated[Optional[str], typer.Option(help="Search space name (see `nas spaces`) or a YAML definition.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="The space's reference dataset setting (tables, LUTs): cifar10, cifar100, imagenet.")] = None,
    objectives: Annotated[Optional[str], typer.Option(help="Comma-separated METRIC:max|min, e.g. accuracy:max,latency@raspi4:min.")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option("--constraint", "-c", help="Bound on a metric, e.g. 'latency@pixel3<=12' (repeatable).")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Search strategy (see `nas strategies`).")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Strategy option KEY=VALUE (repeatable).")] = None,
    data_spec: Annotated[Optional[str], typer.Option("--data", help="Data a one-shot strategy (darts) trains its supernet on: digits, npz:PATH, folder:PATH, cifar10:DIR (its strategy option data).")] = None,
    mode: Annotated[Optional[str], typer.Option(help="pareto (default), lexicographic, scalarized or hybrid: how strategies rank candidates.")] = None,
    mode_option: Annotated[Optional[list[str]], typer.Option("--mode-option", help="Mode option KEY=VALUE, e.g. weights=[0.7,0.3], order=[accuracy,latency@raspi4], tolerances=[0.01,0], kind=product, targets=[null,12].")] = None,
    budget: Annotated[Optional[int], typer.Option(help="Number of architectures to evaluate (in total, over resumes and workers).")] = None,
    accuracy: Annotated[Optional[str], typer.Option(help="Where accuracy comes from (see `nas evaluators`): table (default), csv:PATH, train:DATA (digits, npz:PATH, folder:PATH, cifar10:DIR, cifar100:DIR), predictor:MODEL[:ENCODING], zero_cost:PROXY, ghn:PATH (`nas hypernet train`).")] = None,
    accuracy_option: Annotated[Optional[list[str]], typer.Option("--accuracy-option", help="Accuracy option KEY=VALUE: for predictor labels=table|csv:PATH|train:DATA, label_budget=40, initial_labels=10, or a model parameter (n_estimators=100); for zero_cost data=digits, batch_size=64; for ghn:PATH data, val_samples (score on that many validation images).")] = None,
    training_option: Annotated[Optional[list[str]], typer.Option("--training-option", help="Training recipe KEY=VALUE when accuracy trains, e.g. epochs=20, lr=0.05, optimizer=adamw, max_train=500, input_size=16 (see `nas train --help`).")] = None,
    pruner: Annotated[Optional[str], typer.Option(help="Stop weak trainings early: none (default), median, hyperband (Optuna's, on accuracy curves), pareto-halving (multi-objective).")] = None,
    pruner_option: Annotated[Optional[list[str]], typer.Option("--pruner-option", help="Pruner option KEY=VALUE, e.g. reduction_factor=3, min_resource=1.")] = None,
    keep_weights: Annotated[Optional[str], typer.Option(help="Weights of trained trials to keep in RUN/weights: all (default) or K (the best K, front first).")] = None,
    measure: Annotated[Optional[list[str]], typer.Option("--measure", help="Measure a device with no table or LUT in the loop: 'latency@mydev=SOURCE', SOURCE = backend:onnxruntime|torch|tvm, cmd:TEMPLATE ({onnx} = the exported file; prints ms) or csv:PATH:COLUMN.")] = None,
    measure_budget: Annotated[Optional[int], typer.Option(help="Most measurements --measure may spend (default: 30 % of --budget); the rest of the trials carry the device model's estimate.")] = None,
    measure_option: Annotated[Optional[list[str]], typer.Option("--measure-option", help="KEY=VALUE: initial=5 (measurements before estimates are trusted), timeout_s=600 (cmd), processes=3 (backend), reference_devices=all|a,b.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed of the strategy.")] = None,
    out: Annotated[Path, typer.Option(help="Run directory; an existing one with the same config is resumed.")] = Path("runs/latest"),
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of benchmark tables (default: $NAS_DATA_DIR or ../shared/data).")] = None,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (default: SQLite in the run directory); e.g. postgresql://... for many machines.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Search for Pareto-optimal architectures and write RUN/pareto.csv."""
    from nas.run import Run, RunConfig

    try:
        data: dict[str, Any] = {}
        if config is not None:
            data = RunConfig.from_file(config).to_dict()
        overrides = {
            "space": space,
            "dataset": dataset,
            "objectives": objectives,
            "constraints": constraint or None,
            "strategy": strategy,
            "budget": budget,
            "seed": seed,
            "data_dir": str(data_dir) if data_dir else None,
            "storage": storage,
        }
        data.update({k: v for k, v in overrides.items() if v is not None})
        if option:
            data["strategy_options"] = {**data.get("strategy_options", {}), **_parse_options(option)}
        if data_spec is not None:
            data["strategy_options"] = {**data.get("strategy_options", {}), "data": data_spec}
        if mode is not None:
            data["mode"] = mode
        if mode_option:
            data["mode_options"] = {**data.get("mode_options", {}), **_parse_options(mode_option)}
        if accuracy is not None:
            data["accuracy"] = accuracy
        if accuracy_option:
            data["accuracy_options"] = {**data.get("accuracy_options", {}), **_parse_options(accuracy_option, "--accuracy-option", "label_budget=40")}
        if training_option:
            data["training"] = {**data.get("training", {}), **_parse_options(training_option, "--training-option", "epochs=20")}
        if pruner is not None:
            data["pruner"] = pruner
        if pruner_option:
            data["pruner_options"] = {**data.get("pruner_options", {}), **_parse_options(pruner_option, "--pruner-option", "reduction_factor=3")}
        if keep_weights is not None:
            data["keep_weights"] = keep_weights if keep_weights == "all" else _count_option(keep_weights, "--keep-weights")
        if measure:
            data["measure"] = {**data.get("measure", {}), **_parse_measure(measure)}
        if measure_budget is not None:
            data["measure_budget"] = measure_budget
        if measure_option:
            data["measure_options"] = {**data.get("measure_options", {}), **_parse_options(measure_option, "--measure-option", "initial=5")}
        with _warnings_as_lines():
            run = Run.open(out, RunConfig.from_mapping(data), on_status=_status_line if progress else None)
        _search_with_progress(run, progress)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    front = run.pareto()
    _print_frame(front, f"Pareto front: {len(front)} architectures ({out / 'pareto.csv'})")
    _print_best_under_mode(run)
    _print_estimate_notes(run.provenance())
    spent = run.labels_spent()
    if spent is not None:
        console.print(f"true accuracy labels spent: {spent} of {run.label_budget()} ({run.config.accuracy_options.get('labels', 'table')}); other trials carry predicted accuracy")
    _print_training_notes(run)
    if front.empty:
        raise _fail(_why_empty(run))


def _parse_measure(items: list[str]) -> dict[str, str]:
    """`--measure METRIC=SOURCE` items as a mapping (one line naming the item that does not split)."""
    out: dict[str, str] = {}
    for item in items:
        metric, sep, source = item.partition("=")
        if not sep or not metric.strip() or not source.strip():
            raise ValueError(f"--measure {item!r} must be METRIC=SOURCE, e.g. latency@mydev=backend:onnxruntime")
        out[metric.strip()] = source.strip()
    return out


def _status_line(line: str) -> None:
    """A start-up step, on stderr, so a search that prices a whole space first is seen to be working."""
    err_console.print(line, style="dim", highlight=False, markup=False, soft_wrap=True)


@contextmanager
def _warnings_as_lines() -> Iterator[None]:
    """nas's own warnings raised while opening a run (an unsatisfiable constraint) as `warning:` lines
    on stderr, at once, before the search spends its budget."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        finally:
            for w in caught:
                if w.category.__module__.split(".")[0] == "nas":
                    err_console.print(f"warning: {w.message}", highlight=False, soft_wrap=True)
                else:
                    warnings.showwarning(w.message, w.category, w.filename, w.lineno)


def _why_empty(run: Any) -> str:
    """One line on why a search ended with an empty front: no trial completed, or none met the constraints."""
    trials = run.trials()
    if trials.empty:
        return f"the front of {run.directory} is empty: no trial completed ({run.n_spent()} spent); see the trials' nas:error attributes"
    cons = run.objectives.constraints
    best = "; ".join(
        f"best {c.metric} seen: {(trials[c.metric].min() if c.op in ('<=', '<') else trials[c.metric].max()):.4g}" for c in cons
    )
    return f"the front of {run.directory} is empty: none of {len(trials)} evaluated architectures satisfies {[str(c) for c in cons]} ({best}); relax the constraints"


_MODE_COLUMN_MEANING = {"reward": "MnasNet reward, higher is better", "score": "weighted sum of normalised objectives, lower is better", "order": "lexicographic place"}


def _print_best_under_mode(run: Any, top: int = 5) -> None:
    """Scalarized and lexicographic runs prefer one architecture: show the best few and name the best."""
    ranked = run.ranked()
    if ranked is None or ranked[1].empty:
        return
    column, frame = ranked
    shown = frame[["arch", column, *run.objectives.names]].head(top)
    _print_frame(shown, f"Best under the {run.config.mode} mode ({column}: {_MODE_COLUMN_MEANING[column]})")
    best = frame.iloc[0]
    values = ", ".join(f"{m}={best[m]:.4g}" for m in run.objectives.names)
    console.print(f"best: {best['arch']} ({column}={best[column]:.4g}, {values})", highlight=False, soft_wrap=True)


def _count_option(text: str, flag: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{flag} must be 'all' or a non-negative integer, got {text!r}") from None
    if value < 0:
        raise ValueError(f"{flag} must be 'all' or a non-negative integer, got {text!r}")
    return value


def _print_training_notes(run: Any) -> None:
    """What a run that trains should say: which accuracy is which, pruned trials, where weights are."""
    if "test_accuracy" not in run.trials().columns:
        return
    console.print("accuracy = validation accuracy (%) the search selected on; test_accuracy is reported only, never used to select", highlight=False, soft_wrap=True)
    pruned = run.progress().pruned
    if pruned:
        console.print(f"{pruned} trial(s) stopped early by the {run.config.pruner} pruner", highlight=False)
    if (run.directory / "weights").is_dir():
        console.print(f"weights of trained trials: {run.directory / 'weights'} (state_dict; torch.load(path, weights_only=True))", highlight=False, soft_wrap=True)


def _search_with_progress(run: Any, show: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not show:
        run.search(on_status=lambda line: err_console.print(line, highlight=False, markup=False, soft_wrap=True))
        return
    start = run.n_spent()
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("HV {task.fields[hv]}  front {task.fields[front]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err_console, transient=False) as bar:
        task = bar.add_task(run.config.strategy, total=run.config.budget, completed=start, hv="-", front=0)

        def update(p: Any) -> None:
            hv = "-" if p.hypervolume is None else f"{p.hypervolume:.5g}"
            if p.labels is not None:
                hv += f"  labels {p.labels}/{p.label_budget}"
            if p.pruned:
                hv += f"  pruned {p.pruned}"
            for note in p.notes:
                hv += f"  {note}"
            bar.update(task, completed=p.done, total=p.budget, hv=hv, front=p.front_size)

        run.search(on_trial=update, progress_every=0.25, on_status=lambda line: bar.console.print(line, highlight=False, markup=False, soft_wrap=True))


@app.command()
def train(
    arch: Annotated[str, typer.Option(help="The architecture's string in the space (e.g. one taken from a front).")],
    out: Annotated[Path, typer.Option(help="Folder to write weights.pt (state_dict), curve.csv and recipe.json to; must be new or empty.")],
    space: Annotated[str, typer.Option(help="Search space name (see `nas spaces`) or a YAML definition.")] = "nb201",
    data: Annotated[str, typer.Option(help="Dataset: digits, npz:PATH, folder:PATH, cifar10:DIR, cifar100:DIR.")] = "digits",
    epochs: Annotated[Optional[int], typer.Option(help="Training epochs [default: the recipe's].")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the initial weights, batch order and augmentation.")] = 0,
    config: Annotated[Optional[Path], typer.Option(help="YAML file whose `training` section (or whole mapping) is the recipe, e.g. a run's config.yaml.")] = None,
    init: Annotated[Optional[str], typer.Option(help="Start from inherited weights: supernet:PATH (an OFA supernet; the sub-network is extracted, BatchNorm recalibrated, then fine-tuned).")] = None,
    training_option: Annotated[Optional[list[str]], typer.Option("--training-option", help="Recipe KEY=VALUE: epochs, batch_size, optimizer (sgd|adam|adamw), lr, momentum, nesterov, weight_decay, schedule (cosine|constant|step), warmup_epochs, label_smoothing, augmentation ([crop,flip,noise]), noise_std, grad_clip, threads, input_size, val_fraction, test_fraction, max_train, split_seed, normalize.")] = None,
    progress: Annotated[bool, typer.Option(help="Print each epoch to stderr.")] = True,
) -> None:
    """Train one architecture on data; print `accuracy=<validation> test_accuracy=<test> epochs=<n> seconds=<s>`."""
    from nas._io import read_yaml_mapping
    from nas.accuracy.training import Recipe, load_prepared, make_trainer, save_weights
    from nas.spaces import get_space

    try:
        recipe_data: dict[str, Any] = {}
        if config is not None:
            loaded = read_yaml_mapping(config, "a recipe, or a config with a training section")
            section = loaded["training"] if "training" in loaded else loaded
            if not isinstance(section, dict):
                raise ValueError(f"{config}: training must be a mapping of recipe keys, got {section!r}")
            recipe_data = dict(section)
        if training_option:
            recipe_data.update(_parse_options(training_option, "--training-option", "lr=0.05"))
        if epochs is not None:
            recipe_data["epochs"] = epochs
        recipe = Recipe.from_mapping(recipe_data)
        the_space = get_space(space)
        the_arch = the_space.from_string(arch)
        if out.exists() and (not out.is_dir() or any(out.iterdir())):
            raise ValueError(f"{out} exists and is not empty; choose a new --out")
        prepared = load_prepared(data, recipe)
        trainer = make_trainer(the_space, the_arch, prepared, recipe, seed=seed) if init is None else _inherited_trainer(init, the_space, the_arch, prepared, recipe, seed)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None

    def show(record: Any) -> None:
        if progress:
            err_console.print(f"epoch {record.epoch}/{recipe.epochs}: loss {record.train_loss:.4f} train {record.train_accuracy:.2f} % val {record.val_accuracy:.2f} % ({record.seconds:.1f} s)", highlight=False)

    try:
        trainer.run(on_epoch=show)
    except RuntimeError as exc:  # TrainingDivergedError: the recipe, not a bug
        raise _fail(str(exc).splitlines()[0]) from None
    result = trainer.result()
    _write_training(out, the_space, arch, data, seed, recipe, prepared, result, save_weights)
    console.print(result.line(), highlight=False)


def _inherited_trainer(init: str, space: Any, arch: Any, prepared: Any, recipe: Any, seed: int) -> Any:
    """A `Trainer` whose network is `arch` extracted from the supernet `init` names (`supernet:PATH`)."""
    from nas.accuracy.supernet.train import SupernetSettings, evaluate_subnet, load_supernet
    from nas.accuracy.training import Trainer, at_resolution, deterministic
    from nas.objectives import parse_spec
    from nas.spaces import OFAMobileNetV3Space

    kind, path = parse_spec(init)
    if kind != "supernet" or not path:
        raise ValueError(f"--init {init!r}: expected supernet:PATH")
    if not isinstance(space, OFAMobileNetV3Space):
        raise ValueError(f"--init supernet:PATH needs an OFA space (family ofa_mbv3), got space {space.name!r}")
    model, manifest = load_supernet(path, space, prepared.input_spec)
    settings = SupernetSettings.from_mapping(manifest.get("settings"), space)
    inherited = evaluate_subnet(model, arch, prepared, settings, recipe)
    err_console.print(f"inherited from {path}: validation accuracy {inherited:.2f} % before fine-tuning", highlight=False)
    with deterministic(recipe.threads):
        module = model.extract(arch)
    return Trainer(module, at_resolution(prepared, space.input_size(arch)), recipe, seed=seed)


def _write_training(out: Path, space: Any, arch: str, data: str, seed: int, recipe: Any, prepared: Any, result: Any, save_weights: Callable[..., None]) -> None:
    """Write weights, curve and recipe into a sibling folder, then move it to `out` (never half-written)."""
    import json
    import shutil
    import tempfile

    import pandas as pd

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_weights(result.state_dict, tmp / "weights.pt")
        pd.DataFrame([vars(r) for r in result.curve]).to_csv(tmp / "curve.csv", index=False)
        record = {
            "space": space.name, "arch": arch, "data": prepared.description, "seed": seed, "recipe": recipe.to_dict(),
            "input_spec": prepared.input_spec.describe(), "accuracy": result.accuracy, "test_accuracy": result.test_accuracy,
            "epochs": result.epochs, "seconds": result.seconds, "data_spec": data,
        }
        (tmp / "recipe.json").write_text(json.dumps(record, indent=2))
        if out.exists():
            out.rmdir()
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@app.command()
def worker(
    run_dir: Annotated[Path, typer.Argument(help="Run directory created by `nas search`; on another machine, a new directory for this worker's files (with --storage).")],
    storage: Annotated[Optional[str], typer.Option(help="The shared storage URL of a run started elsewhere (postgresql://...): its config is read from there.")] = None,
    progress: bool = True,
) -> None:
    """Join a run as one more worker: evaluates trials until the run's budget is spent."""
    from nas.run import Run, config_from_storage

    try:
        run = Run.open(run_dir, config_from_storage(storage, run_dir) if storage else None)
        _search_with_progress(run, progress)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None


@app.command()
def pareto(run_dir: Annotated[Path, typer.Argument(help="Run directory.")]) -> None:
    """Print the Pareto front of a run."""
    from nas.run import load_run

    try:
        run = load_run(run_dir)
        front = run.pareto()
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    _print_frame(front, f"Pareto front of {run_dir}: {len(front)} architectures")
    _print_estimate_notes(run.provenance())
    hv = run.hypervolume()
    if hv is not None:
        console.print(f"hypervolume (reference: worst of the whole table) = {hv:.6g}")
    if "accuracy_source" in front.columns:
        console.print(f"accuracy_source: label = true accuracy, predicted = {run.config.accuracy}; labels spent: {run.labels_spent()}")
    _print_training_notes(run)


@app.command("export")
def export_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="File to write (.pt2, .onnx or .so; added when missing); a JSON sidecar goes beside it.")],
    rank: Annotated[Optional[int], typer.Option(help="Place on the run's front, 1 = best (by the first objective; by reward/score/order in scalarized and lexicographic runs).")] = None,
    arch: Annotated[Optional[str], typer.Option(help="An architecture string of the run's space instead of --rank.")] = None,
    format: Annotated[str, typer.Option("--format", "-f", help="torch (torch.export program), onnx, or tvm (a compiled library for this CPU).")] = "onnx",
    threads: Annotated[int, typer.Option(help="Threads the export is timed with (1: as the LUTs were measured).")] = 1,
    lut: Annotated[Optional[list[str]], typer.Option("--lut", help="Also print this device's or LUT's predicted latency (e.g. epyc_zen5__onnxruntime); repeatable.")] = None,
    tune_trials: Annotated[Optional[int], typer.Option(help="TVM only: MetaSchedule trials per kernel the tuning database lacks [default: $NAS_TVM_TUNE_TRIALS or 0].")] = None,
) -> None:
    """Export one found network (with the run's weights where it has them), checked against PyTorch and timed here."""
    from nas.export import export_run

    try:
        result = export_run(run_dir, format, out, rank=rank, arch=arch, threads=threads, luts=lut or (), tune_trials=tune_trials)
    except _user_errors() as exc:
        raise _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)


@app.command("report")
def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="HTML file to write (one self-contained page, opens offline).")] = Path("report.html"),
    true_front: Annotated[bool, typer.Option(help="Price the whole space for the true front where it is listable and cheap.")] = True,
) -> None:
    """Write an HTML report of a run: front (hover for arch and metrics), hypervolume, front table, cost models, config."""
    from nas.report.html import write_report

    try:
        summary = write_report(run_dir, out, true_front=true_front)
    except _user_errors() as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    console.print(f"wrote {summary.path} ({summary.bytes / 1e6:.1f} MB): {summary.n_trials} trials, {summary.n_front} on the front", highlight=False, soft_wrap=True)


@app.command("plot")
def plot_command(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    kind: Annotated[str, typer.Option(help="pareto (trials, front, true front), hv (hypervolume over trials) or devices (the run's archs on several devices).")] = "pareto",
    out: Annotated[Path, typer.Option("--out", "-o", help="Figure to write: .png, .pdf or .svg.")] = Path("pareto.png"),
    device: Annotated[Optional[list[str]], typer.Option("--device", help="kind devices: a device to draw (repeatable) [default: every device with a latency source].")] = None,
) -> None:
    """Draw a static figure of a run (matplotlib) for papers and slides."""
    import warnings

    from nas.report.plots import plot_run

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            path = plot_run(run_dir, kind, out, devices=device or None)
    except _user_errors() as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    for warning in caught:
        err_console.print(f"note: {warning.message}", highlight=False, soft_wrap=True)
    console.print(f"wrote {path}", highlight=False)


@bench_app.command("front")
def bench_front(
    space: Annotated[str, typer.Option(help="Search space.")] = "nb201",
    dataset: Annotated[str, typer.Option(help="Dataset.")] = "cifar10",
    objectives: Annotated[str, typer.Option(help="e.g. accuracy:max,latency@raspi4:min")] = "accuracy:max,params:min",
    constraint: Annotated[Optional[list[str]], typer.Option("--constraint", "-c", help="e.g. 'latency@pixel3<=12'")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of benchmark tables.")] = None,
    csv: Annotated[Optional[Path], typer.Option(help="Also write the front to this CSV.")] = None,
) -> None:
    """The TRUE Pareto front of a whole benchmark table, and its hypervolume."""
    from nas.pareto import hypervolume
    from nas.run import RunConfig, front_of, reference_point, resolve_providers, space_table
    from nas.spaces import get_space

    try:
        config = RunConfig.from_mapping(
            {"space": space, "dataset": dataset, "objectives": objectives, "constraints": constraint or [], "data_dir": str(data_dir) if data_dir else None}
        )
        the_space = get_space(space)
        providers = resolve_providers(the_space, config)
        table = space_table(the_space, providers)
        objset = config.objective_set()
        front = front_of(table, objset)
        frame = front.frame()[["arch", *objset.metrics]]
        ref = reference_point(objset, providers, the_space)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    _print_frame(frame, f"True Pareto front of {space}/{dataset}: {len(frame)} of {len(table)} architectures")
    _print_estimate_notes({m: p.provenance() for m, p in providers.items()})
    if ref is not None:
        hv = hypervolume(front.points, ref)
        console.print(f"hypervolume = {hv:.6g} (reference point: worst {objset.names} of the table = {objset.from_minimisation(ref[None])[0].tolist()})")
    if csv is not None:
        frame.to_csv(csv, index=False)


@app.command("strategies")
def list_strategies() -> None:
    """List the search strategies and what each is good for."""
    from nas.strategies import strategies, strategy_options

    for name in strategies:
        opts = ", ".join(strategy_options(name)[:8])
        console.print(f"[bold]{name}[/]: {strategies.get(name).summary}" + (f"  [dim](options: {opts})[/]" if opts else ""))


@app.command("spaces")
def list_spaces() -> None:
    """List the search spaces defined in search_spaces/."""
    from nas.spaces import get_space, space_names

    for name in space_names():
        s = get_space(name)
        size = "uncountable" if s.size is None else (f"{s.size:,}" if s.size < 10**9 else f"{s.size:.3g}")
        console.print(f"[bold]{name}[/] ({type(s).__name__}, {size} archs): {getattr(s, 'description', '')}", soft_wrap=True)


@app.command("devices")
def list_devices(space: Annotated[str, typer.Option(help="Search space whose devices to list.")] = "nb201") -> None:
    """List the devices latency@DEVICE resolves for in a space (measured tables first, then LUTs)."""
    from nas.cost.lut import latency_devices, luts_dir
    from nas.cost.table import table_devices
    from nas.spaces import get_space
    from nas.tables import nb201_latency_file

    try:
        devices = latency_devices(get_space(space))
        tables = f"measured table {nb201_latency_file()}; " if table_devices(get_space(space).name) else ""
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"devices with a latency source for {space} ({tables}LUTs in {luts_dir()}):", soft_wrap=True)
    console.print(", ".join(devices) if devices else "none", soft_wrap=True)


@app.command("evaluators")
def list_evaluators() -> None:
    """List where metrics can come from (accuracy and costs), their tier, and the dataset specs."""
    from nas.data import SYNTAX
    from nas.objectives import evaluators
    from nas.run import providers  # noqa: F401  (registers every evaluator)

    for name in evaluators:
        e = evaluators.get(name)
        console.print(f"[bold]{e.syntax}[/] ({'/'.join(e.kinds)}, {e.tier.value}): {e.summary}", soft_wrap=True)
    console.print(f"datasets (train:DATA, nas train --data): {', '.join(SYNTAX)}", soft_wrap=True)


@lut_app.command("list")
def lut_list() -> None:
    """List the LUTs shipped in latency_luts/ with their validation figures (the sidecar holds them all)."""
    import pandas as pd

    from nas.cost.lut import LUT, luts_dir

    rows = []
    for path in sorted(luts_dir().glob("*.csv")):
        if path.name.endswith(".validation.csv"):  # per-arch tables written by `nas lut validate`
            continue
        try:
            lut = LUT.load(path)
        except _user_errors() as exc:
            err_console.print(f"[yellow]skipped[/] {path.name}: {exc}")
            continue
        for space in lut.spaces:
            rows.append({"lut": path.name, "device": lut.meta.get("device"), "backend": lut.meta.get("backend") or "-",
                         "kind": lut.meta.get("kind") or "-", "space": space, **_validation_columns(lut.validation(space))})
    if rows:
        _print_frame(pd.DataFrame(rows), f"LUTs in {luts_dir()} (validation on held-out networks)")
    else:
        console.print(f"no LUTs in {luts_dir()}")


def _validation_columns(figures: dict[str, Any]) -> dict[str, Any]:
    """One row's figures whichever kind wrote them: measured (`nas lut validate`) or fitted (`nas lut fit`)."""
    mape = figures.get("mape_pct", figures["mape"] * 100 if isinstance(figures.get("mape"), (int, float)) else None)
    return {
        "networks": figures.get("n_archs", figures.get("n", "-")),
        "within_10pct": figures.get("within_10pct", "-"),
        "mape_pct": "-" if mape is None else float(mape),
        "spearman": figures.get("spearman", "-"),
        "kendall": figures.get("kendall_tau", figures.get("kendall", "-")),
    }


@lut_app.command("fit")
def lut_fit(
    measurements: Annotated[Path, typer.Option(help="CSV(.gz) with an arch_str column and one latency column (ms) per device.")],
    device: Annotated[str, typer.Option(help="The column to fit a LUT for.")],
    out: Annotated[Path, typer.Option(help="LUT CSV to write (JSON sidecar beside it); rows of other spaces already there are kept.")],
    space: Annotated[str, typer.Option(help="Search space of the arch strings.")] = "nb201",
    samples: Annotated[Optional[int], typer.Option(help="Fit on this many random measured rows and validate on the other measured rows (default: fit on every measured row and estimate the error by cross-validation).")] = None,
    cv_folds: Annotated[Optional[int], typer.Option(help="Folds of that cross-validation (default: leave-one-out up to 20 measured rows, else 10).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the row sample and of the cross-validation.")] = 0,
    reference_devices: Annotated[str, typer.Option(help="Known devices to transfer from: all (every other column), none, or a comma list.")] = "all",
    method: Annotated[Optional[str], typer.Option(help="transfer, nnls or nnls+terms (default: transfer with references, else nnls+terms).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace this space's rows if OUT already has them.")] = False,
) -> None:
    """Fit a LUT from end-to-end measurements of K whole networks; report its cross-validated (or held-out) error.

    Rows whose --device cell is empty are not measurements: add your device's column to a table of
    reference devices, fill the rows you timed, and the others still teach the transfer fit.
    """
    from nas.cost.measurements import fit_from_measurements, read_measurements, reference_devices as pick_references, save_fitted
    from nas.spaces import get_space

    try:
        the_space = get_space(space)
        table = read_measurements(measurements, the_space)
        references = pick_references(table, device, reference_devices)
        report = fit_from_measurements(table, device, samples=samples, seed=seed, references=references, method=method, folds=cv_folds)
        path = save_fitted(report, out, the_space.name, overwrite=overwrite)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    v = report.validation
    if v["estimate"] == "cross-validated":
        line = f"{path}: {v['method']} LUT for {device} ({space}) from all K={v['k']} measured archs; {v['cv']['scheme']} cross-validated error: {_fit_figures(v)}"
        line += f"; in sample (optimistic): {_fit_figures(v['in_sample'])}"
        before = v["cv"].get("before_distillation")
    else:
        line = f"{path}: {v['method']} LUT for {device} ({space}) from K={v['k']} archs; held-out n={v['n']}: {_fit_figures(v)}"
        before = v.get("before_distillation")
    if before is not None:
        line += f" (transfer model before distillation: {_fit_figures(before)})"
    console.print(line, highlight=False, soft_wrap=True)


def _fit_figures(f: dict[str, Any]) -> str:
    """MAPE, share within +-10 % and, where the figures hold them (K >= 5), the rank correlations."""
    ranks = f"Spearman {f['spearman']:.4f}, Kendall {f['kendall']:.4f}, " if "spearman" in f else ""
    return f"{ranks}MAPE {f['mape']:.2%} (median {f['mdape']:.2%}), {f['within_10pct']:.0f} % within +-10 %"


@lut_app.command("predict")
def lut_predict(
    lut: Annotated[Path, typer.Option(help="LUT CSV (fitted or built).")],
    archs: Annotated[Path, typer.Option(help="CSV with an arch_str column, or a text file of one arch string per line.")],
    out: Annotated[Path, typer.Option(help="CSV to write: arch_str, latency_ms.")],
    space: Annotated[str, typer.Option(help="Search space of the arch strings.")] = "nb201",
) -> None:
    """Predict the latency of architectures with a LUT."""
    from nas.cost.lut import LUT
    from nas.cost.measurements import read_archs, write_predictions
    from nas.spaces import get_space

    try:
        the_space = get_space(space)
        table = LUT.load(lut)
        table.check_space(the_space)
        items = read_archs(archs, the_space)
        write_predictions(out, the_space, items, table.predict(the_space, items))
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(f"{out}: latency of {len(items)} archs from {lut}", highlight=False, soft_wrap=True)


supernet_app = typer.Typer(help="Once-for-All supernets: train one by progressive shrinking; score sub-networks with `--accuracy supernet:PATH`.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(supernet_app, name="supernet")


@supernet_app.command("train")
def supernet_train(
    out: Annotated[Path, typer.Option(help="Supernet directory (supernet.pt, phase_*.pt, manifest.json); an unfinished one resumes.")],
    space: Annotated[str, typer.Option(help="An OFA space: ofa_mbv3 (full size, for a GPU) or ofa_mbv3_small (a CPU on digits).")] = "ofa_mbv3_small",
    data: Annotated[str, typer.Option(help="Dataset: digits, npz:PATH, folder:PATH, cifar10:DIR, cifar100:DIR.")] = "digits",
    seed: Annotated[int, typer.Option(help="Seed of the weights, batches and sampled sub-networks.")] = 0,
    training_option: Annotated[Optional[list[str]], typer.Option("--training-option", help="Recipe KEY=VALUE (as `nas train`); epochs = epochs per phase.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Supernet option KEY=VALUE: phase_epochs={largest: 4, kernel: 2}, subnets_per_step=2, kd_ratio=1.0, calibration_batches=4.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar per phase.")] = True,
) -> None:
    """Train an OFA supernet by progressive shrinking (largest, elastic kernel, depth, expand ratio)."""
    from nas.accuracy.supernet.train import SupernetSettings, SupernetTrainer, phase_names
    from nas.accuracy.training import Recipe, load_prepared
    from nas.spaces import OFAMobileNetV3Space, get_space

    try:
        the_space = get_space(space)
        if not isinstance(the_space, OFAMobileNetV3Space):
            raise ValueError(f"space {space!r} is not an OFA space; expected a space of family ofa_mbv3 (ofa_mbv3, ofa_mbv3_small)")
        recipe = Recipe.from_mapping({"epochs": 5, "max_train": None, **(_parse_options(training_option, "--training-option", "lr=0.05") if training_option else {})})
        settings = SupernetSettings.from_mapping(_parse_options(option) if option else None, the_space)
        prepared = load_prepared(data, recipe)
        trainer = SupernetTrainer(the_space, prepared, recipe, settings, out, seed=seed, data_spec=data)
        names = phase_names(the_space)
        with _phase_bars(progress, names) as show:
            records = trainer.train(progress=show)
    except (*_user_errors(), RuntimeError) as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    for r in records:
        console.print(f"{r.phase}: {r.epochs} epochs, {r.seconds:.0f} s; largest {r.largest_accuracy:.2f} %, smallest {r.smallest_accuracy:.2f} % (validation, inherited weights)", highlight=False, soft_wrap=True)
    console.print(f"{out}: supernet of {the_space.name} on {data}; score sub-networks with --accuracy supernet:{out} (or supernet-predictor:{out})", highlight=False, soft_wrap=True)


@supernet_app.command("search")
def supernet_search(
    supernet: Annotated[Path, typer.Option(help="Supernet directory (`nas supernet train --out`).")],
    constraint: Annotated[str, typer.Option("--constraint", "-c", help="The cost bound, e.g. 'latency@epyc_zen5__onnxruntime<=0.5' or 'flops<=20'.")],
    space: Annotated[str, typer.Option(help="The supernet's OFA space.")] = "ofa_mbv3_small",
    dataset: Annotated[Optional[str], typer.Option(help="The space's reference dataset setting for LUT pricing (default: its first).")] = None,
    samples: Annotated[int, typer.Option(help="Sub-networks scored with inherited weights to fit the accuracy predictor (kept in the supernet directory).")] = 400,
    population: Annotated[int, typer.Option(help="Population size.")] = 100,
    generations: Annotated[int, typer.Option(help="Generations.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the search (and of the predictor).")] = 0,
) -> None:
    """The most accurate sub-network under a cost bound, in seconds: OFA-style evolution on the supernet's
    accuracy predictor and a known cost (LUT, counts), then the winner scored with inherited weights."""
    from nas.accuracy.supernet import SupernetAccuracy, SupernetPredictor
    from nas.objectives import Constraint
    from nas.run import RunConfig, resolve_provider
    from nas.spaces import get_space
    from nas.strategies import constrained_evolution

    try:
        the_space = get_space(space)
        bound = Constraint.parse(constraint)
        if bound.op not in ("<=", "<"):
            raise ValueError(f"constraint {constraint!r}: a cost bound is METRIC<=VALUE")
        config = RunConfig(space=space, dataset=dataset or next(iter(the_space.datasets)), objectives=[f"{bound.metric}:min"])
        cost = resolve_provider(bound.metric, the_space, config)
        if not cost.known:
            raise ValueError(f"{bound.metric} is not known before evaluation (tier {cost.tier.value}); the search needs a LUT, a table or a count")
        started = time.perf_counter()
        predictor = SupernetPredictor(the_space, supernet, samples=samples, seed=seed)
        fitted = time.perf_counter() - started
        result = constrained_evolution(the_space, predictor.evaluate, cost.evaluate, bound=bound.bound, population=population, generations=generations, seed=seed)
        inherited = float(SupernetAccuracy(the_space, supernet).evaluate([result.arch])[0])
    except (*_user_errors(), RuntimeError) as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    console.print(the_space.to_string(result.arch), highlight=False, soft_wrap=True)
    v = predictor.validation
    console.print(
        f"predicted accuracy {result.score:.2f} % (inherited {inherited:.2f} %), {bound.metric} {result.cost:.4g} <= {bound.bound:g}; "
        f"search {result.seconds:.1f} s ({result.generations} generations, {result.evaluated} candidates); predictor ready in {fitted:.1f} s "
        f"(held-out Spearman {v['spearman']:.3f} on {v['held_out']} sub-networks)",
        highlight=False, soft_wrap=True,
    )


@contextmanager
def _phase_bars(show: bool, phases: list[str]) -> Iterator[Callable[[str, int, int], None] | None]:
    """One rich progress bar per training phase, each filled as its epochs finish."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    if not show:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description:<9}"), BarColumn(), MofNCompleteColumn(), TextColumn("epochs"), TimeElapsedColumn(), console=err_console) as bar:
        tasks: dict[str, Any] = {}

        def update(phase: str, epoch: int, epochs: int) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=epochs)
            bar.update(tasks[phase], completed=epoch)

        yield update


hypernet_app = typer.Typer(help="Graph hypernetworks: train one over a space's cells; score any cell with `--accuracy ghn:PATH`.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(hypernet_app, name="hypernet")


@hypernet_app.command("train")
def hypernet_train(
    out: Annotated[Path, typer.Option(help="New GHN directory (ghn.pt, manifest.json), written whole at the end; must not exist or be empty.")],
    space: Annotated[str, typer.Option(help="An NB201-family space.")] = "nb201",
    data: Annotated[str, typer.Option(help="Dataset: digits, npz:PATH, folder:PATH, cifar10:DIR, cifar100:DIR.")] = "digits",
    steps: Annotated[int, typer.Option(help="Training steps (each: archs_per_step sampled cells on one batch); 600 took 7.5 minutes on digits at nb201's full network size on a shared 2-core machine (benchmarks/results/ghn.md).")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the GHN's weights, the sampled cells and the batches.")] = 0,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="GHN option KEY=VALUE: hidden=32, rounds=1, lr=0.003, batch_size=64, archs_per_step=4, channels and cells_per_stage (default: the space's network, 16 and 5 for nb201), max_train=500, input_size, threads=1, weight_decay, grad_clip.")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Train a graph hypernetwork that generates the weights of any cell's network of the space."""
    from rich.progress import Progress

    from nas.accuracy.hypernet import GHNSettings, train_ghn
    from nas.spaces import get_space

    try:
        the_space = get_space(space)
        settings = GHNSettings.from_mapping(_parse_options(option, example="hidden=64") if option else None)
        with Progress(console=err_console, disable=not progress) as bar:
            task = bar.add_task("GHN steps", total=steps)
            manifest = train_ghn(the_space, data, out, settings, steps=steps, seed=seed, progress=lambda done, total: bar.update(task, completed=done))
    except (*_user_errors(), RuntimeError) as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    t, v = manifest["training"], manifest["validation"]
    console.print(
        f"{steps} steps in {manifest['seconds']:.0f} s; training loss {t['first_loss']:.3f} -> {t['last_loss']:.3f}; validation accuracy with generated weights over {v['archs']} "
        f"sampled cells: mean {v['mean_accuracy']:.2f} %, min {v['min_accuracy']:.2f} %, max {v['max_accuracy']:.2f} %", highlight=False, soft_wrap=True,
    )
    console.print(f"{out}: GHN of {the_space.name} on {data}; score cells with --accuracy ghn:{out}", highlight=False, soft_wrap=True)


predictor_app = typer.Typer(help="Accuracy predictors: list them, and rank-correlate them on a benchmark table.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(predictor_app, name="predictor")


@predictor_app.command("list")
def predictor_list(space: Annotated[str, typer.Option(help="Space whose encodings to list.")] = "nb201") -> None:
    """Name the predictor models and the encodings each accepts."""
    from nas.accuracy.predictors import predictors
    from nas.spaces import get_space

    try:
        the_space = get_space(space)
        for name in predictors:
            spec = predictors.get(name)
            kinds = spec.encodings_for(the_space)
            console.print(f"[bold]{name}[/]: {spec.summary}  [dim](encodings: {', '.join(kinds)}; default {spec.default_encoding(the_space)})[/]", soft_wrap=True)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None


@predictor_app.command("eval")
def predictor_eval(
    model: Annotated[str, typer.Option(help="Predictor (see `nas predictor list`).")],
    space: Annotated[str, typer.Option(help="Search space.")] = "nb201",
    dataset: Annotated[str, typer.Option(help="Dataset of the accuracy table: cifar10, cifar100, imagenet.")] = "cifar10",
    encoding: Annotated[Optional[str], typer.Option(help="Encoding (default: the model's best for the space).")] = None,
    train_size: Annotated[int, typer.Option(help="Number of random training archs.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the split and of the model.")] = 0,
    data_dir: Annotated[Optional[Path], typer.Option(help="Folder of benchmark tables.")] = None,
) -> None:
    """Train on N random archs of the 200-epoch table; print Spearman and Kendall over all the others."""
    from nas.accuracy.predictors import from_table
    from nas.accuracy.predictors.evaluate import holdout_score
    from nas.spaces import get_space

    try:
        the_space = get_space(space)
        archs, y = from_table(the_space, dataset, data_dir=data_dir)
        score = holdout_score(model, the_space, archs, y, train_size=train_size, seed=seed, encoding=encoding)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    console.print(score.line(), highlight=False)




def _measure_errors() -> tuple[type[BaseException], ...]:
    from nas.cost.measure._fresh import MeasurementError

    return (*_user_errors(), MeasurementError)


@contextmanager
def _measure_progress(show: bool, description: str) -> Iterator[Callable[[int, int], None] | None]:
    """A rich progress bar, yielding the `progress(done, total)` callback of `build_lut`/`validate_lut`."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not show:
        yield None
        return
    columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn()]
    with Progress(*columns, console=err_console) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _timing_options(warmup: int | None, repeats: int | None, target_ms: float | None, statistic: str | None = None, clock: str | None = None) -> dict[str, Any]:
    if (warmup is not None and warmup < 0) or (repeats is not None and repeats < 1) or (target_ms is not None and target_ms <= 0):
        raise ValueError(f"need --warmup >= 0, --repeats >= 1, --target-ms > 0; got {warmup}, {repeats}, {target_ms}")
    given = {"warmup": warmup, "repeats": repeats, "target_s": None if target_ms is None else target_ms / 1000.0, "statistic": statistic, "clock": clock}
    return {k: v for k, v in given.items() if v is not None}


@lut_app.command("build")
def lut_build(
    out: Annotated[Path, typer.Option(help="LUT CSV to write, e.g. latency_luts/DEVICE__BACKEND.csv (JSON sidecar beside it).")],
    space: Annotated[str, typer.Option(help="Search space name or YAML definition.")] = "nb201",
    backend: Annotated[str, typer.Option(help="Measurement backend: torch, onnxruntime, ...")] = "torch",
    threads: Annotated[int, typer.Option(help="Intra-op threads (1 is the repeatable setting).")] = 1,
    processes: Annotated[int, typer.Option(help="Fresh processes, run one after another; figures are their median.")] = 3,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset setting of the space (input size, classes), e.g. cifar10.")] = None,
    device: Annotated[Optional[str], typer.Option(help="Device name for the sidecar (default: OUT's name before '__').")] = None,
    calibrate: Annotated[int, typer.Option(help="Also measure N random whole networks and fit a correction to them (0: none); validation never reuses them.")] = 0,
    calibration_model: Annotated[str, typer.Option(help="scale: intercept + one factor per operator type; offset: intercept + per-layer offset.")] = "scale",
    seed: Annotated[int, typer.Option(help="Seed of measurement order and calibration archs.")] = 0,
    warmup: Annotated[Optional[int], typer.Option(help="Warm-up calls before timing each operator [default: 10].")] = None,
    repeats: Annotated[Optional[int], typer.Option(help="Timed samples per operator and process [default: 200].")] = None,
    target_ms: Annotated[Optional[float], typer.Option(help="Duration of one timed sample (batched calls), ms [default: 0.5].")] = None,
    statistic: Annotated[Optional[str], typer.Option(help="Per-process summary of the samples: min (robust on a shared machine) or median [default: min].")] = None,
    clock: Annotated[Optional[str], typer.Option(help="thread (CPU time; ignores time preempted by other processes; 1 thread only), wall, or auto [default: auto].")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace this space's rows if OUT already has them.")] = False,
    all_layers: Annotated[bool, typer.Option(help="Price every operator PyTorch runs, even for a backend whose graph optimiser removes dead and constant ones and merges identical ones (default: what the backend leaves, its layer_options).")] = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Measure every operator of a space on this machine through a backend and write a LUT."""
    from nas.cost.build import build_lut, save_built
    from nas.cost.lut import LUT
    from nas.cost.measure import backends
    from nas.spaces import get_space

    try:
        backends.get(backend)
        the_space = get_space(space)
        timing = _timing_options(warmup, repeats, target_ms, statistic, clock)
        if out.exists() and not overwrite and the_space.name in LUT.load(out).spaces:
            raise ValueError(f"{out} already holds {the_space.name} rows; pass --overwrite to replace them or choose another --out")
        name = device or out.name.removesuffix(".gz").removesuffix(".csv").split("__")[0]
        with _measure_progress(progress, f"lut build {the_space.name}/{backend}") as update:
            lut = build_lut(
                the_space, backend, processes=processes, threads=threads, dataset=dataset, device=name, timing=timing,
                calibrate=calibrate, calibration_model=calibration_model, seed=seed, progress=update,
                layer_options={} if all_layers else None,
            )
        path = save_built(lut, out, overwrite=overwrite)
    except _measure_errors() as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    info = lut.meta["build"][the_space.name]
    console.print(f"{path}: {info['signatures']} operator signatures of {the_space.name} ({info['coverage']}) + intercept, {backend}, {threads} thread(s), {processes} processes, {info['seconds']} s", highlight=False, soft_wrap=True)
    if info.get("layer_options"):
        listed = ", ".join(k for k, v in info["layer_options"].items() if v)
        console.print(f"operators listed as {backend}'s graph optimiser leaves them ({listed}); --all-layers prices every one", highlight=False, soft_wrap=True)
    cal = lut.meta.get("calibration", {}).get(the_space.name)
    if cal:
        before, after = cal["before"], cal["after_in_sample"]
        factors = ", ".join(f"{op} x{v:.3f}" for op, v in cal["scales"].items()) or f"per layer {cal['per_layer_ms']:+.5f} ms"
        console.print(
            f"calibrated ({cal['model']}) on {cal['n_archs']} archs: intercept {cal['intercept_ms']:+.4f} ms, {factors}; "
            f"MAPE {before['mape_pct']:.1f} % -> {after['mape_pct']:.1f} %, within +-10 % {before['within_10pct']:.0f} % -> {after['within_10pct']:.0f} % (in sample)",
            highlight=False,
            soft_wrap=True,
        )
    console.print(f"validate it: nas lut validate {path} --space {space} --backend {backend}", highlight=False, soft_wrap=True)


@lut_app.command("validate")
def lut_validate(
    lut_path: Annotated[Path, typer.Argument(metavar="LUT", help="LUT CSV built on this machine.")],
    space: Annotated[str, typer.Option(help="Search space name or YAML definition.")] = "nb201",
    backend: Annotated[Optional[str], typer.Option(help="Backend to measure with (default: the LUT's).")] = None,
    archs: Annotated[int, typer.Option(help="Random architectures to measure end to end.")] = 50,
    seed: Annotated[int, typer.Option(help="Seed of the random architectures.")] = 0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (must match the LUT's).")] = 1,
    processes: Annotated[int, typer.Option(help="Fresh processes; each network's latency is their median.")] = 3,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset setting of the space (default: the LUT's).")] = None,
    warmup: Annotated[Optional[int], typer.Option(help="Warm-up calls before timing each network (default: as the LUT was built).")] = None,
    repeats: Annotated[Optional[int], typer.Option(help="Timed samples per network and process (default: as the LUT was built).")] = None,
    target_ms: Annotated[Optional[float], typer.Option(help="Duration of one timed sample, ms (default: as the LUT was built).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Measure random whole networks and compare with the LUT: MAPE, share within +-10 %, Spearman, Kendall."""
    from nas.cost.lut import LUT
    from nas.cost.measure import backends
    from nas.cost.validate import validate_lut, validation_path
    from nas.spaces import get_space

    try:
        lut = LUT.load(lut_path)
        name = backend or lut.meta.get("backend")
        if name is None:
            raise ValueError(f"LUT {lut_path} does not record its backend; pass --backend (known: {', '.join(backends.names())})")
        backends.get(name)
        the_space = get_space(space)
        timing = _timing_options(warmup, repeats, target_ms)
        with _measure_progress(progress, f"lut validate {the_space.name}/{name}") as update:
            result = validate_lut(lut, the_space, name, n_archs=archs, seed=seed, processes=processes, threads=threads, dataset=dataset, timing=timing, progress=update)
    except _measure_errors() as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    f = result.figures
    console.print(
        f"{lut_path} on {f['n_archs']} random {the_space.name} archs ({name}, {threads} thread(s), median of {processes} processes): "
        f"MAPE {f['mape_pct']:.2f} %, within +-10 %: {f['within_10pct']:.1f} %, Spearman {f['spearman']:.4f}, Kendall {f['kendall_tau']:.4f}, "
        f"bias {f['bias']:.3f}",
        highlight=False,
        soft_wrap=True,
    )
    console.print(f"figures stored in the sidecar; per-arch table: {validation_path(lut_path)}", highlight=False, soft_wrap=True)


def _print_held_out(figures: Mapping[str, Any], networks: str, tail: str = "") -> None:
    """One line of a LUT's held-out figures, as `nas lut calibrate` and `nas lut refit` report them."""
    console.print(
        f"held out on {networks}: MAPE {figures['mape_pct']:.2f} %, within +-10 %: {figures['within_10pct']:.1f} %, "
        f"Spearman {figures['spearman']:.4f}, bias {figures['bias']:.3f}{tail}",
        highlight=False,
        soft_wrap=True,
    )


@lut_app.command("refit")
def lut_refit(
    lut_path: Annotated[Path, typer.Argument(metavar="LUT", help="LUT CSV built with `nas lut build --calibrate N`.")],
    space: Annotated[str, typer.Option(help="Search space name or YAML definition.")] = "nb201",
    out: Annotated[Optional[Path], typer.Option(help="Write the refitted LUT here (default: replace LUT in place; the old calibration stays in the sidecar's history).")] = None,
) -> None:
    """Refit a LUT's calibration to the networks it recorded, as this `nas` lists their operators; nothing is measured.

    Held-out figures are recomputed from its per-network validation table when it has one.
    """
    import pandas as pd

    from nas._io import write_atomic
    from nas.cost.lut import LUT
    from nas.cost.validate import _layer_kwargs, _with_other_spaces, refit_calibration, revalidate_recorded, validation_path
    from nas.spaces import get_space

    try:
        lut = LUT.load(lut_path)
        the_space = get_space(space)
        layer_kwargs = _layer_kwargs(lut, the_space, None)
        result = refit_calibration(lut, the_space, **layer_kwargs)
        checked = None
        if validation_path(lut_path).is_file() and the_space.name in lut.meta.get("validation", {}):
            checked = revalidate_recorded(result, the_space, pd.read_csv(validation_path(lut_path), dtype={"arch": str}), **layer_kwargs)
        target = out or lut_path
        result.save(target)
        if checked is not None:
            write_atomic(validation_path(target), _with_other_spaces(validation_path(lut_path), checked.table, result, the_space).to_csv(index=False))
    except _measure_errors() as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    cal = result.meta["calibration"][the_space.name]
    console.print(
        f"{target}: refitted ({cal['model']}) to its {cal['n_archs']} recorded {the_space.name} networks: "
        f"within +-10 % {cal['after_in_sample']['within_10pct']:.0f} % (in sample); old calibration kept under history in the sidecar",
        highlight=False,
        soft_wrap=True,
    )
    if checked is not None:
        _print_held_out(checked.figures, f"its {checked.figures['n_archs']} recorded validation networks")


@lut_app.command("calibrate")
def lut_calibrate(
    lut_path: Annotated[Path, typer.Argument(metavar="LUT", help="LUT CSV built with `nas lut build`, here or on another machine.")],
    archs: Annotated[int, typer.Option(help="Random networks to measure here and refit the LUT to.")] = 10,
    space: Annotated[str, typer.Option(help="Search space name or YAML definition.")] = "nb201",
    backend: Annotated[Optional[str], typer.Option(help="Backend to measure with; must be the LUT's (default: the LUT's).")] = None,
    model: Annotated[str, typer.Option(help="types: a factor per operator type pulled towards a shared one; scale: one factor; affine: factor + constant.")] = "types",
    out: Annotated[Optional[Path], typer.Option(help="Write the calibrated LUT here (default: replace LUT in place; its old figures stay in the sidecar's history).")] = None,
    validate: Annotated[int, typer.Option(help="Then measure this many fresh networks and store the held-out figures (0: none).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the calibration networks (validation uses seed + 1).")] = 0,
    threads: Annotated[int, typer.Option(help="Intra-op threads (must match the LUT's).")] = 1,
    processes: Annotated[int, typer.Option(help="Fresh processes; each network's latency is their median.")] = 3,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset setting of the space (default: the LUT's).")] = None,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
) -> None:
    """Measure a few networks on this machine and refit a LUT measured elsewhere to them, keeping its old figures."""
    from nas._io import write_atomic
    from nas.cost.calibrate import calibrate_here
    from nas.cost.lut import LUT
    from nas.cost.measure import backends
    from nas.cost.validate import _with_other_spaces, validate_lut, validation_path
    from nas.spaces import get_space

    try:
        lut = LUT.load(lut_path)
        name = backend or lut.meta.get("backend")
        if name is None:
            raise ValueError(f"LUT {lut_path} does not record its backend; only a LUT built with `nas lut build` can be calibrated")
        backends.get(name)
        if validate < 0 or (validate == 1):
            raise ValueError(f"--validate must be 0 or at least 2 networks, got {validate}")
        the_space = get_space(space)
        with _measure_progress(progress, f"lut calibrate {the_space.name}/{name}") as update:
            result = calibrate_here(lut, the_space, name, n_archs=archs, model=model, seed=seed, processes=processes, threads=threads, dataset=dataset, progress=update)
        checked = None
        if validate:
            with _measure_progress(progress, f"lut validate {the_space.name}/{name}") as update:
                checked = validate_lut(result, the_space, name, n_archs=validate, seed=seed + 1, processes=processes, threads=threads, dataset=dataset, progress=update, save=False)
        target = out or lut_path
        result.save(target)  # only now, after every measurement succeeded: nothing half-written
        if checked is not None:
            write_atomic(validation_path(target), _with_other_spaces(validation_path(target), checked.table, result, the_space).to_csv(index=False))
    except _measure_errors() as exc:
        raise _fail(str(exc).splitlines()[0]) from None
    cal = result.meta["calibration"][the_space.name]
    before, after = cal["before"], cal["after_in_sample"]
    console.print(
        f"{target}: calibrated ({model}) on {cal['n_archs']} {the_space.name} networks measured here ({name}): "
        f"bias {before['bias']:.3f} -> {after['bias']:.3f}, within +-10 % {before['within_10pct']:.0f} % -> {after['within_10pct']:.0f} % (in sample); "
        f"old figures kept under history in the sidecar",
        highlight=False,
        soft_wrap=True,
    )
    if checked is not None:
        _print_held_out(checked.figures, f"{checked.figures['n_archs']} fresh networks", f"; per-network table: {validation_path(target)}")
    else:
        console.print(f"validate it on fresh networks: nas lut validate {target} --space {space}", highlight=False, soft_wrap=True)


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted; the run is saved and resumes with the same command")
        sys.exit(130)


if __name__ == "__main__":
    main()
