"""nas: hardware-aware neural architecture search.

`import nas` stays light: heavy modules (torch, optuna, tables) load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from nas.run import Run


def load_run(directory: Any) -> Run:
    """Open a finished or running search: `nas.load_run("runs/demo").pareto()` is a DataFrame."""
    from nas.run import load_run as _load_run

    return _load_run(directory)


def true_front(config: Any) -> Any:
    """The true Pareto front of a config's objectives over its whole space: see `nas.run.true_front`."""
    from nas.run import true_front as _true_front

    return _true_front(config)


def __getattr__(name: str) -> Any:
    if name in ("Run", "RunConfig"):
        import nas.run

        return getattr(nas.run, name)
    if name in ("tables", "pareto", "spaces", "objectives", "strategies", "run", "cost", "accuracy", "export", "report"):
        import importlib

        return importlib.import_module(f"nas.{name}")
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = ["Run", "RunConfig", "__version__", "load_run", "true_front"]
