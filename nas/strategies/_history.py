"""The trial history a sampler reads at every ask, kept incrementally instead of rebuilt.

Why: a strategy's state is a function of the study's trials, so every worker and every resume agrees on
it; rebuilding it from all trials at every ask (validating every trial's params, three reads of the
storage per ask) made a table-backed search slower with every trial (evolution: 110 ms per trial at
1,500 trials). Optuna refuses writes to a finished trial, so each finished trial is read once: its
architecture, whether it counts (not interrupted), its objective row and constraint violation. Only the
unfinished trials (the one being asked, other workers' running ones, queued ones) are read again.

Strategies whose state is a fold over the history in trial order (RL's policy, evolution's elite archive)
fold the `settled` rows (no unfinished trial before them, so no later trial can land among them) once, and
treat the few rows after them as a tail; `epoch` changes when a row did land among rows already settled
(a trial finishing out of order past a stale unfinished one), and a fold then starts again.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch


@dataclass(frozen=True)
class History:
    """Completed trials as arrays: `archs`, `F` (`n x n_objectives`, minimised), `violation` (`n`, 0 = feasible).

    Read-only: a sampler's ledger hands the same object to every reader until a trial completes.
    """

    archs: list[Arch]
    F: np.ndarray
    violation: np.ndarray


@dataclass(frozen=True)
class TrialRecord:
    """What a sampler keeps of one trial.

    `mark` is the architecture `seen` counts (params, fixed params of a waiting trial, else the proposal
    mark), None for an interrupted trial; `row` the minimised objectives of a COMPLETE trial with finite
    values and a whole architecture `arch` (None otherwise), `violation` its total constraint violation.
    """

    number: int
    counted: bool
    mark: Arch | None
    arch: Arch | None
    row: np.ndarray | None
    violation: float


@dataclass(frozen=True)
class TrialView:
    """The study as one ask sees it: history, settled rows, and what `seen` and `step` need."""

    history: History
    #: Leading rows of `history` that no unfinished trial precedes (a fold may consume them for good).
    settled: int
    #: Changes when a completed trial landed among rows an earlier view called settled.
    epoch: int
    seen_finished: frozenset[Arch] | set[Arch]
    open_marks: tuple[Arch, ...]
    trials: Sequence[FrozenTrial]
    interrupted: tuple[int, ...]

    def seen(self) -> set[Arch]:
        """Every architecture proposed in the study, but those of interrupted trials (a fresh set)."""
        out = set(self.seen_finished)
        out.update(self.open_marks)
        return out

    def step(self, number: int) -> int:
        """Trials numbered below `number` that count (all but interrupted ones)."""
        below = bisect.bisect_left(self.trials, number, key=lambda t: t.number)
        return below - bisect.bisect_left(self.interrupted, number)


#: Epochs are unique in a process, so a fold never mistakes another ledger's epoch for its own.
_EPOCHS = itertools.count(1)


class TrialLedger:
    """Finished trials of one study, each parsed once, and the history built from them row by row."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._reset(None)

    def _reset(self, key: Any) -> None:
        self._key = key
        self._records: dict[int, TrialRecord] = {}
        self._seen: set[Arch] = set()
        self._interrupted: list[int] = []
        self._numbers: list[int] = []
        self._archs: list[Arch] = []
        self._F = np.zeros((0, 0))
        self._violation = np.zeros(0)
        self._history: History | None = None
        self._settled_high = 0  # most rows any view of this epoch called settled
        self._epoch = next(_EPOCHS)

    def refresh(self, study: Study, parse: Callable[[FrozenTrial, np.ndarray], TrialRecord]) -> TrialView:
        """Read the study once, parse the trials not seen finished before, return the view of this ask."""
        with self._lock:
            key = (study._storage, study._study_id)
            if self._key is None or self._key[0] is not key[0] or self._key[1] != key[1]:
                self._reset(key)
            signs = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])
            trials = study.get_trials(deepcopy=False)
            records = self._records
            open_records = []
            for t in trials:
                if t.number in records:
                    continue
                record = parse(t, signs)
                if t.state.is_finished():
                    self._add(record, len(signs))
                else:
                    open_records.append(record)
            first_open = min((r.number for r in open_records), default=None)
            settled = len(self._numbers) if first_open is None else bisect.bisect_left(self._numbers, first_open)
            self._settled_high = max(self._settled_high, settled)
            return TrialView(
                history=self.history(),
                settled=settled,
                epoch=self._epoch,
                seen_finished=self._seen,
                open_marks=tuple(r.mark for r in open_records if r.counted and r.mark is not None),
                trials=trials,
                interrupted=tuple(self._interrupted),
            )

    def _add(self, record: TrialRecord, n_objectives: int) -> None:
        self._records[record.number] = record
        if not record.counted:
            bisect.insort(self._interrupted, record.number)
        elif record.mark is not None:
            self._seen.add(record.mark)
        if record.row is None or record.arch is None:
            return
        at = bisect.bisect_left(self._numbers, record.number)
        n = len(self._numbers)
        if self._F.shape[1] != n_objectives:
            self._F = np.zeros((0, n_objectives))
        if n == len(self._F):  # grow the buffers geometrically: appending stays O(1) amortised
            self._F = np.concatenate([self._F, np.zeros((max(n, 64), n_objectives))])
            self._violation = np.concatenate([self._violation, np.zeros(max(n, 64))])
        self._F[at + 1 : n + 1] = self._F[at:n].copy()
        self._violation[at + 1 : n + 1] = self._violation[at:n].copy()
        self._F[at] = record.row
        self._violation[at] = record.violation
        self._numbers.insert(at, record.number)
        self._archs.insert(at, record.arch)
        self._history = None
        if at < self._settled_high:  # landed among rows a fold may have consumed: folds start again
            self._epoch = next(_EPOCHS)
            self._settled_high = 0

    def history(self) -> History:
        """Completed trials in trial-number order (the same read-only object until one is added)."""
        with self._lock:
            if self._history is None:
                n = len(self._numbers)
                F = self._F[:n].copy()
                violation = self._violation[:n].copy()
                F.flags.writeable = False
                violation.flags.writeable = False
                self._history = History(list(self._archs), F, violation)
            return self._history


__all__ = ["History", "TrialLedger", "TrialRecord", "TrialView"]
