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

Median, percentile, successive halving and Hyperband are decided by the in-memory rules of
:mod:`fcnn_opt.search.mirror_rules`. What this module decides (which trials to copy, what to
draw, what a reporter keeps) it reads and writes through the accessors of
:mod:`fcnn_opt.store.mirror`, the storage side of the mirror.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fcnn_opt.search.ledger import TrialList
from fcnn_opt.search.mirror_rules import PruneRule, rule_for
from fcnn_opt.search.pruners import PRUNERS
from fcnn_opt.search.samplers import SAMPLERS
from fcnn_opt.store import mirror as stored
from fcnn_opt.store import optuna_internals as internals

if TYPE_CHECKING:
    import optuna

    from fcnn_opt.search.ledger import Row


class PruningMirror:
    """An in-memory copy of a study's finished trials on which its pruner decides, and on
    which the samplers whose registry entry says ``drawn_on_mirror`` (random, TPE) draw new
    trials.

    Sampling here reads the copy instead of the storage (TPE reads every finished trial at
    each call) and creates the real trial in one write, with its parameters, instead of one
    write per parameter. The copy has its own copy of the study's sampler (same settings,
    same seed), so the study's sampler stays free for trials claimed from the queue.

    The copy also holds the trials other workers are running, with their parameters, while
    they run; its TPE counts them as bad ones (Optuna's ``constant_liar``), so two workers do
    not draw the same region at the same time. Alone, a worker holds none, and draws exactly
    as without them.
    """

    def __init__(self, study: optuna.Study, sampler: str, pruner: str):
        """``sampler``, ``pruner``: the names of the study's sampler and pruner in the
        registries (its spec's): their entries say what happens here (``drawn_on_mirror``,
        ``reads_trials``; ``decided_on_mirror``, see :meth:`supports`)."""
        self.study = study
        entry = SAMPLERS.get(sampler)
        self.samples = entry.drawn_on_mirror
        # A sampler that reads nothing of earlier trials (random) needs no epochs copied.
        self.samples_from_history = entry.reads_trials
        sampler = stored.sampler_copy(study.sampler, self.samples)
        # What TPE notes on a trial it drew while lying about running ones (its relative
        # parameters, as system attributes) is written only where the study's own sampler lies.
        self.keep_sampler_notes = internals.lies_about_running(study.sampler)
        # TPE here draws away from the trials other workers are running (see _hold_running).
        self.lies = self.samples and internals.lie_about_running(sampler, self.keep_sampler_notes)
        self.copy = stored.in_memory_copy(study, sampler)
        self.rule: PruneRule | None = rule_for(study)
        self.seen: set[int] = set()  # numbers of the study's trials the copy holds
        self._twins: dict[int, optuna.Trial] = {}  # real trial id -> the copy's trial sampled for it
        self._stand_ins: dict[int, int | None] = {}  # real trial id running elsewhere -> the copy's trial id
        self._taken = 0  # rows of the runner's TrialList.finished copied (or found here already)
        self.refresh()

    @staticmethod
    def supports(study: optuna.Study, pruner: str) -> bool:
        """Whether the runner can use a mirror for ``study``, whose pruner is the registry's
        ``pruner``: its entry decides on the mirror (``decided_on_mirror``), and the storage
        side can keep one (:func:`fcnn_opt.store.mirror.mirrorable`)."""
        return PRUNERS.get(pruner).decided_on_mirror and stored.mirrorable(study)

    @property
    def sampler(self) -> optuna.samplers.BaseSampler:
        """The sampler that draws new trials: the copy's when sampling happens here."""
        return self.copy.sampler if self.samples else self.study.sampler

    def refresh(self, rows: TrialList | list[Row] | None = None) -> None:
        """Copy the study's finished trials that the mirror does not hold yet (other workers').

        ``rows``: the study's :class:`~fcnn_opt.search.ledger.TrialList`, whose rows that
        finished since the last refresh are read (none, usually), or a trial list (anything with
        ``trial_id``, ``number`` and ``state``, as :func:`fcnn_opt.search.ledger.rows` reads
        it), of which the trials missing here are read; without, the whole study is read."""
        if isinstance(rows, TrialList):
            finished, running = rows.finished[self._taken:], rows.running()
            self._taken = len(rows.finished)
        else:
            finished, running = rows, None if rows is None else [r for r in rows if r.state.name == "RUNNING"]
        new = stored.finished_trials(self.study, self.seen, finished)
        if self.lies and running is not None:
            self._release_stand_ins(running)
        for t in new:
            self.seen.add(t.number)
            self.copy.add_trial(t)
            if self.rule is not None:
                self.rule.add_trial(t)
        if self.lies and running is not None:
            self._hold_running(running)

    def _hold_running(self, rows: list[Row]) -> None:
        """Hold each trial running elsewhere (another worker's) in the copy as a running trial
        with its parameters, so that TPE, lying about running trials as Optuna's
        ``constant_liar`` does, draws away from it instead of near it (W2 with two workers:
        see docs/performance.md, "Two workers")."""
        for row in rows:
            if row.state.name != "RUNNING" or row.trial_id in self._stand_ins or row.trial_id in self._twins:
                continue
            trial = stored.read_trial(self.study, row.trial_id)
            # asked, not drawn yet (a queued trial): nothing to avoid
            self._stand_ins[row.trial_id] = stored.add_stand_in(self.copy, trial) if trial.params else None

    def _release_stand_ins(self, rows: list[Row]) -> None:
        """End the stand-ins of trials that no longer run (as failed, which TPE ignores; the
        finished trial itself is copied in)."""
        running = {row.trial_id for row in rows if row.state.name == "RUNNING"}
        for trial_id in [t for t in self._stand_ins if t not in running]:
            stand_in = self._stand_ins.pop(trial_id)
            if stand_in is not None:
                stored.fail_stand_in(self.copy, stand_in)

    def ask(self, draw: Callable[[optuna.Trial], Any], count: int = 1,
            user_attrs: dict | None = None) -> list[optuna.Trial]:
        """``count`` new trials of the real study whose parameters were drawn on the copy by
        ``draw(trial)`` (which suggests every searched hyperparameter).

        Each is created in one write with its parameters (a journal takes them all in one
        append). A draw that fails falls back to the study's own ``ask``, so the trial meets
        the same error where it is recorded.
        """
        twins, drawn, fallback = [], [], []
        if self.lies and not self.keep_sampler_notes:
            # Lying costs TPE 10 % more per draw: only while it holds another worker's trial.
            internals.lie_about_running(self.copy.sampler, any(i is not None for i in self._stand_ins.values()))
        with internals.compiled_tpe_tails():  # TPE draws lazily, when draw() suggests
            for _ in range(count):
                twin = self.copy.ask()
                try:
                    draw(twin)
                except Exception:
                    stored.fail_twin(self.copy, twin)
                    fallback.append(self.study.ask())
                    continue
                twins.append(twin)
                drawn.append(stored.read_trial(self.copy, internals.trial_id_of(twin)))
        trials = stored.create_running(self.study, drawn, user_attrs or {}, self.keep_sampler_notes)
        self._twins.update(zip((internals.trial_id_of(t) for t in trials), twins, strict=True))
        return trials + fallback

    def drawn_here(self, trial: optuna.Trial) -> bool:
        """Whether ``trial`` was drawn on this mirror (then it was created with its attributes)."""
        return internals.trial_id_of(trial) in self._twins

    def reporter(self, trial: optuna.Trial) -> MirrorReporter:
        """The reporter that runs ``trial`` on the mirror (its twin, if it was drawn here)."""
        return MirrorReporter(self, trial, self._twins.pop(internals.trial_id_of(trial), None))

    def forget(self, trial: optuna.Trial) -> None:
        """Finish the copy's twin of a trial that will not run (refused by the ledger)."""
        twin = self._twins.pop(internals.trial_id_of(trial), None)
        if twin is not None:
            stored.fail_twin(self.copy, twin)


