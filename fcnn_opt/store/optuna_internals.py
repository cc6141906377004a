"""The one place where fcnn_opt relies on Optuna's private names, with the public way beside it.

fcnn_opt's runner writes a trial in one transaction (or one journal append) when it starts
and one when it ends, reads the trial list with one light query, and beats every running
trial in one write. Optuna's public API does each of these one value per call, which on
SQLite costs more than training a small network. The fast way needs Optuna's private
names; every one of them is used here and nowhere else (``tests/store/test_boundary.py``
parses the package and fails when another module uses one).

Private names relied on, and why:

- ``Study._storage``, ``Study._study_id``, ``Trial._trial_id``, ``FrozenTrial._trial_id``:
  a study's storage and ids, to write trials without going through ``Trial`` objects.
- ``_CachedStorage._backend``: the ``RDBStorage`` inside the cache ``create_study`` wraps
  around it; also to read a study's complete trials alone (:func:`complete_trials`: the cache
  reads every trial, then filters by state).
- ``optuna.storages._rdb.models`` (``StudyModel``, ``StudyUserAttributeModel``, ``TrialModel``,
  ``TrialParamModel``, ``TrialUserAttributeModel``, ``TrialSystemAttributeModel``,
  ``TrialValueModel``, ``TrialIntermediateValueModel``, ``TrialHeartbeatModel``, their
  tables, ``intermediate_value_to_stored_repr``, ``where_trial_id`` and ``NOT_FOUND_MSG``)
  and ``optuna.storages._rdb.storage._create_scoped_session``: one transaction for a batch
  of trials' creation, records, heartbeats or ends, and one query for the trial list (or for
  the trials changed since the last read, or for a study's user attributes, which hold its
  budget). A new trial's number is the study's last number plus
  one, the value Optuna's ``count_past_trials`` counts (see :func:`_next_number`).
- ``TrialValueModel.value_to_stored_repr`` (in ``_rdb.models``): a trial's value inside that
  transaction, as ``set_trial_state_values`` stores it. (Optuna's own
  ``_set_trial_value_without_commit`` changed its signature between 4.3 and 5.0; the
  conformance tests caught it, so the row is written here.)
- ``RDBStorage._get_stale_trial_ids``: trials whose heartbeat is older than the grace
  period, judged on the database server's clock.
- ``RDBStorage._get_trials``, ``_get_best_trial_id``, ``_set_trial_param``: methods of
  Optuna's own that ``ResilientRDBStorage`` retries like the public ones.
- ``optuna.storages.journal._storage.JournalOperation``, ``JournalStorage._thread_lock``,
  ``._backend``, ``._replay_result`` (``.worker_id``, ``._last_created_trial_id_by_this_process``)
  and ``._sync_with_backend``: a batch of journal entries appended under Optuna's own lock
  in one write.
- ``optuna.artifacts._upload.ARTIFACTS_ATTR_PREFIX``: the system attribute under which
  ``upload_artifact`` records a trial's artifact (what optuna-dashboard lists); fcnn_opt
  records a picture there in the trial's end-write and draws the file in the background.
- ``PercentilePruner._n_startup_trials``, ``._n_warmup_steps``, ``._interval_steps``,
  ``._n_min_trials``, ``._percentile`` and ``optuna.pruners._percentile._is_first_in_interval_step``:
  the median/percentile rule decided on the pruning mirror exactly as Optuna decides it.
- ``SuccessiveHalvingPruner._min_resource``, ``._reduction_factor``, ``._min_early_stopping_rate``,
  ``._bootstrap_count`` and ``optuna.pruners._successive_halving._completed_rung_key``: successive
  halving decided on the mirror, and each trial's rung values recorded under Optuna's own
  attribute names, so Optuna's pruner (a worker on the public API) counts them too.
- ``HyperbandPruner._pruners``, ``._max_resource``, ``._try_initialization`` and
  ``._get_bracket_id``: Hyperband decided on the mirror, with Optuna's own brackets (set up as
  Optuna sets them up) and its own assignment of each trial to a bracket.
- ``TPESampler._constant_liar``: the mirror's copy of the sampler lies about the trials other
  workers are running while it holds any (see :class:`fcnn_opt.search.mirror.PruningMirror`).
- ``optuna.samplers._tpe._truncnorm._log_ndtr``: TPE's log of
  the normal distribution function, one Python call per value, is swapped for the same
  function compiled (:mod:`fcnn_opt.store._tpe_compiled`, same bits) while the mirror draws.
- The mirror's TPE reads its trials from an index kept as they finish
  (:func:`indexed_tpe`, :mod:`fcnn_opt.store.mirror_index`): a subclass of ``TPESampler``
  overriding ``_sample``, ``_sample_relative``, ``sample_independent`` and
  ``infer_relative_search_space``, which reads the sampler's ``_rng``, ``_n_ei_candidates``,
  ``_n_startup_trials``, ``_random_sampler``, ``_gamma``, ``_group``, ``_constant_liar``,
  ``_multivariate`` (4.x) or ``_is_multivariate`` (5.x), ``_warn_independent_sampling``,
  ``_constraints_func``, ``_parzen_estimator_cls``, ``_parzen_estimator_parameters``, calls its
  ``_compute_acquisition_func``, ``_compare`` and ``_get_internal_repr`` (for running trials,
  whose parameters 5.x reads from its relative-parameter notes) and
  ``optuna.samplers._tpe.sampler.default_gamma``, builds
  ``optuna.samplers._tpe.parzen_estimator._ParzenEstimator`` estimators, and feeds the
  search-space groups (``_group_decomposed_search_space`` of the private class
  ``_GroupDecomposedSearchSpace``: its ``_search_space``, a ``_SearchSpaceGroup``, and
  ``_study_id``; the result goes to ``_search_space_group``) one trial at a time. Optuna's
  key for constraint values (:data:`CONSTRAINTS_KEY`) sends a study with constraints to
  Optuna's own path. :func:`missing_tpe_names` checks these; without them the mirror's TPE
  is Optuna's own.
- On Optuna 5, :func:`parzen_estimator` builds ``_ParzenEstimator`` itself
  (:func:`_optuna5_estimator`: ``_ParzenEstimatorParameters``, whose ``_fields`` must be
  Optuna 5's; the estimator's ``_search_space``, ``_transform``, ``_call_weights_func`` and
  ``_calculate_categorical_distributions``; ``parzen_estimator.EPS``,
  ``sampler.default_weights``; and from ``probability_distributions``
  ``_BatchedTruncNormDistributions``, ``_BatchedTruncLogNormDistributions``,
  ``_BatchedDiscreteTruncNormDistributions``, ``_BatchedDiscreteTruncLogNormDistributions``
  and ``_MixtureOfProductDistribution``), the numerical parameters' kernel widths operation
  for operation as Optuna computes them but for one sort instead of two; the first build in
  a process is compared with Optuna's own, array for array, and a difference sends every
  later build to Optuna's class.
- For the large "above" estimator, :func:`fast_choice` evaluates the density of the
  estimator's ``_mixture_distribution`` (its ``weights`` and distributions, as 5.x lays
  them out: ``_BatchedCategoricalDistributions`` and numerical ones with ``adapted_low``,
  ``adapted_high``, ``is_log``, ``step``) at the samples ``_transform`` gives, term by term
  as Optuna's ``log_pdf`` does (its Gaussian masses compiled:
  :mod:`fcnn_opt.store._tpe_compiled`).
- ``Trial._cached_frozen_trial``, ``._relative_params``, ``._fixed_params`` (and its public
  ``study``, ``storage``, ``relative_search_space``): :func:`new_trial` gives a trial just
  created in bulk its ``Trial`` object without reading it back, where ``Trial.__init__``
  sets nothing else (:data:`_TRIAL_INIT_NAMES`).

What the releases of the range changed among these: 5.0 renamed the heartbeat callback
(:func:`heartbeat_arguments`) and changed the signature of ``_set_trial_value_without_commit``
(no longer used).
5.1 changed no name above nor what it does: its RDB models gained type annotations over the
same columns, ``record_heartbeat`` reads the server's clock with ``scalar_one()`` instead of
``scalar()`` (the same value), and its percentile pruner returns NaN for a step whose values
are all NaN without NumPy's warning (the same decision; the mirror's rule skips the warning
too). TPE (``_truncnorm``, ``_parzen_estimator``), the journal storage, heartbeats,
successive halving and Hyperband are as in 5.0, so nothing here branches on 5.1.

The fast path is used only when the installed Optuna is inside :data:`TESTED_RANGE` (the
range in pyproject.toml, which CI tests at both ends) and every name above exists. Otherwise,
or with ``FCNN_OPT_PUBLIC_API=1``, every function here takes Optuna's public API
(``study.ask``/``tell``, ``trial.report``, the storage's public methods) and the runner
drops the pruning mirror: the same trials, written one value at a time. One line on
stderr says so, naming the version or the missing name.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import sys
import weakref
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from fcnn_opt.store.mirror_index import is_logged

# The Optuna releases this module was tested with (keep in step with pyproject.toml).
TESTED_RANGE = ((4, 3), (5, 2))  # lower bound included, upper bound excluded
PUBLIC_API_ENV = "FCNN_OPT_PUBLIC_API"

# Class- and module-level private names (instance attributes are checked on first use).
_PRIVATE_NAMES = (
    ("optuna.storages._rdb.models", "StudyModel"),
    ("optuna.storages._rdb.models", "TrialModel"),
    ("optuna.storages._rdb.models", "NOT_FOUND_MSG"),
    ("optuna.storages._rdb.models", "TrialParamModel"),
    ("optuna.storages._rdb.models", "StudyUserAttributeModel"),
    ("optuna.storages._rdb.models", "TrialUserAttributeModel"),
    ("optuna.storages._rdb.models", "TrialSystemAttributeModel"),
    ("optuna.storages._rdb.models", "TrialIntermediateValueModel.intermediate_value_to_stored_repr"),
    ("optuna.storages._rdb.models", "TrialHeartbeatModel.where_trial_id"),
    ("optuna.storages._rdb.storage", "_create_scoped_session"),
    ("optuna.storages._rdb.models", "TrialValueModel.value_to_stored_repr"),
    ("optuna.storages", "RDBStorage._get_stale_trial_ids"),
    ("optuna.storages", "RDBStorage.check_trial_is_updatable"),
    ("optuna.storages", "JournalStorage._sync_with_backend"),
    ("optuna.storages.journal._storage", "JournalOperation.CREATE_TRIAL"),
    ("optuna.storages.journal._storage", "JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE"),
    ("optuna.storages.journal._storage", "JournalOperation.SET_TRIAL_USER_ATTR"),
    ("optuna.storages.journal._storage", "JournalOperation.SET_TRIAL_SYSTEM_ATTR"),
    ("optuna.storages.journal._storage", "JournalOperation.SET_TRIAL_STATE_VALUES"),
    ("optuna.pruners._percentile", "_is_first_in_interval_step"),
    ("optuna.pruners._successive_halving", "_completed_rung_key"),
    ("optuna.artifacts._upload", "ARTIFACTS_ATTR_PREFIX"),
    ("optuna.samplers._tpe._truncnorm", "_log_ndtr"),
    ("optuna.pruners", "HyperbandPruner._try_initialization"),
    ("optuna.pruners", "HyperbandPruner._get_bracket_id"),
)
# Instance attributes, looked for among the names each class's __init__ assigns or reads.
_INSTANCE_NAMES = (
    ("optuna.study", "Study", ("_storage", "_study_id")),
    ("optuna.trial", "Trial", ("_trial_id",)),
    ("optuna.trial", "FrozenTrial", ("_trial_id",)),
    ("optuna.storages._cached_storage", "_CachedStorage", ("_backend",)),
    ("optuna.storages", "JournalStorage", ("_backend", "_thread_lock", "_replay_result")),
    ("optuna.pruners", "PercentilePruner", ("_n_startup_trials", "_n_warmup_steps", "_interval_steps",
                                            "_n_min_trials", "_percentile")),
    ("optuna.pruners", "SuccessiveHalvingPruner", ("_min_resource", "_reduction_factor",
                                                   "_min_early_stopping_rate", "_bootstrap_count")),
    ("optuna.samplers", "TPESampler", ("_constant_liar",)),
    ("optuna.pruners", "HyperbandPruner", ("_pruners", "_max_resource")),
)
# Optuna's own RDBStorage methods that ResilientRDBStorage retries besides the public ones.
RETRIED_PRIVATE_METHODS = ("_get_trials", "_get_best_trial_id", "_get_stale_trial_ids", "_set_trial_param")

_decision: dict[str, Any] = {}  # "fast": bool, "why": str, once per process
_attached: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # study -> storage (public path)
_trial_ids: dict[tuple[int, int, int], int] = {}  # (id(storage), study id, number) -> trial id


def optuna_version() -> tuple[int, ...]:
    """The installed Optuna's version as numbers, ``(major, minor, patch)``; a pre-release
    suffix is dropped (``"4.3.0rc1"`` gives ``(4, 3, 0)``)."""
    import optuna

    parts = []
    for piece in optuna.__version__.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def missing_private_names() -> list[str]:
    """The private names of :data:`_PRIVATE_NAMES` that the installed Optuna lacks."""
    import inspect

    missing = []
    for module_name, dotted in _PRIVATE_NAMES:
        if module_name.startswith("optuna.artifacts."):
            # Read, not imported: importing optuna.artifacts imports boto3 and Google Cloud's
            # client when they are installed (0.1 s in every worker process).
            if not _assigned_in_source(module_name, dotted):
                missing.append(f"{module_name}.{dotted}")
            continue
        if not _resolves(module_name, dotted):
            missing.append(f"{module_name}.{dotted}")
    for module_name, class_name, names in _INSTANCE_NAMES:
        try:
            # unwrapped: Optuna wraps some constructors (TPESampler's checks positional arguments)
            init = inspect.unwrap(getattr(importlib.import_module(module_name), class_name).__init__)
            assigned = set(init.__code__.co_names)
        except (ImportError, AttributeError):
            assigned = set()
        missing += [f"{module_name}.{class_name}().{name}" for name in names if name not in assigned]
    return missing


def _resolves(module_name: str, dotted: str) -> bool:
    """Whether ``dotted`` (``"Class.attr"``) names something in the importable module ``module_name``."""
    try:
        obj: Any = importlib.import_module(module_name)
        for part in dotted.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError):
        return False
    return True


def _assigned_in_source(module_name: str, name: str) -> bool:
    """Whether ``module_name``'s source file assigns ``name`` at module level, read without
    importing it or its package."""
    return _source_assignment(module_name, name) is not None


def _source_assignment(module_name: str, name: str) -> str | None:
    """What ``module_name``'s source file assigns to ``name`` at module level (the text after
    ``=``; "" for an annotation alone), read without importing it or its package; None where
    it assigns nothing to it."""
    import optuna

    path = Path(optuna.__file__).parent.joinpath(*module_name.split(".")[1:]).with_suffix(".py")
    try:
        with path.open(encoding="utf-8") as source:
            for line in source:
                if line.startswith((f"{name} =", f"{name}: ")):
                    return line.split("=", 1)[1].strip() if "=" in line else ""
    except OSError:
        pass
    return None


def range_text() -> str:
    """The tested Optuna range as a requirement specifier, e.g. ``">=4.3,<5.2"``."""
    (lo_major, lo_minor), (hi_major, hi_minor) = TESTED_RANGE
    return f">={lo_major}.{lo_minor},<{hi_major}.{hi_minor}"


def fast_path() -> bool:
    """Whether fcnn_opt may use Optuna's private names (decided once per process).

    False with ``FCNN_OPT_PUBLIC_API=1``, or when the installed Optuna is outside the tested
    range or lacks a private name this module needs; then one line on stderr says why.
    """
    if "fast" not in _decision:
        _decide()
    return _decision["fast"]


def fallback_reason() -> str | None:
    """Why the public path is used (None when the fast path is)."""
    fast_path()
    return _decision.get("why")


def _decide() -> None:
    import optuna

    if os.environ.get(PUBLIC_API_ENV, "") not in ("", "0"):
        _decision.update(fast=False, why=f"${PUBLIC_API_ENV} is set")
        return
    version = optuna_version()
    if not TESTED_RANGE[0] <= version[:2] < TESTED_RANGE[1]:
        _fall_back(f"Optuna {optuna.__version__} is outside the tested range {range_text()}")
        return
    missing = missing_private_names()
    if missing:
        _fall_back(f"Optuna {optuna.__version__} lacks {missing[0]}")
        return
    _decision.update(fast=True, why=None)


def _fall_back(why: str) -> None:
    _decision.update(fast=False, why=why)
    print(f"fcnn_opt: {why}; using Optuna's public API only (same trials, slower runs)", file=sys.stderr)


def reset_decision() -> None:
    """Forget the decision (tests switch ``FCNN_OPT_PUBLIC_API`` within one process)."""
    _decision.clear()
    _trial_ids.clear()


# --- names that differ between the releases of the tested range --------------------------------

def heartbeat_arguments(interval: int, grace: int, max_retry: int) -> dict:
    """RDBStorage's heartbeat arguments, with a callback that queues a stale trial again.

    Optuna 5 renamed ``failed_trial_callback`` to ``heartbeat_stale_trial_callback`` and
    ``RetryFailedTrialCallback`` to ``RetryHeartbeatStaleTrialCallback``; 4.x knows only the
    old names."""
    import inspect

    import optuna

    callback = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None) \
        or optuna.storages.RetryFailedTrialCallback
    accepted = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    key = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in accepted \
        else "failed_trial_callback"
    return {"heartbeat_interval": interval, "grace_period": grace, key: callback(max_retry=max_retry)}


# --- a study's storage and ids ----------------------------------------------------------------

def attach(study, storage) -> None:
    """Remember the storage object ``study`` was opened with (the public path cannot ask the study)."""
    _attached[study] = storage


def storage_of(study):
    """The storage a study reads and writes through."""
    if fast_path():
        return study._storage
    try:
        return _attached[study]
    except KeyError:
        raise RuntimeError("fcnn_opt: this study was not opened by fcnn_opt (open it with "
                           "fcnn_opt.search.runner.create_or_load or load_for_worker)") from None


def study_id_of(study) -> int:
    """The storage id of an ``optuna.Study`` (read from the study on the fast path, else asked
    of its storage by name)."""
    if fast_path():
        return study._study_id
    return storage_of(study).get_study_id_from_name(study.study_name)


def trial_id_of(trial, study=None) -> int:
    """The storage id of an ``optuna.Trial`` (or of a FrozenTrial of ``study``)."""
    if fast_path():
        return trial._trial_id
    return trial_id_for_number(study if study is not None else trial.study, trial.number)


def trial_id_for_number(study, number: int) -> int:
    """The storage id of trial ``number`` (looked up once per process, then remembered)."""
    storage = storage_of(study)
    key = (id(storage), study_id_of(study), number)
    if key not in _trial_ids:
        _trial_ids[key] = storage.get_trial_id_from_study_id_trial_number(key[1], number)
    return _trial_ids[key]


def rdb_backend(storage):
    """The RDBStorage behind ``storage`` (Optuna wraps it in a cache), or None."""
    import optuna

    if fast_path():
        storage = getattr(storage, "_backend", storage)
    return storage if isinstance(storage, optuna.storages.RDBStorage) else None


def complete_trials(study) -> list:
    """The complete trials of ``study``. On a database, one query for those alone: Optuna's
    cache in front of it reads every trial first, a long study's pruned ones and their
    intermediate values included (2 s for 805 trials of diabetes, 35 of them complete), and
    filters afterwards. Public path: ``study.get_trials(states=...)``."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE,)
    backend = rdb_backend(study._storage) if fast_path() else None
    if backend is None:
        return study.get_trials(deepcopy=False, states=states)
    return backend.get_all_trials(study._study_id, deepcopy=False, states=states)


