"""How a trial that ran is recorded: its outcome classified, its records written, the study told.

Shared by the one-trial-at-a-time runner (:mod:`fcnn_opt.search.runner`) and population
batches (:mod:`fcnn_opt.search.batches`).
"""

from __future__ import annotations

import math
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

from fcnn_opt.search.space import SpaceError
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.storages import mask_url, retrying

if TYPE_CHECKING:
    import optuna

    from fcnn_opt.search.objective import Reporter


class Outcome(NamedTuple):
    """What became of a trial that ran: its state, its value (complete trials), the reason
    to store (failed ones) and an exception to raise once it is told (or None)."""

    state: Any  # optuna.trial.TrialState
    value: Any = None  # a float, or a list of them in a multi-objective study
    reason: str | None = None
    error: BaseException | None = None


class Interrupted(KeyboardInterrupt):
    """SIGTERM, turned into a KeyboardInterrupt by :func:`sigterm_as_interrupt`."""


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the running trial is recorded, not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while a trial is claimed or told, so that no trial is left
    RUNNING half-claimed or half-told; a signal that arrives meanwhile acts when the block
    ends (training itself stays interruptible)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def tell(study: optuna.Study, trial: optuna.Trial, reporter: Reporter, state: optuna.trial.TrialState,
         value: Any = None, reason: str | None = None) -> optuna.trial.TrialState:
    """Write the trial's buffered records, then tell its outcome to the study and the reporter.

    Writing is retried through a dropped connection. If another worker failed the trial as
    stale meanwhile (this process was frozen, or cut off from the database), the result is
    dropped with a line on stderr, and the state returned is FAIL: the trial's retry runs it.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        with signals_held():
            if reason is not None:
                reporter.store({"fail_reason": mask_url(reason)})
            retrying(reporter.flush, what="writing the trial's records")
            if state == TrialState.COMPLETE:
                study.tell(trial, value)
            else:
                study.tell(trial, state=state)
    except (optuna.exceptions.UpdateFinishedTrialError, ValueError) as exc:
        if isinstance(exc, ValueError) and "Cannot tell" not in str(exc):
            raise
        print(f"fcnn_opt: trial {trial.number} was failed as stale by another worker while it ran "
              "here; its result is dropped and its retry runs instead", file=sys.stderr)
        state = TrialState.FAIL
    reporter.close(state, value)
    return state


def tell_all(study: optuna.Study, trials: list[optuna.Trial], reporters: list[Reporter],
             outcomes: list[Outcome]) -> list[optuna.trial.TrialState]:
    """Tell each trial its :class:`Outcome`; returns the states.

    Trials drawn on the pruning mirror (random and TPE samplers, whose ``after_trial`` does
    nothing here) with no failure reason to store are finished together with their records
    in one write (one transaction, or one journal append; see
    :func:`~fcnn_opt.store.optuna_internals.write_trial_records`), storing what ``study.tell`` stores.
    The others, and any that another worker failed as stale meanwhile, go through :func:`tell`.
    """
    import optuna

    states: list = [None] * len(trials)
    together = [i for i, (trial, reporter) in enumerate(zip(trials, reporters, strict=True))
                if reporter.params_trial is not trial and outcomes[i][2] is None]
    if together:
        finished = []
        for i in together:
            state, value = outcomes[i][:2]
            finished.append(internals.Finished(internals.trial_id_of(trials[i]), state,
                                               internals.final_value(state, value, reporters[i].history)))
        storage = internals.storage_of(study)
        try:
            with signals_held():
                retrying(internals.write_trial_records, storage, [reporters[i].records() for i in together],
                         finished, what="finishing the trials")
            landed = together
        except optuna.exceptions.UpdateFinishedTrialError:  # a retried write had landed, or a stale one
            landed = [i for i in together
                      if storage.get_trial(internals.trial_id_of(trials[i])).state == outcomes[i][0]]
        for i in landed:
            reporters[i].written()
            reporters[i].close(*outcomes[i][:2])
            states[i] = outcomes[i][0]
    for i, (trial, reporter) in enumerate(zip(trials, reporters, strict=True)):
        if states[i] is None:
            state, value, reason, _ = outcomes[i]
            states[i] = tell(study, trial, reporter, state, value, reason)
    return states


def outcome(run: Callable[[], Any]) -> Outcome:
    """Call ``run()`` (which trains and concludes a trial) and classify what happened.

    Returns its :class:`Outcome` (state, value, reason, exception to re-raise).
    """
    import optuna
    from optuna.trial import TrialState

    try:
        value = run()
    except optuna.TrialPruned:
        return Outcome(TrialState.PRUNED)
    except KeyboardInterrupt as exc:
        return Outcome(TrialState.FAIL, None, "interrupted (Ctrl-C or SIGTERM)", exc)
    except optuna.exceptions.UpdateFinishedTrialError:  # failed as stale by another worker
        return Outcome(TrialState.FAIL)
    except (SpaceError, ValueError, ImportError) as exc:  # the study's own settings are wrong
        return Outcome(TrialState.FAIL, None, f"{type(exc).__name__}: {exc}", exc)
    except Exception as exc:  # e.g. the database gone for longer than the retry window
        return Outcome(TrialState.FAIL, None, f"{type(exc).__name__}: {exc}")
    values = value if isinstance(value, (list, tuple)) else [value]  # several: multi-objective
    if any(v is None or not math.isfinite(v) for v in values):
        return Outcome(TrialState.FAIL)
    return Outcome(TrialState.COMPLETE, value)


