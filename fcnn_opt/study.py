"""Samplers, pruners, and running or resuming a study in a storage.

    >>> from fcnn_opt.space import load_spec
    >>> from fcnn_opt.study import run_study
    >>> summary = run_study(load_spec("studies/seed_grid.toml"), storage="sqlite:///study.db")

A study's budget is a total for the study, not for one run: running the same command
again continues where the last run stopped and runs only what is missing. The grid
sampler's points are put in the study's queue once, so each point is run exactly once
even by several processes, and a point whose trial failed is queued again.
"""

from __future__ import annotations

import math
import signal
import threading
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .objective import Objective
from .space import SpaceError, StudySpec
from .storage import mask_url, open_storage

if TYPE_CHECKING:
    import optuna

DEFAULT_N_TRIALS = 20  # for samplers other than grid when neither file nor command says
SPEC_ATTR = "fcnn_opt_fingerprint"


class StudyError(ValueError):
    """A study that cannot be created, loaded or run as asked."""


def make_sampler(name: str, seed: int | None, spec: StudySpec | None = None) -> optuna.samplers.BaseSampler:
    """An Optuna sampler by name: grid, random, tpe, cmaes, qmc, gp or nsga2."""
    import optuna

    samplers = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "grid": lambda: optuna.samplers.GridSampler(spec.grid(), seed=seed),
    }
    if name not in samplers:
        raise StudyError(f"Unknown sampler {name!r}. Valid samplers: {', '.join(samplers)}.")
    try:
        return samplers[name]()
    except ImportError as exc:
        raise StudyError(f"Sampler {name!r} needs a package that is missing: {exc}") from None


def make_pruner(name: str) -> optuna.pruners.BasePruner:
    """An Optuna pruner by name (median by default; ``none`` never prunes)."""
    import optuna

    startup = {"n_startup_trials": 5, "n_warmup_steps": 5}
    pruners = {
        "median": lambda: optuna.pruners.MedianPruner(**startup),
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0, **startup),
        "sha": lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=5),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=5),
        "patient": lambda: optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**startup), patience=5),
        "wilcoxon": lambda: optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=5),
        "none": lambda: optuna.pruners.NopPruner(),
    }
    if name not in pruners:
        raise StudyError(f"Unknown pruner {name!r}. Valid pruners: {', '.join(pruners)}.")
    return pruners[name]()


def create_or_load(spec: StudySpec, storage, study_name: str) -> optuna.Study:
    """Create the study, or load it after checking that it was defined the same way."""
    import optuna

    study = optuna.create_study(
        storage=storage, study_name=study_name, direction=spec.direction, load_if_exists=True,
        sampler=make_sampler(spec.sampler, spec.seed, spec), pruner=make_pruner(spec.pruner))
    stored = study.user_attrs.get(SPEC_ATTR)
    if stored is None:
        study.set_user_attr(SPEC_ATTR, spec.fingerprint())
        study.set_user_attr("dataset", spec.dataset)
        study.set_user_attr("metric", spec.metric)
        study.set_user_attr("sampler", spec.sampler)
        study.set_user_attr("source", spec.source)
    elif stored != spec.fingerprint():
        raise StudyError(
            f"Study {study_name!r} already exists with a different dataset, metric or search space. "
            "Use --study-name to start a new study, or run it with its original settings.")
    if study.direction.name.lower() != spec.direction:
        raise StudyError(f"Study {study_name!r} exists with direction {study.direction.name.lower()}.")
    return study


def _grid_key(params: dict, names) -> tuple:
    return tuple((n, params.get(n)) for n in sorted(names))


def enqueue_grid(study: optuna.Study, spec: StudySpec) -> int:
    """Queue every grid point that has no complete, pruned, waiting or running trial."""
    from itertools import product

    from optuna.trial import TrialState

    grid = spec.grid()
    names = list(grid)
    taken = {
        _grid_key(t.params or t.system_attrs.get("fixed_params", {}), names)
        for t in study.get_trials(deepcopy=False)
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.WAITING, TrialState.RUNNING)
    }
    added = 0
    for values in product(*grid.values()):
        params = dict(zip(names, values, strict=True))
        if _grid_key(params, names) not in taken:
            study.enqueue_trial(params)
            added += 1
    return added


