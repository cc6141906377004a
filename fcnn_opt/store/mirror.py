"""How a trial's per-epoch values reach Optuna: directly, or through a pruning mirror.

:class:`TrialReporter` is the plain way (``trial.report`` + ``trial.should_prune`` every
epoch), used when the objective runs inside anyone's ``study.optimize``.

:class:`PruningMirror` is what fcnn_opt's own runner uses. On SQLite every
``should_prune`` re-reads the whole study (~6 ms) and every ``report`` is a commit, which
cost far more than training a small network. The mirror keeps an in-memory copy of the
study's finished trials; the study's own pruner decides on that copy, which holds the same
values, so the decisions are the same. Each trial's intermediate values and attributes are
then written to the real storage in one transaction when it ends, before it is told, so
pruners, plots and optuna-dashboard see every epoch's value.

Pruners whose decisions depend on trial numbers or on attributes they store themselves
(successive halving, Hyperband) always use the plain way.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import optuna

MIRRORABLE = ("MedianPruner", "PercentilePruner", "PatientPruner", "WilcoxonPruner", "NopPruner",
              "ThresholdPruner")


class TrialReporter:
    """Report each epoch to the trial and ask its pruner, one storage call at a time."""

    def __init__(self, trial: optuna.Trial):
        self.trial = self.params_trial = trial  # params_trial: where hyperparameters are drawn

    def report(self, value: float, epoch: int) -> bool:
        self.trial.report(value, epoch)
        return self.trial.should_prune()

    def store(self, attrs: dict[str, Any]) -> None:
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)

    def flush(self) -> None:
        """Nothing is buffered: every value was written when it was reported."""

    def close(self, state, value: float | None) -> None:
        pass


def write_trial_records(storage, records: list[tuple[int, dict[int, float], dict]],
                        finished: list[tuple[int, object, float | None]] = ()) -> None:
    """Write the intermediate values and user attributes of running trials, and finish some.

    ``records`` holds ``(trial_id, intermediate_values, user_attrs)`` per trial; ``finished``
    holds ``(trial_id, state, value)`` for trials to finish in the same write (what
    ``study.tell`` stores: the state, the value, the time; see :func:`final_value`). An RDB
    storage gets one transaction, a journal one append (one lock, one sync); other storages
    are written value by value, which is cheap for them.
    """
    from optuna.storages import JournalStorage, RDBStorage

    records = [r for r in records if r[1] or r[2]]
    if not records and not finished:
        return
    backend = getattr(storage, "_backend", storage)  # RDBStorage sits inside Optuna's cache
    if isinstance(backend, RDBStorage):
        _write_rdb(backend, records, finished)
    elif isinstance(storage, JournalStorage):
        _write_journal(storage, records, finished)
    else:
        for trial_id, intermediate, attrs in records:
            for step, value in intermediate.items():
                storage.set_trial_intermediate_value(trial_id, step, value)
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
        for trial_id, state, value in finished:
            storage.set_trial_state_values(trial_id, state, None if value is None else [value])


def sync_journal(storage) -> None:
    """Apply every new journal entry. Optuna raises UpdateFinishedTrialError for each entry of
    this process that names a trial finished meanwhile (failed as stale by another worker),
    one entry per sync; a bulk append can hold many, so all are applied here, then the error
    is raised once, and no later reader meets the rest."""
    import optuna

    error = None
    while True:
        try:
            storage._sync_with_backend()
            break
        except optuna.exceptions.UpdateFinishedTrialError as exc:
            error = error or exc
    if error is not None:
        raise error


def append_journal(storage, entries: list[dict]) -> int | None:
    """Append Optuna journal entries (each an ``op_code`` and its fields, without the worker
    id) in one write under the storage's lock, then apply them (:func:`sync_journal`).
    Returns the id of the last trial this process created (None before its first), read
    under the same lock."""
    with storage._thread_lock:
        worker = storage._replay_result.worker_id
        storage._backend.append_logs([{**entry, "worker_id": worker} for entry in entries])
        sync_journal(storage)
        return getattr(storage._replay_result, "_last_created_trial_id_by_this_process", None)


def final_value(state, value: float | None, intermediate: dict[int, float]) -> float | None:
    """The value ``study.tell`` would store: a complete trial's value; a pruned trial's last
    intermediate value when it is finite; nothing for a failed trial."""
    from optuna.trial import TrialState

    if state == TrialState.COMPLETE:
        return value
    if state == TrialState.PRUNED and intermediate:
        last = intermediate[max(intermediate)]
        return last if math.isfinite(last) else None
    return None


def _write_rdb(backend, records, finished) -> None:
    """Bulk rows through Optuna's own models, in one transaction: a check per trial, two
    deletes and one insert batch for the records, then each finished trial's state, value
    and completion time, as Optuna's ``set_trial_state_values`` sets them."""
    import json
    from datetime import datetime

    import sqlalchemy
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    values = models.TrialIntermediateValueModel
    user = models.TrialUserAttributeModel
    with _create_scoped_session(backend.scoped_session, True) as session:
        value_rows, attr_rows = [], []
        for trial_id, intermediate, attrs in records:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
            backend.check_trial_is_updatable(trial_id, trial.state)
            if intermediate:
                session.query(values).filter(values.trial_id == trial_id,
                                             values.step.in_(list(intermediate))).delete()
            if attrs:
                session.query(user).filter(user.trial_id == trial_id, user.key.in_(list(attrs))).delete()
            for step, value in intermediate.items():
                stored, kind = values.intermediate_value_to_stored_repr(value)
                value_rows.append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                                   "intermediate_value_type": kind})
            attr_rows += [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                          for key, value in attrs.items()]
        # Core inserts of plain rows: one executemany per table, without ORM objects.
        for model, rows in ((values, value_rows), (user, attr_rows)):
            if rows:
                session.execute(sqlalchemy.insert(model.__table__), rows)
        for trial_id, state, value in finished:
            trial = models.TrialModel.find_or_raise_by_id(trial_id, session, for_update=True)
            backend.check_trial_is_updatable(trial_id, trial.state)
            if value is not None:
                backend._set_trial_value_without_commit(session, trial, 0, value)
            trial.state = state
            trial.datetime_complete = datetime.now()


