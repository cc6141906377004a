"""The pruning mirror's rules: Optuna's pruners deciding on the mirror's in-memory trials.

Each rule decides exactly as the Optuna pruner it stands for (the same checks, in the same
order, with Optuna's own helpers from :mod:`fcnn_opt.store.optuna_internals`), but keeps
what it decides on in memory, updated once per finished trial, instead of reading the study
at every epoch. :func:`rule_for` picks the rule for a study's pruner:

- :class:`PercentileRule`: ``PercentilePruner`` and ``MedianPruner`` (a 50 % percentile);
- :class:`RungRule`: ``SuccessiveHalvingPruner``, whose rung values are written under
  Optuna's own attribute names when a trial ends;
- :class:`BracketRule`: ``HyperbandPruner``, one successive halving per bracket, each trial
  in the bracket Optuna assigns it.

Other mirrorable pruners (patient, Wilcoxon, none) have no rule: the mirror's in-memory copy
of the study lets the pruner itself decide (see :class:`fcnn_opt.search.mirror.PruningMirror`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Protocol

from fcnn_opt.store import optuna_internals as internals

if TYPE_CHECKING:
    import optuna


class RuleSubject(Protocol):
    """What a rule reads and keeps on the reporter of the trial it decides on
    (:class:`fcnn_opt.search.mirror.MirrorReporter` is one)."""

    trial: optuna.Trial
    history: dict[int, float]  # every value reported, by step
    best: float  # the best value so far (NaN before any)
    last_step: int  # the highest step reported
    rungs: dict[int, float]  # successive halving: the value at each rung passed

    def store_system(self, attrs: dict[str, Any]) -> None:
        """Keep system attributes, written with the trial's records when it ends."""


class PruneRule(ABC):
    """An in-memory pruning rule: told of every finished trial, asked at every report."""

    @abstractmethod
    def add_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        """Count a finished trial of the study, read from the storage (another worker's)."""

    @abstractmethod
    def add_finished(self, reporter: RuleSubject, state: optuna.trial.TrialState) -> None:
        """Count a trial this process ran, once it is told ``state``."""

    @abstractmethod
    def decide(self, reporter: RuleSubject, value: float, step: int) -> bool:
        """Whether to prune the reporter's trial, which just reported ``value`` at ``step``."""


def rule_for(study: optuna.Study) -> PruneRule | None:
    """The in-memory rule for the study's pruner, or None (then the copy's pruner decides)."""
    maximize = study.direction.name == "MAXIMIZE"
    if internals.is_hyperband(study.pruner):
        return BracketRule(study, maximize)
    percentile = internals.percentile_settings(study.pruner)
    if percentile is not None:
        return PercentileRule(percentile, maximize)
    rungs = internals.rung_settings(study.pruner)
    return RungRule(rungs, maximize) if rungs is not None else None


class PercentileRule(PruneRule):
    """Optuna's PercentilePruner (MedianPruner is one) deciding on the mirror's completed trials,
    with each step's percentile computed once per change of that step's values instead of
    from every completed trial at every call. Its checks, in Optuna's order and with Optuna's
    own helpers: startup trials, warmup steps, interval, the trial's best value so far against
    the percentile of the completed trials' values at this step (NaN: not enough of them)."""

    def __init__(self, settings: internals.PercentileSettings, maximize: bool):
        self.settings, self.maximize = settings, maximize
        self.values: dict[int, list[float]] = {}
        self.n_complete = 0
        self._percentile: dict[int, float] = {}

    def add_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        """Count a finished trial of the study (its values, if it completed)."""
        if trial.state.name == "COMPLETE":
            self.add_complete(trial.intermediate_values)

    def add_finished(self, reporter: RuleSubject, state: optuna.trial.TrialState) -> None:
        """Count a trial this process ran, once it is told."""
        if state.name == "COMPLETE":
            self.add_complete(reporter.history)

    def decide(self, reporter: RuleSubject, value: float, step: int) -> bool:
        """Whether to prune the reporter's trial, which just reported ``value`` at ``step``."""
        if not math.isnan(value):  # the best so far ignores NaN, as Optuna's nanmin/nanmax do
            best = reporter.best
            reporter.best = value if math.isnan(best) else (max if self.maximize else min)(best, value)
        reporter.last_step = max(reporter.last_step, step)
        return self.prune(reporter.history, reporter.best, reporter.last_step)

    def add_complete(self, intermediate: dict[int, float]) -> None:
        """Count a completed trial's values, step by step."""
        self.n_complete += 1
        for step, value in intermediate.items():
            self.values.setdefault(step, []).append(value)
            self._percentile.pop(step, None)

    def prune(self, intermediate: dict[int, float], best: float, step: int) -> bool:
        """The decision for a trial whose values are ``intermediate``, the best of them ``best``
        and the newest at ``step`` (the highest step: values come epoch after epoch)."""
        s = self.settings
        if self.n_complete == 0 or self.n_complete < s.n_startup_trials or not intermediate:
            return False
        if step < s.n_warmup_steps:
            return False
        # With an interval of 1, every step above all earlier ones is the first of its interval.
        if s.interval_steps > 1 and not internals.is_first_in_interval_step(
                step, intermediate.keys(), s.n_warmup_steps, s.interval_steps):
            return False
        if math.isnan(best):
            return True
        threshold = self._percentile.get(step)
        if threshold is None:
            threshold = self._percentile[step] = self._threshold(step)
        if math.isnan(threshold):
            return False
        return best < threshold if self.maximize else best > threshold

    def _threshold(self, step: int) -> float:
        import numpy as np

        values = np.array(self.values.get(step, []), dtype=float)
        # All NaN: NaN, as np.nanpercentile gives, without its warning (as Optuna 5.1 does).
        if len(values) < self.settings.n_min_trials or np.isnan(values).all():
            return math.nan
        q = 100 - self.settings.percentile if self.maximize else self.settings.percentile
        return float(np.nanpercentile(values, q))


