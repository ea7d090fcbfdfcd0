"""The one-shot strategy lifecycle: train shared weights once, then hand the selected archs to the study.

Why a lifecycle and not a sampler's `propose`: one-shot search (DARTS, supernet evolution) spends its
cost up front, once per run, and ends with a handful of architectures. The search loop calls `prepare`
under the run's one-shot lock (so several workers train nothing twice and a resumed run reuses what a
killed one finished), enqueues the selected archs as waiting trials (`study.enqueue_trial`), and then
evaluates them like any other trial: same providers, same `record_trial`, same front.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from pathlib import Path

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch
from nas.strategies._base import ArchSampler

#: Where one-shot strategies keep their artefacts, inside the run directory.
ONESHOT_DIR = "oneshot"


class OneShotStrategy(ArchSampler):
    """Base class: subclasses implement `prepare(directory, log) -> [Arch, ...]`."""

    @abstractmethod
    def prepare(self, directory: Path, log: Callable[[str], None] | None = None) -> list[Arch]:
        """Train (or reload from `directory`) whatever the strategy shares and return the selected archs,
        in the order they should be evaluated. Must be idempotent: a second call after a finished one
        trains nothing, and one after a kill trains only what the kill left unfinished."""

    def artefacts(self, directory: Path, name: str) -> Path:
        """The strategy's artefact folder in the run directory (`RUN/oneshot/NAME`), created."""
        folder = Path(directory) / ONESHOT_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        raise RuntimeError(
            f"{type(self).__name__} proposes architectures only through prepare(); run it with nas search / Run.search, which enqueue them"
        )


__all__ = ["ONESHOT_DIR", "OneShotStrategy"]
