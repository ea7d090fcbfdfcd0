"""Active learning: a learned predictor as the accuracy of a search, refitted as labelled trials arrive.

Why: a search should run where no accuracy table covers the space. A true accuracy (a *label*, from a
measured accuracy evaluator: a benchmark table, a user's CSV, training on data) is the expensive part, so a
search spends at most `label_budget` of them and gives every other trial the predicted accuracy. The rule
that decides, for each trial in turn (`ActiveAccuracy.evaluate_trial`); "enters the front" means: feasible,
and weakly dominated by no completed feasible trial of the study at its stored metrics:

1. an arch labelled before in this study reuses that label (free);
2. while fewer than `initial_labels` labels were spent (or the predictor cannot fit yet), label it (`initial`);
3. else, while labels spent < `label_budget`:
   a. label it if it enters the front at its predicted mean (`front`): an unverified point on the front
      would both be reported and steer the strategy, so it is checked at once;
   b. exploration, paced: only while labels spent < initial + ceil((label_budget - initial) * trials
      started / budget), label it if it enters the front at mean + std (`optimistic`), or if its std is at
      least the 75th percentile of the last 25 predicted stds of the study (>= 8 of them: `uncertain`).
      Models without uncertainty (gbm) never explore. Pacing keeps labels for the later, better
      candidates: unpaced, a forest's exploration spent 40 labels by trial 45-140 of 200, and later
      over-estimated predictions reached the final front (`benchmarks/results/active_predictor.md`);
4. otherwise, or if the source has no label for it (a CSV without that arch), it keeps its prediction.

Why the state lives in the study: labels, their count and the stds seen are read back from the trials'
user attrs before every decision, so a resumed run or several workers continue from the same state (the
model is refitted, from every labelled trial of the study, whenever that set changed). Workers sharing
a run directory claim labels under a file lock, so the label budget holds for them too.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from nas._io import file_lock
from nas.objectives import EvaluatorError, MetricProvider, ObjectiveSet, ProviderRequest, Tier, TrialContext, evaluator_of
from nas.spaces.base import Arch, SearchSpace

#: Trial user attrs written by the active learner (`accuracy` is the label or the prediction).
ACCURACY_ATTR = "accuracy"
SOURCE_ATTR = "accuracy_source"
STD_ATTR = "accuracy_std"
PREDICTED_ATTR = "accuracy_predicted"
PREDICTED_STD_ATTR = "accuracy_predicted_std"
SPENT_ATTR = "label_spent"
REASON_ATTR = "label_reason"

def completed_metrics(trials: Sequence[FrozenTrial]) -> list[dict[str, float]]:
    """The stored metrics of every completed trial: what "enters the front" is judged against."""
    return [t.user_attrs["metrics"] for t in trials if t.state == TrialState.COMPLETE and "metrics" in t.user_attrs]


OPTION_KEYS = ("labels", "label_budget", "initial_labels")
DEFAULT_INITIAL_LABELS = 10
DEFAULT_LABEL_SHARE = 0.3
STD_WINDOW = 25
STD_MIN_SEEN = 8
STD_QUANTILE = 0.75


class ActiveLearningError(ValueError):
    """An accuracy spec or option that is invalid, or a trial that can be neither labelled nor predicted."""


def _models() -> list[str]:
    from nas.accuracy.predictors import predictors

    return predictors.names()


@dataclass(frozen=True)
class PredictorChoice:
    """The model and encoding of `predictor:MODEL[:ENCODING]` (the argument after `predictor:`).

    Example:
        >>> PredictorChoice.parse("rf:onehot")
        PredictorChoice(model='rf', encoding='onehot')
    """

    model: str
    encoding: str | None = None

    @classmethod
    def parse(cls, argument: str) -> PredictorChoice:
        model, _, encoding = argument.partition(":")
        if not model or ":" in encoding:
            raise ActiveLearningError(
                f"accuracy 'predictor:{argument}' does not parse; expected 'predictor:MODEL' or 'predictor:MODEL:ENCODING' with MODEL in {_models()}"
            )
        if model not in _models():
            raise ActiveLearningError(f"unknown predictor {model!r} in accuracy 'predictor:{argument}'; known: {', '.join(_models())}")
        return cls(model, encoding or None)


def check_label_spec(spec: object) -> str:
    """`spec` if it names a measured accuracy evaluator (`table`, `csv:PATH`, `train:DATA`); else one line."""
    try:
        evaluator = evaluator_of(spec, "accuracy")  # type: ignore[arg-type]
    except EvaluatorError as exc:
        raise ActiveLearningError(f"labels {spec!r}: {exc}") from None
    if evaluator.tier is not Tier.MEASURED:
        raise ActiveLearningError(f"labels {spec!r} are not measured accuracies; expected table, csv:PATH or train:DATA")
    return str(spec)


def _count(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ActiveLearningError(f"accuracy option {key} must be a non-negative integer, got {value!r}")
    return value


@dataclass(frozen=True)
class ActiveOptions:
    """The validated `accuracy_options` of a predictor-backed search.

    Keys: `labels` (a measured accuracy evaluator: `table` (default), `csv:PATH`, `train:DATA`),
    `label_budget` (default 30 % of the trial budget, at least `initial_labels`), `initial_labels`
    (default 10, at least the model's minimum); every other key is a parameter of the predictor (e.g.
    `n_estimators` for rf).

    Example:
        >>> o = ActiveOptions.parse({"label_budget": 40, "n_estimators": 50}, budget=200, model="rf")
        >>> o.labels, o.label_budget, o.initial_labels, o.params
        ('table', 40, 10, {'n_estimators': 50})
    """

    labels: str
    label_budget: int
    initial_labels: int
    params: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: Mapping[str, Any], *, budget: int, model: str) -> ActiveOptions:
        from nas.accuracy.predictors import predictors

        if not isinstance(options, Mapping):
            raise ActiveLearningError(f"accuracy_options must be a mapping, got {options!r}")
        estimator = predictors.get(model).estimator
        allowed = [p for p in inspect.signature(estimator.__init__).parameters if p != "self"]
        unknown = sorted(set(options) - set(OPTION_KEYS) - set(allowed))
        if unknown:
            raise ActiveLearningError(
                f"unknown accuracy option(s) {unknown}; expected {list(OPTION_KEYS)} or parameters of predictor {model!r}: {allowed}"
            )
        labels = check_label_spec(options.get("labels", "table"))
        minimum = estimator.min_samples_needed
        initial = _count(options, "initial_labels", max(DEFAULT_INITIAL_LABELS, minimum))
        if initial < minimum:
            raise ActiveLearningError(
                f"accuracy option initial_labels must be at least {minimum} (the fewest labels predictor {model!r} fits on), got {initial}"
            )
        label_budget = _count(options, "label_budget", max(initial, math.ceil(DEFAULT_LABEL_SHARE * budget)))
        if label_budget < initial:
            raise ActiveLearningError(f"accuracy option label_budget ({label_budget}) must be at least initial_labels ({initial})")
        params = {k: v for k, v in options.items() if k not in OPTION_KEYS}
        return cls(labels, label_budget, initial, params)


class ActiveAccuracy(MetricProvider):
    """Accuracy of a search from a predictor (`PredictorProvider`) fitted on the labels the search paid for.

    Tier `estimate`: most trials carry a prediction, so a strategy must not rank candidates by it before
    they are evaluated. `evaluate(archs)` gives the current model's predictions (NaN before it was
    fitted); the run calls `evaluate_trial`, which applies the labelling rule of this module and writes
    the decision into the trial's user attrs.

    Args:
        choice: model and encoding.
        space: the search space.
        labels: the measured accuracy evaluator that gives TRUE accuracy (NaN where it has none).
        objectives: the search's objectives and constraints (for the front rule).
        options: label budget, initial labels, model parameters.
        budget: the search's trial budget (paces exploration labels).
        seed: `random_state` of the model unless `options.params` sets one.

    Example:
        >>> from nas.spaces import get_space
        >>> from nas.accuracy.tables import table_accuracy
        >>> space = get_space("nb201")
        >>> objs = ObjectiveSet.parse("accuracy:max,params:min")
        >>> opts = ActiveOptions.parse({"label_budget": 20, "n_estimators": 20}, budget=50, model="rf")
        >>> acc = ActiveAccuracy(PredictorChoice("rf"), space, table_accuracy(space, "cifar10"), objs, opts, budget=50)
        >>> acc.tier.value, acc.min_labels
        ('estimate', 2)
    """

    metric = "accuracy"
    tier = Tier.ESTIMATE

    def __init__(
        self,
        choice: PredictorChoice,
        space: SearchSpace,
        labels: MetricProvider,
        objectives: ObjectiveSet,
        options: ActiveOptions,
        *,
        budget: int,
        seed: int | None = 0,
    ) -> None:
        from nas.accuracy.predictors import PredictorProvider, predictors

        self.choice = choice
        self.space = space
        self.labels = labels
        self.input_spec = labels.input_spec
        self.objectives = objectives
        self.options = options
        if budget < 1:
            raise ActiveLearningError(f"ActiveAccuracy needs a trial budget >= 1, got {budget}")
        self.budget = budget
        self.seed = seed
        estimator = predictors.get(choice.model).estimator
        self.min_labels: int = estimator.min_samples_needed
        self.model = PredictorProvider(choice.model, space, encoding=choice.encoding, min_train=self.min_labels, seed=seed, **options.params)
        self.encoding: str = self.model.encoding
        self.gives_std: bool = bool(self.model.pipeline.named_steps["model"]._gives_std())
        self._check_params()
        self._labels: dict[str, float] = {}

    def _check_params(self) -> None:
        """Fit a copy once on a few random archs, so bad model parameters fail before the search starts."""
        from sklearn.base import clone

        rng = np.random.default_rng(0)
        archs = list(dict.fromkeys(self.space.sample(rng) for _ in range(max(self.min_labels, 4))))
        try:
            clone(self.model.pipeline).fit(archs, rng.random(len(archs)))
        except Exception as exc:  # any estimator error here is a bad parameter value
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ActiveLearningError(f"predictor {self.choice.model!r} rejects accuracy options {self.options.params}: {message}") from None

    # --- state read back from the study -----------------------------------------------------------
    def _arch_string(self, trial: FrozenTrial) -> str:
        return trial.user_attrs.get("arch") or self.space.to_string(self.space.validate(trial.params))

    def stored_labels(self, trials: Sequence[FrozenTrial]) -> dict[str, float]:
        """Arch string -> true accuracy for every labelled trial of the study, in trial order."""
        out: dict[str, float] = {}
        for t in trials:
            value = t.user_attrs.get(ACCURACY_ATTR)
            if t.user_attrs.get(SOURCE_ATTR) == "label" and isinstance(value, (int, float)) and math.isfinite(value):
                out.setdefault(self._arch_string(t), float(value))
        return out

    @staticmethod
    def labels_spent(trials: Sequence[FrozenTrial]) -> int:
        """Labels claimed by trials of the study (in any state: a claimed label was paid for)."""
        return sum(1 for t in trials if t.user_attrs.get(SPENT_ATTR) is True)

    def sync(self, trials: Sequence[FrozenTrial]) -> None:
        """Read the study's labels; the model refits when they changed and there are enough of them."""
        labels = self.stored_labels(trials)
        if labels != self._labels:
            self._labels = labels
            self.model.set_labels([self.space.from_string(s) for s in labels], np.fromiter(labels.values(), dtype=float, count=len(labels)))

    @property
    def fitted(self) -> bool:
        return self.model.ready

    # --- predictions ------------------------------------------------------------------------------
    def evaluate(self, archs: Sequence[Arch]) -> np.ndarray:
        """Predicted accuracy per arch (`n_archs`) from the last fit; NaN before the first."""
        return self.model.evaluate(archs)

    def predict_one(self, arch: Arch) -> tuple[float, float]:
        """(mean, std) for one arch; std is NaN for models without uncertainty, both NaN before a fit."""
        if not self.gives_std:
            return float(self.model.evaluate([arch])[0]), math.nan
        mean, std = self.model.evaluate_with_std([arch])
        return float(mean[0]), float(std[0])

    # --- the labelling rule -----------------------------------------------------------------------
    def enters_front(self, candidate: Mapping[str, float], trials: Sequence[FrozenTrial]) -> bool:
        """`ObjectiveSet.enters_front` against the completed trials at their stored metrics (accuracy =
        label or prediction)."""
        return self.objectives.enters_front(candidate, completed_metrics(trials))

    @staticmethod
    def recent_stds(trials: Sequence[FrozenTrial]) -> np.ndarray:
        """Predicted stds of the last `STD_WINDOW` trials that had one (labelled or not), oldest first."""
        stds = [t.user_attrs.get(STD_ATTR, t.user_attrs.get(PREDICTED_STD_ATTR)) for t in trials]
        return np.array([s for s in stds if isinstance(s, (int, float)) and math.isfinite(s)][-STD_WINDOW:], dtype=float)

    def uncertain(self, std: float, trials: Sequence[FrozenTrial]) -> bool:
        if not math.isfinite(std):
            return False
        seen = self.recent_stds(trials)
        return len(seen) >= STD_MIN_SEEN and std >= float(np.quantile(seen, STD_QUANTILE))

    def paced_allowance(self, n_trials: int) -> int:
        """Labels exploration may have spent once `n_trials` trials started: the initial ones plus the
        rest of the label budget in proportion to the trial budget."""
        initial, budget = self.options.initial_labels, self.options.label_budget
        return initial + math.ceil((budget - initial) * min(1.0, n_trials / self.budget))

    def reason_to_label(self, mean: float, std: float, others: Mapping[str, float], trials: Sequence[FrozenTrial]) -> str | None:
        """`initial`, `front`, `optimistic`, `uncertain`, or None (keep the prediction), by the module's rule."""
        spent = self.labels_spent(trials)
        if spent < self.options.initial_labels or not self.fitted:
            return "initial" if spent < self.options.label_budget else None
        if spent >= self.options.label_budget:
            return None
        if self.enters_front({**others, self.metric: mean}, trials):
            return "front"
        if not math.isfinite(std) or spent >= self.paced_allowance(len(trials)):
            return None
        if self.enters_front({**others, self.metric: mean + std}, trials):
            return "optimistic"
        if self.uncertain(std, trials):
            return "uncertain"
        return None

    def _claim_and_label(self, arch: Arch, context: TrialContext) -> float | None:
        """Spend one label on the trial if the budget still allows (checked under the lock); its true
        value, or None when the budget is gone or the source has no value for `arch` (then nothing is
        spent). A label is a full evaluation: no pruner stops it."""
        study, trial = context.study, context.trial
        with file_lock(context.lock):
            if self.labels_spent(study.get_trials(deepcopy=False)) >= self.options.label_budget:
                return None
            trial.set_user_attr(SPENT_ATTR, True)
        try:
            value = float(self.labels.evaluate_trial(arch, dataclasses.replace(context, pruning=False))[self.metric])
        except (KeyboardInterrupt, SystemExit, optuna.TrialPruned):
            trial.set_user_attr(SPENT_ATTR, False)  # interrupted before a label came back: not spent
            raise
        if not math.isfinite(value):
            trial.set_user_attr(SPENT_ATTR, False)
            return None
        return value

    def evaluate_trial(self, arch: Arch, context: TrialContext) -> dict[str, float]:
        """The accuracy of the trial (label or prediction) by the module's rule; writes the user attrs
        `accuracy`, `accuracy_source`, `accuracy_std` / `accuracy_predicted[_std]`, `label_spent`,
        `label_reason`. `context.metrics` must hold every other objective and constraint metric.

        Raises:
            ActiveLearningError: no label for `arch` and no fitted predictor yet.
        """
        study, trial = context.study, context.trial
        trials = study.get_trials(deepcopy=False)
        self.sync(trials)
        key = self.space.to_string(arch)
        if key in self._labels:
            return self._record(trial, {SOURCE_ATTR: "label", ACCURACY_ATTR: self._labels[key], REASON_ATTR: "reused"})
        mean, std = self.predict_one(arch)
        reason = self.reason_to_label(mean, std, context.metrics, trials)
        if reason is not None:
            value = self._claim_and_label(arch, context)
            if value is not None:
                attrs: dict[str, Any] = {SOURCE_ATTR: "label", ACCURACY_ATTR: value, REASON_ATTR: reason}
                if math.isfinite(mean):
                    attrs[PREDICTED_ATTR] = mean
                if math.isfinite(std):
                    attrs[PREDICTED_STD_ATTR] = std
                return self._record(trial, attrs)
        if not math.isfinite(mean):
            spent = self.labels_spent(trials)
            raise ActiveLearningError(
                f"no accuracy for {key}: label source {self.options.labels!r} has none for it"
                f" (labels spent {spent} of {self.options.label_budget})"
                f" and predictor {self.choice.model!r} has {len(self._labels)} of the {self.min_labels} labels it needs"
            )
        attrs = {SOURCE_ATTR: "predicted", ACCURACY_ATTR: mean}
        if math.isfinite(std):
            attrs[STD_ATTR] = std
        return self._record(trial, attrs)

    def _record(self, trial: Trial, attrs: Mapping[str, Any]) -> dict[str, float]:
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        return {self.metric: float(attrs[ACCURACY_ATTR])}

    # --- reporting --------------------------------------------------------------------------------
    def reference_values(self, space: Any) -> np.ndarray | None:
        """The label source's (a table covering the space gives the space's worst accuracy)."""
        return self.labels.reference_values(space)

    def provenance(self) -> dict[str, Any]:
        return {
            **super().provenance(),
            "model": self.choice.model,
            "encoding": self.encoding,
            "labels": self.labels.provenance(),
            "label_budget": self.options.label_budget,
            "initial_labels": self.options.initial_labels,
            "seed": self.seed,
        }

    def pins(self) -> dict[str, Any]:
        return self.labels.pins()


