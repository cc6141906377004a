"""What TPE reads of the pruning mirror's trials, kept as they finish instead of rebuilt at each draw.

Optuna's TPE, at every draw, lists the study's trials, regroups the search space over all of
them, sorts the finished ones by value to split them into good (below) and bad (above) ones,
and reads every trial's parameters back into arrays, once per group of parameters: work that
grows with the study (on W2's space, most of the 236 ms a trial took at 3,000 trials). The
mirror's copy of the study (:class:`fcnn_opt.search.mirror.PruningMirror`) lives in a
``LoggedMemoryStorage`` (:func:`logged_memory_storage`), Optuna's in-memory storage that also
notes which trials finished, in order, and which run. A
:class:`TrialIndex` reads that note and appends each finished trial once: its number, state,
value (or a pruned trial's last step and value, as TPE ranks them) and each parameter's
internal value, in columns ordered by trial number. From them it gives the below/above split
(:meth:`TrialIndex.split`) and the observation arrays of any set of parameters
(:meth:`TrialIndex.observations`) exactly as TPE builds them from the trial objects; the
sampler that reads them is :func:`fcnn_opt.store.optuna_internals.indexed_tpe`.

Nothing here uses Optuna's private names: the storage only extends the public methods
through which every trial is created and finished. :meth:`TrialIndex.rebuilt` reads a study
from scratch, so tests compare the two.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

__all__ = ["TrialIndex", "is_logged", "logged_memory_storage"]


def logged_memory_storage() -> optuna.storages.InMemoryStorage:
    """A new ``LoggedMemoryStorage`` (see :func:`_logged_storage_class`; the class is made at
    the first call: it extends Optuna's in-memory storage, whose import waits until a mirror
    is made)."""
    return _logged_storage_class()()


def is_logged(storage: Any) -> bool:
    """Whether ``storage`` is a ``LoggedMemoryStorage`` (:func:`logged_memory_storage`)."""
    return getattr(type(storage), "fcnn_opt_logged", False)


@functools.cache
def _logged_storage_class() -> type:
    """``LoggedMemoryStorage``, made once."""
    import optuna
    from optuna.trial import TrialState

    finished = (TrialState.COMPLETE, TrialState.PRUNED)

    class LoggedMemoryStorage(optuna.storages.InMemoryStorage):
        """Optuna's in-memory storage that also notes, per study, the ids of trials as they
        become complete or pruned (``finished``, in that order) and the ids of those running
        (``running``, in the order they started). Every way a trial is created (``ask``,
        ``add_trial``, a template) or finished (``tell``, a state set directly) goes through
        the two trial methods extended here."""

        fcnn_opt_logged = True

        def __init__(self) -> None:
            super().__init__()
            self.finished: dict[int, list[int]] = {}  # study id -> trial ids, in the order they finished
            self.running: dict[int, dict[int, None]] = {}  # study id -> ids of running trials, in order
            self.indexes: dict[int, TrialIndex] = {}  # study id -> its index, once asked for
            self._study_of: dict[int, int] = {}  # trial id -> study id

        def create_new_study(self, *args: Any, **kwargs: Any) -> int:
            """Optuna's, noting the new study."""
            study_id = super().create_new_study(*args, **kwargs)
            self.finished[study_id], self.running[study_id] = [], {}
            return study_id

        def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
            """Optuna's, noting the new trial as running or finished."""
            trial_id = super().create_new_trial(study_id, template_trial)
            self._study_of[trial_id] = study_id
            self._note(trial_id, TrialState.RUNNING if template_trial is None else template_trial.state)
            return trial_id

        def set_trial_state_values(self, trial_id: int, state: TrialState, values: Any = None) -> bool:
            """Optuna's, noting the trial's new state."""
            changed = super().set_trial_state_values(trial_id, state, values)
            if changed:
                self._note(trial_id, state)
            return changed

        def index(self, study_id: int, maximize: bool) -> TrialIndex:
            """The study's :class:`TrialIndex`, up to date (made at the first call)."""
            index = self.indexes.get(study_id)
            if index is None:
                index = self.indexes[study_id] = TrialIndex(self, study_id, maximize)
            return index.update()

        def _note(self, trial_id: int, state: TrialState) -> None:
            study_id = self._study_of[trial_id]
            if state == TrialState.RUNNING:
                self.running[study_id][trial_id] = None
                return
            self.running[study_id].pop(trial_id, None)
            if state in finished:
                self.finished[study_id].append(trial_id)

    return LoggedMemoryStorage