def is_journal(storage) -> bool:
    """Whether ``storage`` is Optuna's journal storage (a journal file, or Redis)."""
    import optuna

    return isinstance(storage, optuna.storages.JournalStorage)


# --- the trial list ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrialRow:
    """One trial as the ledger needs it: no parameters, values or user attributes loaded.

    ``trial_id`` is None on the public path until asked for (:func:`trial_id_for_number`)."""

    trial_id: int | None
    number: int
    state: Any  # optuna.trial.TrialState
    system_attrs: dict  # only the keys asked for
    beat: Any = None  # the last heartbeat: a time (fast path, RDB) or a counter attribute


def trial_rows(study, keys: tuple[str, ...], beat_attr: str, after: tuple[int | None, int] | None = None,
               reread: Sequence[tuple[int | None, int]] = ()) -> list[TrialRow]:
    """Every trial of the study ordered by number, with the system attributes ``keys``; with
    ``after`` (the ``(trial_id, number)`` of the last trial read before), only the trials
    created after it and those of ``reread`` (more such pairs: trials to read again).

    Fast path on RDB: one query joining the trial, system-attribute and heartbeat tables, which
    with ``after`` reads only the rows asked for (the storage numbers a study's trials one at a
    time, under a lock on the study's row, so a later trial has a larger id and number).
    Otherwise the storage's ``get_all_trials`` (the heartbeat is the counter ``beat_attr``).
    """
    storage = storage_of(study)
    backend = rdb_backend(storage)
    if fast_path() and backend is not None:
        return _rdb_rows(backend, study._study_id, keys, after, reread)
    trials = storage.get_all_trials(study_id_of(study), deepcopy=False)
    if after is not None:
        again = {number for _, number in reread}
        trials = [t for t in trials if t.number > after[1] or t.number in again]
    fast = fast_path()
    return [TrialRow(t._trial_id if fast else None, t.number, t.state,
                     {k: t.system_attrs[k] for k in keys if k in t.system_attrs},
                     t.system_attrs.get(beat_attr)) for t in trials]


