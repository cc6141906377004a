"""Results a user can trust: seed repeats, a test estimate the search never saw, and studies
with several objectives, run on real storages."""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from conftest import ROOT, run_cli, write_toml

from fcnn_opt import make_dataset, train
from fcnn_opt.search.evaluation import evaluate
from fcnn_opt.search.runner import run_study
from fcnn_opt.search.space import SpaceError, parse_spec
from fcnn_opt.store.artifact_files import load_weights


def _spec(**study):
    return parse_spec({
        "study": {"name": "r", "sampler": "random", "pruner": "none", "n_trials": 4, "seed": 1, **study},
        "dataset": {"name": "circles", "n_points": 400, "test_fraction": 0.2},
        "params": {"epochs": 8, "units": [4, 8], "lr": {"low": 3e-3, "high": 3e-2, "log": True}},
    })


def _val_loss(weights, task, data):
    from fcnn_opt.training.backends._base import loss
    from fcnn_opt.training.backends._numpy import NumpyNet

    return loss(task, NumpyNet(weights, "relu", task).predict(data.X_val), data.y_val)


# --- seed repeats ------------------------------------------------------------------------------

def test_one_repeat_is_todays_trial_bit_for_bit(sqlite_url):
    """R=1 (the default, or said explicitly) keeps the study's fingerprint, and each trial's
    value is exactly what a plain training run of its configuration gives."""
    assert _spec().fingerprint() == _spec(repeats=1).fingerprint() != _spec(repeats=2).fingerprint()
    run_study(_spec(repeats=1), storage=sqlite_url, progress=False, artifacts="none")
    study = optuna.load_study(study_name="r", storage=sqlite_url)
    data = make_dataset(**study.user_attrs["dataset"])
    for trial in study.trials:
        from fcnn_opt.training.config import TrainConfig

        plain = train(data, TrainConfig.from_dict(trial.user_attrs["config"]))
        assert trial.value == plain.val_loss[-1]
        assert "repeats" not in trial.user_attrs


@pytest.mark.parametrize("batch_trials", [1, 3])
def test_repeats_store_the_mean_the_spread_and_every_network(sqlite_url, batch_trials):
    run_study(_spec(repeats=3), storage=sqlite_url, progress=False, artifacts="none",
              batch_trials=batch_trials)
    study = optuna.load_study(study_name="r", storage=sqlite_url)
    data = make_dataset(**study.user_attrs["dataset"])
    assert len(study.trials) == 4
    for trial in study.trials:
        info = trial.user_attrs["repeats"]
        assert info["n"] == 3 and info["seeds"] == [1, 2, 3]
        assert trial.value == pytest.approx(np.mean(info["val_loss"]), rel=1e-5)
        assert trial.user_attrs["val_loss_std"] == pytest.approx(np.std(info["val_loss"], ddof=1), rel=1e-4)
        assert len(set(info["val_loss"])) == 3
        # Each network is in the run file and scores what it reported.
        for r in range(3):
            assert _val_loss(load_weights(trial, repeat=r), data.task, data) == pytest.approx(
                info["val_loss"][r], rel=1e-4)
        # The pruner saw the mean of the repeats each epoch.
        assert trial.intermediate_values[8] == pytest.approx(trial.value, rel=1e-6)


def test_the_hyperparameter_figure_shows_each_trials_spread_over_seeds(sqlite_url):
    from fcnn_opt.plots import plot_hp_surface

    run_study(_spec(repeats=2), storage=sqlite_url, progress=False, artifacts="none")
    study = optuna.load_study(study_name="r", storage=sqlite_url)
    fig = plot_hp_surface(study)
    bars = [t for t in fig.data if getattr(t, "error_y", None) is not None and t.error_y.array is not None]
    assert bars, "no trial carries its seeds' spread"
    spreads = sorted(t.user_attrs["val_loss_std"] for t in study.trials)
    assert sorted(bars[0].error_y.array) == pytest.approx(spreads)


def test_repeats_with_pruning_stop_every_network_together(sqlite_url):
    spec = _spec(repeats=2, pruner="median", n_trials=10)
    run_study(spec, storage=sqlite_url, progress=False, artifacts="none")
    study = optuna.load_study(study_name="r", storage=sqlite_url)
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, "the median pruner stopped no trial"
    for trial in pruned:
        assert trial.user_attrs["epochs_run"] == max(trial.intermediate_values) < 8