class MirrorReporter:
    """Reports to a mirrored trial; the real trial is written once, at the end (a
    :class:`fcnn_opt.search.objective.Reporter`)."""

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
        """Keep ``value`` and return whether the pruner, deciding on the mirror, prunes now."""
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
        """Keep user attributes, written with the rest at the end."""
        self.attrs.update(attrs)

    def store_system(self, attrs: dict[str, Any]) -> None:
        """Keep system attributes, written with the rest at the end."""
        self.system_attrs.update(attrs)

    def records(self) -> stored.TrialRecords:
        """The buffered values and attributes, to write (then call :meth:`written`)."""
        unwritten = {step: value for step, value in self.history.items() if step not in self._written}
        return stored.TrialRecords(internals.trial_id_of(self.trial), unwritten, dict(self.attrs),
                                   dict(self.system_attrs))

    def written(self) -> None:
        """The buffered records are in the storage: nothing is left to write."""
        self._written.update(self.history)
        self.attrs, self.system_attrs = {}, {}

    def flush(self) -> None:
        """Write everything to the real trial (call before telling it). The buffers empty only
        once the write succeeded, so a retried flush writes everything again."""
        stored.write_records(self.trial.study, [self.records()])
        self.written()

    def close(self, state: optuna.trial.TrialState, value: float | None) -> None:
        """Finish the twin like the real trial, so later decisions count it."""
        from optuna.trial import TrialState

        mirror = self.mirror
        mirror.seen.add(self.trial.number)
        if mirror.rule is not None and mirror.samples_from_history:  # TPE ranks pruned trials by them
            stored.copy_history(mirror.copy, self.twin, self.history)
        if mirror.rule is not None:
            mirror.rule.add_finished(self, state if value is None or math.isfinite(value) else TrialState.FAIL)
        stored.finish_twin(mirror.copy, self.twin, state, value)
