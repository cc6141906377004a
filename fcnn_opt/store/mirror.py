"""The pruning mirror: an in-memory copy of a study on which pruning is decided and trials drawn.

The plain way to report a trial is ``trial.report`` + ``trial.should_prune`` every epoch
(:class:`fcnn_opt.search.objective.TrialReporter`), used inside anyone's ``study.optimize``
and whenever Optuna's private names are unavailable (see :mod:`fcnn_opt.store.optuna_internals`).

:class:`PruningMirror` is what fcnn_opt's own runner uses otherwise. On SQLite every
``should_prune`` re-reads the whole study (~6 ms) and every ``report`` is a commit, which
cost far more than training a small network. The mirror keeps an in-memory copy of the
study's finished trials; the study's own pruner decides on that copy, which holds the same
values, so the decisions are the same. Each trial's intermediate values and attributes are
then written to the real storage in one transaction when it ends, before it is told, so
pruners, plots and optuna-dashboard see every epoch's value.

Successive halving is decided here too (:class:`RungRule`), with the rung values it stores
written under Optuna's own attribute names, and so is Hyperband (:class:`BracketRule`: one
successive halving per bracket, each trial in the bracket Optuna assigns it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fcnn_opt.store import optuna_internals as internals

if TYPE_CHECKING:
    import optuna

MIRRORABLE = ("MedianPruner", "PercentilePruner", "PatientPruner", "WilcoxonPruner", "NopPruner",
              "ThresholdPruner")


def _rule_for(study: optuna.Study) -> PercentileRule | RungRule | BracketRule | None:
    """The in-memory rule for the study's pruner, or None (then the copy's pruner decides)."""
    maximize = study.direction.name == "MAXIMIZE"
    if internals.is_hyperband(study.pruner):
        return BracketRule(study, maximize)
    percentile = internals.percentile_settings(study.pruner)
    if percentile is not None:
        return PercentileRule(percentile, maximize)
    rungs = internals.rung_settings(study.pruner)
    return RungRule(rungs, maximize) if rungs is not None else None


class PercentileRule:
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

    def add_finished(self, reporter: MirrorReporter, state) -> None:
        """Count a trial this process ran, once it is told."""
        if state.name == "COMPLETE":
            self.add_complete(reporter.history)

    def decide(self, reporter: MirrorReporter, value: float, step: int) -> bool:
        """Whether to prune the reporter's trial, which just reported ``value`` at ``step``."""
        if not math.isnan(value):  # the best so far ignores NaN, as Optuna's nanmin/nanmax do
            best = reporter.best
            reporter.best = value if math.isnan(best) else (max if self.maximize else min)(best, value)
        reporter.last_step = max(reporter.last_step, step)
        return self.prune(reporter.history, reporter.best, reporter.last_step)

    def add_complete(self, intermediate: dict[int, float]) -> None:
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


class RungRule:
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
        for rung, value in rungs.items():
            self.values.setdefault(rung, []).append(value)

    def add_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        self.add_rungs(_rungs_of(trial))

    def add_finished(self, reporter: MirrorReporter, state) -> None:
        self.add_rungs(reporter.rungs)

    def decide(self, reporter: MirrorReporter, value: float, step: int) -> bool:
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


def _rungs_of(trial: optuna.trial.FrozenTrial) -> dict[int, float]:
    """A finished trial's value at each rung it reached, as Optuna's successive halving records them."""
    rungs, rung = {}, 0
    while internals.rung_key(rung) in trial.system_attrs:
        rungs[rung] = trial.system_attrs[internals.rung_key(rung)]
        rung += 1
    return rungs


class BracketRule:
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

    def _add(self, number: int, rungs: dict[int, float], state) -> None:
        self.complete_seen = self.complete_seen or state.name == "COMPLETE"
        if self.rules is None:
            if rungs:
                self._early.append((number, rungs))
        else:
            self._rule(number).add_rungs(rungs)

    def add_trial(self, trial: optuna.trial.FrozenTrial) -> None:
        self._add(trial.number, _rungs_of(trial), trial.state)

    def add_finished(self, reporter: MirrorReporter, state) -> None:
        self._add(reporter.trial.number, reporter.rungs, state)

    def decide(self, reporter: MirrorReporter, value: float, step: int) -> bool:
        if not self._ready():
            return False
        return self._rule(reporter.trial.number).decide(reporter, value, step)