@dataclass
class Counts:
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    waiting: int = 0

    @classmethod
    def of(cls, study: optuna.Study) -> Counts:
        from optuna.trial import TrialState

        counts = cls()
        names = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned", TrialState.FAIL: "failed",
                 TrialState.RUNNING: "running", TrialState.WAITING: "waiting"}
        for t in study.get_trials(deepcopy=False):
            if t.state in names:
                setattr(counts, names[t.state], getattr(counts, names[t.state]) + 1)
        return counts

    @property
    def done(self) -> int:
        return self.complete + self.pruned


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


def budget_of(spec: StudySpec) -> int:
    if spec.sampler == "grid":
        return spec.n_trials or spec.grid_size()
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


@contextmanager
def _heartbeat(study: optuna.Study, trial_ids: list[int]):
    """Record the running trials' heartbeats in the background (RDB storages only)."""
    storage = study._storage
    interval = getattr(storage, "get_heartbeat_interval", lambda: None)()
    if not interval:
        yield
        return
    stop = threading.Event()

    def beat():
        while True:
            try:
                for trial_id in trial_ids:
                    storage.record_heartbeat(trial_id)
            except Exception:  # a dropped connection must not kill the trial; retry next beat
                pass
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, daemon=True, name="heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _claim(study: optuna.Study, grid: bool) -> optuna.Trial | None:
    """The next trial to run: a queued one first; for a grid, None when the queue is empty."""
    import optuna
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        try:
            if study._storage.set_trial_state_values(t._trial_id, state=TrialState.RUNNING):
                return optuna.Trial(study, t._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
    return None if grid else study.ask()


def tell(study: optuna.Study, trial: optuna.Trial, reporter, state, value=None, reason=None):
    """Write the trial's buffered records, then tell its outcome to the study and the reporter."""
    from optuna.trial import TrialState

    if reason is not None:
        reporter.store({"fail_reason": reason})
    if hasattr(reporter, "flush"):
        reporter.flush()
    if state == TrialState.COMPLETE:
        study.tell(trial, value)
    else:
        study.tell(trial, state=state)
    reporter.close(state, value)
    return state


def outcome(run) -> tuple:
    """Call ``run()`` (which trains and concludes a trial) and classify what happened.

    Returns ``(state, value, reason, exception_to_reraise)``.
    """
    import optuna
    from optuna.trial import TrialState

    try:
        value = run()
    except optuna.TrialPruned:
        return TrialState.PRUNED, None, None, None
    except KeyboardInterrupt as exc:
        return TrialState.FAIL, None, "interrupted (Ctrl-C or SIGTERM)", exc
    except (SpaceError, ValueError, ImportError) as exc:  # the study's own settings are wrong
        return TrialState.FAIL, None, f"{type(exc).__name__}: {exc}", exc
    except Exception as exc:
        return TrialState.FAIL, None, f"{type(exc).__name__}: {exc}", None
    if value is None or not math.isfinite(value):
        return TrialState.FAIL, None, None, None
    return TrialState.COMPLETE, value, None, None


def run_trial(study: optuna.Study, trial: optuna.Trial, objective: Objective,
              mirror=None) -> optuna.trial.TrialState:
    """Run one claimed trial and tell its outcome; interrupts are recorded, then re-raised.

    With a :class:`~fcnn_opt.reporting.PruningMirror`, pruning is decided in memory and the
    trial's records are written in one transaction just before it is told.
    """
    from .reporting import TrialReporter

    reporter = mirror.reporter(trial) if mirror is not None else TrialReporter(trial)
    with _heartbeat(study, [trial._trial_id]):
        state, value, reason, error = outcome(lambda: objective.run(trial, reporter))
    tell(study, trial, reporter, state, value, reason)
    if error is not None:
        raise error
    return state


def run_study(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
              timeout: float | None = None, progress: bool = True,
              objective: Objective | None = None, batch_trials: int = 1,
              device: str = "cpu", artifacts: bool = True,
              artifact_dir: str | Path | None = None) -> RunSummary:
    """Create or resume the study and run trials until its budget or grid is done.

    With ``batch_trials`` K > 1, K trials are asked at once and trained together by the
    population engine (:mod:`fcnn_opt.population`) on ``device``, then told one by one.

    With ``artifacts`` (the default), each finished trial's response-surface PNG is uploaded
    to a FileSystemArtifactStore in ``artifact_dir`` (default: ``artifacts/`` beside the
    database, see :func:`fcnn_opt.artifacts.artifact_dir`), for optuna-dashboard.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # This loop records heartbeats itself (see _heartbeat), which Optuna cannot know.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    storage_obj = open_storage(storage)
    name = study_name or spec.name
    study = create_or_load(spec, storage_obj, name)
    grid = spec.sampler == "grid"
    if grid:
        enqueue_grid(study, spec)
    budget = budget_of(spec)
    objective = objective or Objective(spec)
    hook = None
    if artifacts:
        from .artifacts import ResponseArtifact, open_artifact_store
        from .artifacts import artifact_dir as default_artifact_dir

        store = open_artifact_store(artifact_dir or default_artifact_dir(storage))
        hook = ResponseArtifact(store)
    start = time.perf_counter()
    summary = RunSummary(study_name=name, storage=mask_url(storage or _url_of(storage_obj)),
                         counts=Counts.of(study), budget=budget, seconds=0.0, direction=spec.direction)
    bar = _progress_bar(progress, budget, summary.counts)
    from .reporting import PruningMirror

    mirror = PruningMirror(study) if PruningMirror.supports(study) else None
    if hook is not None:
        objective.on_trial_end.append(hook)
    try:
        with _sigterm_as_interrupt():
            while True:
                optuna.storages.fail_stale_trials(study)
                counts = Counts.of(study)
                if counts.done + counts.running >= budget:
                    break
                if timeout is not None and time.perf_counter() - start > timeout:
                    break
                if mirror is not None:
                    mirror.refresh()
                room = budget - counts.done - counts.running
                trials = []
                while len(trials) < min(batch_trials, room):
                    trial = _claim(study, grid)
                    if trial is None:
                        break
                    trials.append(trial)
                if not trials:
                    break
                if batch_trials == 1:
                    run_trial(study, trials[0], objective, mirror)
                else:
                    from .batch import run_batch

                    run_batch(study, trials, objective, mirror, device)
                summary.ran += len(trials)
                _update_bar(bar, study)
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        if bar is not None:
            bar.close()
        if hook is not None:
            objective.on_trial_end.remove(hook)
    summary.counts = Counts.of(study)
    summary.seconds = time.perf_counter() - start
    _fill_best(summary, study)
    return summary


def _url_of(storage) -> str:
    return getattr(storage, "url", "") or type(storage).__name__


def _fill_best(summary: RunSummary, study: optuna.Study) -> None:
    if summary.counts.complete:
        best = study.best_trial
        summary.best_value, summary.best_params, summary.best_number = best.value, best.params, best.number


def _progress_bar(enabled: bool, budget: int, counts: Counts):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=budget, initial=min(counts.done, budget), unit="trial", dynamic_ncols=True,
                desc="trials", mininterval=0.2)


def _update_bar(bar, study: optuna.Study) -> None:
    if bar is None:
        return
    counts = Counts.of(study)
    bar.n = min(counts.done, bar.total)
    postfix = {"pruned": counts.pruned, "failed": counts.failed}
    if counts.complete:
        postfix = {"best": f"{study.best_value:.4g}", **postfix}
    bar.set_postfix(postfix, refresh=False)
    bar.refresh()
