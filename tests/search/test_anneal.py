"""Epochs as a resource, and continuing the best trials with the time left.

A continued run must be the run it continues: its history equals that of one uninterrupted
run to 1e-5, on the training engine alone and through a study's continuation trials.
"""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from conftest import run_cli, write_toml

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.search.space import SpaceError, parse_spec
from fcnn_opt.store.artifact_files import CONTINUES_ATTR

DATA = make_dataset("circles", n_points=400, seed=0)


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "rmsprop", "adagrad"])
@pytest.mark.parametrize("compiled", [True, False])
def test_a_continued_run_has_the_history_of_an_uninterrupted_one(optimizer, compiled, monkeypatch):
    if not compiled:
        monkeypatch.setenv("FCNN_OPT_NO_JIT", "1")
    config = TrainConfig(dims=(8, 8), optimizer=optimizer, lr=0.02, batch_size=64, epochs=30, decay_epochs=12)
    whole = train(DATA, config)
    first = train(DATA, config.replace(epochs=18, decay_epochs=0), keep_state=True)
    assert first.state.epoch == 18 and len(first.state.histories["val_loss"]) == 18
    seen = []
    rest = train(DATA, config, resume=first.state, on_epoch=lambda epoch, metrics: seen.append(epoch))
    assert seen == list(range(19, 31))  # only the new epochs are reported
    for name in ("train_loss", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(getattr(rest, name), getattr(whole, name), atol=1e-5, rtol=0)
    for (W1, b1), (W2, b2) in zip(rest.weights(), whole.weights(), strict=True):
        np.testing.assert_allclose(W1, W2, atol=1e-5)
        np.testing.assert_allclose(b1, b2, atol=1e-5)


def test_the_decay_lowers_the_rate_linearly_over_the_last_epochs_only():
    config = TrainConfig(lr=0.1, epochs=10, decay_epochs=4)
    assert [round(config.lr_at(e), 6) for e in range(1, 11)] == [0.1] * 6 + [0.08, 0.06, 0.04, 0.02]
    assert TrainConfig(lr=0.1, epochs=10).lr_at(10) == 0.1
    assert "decay_epochs" not in TrainConfig().to_dict()  # configs stored before it read the same
    assert TrainConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="decay_epochs must be an integer from 0 to epochs"):
        TrainConfig(epochs=10, decay_epochs=11)


def test_engines_that_cannot_continue_a_run_say_so():
    with pytest.raises(ValueError, match="does not support decay_epochs"):
        train(DATA, TrainConfig(lib="sklearn", epochs=3, decay_epochs=1))
    with pytest.raises(ValueError, match="cannot keep a run's state"):
        train(DATA, TrainConfig(lib="sklearn", epochs=3), keep_state=True)
    state = train(DATA, TrainConfig(dims=(4,), epochs=3), keep_state=True).state
    with pytest.raises(ValueError, match="another network's"):
        train(DATA, TrainConfig(dims=(5,), epochs=6), resume=state)
    with pytest.raises(ValueError, match="must be beyond it"):
        train(DATA, TrainConfig(dims=(4,), epochs=3), resume=state)
    with pytest.raises(ValueError, match="inside the decay"):
        train(DATA, TrainConfig(dims=(4,), epochs=6, decay_epochs=4), resume=state)


def test_keep_state_at_an_epoch_keeps_the_state_after_it():
    config = TrainConfig(dims=(4,), epochs=12, decay_epochs=4)
    result = train(DATA, config, keep_state=8)
    assert result.state.epoch == 8 and len(result.state.histories["val_loss"]) == 8
    longer = config.replace(epochs=20, decay_epochs=7)  # the same run, longer, its rate falling later
    np.testing.assert_allclose(train(DATA, longer, resume=result.state).val_loss, train(DATA, longer).val_loss,
                               atol=1e-5, rtol=0)
    assert train(DATA, config, keep_state=30).state is None  # a run that never got there


