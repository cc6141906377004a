"""What a run of a study reports: :class:`RunSummary`, filled before, during and after the run.

:func:`new_summary` starts one from the study as it is; the worker loop
(:func:`fcnn_opt.search.runner.run_trials`) counts what this process ran and why it stopped
(:func:`failing`); :func:`fill_final` reads the counts, failures and best trial back from the
storage at the end. ``cli.text`` prints it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

from fcnn_opt.search import ledger
from fcnn_opt.search.ledger import Counts
from fcnn_opt.search.plan import budget_of, stored_budget
from fcnn_opt.search.space import StudySpec
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.storages import mask_url
from fcnn_opt.training.tables import is_table

if TYPE_CHECKING:
    import optuna

    from fcnn_opt.search.objective import Objective

FAILURES_BEFORE_ANY_SUCCESS = 10


class FailedWorker(NamedTuple):
    """A worker process of ``study --workers N`` that exited with an error."""

    worker: int
    exit_code: int
    tail: str  # the last lines of its output


class ParetoPoint(NamedTuple):
    """A trial of a multi-objective study's Pareto set."""

    number: int
    values: list[float]
    params: dict


class Continued(NamedTuple):
    """A trial this run continued (see :mod:`fcnn_opt.search.anneal`), and by how many epochs."""

    trial: int
    added: int


@dataclass
class RunSummary:
    """One run of a study: where, how many trials of the budget are in each state, the best
    trial (or the Pareto set), what this process ran, and why the run ended early, if it did."""

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
    failed_workers: list[FailedWorker] = field(default_factory=list)  # for --workers
    failures: dict = field(default_factory=dict)  # first line of each failed trial's reason -> count
    stopped: str = ""  # why the run stopped before the budget was done (too many failures)
    time_budget: float | None = None  # the seconds this run was given (--timeout, [study] timeout)
    failed_here: int = 0  # trials this process ran that failed
    done_here: int = 0  # trials this process ran that completed or were pruned
    all_failed: bool = False  # this run ran trials and every one of them failed
    data: str = ""  # your own data: its shape and task, as it was read
    objectives: tuple = ()  # a multi-objective study's objectives (then no single best)
    pareto: list[ParetoPoint] = field(default_factory=list)  # its Pareto set
    continued: list[Continued] = field(default_factory=list)  # trials this run continued

    def count(self, states: list[optuna.trial.TrialState]) -> None:
        """Count the final states of trials this process ran."""
        self.failed_here += sum(1 for state in states if state.name == "FAIL")
        self.done_here += sum(1 for state in states if state.name in ("COMPLETE", "PRUNED"))


def read_budget(study: optuna.Study, spec: StudySpec) -> int:
    """The study's total budget as stored now (a later ``study`` command may change it)."""
    return stored_budget(study, budget_of(spec))


def new_summary(study: optuna.Study, spec: StudySpec, url: str) -> RunSummary:
    """A summary of a run about to start on ``study``: its counts and budget as stored now."""
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
        summary.pareto = [ParetoPoint(t.number, t.values, t.params)
                          for t in sorted(study.best_trials, key=lambda t: t.values)]
    elif summary.counts.complete:
        best = study.best_trial
        summary.best_value, summary.best_params, summary.best_number = best.value, best.params, best.number


def failing(summary: RunSummary, budget: int) -> str | None:
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


def data_summary(spec: StudySpec, objective: Objective) -> str:
    """Your own data as it was read: rows, features, task and how it was chosen ("" for the
    built-in datasets)."""
    folds = ""
    if spec.folds > 1:
        stratified = ", stratified by class" if objective.dataset.task != "regression" else ""
        folds = (f"; each trial cross-validated on {spec.folds} folds of the rows outside the test split"
                 f"{stratified}")
    if not is_table(spec.dataset):
        return folds[2:]
    data = objective.dataset
    classes = f", classes {', '.join(data.class_names)}" if data.class_names else ""
    shared = ", on one scale for all (scaling = \"shared\")" if spec.dataset.get("scaling") == "shared" else ""
    return (f"{data.name}: {data.n_rows:,} rows x {data.n_features} features, {data.task} ({data.task_note})"
            f"{classes}; features standardised on the training split{shared}{folds}{defaults_note(spec)}")


def defaults_note(spec: StudySpec) -> str:
    """What the table defaults filled in, and how to turn each off ("" where they filled in nothing)."""
    said = {"folds": (f"{spec.folds} folds", "[dataset] folds = 1"),
            "refit": (f"an ensemble of the {spec.refit} best trials' fold networks" if spec.refit_members == "folds"
                      else f"a refit of the {spec.refit} best trials, averaged", "[study] refit = false")}
    used = [said[name] for name in spec.table_defaults if name in said]
    if not used:
        return ""
    return (f"; table defaults, as the file leaves them open: {' and '.join(what for what, _ in used)} "
            f"(turn off: {', '.join(off for _, off in used)})")