def test_bad_repeats_are_refused_in_one_line(tmp_path):
    with pytest.raises(SpaceError, match=r"repeats: expected an integer from 1 to 100"):
        _spec(repeats=0)
    cfg = write_toml(tmp_path / "s.toml", '[study]\nrepeats = "3"\n')
    result = run_cli("study", "--config", cfg, "--storage", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert result.returncode == 2 and "[study].repeats must be int" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.db").exists()


# --- the test estimate -------------------------------------------------------------------------

def test_evaluate_scores_each_network_on_the_held_out_points(sqlite_url):
    run_study(_spec(repeats=2), storage=sqlite_url, progress=False, artifacts="none")
    study = optuna.load_study(study_name="r", storage=sqlite_url)
    result = evaluate(sqlite_url, "r")
    assert result.trial_number == study.best_trial.number and result.seeds == [1, 2]
    assert result.n_points == {"validation": 80, "test": 80}
    assert result.validation["loss"] == pytest.approx(study.best_trial.user_attrs["repeats"]["val_loss"],
                                                      rel=1e-4)
    assert len(result.test["loss"]) == 2 and all(0 < v < 3 for v in result.test["loss"])
    assert result.test["loss"] != result.validation["loss"]
    assert all(0 <= a <= 1 for a in result.test["accuracy"])
    assert "±" in result.summary("test", "loss") and "(2 seeds)" in result.summary("test", "loss")


def test_best_and_evaluate_on_the_command_line(tmp_path):
    cfg = write_toml(tmp_path / "s.toml", """
[study]
name = "e"
sampler = "random"
n_trials = 3
repeats = 2
[dataset]
name = "xor"
n_points = 300
test_fraction = 0.2
[params]
epochs = 5
""")
    url = f"sqlite:///{tmp_path / 'e.db'}"
    assert run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path).returncode == 0
    best = run_cli("best", "--study-name", "e", "--storage", url, cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert "± " in best.stdout and "over 2 seeds" in best.stdout
    assert "test        loss" in best.stdout and "held out, never seen by the search" in best.stdout
    one = run_cli("evaluate", "--study-name", "e", "--storage", url, "--trial", "0", cwd=tmp_path)
    assert one.returncode == 0 and one.stdout.startswith("trial 0 (complete) of 'e': 2 networks (seeds 0, 1)")
    bad = run_cli("evaluate", "--study-name", "e", "--storage", url, "--trial", "9", cwd=tmp_path)
    assert bad.returncode == 2 and "has no trial 9" in bad.stderr and "Traceback" not in bad.stderr


def test_a_study_from_release_0_1_0_says_its_test_estimate_is_missing(tmp_path):
    import shutil

    db = tmp_path / "old.db"
    shutil.copy(ROOT / "tests" / "fixtures" / "release_0_1_0.db", db)
    before = db.read_bytes()
    names = [s.study_name for s in optuna.get_all_study_summaries(f"sqlite:///{db}")]
    result = run_cli("best", "--study-name", names[0], "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test        none: the study has no test split" in result.stdout
    assert "validation  loss" in result.stdout
    assert db.read_bytes() == before


# --- several objectives ------------------------------------------------------------------------

MULTI = """
[study]
name = "m"
sampler = "{sampler}"
n_trials = 8
seed = 3
objectives = ["val_loss", "n_params"]
[dataset]
name = "circles"
n_points = 300
[params]
epochs = 6
n_layers = {{ low = 1, high = 2 }}
units = [2, 4, 8, 16]
"""


def _check_multi_study(url: str) -> None:
    study = optuna.load_study(study_name="m", storage=url)
    assert [d.name for d in study.directions] == ["MINIMIZE", "MINIMIZE"]
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(complete) == 8
    for trial in complete:
        config = trial.user_attrs["config"]
        sizes = [2, *config["dims"], 4]
        assert trial.values[1] == sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
        assert math.isfinite(trial.values[0]) and not trial.intermediate_values
        assert trial.user_attrs["objectives"] == {"val_loss": trial.values[0], "n_params": trial.values[1]}
    front = {t.number for t in study.best_trials}
    assert front and all(t.number in front or any(
        o.values[0] <= t.values[0] and o.values[1] <= t.values[1] for o in study.best_trials)
        for t in complete)


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random"])
def test_a_multi_objective_study_on_sqlite(tmp_path, sampler):
    cfg = write_toml(tmp_path / "m.toml", MULTI.format(sampler=sampler))
    url = f"sqlite:///{tmp_path / 'm.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "trials trade off val_loss, n_params" in run.stdout
    _check_multi_study(url)
    best = run_cli("best", "--study-name", "m", "--storage", url, cwd=tmp_path)
    assert best.returncode == 0 and best.stdout.startswith("pareto set: ")
    assert "val_loss (minimize), n_params (minimize)" in best.stdout
    no_trial = run_cli("export", "--study-name", "m", "--storage", url, "--format", "npz", "--out",
                       tmp_path / "m.npz", cwd=tmp_path)
    assert no_trial.returncode == 2 and "no single best trial; choose one of its Pareto set" in no_trial.stderr
    if sampler != "nsga2":
        return
    # Every other command reads a multi-objective study too, given a trial of its Pareto set.
    number = str(optuna.load_study(study_name="m", storage=url).best_trials[0].number)
    for args in (["evaluate", "--trial", number], ["export", "--trial", number, "--format", "npz", "--out",
                                                   tmp_path / "m.npz"], ["trials"], ["studies"]):
        done = run_cli(*args, "--storage", url, *([] if args == ["studies"] else ["--study-name", "m"]),
                       cwd=tmp_path)
        assert done.returncode == 0, (args, done.stderr)
    assert (tmp_path / "m.npz").exists()
    assert "minimize, minimize  Pareto set" in run_cli("studies", "--storage", url, cwd=tmp_path).stdout


def test_a_multi_objective_study_on_postgresql_with_two_workers(tmp_path, pg_url):
    cfg = write_toml(tmp_path / "m.toml", MULTI.format(sampler="nsga2"))
    run = run_cli("study", "--config", cfg, "--storage", pg_url, "--no-progress", "--workers", "2",
                  cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    _check_multi_study(pg_url)


def test_the_report_of_a_multi_objective_study_draws_the_front_and_three_networks(tmp_path):
    from fcnn_opt.plots import build_report

    cfg = write_toml(tmp_path / "m.toml", MULTI.format(sampler="random").replace("n_trials = 8", "n_trials = 12"))
    url = f"sqlite:///{tmp_path / 'm.db'}"
    assert run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path).returncode == 0
    study = optuna.load_study(study_name="m", storage=url)
    report = build_report(study, tmp_path / "report")
    names = sorted(p.name for p in report.pngs)
    assert names[0] == "01_pareto_front.png" and not report.skipped
    responses = [n for n in names if "response" in n]
    assert 1 <= len(responses) <= 3 and len(responses) == min(3, len(study.best_trials))
    page = report.html.read_text()
    assert "Pareto set" in page and "n_params" in page


@pytest.mark.parametrize("extra, message", [
    ('pruner = "median"', "pruner 'median' is not offered with several objectives"),
    ('sampler = "cmaes"', "sampler 'cmaes' cannot optimise several objectives"),
])
def test_multi_objective_settings_that_cannot_work_are_refused(extra, message):
    study = {"objectives": ["val_loss", "n_params"]}
    key, value = extra.split(" = ")
    study[key] = value.strip('"')
    with pytest.raises(SpaceError, match=message):
        parse_spec({"study": study})


@pytest.mark.parametrize("objectives, message", [
    (["val_loss"], "lists one objective"),
    (["val_loss", "speed"], "expected one of"),
    (["val_loss", "val_loss"], "listed twice"),
])
def test_bad_objective_lists_say_what_is_allowed(objectives, message):
    with pytest.raises(SpaceError, match=message):
        parse_spec({"study": {"objectives": objectives}})


def test_val_accuracy_needs_a_classification_dataset():
    with pytest.raises(SpaceError, match="val_accuracy needs a classification dataset"):
        parse_spec({"study": {"objectives": ["val_accuracy", "n_params"]}, "dataset": {"name": "prod"}})