class TrialIndex:
    """The complete and pruned trials of one study of a ``LoggedMemoryStorage``, as columns
    ordered by trial number, appended to as trials finish (:meth:`update`).

    Columns (:meth:`columns`): ``numbers``; ``complete`` (else pruned); ``values`` (a complete
    trial's value); ``steps`` and ``last``, a pruned trial's rank as TPE sorts pruned trials
    (minus its last step, then its value there, best first, NaN last); and per parameter its
    internal value (NaN where a trial lacks it; an internal value is never NaN). ``categorical``
    names the parameters whose internal values are choice indices. ``arrivals`` holds each
    trial's number and distributions in the order the index took them (the search-space
    groups are built from them); ``system_keys`` every system attribute key seen.
    """

    def __init__(self, storage: Any, study_id: int, maximize: bool):
        self.storage, self.study_id, self.maximize = storage, study_id, maximize
        self.read = 0  # entries of storage.finished[study_id] taken
        self.size = 0
        self._numbers = np.empty(64, dtype=np.int64)
        self._complete = np.empty(64, dtype=bool)
        self._values = np.empty(64)
        self._steps = np.empty(64)  # minus the last step (1 without any), pruned trials
        self._last = np.empty(64)  # the last value as ranked (inf for NaN; negated to maximize)
        self._params: dict[str, np.ndarray] = {}
        self.categorical: set[str] = set()
        self.arrivals: list[tuple[int, dict]] = []
        self.system_keys: set[str] = set()
        self._split: tuple[int, int, np.ndarray] | None = None  # the last split: (size, n_below, below)

    @property
    def numbers(self) -> np.ndarray:
        """The trials' numbers, ascending."""
        return self._numbers[:self.size]

    @property
    def complete(self) -> np.ndarray:
        """Whether each trial is complete (else pruned)."""
        return self._complete[:self.size]

    def column(self, name: str) -> np.ndarray:
        """The internal values of parameter ``name`` (NaN where a trial lacks it)."""
        column = self._params.get(name)
        return column[:self.size] if column is not None else np.full(self.size, np.nan)

    def update(self) -> TrialIndex:
        """Take the trials that finished since the last update; returns self."""
        finished = self.storage.finished[self.study_id]
        while self.read < len(finished):
            self.add(self.storage.get_trial(finished[self.read]))
            self.read += 1
        return self

    def add(self, trial: FrozenTrial) -> None:
        """Append one complete or pruned trial, at its place in number order."""
        from optuna.distributions import CategoricalDistribution

        if self.size == len(self._numbers):
            self._grow()
        at = self.size
        if at and self._numbers[at - 1] > trial.number:  # finished after a later trial: rare
            at = int(np.searchsorted(self._numbers[:self.size], trial.number))
            for column in (self._numbers, self._complete, self._values, self._steps, self._last,
                           *self._params.values()):
                column[at + 1:self.size + 1] = column[at:self.size].copy()
        complete = trial.state.name == "COMPLETE"
        self._numbers[at], self._complete[at] = trial.number, complete
        self._values[at] = trial.value if complete else np.nan
        self._steps[at], self._last[at] = (0.0, 0.0) if complete else self._pruned_key(trial)
        for column in self._params.values():
            column[at] = np.nan
        for name, value in trial.params.items():
            distribution = trial.distributions[name]
            if name not in self._params:
                self._params[name] = np.full(len(self._numbers), np.nan)
            if isinstance(distribution, CategoricalDistribution):  # its internal values are indices
                self.categorical.add(name)
            self._params[name][at] = distribution.to_internal_repr(value)
        self.size += 1
        self.arrivals.append((trial.number, trial.distributions))
        self.system_keys.update(trial.system_attrs)

    def _pruned_key(self, trial: FrozenTrial) -> tuple[float, float]:
        """TPE's rank of a pruned trial (``_get_pruned_trial_score``): its last step, deepest
        first, then its value there, best first, NaN last; no values at all ranks after."""
        if not trial.intermediate_values:
            return 1.0, 0.0
        step, value = max(trial.intermediate_values.items())
        if np.isnan(value):
            return -step, np.inf
        return -step, -value if self.maximize else value

    def _grow(self) -> None:
        grow = len(self._numbers)
        self._numbers = np.concatenate([self._numbers, np.empty(grow, dtype=np.int64)])
        self._complete = np.concatenate([self._complete, np.empty(grow, dtype=bool)])
        for name in ("_values", "_steps", "_last"):
            setattr(self, name, np.concatenate([getattr(self, name), np.empty(grow)]))
        self._params = {k: np.concatenate([v, np.full(grow, np.nan)]) for k, v in self._params.items()}

    def split(self, n_below: int) -> np.ndarray:
        """Which trials TPE counts as good (below) among ``n_below`` (a boolean per trial):
        the best complete ones by value, ties by number, then the best pruned ones by their
        rank, as Optuna's ``_split_trials`` picks them (no trial here is infeasible: the
        sampler checks ``system_keys`` for constraints first)."""
        if self._split is not None and self._split[:2] == (self.size, n_below):  # each group of a draw asks
            return self._split[2].copy()
        below = np.zeros(self.size, dtype=bool)
        complete = np.flatnonzero(self.complete)
        values = self._values[complete]
        order = np.argsort(-values if self.maximize else values, kind="stable")
        taken = min(n_below, len(complete))
        below[complete[order[:taken]]] = True
        left = max(0, n_below - taken)
        pruned = np.flatnonzero(~self.complete)
        if left and len(pruned):
            order = np.argsort(self._last[pruned], kind="stable")
            order = order[np.argsort(self._steps[pruned][order], kind="stable")]
            below[pruned[order[:left]]] = True
        self._split = (self.size, n_below, below)
        return below.copy()

    def observations(self, names: list[str], rows: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The trials among ``rows`` (a boolean per trial) that hold every parameter of
        ``names``: their numbers, and each parameter's internal values (choice indices as
        integers, as TPE's own arrays hold them)."""
        keep = rows.copy()
        for name in names:
            keep &= ~np.isnan(self.column(name))
        at = np.flatnonzero(keep)
        return self.numbers[at], {name: self.column(name)[at] for name in names}

    @classmethod
    def rebuilt(cls, study: optuna.Study) -> TrialIndex:
        """An index of ``study``'s complete and pruned trials read from scratch, in number
        order (to compare with the one kept up to date)."""
        from optuna.trial import TrialState

        index = cls(None, -1, study.direction.name == "MAXIMIZE")
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
            index.add(trial)
        return index

    def columns(self) -> dict[str, np.ndarray]:
        """Every column, by name (the parameters' as ``param:<name>``, those any trial holds)."""
        columns = {"numbers": self.numbers, "complete": self.complete, "values": self._values[:self.size],
                   "steps": self._steps[:self.size], "last": self._last[:self.size]}
        columns.update({f"param:{name}": self.column(name) for name in self._params
                        if not np.isnan(self.column(name)).all()})
        return columns

    def same_as(self, other: TrialIndex) -> bool:
        """Whether two indexes hold the same trials with the same columns (arrivals aside)."""
        mine, theirs = self.columns(), other.columns()
        return (self.categorical == other.categorical and mine.keys() == theirs.keys()
                and all(np.array_equal(mine[k], theirs[k], equal_nan=True) for k in mine))
