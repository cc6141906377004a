"""Where the worker loop's trials come from and where their outcomes go: one object in front of
the ledger, the pruning mirror and the stale-trial watch.

:class:`TrialSource` hands out the next trials of a study (:meth:`TrialSource.next_trials`:
queued ones claimed first, lowest number first, then new ones drawn on the pruning mirror
or asked of the study, never more than the budget has room for), and takes them back to run
(:meth:`TrialSource.run`: the ledger admits or refuses each, see
:func:`fcnn_opt.search.ledger.refusal`; the admitted ones are trained and told, one at a
time or as a population batch). Before each read it fails and queues again the trials of
dead workers (:class:`fcnn_opt.search.ledger.StaleWatch`), and brings the mirror up to date
with the trials other workers finished.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from fcnn_opt.search import ledger
from fcnn_opt.search.batches import run_batch
from fcnn_opt.search.ledger import Counts, NextStep
from fcnn_opt.search.mirror import PruningMirror
from fcnn_opt.search.objective import Objective, Reporter, TrialReporter, suggest
from fcnn_opt.search.outcomes import outcome, signals_held, tell_all
from fcnn_opt.search.plan import RunPlan
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.storages import db_retry_seconds, is_transient, mask_url

if TYPE_CHECKING:
    import optuna

INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


class DatabaseLost(RuntimeError):
    """The storage stayed unreachable for longer than the retry window."""


def raise_if_lost(exc: Exception) -> None:
    """Raise :class:`DatabaseLost` (its first line, passwords masked) if ``exc`` is a dropped
    connection; otherwise return."""
    if is_transient(exc):
        reason = str(exc.__cause__ or exc).strip().splitlines()
        raise DatabaseLost(mask_url(f"the database kept failing and retrying gave up "
                                    f"($FCNN_OPT_DB_RETRY = {db_retry_seconds()} s): "
                                    f"{reason[0] if reason else type(exc).__name__}")) from None


def database_pause(exc: Exception, failing_since: float | None, poll: float) -> float:
    """After ``exc`` while reading the study: re-raise it unless it is a dropped connection,
    raise :class:`DatabaseLost` once the connection has been failing for longer than the
    retry window, else wait ``poll`` seconds; returns when the failures began."""
    if not is_transient(exc):
        raise exc
    failing_since = failing_since or time.monotonic()
    if time.monotonic() - failing_since > db_retry_seconds():
        raise_if_lost(exc)
    time.sleep(poll)
    return failing_since


@dataclass
class Claim:
    """What one turn of the loop got: the trials claimed for this process (empty: wait and look
    again), the study's budget and counts as read, and ``NextStep.DONE`` once nothing is left."""

    trials: list[optuna.Trial] = field(default_factory=list)
    budget: int = 0
    counts: Counts = field(default_factory=Counts)
    step: NextStep | None = None


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Objective,
              mirror: PruningMirror | None = None) -> optuna.trial.TrialState:
    """Run one claimed trial and tell its outcome; returns its final state. Interrupts are
    recorded, then re-raised.

    With a :class:`~fcnn_opt.search.mirror.PruningMirror`, pruning is decided in memory and the
    trial's records are written in one transaction just before it is told.
    """
    reporter: Reporter = mirror.reporter(trial) if mirror is not None else TrialReporter(trial)
    with ledger.heartbeat(study, [internals.trial_id_of(trial)]):
        result = outcome(lambda: objective.run(trial, reporter))
    state = tell_all(study, [trial], [reporter], [result])[0]
    if result.error is not None:
        raise result.error
    return state


