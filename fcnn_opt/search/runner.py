"""Running or resuming a study in a storage (samplers and pruners by name: :mod:`.samplers`, :mod:`.pruners`).

    >>> from fcnn_opt.search.space import load_spec
    >>> from fcnn_opt.search.runner import run_study
    >>> summary = run_study(load_spec("studies/seed_grid.toml"), storage="sqlite:///study.db")

A study's budget is a total for the study, not for one run or one process: running the
same command again continues where the last run stopped and runs only what is missing,
and any number of workers (:mod:`fcnn_opt.search.workers`) share it exactly. The study stores
its own definition (the parsed study file, as JSON) and its budget, so a worker needs
only the storage URL and the study name. The grid sampler's points are put in the
study's queue once, each point runs exactly once even with many workers, and a point
whose trial failed is queued again by the next run. :mod:`fcnn_opt.search.ledger` explains how.

The worker loop (:func:`run_trials`) delegates: :class:`~fcnn_opt.search.plan.RunPlan` is what
it needs of the study file, resolved once; :class:`~fcnn_opt.search.trial_source.TrialSource`
hands out the next trials and takes them back to run (ledger, pruning mirror, stale watch);
:mod:`fcnn_opt.search.summary` and :mod:`fcnn_opt.search.progress` report.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import product
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fcnn_opt.search import anneal, ledger
from fcnn_opt.search.ledger import NextStep
from fcnn_opt.search.objective import Objective
from fcnn_opt.search.outcomes import sigterm_as_interrupt
from fcnn_opt.search.plan import BUDGET_ATTR, RunPlan, budget_of
from fcnn_opt.search.progress import close_bar, progress_bar, update_bar
from fcnn_opt.search.pruners import make_pruner
from fcnn_opt.search.samplers import make_sampler
from fcnn_opt.search.sizes import check_sizes
from fcnn_opt.search.space import StudySpec, parse_spec
from fcnn_opt.search.summary import (
    Continued,
    RunSummary,
    data_summary,
    failing,
    fill_final,
    new_summary,
)
from fcnn_opt.search.trial_source import TrialSource, database_pause, raise_if_lost
from fcnn_opt.show.artifacts import TrialPictures, picture_mode
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.artifact_files import (
    DATA_COPY_ATTR,
    local_data_args,
    make_folder,
    save_data_copy,
)
from fcnn_opt.store.artifact_files import artifact_dir as default_artifact_dir
from fcnn_opt.store.storages import (
    default_url,
    heartbeat_settings,
    mask_url,
    open_storage,
    retrying,
)

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

SPEC_ATTR = "fcnn_opt_fingerprint"
DEFINITION_ATTR = "spec"  # the parsed study file as a TOML-shaped dict (JSON in the storage)

# Only what is defined here: the plan, ledger, summary and registries have their own modules.
__all__ = ["DEFINITION_ATTR", "SPEC_ATTR", "StudyError", "as_stored", "check_engine", "create_or_load",
           "enqueue_grid", "load_for_worker", "prepare_study", "run_study", "run_trials", "trial_artifacts"]


class StudyError(ValueError):
    """A study that cannot be created, loaded or run as asked."""


def create_or_load(spec: StudySpec, storage: BaseStorage, study_name: str, *,
                   concurrent: bool = False) -> optuna.Study:
    """Create the study, or load it after checking that it was defined the same way.

    Stores the definition and the budget in the study (updated on every call, so the last
    ``study`` command's sampler, pruner and ``n_trials`` are what workers use).
    """
    import optuna

    plan = RunPlan.of(spec)
    try:
        study = retrying(  # safe to repeat: a study created by a lost commit is loaded
            optuna.create_study, storage=storage, study_name=study_name, directions=spec.directions,
            load_if_exists=True, sampler=make_sampler(spec.sampler, spec.seed, spec, concurrent=concurrent),
            pruner=make_pruner(spec.pruner, spec), what="creating the study")
    except Exception as exc:
        raise_if_lost(exc)  # failing past the retries (a server gone, a file that cannot be written): one line
        raise
    internals.attach(study, storage)
    attrs = study.user_attrs
    stored = attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, plan.fingerprint)
        study.set_user_attr("dataset", spec.dataset)
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("source", spec.source)
    elif stored != plan.fingerprint:
        raise StudyError(
            f"Study {study_name!r} already exists with a different dataset, metric or search space. "
            "Use --study-name to start a new study, or run it with its original settings.")
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != spec.directions:
        raise StudyError(f"Study {study_name!r} exists with direction(s) {', '.join(stored_directions)}, "
                         f"not {', '.join(spec.directions)}.")
    definition = spec.to_dict()
    for key, value in (("sampler", spec.sampler), (DEFINITION_ATTR, definition), (BUDGET_ATTR, plan.default_budget)):
        if attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def as_stored(spec: StudySpec, storage: str | None, study_name: str) -> StudySpec:
    """``spec``, or where a study named ``study_name`` exists and was made from the same file
    without the table defaults (by a release that had none, see
    :meth:`StudySpec.without_table_defaults`), the spec it was made with: resuming it goes
    on as it began (one validation split, no refit), rather than being refused as another
    study."""
    if not spec.table_defaults:
        return spec
    storage = open_storage(storage or default_url(), read_only=True)
    try:
        study_id = storage.get_study_id_from_name(study_name)
    except KeyError:
        return spec
    stored = storage.get_study_user_attrs(study_id).get(SPEC_ATTR)
    older = spec.without_table_defaults()
    return older if stored == older.fingerprint() != spec.fingerprint() else spec


def load_for_worker(storage: BaseStorage, study_name: str, *, worker_id: int | None = None,
                    concurrent: bool = False, artifact_dir: str | Path | None = None) -> tuple[optuna.Study, StudySpec]:
    """Load a study created by ``study`` with the sampler and pruner it was defined with.

    Its own data file, if missing on this machine, is read from the study's copy in the
    artifact folder (``artifact_dir``, the recorded one or ``$FCNN_OPT_ARTIFACTS``).

    Worker ``k`` seeds its sampler with the study's seed + ``k``, so workers never draw the
    same points; without a worker id the sampler is seeded at random.
    """
    import optuna

    try:
        attrs = optuna.load_study(study_name=study_name, storage=storage).user_attrs
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        where = mask_url(getattr(storage, "url", "") or "the storage")
        raise StudyError(f"No study named {study_name!r} in {where}. "
                         f"Studies there: {', '.join(names) or 'none'}.") from None
    if DEFINITION_ATTR not in attrs:
        raise StudyError(f"Study {study_name!r} has no stored definition (it was not created by "
                         "fcnn_opt, or by an older version); create it with "
                         "`python -m fcnn_opt study --config FILE --create-only`.")
    definition = dict(attrs[DEFINITION_ATTR])
    definition["dataset"] = local_data_args(definition.get("dataset", {}), attrs, artifact_dir)
    spec = parse_spec(definition, source=f"study {study_name!r}", table_defaults=False)
    if attrs.get(SPEC_ATTR) not in (None, spec.fingerprint()):
        raise StudyError(f"Study {study_name!r}: the stored definition does not match its fingerprint.")
    seed = None if worker_id is None else spec.seed + worker_id
    study = optuna.load_study(study_name=study_name, storage=storage, pruner=make_pruner(spec.pruner, spec),
                              sampler=make_sampler(spec.sampler, seed, spec, concurrent=concurrent))
    internals.attach(study, storage)
    return study, spec


def enqueue_grid(study: optuna.Study, spec: StudySpec) -> int:
    """Queue the grid points that have no complete, pruned, waiting or running trial, in grid
    order, as many as the budget has room for (all of them unless ``n_trials`` is smaller);
    returns how many were queued.

    Two processes doing this at the same moment can queue a point twice; the ledger then
    lets only the first of the two run (see :mod:`fcnn_opt.search.ledger`).
    """
    grid = spec.grid()
    names = list(grid)
    taken = {r.point for r in ledger.rows(study)
             if r.point is not None and not r.skipped
             and r.state.name in ("COMPLETE", "PRUNED", "WAITING", "RUNNING")}
    room = budget_of(spec) - len(taken)
    added = 0
    for values in product(*grid.values()):
        params = dict(zip(names, values, strict=True))
        if added < room and ledger.grid_point(params) not in taken:
            study.enqueue_trial(params)
            added += 1
    return added


def run_trials(study: optuna.Study, spec: StudySpec, objective: Objective, summary: RunSummary, *,
               timeout: float | None = None, progress: bool = True, batch_trials: int = 1,
               device: str = "cpu") -> RunSummary:
    """The worker loop: claim or ask trials and run them until the study's budget is done.

    Every process running a study, one or many, on one machine or many, runs this loop.
    It stops when the study has ``budget`` complete or pruned trials, when a grid has no
    point left to run, on timeout, or on Ctrl-C/SIGTERM (the running trial is recorded as
    failed, then ``summary.interrupted`` is set). While other workers' trials run and no
    slot is free it waits: one of them may fail or go stale and need a replacement.
    With ``batch_trials`` K > 1, up to K trials are claimed at once and trained together
    by the population engine (:mod:`fcnn_opt.search.batches`) on ``device``.
    Returns ``summary``, filled in (see :func:`fcnn_opt.search.summary.fill_final`).
    """
    # This loop records heartbeats itself (see ledger.heartbeat), which Optuna cannot know.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    plan = RunPlan.of(spec, budget=summary.budget, timeout=timeout, batch_trials=batch_trials, device=device)
    summary.time_budget = plan.timeout
    start = time.perf_counter()
    bar = progress_bar(progress, summary.budget, summary.counts, plan.timeout)
    source = TrialSource(study, plan)
    try:
        with sigterm_as_interrupt():
            _loop(source, objective, summary, bar, start)
    except KeyboardInterrupt:
        source.fail_unfinished()
        summary.interrupted = True
    finally:
        objective.stop_at = None
        summary.ran += source.ran
        summary.skipped += source.skipped
        close_bar(bar, start, plan.timeout)
    summary.seconds = time.perf_counter() - start
    fill_final(summary, study, spec)
    return summary


WAIT_FIRST, WAIT_GROWTH = 0.02, 1.25  # seconds, and the factor between pauses, while waiting on others


def _loop(source: TrialSource, objective: Objective, summary: RunSummary, bar: Any, start: float) -> None:
    """Claim and run trials until the budget or grid is done, the time is up (counted from
    ``start``), too many trials failed, or the time left is too short to continue a trial."""
    plan, study = source.plan, source.study
    poll = min(1.0, heartbeat_settings()[0] / 2)
    idle = WAIT_FIRST  # the next pause while others hold the study's last trials
    failing_since = None
    while plan.timeout is None or time.perf_counter() - start <= plan.timeout:
        if plan.anneal_from is not None and time.perf_counter() - start >= plan.anneal_from:
            seconds_left = plan.timeout - (time.perf_counter() - start)
            if _continue_best(study, plan.spec, summary, seconds_left) is NextStep.STOP:
                break
        try:
            claim = source.next_trials(plan.batch_trials)
            failing_since = None
        except Exception as exc:  # a dropped connection: look again after a pause
            failing_since = database_pause(exc, failing_since, poll)
            continue
        update_bar(bar, study, claim.counts, claim.budget, plan.timeout and (plan.timeout, start))
        if claim.step is NextStep.DONE:
            break
        if not claim.trials:
            # Look again soon, then less often: the others' last trials usually end
            # within a fraction of a second, and a fixed pause of ``poll`` made the
            # end of a study with two workers wait 0.5 s on average for nothing.
            time.sleep(idle)
            idle = min(poll, idle * WAIT_GROWTH)
            continue
        idle = WAIT_FIRST
        # Past the time budget a trial still training stops at its next epoch, recorded as
        # pruned, once the study has a complete trial to hand over (the first one runs to its end).
        objective.stop_at = start + plan.timeout if plan.timeout is not None and claim.counts.complete else None
        summary.count(source.run(claim, objective))
        summary.stopped = failing(summary, claim.budget) or ""
        if summary.stopped:
            break


def _continue_best(study: optuna.Study, spec: StudySpec, summary: RunSummary, seconds_left: float) -> NextStep:
    """Queue the next continuation if one fits in the time left: ``QUEUED``, ``SEARCH`` (nothing
    to continue yet) or ``STOP`` (too little time)."""
    step = anneal.continue_best(study, spec, seconds_left)
    if isinstance(step, anneal.Continuation):
        summary.continued.append(Continued(step.trial, step.added))
        return NextStep.QUEUED
    return step


def check_engine(spec: StudySpec, batch_trials: int) -> None:
    """Refuse what the population engine cannot train: a learning rate that decays (epochs a
    resource with ``decay``) is NumPy's one-trial-at-a-time engine's alone."""
    if batch_trials > 1 and spec.decay_epochs:
        raise StudyError(f"--batch-trials {batch_trials}: the population engine keeps the learning rate "
                         f"constant, and this study lowers it over each trial's last {spec.decay_epochs} epochs "
                         "(epochs.decay). Use --batch-trials 1, or set decay = 0 in [params].epochs.")


def run_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
              timeout: float | None = None, progress: bool = True,
              objective: Objective | None = None, batch_trials: int = 1,
              device: str = "cpu", artifacts: str | bool = "complete",
              artifact_dir: str | Path | None = None, allow_large: bool = False,
              snapshots: int = 0) -> RunSummary:
    """Create or resume the study and run trials in this process until its budget or grid is done.

    With ``batch_trials`` K > 1, K trials are asked at once and trained together by the
    population engine (:mod:`fcnn_opt.training.population`) on ``device``, then told one by one.

    Each trial's weights go to the artifact folder ``artifact_dir`` (default: ``artifacts/``
    beside the database, see :func:`fcnn_opt.store.artifact_files.artifact_dir`), and so do
    the pictures ``artifacts`` asks for (``"complete"`` by default, ``"all"``, ``"best"`` or
    ``"none"``; ``True``/``False`` mean complete/none), shown by optuna-dashboard.
    """
    spec = as_stored(spec, storage, study_name or spec.name)
    check_engine(spec, batch_trials)
    study, summary = prepare_study(spec, storage=storage, study_name=study_name, concurrent=batch_trials > 1,
                                   batch_trials=batch_trials, allow_large=allow_large, artifact_dir=artifact_dir)
    objective = objective or Objective(spec, snapshots=snapshots)
    summary.data = data_summary(spec, objective)
    with trial_artifacts(objective, storage, artifacts, artifact_dir):
        return run_trials(study, spec, objective, summary, timeout=timeout, progress=progress,
                          batch_trials=batch_trials, device=device)


@contextmanager
def trial_artifacts(objective: Objective, storage: str | None, pictures: str | bool = "complete",
                    directory: str | Path | None = None) -> Iterator[None]:
    """While the block runs, the objective writes each trial's weights into the artifact folder
    and pictures the trials ``pictures`` names (drawn in the background on the fast path; see
    :mod:`fcnn_opt.show.artifacts`). The block ends when the last picture is written."""
    folder = Path(directory) if directory is not None else default_artifact_dir(storage)
    make_folder(folder)  # created now: a folder that cannot be made fails before any trial
    mode = picture_mode(pictures)
    saved = objective.artifact_dir, objective.pictures
    objective.artifact_dir = folder
    objective.pictures = TrialPictures(folder, mode) if mode != "none" else None
    if objective.pictures is not None:
        objective.pictures.prepare(dict(objective.spec.dataset))
    try:
        yield
    finally:
        if objective.pictures is not None:
            objective.pictures.close()
        objective.artifact_dir, objective.pictures = saved


def prepare_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
                  concurrent: bool = False, batch_trials: int = 1, allow_large: bool = False,
                  artifact_dir: str | Path | None = None) -> tuple[optuna.Study, RunSummary]:
    """Check the study's sizes (see :mod:`fcnn_opt.search.sizes`; nothing is written when they
    are refused), then create or load it, store its definition and budget, queue its grid;
    returns the study and a summary of the run about to start."""
    import optuna

    check_sizes(spec, batch_trials=batch_trials, allow_large=allow_large)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_url()
    storage_obj = open_storage(url)
    name = study_name or spec.name
    study = create_or_load(spec, storage_obj, name, concurrent=concurrent)
    _keep_data_copy(study, spec, artifact_dir if artifact_dir is not None else default_artifact_dir(url))
    if spec.uses_grid:
        enqueue_grid(study, spec)
    return study, new_summary(study, spec, url)


def _keep_data_copy(study: optuna.Study, spec: StudySpec, folder: str | Path) -> None:
    """Your own data file, copied into the artifact folder (up to a size limit) and recorded
    with the study, for workers on machines that lack it."""
    data = spec.dataset
    if "path" not in data or "sha256" not in data:
        return
    if (study.user_attrs.get(DATA_COPY_ATTR) or {}).get("sha256") == data["sha256"]:
        return
    pointer = save_data_copy(make_folder(folder), data["path"], data["sha256"])
    if pointer is not None:
        study.set_user_attr(DATA_COPY_ATTR, pointer)