def _rdb_rows(backend, study_id: int, keys: tuple[str, ...], after: tuple[int | None, int] | None = None,
              reread: Sequence[tuple[int | None, int]] = ()) -> list[TrialRow]:
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    trials = models.TrialModel.__table__
    attrs = models.TrialSystemAttributeModel.__table__
    beats = models.TrialHeartbeatModel.__table__
    if after is not None:
        return _rdb_rows_since(backend, study_id, keys, after[0], [trial_id for trial_id, _ in reread])
    query = (
        sa.select(trials.c.trial_id, trials.c.number, trials.c.state, attrs.c.key, attrs.c.value_json,
                  beats.c.heartbeat)
        .select_from(
            trials.outerjoin(attrs, sa.and_(attrs.c.trial_id == trials.c.trial_id, attrs.c.key.in_(list(keys))))
            .outerjoin(beats, beats.c.trial_id == trials.c.trial_id))
        .where(trials.c.study_id == study_id))
    with backend.engine.connect() as conn:
        result = conn.execute(query).all()
    merged: dict[int, dict] = {}
    for trial_id, number, state, key, value, beat in result:
        row = merged.setdefault(trial_id, {"trial_id": trial_id, "number": number, "state": state,
                                           "system_attrs": {}, "beat": beat})
        if key is not None:
            row["system_attrs"][key] = json.loads(value)
    return sorted((TrialRow(**r) for r in merged.values()), key=lambda r: r.number)


def _rdb_rows_since(backend, study_id: int, keys: tuple[str, ...], after_id: int, reread: list[int]) -> list[TrialRow]:
    """The study's trials with ids above ``after_id`` and those of ``reread``: the trial rows
    by their primary key alone (the study is checked here: PostgreSQL's planner, its
    statistics lagging behind a growing study, scans the whole study by its index when the
    query names it), then their attributes and heartbeats by trial id. Three short queries
    whose cost follows the rows asked for, not the study's size."""
    sql = _rdb_statements()
    with backend.engine.connect() as conn:
        found = conn.execute(sql["trials_since_or"], {"after": after_id, "reread": reread}) if reread \
            else conn.execute(sql["trials_since"], {"after": after_id})
        found = [r for r in found.all() if r[3] == study_id]
        ids = [r[0] for r in found]
        system: dict[int, dict] = {trial_id: {} for trial_id in ids}
        beat: dict[int, Any] = {}
        if ids:
            for trial_id, key, value in conn.execute(sql["system_attrs_of"], {"ids": ids, "keys": list(keys)}):
                system[trial_id][key] = json.loads(value)
            beat = dict(conn.execute(sql["beats_of"], {"ids": ids}).all())
    return sorted((TrialRow(trial_id, number, state, system[trial_id], beat.get(trial_id))
                   for trial_id, number, state, _ in found), key=lambda r: r.number)


def study_user_attrs(backend, study_id: int) -> dict[str, Any]:
    """An RDB study's user attributes in one query (``{}`` on the public path, or where the
    study has none: then ask Optuna, which also says whether the study exists)."""
    if not fast_path():
        return {}
    with backend.engine.connect() as conn:
        rows = conn.execute(_rdb_statements()["study_user_attrs"], {"sid": study_id}).all()
    return {key: json.loads(value) for key, value in rows}


# --- heartbeats ------------------------------------------------------------------------------------

def beats_in_table(storage) -> bool:
    """Whether running trials' heartbeats go to Optuna's heartbeat table (fast path, an RDB
    storage with heartbeats on) rather than to fcnn_opt's counter attribute."""
    backend = rdb_backend(storage)
    return fast_path() and backend is not None and backend.get_heartbeat_interval() is not None


def beat_all(storage, trial_ids: list[int], count: int, beat_attr: str) -> None:
    """One heartbeat for every trial of ``trial_ids``: one transaction of Optuna's heartbeat rows
    (not the retrying ``record_heartbeat``: a lost database must not hold up the trials' end),
    or the counter ``beat_attr`` in one journal append; one write per trial on the public path."""
    if beats_in_table(storage):
        import sqlalchemy
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        backend = rdb_backend(storage)
        with _create_scoped_session(backend.scoped_session, True) as session:
            now = session.execute(sqlalchemy.func.now()).scalar()
            for trial_id in trial_ids:
                beat = models.TrialHeartbeatModel.where_trial_id(trial_id, session, True)
                if beat is None:
                    session.add(models.TrialHeartbeatModel(trial_id=trial_id))
                else:
                    beat.heartbeat = now
        return
    if fast_path() and is_journal(storage):
        from optuna.storages.journal._storage import JournalOperation

        append_journal(storage, [{"op_code": JournalOperation.SET_TRIAL_SYSTEM_ATTR, "trial_id": trial_id,
                                  "system_attr": {beat_attr: count}} for trial_id in trial_ids])
        return
    for trial_id in trial_ids:
        storage.set_trial_system_attr(trial_id, beat_attr, count)


