"""Samplers, pruners, and running or resuming a study in a storage.

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
"""

from __future__ import annotations

import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fcnn_opt.search import ledger
from fcnn_opt.search.ledger import Counts
from fcnn_opt.search.objective import Objective, TrialReporter, suggest
from fcnn_opt.search.outcomes import outcome, signals_held, tell_all
from fcnn_opt.search.space import StudySpec, parse_spec
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.artifact_files import artifact_dir as default_artifact_dir
from fcnn_opt.store.artifact_files import local_data_args
from fcnn_opt.store.storages import (
    db_retry_seconds,
    default_url,
    heartbeat_settings,
    is_transient,
    mask_url,
    open_storage,
    retrying,
)

if TYPE_CHECKING:
    import optuna

DEFAULT_N_TRIALS = 20  # for samplers other than grid when neither file nor command says
NO_TRIAL_BUDGET = 10**9  # a time-budgeted study without n_trials: it runs until its time is up
SPEC_ATTR = "fcnn_opt_fingerprint"
DEFINITION_ATTR = "spec"  # the parsed study file as a TOML-shaped dict (JSON in the storage)
BUDGET_ATTR = "n_trials"  # the study's total budget, shared by every worker

__all__ = ["Counts", "RunSummary", "StudyError", "create_or_load", "enqueue_grid", "load_for_worker",
           "make_pruner", "make_sampler", "run_study", "run_trials"]


class StudyError(ValueError):
    """A study that cannot be created, loaded or run as asked."""


class DatabaseLost(RuntimeError):
    """The storage stayed unreachable for longer than the retry window."""


