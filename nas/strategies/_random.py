"""Random search without replacement: the baseline every strategy must beat."""

from __future__ import annotations

import numpy as np
from optuna.study import Study
from optuna.trial import FrozenTrial

from nas.spaces.base import Arch
from nas.strategies._base import ArchSampler


class RandomArchSampler(ArchSampler):
    """Uniform random architectures, never repeating one already in the study.

    Example:
        >>> import optuna
        >>> from nas.spaces import get_space
        >>> space = get_space("nb201")
        >>> sampler = RandomArchSampler(space, seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> trial = study.ask(fixed_distributions=sampler.infer_relative_search_space(study, None))
        >>> space.validate(trial.params) is not None
        True
    """

    def propose(self, study: Study, trial: FrozenTrial, rng: np.random.Generator) -> Arch:
        return self.random_unseen(rng, self.seen(study))