def test_epochs_as_a_resource_in_a_study_file():
    spec = parse_spec({"study": {"timeout": 60}, "params": {"epochs": {"max": 400}}})
    assert spec.epoch_range == (15, 400)  # min: max / 27 rounded up, so 9 min stays below max
    assert spec.decay_epochs == 100  # a quarter of max, with NumPy
    assert spec.pruner == "sha" and spec.anneal == 0 and not spec.anneals  # its trials settle themselves
    constant = parse_spec({"study": {"timeout": 60}, "params": {"epochs": {"max": 400, "decay": 0}}})
    assert constant.anneal == 0.2 and constant.anneals  # constant-rate trials are continued
    assert parse_spec({"study": {"timeout": 60, "anneal": 0.3}, "params": {"epochs": {"max": 400}}}).anneals
    config = spec.train_config({})
    assert config.epochs == 400 and config.decay_epochs == 100
    again = parse_spec(spec.to_dict())
    assert again.fingerprint() == spec.fingerprint() and again.epoch_range == (15, 400)
    assert parse_spec({"params": {"epochs": {"max": 90, "min": 10}}}).epoch_range == (10, 90)
    assert not parse_spec({"params": {"epochs": {"max": 90}}}).anneals  # no time budget: nothing to share
    assert parse_spec({"params": {"epochs": 50}}).epoch_range is None
    torch = parse_spec({"params": {"epochs": {"max": 90}, "lib": "torch"}})
    assert torch.anneal == 0 and torch.decay_epochs == 0  # numpy only
    assert spec.with_overrides(lib="torch").train_config({}).decay_epochs == 0
    for params, message in (({"epochs": {"max": 40, "step": 2}}, "must be epochs = { max = 400 }"),
                            ({"epochs": {"max": 10, "min": 20}}, r"min > max \(20 > 10\)"),
                            ({"epochs": {"max": 0}}, "must be >= 1")):
        with pytest.raises(SpaceError, match=message):
            parse_spec({"params": params})
    with pytest.raises(SpaceError, match="needs lib = \"numpy\""):
        parse_spec({"study": {"anneal": 0.3}, "params": {"epochs": {"max": 40}, "lib": "torch"}})
    with pytest.raises(SpaceError, match="needs epochs to be a resource"):
        parse_spec({"study": {"anneal": 0.3}})
    with pytest.raises(SpaceError, match="from 0 to below 1"):
        parse_spec({"study": {"anneal": 1.5}, "params": {"epochs": {"max": 40}}})
    with pytest.raises(SpaceError, match=r"decay must be an integer from 0 to max - 9 min \(30"):
        parse_spec({"params": {"epochs": {"max": 48, "min": 2, "decay": 40}}})
    with pytest.raises(SpaceError, match="decay needs lib"):
        parse_spec({"params": {"epochs": {"max": 48, "decay": 10}, "lib": "torch"}})


def test_the_population_engine_refuses_a_decaying_rate(tmp_path):
    from fcnn_opt.search.runner import StudyError, run_study

    spec = parse_spec({"study": {"n_trials": 2}, "params": {"epochs": {"max": 40}}})
    with pytest.raises(StudyError, match="--batch-trials 4: the population engine keeps the learning rate"):
        run_study(spec, storage=f"sqlite:///{tmp_path / 'p.db'}", batch_trials=4, progress=False)


RESOURCE = """
[study]
name = "eq"
sampler = "random"
n_trials = 30
seed = 3
[dataset]
name = "circles"
n_points = 400
[params]
epochs = { max = 27, min = 1, decay = 0 }
lr = { low = 1e-3, high = 1e-1, log = true }
units = [2, 4, 8, 16]
"""


def test_successive_halving_decided_in_memory_equals_optunas_own(tmp_path):
    """The runner decides successive halving on its in-memory mirror; Optuna's public API
    (FCNN_OPT_PUBLIC_API=1) asks Optuna's pruner every epoch. Same trials, same decisions."""
    cfg = write_toml(tmp_path / "eq.toml", RESOURCE)
    studies = []
    for name, env in (("fast", {}), ("plain", {"FCNN_OPT_PUBLIC_API": "1"})):
        url = f"sqlite:///{tmp_path / name}.db"
        run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", "--no-artifacts",
                      cwd=tmp_path, **env)
        assert run.returncode == 0, run.stderr
        studies.append(optuna.load_study(study_name="eq", storage=url).trials)
    fast, plain = studies
    assert [(t.state, t.params, t.intermediate_values) for t in fast] == \
        [(t.state, t.params, t.intermediate_values) for t in plain]
    stopped = {len(t.intermediate_values) for t in fast if t.state.name == "PRUNED"}
    assert stopped <= {1, 3, 9} and len(stopped) > 1  # the rungs: min, 3 min, 9 min
    rung = "completed_rung_0"  # recorded under Optuna's own names, for Optuna's pruner
    assert [t.system_attrs.get(rung) for t in fast] == [t.system_attrs.get(rung) for t in plain]


ANNEALED = {
    "study": {"name": "anneal", "sampler": "tpe", "anneal": 0.5, "seed": 0},
    "dataset": {"name": "circles", "n_points": 400},
    "params": {"epochs": {"max": 60, "min": 3}, "lr": {"low": 1e-3, "high": 1e-1, "log": True},
               "units": [4, 8, 16], "batch_size": 64},
}


def _annealed_spec(decay: int, **study):
    data = {**ANNEALED, "study": {**ANNEALED["study"], **study},
            "params": {**ANNEALED["params"], "epochs": {**ANNEALED["params"]["epochs"], "decay": decay}}}
    return parse_spec(data)