def make_sampler(name: str, seed: int | None, spec: StudySpec | None = None, *,
                 concurrent: bool = False) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name: grid, random, tpe, cmaes, qmc, gp or nsga2.

    ``concurrent``: trials are asked several at a time (population batches), so TPE lies
    constantly about the running ones; otherwise it does not (it then re-reads every trial
    uncached at each draw, which on W2 with two workers cost 42 s against 24 s; workers
    differ by their seeds instead).
    """
    import optuna

    samplers = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                                  constant_liar=concurrent),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "grid": lambda: optuna.samplers.GridSampler(spec.grid(), seed=seed),
    }
    if name not in samplers:
        raise StudyError(f"Unknown sampler {name!r}. Valid samplers: {', '.join(samplers)}.")
    # TPE's group=True (one multivariate model per set of parameters that occur together, so
    # the per-layer widths of a searched depth are modelled jointly) is marked experimental.
    warnings.filterwarnings("ignore", message="Argument ``group`` is an experimental feature")
    try:
        return samplers[name]()
    except ImportError as exc:
        raise StudyError(f"Sampler {name!r} needs a package that is missing: {exc}") from None


def make_pruner(name: str, spec: StudySpec | None = None) -> optuna.pruners.BasePruner:
    """An Optuna pruner by name (median by default; ``none`` never prunes).

    Where ``spec``'s epochs are a resource (``epochs = { max, min }``), successive halving and
    Hyperband take their rungs from it: min epochs first, then three times as many, keeping
    the best third; otherwise their first rung is at 5 epochs.
    """
    import optuna

    from fcnn_opt.search.space import RUNG_FACTOR

    startup = {"n_startup_trials": 5, "n_warmup_steps": 5}
    epochs = spec.epoch_range if spec is not None else None
    rungs = {"min_resource": 5}  # Optuna's other defaults: reduction factor 4 (sha), 3 (hyperband)
    if epochs is not None:
        rungs = {"min_resource": epochs[0], "reduction_factor": RUNG_FACTOR}
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(**startup),
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0, **startup),
        "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(**rungs),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(
            **rungs, **({"max_resource": epochs[1]} if epochs is not None else {})),
        "patient": lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**startup), patience=5),
        "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=5),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    if name not in pruners:
        raise StudyError(f"Unknown pruner {name!r}. Valid pruners: {', '.join(pruners)}.")
    return pruners[name]()


def create_or_load(spec: StudySpec, storage, study_name: str, *, concurrent: bool = False) -> optuna.Study:
    """Create the study, or load it after checking that it was defined the same way.

    Stores the definition and the budget in the study (updated on every call, so the last
    ``study`` command's sampler, pruner and ``n_trials`` are what workers use).
    """
    import optuna

    study = retrying(  # safe to repeat: a study created by a lost commit is loaded
        optuna.create_study, storage=storage, study_name=study_name, directions=spec.directions,
        load_if_exists=True, sampler=make_sampler(spec.sampler, spec.seed, spec, concurrent=concurrent),
        pruner=make_pruner(spec.pruner, spec), what="creating the study")
    internals.attach(study, storage)
    attrs = study.user_attrs
    stored = attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, spec.fingerprint())
        study.set_user_attr("dataset", spec.dataset)
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("source", spec.source)
    elif stored != spec.fingerprint():
        raise StudyError(
            f"Study {study_name!r} already exists with a different dataset, metric or search space. "
            "Use --study-name to start a new study, or run it with its original settings.")
    stored_directions = [d.name.lower() for d in study.directions]
    if stored_directions != spec.directions:
        raise StudyError(f"Study {study_name!r} exists with direction(s) {', '.join(stored_directions)}, "
                         f"not {', '.join(spec.directions)}.")
    definition = spec.to_dict()
    for key, value in (("sampler", spec.sampler), (DEFINITION_ATTR, definition), (BUDGET_ATTR, budget_of(spec))):
        if attrs.get(key) != value:
            study.set_user_attr(key, value)
    return study


def as_stored(spec: StudySpec, storage, study_name: str) -> StudySpec:
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
    return older if stored not in (None, spec.fingerprint()) and stored == older.fingerprint() else spec


def load_for_worker(storage, study_name: str, *, worker_id: int | None = None,
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


def read_budget(study: optuna.Study, spec: StudySpec) -> int:
    """The study's total budget as stored now (a later ``study`` command may change it)."""
    attrs = internals.storage_of(study).get_study_user_attrs(internals.study_id_of(study))
    value = attrs.get(BUDGET_ATTR)
    return value if isinstance(value, int) and value > 0 else budget_of(spec)


def enqueue_grid(study: optuna.Study, spec: StudySpec) -> int:
    """Queue the grid points that have no complete, pruned, waiting or running trial, in grid
    order, as many as the budget has room for (all of them unless ``n_trials`` is smaller).

    Two processes doing this at the same moment can queue a point twice; the ledger then
    lets only the first of the two run (see :mod:`fcnn_opt.search.ledger`).
    """
    from itertools import product

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


@dataclass
class RunSummary:
    study_name: str
    storage: str
    counts: Counts
    budget: int
    seconds: float
    best_value: float | None = None
    best_params: dict = field(default_factory=dict)
    best_number: int | None = None
    direction: str = "minimize"
    interrupted: bool = False
    ran: int = 0
    skipped: int = 0  # trials this run claimed but finished unrun (surplus or duplicate)
    failed_workers: list = field(default_factory=list)  # (worker, exit code, last lines) for --workers
    failures: dict = field(default_factory=dict)  # first line of each failed trial's reason -> count
    stopped: str = ""  # why the run stopped before the budget was done (too many failures)
    time_budget: float | None = None  # the seconds this run was given (--timeout, [study] timeout)
    failed_here: int = 0  # trials this process ran that failed
    done_here: int = 0  # trials this process ran that completed or were pruned
    all_failed: bool = False  # this run ran trials and every one of them failed
    data: str = ""  # your own data: its shape and task, as it was read
    objectives: tuple = ()  # a multi-objective study's objectives (then no single best)
    pareto: list = field(default_factory=list)  # its Pareto set: (number, values, params)
    continued: list = field(default_factory=list)  # trials this run continued: (number, epochs added)


def budget_of(spec: StudySpec) -> int:
    """The study's total of complete and pruned trials: ``n_trials``; else the grid's size, or
    no limit when the study has a time budget, or :data:`DEFAULT_N_TRIALS`."""
    if spec.sampler == "grid":
        return spec.n_trials or spec.grid_size()
    if spec.n_trials is None and spec.timeout is not None:
        return NO_TRIAL_BUDGET
    return spec.n_trials or DEFAULT_N_TRIALS


class _Interrupted(KeyboardInterrupt):
    pass


@contextmanager
def _sigterm_as_interrupt():
    """Turn SIGTERM into KeyboardInterrupt so the running trial is recorded, not lost."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise _Interrupted()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _fail_unfinished(study: optuna.Study, trials: list) -> None:
    """Record claimed trials that an interrupt left RUNNING as failed (finished ones are kept)."""
    from optuna.trial import TrialState

    for trial in trials:
        try:
            if internals.storage_of(study).get_trial(internals.trial_id_of(trial)).state == TrialState.RUNNING:
                trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM)")
                study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except Exception:  # best effort on the way out: the stale sweep covers the rest
            pass


def _claim(study: optuna.Study, waiting: list[ledger.Row]) -> optuna.Trial | None:
    """Pop a queued trial atomically (lowest number first), as Optuna's own queue does.

    Rows tried are removed from ``waiting``, so repeated calls go down the queue.
    """
    import optuna
    from optuna.trial import TrialState

    storage = internals.storage_of(study)
    while waiting:
        row = waiting.pop(0)
        trial_id = ledger.trial_id(study, row)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Objective,
              mirror=None) -> optuna.trial.TrialState:
    """Run one claimed trial and tell its outcome; interrupts are recorded, then re-raised.

    With a :class:`~fcnn_opt.store.mirror.PruningMirror`, pruning is decided in memory and the
    trial's records are written in one transaction just before it is told.
    """
    reporter = mirror.reporter(trial) if mirror is not None else TrialReporter(trial)
    with ledger.heartbeat(study, [internals.trial_id_of(trial)]):
        state, value, reason, error = outcome(lambda: objective.run(trial, reporter))
    state = tell_all(study, [trial], [reporter], [(state, value, reason, error)])[0]
    if error is not None:
        raise error
    return state


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
    """
    # This loop records heartbeats itself (see ledger.heartbeat), which Optuna cannot know.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    grid = spec.sampler == "grid"
    grid_size = spec.grid_size() if grid else None
    watch = ledger.StaleWatch(study)
    poll = min(1.0, heartbeat_settings()[0] / 2)
    idle = WAIT_FIRST  # the next pause while others hold the study's last trials
    start = time.perf_counter()
    timeout = timeout if timeout is not None else spec.timeout
    summary.time_budget = timeout
    bar = _progress_bar(progress, summary.budget, summary.counts, timeout)
    from fcnn_opt.store.mirror import PruningMirror

    # Without Optuna's private names (see fcnn_opt.store.optuna_internals) there is no mirror:
    # every trial is asked, reported and told through Optuna's public API.
    mirror = PruningMirror(study) if PruningMirror.supports(study) else None
    claimed: list = []  # trials this process holds RUNNING and has not recorded yet
    anneal_from = _anneal_start(spec, summary.budget, timeout, batch_trials)
    try:
        with _sigterm_as_interrupt():
            failing_since = None
            while timeout is None or time.perf_counter() - start <= timeout:
                if anneal_from is not None and time.perf_counter() - start >= anneal_from:
                    step = _continue_best(study, spec, summary, timeout - (time.perf_counter() - start))
                    if step == "stop":
                        break
                try:
                    with signals_held():
                        trials, budget, counts = _next_trials(study, spec, watch, grid, batch_trials, mirror)
                        claimed = list(trials) if isinstance(trials, list) else []
                    failing_since = None
                except Exception as exc:  # a dropped connection: look again after a pause
                    if not is_transient(exc):
                        raise
                    failing_since = failing_since or time.monotonic()
                    if time.monotonic() - failing_since > db_retry_seconds():
                        _raise_if_lost(exc)
                    time.sleep(poll)
                    continue
                _update_bar(bar, study, counts, budget, timeout and (timeout, start))
                if trials == "done":
                    break
                if not trials:
                    # Look again soon, then less often: the others' last trials usually end
                    # within a fraction of a second, and a fixed pause of ``poll`` made the
                    # end of a study with two workers wait 0.5 s on average for nothing.
                    time.sleep(idle)
                    idle = min(poll, idle * WAIT_GROWTH)
                    continue
                idle = WAIT_FIRST
                states = _run_claimed(study, trials, objective, summary, budget, grid, grid_size, mirror,
                                      batch_trials, device)
                claimed = []
                summary.failed_here += sum(1 for state in states if state.name == "FAIL")
                summary.done_here += sum(1 for state in states if state.name in ("COMPLETE", "PRUNED"))
                summary.stopped = _failing(summary, budget) or ""
                if summary.stopped:
                    break
    except KeyboardInterrupt:
        _fail_unfinished(study, claimed)
        summary.interrupted = True
    finally:
        if bar is not None:
            if bar.unit == "s":  # a time budget: show where the time ended
                bar.n = min(time.perf_counter() - start, timeout)
                bar.refresh()
            bar.close()
    summary.seconds = time.perf_counter() - start
    fill_final(summary, study, spec)
    return summary


WAIT_FIRST, WAIT_GROWTH = 0.02, 1.25  # seconds, and the factor between pauses, while waiting on others


def check_engine(spec: StudySpec, batch_trials: int) -> None:
    """Refuse what the population engine cannot train: a learning rate that decays (epochs a
    resource with ``decay``) is NumPy's one-trial-at-a-time engine's alone, and so are
    cross-validation folds (each with its own training rows)."""
    if batch_trials > 1 and spec.decay_epochs:
        raise StudyError(f"--batch-trials {batch_trials}: the population engine keeps the learning rate "
                         f"constant, and this study lowers it over each trial's last {spec.decay_epochs} epochs "
                         "(epochs.decay). Use --batch-trials 1, or set decay = 0 in [params].epochs.")
    if batch_trials > 1 and spec.folds > 1:
        raise StudyError(f"--batch-trials {batch_trials}: the population engine trains every network on one "
                         f"validation split, and this study cross-validates each trial on {spec.folds} folds "
                         "([dataset] folds). Use --batch-trials 1 (the folds train side by side), or folds = 1.")


def _anneal_start(spec: StudySpec, budget: int, timeout: float | None, batch_trials: int) -> float | None:
    """Seconds into the run at which it starts continuing its best trials, or None: a time
    budget without a trial budget, epochs a resource, one trial at a time (the population
    engine keeps no optimiser state); see :mod:`fcnn_opt.search.anneal`."""
    if spec.anneal <= 0 or timeout is None or budget < NO_TRIAL_BUDGET or batch_trials != 1:
        return None
    return timeout * (1 - spec.anneal)


def _continue_best(study, spec: StudySpec, summary: RunSummary, seconds_left: float) -> str:
    """Queue the next continuation if one fits in the time left: "queued", "search" (nothing to
    continue yet) or "stop" (too little time)."""
    from fcnn_opt.search import anneal

    step = anneal.next_continuation(study, spec, seconds_left)
    if isinstance(step, anneal.Continuation):
        anneal.enqueue(study, step)
        summary.continued.append((step.trial, step.added))
        return "queued"
    return step


FAILURES_BEFORE_ANY_SUCCESS = 10


def _failing(summary: RunSummary, budget: int) -> str | None:
    """Why this run should start no more trials, or None: failed trials do not use up the
    budget (a grid point's failure is run again), so a study whose every trial fails would
    go on for ever. It stops once this run saw ``min(budget, 10)`` failures and nothing
    finish, or ``budget`` failures in all."""
    failed, done = summary.failed_here, summary.done_here
    if done == 0 and failed >= min(budget, FAILURES_BEFORE_ANY_SUCCESS):
        return f"the first {failed} trials of this run failed and none finished"
    if failed >= budget:
        return f"{failed} trials of this run failed (as many as the budget)"
    return None


def _next_trials(study, spec, watch, grid: bool, want: int, mirror=None):
    """Up to ``want`` claimed trials, [] to wait and look again, or "done".

    With a mirror that samples (random, TPE), new trials are drawn on the mirror, which is
    first brought up to date with the study's finished trials (other workers' too)."""
    rows = ledger.rows(study)
    if watch.sweep(rows):
        rows = ledger.rows(study)
    counts = Counts.from_rows(rows)
    budget = read_budget(study, spec)
    waiting = [r for r in rows if r.state.name == "WAITING"]
    if counts.done >= budget:
        # Queued trials left over (a duplicate grid point, a retry that others made redundant)
        # are claimed one by one so that the ledger finishes them unrun: no WAITING remains.
        leftover = _claim(study, waiting)
        return ([leftover] if leftover else "done"), budget, counts
    if mirror is not None:
        mirror.refresh(rows)
    drawn_here = mirror is not None and mirror.samples
    trials: list = []
    asked = 0
    while len(trials) < want and counts.done + counts.running + len(trials) < budget:
        trial = _claim(study, waiting)
        room = budget - (counts.done + counts.running + counts.waiting + asked)
        if trial is None and not grid and room > 0:
            if drawn_here:  # the rest of the batch at once: one write on a journal
                count = min(room, want - len(trials), budget - counts.done - counts.running - len(trials))
                drawn = mirror.ask(lambda trial: suggest(trial, spec), count, {"worker": ledger.worker_name()})
                trials += drawn
                asked += len(drawn)
                continue
            trial = study.ask()
            asked += 1
        if trial is None:
            break
        trials.append(trial)
    if not trials and grid and counts.running == 0 and counts.waiting == 0:
        return "done", budget, counts  # every grid point is done or failed for good
    return trials, budget, counts


def _run_claimed(study, trials, objective, summary, budget, grid, grid_size, mirror,
                 batch_trials: int, device: str) -> list:
    """Let each claimed trial run only if the ledger admits it (see ledger.refusal), then run
    them; returns the final states of those that ran."""
    from optuna.trial import TrialState

    pending = list(trials)  # claimed, and not yet recorded or handed over
    try:
        admission = ledger.Admission(ledger.rows(study))
        admitted = []
        for trial in trials:
            reason = admission.refusal(trial.number, budget, per_point=grid,
                                       rank=not grid or budget < grid_size)
            if reason is None:
                admitted.append(trial)
                continue
            ledger.skip(study, trial, reason)
            if mirror is not None:
                mirror.forget(trial)
            pending.remove(trial)
            summary.skipped += 1
        for trial in admitted:
            if mirror is None or not mirror.drawn_here(trial):  # drawn ones were created with it
                trial.set_user_attr("worker", ledger.worker_name())
        if not admitted:
            return []
        pending = []  # from here on, run_trial and run_batch record every outcome themselves
        if batch_trials == 1:
            states = [run_trial(study, admitted[0], objective, mirror)]
        else:
            from fcnn_opt.search.batches import run_batch

            states = run_batch(study, admitted, objective, mirror, device)
        summary.ran += len(admitted)
        return states
    except KeyboardInterrupt:
        for trial in pending:
            trial.set_user_attr("fail_reason", "interrupted (Ctrl-C or SIGTERM)")
            study.tell(trial, state=TrialState.FAIL)
        raise
    except Exception as exc:
        _raise_if_lost(exc)
        raise


def _raise_if_lost(exc: Exception) -> None:
    if is_transient(exc):
        reason = str(exc.__cause__ or exc).strip().splitlines()
        raise DatabaseLost(mask_url(f"lost the database and gave up retrying: "
                                    f"{reason[0] if reason else type(exc).__name__}")) from None


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
                    directory: str | Path | None = None):
    """While the block runs, the objective writes each trial's weights into the artifact folder
    and pictures the trials ``pictures`` names (drawn in the background on the fast path; see
    :mod:`fcnn_opt.show.artifacts`). The block ends when the last picture is written."""
    from fcnn_opt.show.artifacts import TrialPictures, picture_mode
    from fcnn_opt.store.artifact_files import artifact_dir, make_folder

    folder = Path(directory) if directory is not None else artifact_dir(storage)
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
    are refused), then create or load it, store its definition and budget, queue its grid."""
    import optuna

    from fcnn_opt.search.sizes import check_sizes

    check_sizes(spec, batch_trials=batch_trials, allow_large=allow_large)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_url()
    storage_obj = open_storage(url)
    name = study_name or spec.name
    study = create_or_load(spec, storage_obj, name, concurrent=concurrent)
    _keep_data_copy(study, spec, artifact_dir if artifact_dir is not None else default_artifact_dir(url))
    if spec.sampler == "grid":
        enqueue_grid(study, spec)
    return study, new_summary(study, spec, url)


def _keep_data_copy(study: optuna.Study, spec: StudySpec, folder) -> None:
    """Your own data file, copied into the artifact folder (up to a size limit) and recorded
    with the study, for workers on machines that lack it."""
    from fcnn_opt.store.artifact_files import DATA_COPY_ATTR, make_folder, save_data_copy

    data = spec.dataset
    if "path" not in data or "sha256" not in data:
        return
    if (study.user_attrs.get(DATA_COPY_ATTR) or {}).get("sha256") == data["sha256"]:
        return
    pointer = save_data_copy(make_folder(folder), data["path"], data["sha256"])
    if pointer is not None:
        study.set_user_attr(DATA_COPY_ATTR, pointer)


def data_summary(spec: StudySpec, objective: Objective) -> str:
    """Your own data as it was read: rows, features, task and how it was chosen ("" for the
    built-in datasets)."""
    from fcnn_opt.training.tables import is_table

    folds = ""
    if spec.folds > 1:
        stratified = ", stratified by class" if objective.dataset.task != "regression" else ""
        folds = (f"; each trial cross-validated on {spec.folds} folds of the rows outside the test split"
                 f"{stratified}")
    if not is_table(spec.dataset):
        return folds[2:]
    data = objective.dataset
    classes = f", classes {', '.join(data.class_names)}" if data.class_names else ""
    return (f"{data.name}: {data.n_rows:,} rows x {data.n_features} features, {data.task} ({data.task_note})"
            f"{classes}; features standardised on the training split{folds}{defaults_note(spec)}")


def defaults_note(spec: StudySpec) -> str:
    """What the table defaults filled in, and how to turn each off ("" where they filled in nothing)."""
    said = {"folds": (f"{spec.folds} folds", "[dataset] folds = 1"),
            "refit": (f"a refit of the {spec.refit} best trials, averaged", "[study] refit = false")}
    used = [said[name] for name in spec.table_defaults if name in said]
    if not used:
        return ""
    return (f"; table defaults, as the file leaves them open: {' and '.join(what for what, _ in used)} "
            f"(turn off: {', '.join(off for _, off in used)})")


def new_summary(study: optuna.Study, spec: StudySpec, url: str) -> RunSummary:
    return RunSummary(study_name=study.study_name, storage=mask_url(url), counts=Counts.of(study),
                      budget=read_budget(study, spec), seconds=0.0, direction=spec.direction,
                      objectives=spec.objectives)


def fill_final(summary: RunSummary, study: optuna.Study, spec: StudySpec) -> None:
    """The counts, budget, failures and best trial as the storage has them now."""
    from optuna.trial import TrialState

    trial_rows = ledger.rows(study)
    summary.counts = Counts.from_rows(trial_rows)
    summary.all_failed = summary.failed_here > 0 and summary.done_here == 0
    summary.failures = {}
    # Failed trials are read one by one: asking the study for them would first sync Optuna's
    # trial cache with every trial other workers finished (0.4 s of W2's end with two workers).
    storage = internals.storage_of(study)
    for row in trial_rows:
        if row.state != TrialState.FAIL:
            continue
        trial = storage.get_trial(ledger.trial_id(study, row))
        reason = str(trial.user_attrs.get("fail_reason") or "no reason recorded").strip().splitlines()
        first = reason[0] if reason else "no reason recorded"
        summary.failures[first] = summary.failures.get(first, 0) + 1
    summary.budget = read_budget(study, spec)
    if summary.counts.complete and spec.multi:
        summary.pareto = [(t.number, t.values, t.params) for t in sorted(study.best_trials, key=lambda t: t.values)]
    elif summary.counts.complete:
        best = study.best_trial
        summary.best_value, summary.best_params, summary.best_number = best.value, best.params, best.number


def _progress_bar(enabled: bool, budget: int, counts: Counts, timeout: float | None = None):
    """The live bar: trials done of the budget; with a time budget and no trial budget, the
    seconds spent of the time given (and the trials done beside them)."""
    if not enabled:
        return None
    from tqdm import tqdm

    if timeout is not None and budget >= NO_TRIAL_BUDGET:
        return tqdm(total=round(timeout), unit="s", dynamic_ncols=True, desc="time", mininterval=0.2,
                    bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} s{postfix}")
    return tqdm(total=budget, initial=min(counts.done, budget), unit="trial", dynamic_ncols=True,
                desc="trials", mininterval=0.2)


def _update_bar(bar, study: optuna.Study, counts: Counts, budget: int, clock=None) -> None:
    """Redraw the bar at most every 0.2 s (as tqdm's own ``mininterval``), reading the best
    value from the storage only when the number of complete trials has changed: each redraw
    and each best-value query was a cost per trial (6 % of W2 when done every trial)."""
    if bar is None:
        return
    now = time.monotonic()
    last = getattr(bar, "fcnn_opt_state", None) or {"drawn": -1.0, "complete": -1, "best": None}
    bar.fcnn_opt_state = last
    finished = counts.done >= budget
    if now - last["drawn"] < 0.2 and not finished:
        return
    if counts.complete and counts.complete != last["complete"] and len(study.directions) == 1:
        last["best"], last["complete"] = study.best_value, counts.complete
    postfix = {"running": counts.running, "pruned": counts.pruned, "failed": counts.failed}
    if bar.unit == "s" and clock:  # a time budget: the seconds spent, the trials beside them
        timeout, start = clock
        bar.n = min(time.perf_counter() - start, timeout)
        postfix = {"trials": counts.done, **postfix}
    else:
        bar.total = budget
        bar.n = min(counts.done, budget)
    if last["best"] is not None:
        postfix = {"best": f"{last['best']:.4g}", **postfix}
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()
    last["drawn"] = now