class PruningMirror:
    """An in-memory copy of a study's finished trials on which its pruner decides, and on
    which the random and TPE samplers draw new trials.

    Sampling here reads the copy instead of the storage (TPE reads every finished trial at
    each call) and creates the real trial in one write, with its parameters, instead of one
    write per parameter. The copy has its own copy of the study's sampler (same settings,
    same seed), so the study's sampler stays free for trials claimed from the queue.

    The copy also holds the trials other workers are running, with their parameters, while
    they run; its TPE counts them as bad ones (Optuna's ``constant_liar``), so two workers do
    not draw the same region at the same time. Alone, a worker holds none, and draws exactly
    as without them.
    """

    SAMPLES_HERE = ("RandomSampler", "TPESampler")

    def __init__(self, study: optuna.Study):
        import copy

        import optuna

        self.study = study
        self.samples = type(study.sampler).__name__ in self.SAMPLES_HERE
        # The random sampler reads nothing of earlier trials; the others may read their values.
        self.samples_from_history = type(study.sampler).__name__ != "RandomSampler"
        sampler = copy.deepcopy(study.sampler) if self.samples else optuna.samplers.RandomSampler(seed=0)
        # What TPE notes on a trial it drew while lying about running ones (its relative
        # parameters, as system attributes) is written only where the study's own sampler lies.
        self.keep_sampler_notes = internals.lies_about_running(study.sampler)
        # TPE here draws away from the trials other workers are running (see _hold_running).
        self.lies = self.samples and internals.lie_about_running(sampler, self.keep_sampler_notes)
        self.copy = optuna.create_study(direction=study.direction, pruner=study.pruner, sampler=sampler)
        self.rule = _rule_for(study)
        self.seen: set[int] = set()  # numbers of the study's trials the copy holds
        self._twins: dict[int, optuna.Trial] = {}  # real trial id -> the copy's trial sampled for it
        self._stand_ins: dict[int, int | None] = {}  # real trial id running elsewhere -> the copy's trial id
        self.refresh()

    @staticmethod
    def supports(study: optuna.Study) -> bool:
        """Whether the runner can use a mirror for ``study``: Optuna's private names are there
        (the mirror writes through them), one objective, and a pruner that decides on values."""
        mirrorable = (type(study.pruner).__name__ in MIRRORABLE or internals.is_hyperband(study.pruner)
                      or internals.rung_settings(study.pruner) is not None)
        return internals.fast_path() and mirrorable and len(study.directions) == 1

    @property
    def sampler(self):
        """The sampler that draws new trials: the copy's when sampling happens here."""
        return self.copy.sampler if self.samples else self.study.sampler

    def refresh(self, rows: list | None = None) -> None:
        """Copy the study's finished trials that the mirror does not hold yet (other workers').

        ``rows``: the study's trial list (anything with ``trial_id``, ``number`` and ``state``,
        as :func:`fcnn_opt.search.ledger.rows` reads it); then only the trials missing here are
        read (none, usually), not the whole study."""
        from optuna.trial import TrialState

        if rows is None:
            finished = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            new = [t for t in finished if t.number not in self.seen]
        else:
            storage = internals.storage_of(self.study)
            new = [storage.get_trial(r.trial_id) for r in rows
                   if r.state in (TrialState.COMPLETE, TrialState.PRUNED) and r.number not in self.seen]
        if self.lies and rows is not None:
            self._release_stand_ins(rows)
        for t in new:
            self.seen.add(t.number)
            self.copy.add_trial(t)
            if self.rule is not None:
                self.rule.add_trial(t)
        if self.lies and rows is not None:
            self._hold_running(rows)

    def _hold_running(self, rows: list) -> None:
        """Hold each trial running elsewhere (another worker's) in the copy as a running trial
        with its parameters, so that TPE, lying about running trials as Optuna's
        ``constant_liar`` does, draws away from it instead of near it (W2 with two workers:
        see docs/performance.md, "Two workers")."""
        from datetime import datetime

        from optuna.trial import FrozenTrial, TrialState

        storage, copy_storage = internals.storage_of(self.study), internals.storage_of(self.copy)
        for row in rows:
            if row.state != TrialState.RUNNING or row.trial_id in self._stand_ins or row.trial_id in self._twins:
                continue
            trial = storage.get_trial(row.trial_id)
            if not trial.params:  # asked, not drawn yet (a queued trial): nothing to avoid
                self._stand_ins[row.trial_id] = None
                continue
            self._stand_ins[row.trial_id] = copy_storage.create_new_trial(
                internals.study_id_of(self.copy), template_trial=FrozenTrial(
                    number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                    datetime_complete=None, params=trial.params, distributions=trial.distributions,
                    user_attrs={}, system_attrs={}, intermediate_values={}, trial_id=-1))

    def _release_stand_ins(self, rows: list) -> None:
        """End the stand-ins of trials that no longer run (as failed, which TPE ignores; the
        finished trial itself is copied in)."""
        from optuna.trial import TrialState

        running = {row.trial_id for row in rows if row.state == TrialState.RUNNING}
        copy_storage = internals.storage_of(self.copy)
        for trial_id in [t for t in self._stand_ins if t not in running]:
            stand_in = self._stand_ins.pop(trial_id)
            if stand_in is not None:
                copy_storage.set_trial_state_values(stand_in, state=TrialState.FAIL)

    def ask(self, draw: Callable[[optuna.Trial], Any], count: int = 1,
            user_attrs: dict | None = None) -> list[optuna.Trial]:
        """``count`` new trials of the real study whose parameters were drawn on the copy by
        ``draw(trial)`` (which suggests every searched hyperparameter).

        Each is created in one write with its parameters (a journal takes them all in one
        append). A draw that fails falls back to the study's own ``ask``, so the trial meets
        the same error where it is recorded.
        """
        from datetime import datetime

        import optuna
        from optuna.trial import FrozenTrial, TrialState

        twins, templates, fallback = [], [], []
        copy_storage = internals.storage_of(self.copy)
        if self.lies and not self.keep_sampler_notes:
            # Lying costs TPE 10 % more per draw: only while it holds another worker's trial.
            internals.lie_about_running(self.copy.sampler, any(i is not None for i in self._stand_ins.values()))
        with internals.compiled_tpe_tails():  # TPE draws lazily, when draw() suggests
            for _ in range(count):
                twin = self.copy.ask()
                try:
                    draw(twin)
                except Exception:
                    self.copy.tell(twin, state=TrialState.FAIL)
                    fallback.append(self.study.ask())
                    continue
                drawn = copy_storage.get_trial(internals.trial_id_of(twin))
                twins.append(twin)
                templates.append(FrozenTrial(
                    number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                    datetime_complete=None, params=drawn.params, distributions=drawn.distributions,
                    user_attrs=dict(user_attrs or {}),
                    system_attrs=drawn.system_attrs if self.keep_sampler_notes else {},
                    intermediate_values={}, trial_id=-1))
        study = self.study
        ids = internals.create_trials(internals.storage_of(study), internals.study_id_of(study), templates)
        self._twins.update(zip(ids, twins, strict=True))
        return [optuna.Trial(study, trial_id) for trial_id in ids] + fallback

    def drawn_here(self, trial: optuna.Trial) -> bool:
        return internals.trial_id_of(trial) in self._twins

    def reporter(self, trial: optuna.Trial) -> MirrorReporter:
        return MirrorReporter(self, trial, self._twins.pop(internals.trial_id_of(trial), None))

    def forget(self, trial: optuna.Trial) -> None:
        """Finish the copy's twin of a trial that will not run (refused by the ledger)."""
        from optuna.trial import TrialState

        twin = self._twins.pop(internals.trial_id_of(trial), None)
        if twin is not None:
            self.copy.tell(twin, state=TrialState.FAIL)


