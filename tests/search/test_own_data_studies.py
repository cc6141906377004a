"""Studies on your own data, and sizes checked before any work starts."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from conftest import STUDIES, run_cli, write_toml

import fcnn_opt

# One validation split and no refit, set in the file: these tests are about the data, and
# the table defaults (folds, refit) have tests of their own (test_table_defaults.py).
CSV_STUDY = """
[study]
name = "own"
sampler = "random"
n_trials = 4
refit = false
[dataset]
path = "data/table.csv"
target = "kind"
test_fraction = 0.2
folds = 1
[params]
epochs = 8
units = [4, 8]
"""


@pytest.fixture
def table(tmp_path):
    """A CSV with three measurements on very different scales and a labelled target."""
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[100.0, 0.0, -5.0], scale=[30.0, 0.01, 1.0], size=(400, 3))
    kind = np.where((X[:, 0] - 100) / 30 + X[:, 1] / 0.01 > 0, "hot", "cold")
    (tmp_path / "data").mkdir()
    lines = ["temperature,drift,offset,kind"] + [f"{a},{b},{c},{k}" for (a, b, c), k in zip(X, kind, strict=True)]
    (tmp_path / "data" / "table.csv").write_text("\n".join(lines) + "\n")
    return tmp_path, X, kind


def test_a_csv_study_runs_and_its_model_takes_raw_measurements(table):
    folder, X, kind = table
    cfg = write_toml(folder / "own.toml", CSV_STUDY)
    url = f"sqlite:///{folder / 'own.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=folder / "data")
    assert run.returncode == 0, run.stderr
    assert "data      table: 400 rows x 3 features, binary" in run.stdout and "classes cold, hot" in run.stdout
    study = optuna.load_study(study_name="own", storage=url)
    best = study.best_trial
    assert best.user_attrs["task"] == "binary" and len(best.user_attrs["scaling"]["input_mean"]) == 3
    assert best.user_attrs["units"].startswith("3-")
    # The loaded model folds the standardisation in: raw rows in, the trial's own accuracy out.
    from fcnn_opt.training.tables import build

    model = fcnn_opt.load_model(url, "own")
    data = build(study.user_attrs["dataset"])
    mean, std = data.input_scaling
    raw_val = data.X_val * std + mean
    assert np.abs(np.subtract.outer(raw_val[:, 0], X[:, 0])).min(axis=1).max() < 1e-3  # the file's rows
    evaluation = fcnn_opt.evaluate(url, "own")
    assert evaluation.validation["loss"][0] == pytest.approx(best.value, rel=1e-4)
    assert np.mean(model.predict(raw_val) == data.y_val) == pytest.approx(evaluation.validation["accuracy"][0])
    assert np.mean(np.array(["cold", "hot"])[model.predict(X)] == kind) > 0.6
    assert evaluation.n_points["test"] == 80
    from fcnn_opt.plots import fit_data

    fit = fit_data(best, study=study)
    assert fit.split == "test" and fit.classes == ("cold", "hot") and fit.matrix.sum() == 80
    assert np.trace(fit.matrix) / 80 == pytest.approx(evaluation.test["accuracy"][0])
    out = folder / "model.onnx"
    exported = run_cli("export", "--study-name", "own", "--storage", url, "--format", "onnx", "--out", out,
                       cwd=folder)
    assert exported.returncode == 0, exported.stderr
    report = run_cli("report", "--study-name", "own", "--storage", url, "--out", folder / "report", cwd=folder)
    assert report.returncode == 0 and "skipped   Model response" not in report.stdout, report.stdout
    from fcnn_opt.plots import response_data

    chosen = response_data(best, study=study, features=["offset", "temperature"])
    assert chosen.axes == ("offset (standardised)", "temperature (standardised)")
    assert response_data(best, study=study).axes[0] != "offset (standardised)"  # drift and temperature matter
    bad = run_cli("report", "--study-name", "own", "--storage", url, "--features", "offset", "nope", cwd=folder)
    assert bad.returncode == 2 and "no" in bad.stderr and "Features: temperature, drift, offset" in bad.stderr


def test_an_integer_target_keeps_its_labels_in_the_summary_and_the_figures(tmp_path):
    """A CSV target of 0, 1, 2 is shown as 0, 1, 2 (not 0.0, 1.0, 2.0): in the run summary, the
    dataset a study reads back and the confusion matrix."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    kind = (X[:, 0] > -0.5).astype(int) + (X[:, 0] > 0.5)
    (tmp_path / "data").mkdir()
    lines = ["a,b,kind"] + [f"{a},{b},{k}" for (a, b), k in zip(X, kind, strict=True)]
    (tmp_path / "data" / "table.csv").write_text("\n".join(lines) + "\n")
    cfg = write_toml(tmp_path / "own.toml", CSV_STUDY.replace("n_trials = 4", "n_trials = 2"))
    url = f"sqlite:///{tmp_path / 'own.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path / "data")
    assert run.returncode == 0, run.stderr
    assert "multiclass" in run.stdout and "classes 0, 1, 2;" in run.stdout, run.stdout
    assert "0.0" not in run.stdout.split("classes", 1)[1].split(";", 1)[0]
    study = optuna.load_study(study_name="own", storage=url)
    from fcnn_opt.plots import fit_data
    from fcnn_opt.training.tables import build

    assert build(study.user_attrs["dataset"]).class_names == ("0", "1", "2")
    fit = fit_data(study.best_trial, study=study)
    assert fit.classes == ("0", "1", "2") and fit.matrix.shape == (3, 3)


