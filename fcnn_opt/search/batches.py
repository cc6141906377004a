"""Run K claimed trials at once with the population engine (ask K, group, train, tell).

Each trial's hyperparameters are suggested as usual; the networks are trained together by
:func:`fcnn_opt.training.population.train_population`, every member reporting its metric each epoch
to its own reporter (so its pruner can stop it alone); then each trial is concluded and
told exactly as a one-at-a-time trial would be. With seed repeats, each trial's R networks
are members of the same population and report their mean; with K folds, each fold (and seed)
is a population of its own, the K populations train side by side, and each trial's networks
report their mean (:func:`fcnn_opt.training.folds.train_folds_together`). Members whose library is not NumPy or
PyTorch (the population engine is PyTorch arithmetic, which both follow) or that have no
hidden layer are trained one at a time by their own backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fcnn_opt.search import ledger
from fcnn_opt.search.objective import EpochWatch, TrialReporter
from fcnn_opt.search.outcomes import Outcome, outcome, tell, tell_all
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.training.folds import train_folds_together
from fcnn_opt.training.repeats import MeanOfRepeats, combine, repeat_configs, trains_together

if TYPE_CHECKING:
    import optuna

    from fcnn_opt.search.mirror import PruningMirror
    from fcnn_opt.search.objective import Objective


def run_batch(study: optuna.Study, trials: list[optuna.Trial], objective: Objective, mirror: PruningMirror | None,
              device: str = "cpu") -> list[optuna.trial.TrialState]:
    """Train and tell every trial of ``trials``; returns their final states."""
    reporters = [mirror.reporter(t) if mirror is not None else TrialReporter(t) for t in trials]
    with ledger.heartbeat(study, [internals.trial_id_of(t) for t in trials]):
        configs, errors = [], {}
        for i, reporter in enumerate(reporters):
            try:
                configs.append(objective.config_for(reporter.params_trial))
            except ValueError as exc:  # includes SpaceError: the study's own settings are wrong
                configs.append(None)
                errors[i] = Outcome(_fail(), None, f"{type(exc).__name__}: {exc}", exc)
        watches = [EpochWatch(r, objective.spec.metric, report=not objective.spec.multi,
                              last_epoch=None if c is None else c.epochs) for r, c in zip(reporters, configs, strict=True)]
        together = [i for i, c in enumerate(configs) if c is not None and trains_together(c)]
        results = {}
        try:
            if together:
                results.update(_train_together(objective, configs, together, watches, device))
            for i, config in enumerate(configs):
                if config is not None and i not in results:
                    results[i] = objective.train(config, watches[i])  # by its own backend
        except KeyboardInterrupt as exc:
            for trial, reporter in zip(trials, reporters, strict=True):
                tell(study, trial, reporter, _fail(), reason="interrupted (Ctrl-C or SIGTERM)")
            raise exc
    concluded = []
    for i, (trial, reporter) in enumerate(zip(trials, reporters, strict=True)):
        if i in errors:
            concluded.append(errors[i])
            continue
        result = results[i]
        if i in together:
            reporter.store({"engine": f"population ({device})"})
        concluded.append(outcome(
            lambda trial=trial, result=result, reporter=reporter, i=i:
            objective.conclude(trial, result, reporter, watches[i].pruned_at)))
    states = tell_all(study, trials, reporters, concluded)
    error = next((exc for *_, exc in concluded if exc is not None), None)
    if error is not None:
        raise error
    return states


def _train_together(objective: Objective, configs, together: list[int], watches, device: str) -> dict:
    """Train the trials ``together`` (indices into ``configs``) in one population, each trial's
    seed repeats as members of their own; returns each trial's result."""
    from fcnn_opt.training.population import train_population  # imports PyTorch

    repeats = objective.spec.repeats
    if objective.spec.folds > 1:
        trained = train_folds_together(objective.dataset, objective.spec.folds, [configs[i] for i in together],
                                       repeats, [watches[i] for i in together], device=device,
                                       snapshots=objective.snapshots)
        return dict(zip(together, trained, strict=True))
    members, owners = [], []  # population members, and the (trial, repeat) each one is
    for i in together:
        for r, config in enumerate(repeat_configs(configs[i], repeats)):
            members.append(config)
            owners.append((i, r))
    means = {i: MeanOfRepeats(repeats, watches[i]) for i in together}

    def on_epoch(k: int, epoch: int, metrics: dict) -> bool:
        i, r = owners[k]
        return watches[i](epoch, metrics) if repeats == 1 else means[i].member(r, epoch, metrics)

    trained = train_population(objective.dataset, members, on_epoch=on_epoch, device=device,
                               snapshots=objective.snapshots)
    runs: dict[int, list] = {i: [] for i in together}
    for (i, _), result in zip(owners, trained, strict=True):
        runs[i].append(result)
    if repeats == 1:
        return {i: found[0] for i, found in runs.items()}
    return {i: combine(found, means[i].stopped_at) for i, found in runs.items()}


def _fail():
    from optuna.trial import TrialState

    return TrialState.FAIL
