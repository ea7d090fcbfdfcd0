"""The `nas` command: search, pareto, bench, worker, and listings.

Every user error is printed as one line (`error: ...`) with a non-zero exit; tracebacks are for bugs.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import optuna
import typer
import yaml
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Hardware-aware neural architecture search: accurate AND cheap networks, as a Pareto front.", no_args_is_help=True, add_completion=False)
bench_app = typer.Typer(help="Query benchmark tables offline.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
lut_app = typer.Typer(help="Latency lookup tables: build on this machine, validate, fit from measurements, predict.", no_args_is_help=True)
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


def _parse_options(items: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r} must be KEY=VALUE, e.g. population_size=40")
        options[key.strip()] = yaml.safe_load(value)
    return options


def _print_frame(frame: Any, title: str) -> None:
    table = Table(title=title, show_lines=False)
    for column in frame.columns:
        table.add_column(str(column), overflow="fold")
    for row in frame.itertuples(index=False):
        table.add_row(*(f"{v:.4g}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


@app.command()
def search(
    config: Annotated[Optional[Path], typer.Argument(help="YAML config (keys: space, dataset, objectives, constraints, strategy, strategy_options, budget, seed, data_dir, storage); flags override it.")] = None,
    space: Annotated[Optional[str], typer.Option(help="Search space name (see `nas spaces`) or a YAML definition.")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="Dataset of the accuracy table: cifar10, cifar100, imagenet.")] = None,
    objectives: Annotated[Optional[str], typer.Option(help="Comma-separated METRIC:max|min, e.g. accuracy:max,latency@raspi4:min.")] = None,
    constraint: Annotated[Optional[list[str]], typer.Option("--constraint", "-c", help="Bound on a metric, e.g. 'latency@pixel3<=12' (repeatable).")] = None,
    strategy: Annotated[Optional[str], typer.Option(help="Search strategy (see `nas strategies`).")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Strategy option KEY=VALUE (repeatable).")] = None,
    budget: Annotated[Optional[int], typer.Option(help="Number of architectures to evaluate (in total, over resumes and workers).")] = None,
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
        run = Run.open(out, RunConfig.from_mapping(data))
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    _search_with_progress(run, progress)
    front = run.pareto()
    _print_frame(front, f"Pareto front: {len(front)} architectures ({out / 'pareto.csv'})")


def _search_with_progress(run: Any, show: bool) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    if not show:
        run.search()
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
            bar.update(task, completed=p.done, hv=hv, front=p.front_size)

        run.search(on_trial=update)


@app.command()
def worker(run_dir: Annotated[Path, typer.Argument(help="Run directory created by `nas search`.")], progress: bool = True) -> None:
    """Join a run as one more worker: evaluates trials until the run's budget is spent."""
    from nas.run import Run

    try:
        run = Run.open(run_dir)
    except _user_errors() as exc:
        raise _fail(str(exc)) from None
    _search_with_progress(run, progress)


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
    hv = run.hypervolume()
    if hv is not None:
        console.print(f"hypervolume (reference: worst of the whole table) = {hv:.6g}")


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
        console.print(f"[bold]{name}[/] ({type(s).__name__}, {s.size or 'infinite'} archs): {getattr(s, 'description', '')}")


@app.command("devices")
def list_devices() -> None:
    """List the devices with measured latency tables."""
    from nas.tables import NB201_DEVICES, find_data_dir

    where = find_data_dir()
    console.print(f"NB201 latency tables ({'found in ' + str(where) if where else 'data directory not found: pass --data-dir or set NAS_DATA_DIR'}):")
    console.print(", ".join(NB201_DEVICES))


@lut_app.command("list")
def lut_list() -> None:
    """List the LUTs shipped in latency_luts/ with their validation figures."""
    from nas.cost.lut import LUT, luts_dir

    for path in sorted(luts_dir().glob("*.csv")):
        try:
            lut = LUT.load(path)
        except _user_errors() as exc:
            err_console.print(f"[yellow]skipped[/] {path.name}: {exc}")
            continue
        figures = {s: lut.validation(s) for s in lut.spaces}
        console.print(f"[bold]{path.name}[/] device={lut.meta.get('device')} backend={lut.meta.get('backend')} kind={lut.meta.get('kind')} spaces={lut.spaces} validation={figures}")


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted; the run is saved and resumes with the same command")
        sys.exit(130)


if __name__ == "__main__":
    main()