def test_a_worker_refuses_a_data_file_that_changed(table):
    folder, *_ = table
    cfg = write_toml(folder / "own.toml", CSV_STUDY)
    url = f"sqlite:///{folder / 'own.db'}"
    assert run_cli("study", "--config", cfg, "--storage", url, "--create-only", cwd=folder).returncode == 0
    csv = folder / "data" / "table.csv"
    csv.write_text(csv.read_text().replace("hot", "warm", 1))
    worker = run_cli("worker", "--storage", url, "--study-name", "own", cwd=folder)
    assert worker.returncode == 2 and "changed since the study was made" in worker.stderr
    assert len(worker.stderr.strip().splitlines()) == 1
    assert len(optuna.load_study(study_name="own", storage=url).trials) == 0


def test_a_worker_without_the_file_reads_the_studys_copy(table, monkeypatch):
    """A machine that lacks the data file (here: the file is gone) reads the copy the study
    keeps in its artifact folder, checked against the study's hash, and runs the trials."""
    folder, *_ = table
    cfg = write_toml(folder / "own.toml", CSV_STUDY)
    url = f"sqlite:///{folder / 'own.db'}"
    assert run_cli("study", "--config", cfg, "--storage", url, "--create-only", cwd=folder).returncode == 0
    pointer = optuna.load_study(study_name="own", storage=url).user_attrs["data_copy"]
    assert pointer["name"] == "table.csv" and (folder / "artifacts" / pointer["artifact_id"]).is_file()
    (folder / "data" / "table.csv").unlink()
    worker = run_cli("worker", "--storage", url, "--study-name", "own", "--no-progress", cwd=folder,
                     XDG_CACHE_HOME=str(folder / "cache"))
    assert worker.returncode == 0, worker.stderr
    study = optuna.load_study(study_name="own", storage=url)
    assert sum(t.state.name == "COMPLETE" for t in study.trials) == 4
    assert list((folder / "cache" / "fcnn_opt" / "data").glob("*table.csv"))
    # The report and evaluate find the data the same way.
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder / "cache2"))
    assert fcnn_opt.evaluate(url, "own").n_points["test"] == 80


