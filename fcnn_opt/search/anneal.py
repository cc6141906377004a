"""Continuing the best trials: how a time-budgeted study spends its last seconds.

Where epochs are a resource (``epochs = { max = 400 }``), successive halving trains the
promising trials up to ``max`` epochs at a constant learning rate, and each trial keeps its
state (weights, the optimiser's buffers) in its run file. A constant rate leaves a network
short of the loss it can reach: lowering the rate to zero over a few hundred more epochs
settles it into the minimum it is circling. So when a run with a time budget has its last
``anneal`` share of the time left (0.2 by default), it stops drawing new trials and continues
its best complete trials instead, best first, one after another until the time is up.

Each continuation is a trial of its own in the study (an Optuna trial with the parameters of
the trial it continues, queued with ``enqueue_trial``), marked by the user attribute
``continues = {"trial": N, "epochs": E}``: it loads trial N's state, trains E more epochs with
the learning rate falling linearly to zero (reporting epochs N's last + 1 onwards), and
stores its full history and network like any trial. Its history equals that of one
uninterrupted run of the same network (``tests/search/test_anneal.py``). A continuation is
never pruned, and each trial is continued at most once.

On W2's space with a 60 s budget this took the best validation loss from about 0.028 (the
best trial of successive halving alone) to about 0.019; see docs/performance.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fcnn_opt.search.ledger import NextStep
from fcnn_opt.search.space import StudySpec
from fcnn_opt.store.artifact_files import CONTINUES_ATTR

if TYPE_CHECKING:
    import optuna

SHARE_OF_TIME_LEFT = 0.5  # a continuation is sized to use at most this share of the time left
LONGEST = 2  # a continuation trains to at most this many times max epochs in all


@dataclass(frozen=True)
class Continuation:
    """The next continuation to run: trial ``trial`` (with ``params``) to ``epochs`` epochs in all,
    ``added`` of them after its state."""

    trial: int
    epochs: int
    added: int
    params: dict


def next_continuation(study: optuna.Study, spec: StudySpec, seconds_left: float) -> Continuation | NextStep:
    """The best complete trial not yet continued, and how long a run fits in the time left.

    Returns a :class:`Continuation`, ``NextStep.SEARCH`` when no trial can be continued yet
    (none has completed: the search goes on), or ``NextStep.STOP`` when what is left of the
    time is too short to train the best candidate at least ``min`` epochs longer than it was.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    taken = {t.user_attrs[CONTINUES_ATTR].get("trial") for t in trials
             if isinstance(t.user_attrs.get(CONTINUES_ATTR), dict)}
    maximize = spec.direction == "maximize"
    candidates = [t for t in trials if t.state == TrialState.COMPLETE and CONTINUES_ATTR not in t.user_attrs
                  and t.number not in taken and t.value is not None and math.isfinite(t.value)
                  and t.user_attrs.get("seconds_per_epoch")]
    if not candidates:
        return NextStep.SEARCH
    best = max(candidates, key=lambda t: t.value) if maximize else min(candidates, key=lambda t: t.value)
    low, high = spec.epoch_range
    start = spec.state_epoch
    per_epoch = float(best.user_attrs["seconds_per_epoch"])
    for share in (SHARE_OF_TIME_LEFT, 0.9):  # the last one may take nearly all that is left
        epochs = min(LONGEST * high, start + int(seconds_left * share / per_epoch))
        if epochs >= high + low:
            return Continuation(trial=best.number, epochs=epochs, added=epochs - start, params=dict(best.params))
    return NextStep.STOP


def enqueue(study: optuna.Study, continuation: Continuation) -> None:
    """Queue the continuation as a trial of the study (any worker may run it)."""
    study.enqueue_trial(continuation.params, user_attrs={
        CONTINUES_ATTR: {"trial": continuation.trial, "epochs": continuation.epochs}})


def continue_best(study: optuna.Study, spec: StudySpec, seconds_left: float) -> Continuation | NextStep:
    """Queue the next continuation if one fits in the time left; returns it (queued), or
    ``NextStep.SEARCH`` (nothing to continue yet) or ``NextStep.STOP`` (too little time)."""
    step = next_continuation(study, spec, seconds_left)
    if isinstance(step, Continuation):
        enqueue(study, step)
    return step
