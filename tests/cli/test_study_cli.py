"""End to end through the command line on temporary SQLite files."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import optuna
import pytest
from conftest import STUDIES, cli_env, gate_env, held_trials, history, run_cli, write_toml

SMALL_TPE = """
[study]
name = "small"
sampler = "tpe"
pruner = "median"
n_trials = 12
seed = 3

[dataset]
name = "xor"
n_points = 400

[params]
epochs = 15
lr = { low = 1e-3, high = 1e-1, log = true }
units = [2, 4, 8]
activation = ["relu", "tanh"]
"""


def load(url, name):
    return optuna.load_study(study_name=name, storage=url)


def test_seed_grid_runs_each_point_once_and_resumes_without_adding(tmp_path, sqlite_url):
    done = run_cli("study", "--sampler", "grid", "--storage", sqlite_url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "6 complete, 0 pruned, 0 failed" in done.stdout
    assert "python -m fcnn_opt dashboard --storage" in done.stdout
    study = load(sqlite_url, "seed_grid")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert sorted((t.params["epochs"], t.params["units"]) for t in complete) == [
        (50, 2), (50, 4), (50, 8), (100, 2), (100, 4), (100, 8)]
    for t in complete:
        assert len(history(t, "val_loss")) == len(history(t, "train_loss")) == t.params["epochs"]
        assert len(t.intermediate_values) == t.params["epochs"]
        assert t.user_attrs["description"].startswith(f"epochs: {t.params['epochs']}, units: 2-")
        assert t.user_attrs["lib"] == "numpy" and t.user_attrs["dataset"] == "circles"
    again = run_cli("study", "--sampler", "grid", "--storage", sqlite_url, "--no-progress", cwd=tmp_path)
    assert again.returncode == 0 and "this run: 0" in again.stdout
    assert len(load(sqlite_url, "seed_grid").trials) == 6


def test_default_storage_is_a_sqlite_file_under_studies(tmp_path):
    done = run_cli("study", "--config", STUDIES / "seed_grid.toml", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "studies" / "fcnn_opt.db").exists()
    listed = run_cli("studies", cwd=tmp_path)
    assert "seed_grid" in listed.stdout
    trials = run_cli("trials", "--study-name", "seed_grid", "--format", "json", cwd=tmp_path)
    rows = json.loads(trials.stdout)
    assert len(rows) == 6 and {r["state"] for r in rows} == {"COMPLETE"}
    best = run_cli("best", "--study-name", "seed_grid", cwd=tmp_path)
    assert best.returncode == 0 and "units = 8" in best.stdout


def test_pruner_really_prunes(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "prune.toml", """
[study]
name = "prune"
sampler = "random"
pruner = "median"
n_trials = 16
seed = 1
[dataset]
name = "circles"
n_points = 500
[params]
epochs = 20
lr = { low = 1e-4, high = 3e-1, log = true }
optimizer = ["sgd", "adam"]
units = [2, 8]
""")
    done = run_cli("study", "--config", config, "--storage", sqlite_url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = load(sqlite_url, "prune")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert pruned and len(pruned) + len(complete) == 16
    assert all(len(history(t, "val_loss")) < 20 for t in pruned)
    assert all(len(history(t, "val_loss")) == 20 for t in complete)


def test_fixed_seed_reproduces_parameters_and_values(tmp_path):
    config = write_toml(tmp_path / "small.toml", SMALL_TPE)
    results = []
    for i in range(2):
        url = f"sqlite:///{tmp_path / f'run{i}.db'}"
        done = run_cli("study", "--config", config, "--storage", url, "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        results.append([(t.state.name, t.params, t.value) for t in load(url, "small").trials])
    assert results[0] == results[1]
    other = f"sqlite:///{tmp_path / 'other.db'}"
    run_cli("study", "--config", config, "--storage", other, "--seed", "4", "--no-progress", cwd=tmp_path)
    assert [t.params for t in load(other, "small.seed=4").trials] != [p for _, p, _ in results[0]]


def test_n_trials_counts_the_study_total(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "small.toml", SMALL_TPE)
    for n in (3, 5, 5):
        done = run_cli("study", "--config", config, "--storage", sqlite_url, "--n-trials", n, "--pruner", "none",
                       "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert len(load(sqlite_url, "small").trials) == 5


def test_sigterm_records_the_running_trial_and_the_next_run_resumes(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "long.toml", """
[study]
name = "long"
sampler = "grid"
pruner = "none"
[dataset]
name = "circles"
n_points = 400
[params]
epochs = 20
units = [4, 8, 16]
""")
    gate = tmp_path / "gate"
    args = [sys.executable, "-m", "fcnn_opt", "study", "--config", str(config), "--storage", sqlite_url, "--no-progress"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=cli_env(**gate_env(gate, free=1)), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    held = held_trials(gate, 1, proc)  # the second trial is RUNNING, held before it trains
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in out
    study = load(sqlite_url, "long")
    states = [t.state.name for t in study.trials]
    assert states == ["COMPLETE", "FAIL", "WAITING"], states  # the grid's third point still queued
    assert study.trials[1].number == held[0]
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert failed[0].user_attrs["fail_reason"].startswith("interrupted")
    resumed = run_cli("study", "--config", config, "--storage", sqlite_url, "--no-progress", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    complete = [t for t in load(sqlite_url, "long").trials if t.state.name == "COMPLETE"]
    assert sorted(t.params["units"] for t in complete) == [4, 8, 16]


def test_objective_in_a_users_own_study():
    from fcnn_opt import Objective

    objective = Objective(dataset={"name": "xor", "n_points": 400},
                          space={"epochs": 10, "lr": {"low": 1e-3, "high": 1e-1, "log": True}, "units": [4, 8]})
    study = optuna.create_study(direction=objective.direction, pruner=optuna.pruners.MedianPruner(),
                                sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=5)
    assert len(study.trials) == 5
    t = study.trials[0]
    assert set(t.params) == {"lr", "units"}
    assert len(history(t, "val_loss")) == len(t.intermediate_values) == 10
    assert 0 < study.best_value < 0.7


def test_accuracy_metric_is_maximised():
    from fcnn_opt import Objective

    objective = Objective(dataset="xor", space={"epochs": 5}, metric="val_accuracy")
    study = optuna.create_study(direction=objective.direction)
    study.optimize(objective, n_trials=1)
    assert objective.direction == "maximize" and 0.5 < study.best_value <= 1.0


def test_diverging_trial_fails_with_reason_and_study_goes_on(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "diverge.toml", """
[study]
name = "diverge"
sampler = "grid"
pruner = "none"
[dataset]
name = "prod"
n_points = 400
[params]
epochs = 30
optimizer = "sgd"
lr = [1e3, 1e-2]
n_layers = 2
""")
    done = run_cli("study", "--config", config, "--storage", sqlite_url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = {t.params["lr"]: t for t in load(sqlite_url, "diverge").trials}
    assert trials[1e3].state.name == "FAIL" and "diverged" in trials[1e3].user_attrs["fail_reason"]
    assert trials[1e-2].state.name == "COMPLETE"


def test_library_comparison_study_is_valid():
    from fcnn_opt.search.space import load_spec

    spec = load_spec(STUDIES / "compare_libs.toml")
    assert spec.grid()["lib"] == ["numpy", "torch", "tf", "keras", "sklearn"]
    assert load_spec(STUDIES / "tpe.toml").params["units"].per_layer


def test_seed_grid_file_equals_the_built_in_default():
    from fcnn_opt.search.space import SEED_GRID, load_spec, parse_spec

    assert load_spec(STUDIES / "seed_grid.toml").fingerprint() == parse_spec(SEED_GRID).fingerprint()


def test_changed_definition_under_the_same_name_is_refused(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "small.toml", SMALL_TPE)
    assert run_cli("study", "--config", config, "--storage", sqlite_url, "--n-trials", 1,
                   "--no-progress", cwd=tmp_path).returncode == 0
    changed = write_toml(tmp_path / "small2.toml", SMALL_TPE.replace("epochs = 15", "epochs = 16"))
    done = run_cli("study", "--config", changed, "--storage", sqlite_url, "--study-name", "small",
                   "--no-progress", cwd=tmp_path)
    assert done.returncode == 2 and "different dataset, metric or search space" in done.stderr
    assert len(load(sqlite_url, "small").trials) == 1


@pytest.mark.parametrize("sampler", ["random", "tpe", "cmaes", "qmc", "gp", "nsga2"])
def test_every_sampler_runs(sampler, sqlite_url):
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    spec = parse_spec({"study": {"sampler": sampler, "n_trials": 3, "pruner": "none"},
                       "dataset": {"name": "xor", "n_points": 200},
                       "params": {"epochs": 3, "lr": {"low": 1e-3, "high": 1e-1, "log": True},
                                  "units": {"low": 2, "high": 8}}})
    summary = run_study(spec, storage=sqlite_url, progress=False)
    assert summary.counts.complete == 3


@pytest.mark.parametrize("pruner", ["median", "percentile", "sha", "hyperband", "patient", "wilcoxon", "none"])
def test_every_pruner_runs(pruner, sqlite_url):
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    spec = parse_spec({"study": {"sampler": "random", "n_trials": 7, "pruner": pruner},
                       "dataset": {"name": "xor", "n_points": 200},
                       "params": {"epochs": 8, "lr": {"low": 1e-4, "high": 1e-1, "log": True}}})
    summary = run_study(spec, storage=sqlite_url, progress=False)
    assert summary.counts.done == 7
