"""The population engine against the PyTorch backend, and batched studies against plain ones."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from conftest import history, run_cli, write_toml

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.training.population import train_population

TOLERANCE = 1e-5  # float32: members follow the single-model trajectory to rounding


def mixed_configs(n: int, batch_size: int = 100) -> list[TrainConfig]:
    rng = np.random.default_rng(7)
    configs = []
    for i in range(n):
        depth = int(rng.integers(1, 4))
        configs.append(TrainConfig(
            lib="torch", dims=tuple(int(rng.integers(2, 17)) for _ in range(depth)),
            activation=("relu", "tanh", "sigmoid")[i % 3],
            optimizer=("sgd", "adam", "rmsprop", "adagrad")[(i // 3) % 4],
            lr=float(10 ** rng.uniform(-3, -1)), l2=(0.0, 1e-3)[i % 2],
            epochs=int(rng.integers(2, 6)), batch_size=batch_size, seed=i))
    return configs


@pytest.mark.parametrize("name", ["circles", "xor", "prod"])
def test_each_member_follows_its_single_model_trajectory(name):
    data = make_dataset(name, n_points=600)
    configs = mixed_configs(12)
    together = train_population(data, configs)
    for config, member in zip(configs, together, strict=True):
        alone = train(data, config)
        assert member.epochs_run == alone.epochs_run == config.epochs
        np.testing.assert_allclose(member.train_loss, alone.train_loss, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(member.val_loss, alone.val_loss, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(member.predict(data.X_val), alone.predict(data.X_val), atol=TOLERANCE)
        for (Wa, ba), (Wb, bb) in zip(member.weights(), alone.weights(), strict=True):
            assert Wa.shape == Wb.shape and ba.shape == bb.shape


def test_members_sharing_a_seed_share_one_batch_order_and_still_follow_their_trajectories():
    data = make_dataset("circles", n_points=600)
    configs = [TrainConfig(**{**c.to_dict(), "seed": 3}) for c in mixed_configs(6)]
    for config, member in zip(configs, train_population(data, configs), strict=True):
        alone = train(data, config)
        np.testing.assert_allclose(member.train_loss, alone.train_loss, atol=TOLERANCE, rtol=0)
        np.testing.assert_allclose(member.val_loss, alone.val_loss, atol=TOLERANCE, rtol=0)


def test_groups_by_batch_size_and_width_train_side_by_side():
    data = make_dataset("circles", n_points=600)
    configs = mixed_configs(4, batch_size=50) + mixed_configs(4, batch_size=128)
    configs += [TrainConfig(lib="torch", dims=(40, 3), epochs=3, seed=9)]
    for config, member in zip(configs, train_population(data, configs), strict=True):
        np.testing.assert_allclose(member.val_loss, train(data, config).val_loss, atol=TOLERANCE, rtol=0)


def test_a_stopped_member_stops_alone_and_the_others_are_unchanged():
    data = make_dataset("circles", n_points=600)
    configs = [TrainConfig(lib="torch", dims=(8,), epochs=6, seed=s, lr=0.01) for s in range(4)]
    calls = []

    def on_epoch(i, epoch, metrics):
        calls.append((i, epoch))
        return i == 1 and epoch == 2

    results = train_population(data, configs, on_epoch)
    assert results[1].epochs_run == 2 and results[1].stopped_early
    assert [r.epochs_run for r in results] == [6, 2, 6, 6]
    assert (1, 3) not in calls and (0, 6) in calls
    for config, member in zip(configs, results, strict=True):
        alone = train(data, config, on_epoch=lambda e, m, seed=config.seed: seed == 1 and e == 2)
        np.testing.assert_allclose(member.val_loss, alone.val_loss, atol=TOLERANCE, rtol=0)


def test_linear_models_are_refused_with_a_reason():
    with pytest.raises(NotImplementedError, match="at least one hidden layer"):
        train_population(make_dataset("xor", n_points=100), [TrainConfig(dims=())])


SPACE = """
[study]
name = "pop"
sampler = "random"
pruner = "median"
n_trials = 24
seed = 5
[dataset]
name = "circles"
n_points = 600
[params]
lib = "torch"
epochs = 12
lr = { low = 1e-4, high = 1e-1, log = true }
units = [2, 4, 8, 16]
optimizer = ["sgd", "adam"]
"""


@pytest.mark.parametrize("kind", ["sqlite", "journal"])
def test_batched_pruning_decisions_equal_one_at_a_time_decisions(tmp_path, sqlite_url, kind):
    """A batch's trials are created, recorded and finished in one write each on a journal;
    either way every trial ends whole: parameters, every epoch's value, its attributes."""
    config = write_toml(tmp_path / "pop.toml", SPACE)
    url = sqlite_url if kind == "sqlite" else f"journal:{tmp_path / 'pop.log'}"
    done = run_cli("study", "--config", config, "--storage", url, "--batch-trials", 8,
                   "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    if kind == "journal":
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        url = JournalStorage(JournalFileBackend(str(tmp_path / "pop.log")))
    study = optuna.load_study(study_name="pop", storage=url)
    trials = study.trials
    assert len(trials) == 24 and any(t.state.name == "PRUNED" for t in trials)
    assert [t.number for t in trials] == list(range(24))
    assert all(t.user_attrs["engine"] == "population (cpu)" for t in trials)
    for t in trials:
        assert set(t.params) == {"lr", "units", "optimizer"} and t.user_attrs["worker"]
        assert len(history(t, "val_loss")) == len(t.intermediate_values) == t.user_attrs["epochs_run"]
        assert t.datetime_complete is not None and t.datetime_start <= t.datetime_complete
        if t.state.name == "COMPLETE":
            assert t.value == t.intermediate_values[12]
        else:  # as study.tell stores a pruned trial: its last intermediate value
            assert t.value == t.intermediate_values[max(t.intermediate_values)]
    # Replay: trial j of batch b sees exactly the trials of batches before b, as a worker would.
    for t in trials:
        before = [s for s in trials if s.number < (t.number // 8) * 8]
        replay = optuna.create_study(direction="minimize", pruner=optuna.pruners.MedianPruner(
            n_startup_trials=5, n_warmup_steps=5))
        for s in before:
            replay.add_trial(s)
        twin = replay.ask()
        first_prune = None
        for step, value in sorted(t.intermediate_values.items()):
            twin.report(value, step)
            if twin.should_prune():
                first_prune = step
                break
        if t.state.name == "PRUNED":
            assert first_prune == max(t.intermediate_values)
        else:
            assert first_prune is None and len(t.intermediate_values) == 12


def test_mirror_pruning_equals_optunas_own_optimize(tmp_path, sqlite_url):
    from fcnn_opt import Objective
    from fcnn_opt.search.pruners import make_pruner
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.samplers import make_sampler
    from fcnn_opt.search.space import parse_spec

    spec = parse_spec({"study": {"sampler": "tpe", "pruner": "median", "n_trials": 20, "seed": 2},
                       "dataset": {"name": "circles", "n_points": 500},
                       "params": {"epochs": 10, "lr": {"low": 1e-4, "high": 1e-1, "log": True},
                                  "units": [2, 4, 8]}})
    run_study(spec, storage=sqlite_url, progress=False)
    ours = optuna.load_study(study_name=spec.name, storage=sqlite_url).trials
    plain = optuna.create_study(direction="minimize", sampler=make_sampler("tpe", 2, spec),
                                pruner=make_pruner("median"))
    plain.optimize(Objective(spec), n_trials=20)
    assert [(t.state, t.params, t.value) for t in ours] == [(t.state, t.params, t.value) for t in plain.trials]
    assert [t.intermediate_values for t in ours] == [t.intermediate_values for t in plain.trials]


def test_population_with_one_member_gives_the_plain_objectives_values(tmp_path):
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    spec = parse_spec({"study": {"sampler": "grid", "pruner": "none"},
                       "dataset": {"name": "xor", "n_points": 400},
                       "params": {"lib": "torch", "epochs": 8, "units": [2, 8], "lr": [0.01, 0.05]}})
    values = []
    for k in (1, 2, 4):
        url = f"sqlite:///{tmp_path / f'k{k}.db'}"
        run_study(spec, storage=url, progress=False, batch_trials=k)
        trials = optuna.load_study(study_name=spec.name, storage=url).trials
        values.append({(t.params["units"], t.params["lr"]): t.value for t in trials})
    for other in values[1:]:
        assert other.keys() == values[0].keys()
        for key, value in other.items():
            assert value == pytest.approx(values[0][key], abs=TOLERANCE)


def test_batched_grid_runs_each_point_once(tmp_path, sqlite_url):
    done = run_cli("study", "--sampler", "grid", "--storage", sqlite_url, "--batch-trials", 4,
                   "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="seed_grid", storage=sqlite_url).trials
    assert sorted((t.params["epochs"], t.params["units"]) for t in trials) == [
        (50, 2), (50, 4), (50, 8), (100, 2), (100, 4), (100, 8)]
    assert all(len(history(t, "val_loss")) == t.params["epochs"] for t in trials)


@pytest.mark.parametrize("pruner", [
    optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
    optuna.pruners.PercentilePruner(30.0, n_startup_trials=0, n_warmup_steps=0, interval_steps=3, n_min_trials=4),
    optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=4, interval_steps=2)])
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_percentile_rule_decides_as_optunas_pruner(pruner, direction):
    """The mirror's PercentileRule against Optuna's own pruner, decision by decision, on
    histories of different lengths (some with NaN values) as completed trials accumulate."""
    import math

    from fcnn_opt.search.mirror_rules import PercentileRule
    from fcnn_opt.store.optuna_internals import percentile_settings

    rng = np.random.default_rng(3)
    study = optuna.create_study(direction=direction, pruner=pruner)
    rule = PercentileRule(percentile_settings(pruner), maximize=direction == "maximize")
    decisions = 0
    for _ in range(40):
        length = int(rng.integers(1, 15))
        values = rng.normal(size=length).cumsum().tolist()
        if rng.random() < 0.1:
            values[int(rng.integers(length))] = math.nan
        trial = study.ask()
        history, best = {}, math.nan
        for step, value in enumerate(values):
            trial.report(value, step)
            history[step] = value
            if not math.isnan(value):
                best = value if math.isnan(best) else (max if direction == "maximize" else min)(best, value)
            expected = trial.should_prune()
            assert rule.prune(history, best, step) == expected, (step, values)
            decisions += expected
            if expected:
                break
        if rng.random() < 0.7 and not any(math.isnan(v) for v in values):
            study.tell(trial, values[-1])
            rule.add_complete(history)
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    assert decisions > 0  # the comparison covered decisions to prune, not only to go on
