"""The pruning mirror holds the trials other workers are running, so that TPE draws away from
them (Optuna's constant liar), and lets go of each once it has ended."""

from __future__ import annotations

import optuna
from optuna.trial import TrialState

from fcnn_opt.search import ledger
from fcnn_opt.search.mirror import PruningMirror
from fcnn_opt.store import optuna_internals as internals


def draw(trial):
    return trial.suggest_float("x", 0.0, 1.0)


def worker_study(url: str, seed: int) -> optuna.Study:
    """The study as a worker loads it: TPE without the liar, seeded apart."""
    return optuna.load_study(study_name="s", storage=url, sampler=optuna.samplers.TPESampler(
        seed=seed, multivariate=True, constant_liar=False))


def mirror_of(study: optuna.Study) -> PruningMirror:
    """The mirror the runner keeps for a TPE study without pruning."""
    return PruningMirror(study, "tpe", "none")


def finished_study(url: str) -> optuna.Study:
    """Twelve finished trials, drawn at random (seeded)."""
    study = optuna.create_study(study_name="s", storage=url, sampler=optuna.samplers.RandomSampler(seed=3))
    study.optimize(lambda t: (draw(t) - 0.3) ** 2, n_trials=12)
    return study


def draw_and_drop(mirror: PruningMirror) -> None:
    """Draw a trial and end it unrun, as the runner does with one the ledger refuses."""
    [trial] = mirror.ask(draw)
    mirror.forget(trial)
    mirror.study.tell(trial.number, state=TrialState.FAIL)


def running_in(mirror: PruningMirror) -> list[dict]:
    return [t.params for t in mirror.copy.get_trials(states=(TrialState.RUNNING,))]


def test_a_trial_running_elsewhere_is_held_while_it_runs_then_replaced_by_its_result(sqlite_url):
    study = finished_study(sqlite_url)
    here, elsewhere = mirror_of(worker_study(sqlite_url, 0)), mirror_of(worker_study(sqlite_url, 1))
    assert here.lies

    [other] = elsewhere.ask(draw)
    here.refresh(ledger.rows(study))
    params = study._storage.get_trial(other._trial_id).params
    assert running_in(here) == [params]
    here.refresh(ledger.rows(study))  # held once, however often it is refreshed
    assert running_in(here) == [params]
    draw_and_drop(here)
    assert internals.lies_about_running(here.copy.sampler)  # while it holds another's trial
    assert not internals.lies_about_running(here.study.sampler)  # the study's own sampler is left as it was

    study.tell(other.number, 0.25)
    here.refresh(ledger.rows(study))
    assert running_in(here) == []
    draw_and_drop(here)
    assert not internals.lies_about_running(here.copy.sampler)  # alone: TPE as it was built
    assert len(here.copy.get_trials(states=(TrialState.FAIL,))) == 3  # the stand-in and 2 forgotten draws
    finished = here.copy.get_trials(states=(TrialState.COMPLETE,))
    assert len(finished) == 13 and (finished[-1].params, finished[-1].value) == (params, 0.25)


def test_what_is_held_changes_what_tpe_draws_next(sqlite_url):
    study = finished_study(sqlite_url)
    # Three workers whose samplers happen to draw alike (same seed, same history): the first
    # is running its trial when the others draw.
    first, holding, blind = (mirror_of(worker_study(sqlite_url, 0)) for _ in range(3))
    blind.lies = False  # as a sampler that cannot lie: nothing is held
    [running] = first.ask(draw)
    for mirror in (holding, blind):
        mirror.refresh(ledger.rows(study))
    assert len(running_in(holding)) == 1 and running_in(blind) == []
    x = [study._storage.get_trial(trial._trial_id).params["x"]
         for trial in (running, holding.ask(draw)[0], blind.ask(draw)[0])]
    assert x[2] == x[0]  # blind to the running trial: the same point again
    # Optuna 4.3's TPE (other draws than 5.0's for the same seed) counts the held trial too,
    # but draws the same point here anyway, as for 5 of seeds 0-5; checked from 5.0 on.
    if internals.optuna_version() >= (5, 0):
        assert x[1] != x[0]


def test_trials_drawn_here_are_not_held_twice_and_carry_no_sampler_notes(sqlite_url):
    study = finished_study(sqlite_url)
    here = mirror_of(worker_study(sqlite_url, 0))
    [mine] = here.ask(draw)
    here.refresh(ledger.rows(study))
    assert len(running_in(here)) == 1  # its own twin, not a second stand-in
    assert study._storage.get_trial(mine._trial_id).system_attrs == {}


def test_a_step_whose_completed_values_are_all_nan_decides_as_optuna_without_a_warning():
    """No percentile at a step where every completed trial reported NaN, so no pruning there
    (Optuna's own pruner agrees), and no NumPy warning (Optuna 5.1 gives none either)."""
    import math
    import warnings

    from fcnn_opt.search.mirror_rules import PercentileRule

    pruner = optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=0)
    study = optuna.create_study(pruner=pruner)
    rule = PercentileRule(internals.percentile_settings(pruner), maximize=False)
    for _ in range(3):
        trial = study.ask()
        trial.report(math.nan, 0)
        trial.report(1.0, 1)
        study.tell(trial, 1.0)
        rule.add_complete({0: math.nan, 1: 1.0})
    trial = study.ask()
    trial.report(5.0, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert rule.prune({0: 5.0}, 5.0, 0) is False
    assert trial.should_prune() is False
