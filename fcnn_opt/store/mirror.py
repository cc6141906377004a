"""The pruning mirror's storage side: the trials it copies, draws and writes, read and written here.

The mirror itself (:class:`fcnn_opt.search.mirror.PruningMirror`, an in-memory copy of a
study on which pruning is decided and trials drawn, with the rules of
:mod:`fcnn_opt.search.mirror_rules`) decides; this module only moves trials between the
study's storage and the mirror's in-memory copy, through Optuna's public storage API and
:mod:`fcnn_opt.store.optuna_internals` (one write for a batch of new trials, one for a
trial's records). It also says which studies the storage side can mirror (:func:`mirrorable`);
which samplers and pruners work there, the search layer's registries say.
"""

from __future__ import annotations

import math
from copy import deepcopy
from datetime import datetime
from typing import TYPE_CHECKING

from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.mirror_index import logged_memory_storage
from fcnn_opt.store.optuna_internals import TrialRecords

if TYPE_CHECKING:
    import optuna

__all__ = ["TrialRecords", "add_stand_in", "copy_history", "create_running", "fail_stand_in", "fail_twin",
           "finish_twin", "finished_trials", "in_memory_copy", "mirrorable", "read_trial", "sampler_copy",
           "write_records"]


def mirrorable(study: optuna.Study) -> bool:
    """Whether the storage side can keep a mirror of ``study``: Optuna's private names are
    there (the mirror writes through them), one objective, and no pruner that writes what the
    mirror cannot (successive halving sized from the study, ``min_resource="auto"``). Which
    samplers and pruners work on the mirror, the search layer's registries say
    (``drawn_on_mirror``, ``decided_on_mirror``; see :class:`fcnn_opt.search.mirror.PruningMirror`)."""
    import optuna

    auto_rungs = type(study.pruner) is optuna.pruners.SuccessiveHalvingPruner \
        and internals.rung_settings(study.pruner) is None
    return internals.fast_path() and len(study.directions) == 1 and not auto_rungs


def sampler_copy(sampler: optuna.samplers.BaseSampler, samples: bool) -> optuna.samplers.BaseSampler:
    """The copy's sampler: a copy of ``sampler`` (same settings, same seed) where it ``samples``
    on the mirror, else a seeded random sampler (the copy's trials' parameters do not matter).
    A copy of Optuna's TPE reads the copy's trials through its index (see
    :func:`~.optuna_internals.indexed_tpe`): the same draws, at a cost that does not grow
    with the study."""
    import optuna

    if not samples:
        return optuna.samplers.RandomSampler(seed=0)
    copy = deepcopy(sampler)
    internals.indexed_tpe(copy)
    return copy


def in_memory_copy(study: optuna.Study, sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    """A new in-memory study with ``study``'s direction and pruner, drawing with ``sampler``,
    in a ``LoggedMemoryStorage`` (:func:`~.mirror_index.logged_memory_storage`, which notes the
    trials as they finish, for the index TPE reads)."""
    import optuna

    return optuna.create_study(storage=logged_memory_storage(), direction=study.direction, pruner=study.pruner,
                               sampler=sampler)


def finished_trials(study: optuna.Study, seen: set[int],
                    rows: list | None = None) -> list[optuna.trial.FrozenTrial]:
    """The study's complete and pruned trials whose numbers are not in ``seen``: read from the
    study (all its finished trials), or, with ``rows`` (its trial list, anything with
    ``trial_id``, ``number`` and ``state``), only those missing, one by one."""
    from optuna.trial import TrialState

    if rows is None:
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        return [t for t in finished if t.number not in seen]
    storage = internals.storage_of(study)
    return [storage.get_trial(r.trial_id) for r in rows
            if r.state in (TrialState.COMPLETE, TrialState.PRUNED) and r.number not in seen]


def read_trial(study: optuna.Study, trial_id: int) -> optuna.trial.FrozenTrial:
    """One trial of ``study`` (or of a mirror's copy) by its storage id."""
    return internals.storage_of(study).get_trial(trial_id)


def _running(params: dict, distributions: dict, user_attrs: dict, system_attrs: dict) -> optuna.trial.FrozenTrial:
    """A template for a new RUNNING trial with these parameters and attributes."""
    from optuna.trial import FrozenTrial, TrialState

    return FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                       datetime_complete=None, params=params, distributions=distributions,
                       user_attrs=user_attrs, system_attrs=system_attrs, intermediate_values={}, trial_id=-1)


def add_stand_in(copy: optuna.Study, trial: optuna.trial.FrozenTrial) -> int:
    """Add a RUNNING trial with ``trial``'s parameters to the mirror's ``copy``; its id there."""
    return internals.storage_of(copy).create_new_trial(
        internals.study_id_of(copy), template_trial=_running(trial.params, trial.distributions, {}, {}))


def fail_stand_in(copy: optuna.Study, trial_id: int) -> None:
    """End a stand-in of the mirror's ``copy`` as failed (TPE ignores failed trials)."""
    from optuna.trial import TrialState

    internals.storage_of(copy).set_trial_state_values(trial_id, state=TrialState.FAIL)


def fail_twin(copy: optuna.Study, twin: optuna.Trial) -> None:
    """Tell the ``copy``'s trial ``twin`` that it failed (it will not run, or its draw failed)."""
    from optuna.trial import TrialState

    copy.tell(twin, state=TrialState.FAIL)


def create_running(study: optuna.Study, drawn: list[optuna.trial.FrozenTrial], user_attrs: dict,
                   keep_notes: bool) -> list[optuna.Trial]:
    """New RUNNING trials of ``study`` with the parameters of the ``drawn`` trials (drawn on a
    copy), each with ``user_attrs`` and, with ``keep_notes``, the system attributes the
    sampler noted on it; created in one write (see :func:`~.optuna_internals.create_trials`)."""
    templates = [_running(t.params, t.distributions, dict(user_attrs), t.system_attrs if keep_notes else {})
                 for t in drawn]
    ids = internals.create_trials(internals.storage_of(study), internals.study_id_of(study), templates)
    return [internals.new_trial(study, trial_id, t) for trial_id, t in zip(ids, templates, strict=True)]


def write_records(study: optuna.Study, records: list[TrialRecords]) -> None:
    """Write running trials' buffered values and attributes to ``study``'s storage in one write."""
    internals.write_trial_records(internals.storage_of(study), records)


def copy_history(copy: optuna.Study, twin: optuna.Trial, history: dict[int, float]) -> None:
    """Give the ``copy``'s trial ``twin`` every intermediate value of ``history``."""
    storage, twin_id = internals.storage_of(copy), internals.trial_id_of(twin)
    for step, value in history.items():
        storage.set_trial_intermediate_value(twin_id, step, value)


def finish_twin(copy: optuna.Study, twin: optuna.Trial, state: optuna.trial.TrialState,
                value: float | None) -> None:
    """Tell the ``copy``'s trial ``twin`` the real trial's end: complete with a finite value,
    pruned, or else failed."""
    from optuna.trial import TrialState

    if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
        copy.tell(twin, value)
    elif state == TrialState.PRUNED:
        copy.tell(twin, state=TrialState.PRUNED)
    else:
        copy.tell(twin, state=TrialState.FAIL)