def stale_trial_ids(storage, study_id: int) -> list[int]:
    """Running trials whose table heartbeat is older than the grace period (server clock);
    [] where heartbeats are counters, which the ledger judges by watching them."""
    if not beats_in_table(storage):
        return []
    return list(storage._get_stale_trial_ids(study_id))


def set_state_without_retry(storage, trial_id: int, state) -> bool:
    """Finish a trial with Optuna's own RDB setter, not fcnn_opt's retrying override: when two
    watchers fail the same stale trial, exactly one of them must win."""
    import optuna

    backend = rdb_backend(storage)
    if backend is not None:
        return optuna.storages.RDBStorage.set_trial_state_values(backend, trial_id, state)
    return storage.set_trial_state_values(trial_id, state)


# --- writing many records at once ---------------------------------------------------------------------

def final_value(state, value: float | None, intermediate: dict[int, float]) -> float | None:
    """The value ``study.tell`` stores: a complete trial's value; a pruned trial's last
    intermediate value when it is finite; nothing for a failed trial."""
    from optuna.trial import TrialState

    if state == TrialState.COMPLETE:
        return value
    if state == TrialState.PRUNED and intermediate:
        last = intermediate[max(intermediate)]
        return last if math.isfinite(last) else None
    return None


class TrialRecords(NamedTuple):
    """What a running trial's reporter buffered, to write in one go (a tuple, so it unpacks
    as ``trial_id, intermediate, attrs, system``)."""

    trial_id: int
    intermediate: dict[int, float]  # step -> value, the steps not written yet
    attrs: dict[str, Any]  # user attributes
    system: dict[str, Any]  # system attributes


class Finished(NamedTuple):
    """A trial to finish in the same write as the records: its state and the value
    ``study.tell`` would store (see :func:`final_value`)."""

    trial_id: int
    state: Any  # optuna.trial.TrialState
    value: float | None


def write_trial_records(storage, records: list[TrialRecords], finished: list[Finished] = ()) -> None:
    """Write the intermediate values and user and system attributes of running trials, and
    finish some.

    ``records`` holds ``(trial_id, intermediate_values, user_attrs, system_attrs)`` per trial; ``finished``
    holds ``(trial_id, state, value)`` for trials to finish in the same write (what
    ``study.tell`` stores: the state, the value, the time; see :func:`final_value`). Fast
    path: an RDB storage gets one transaction, a journal one append (one lock, one sync).
    Otherwise each value goes through the storage's public setters.
    """
    records = [r for r in records if r[1] or r[2] or r[3]]
    if not records and not finished:
        return
    backend = rdb_backend(storage)
    if fast_path() and backend is not None:
        import sqlalchemy.exc

        try:  # the rows are new, as they nearly always are
            _write_rdb(backend, records, finished, replace=False)
        except sqlalchemy.exc.IntegrityError:  # some were written before (a retried write): rolled back, so replace them
            _write_rdb(backend, records, finished, replace=True)
    elif fast_path() and is_journal(storage):
        _write_journal(storage, records, finished)
    else:
        for trial_id, intermediate, attrs, system in records:
            for step, value in intermediate.items():
                storage.set_trial_intermediate_value(trial_id, step, value)
            for key, value in attrs.items():
                storage.set_trial_user_attr(trial_id, key, value)
            for key, value in system.items():
                storage.set_trial_system_attr(trial_id, key, value)
        for trial_id, state, value in finished:
            storage.set_trial_state_values(trial_id, state, None if value is None else [value])


@functools.cache
def _rdb_statements():
    """The statements of the trial writes below and of the trial list's reads above, built
    once, the values bound at each call: SQLAlchemy builds a statement's clauses and cache
    key at every construction, which costs three times executing it."""
    import sqlalchemy as sa
    from optuna.storages._rdb import models

    def key_deletes(model, column):
        table = model.__table__
        return sa.delete(table).where(table.c.trial_id == sa.bindparam("tid"),
                                      table.c[column].in_(sa.bindparam("keys", expanding=True)))

    trials, studies, values = models.TrialModel.__table__, models.StudyModel.__table__, models.TrialValueModel.__table__
    state = sa.select(trials.c.state).where(trials.c.trial_id == sa.bindparam("tid"))
    earlier = (trials.c.study_id == sa.bindparam("sid")) & (trials.c.trial_id < sa.bindparam("tid"))
    records = (models.TrialIntermediateValueModel, models.TrialUserAttributeModel, models.TrialSystemAttributeModel)
    attrs, beats = models.TrialSystemAttributeModel.__table__, models.TrialHeartbeatModel.__table__
    study_attrs = models.StudyUserAttributeModel.__table__
    since, after = sa.select(trials.c.trial_id, trials.c.number, trials.c.state, trials.c.study_id), \
        trials.c.trial_id > sa.bindparam("after")
    return {
        "lock_study": sa.select(studies.c.study_id).where(studies.c.study_id == sa.bindparam("sid")).with_for_update(),
        "insert_trial": sa.insert(trials),
        "number_trial": sa.update(trials).where(trials.c.trial_id == sa.bindparam("tid"))
                          .values(number=sa.bindparam("new_number")),
        "last_number": sa.select(trials.c.number).where(earlier).order_by(trials.c.trial_id.desc()).limit(1),
        "count_earlier": sa.select(sa.func.count(trials.c.trial_id)).where(earlier),
        "state": state,
        "state_locked": state.with_for_update(),
        "delete": {model: key_deletes(model, "step" if model is records[0] else "key") for model in records},
        "insert": {model: sa.insert(model.__table__) for model in (*records, models.TrialParamModel)},
        "update_value": sa.update(values).where(values.c.trial_id == sa.bindparam("tid"), values.c.objective == 0)
                          .values(value=sa.bindparam("new_value"), value_type=sa.bindparam("new_kind")),
        "insert_value": sa.insert(values),
        "finish_trial": sa.update(trials).where(trials.c.trial_id == sa.bindparam("tid"))
                          .values(state=sa.bindparam("new_state"), datetime_complete=sa.bindparam("done")),
        # the trial list's incremental reads and a study's user attributes (see _rdb_rows_since)
        "trials_since": since.where(after),
        "trials_since_or": since.where(sa.or_(after, trials.c.trial_id.in_(sa.bindparam("reread", expanding=True)))),
        "system_attrs_of": sa.select(attrs.c.trial_id, attrs.c.key, attrs.c.value_json).where(
            attrs.c.trial_id.in_(sa.bindparam("ids", expanding=True)), attrs.c.key.in_(sa.bindparam("keys", expanding=True))),
        "beats_of": sa.select(beats.c.trial_id, beats.c.heartbeat).where(
            beats.c.trial_id.in_(sa.bindparam("ids", expanding=True))),
        "study_user_attrs": sa.select(study_attrs.c.key, study_attrs.c.value_json).where(
            study_attrs.c.study_id == sa.bindparam("sid")),
    }


def _write_rdb(backend, records, finished, replace: bool) -> None:
    """Bulk rows in one transaction, as SQLAlchemy Core statements built once
    (:func:`_rdb_statements`) on the session's connection, without ORM objects: a check per
    trial, with ``replace`` a delete per table for the rows' keys (rows a retried write may
    have left; without it such a row fails the write with an IntegrityError, and nothing of
    it is kept), one insert batch per table, then each finished trial's value row, state and
    completion time, as Optuna's ``set_trial_state_values`` sets them."""
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    sql = _rdb_statements()
    values = models.TrialIntermediateValueModel
    ending = {trial_id for trial_id, _, _ in finished}
    with _create_scoped_session(backend.scoped_session, replace) as session:
        connection = session.connection()
        checked = set()

        def check(trial_id: int) -> None:  # the trial exists and runs (its row locked where it ends here)
            if trial_id not in checked:
                row = connection.execute(sql["state_locked" if trial_id in ending else "state"], {"tid": trial_id}
                                         ).first()
                if row is None:
                    raise KeyError(models.NOT_FOUND_MSG)
                backend.check_trial_is_updatable(trial_id, row.state)
                checked.add(trial_id)

        rows: dict = {model: [] for model in sql["delete"]}
        for trial_id, intermediate, attrs, system in records:
            check(trial_id)
            kept = {values: intermediate, models.TrialUserAttributeModel: attrs, models.TrialSystemAttributeModel: system}
            for model, keys in kept.items():
                if keys and replace:  # rows a retried write may have left
                    connection.execute(sql["delete"][model], {"tid": trial_id, "keys": list(keys)})
            for step, value in intermediate.items():
                stored, kind = values.intermediate_value_to_stored_repr(value)
                rows[values].append({"trial_id": trial_id, "step": step, "intermediate_value": stored,
                                     "intermediate_value_type": kind})
            for model in (models.TrialUserAttributeModel, models.TrialSystemAttributeModel):
                rows[model] += [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                for key, value in kept[model].items()]
        for model, batch in rows.items():  # one executemany per table
            if batch:
                connection.execute(sql["insert"][model], batch)
        for trial_id, state, value in finished:
            check(trial_id)
            if value is not None:  # the value row, as Optuna's own setter writes it
                stored, kind = models.TrialValueModel.value_to_stored_repr(value)
                if connection.execute(sql["update_value"], {"tid": trial_id, "new_value": stored, "new_kind": kind}
                                      ).rowcount == 0:
                    connection.execute(sql["insert_value"], {"trial_id": trial_id, "objective": 0, "value": stored,
                                                             "value_type": kind})
            connection.execute(sql["finish_trial"], {"tid": trial_id, "new_state": state, "done": datetime.now()})


