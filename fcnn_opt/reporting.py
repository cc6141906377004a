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
        self.trial = trial

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


def write_trial_records(storage, trial_id: int, intermediate: dict[int, float], attrs: dict) -> None:
    """Write intermediate values and user attributes of a running trial in one transaction."""
    from optuna.storages import RDBStorage

    backend = getattr(storage, "_backend", storage)  # RDBStorage sits inside Optuna's cache
    if isinstance(backend, RDBStorage):
        _write_rdb(backend, trial_id, intermediate, attrs)
        return
    for step, value in intermediate.items():  # journal and in-memory storages are cheap already
        storage.set_trial_intermediate_value(trial_id, step, value)
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)


def _write_rdb(backend, trial_id: int, intermediate: dict[int, float], attrs: dict) -> None:
    """Bulk rows through Optuna's own models: one trial check, two deletes, one insert batch."""
    import json

    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    values = models.TrialIntermediateValueModel
    user = models.TrialUserAttributeModel
    with _create_scoped_session(backend.scoped_session, True) as session:
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        backend.check_trial_is_updatable(trial_id, trial.state)
        if intermediate:
            session.query(values).filter(values.trial_id == trial_id,
                                         values.step.in_(list(intermediate))).delete()
        if attrs:
            session.query(user).filter(user.trial_id == trial_id, user.key.in_(list(attrs))).delete()
        rows = []
        for step, value in intermediate.items():
            stored, kind = values.intermediate_value_to_stored_repr(value)
            rows.append(values(trial_id=trial_id, step=step, intermediate_value=stored,
                               intermediate_value_type=kind))
        rows += [user(trial_id=trial_id, key=key, value_json=json.dumps(value)) for key, value in attrs.items()]
        session.add_all(rows)


class PruningMirror:
    """An in-memory copy of a study's finished trials on which its pruner decides."""

    def __init__(self, study: optuna.Study):
        import optuna

        self.study = study
        self.copy = optuna.create_study(direction=study.direction, pruner=study.pruner,
                                        sampler=optuna.samplers.RandomSampler(seed=0))
        self._seen: set[int] = set()
        self.refresh()

    @staticmethod
    def supports(study: optuna.Study) -> bool:
        return type(study.pruner).__name__ in MIRRORABLE and len(study.directions) == 1

    def refresh(self) -> None:
        """Copy the study's finished trials that the mirror does not hold yet (other workers')."""
        from optuna.trial import TrialState

        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            if t.number not in self._seen:
                self._seen.add(t.number)
                self.copy.add_trial(t)

    def reporter(self, trial: optuna.Trial) -> MirrorReporter:
        return MirrorReporter(self, trial)


class MirrorReporter:
    """Reports to a mirrored trial; the real trial is written once, at the end."""

    def __init__(self, mirror: PruningMirror, trial: optuna.Trial):
        self.mirror, self.trial = mirror, trial
        self.twin = mirror.copy.ask()  # parameters do not matter to these pruners
        self.intermediate: dict[int, float] = {}
        self.attrs: dict[str, Any] = {}

    def report(self, value: float, epoch: int) -> bool:
        self.intermediate[epoch] = value
        self.twin.report(value, epoch)
        return self.twin.should_prune()

    def store(self, attrs: dict[str, Any]) -> None:
        self.attrs.update(attrs)

    def flush(self) -> None:
        """Write everything to the real trial (call before telling it)."""
        write_trial_records(self.trial.study._storage, self.trial._trial_id, self.intermediate, self.attrs)
        self.intermediate, self.attrs = {}, {}

    def close(self, state, value: float | None) -> None:
        """Finish the twin like the real trial, so later decisions count it."""
        from optuna.trial import TrialState

        self.mirror._seen.add(self.trial.number)
        if state == TrialState.COMPLETE and value is not None and math.isfinite(value):
            self.mirror.copy.tell(self.twin, value)
        elif state == TrialState.PRUNED:
            self.mirror.copy.tell(self.twin, state=TrialState.PRUNED)
        else:
            self.mirror.copy.tell(self.twin, state=TrialState.FAIL)