def _write_journal(storage, records, finished) -> None:
    """The log entries Optuna's own setters write, one per value, appended in one call."""
    from datetime import UTC, datetime

    from optuna.storages.journal._storage import JournalOperation

    entries = []
    for trial_id, intermediate, attrs in records:
        entries += [{"op_code": JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, "trial_id": trial_id,
                     "step": step, "intermediate_value": value} for step, value in intermediate.items()]
        entries += [{"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "trial_id": trial_id,
                     "user_attr": {key: value}} for key, value in attrs.items()]
    now = datetime.now(tz=UTC).isoformat(timespec="microseconds")
    entries += [{"op_code": JournalOperation.SET_TRIAL_STATE_VALUES, "trial_id": trial_id, "state": state,
                 "values": None if value is None else [value], "datetime_complete": now}
                for trial_id, state, value in finished]
    append_journal(storage, entries)


def create_trials(storage, study_id: int, templates: list) -> list[int]:
    """Create a trial from each FrozenTrial template (RUNNING, with its parameters and
    attributes); their ids in order, in one write.

    An RDB storage gets one transaction with the rows Optuna's ``create_new_trial`` writes
    (the study row locked while numbers are counted, as Optuna does). The parameters'
    distributions are not compared with earlier trials' here: they were drawn on the
    pruning mirror, whose own storage made that check against the same trials. A journal
    gets Optuna's own CREATE_TRIAL entries in one append (one lock, one sync; an append is
    written whole, so their ids follow each other). Other storages: ``create_new_trial`` each.
    """
    from optuna.storages import JournalStorage, RDBStorage

    backend = getattr(storage, "_backend", storage)
    if isinstance(backend, RDBStorage):
        return _create_rdb(backend, study_id, templates)
    if not isinstance(storage, JournalStorage):
        return [storage.create_new_trial(study_id, template_trial=t) for t in templates]
    from datetime import UTC

    from optuna.distributions import distribution_to_json
    from optuna.storages.journal._storage import JournalOperation

    last = append_journal(storage, [
        {"op_code": JournalOperation.CREATE_TRIAL, "study_id": study_id,
         "datetime_start": t.datetime_start.astimezone(UTC).isoformat(timespec="microseconds"),
         "state": t.state, "value": None, "values": None,
         "distributions": {k: distribution_to_json(d) for k, d in t.distributions.items()},
         "params": {k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()},
         "user_attrs": t.user_attrs, "system_attrs": t.system_attrs, "intermediate_values": {}}
        for t in templates])
    return list(range(last - len(templates) + 1, last + 1))