class MirrorReporter:
    """Reports to a mirrored trial; the real trial is written once, at the end."""

    def __init__(self, mirror: PruningMirror, trial: optuna.Trial, twin: optuna.Trial | None = None):
        self.mirror, self.trial = mirror, trial
        self.twin = twin or mirror.copy.ask()  # parameters do not matter to these pruners
        # The trial to draw hyperparameters from: the copy's, when they were drawn there.
        self.params_trial = trial if twin is None else twin
        self.attrs: dict[str, Any] = {}
        self.system_attrs: dict[str, Any] = {}
        self.history: dict[int, float] = {}  # every value reported
        self._written: set[int] = set()  # the steps of history already in the storage
        self.best = math.nan
        self.last_step = -1
        self.rungs: dict[int, float] = {}  # successive halving: the value at each rung passed

    def report(self, value: float, epoch: int) -> bool:
        self.history[epoch] = value
        rule = self.mirror.rule
        if rule is None:
            self.twin.report(value, epoch)
            return self.twin.should_prune()
        return rule.decide(self, value, epoch)

    def record(self, value: float, epoch: int) -> None:
        """Keep a value without asking the pruner (written with the rest at the end)."""
        self.history[epoch] = value

    def store(self, attrs: dict[str, Any]) -> None:
        self.attrs.update(attrs)

    def store_system(self, attrs: dict[str, Any]) -> None:
        self.system_attrs.update(attrs)

    def records(self) -> tuple[int, dict[int, float], dict, dict]:
        """The buffered values and attributes, to write (then call :meth:`written`)."""
        unwritten = {step: value for step, value in self.history.items() if step not in self._written}
        return internals.trial_id_of(self.trial), unwritten, dict(self.attrs), dict(self.system_attrs)

    def written(self) -> None:
        """The buffered records are in the storage: nothing is left to write."""
        self._written.update(self.history)
        self.attrs, self.system_attrs = {}, {}

    def flush(self) -> None:
        """Write everything to the real trial (call before telling it). The buffers empty only
        once the write succeeded, so a retried flush writes everything again."""
        internals.write_trial_records(internals.storage_of(self.trial.study), [self.records()])
        self.written()

    def close(self, state, value: float | None) -> None:
        """Finish the twin like the real trial, so later decisions count it."""
        from optuna.trial import TrialState

        mirror = self.mirror
        mirror.seen.add(self.trial.number)
        if mirror.rule is not None and mirror.samples_from_history:  # TPE ranks pruned trials by them
            copy_storage, twin_id = internals.storage_of(mirror.copy), internals.trial_id_of(self.twin)
            for step, value_at in self.history.items():
                copy_storage.set_trial_intermediate_value(twin_id, step, value_at)
        if mirror.rule is not None:
            mirror.rule.add_finished(self, state if value is None or math.isfinite(value) else TrialState.FAIL)
        if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
            mirror.copy.tell(self.twin, value)
        elif state == TrialState.PRUNED:
            mirror.copy.tell(self.twin, state=TrialState.PRUNED)
        else:
            mirror.copy.tell(self.twin, state=TrialState.FAIL)