class RungRule(PruneRule):
    """Optuna's SuccessiveHalvingPruner deciding on the mirror's trials.

    At each rung (``min_resource * reduction_factor ** (min_early_stopping_rate + rung)``
    epochs) a trial goes on only if its value there is among the best ``1 / reduction_factor``
    of every value recorded at that rung, its own included (of fewer than
    ``reduction_factor`` values: only if it is the best). Optuna records each trial's value
    at each rung it reached as a system attribute; here the values of each rung are kept in
    memory, and a trial's rungs are written under the same attribute names when it ends (so a
    trial still running in another process counts here once it has ended)."""

    def __init__(self, settings: internals.RungSettings, maximize: bool):
        self.settings, self.maximize = settings, maximize
        self.values: dict[int, list[float]] = {}  # rung -> values recorded there

    def add_rungs(self, rungs: dict[int, float]) -> None:
        """Count a trial's value at each rung it reached."""
        for rung, value in rungs.items():
            self.values.setdefault(rung, []).append(value)

    def add_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        """Count a finished trial's rungs, as Optuna stored them."""
        self.add_rungs(rungs_of(trial))

    def add_finished(self, reporter: RuleSubject, state: optuna.trial.TrialState) -> None:
        """Count the rungs a trial this process ran reached."""
        self.add_rungs(reporter.rungs)

    def decide(self, reporter: RuleSubject, value: float, step: int) -> bool:
        """Whether the trial stops at a rung its ``step`` reached (False between rungs)."""
        s = self.settings
        rung = len(reporter.rungs)
        while step >= s.min_resource * s.reduction_factor ** (s.min_early_stopping_rate + rung):
            if math.isnan(value):
                return True
            reporter.rungs[rung] = value
            reporter.store_system({internals.rung_key(rung): value})
            competing = sorted(self.values.get(rung, []) + [value], reverse=self.maximize)
            if len(competing) <= s.bootstrap_count:
                return True
            keep = max(len(competing) // s.reduction_factor - 1, 0)  # the index of the last one kept
            if (value < competing[keep]) if self.maximize else (value > competing[keep]):
                return True
            rung += 1
        return False


def rungs_of(trial: optuna.trial.FrozenTrial) -> dict[int, float]:
    """A finished trial's value at each rung it reached, as Optuna's successive halving records them."""
    rungs, rung = {}, 0
    while internals.rung_key(rung) in trial.system_attrs:
        rungs[rung] = trial.system_attrs[internals.rung_key(rung)]
        rung += 1
    return rungs


class BracketRule(PruneRule):
    """Optuna's HyperbandPruner deciding on the mirror's trials.

    Each trial's bracket is Optuna's own (a hash of the study's name and the trial's number),
    and that bracket's successive halving (a :class:`RungRule` whose first rung is the
    bracket's) decides on the trials of the same bracket, as Optuna's does on its bracket's
    view of the study. As in Optuna, nothing is pruned before the pruner knows its largest
    resource (with ``max_resource="auto"``: once a trial has completed)."""

    def __init__(self, study: optuna.Study, maximize: bool):
        self.study, self.maximize = study, maximize
        self.rules: list[RungRule] | None = None  # one per bracket, once the brackets exist
        self.complete_seen = False
        self._early: list[tuple[int, dict[int, float]]] = []  # (number, rungs) finished before them

    def _ready(self) -> bool:
        if self.rules is None:
            settings = internals.hyperband_brackets(self.study.pruner, self.study, self.complete_seen)
            if settings is None:
                return False
            self.rules = [RungRule(bracket, self.maximize) for bracket in settings]
            for number, rungs in self._early:
                self._rule(number).add_rungs(rungs)
            self._early = []
        return True

    def _rule(self, number: int) -> RungRule:
        assert self.rules is not None
        return self.rules[internals.hyperband_bracket(self.study.pruner, self.study, number)]

    def _add(self, number: int, rungs: dict[int, float], state: optuna.trial.TrialState) -> None:
        self.complete_seen = self.complete_seen or state.name == "COMPLETE"
        if self.rules is None:
            if rungs:
                self._early.append((number, rungs))
        else:
            self._rule(number).add_rungs(rungs)

    def add_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        """Count a finished trial's rungs in its bracket."""
        self._add(trial.number, rungs_of(trial), trial.state)

    def add_finished(self, reporter: RuleSubject, state: optuna.trial.TrialState) -> None:
        """Count the rungs a trial this process ran reached, in its bracket."""
        self._add(reporter.trial.number, reporter.rungs, state)

    def decide(self, reporter: RuleSubject, value: float, step: int) -> bool:
        """Its bracket's successive halving decides (never before the brackets are known)."""
        if not self._ready():
            return False
        return self._rule(reporter.trial.number).decide(reporter, value, step)