def active_accuracy(request: ProviderRequest) -> ActiveAccuracy:
    """`predictor:MODEL[:ENCODING]` of a run: the `ActiveAccuracy` its `accuracy_options` describe.

    Every input is checked here (model, encoding, options, the label source and its file), so a run
    can refuse a bad config before it writes anything.
    """
    choice = PredictorChoice.parse(request.argument)
    if request.objectives is None or "accuracy" not in request.objectives.metrics:
        raise ActiveLearningError(f"accuracy {request.spec!r} needs an objective or constraint on accuracy")
    parsed = ActiveOptions.parse(request.options, budget=request.budget, model=choice.model)
    if request.resolve is None:
        raise ActiveLearningError("predictor accuracy needs a way to build its label source (ProviderRequest.resolve)")
    labels = request.resolve(parsed.labels, "accuracy")
    return ActiveAccuracy(choice, request.space, labels, request.objectives, parsed, budget=request.budget, seed=request.seed)


def label_budget_of(options: Mapping[str, Any], *, spec: str, budget: int) -> int:
    """The label budget a predictor-backed search may spend."""
    _, _, argument = spec.partition(":")
    return ActiveOptions.parse(options, budget=budget, model=PredictorChoice.parse(argument).model).label_budget


def trains_labels(options: Mapping[str, Any]) -> bool:
    """Whether the labels of a predictor-backed search come from training (`labels=train:DATA`)."""
    return str(options.get("labels", "table")).startswith("train")


__all__ = [
    "ActiveAccuracy",
    "ActiveLearningError",
    "ActiveOptions",
    "PredictorChoice",
    "active_accuracy",
    "check_label_spec",
    "label_budget_of",
    "trains_labels",
]