def _write_journal(storage, records, finished) -> None:
    """The log entries Optuna's own setters write, one per value, appended in one call."""
    from optuna.storages.journal._storage import JournalOperation

    entries = []
    for trial_id, intermediate, attrs, system in records:
        entries += [{"op_code": JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, "trial_id": trial_id,
                     "step": step, "intermediate_value": value} for step, value in intermediate.items()]
        entries += [{"op_code": JournalOperation.SET_TRIAL_USER_ATTR, "trial_id": trial_id,
                     "user_attr": {key: value}} for key, value in attrs.items()]
        entries += [{"op_code": JournalOperation.SET_TRIAL_SYSTEM_ATTR, "trial_id": trial_id,
                     "system_attr": {key: value}} for key, value in system.items()]
    now = datetime.now(tz=UTC).isoformat(timespec="microseconds")
    entries += [{"op_code": JournalOperation.SET_TRIAL_STATE_VALUES, "trial_id": trial_id, "state": state,
                 "values": None if value is None else [value], "datetime_complete": now}
                for trial_id, state, value in finished]
    append_journal(storage, entries)


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


def create_trials(storage, study_id: int, templates: list) -> list[int]:
    """Create a trial from each FrozenTrial template (RUNNING, with its parameters and
    attributes); their ids in order, in one write on the fast path.

    An RDB storage gets one transaction with the rows Optuna's ``create_new_trial`` writes
    (the study row locked while numbers are counted, as Optuna does). The parameters'
    distributions are not compared with earlier trials' here: they were drawn on the
    pruning mirror, whose own storage made that check against the same trials. A journal
    gets Optuna's own CREATE_TRIAL entries in one append (one lock, one sync; an append is
    written whole, so their ids follow each other). Otherwise ``create_new_trial`` each.
    """
    backend = rdb_backend(storage)
    if fast_path() and backend is not None:
        return _create_rdb(backend, study_id, templates)
    if not (fast_path() and is_journal(storage)):
        return [storage.create_new_trial(study_id, template_trial=t) for t in templates]
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
    """The trials' rows in one transaction, as SQLAlchemy Core statements built once
    (:func:`_rdb_statements`) on the session's connection: the study's row locked while
    numbers are counted, each trial's row, then one insert batch per table for their
    parameters and attributes."""
    from optuna.distributions import distribution_to_json
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    sql = _rdb_statements()
    ids = []
    with _create_scoped_session(backend.scoped_session) as session:
        connection = session.connection()
        if connection.execute(sql["lock_study"], {"sid": study_id}).first() is None:
            raise KeyError(models.NOT_FOUND_MSG)
        number = None
        rows: dict = {models.TrialParamModel: [], models.TrialUserAttributeModel: [],
                      models.TrialSystemAttributeModel: []}
        for t in templates:
            trial_id = connection.execute(sql["insert_trial"], {
                "study_id": study_id, "number": number, "state": t.state, "datetime_start": t.datetime_start,
            }).inserted_primary_key[0]
            if number is None:  # numbered after its row exists, as Optuna numbers a new trial
                number = _next_number(connection, study_id, trial_id)
                connection.execute(sql["number_trial"], {"tid": trial_id, "new_number": number})
            rows[models.TrialParamModel] += [
                {"trial_id": trial_id, "param_name": name, "param_value": dist.to_internal_repr(t.params[name]),
                 "distribution_json": distribution_to_json(dist)} for name, dist in t.distributions.items()]
            for model, attrs in ((models.TrialUserAttributeModel, t.user_attrs),
                                 (models.TrialSystemAttributeModel, t.system_attrs)):
                rows[model] += [{"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
                                for key, value in attrs.items()]
            ids.append(trial_id)
            t.number, t._trial_id = number, trial_id  # the template now stands for the trial
            number += 1
        for model, values in rows.items():  # one executemany per table
            if values:
                connection.execute(sql["insert"][model], values)
    return ids


def _next_number(connection, study_id: int, trial_id: int) -> int:
    """The number of the study's new trial ``trial_id`` (its row already written in this
    transaction), as Optuna's ``count_past_trials`` gives it (how many of the study's trials
    have smaller ids), read as the number of the trial just before it plus one: it reads one
    row where counting reads them all (1 ms at 10,000 trials on SQLite). Reading after the
    row is written keeps numbers unique under concurrent workers: on SQLite the write holds
    the database's write lock until the commit, so the trial before it is committed, numbered,
    and no other can come between (on a server database the study's row is locked too); a
    trial before it without a number yet (Optuna's own creation numbers after writing) is
    counted the way Optuna counts."""
    sql, ids = _rdb_statements(), {"sid": study_id, "tid": trial_id}
    last = connection.execute(sql["last_number"], ids).first()
    if last is None:
        return 0
    if last[0] is not None:
        return last[0] + 1
    return connection.execute(sql["count_earlier"], ids).scalar()


# What Optuna's ``Trial.__init__`` reads and sets (4.3 to 5.1); another name there means a newer
# constructor, which :func:`new_trial` then calls instead of standing in for it.
_TRIAL_INIT_NAMES = frozenset({"study", "_trial_id", "_storage", "storage", "get_trial", "_cached_frozen_trial",
                               "pruners", "_filter_study", "sampler", "before_trial", "infer_relative_search_space",
                               "relative_search_space", "_relative_params", "system_attrs", "get", "_fixed_params"})


def new_trial(study, trial_id: int, created):
    """The ``optuna.Trial`` of trial ``trial_id``, which this process just created from the
    template ``created`` (:func:`create_trials` gave it its number), without reading it back
    (``Trial.__init__`` reads the trial from the storage: several queries). It holds what the
    constructor sets; its parameters were drawn on the pruning mirror, so it samples none
    itself (no relative parameters). Where Optuna's constructor sets other names than
    :data:`_TRIAL_INIT_NAMES` (a newer Optuna), or on the public path, that constructor."""
    import inspect

    import optuna

    if not fast_path() or created.number < 0 \
            or not set(inspect.unwrap(optuna.Trial.__init__).__code__.co_names) <= _TRIAL_INIT_NAMES:
        return optuna.Trial(study, trial_id)
    trial = optuna.Trial.__new__(optuna.Trial)
    trial.study, trial._trial_id, trial.storage = study, trial_id, study._storage
    trial._cached_frozen_trial = created
    study.sampler.before_trial(study, created)
    trial.relative_search_space, trial._relative_params = {}, {}
    trial._fixed_params = created.system_attrs.get("fixed_params", {})
    return trial


# --- artifacts -------------------------------------------------------------------------------------

def artifact_attr(artifact_id: str, filename: str, mimetype: str = "image/png") -> tuple[str, str]:
    """The system attribute (key, value) by which ``optuna.artifacts.upload_artifact`` links an
    artifact to its trial, for a file written into the artifact store by other means."""
    meta = {"artifact_id": artifact_id, "filename": filename, "mimetype": mimetype, "encoding": None}
    return _artifacts_attr_prefix() + artifact_id, json.dumps(meta)


@functools.cache
def _artifacts_attr_prefix() -> str:
    """``optuna.artifacts._upload.ARTIFACTS_ATTR_PREFIX``, read from its source: importing
    ``optuna.artifacts`` imports its cloud stores' modules (0.1 s in every process that
    pictures a trial)."""
    import ast

    value = _source_assignment("optuna.artifacts._upload", "ARTIFACTS_ATTR_PREFIX")
    try:
        return ast.literal_eval(value or "")
    except (ValueError, SyntaxError):  # not a plain literal there: ask Optuna
        from optuna.artifacts._upload import ARTIFACTS_ATTR_PREFIX

        return ARTIFACTS_ATTR_PREFIX


# --- the median/percentile rule ---------------------------------------------------------------------

@dataclass(frozen=True)
class PercentileSettings:
    """What Optuna's PercentilePruner (and MedianPruner, its 50th percentile) was built with."""

    n_startup_trials: int
    n_warmup_steps: int
    interval_steps: int
    n_min_trials: int
    percentile: float


def percentile_settings(pruner) -> PercentileSettings | None:
    """The settings of a Median/PercentilePruner (exactly those types), or None."""
    import optuna

    if not fast_path() or type(pruner) not in (optuna.pruners.MedianPruner, optuna.pruners.PercentilePruner):
        return None
    try:
        return PercentileSettings(pruner._n_startup_trials, pruner._n_warmup_steps, pruner._interval_steps,
                                  pruner._n_min_trials, pruner._percentile)
    except AttributeError:
        return None


def is_first_in_interval_step(step: int, steps, n_warmup_steps: int, interval_steps: int) -> bool:
    """Optuna's own test of whether ``step`` is the first reported step of its pruning interval."""
    from optuna.pruners._percentile import _is_first_in_interval_step

    return _is_first_in_interval_step(step, steps, n_warmup_steps, interval_steps)


def _is_tpe(sampler) -> bool:
    """Whether ``sampler`` is Optuna's TPESampler itself (or the mirror's indexed one, :func:`indexed_tpe`)."""
    import optuna

    return type(sampler) is optuna.samplers.TPESampler or getattr(type(sampler), "fcnn_opt_indexed", False)


def lies_about_running(sampler) -> bool:
    """Whether ``sampler`` is a TPESampler built with ``constant_liar=True``."""
    return _is_tpe(sampler) and getattr(sampler, "_constant_liar", False) is True


def lie_about_running(sampler, lie: bool = True) -> bool:
    """Make a TPESampler (exactly that type, or the mirror's indexed one) count the study's
    running trials as bad ones when it draws, as ``constant_liar=True`` does, or not
    (``lie``), in place; False where it cannot (another sampler, or the public path)."""
    if not fast_path() or not _is_tpe(sampler) or not hasattr(sampler, "_constant_liar"):
        return False
    sampler._constant_liar = lie
    return True


@contextmanager
def compiled_tpe_tails():
    """While the block runs, TPE's log of the normal distribution function (Optuna's
    ``_truncnorm._log_ndtr``, one Python call per value: over half of a TPE draw on W2) runs
    compiled (:mod:`fcnn_opt.store._tpe_compiled`: the same operations and C library calls,
    so the same bits).

    Only where Numba is loaded already (the NumPy backend's compiled loop loads it): for
    another backend, Numba's import and its 100 MB would cost more than the draws save.
    Nothing changes with ``FCNN_OPT_NO_JIT=1``, nor on the public path."""
    if not fast_path() or "numba" not in sys.modules or os.environ.get("FCNN_OPT_NO_JIT", "") not in ("", "0"):
        yield
        return
    import numpy as np
    from optuna.samplers._tpe import _truncnorm

    original = _truncnorm._log_ndtr
    if getattr(original, "fcnn_opt_compiled", False):  # already swapped by an enclosing block
        yield
        return
    from fcnn_opt.store._tpe_compiled import log_ndtr as kernel

    def log_ndtr(a):
        a = np.ascontiguousarray(a, dtype=np.float64)
        return kernel(a, np.float_power(a, 2.0))

    log_ndtr.fcnn_opt_compiled = True
    _truncnorm._log_ndtr = log_ndtr
    try:
        yield
    finally:
        _truncnorm._log_ndtr = original


# --- TPE fed from the mirror's trial index ------------------------------------------------------------

CONSTRAINTS_KEY = "constraints"  # Optuna's system attribute (and "constraints:<name>") for constraint values


def indexed_tpe(sampler) -> bool:
    """Make a TPESampler (exactly that type) of the pruning mirror read its trials from the
    mirror's :class:`~fcnn_opt.store.mirror_index.TrialIndex` instead of rescanning them at
    every draw, in place (its class becomes :func:`_indexed_tpe_class`'s, its settings, seed
    and state stay); False where it cannot (another sampler, the public path, a name missing).

    The draws are Optuna's own, bit for bit: the search-space groups are fed each finished
    trial once (feeding one again changes nothing, which is why Optuna's rescan gives the
    same groups), the split and the observation arrays are those Optuna builds from the trial
    objects, and the Parzen estimators, their sampling and the acquisition function are
    Optuna's own code. Where the index cannot stand for the trial list (a Hyperband
    bracket's view of the study, constraints, several objectives) the sampler takes Optuna's
    own path."""
    import optuna

    if not fast_path() or type(sampler) is not optuna.samplers.TPESampler or missing_tpe_names():
        return False
    sampler.__class__ = _indexed_tpe_class()
    return True


@functools.cache
def missing_tpe_names() -> tuple[str, ...]:
    """The private names the indexed TPE needs that the installed Optuna lacks (then the
    mirror's TPE is Optuna's own, unindexed)."""
    import inspect

    import optuna

    missing = []
    for module_name, dotted in (("optuna.samplers._tpe.sampler", "default_gamma"),
                                ("optuna.samplers._tpe.parzen_estimator", "_ParzenEstimator"),
                                ("optuna.search_space.group_decomposed", "_SearchSpaceGroup.add_distributions")):
        if not _resolves(module_name, dotted):
            missing.append(f"{module_name}.{dotted}")
    tpe = optuna.samplers.TPESampler
    missing += [f"TPESampler.{name}" for name in ("_sample", "_sample_relative", "_get_internal_repr",
                                                  "_compute_acquisition_func", "_compare") if not hasattr(tpe, name)]
    assigned = set(inspect.unwrap(tpe.__init__).__code__.co_names)
    missing += [f"TPESampler().{name}" for name in
                ("_rng", "_n_ei_candidates", "_n_startup_trials", "_random_sampler", "_gamma", "_group",
                 "_group_decomposed_search_space", "_search_space_group", "_constant_liar", "_multivariate",
                 "_warn_independent_sampling", "_constraints_func", "_parzen_estimator_cls",
                 "_parzen_estimator_parameters") if name not in assigned]
    group_init = optuna.search_space.group_decomposed._GroupDecomposedSearchSpace.__init__
    missing += [f"_GroupDecomposedSearchSpace().{name}" for name in ("_search_space", "_study_id")
                if name not in group_init.__code__.co_names]
    return tuple(missing)


def _study_index(sampler, study):
    """The mirror's trial index for ``study`` when the indexed TPE may read it, else None."""
    import optuna

    storage = study._storage
    if type(study) is not optuna.Study or not is_logged(storage) \
            or sampler._constraints_func is not None or len(study.directions) != 1:
        return None
    index = storage.index(study._study_id, study.direction == optuna.study.StudyDirection.MAXIMIZE)
    if any(key.split(":")[0] == CONSTRAINTS_KEY for key in index.system_keys):
        return None
    return index


def _optuna_arrays(values: dict, categorical: set) -> dict:
    """Observation arrays as TPE's ``_get_internal_repr`` makes them (``np.asarray`` of a
    list): choice indices as integers, numbers as floats, an empty list as floats."""
    import numpy as np

    return {name: np.asarray([]) if not len(v) else v.astype(np.int64) if name in categorical else v
            for name, v in values.items()}


TIE = 1e-9  # candidates whose compiled acquisition values are this close (relative) go to Optuna's own
COMPILED_FROM = 256  # kernels of the above estimator from which its compiled density is the cheaper


def _compiled_tails_on() -> bool:
    """Whether TPE's compiled pieces may run: the fast path, Numba already loaded, JIT allowed
    (the conditions of :func:`compiled_tpe_tails`)."""
    return fast_path() and "numba" in sys.modules and os.environ.get("FCNN_OPT_NO_JIT", "") in ("", "0")


def fast_choice(mpe_below, mpe_above, samples: dict) -> int | None:
    """The candidate TPE picks among ``samples`` (the index Optuna's ``_compare`` takes from
    ``below.log_pdf - above.log_pdf``), with both estimators' densities evaluated by the
    compiled :func:`~fcnn_opt.store._tpe_compiled.mixture_terms`; None where that cannot
    decide (then the caller evaluates Optuna's own way).

    The compiled sums run in another order than NumPy's, so they may differ from Optuna's in
    the last bits (about 1e-12 at most, on values of order 1 to 100). The pick is taken only
    when the best distinct candidate (identical candidates tie exactly, in both, and the first
    wins) leads the next by more than ``TIE`` relative, a thousand times that: then it is the
    candidate Optuna's own evaluation picks. Otherwise, when a value is not finite, where Numba
    is not loaded, on a mixture laid out otherwise than in Optuna 5 (4.x keeps its bounds in
    other fields), below :data:`COMPILED_FROM` kernels (where NumPy's arrays are small and
    Optuna's own evaluation costs less), or while the compiled density is still being compiled
    (in the background, from half that: see :func:`~fcnn_opt.store._tpe_compiled.mixture_terms_ready`),
    None."""
    import numpy as np

    kernels = len(mpe_above._mixture_distribution.weights)
    if not _compiled_tails_on() or kernels < COMPILED_FROM // 2 or optuna_version() < (5, 0):
        return None
    from fcnn_opt.store._tpe_compiled import mixture_terms_ready

    if not mixture_terms_ready() or kernels < COMPILED_FROM:  # compiled in the background from half way
        return None
    above = _compiled_log_pdf(mpe_above, samples)
    below = _compiled_log_pdf(mpe_below, samples) if above is not None else None
    if below is None:
        return None
    acquisition = below - above
    if not np.all(np.isfinite(acquisition)):
        return None
    first = {}  # each distinct candidate: the index of its first occurrence
    for i, row in enumerate(zip(*(np.asarray(v, dtype=float).tolist() for v in samples.values()), strict=True)):
        if first.setdefault(row, i) != i and acquisition[i] != acquisition[first[row]]:
            return None  # identical candidates, unequal values
    distinct = list(first.values())
    values = acquisition[distinct]
    order = np.argsort(values)
    if len(order) > 1:
        top, second = values[order[-1]], values[order[-2]]
        if top - second <= TIE * max(1.0, abs(top), abs(second)):
            return None
    return distinct[order[-1]]


def _compiled_log_pdf(mpe, samples: dict):
    """``mpe.log_pdf(samples)`` through the compiled mixture density (to rounding), or None
    where the mixture is not laid out as in Optuna 5."""
    import numpy as np
    from optuna.samplers._tpe.probability_distributions import _BatchedCategoricalDistributions

    from fcnn_opt.store._tpe_compiled import mixture_terms

    mixture = mpe._mixture_distribution
    x = np.asarray(mpe._transform(samples), dtype=float)
    n_kernels = len(mixture.weights)
    cats, conts, discs = [], [], []
    for i, d in enumerate(mixture.distributions):
        if isinstance(d, _BatchedCategoricalDistributions):
            cats.append((i, d))
        elif not all(hasattr(d, name) for name in ("adapted_low", "adapted_high", "is_log", "step")):
            return None
        else:
            (conts if d.step == 0.0 else discs).append((i, d))
    with np.errstate(divide="ignore"):
        base = np.log(np.asarray(mixture.weights, dtype=float))
        cat_logw = np.full((len(cats), max([d.weights.shape[1] for _, d in cats], default=1), n_kernels), -np.inf)
        for j, (_, d) in enumerate(cats):
            cat_logw[j, :d.weights.shape[1]] = np.log(d.weights).T
    cat_codes = x[:, [i for i, _ in cats]].astype(np.int64)

    def columns(dists):
        """The samples, bounds and kernels of ``dists``, a dimension a row (a column for samples)."""
        return (x[:, [i for i, _ in dists]], np.asarray([d.adapted_low for _, d in dists], dtype=float),
                np.asarray([d.adapted_high for _, d in dists], dtype=float),
                np.asarray([d.mu for _, d in dists], dtype=float).reshape(len(dists), n_kernels),
                np.asarray([d.sigma for _, d in dists], dtype=float).reshape(len(dists), n_kernels))

    xs, lows, highs, mus, sigmas = columns(conts)
    logged = [j for j, (_, d) in enumerate(conts) if d.is_log]
    xs[:, logged] = np.log(xs[:, logged])
    xd, d_lows, d_highs, d_mus, d_sigmas = columns(discs)
    d_halves = np.asarray([d.step / 2 for _, d in discs], dtype=float)
    d_log = np.asarray([d.is_log for _, d in discs], dtype=np.bool_)
    terms = mixture_terms(*[np.ascontiguousarray(v) for v in (
        base, cat_codes, cat_logw, xs, lows, highs, mus, sigmas, xd, d_lows, d_highs, d_halves, d_log, d_mus,
        d_sigmas)])
    # Optuna's log-sum-exp, with terms more than 700 below a sample's largest (under 1e-304 of
    # it) lifted to that: NumPy's exp is slow where it underflows
    top = terms.max(axis=1)
    empty = np.isneginf(top)
    top[empty] = 0.0
    terms -= top[:, None]
    np.maximum(terms, -700.0, out=terms)
    np.exp(terms, out=terms)
    density = np.log(terms.sum(axis=1)) + top
    density[empty] = -np.inf
    return density


def parzen_estimator(cls, observations: dict, search_space: dict, parameters):
    """``cls(observations, search_space, parameters)``, Optuna's Parzen estimator; where
    ``cls`` is Optuna 5's own ``_ParzenEstimator``, built by :func:`_optuna5_estimator`
    (the same arrays, bit for bit, for less) once the first such build in this process has
    been checked against Optuna's own."""
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    checked = _own_estimator_checked()
    if cls is not _ParzenEstimator or checked is False or parameters.prior_weight < 0:
        return cls(observations, search_space, parameters)
    if checked:
        return _optuna5_estimator(observations, search_space, parameters)
    optunas = cls(observations, search_space, parameters)
    try:
        mine = _optuna5_estimator(observations, search_space, parameters)
        _ESTIMATOR_CHECK["same"] = _same_mixture(mine, optunas)
    except (AttributeError, ImportError, TypeError):  # a name this Optuna lacks
        _ESTIMATOR_CHECK["same"] = False
    return optunas


_ESTIMATOR_CHECK: dict[str, bool] = {}  # "same": whether the first build equalled Optuna's


def _own_estimator_checked() -> bool | None:
    """Whether :func:`_optuna5_estimator` may stand for Optuna's class: None until its first
    build was compared with Optuna's (and never on Optuna 4, whose estimator differs)."""
    return _ESTIMATOR_CHECK.get("same") if _optuna5_estimator_layout() else False


@functools.cache
def _optuna5_estimator_layout() -> bool:
    """Whether the installed Optuna is 5.x with the estimator parameters
    :func:`_optuna5_estimator` reads (decided once: the draws ask at every estimator)."""
    if optuna_version() < (5, 0):
        return False
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimatorParameters

    return set(getattr(_ParzenEstimatorParameters, "_fields", ())) == _OPTUNA5_PARAMETERS


_OPTUNA5_PARAMETERS = {"prior_weight", "consider_magic_clip", "consider_endpoints", "weights", "multivariate"}


def _same_mixture(mine, optunas) -> bool:
    """Whether two Parzen estimators hold the same mixture, array for array, bit for bit."""
    import numpy as np

    a, b = mine._mixture_distribution, optunas._mixture_distribution
    if mine._search_space != optunas._search_space or not np.array_equal(a.weights, b.weights) \
            or len(a.distributions) != len(b.distributions):
        return False
    for x, y in zip(a.distributions, b.distributions, strict=True):
        if type(x) is not type(y) or len(x) != len(y):
            return False
        for u, v in zip(x, y, strict=True):
            if isinstance(u, np.ndarray) or isinstance(v, np.ndarray):
                if not (np.shape(u) == np.shape(v) and np.asarray(u).dtype == np.asarray(v).dtype
                        and np.array_equal(u, v)):
                    return False
            elif not (type(u) is type(v) and u == v):
                return False
    return True


def _optuna5_estimator(observations: dict, search_space: dict, parameters):
    """Optuna 5's ``_ParzenEstimator(observations, search_space, parameters)``, its
    operations one for one, but that each numerical parameter's kernel widths are put back
    in trial order by a scatter through the sorting permutation instead of a second sort (the
    same values: a permutation's inverse), and the categorical ones come from Optuna's own
    method. At 3,000 trials a sort is the costliest step of building the "above" estimator,
    built afresh at every draw."""
    import numpy as np
    from optuna.distributions import CategoricalDistribution
    from optuna.samplers._tpe import probability_distributions as batched
    from optuna.samplers._tpe.parzen_estimator import EPS, _ParzenEstimator
    from optuna.samplers._tpe.sampler import default_weights

    estimator = _ParzenEstimator.__new__(_ParzenEstimator)
    estimator._search_space = search_space
    transformed = estimator._transform(observations)
    n = len(transformed)
    if parameters.weights is default_weights:  # Optuna's own: its checks of a user's function cannot fail
        weights = np.array(default_weights(n))[:n]
    else:
        weights = _ParzenEstimator._call_weights_func(parameters.weights, n)
    weights = np.array([1.0]) if n == 0 else np.append(weights, [parameters.prior_weight])
    weights /= weights.sum()
    distributions = []
    for i, (name, dist) in enumerate(search_space.items()):
        if isinstance(dist, CategoricalDistribution):
            distributions.append(estimator._calculate_categorical_distributions(transformed[:, i], name, dist,
                                                                                parameters))
            continue
        mus, low, high = transformed[:, i], dist.low, dist.high
        if dist.step is not None:
            low -= dist.step / 2
            high += dist.step / 2
        if dist.log:
            mus, low, high = np.log(mus), np.log(low), np.log(high)
        order = np.argsort(mus)
        ends = np.empty(len(mus) + 2, dtype=float)
        ends[0], ends[1:-1], ends[-1] = low, mus[order], high
        sorted_sigmas = np.maximum(ends[1:-1] - ends[0:-2], ends[2:] - ends[1:-1])
        if not parameters.consider_endpoints and ends.shape[0] >= 4:
            sorted_sigmas[0] = ends[2] - ends[1]
            sorted_sigmas[-1] = ends[-2] - ends[-3]
        sigmas = np.empty_like(sorted_sigmas)
        sigmas[order] = sorted_sigmas
        minsigma = (high - low) / min(100.0, (1.0 + n + 1)) if parameters.consider_magic_clip else EPS
        sigmas = np.asarray(np.clip(sigmas, minsigma, high - low))
        mus, sigmas = np.append(mus, [0.5 * (low + high)]), np.append(sigmas, [high - low])
        if dist.step is None:
            kind = batched._BatchedTruncLogNormDistributions if dist.log else batched._BatchedTruncNormDistributions
            distributions.append(kind(mus, sigmas, dist.low, dist.high))
        else:
            kind = (batched._BatchedDiscreteTruncLogNormDistributions if dist.log
                    else batched._BatchedDiscreteTruncNormDistributions)
            distributions.append(kind(mus, sigmas, dist.low, dist.high, dist.step))
    estimator._mixture_distribution = batched._MixtureOfProductDistribution(weights=weights,
                                                                            distributions=distributions)
    return estimator


@functools.cache
def _indexed_tpe_class():
    """Optuna's TPESampler, reading the mirror's trial index (see :func:`indexed_tpe`)."""
    import copy
    import inspect

    import numpy as np
    import optuna
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator
    from optuna.samplers._tpe.sampler import default_gamma

    repr_takes_study = "study" in inspect.signature(optuna.samplers.TPESampler._get_internal_repr).parameters

    class IndexedTPESampler(optuna.samplers.TPESampler):
        """TPE whose trial lists, split and observations come from the mirror's index."""

        fcnn_opt_indexed = True
        fcnn_opt_fed = 0  # how many of the index's arrivals the search-space groups were fed

        def _multivariate_for(self, study) -> bool:
            if hasattr(optuna.samplers.TPESampler, "_is_multivariate"):  # Optuna 5: None means by objectives
                return self._is_multivariate(study)
            return self._multivariate

        def infer_relative_search_space(self, study, trial):
            index = _study_index(self, study)
            if index is None or not self._group:
                return super().infer_relative_search_space(study, trial)
            if not self._multivariate_for(study):
                return {}
            # Optuna's _GroupDecomposedSearchSpace.calculate adds every finished trial's
            # distributions again at each call; a trial added before changes nothing, so the
            # groups are the same when each is added once, new ones in number order.
            space = self._group_decomposed_search_space
            if space._study_id is None:
                space._study_id = study._study_id
            for _, distributions in sorted(index.arrivals[self.fcnn_opt_fed:], key=lambda a: a[0]):
                space._search_space.add_distributions(distributions)
            self.fcnn_opt_fed = len(index.arrivals)
            self._search_space_group = copy.deepcopy(space._search_space)
            search_space = {}
            for sub_space in self._search_space_group.search_spaces:
                for name, distribution in sorted(sub_space.items()):
                    if not distribution.single():
                        search_space[name] = distribution
            return search_space

        def _sample_relative(self, study, trial, search_space):
            index = _study_index(self, study)
            if index is None:
                return super()._sample_relative(study, trial, search_space)
            if search_space == {} or index.size < self._n_startup_trials:
                return {}
            return self._sample(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            index = _study_index(self, study)
            if index is None or (self._warn_independent_sampling and self._multivariate_for(study)
                                 and index.size >= self._n_startup_trials):  # Optuna's warning: its own path
                return super().sample_independent(study, trial, param_name, param_distribution)
            if index.size < self._n_startup_trials:
                return self._random_sampler.sample_independent(study, trial, param_name, param_distribution)
            return self._sample(study, trial, {param_name: param_distribution})[param_name]

        def _sample(self, study, trial, search_space):
            index = _study_index(self, study)
            if index is None:
                return super()._sample(study, trial, search_space)
            if self._gamma is None:  # Optuna 5 picks the single-objective default at the first split
                self._gamma = default_gamma
            names = list(search_space)
            below = index.split(self._gamma(index.size))
            _, observed_below = index.observations(names, below)
            numbers, observed_above = index.observations(names, ~below)
            if self._constant_liar:
                numbers, observed_above = self._with_running(study, trial, search_space, numbers, observed_above)
            estimators = []
            for observed in (observed_below, observed_above):
                estimator = parzen_estimator(self._parzen_estimator_cls, _optuna_arrays(observed, index.categorical),
                                             search_space, self._parzen_estimator_parameters)
                if not isinstance(estimator, _ParzenEstimator):
                    raise RuntimeError("_parzen_estimator_cls must override _ParzenEstimator.")
                estimators.append(estimator)
            mpe_below, mpe_above = estimators
            samples_below = mpe_below.sample(self._rng.rng, self._n_ei_candidates)
            pick = fast_choice(mpe_below, mpe_above, samples_below)
            if pick is None:  # Optuna's own evaluation decides
                acquisition = self._compute_acquisition_func(samples_below, mpe_below, mpe_above)
                drawn = optuna.samplers.TPESampler._compare(samples_below, acquisition)
            else:
                drawn = {name: values[pick].item() for name, values in samples_below.items()}
            return {name: dist.to_external_repr(drawn[name]) for name, dist in search_space.items()}

        def _with_running(self, study, trial, search_space, numbers, observed):
            """Add the running trials (but ``trial``) that hold every parameter of the search
            space, read as Optuna reads them, in number order among the others."""
            storage = study._storage
            extra_numbers, extra = [], {name: [] for name in search_space}
            for trial_id in storage.running[study._study_id]:
                running = storage.get_trial(trial_id)
                if running.number == trial.number:
                    continue
                values = (self._get_internal_repr([running], search_space, study) if repr_takes_study
                          else self._get_internal_repr([running], search_space))
                if len(values[next(iter(search_space))]):
                    extra_numbers.append(running.number)
                    for name in search_space:
                        extra[name].append(float(values[name][0]))
            if not extra_numbers:
                return numbers, observed
            numbers = np.concatenate([numbers, np.asarray(extra_numbers, dtype=np.int64)])
            order = np.argsort(numbers, kind="stable")
            return numbers[order], {name: np.concatenate([observed[name], np.asarray(extra[name])])[order]
                                    for name in search_space}

    return IndexedTPESampler


@dataclass(frozen=True)
class RungSettings:
    """What Optuna's SuccessiveHalvingPruner was built with (``min_resource`` given, not "auto")."""

    min_resource: int
    reduction_factor: int
    min_early_stopping_rate: int
    bootstrap_count: int


def rung_settings(pruner) -> RungSettings | None:
    """The settings of a SuccessiveHalvingPruner (exactly that type) with a fixed first rung, or None."""
    import optuna

    if not fast_path() or type(pruner) is not optuna.pruners.SuccessiveHalvingPruner:
        return None
    try:
        settings = RungSettings(pruner._min_resource, pruner._reduction_factor, pruner._min_early_stopping_rate,
                                pruner._bootstrap_count)
    except AttributeError:
        return None
    return settings if isinstance(settings.min_resource, int) else None


def is_hyperband(pruner) -> bool:
    """Whether ``pruner`` is a HyperbandPruner (exactly that type) and the fast path is on."""
    import optuna

    return fast_path() and type(pruner) is optuna.pruners.HyperbandPruner


def hyperband_brackets(pruner, study, complete_seen: bool) -> list[RungSettings] | None:
    """The successive-halving settings of a HyperbandPruner's brackets, or None while it has
    none. Optuna sets them up at its first decision once it knows its largest resource: given,
    or with ``max_resource="auto"`` the longest complete trial's steps (``complete_seen``: the
    study has a complete trial; until then it is not asked, which would read the storage)."""
    if not pruner._pruners and (complete_seen or isinstance(pruner._max_resource, int)):
        pruner._try_initialization(study)
    if not pruner._pruners:
        return None
    settings = [rung_settings(bracket) for bracket in pruner._pruners]
    return None if any(s is None for s in settings) else settings


def hyperband_bracket(pruner, study, number: int) -> int:
    """The bracket of trial ``number``, as Optuna assigns it (by the study's name and the number)."""
    from types import SimpleNamespace

    return pruner._get_bracket_id(study, SimpleNamespace(number=number))


def rung_key(rung: int) -> str:
    """The system attribute under which Optuna's successive halving records a trial's value at ``rung``."""
    from optuna.pruners._successive_halving import _completed_rung_key

    return _completed_rung_key(rung)