def _create_rdb(backend, study_id: int, templates: list) -> list[int]:
    import json

    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    ids = []
    with _create_scoped_session(backend.scoped_session) as session:
        models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)
        for t in templates:
            trial = models.TrialModel(study_id=study_id, number=None, state=t.state,
                                      datetime_start=t.datetime_start)
            session.add(trial)
            session.flush()
            rows = [models.TrialParamModel(trial_id=trial.trial_id, param_name=name,
                                           param_value=t.distributions[name].to_internal_repr(value),
                                           distribution_json=distribution_to_json(t.distributions[name]))
                    for name, value in t.params.items()]
            rows += [models.TrialUserAttributeModel(trial_id=trial.trial_id, key=key, value_json=json.dumps(value))
                     for key, value in t.user_attrs.items()]
            rows += [models.TrialSystemAttributeModel(trial_id=trial.trial_id, key=key, value_json=json.dumps(value))
                     for key, value in t.system_attrs.items()]
            session.add_all(rows)
            trial.number = trial.count_past_trials(session)
            ids.append(trial.trial_id)
    return ids


class PercentileRule:
    """Optuna's PercentilePruner (MedianPruner is one) deciding on the mirror's completed trials,
    with each step's percentile computed once per change of that step's values instead of
    from every completed trial at every call. Its checks, in Optuna's order and with Optuna's
    own helpers: startup trials, warmup steps, interval, the trial's best value so far against
    the percentile of the completed trials' values at this step (NaN: not enough of them)."""

    def __init__(self, pruner, maximize: bool):
        self.pruner, self.maximize = pruner, maximize
        self.values: dict[int, list[float]] = {}
        self.n_complete = 0
        self._percentile: dict[int, float] = {}

    @staticmethod
    def supports(pruner) -> bool:
        import optuna

        return type(pruner) in (optuna.pruners.MedianPruner, optuna.pruners.PercentilePruner)

    def add_complete(self, intermediate: dict[int, float]) -> None:
        self.n_complete += 1
        for step, value in intermediate.items():
            self.values.setdefault(step, []).append(value)
            self._percentile.pop(step, None)

    def prune(self, intermediate: dict[int, float], best: float, step: int) -> bool:
        """The decision for a trial whose values are ``intermediate``, the best of them ``best``
        and the newest at ``step`` (the highest step: values come epoch after epoch)."""
        from optuna.pruners._percentile import _is_first_in_interval_step

        p = self.pruner
        if self.n_complete == 0 or self.n_complete < p._n_startup_trials or not intermediate:
            return False
        if step < p._n_warmup_steps:
            return False
        # With an interval of 1, every step above all earlier ones is the first of its interval.
        if p._interval_steps > 1 and not _is_first_in_interval_step(
                step, intermediate.keys(), p._n_warmup_steps, p._interval_steps):
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

        values = self.values.get(step, [])
        if len(values) < self.pruner._n_min_trials:
            return math.nan
        q = 100 - self.pruner._percentile if self.maximize else self.pruner._percentile
        return float(np.nanpercentile(np.array(values, dtype=float), q))