@pytest.mark.parametrize("decay", [15, 0])
def test_a_continuation_trains_on_from_the_best_trials_state(tmp_path, decay):
    """With a falling rate, a continuation starts from the state before the fall; with a constant
    one (decay = 0), from the end. Its history is that of one uninterrupted run. Trial budgets
    only: nothing here depends on how fast the machine is."""
    from fcnn_opt.search import anneal
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.store.artifact_files import load_histories, load_weights

    spec = _annealed_spec(decay, n_trials=20)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    run_study(spec, storage=url, progress=False)
    study = optuna.load_study(study_name="anneal", storage=url)
    step = anneal.continue_best(study, spec, seconds_left=60.0)
    assert isinstance(step, anneal.Continuation)
    run_study(spec.with_overrides(n_trials=21), storage=url, progress=False)
    study = optuna.load_study(study_name="anneal", storage=url)
    first = study.trials[-1]
    assert first.state.name == "COMPLETE" and first.user_attrs[CONTINUES_ATTR] == {"trial": step.trial,
                                                                                   "epochs": step.epochs}
    parent = study.trials[step.trial]
    assert parent.state.name == "COMPLETE" and len(parent.intermediate_values) == 60
    # The continuation is the best complete trial when it was queued, its own steps follow its parent's.
    assert parent.value == min(t.value for t in study.trials[:-1] if t.state.name == "COMPLETE")
    # It trains on from its parent's state before the rate fell (epoch 60 - decay), to at least
    # min epochs more than the parent in all, the rate falling over the same share.
    epochs, start = step.epochs, 60 - decay
    assert 63 <= epochs <= 120 and sorted(first.intermediate_values) == list(range(start + 1, epochs + 1))
    assert first.params == parent.params and first.value == pytest.approx(first.intermediate_values[epochs])
    # Its whole history equals one uninterrupted run of the same network with that schedule.
    config = TrainConfig.from_dict(first.user_attrs["config"])
    assert config.epochs == epochs and config.decay_epochs == (round(epochs / 4) if decay else epochs - 60)
    whole = train(make_dataset("circles", n_points=400, seed=0), config)
    np.testing.assert_allclose(load_histories(first)["val_loss"], whole.val_loss, atol=1e-5, rtol=0)
    np.testing.assert_allclose(load_weights(first)[0][0], whole.weights()[0][0], atol=1e-5)
    # A trial is continued once: the next continuation is of another one.
    assert anneal.next_continuation(study, spec, seconds_left=60.0).trial != step.trial
    assert anneal.next_continuation(study, spec, seconds_left=1e-6) is anneal.NextStep.STOP  # too little time


def test_a_time_budget_ends_by_continuing_the_best_trials(tmp_path):
    """The runner turns from drawing trials to continuing the best ones when the last ``anneal``
    share of its time budget begins, and a second run continues others.

    Speed: a trial here takes about 10 ms and a continuation of at least min epochs fits in
    20 ms, against 3 s of search and 3 s of continuing. The compiled kernels (training, TPE) are
    compiled or loaded before the clock starts, by a short trial-budgeted run in this process: on a
    fresh clone, compiling them takes seconds, which would eat a budget this short."""
    from fcnn_opt.cli.text import run_summary
    from fcnn_opt.search.runner import run_study

    run_study(_annealed_spec(0, n_trials=15), storage=f"sqlite:///{tmp_path / 'warm.db'}", progress=False)
    spec = _annealed_spec(0, timeout=6)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    summary = run_study(spec, storage=url, progress=False)
    assert summary.continued and "anneal    continued the best" in run_summary(summary)
    study = optuna.load_study(study_name="anneal", storage=url)
    states = {t.state.name for t in study.trials}
    assert "RUNNING" not in states and "WAITING" not in states
    continued = [t for t in study.trials if CONTINUES_ATTR in t.user_attrs]
    assert [t.user_attrs[CONTINUES_ATTR]["trial"] for t in continued] == [n for n, _ in summary.continued]
    assert all(t.state.name == "COMPLETE" for t in continued)
    # The first continuation starts only after the search's share of the time.
    first_continued = continued[0].datetime_start
    # (counted from the first trial, which starts a little after the clock: hence not 3 s)
    assert (first_continued - study.trials[0].datetime_start).total_seconds() >= 2.5
    parents = [t.user_attrs[CONTINUES_ATTR]["trial"] for t in continued]
    assert len(set(parents)) == len(parents)  # each trial is continued once
    # Resumable: the next run continues other trials, never the same one twice.
    run_study(spec, storage=url, progress=False)
    again = [t.user_attrs[CONTINUES_ATTR]["trial"] for t in optuna.load_study(study_name="anneal", storage=url).trials
             if CONTINUES_ATTR in t.user_attrs]
    assert len(again) > len(parents) and len(set(again)) == len(again)


def test_a_trial_without_a_state_cannot_be_continued(tmp_path):
    """A continuation of a trial that kept no state fails with the reason; the study goes on."""
    from fcnn_opt.search.runner import run_study

    spec = parse_spec({"study": {"name": "s", "n_trials": 2, "sampler": "random"},
                       "dataset": {"n_points": 300}, "params": {"epochs": 4}})
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_study(spec, storage=url, progress=False, artifacts="none")
    study = optuna.load_study(study_name="s", storage=url)
    study.enqueue_trial(study.trials[0].params, user_attrs={CONTINUES_ATTR: {"trial": 0, "epochs": 3}})
    run_study(spec.with_overrides(n_trials=3), storage=url, progress=False, artifacts="none")
    failed = optuna.load_study(study_name="s", storage=url).trials[2]
    assert failed.state.name == "FAIL" and "kept no state to continue from" in failed.user_attrs["fail_reason"]
