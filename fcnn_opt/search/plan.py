"""A run's plan: what the worker loop needs of its study file, resolved once per run.

The loop used to ask the :class:`~fcnn_opt.search.space.StudySpec` piece by piece (is it a
grid, how large, what budget, when to start continuing the best trials); :class:`RunPlan`
answers all of it once, before the first trial. Only the budget is read again at every
turn (:meth:`RunPlan.read_budget`): a later ``study`` command may change it while workers run.

    >>> from fcnn_opt.search.space import parse_spec
    >>> plan = RunPlan.of(parse_spec({"study": {"n_trials": 5}}))
    >>> plan.grid, plan.default_budget
    (False, 5)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fcnn_opt.search.space import StudySpec
from fcnn_opt.store import optuna_internals as internals

if TYPE_CHECKING:
    import optuna

DEFAULT_N_TRIALS = 20  # for samplers other than grid when neither file nor command says
NO_TRIAL_BUDGET = 10**9  # a time-budgeted study without n_trials: it runs until its time is up
BUDGET_ATTR = "n_trials"  # the study's total budget, shared by every worker


def budget_of(spec: StudySpec) -> int:
    """The study's total of complete and pruned trials: ``n_trials``; else the grid's size, or
    no limit when the study has a time budget, or :data:`DEFAULT_N_TRIALS`."""
    if spec.uses_grid:
        return spec.n_trials or spec.grid_size()
    if spec.n_trials is None and spec.timeout is not None:
        return NO_TRIAL_BUDGET
    return spec.n_trials or DEFAULT_N_TRIALS


def stored_budget(study: optuna.Study, default: int) -> int:
    """The study's total budget as stored now (a later ``study`` command may change it), or
    ``default`` where it stores none."""
    attrs = internals.storage_of(study).get_study_user_attrs(internals.study_id_of(study))
    value = attrs.get(BUDGET_ATTR)
    return value if isinstance(value, int) and value > 0 else default


def anneal_start(spec: StudySpec, budget: int, timeout: float | None, batch_trials: int) -> float | None:
    """Seconds into the run at which it starts continuing its best trials, or None: a time
    budget without a trial budget, epochs a resource, one trial at a time (the population
    engine keeps no optimiser state); see :mod:`fcnn_opt.search.anneal`."""
    if spec.anneal <= 0 or timeout is None or budget < NO_TRIAL_BUDGET or batch_trials != 1:
        return None
    return timeout * (1 - spec.anneal)


@dataclass(frozen=True)
class RunPlan:
    """One run of a study, resolved: its spec and what the loop asks of it.

    ``grid_size`` is None unless ``grid``; ``default_budget`` is the budget the study file
    gives (:func:`budget_of`), used where the study stores none; ``timeout`` is the run's time
    budget (the command's, else the file's); ``anneal_from`` the second at which the run
    starts continuing its best trials (None: never).
    """

    spec: StudySpec
    grid: bool
    grid_size: int | None
    default_budget: int
    fingerprint: str
    timeout: float | None = None
    anneal_from: float | None = None
    batch_trials: int = 1
    device: str = "cpu"

    @classmethod
    def of(cls, spec: StudySpec, *, budget: int | None = None, timeout: float | None = None,
           batch_trials: int = 1, device: str = "cpu") -> RunPlan:
        """The plan for running ``spec``; ``budget``: the study's stored budget (default: the
        file's), which decides whether the run anneals; ``timeout`` overrides the file's."""
        grid = spec.uses_grid
        default_budget = budget_of(spec)
        timeout = timeout if timeout is not None else spec.timeout
        return cls(spec=spec, grid=grid, grid_size=spec.grid_size() if grid else None,
                   default_budget=default_budget, fingerprint=spec.fingerprint(), timeout=timeout,
                   anneal_from=anneal_start(spec, default_budget if budget is None else budget, timeout,
                                            batch_trials),
                   batch_trials=batch_trials, device=device)

    def read_budget(self, study: optuna.Study) -> int:
        """The study's total budget as stored now (see :func:`stored_budget`)."""
        return stored_budget(study, self.default_budget)

    def ranks(self, budget: int) -> bool:
        """Whether a claimed trial is held to the budget rule (see
        :meth:`fcnn_opt.search.ledger.Admission.refusal`): always, except on a grid that the
        budget covers (there each point runs once, which is the rule)."""
        return not self.grid or budget < self.grid_size