class PruningMirror:
    """An in-memory copy of a study's finished trials on which its pruner decides, and on
    which the random and TPE samplers draw new trials.

    Sampling here reads the copy instead of the storage (TPE reads every finished trial at
    each call) and creates the real trial in one write, with its parameters, instead of one
    write per parameter. The copy has its own copy of the study's sampler (same settings,
    same seed), so the study's sampler stays free for trials claimed from the queue.
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
        self.copy = optuna.create_study(direction=study.direction, pruner=study.pruner, sampler=sampler)
        self.rule = PercentileRule(study.pruner, study.direction.name == "MAXIMIZE") \
            if PercentileRule.supports(study.pruner) else None
        self._seen: set[int] = set()
        self._twins: dict[int, optuna.Trial] = {}  # real trial id -> the copy's trial sampled for it
        self.refresh()

    @staticmethod
    def supports(study: optuna.Study) -> bool:
        return type(study.pruner).__name__ in MIRRORABLE and len(study.directions) == 1

    @property
    def sampler(self):
        """The sampler that draws new trials: the copy's when sampling happens here."""
        return self.copy.sampler if self.samples else self.study.sampler

    def refresh(self, rows: list | None = None) -> None:
        """Copy the study's finished trials that the mirror does not hold yet (other workers').

        ``rows``: the study's trial list as :func:`fcnn_opt.search.ledger.rows` reads it; then only
        the trials missing here are read (none, usually), not the whole study."""
        from optuna.trial import TrialState

        if rows is None:
            finished = self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
            new = [t for t in finished if t.number not in self._seen]
        else:
            new = [self.study._storage.get_trial(r.trial_id) for r in rows
                   if r.state in (TrialState.COMPLETE, TrialState.PRUNED) and r.number not in self._seen]
        for t in new:
            self._seen.add(t.number)
            self.copy.add_trial(t)
            if self.rule is not None and t.state == TrialState.COMPLETE:
                self.rule.add_complete(t.intermediate_values)

    def ask(self, spec, count: int = 1, user_attrs: dict | None = None) -> list[optuna.Trial]:
        """``count`` new trials of the real study whose parameters were drawn on the copy.

        Each is created in one write with its parameters (a journal takes them all in one
        append). A draw that fails falls back to the study's own ``ask``, so the trial meets
        the same error where it is recorded.
        """
        from datetime import datetime

        import optuna
        from optuna.trial import FrozenTrial, TrialState

        from fcnn_opt.search.objective import suggest

        twins, templates, fallback = [], [], []
        for _ in range(count):
            twin = self.copy.ask()
            try:
                suggest(twin, spec)
            except Exception:
                self.copy.tell(twin, state=TrialState.FAIL)
                fallback.append(self.study.ask())
                continue
            drawn = self.copy._storage.get_trial(twin._trial_id)
            twins.append(twin)
            templates.append(FrozenTrial(
                number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                datetime_complete=None, params=drawn.params, distributions=drawn.distributions,
                user_attrs=dict(user_attrs or {}), system_attrs=drawn.system_attrs,
                intermediate_values={}, trial_id=-1))
        study = self.study
        ids = create_trials(study._storage, study._study_id, templates)
        self._twins.update(zip(ids, twins, strict=True))
        return [optuna.Trial(study, trial_id) for trial_id in ids] + fallback

    def drawn_here(self, trial: optuna.Trial) -> bool:
        return trial._trial_id in self._twins

    def reporter(self, trial: optuna.Trial) -> MirrorReporter:
        return MirrorReporter(self, trial, self._twins.pop(trial._trial_id, None))

    def forget(self, trial: optuna.Trial) -> None:
        """Finish the copy's twin of a trial that will not run (refused by the ledger)."""
        from optuna.trial import TrialState

        twin = self._twins.pop(trial._trial_id, None)
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
        self.history: dict[int, float] = {}  # every value reported
        self._written: set[int] = set()  # the steps of history already in the storage
        self.best = math.nan
        self.last_step = -1

    def report(self, value: float, epoch: int) -> bool:
        self.history[epoch] = value
        rule = self.mirror.rule
        if rule is None:
            self.twin.report(value, epoch)
            return self.twin.should_prune()
        if not math.isnan(value):  # the best so far ignores NaN, as Optuna's nanmin/nanmax do
            self.best = value if math.isnan(self.best) else (max if rule.maximize else min)(self.best, value)
        self.last_step = max(self.last_step, epoch)
        return rule.prune(self.history, self.best, self.last_step)

    def store(self, attrs: dict[str, Any]) -> None:
        self.attrs.update(attrs)

    def records(self) -> tuple[int, dict[int, float], dict]:
        """The buffered values and attributes, to write (then call :meth:`written`)."""
        unwritten = {step: value for step, value in self.history.items() if step not in self._written}
        return self.trial._trial_id, unwritten, dict(self.attrs)

    def written(self) -> None:
        """The buffered records are in the storage: nothing is left to write."""
        self._written.update(self.history)
        self.attrs = {}

    def flush(self) -> None:
        """Write everything to the real trial (call before telling it). The buffers empty only
        once the write succeeded, so a retried flush writes everything again."""
        write_trial_records(self.trial.study._storage, [self.records()])
        self.written()

    def close(self, state, value: float | None) -> None:
        """Finish the twin like the real trial, so later decisions count it."""
        from optuna.trial import TrialState

        mirror = self.mirror
        mirror._seen.add(self.trial.number)
        if mirror.rule is not None and mirror.samples_from_history:  # TPE ranks pruned trials by them
            for step, value_at in self.history.items():
                mirror.copy._storage.set_trial_intermediate_value(self.twin._trial_id, step, value_at)
        if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
            mirror.copy.tell(self.twin, value)
            if mirror.rule is not None:
                mirror.rule.add_complete(self.history)
        elif state == TrialState.PRUNED:
            mirror.copy.tell(self.twin, state=TrialState.PRUNED)
        else:
            mirror.copy.tell(self.twin, state=TrialState.FAIL)