class TrialSource:
    """The next trials of ``study`` for this process, and the way back for their outcomes.

    Holds the trials it handed out and that are not recorded yet (``claimed``), so that an
    interrupt can fail them (:meth:`fail_unfinished`), and counts the trials it ran and those
    the ledger refused (``ran``, ``skipped``).
    """

    def __init__(self, study: optuna.Study, plan: RunPlan):
        self.study, self.plan = study, plan
        self.watch = ledger.StaleWatch(study)
        self.trials = ledger.TrialList(study)  # read incrementally: only what changed
        # Without Optuna's private names (see fcnn_opt.store.optuna_internals) there is no mirror:
        # every trial is asked, reported and told through Optuna's public API.
        spec = plan.spec
        self.mirror = PruningMirror(study, spec.sampler, spec.pruner) \
            if PruningMirror.supports(study, spec.pruner) else None
        self.claimed: list[optuna.Trial] = []  # held RUNNING here, not recorded yet
        self.ran = 0
        self.skipped = 0  # claimed but finished unrun (surplus or duplicate)

    def next_trials(self, want: int) -> Claim:
        """Up to ``want`` claimed trials (none: wait and look again), or ``NextStep.DONE``.

        Ctrl-C and SIGTERM wait until the claim is complete. With a mirror that samples
        (random, TPE), new trials are drawn on the mirror, which is first brought up to date
        with the study's finished trials (other workers' too)."""
        with signals_held():
            claim = self._next(want)
            self.claimed = list(claim.trials)
        return claim

    def _next(self, want: int) -> Claim:
        self.trials.read()
        if self.watch.sweep(self.trials.running()):
            self.trials.read()
        counts = replace(self.trials.counts)
        budget = self.plan.read_budget(self.study)
        waiting = self.trials.waiting()
        if counts.done >= budget:
            # Queued trials left over (a duplicate grid point, a retry that others made redundant)
            # are claimed one by one so that the ledger finishes them unrun: no WAITING remains.
            leftover = self._claim(waiting)
            return Claim([leftover], budget, counts) if leftover else Claim([], budget, counts, NextStep.DONE)
        if self.mirror is not None:
            self.mirror.refresh(self.trials)
        trials = self._fill(waiting, want, budget, counts)
        if not trials and self.plan.grid and counts.running == 0 and counts.waiting == 0:
            return Claim([], budget, counts, NextStep.DONE)  # every grid point is done or failed for good
        return Claim(trials, budget, counts)

    def _fill(self, waiting: list[ledger.Row], want: int, budget: int, counts: Counts) -> list[optuna.Trial]:
        """Queued trials claimed first, then new ones (drawn on the mirror, or asked of the
        study), up to ``want`` and as many as the budget has room for."""
        drawn_here = self.mirror is not None and self.mirror.samples
        trials: list = []
        asked = 0
        while len(trials) < want and counts.done + counts.running + len(trials) < budget:
            trial = self._claim(waiting)
            room = budget - (counts.done + counts.running + counts.waiting + asked)
            if trial is None and not self.plan.grid and room > 0:
                if drawn_here:  # the rest of the batch at once: one write on a journal
                    count = min(room, want - len(trials), budget - counts.done - counts.running - len(trials))
                    drawn = self.mirror.ask(lambda trial: suggest(trial, self.plan.spec), count,
                                            {"worker": ledger.worker_name()})
                    trials += drawn
                    asked += len(drawn)
                    continue
                trial = self.study.ask()
                asked += 1
            if trial is None:
                break
            trials.append(trial)
        return trials

    def _claim(self, waiting: list[ledger.Row]) -> optuna.Trial | None:
        """Pop a queued trial atomically (lowest number first), as Optuna's own queue does.

        Rows tried are removed from ``waiting``, so repeated calls go down the queue.
        """
        import optuna
        from optuna.trial import TrialState

        storage = internals.storage_of(self.study)
        while waiting:
            row = waiting.pop(0)
            trial_id = ledger.trial_id(self.study, row)
            try:
                if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    return optuna.Trial(self.study, trial_id)
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    def run(self, claim: Claim, objective: Objective) -> list[optuna.trial.TrialState]:
        """Let each claimed trial run only if the ledger admits it (see ledger.refusal), then run
        them; returns the final states of those that ran."""
        pending = list(claim.trials)  # claimed, and not yet recorded or handed over
        try:
            admitted = self._admit(claim, pending)
            if not admitted:
                self.claimed = []
                return []
            pending = []  # from here on, run_trial and run_batch record every outcome themselves
            if self.plan.batch_trials == 1:
                states = [run_trial(self.study, admitted[0], objective, self.mirror)]
            else:
                states = run_batch(self.study, admitted, objective, self.mirror, self.plan.device)
            self.ran += len(admitted)
            self.claimed = []
            return states
        except KeyboardInterrupt:
            from optuna.trial import TrialState

            for trial in pending:
                trial.set_user_attr("fail_reason", INTERRUPTED)
                self.study.tell(trial, state=TrialState.FAIL)
            raise
        except Exception as exc:
            raise_if_lost(exc)
            raise

    def _admit(self, claim: Claim, pending: list[optuna.Trial]) -> list[optuna.Trial]:
        """The claimed trials the ledger lets run; the others are finished unrun (and removed
        from ``pending``). Trials not drawn on the mirror are marked with this worker's name."""
        rank = self.plan.ranks(claim.budget)
        if self.plan.grid or (rank and not all(self.trials.surely_admitted(t.number, claim.budget)
                                               for t in claim.trials)):
            self.trials.read()  # near the budget, the trials others created meanwhile count too
        admitted = []
        for trial in claim.trials:
            reason = self.trials.refusal(trial.number, claim.budget, per_point=self.plan.grid, rank=rank)
            if reason is None:
                admitted.append(trial)
                continue
            ledger.skip(self.study, trial, reason)
            if self.mirror is not None:
                self.mirror.forget(trial)
            pending.remove(trial)
            self.skipped += 1
        for trial in admitted:
            if self.mirror is None or not self.mirror.drawn_here(trial):  # drawn ones were created with it
                trial.set_user_attr("worker", ledger.worker_name())
        return admitted

    def fail_unfinished(self) -> None:
        """Record claimed trials that an interrupt left RUNNING as failed (finished ones are kept)."""
        from optuna.trial import TrialState

        for trial in self.claimed:
            try:
                storage = internals.storage_of(self.study)
                if storage.get_trial(internals.trial_id_of(trial)).state == TrialState.RUNNING:
                    trial.set_user_attr("fail_reason", INTERRUPTED)
                    self.study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            except Exception:  # best effort on the way out: the stale sweep covers the rest
                pass