def test_the_shipped_breast_cancer_study_runs(tmp_path):
    url = f"sqlite:///{tmp_path / 'bc.db'}"
    run = run_cli("study", "--config", STUDIES / "breast_cancer.toml", "--n-trials", 3, "--storage", url,
                  "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "breast_cancer: 569 rows x 30 features, binary" in run.stdout
    assert "classes malignant, benign" in run.stdout or "classes benign, malignant" in run.stdout


@pytest.mark.parametrize("text, message", [
    ("[dataset]\nn_points = 10000000000\n", "n_points = 10,000,000,000 is above the limit of 1,000,000"),
    ("[params]\nunits = 100000\n", "units = 100,000 is above the limit of 4,096"),
    ("[params]\nepochs = 1000000\n", "epochs = 1,000,000 is above the limit"),
    ("[dataset]\npath = \"nope.csv\"\ntarget = \"y\"\n", "no such file"),
    ("[dataset]\nsklearn = \"mnist\"\n", "expected one of {iris, wine, breast_cancer, digits, diabetes}"),
    ("[dataset]\nsklearn = \"iris\"\nn_points = 10\n", "belong to the built-in datasets"),
    ("[dataset]\nsklearn = \"iris\"\nscaling = \"global\"\n",
     "[dataset].scaling must be one of 'columns', 'shared', got 'global'"),
    ("[dataset]\nname = \"circles\"\nscaling = \"shared\"\n", "[dataset].scaling applies to your own data"),
])
def test_sizes_and_sources_are_checked_before_anything_is_written(tmp_path, text, message):
    cfg = write_toml(tmp_path / "s.toml", text)
    db = tmp_path / "s.db"
    result = run_cli("study", "--config", cfg, "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not db.exists()


def test_a_shared_scale_is_kept_with_the_study_and_folded_into_its_model(table):
    """``scaling = "shared"``: one mean and deviation for every feature, stored with each trial,
    used again by the refit, and folded into the loaded model, which takes raw rows."""
    from fcnn_opt.training.tables import build

    folder, X, kind = table
    cfg = write_toml(folder / "own.toml", CSV_STUDY.replace('target = "kind"', 'target = "kind"\nscaling = "shared"'))
    url = f"sqlite:///{folder / 'own.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=folder / "data")
    assert run.returncode == 0, run.stderr
    assert 'features standardised on the training split, on one scale for all (scaling = "shared")' in run.stdout
    study = optuna.load_study(study_name="own", storage=url)
    scaling = study.best_trial.user_attrs["scaling"]
    data = build(study.user_attrs["dataset"])
    raw_train = data.X_train * data.input_scaling[1] + data.input_scaling[0]
    assert scaling["input_mean"] == pytest.approx([raw_train.mean()] * 3, rel=1e-6)
    assert scaling["input_std"] == pytest.approx([raw_train.std()] * 3, rel=1e-6)
    evaluation = fcnn_opt.evaluate(url, "own")
    model = fcnn_opt.load_model(url, "own")
    raw_val = data.X_val * data.input_scaling[1] + data.input_scaling[0]
    assert evaluation.validation["loss"][0] == pytest.approx(study.best_value, rel=1e-4)
    assert np.mean(model.predict(raw_val) == data.y_val) == pytest.approx(evaluation.validation["accuracy"][0])


def test_what_cannot_fit_in_memory_is_refused_even_when_large_is_allowed(tmp_path):
    cfg = write_toml(tmp_path / "s.toml", "[params]\nunits = 10000000\n")
    result = run_cli("study", "--config", cfg, "--storage", f"sqlite:///{tmp_path / 's.db'}", "--allow-large",
                     cwd=tmp_path)
    assert result.returncode == 2 and "the largest case needs about" in result.stderr
    assert "available" in result.stderr and not (tmp_path / "s.db").exists()


def test_a_run_whose_every_trial_fails_stops_says_why_and_exits_1(tmp_path):
    cfg = write_toml(tmp_path / "s.toml", '[study]\nsampler = "random"\nn_trials = 50\n'
                                          '[params]\nlr = 1e6\noptimizer = "sgd"\nepochs = 3\n')
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path, timeout=120)
    assert result.returncode == 1, result.stderr
    assert "failed    10 trials: diverged: val_loss became nan at epoch 1" in result.stdout
    assert "stopped   the first 10 trials of this run failed and none finished" in result.stdout
    assert "every trial of this run failed" in result.stderr
    assert len(optuna.load_study(study_name="s", storage=url).trials) == 10


def test_a_regression_on_scikit_learns_diabetes_is_scored_in_its_own_units(tmp_path):
    from fcnn_opt.plots import fit_data

    cfg = write_toml(tmp_path / "d.toml", '[study]\nname = "d"\nsampler = "random"\nn_trials = 2\n'
                                          '[dataset]\nsklearn = "diabetes"\ntest_fraction = 0.2\n'
                                          '[params]\nepochs = 20\nunits = 16\nlr = 0.01\n')
    url = f"sqlite:///{tmp_path / 'd.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path)
    assert run.returncode == 0 and "regression (task regress (as given))" in run.stdout, run.stdout + run.stderr
    study = optuna.load_study(study_name="d", storage=url)
    fit = fit_data(study.best_trial, study=study)
    t_std = study.best_trial.user_attrs["scaling"]["target_std"]
    assert 24.9 <= fit.true.min() and fit.true.max() <= 346.1  # the disease progression score, not z-scores
    rmse = np.sqrt(np.mean((fit.predicted - fit.true) ** 2))
    test_loss = fcnn_opt.evaluate(url, "d").test["loss"][0]  # MSE on the standardised target
    assert rmse == pytest.approx(np.sqrt(test_loss) * t_std, rel=1e-4)


def test_the_shipped_digits_study_cross_validates_and_hands_over_a_fold_ensemble(tmp_path):
    from fcnn_opt.search.space import load_spec

    spec = load_spec(STUDIES / "digits.toml")
    assert (spec.folds, spec.refit, spec.refit_members, spec.timeout) == (5, 10, "folds", 60)
    assert spec.dataset["scaling"] == "shared"  # pixels: one unit
    url = f"sqlite:///{tmp_path / 'digits.db'}"
    run = run_cli("study", "--config", STUDIES / "digits.toml", "--timeout", 3, "--storage", url, "--no-progress",
                  "--no-artifacts", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    # 3 % of the budget is kept for assembling the ensemble: the search gets 2.91 s
    assert "cross-validated on 5 folds" in run.stdout and "of the 2.91 s given" in run.stdout
    assert "ensemble  the " in run.stdout and "nothing trained after the search" in run.stdout
    evaluated = run_cli("evaluate", "--study-name", "digits", "--storage", url, cwd=tmp_path)
    assert evaluated.returncode == 0, evaluated.stderr
    assert evaluated.stdout.startswith("model       the ") and "cross-validation networks of" in evaluated.stdout
