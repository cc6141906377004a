"""Cross-validation: folds disjoint, stratified and seeded; networks trained in lockstep; a
cross-validated study scored out of fold; one fold (the default) changes nothing."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from conftest import run_cli, write_toml

from fcnn_opt import TrainConfig, make_dataset
from fcnn_opt.training.backends._base import loss
from fcnn_opt.training.folds import (
    FoldError,
    Lockstep,
    fold_rows,
    make_folds,
    pooled_rows,
    train_folds,
)
from fcnn_opt.training.tables import load_sklearn


def test_folds_are_disjoint_cover_every_row_once_and_are_stratified():
    data = load_sklearn("wine", test_fraction=0.2)
    X, y = pooled_rows(data)
    folds = make_folds(data, 5)
    rows = fold_rows(data, 5)
    assert sorted(np.concatenate(rows).tolist()) == list(range(len(X)))  # each row validated exactly once
    for fold, held in zip(folds, rows, strict=True):
        np.testing.assert_array_equal(fold.X_val, X[held])
        assert len(fold.X_train) + len(fold.X_val) == len(X)
        others = np.setdiff1d(np.arange(len(X)), held)
        np.testing.assert_array_equal(fold.X_train, X[others])  # trains on every other row
        np.testing.assert_array_equal(fold.X_test, data.X_test)  # the test split untouched
    assert max(len(r) for r in rows) - min(len(r) for r in rows) <= 1
    for label in np.unique(y):  # every class spread as evenly as the rows allow
        per_fold = [int((y[r] == label).sum()) for r in rows]
        assert max(per_fold) - min(per_fold) <= 1, (label, per_fold)


def test_folds_are_stable_under_the_seed_and_change_with_it():
    data = make_dataset("moons", n_points=300, seed=4)
    again = make_dataset("moons", n_points=300, seed=4)
    other = make_dataset("moons", n_points=300, seed=5)
    first = [r.tolist() for r in fold_rows(data, 3)]
    assert first == [r.tolist() for r in fold_rows(again, 3)]
    np.testing.assert_array_equal(make_folds(data, 3)[1].X_val, make_folds(again, 3)[1].X_val)
    assert first != [r.tolist() for r in fold_rows(other, 3)]


def test_folds_the_data_cannot_make_are_refused():
    data = make_dataset("moons", n_points=40)
    with pytest.raises(FoldError, match="from 2 to 20"):
        make_folds(data, 1)
    with pytest.raises(FoldError, match="cannot make 20 folds"):
        make_folds(make_dataset("moons", n_points=30), 20)


def test_each_fold_network_equals_one_trained_alone_and_the_value_is_their_mean():
    """Lockstep changes nothing a network learns: fold k's run is the run of the same config on
    fold k's dataset; the histories are the mean over folds, and the out-of-fold predictions are
    each fold network's on its own validation rows."""
    from fcnn_opt.training.loop import train

    data = make_dataset("circles", n_points=300, seed=1)
    config = TrainConfig(dims=(6,), epochs=8, lr=0.01, batch_size=32)
    result = train_folds(data, 3, config)
    alone = [train(fold, config) for fold in make_folds(data, 3)]
    for run, single in zip(result.repeats, alone, strict=True):
        np.testing.assert_allclose(run.val_loss, single.val_loss, rtol=1e-6)
    np.testing.assert_allclose(result.val_loss, np.mean([s.val_loss for s in alone], axis=0), rtol=1e-6)
    rows = fold_rows(data, 3)
    for single, held, fold in zip(alone, rows, make_folds(data, 3), strict=True):
        np.testing.assert_allclose(result.out_of_fold[held], single.predict(fold.X_val), atol=1e-6)
    _, y = pooled_rows(data)
    np.testing.assert_allclose(loss(data.task, result.out_of_fold, y),
                               np.average([s.val_loss[-1] for s in alone], weights=[len(r) for r in rows]),
                               rtol=1e-5)


def test_the_pruner_sees_the_mean_and_stops_every_fold():
    data = make_dataset("moons", n_points=200)
    seen = []

    def on_epoch(epoch, metrics):
        seen.append((epoch, metrics["val_loss"]))
        return epoch == 3

    result = train_folds(data, 4, TrainConfig(dims=(4,), epochs=20), repeats=2, on_epoch=on_epoch)
    assert [epoch for epoch, _ in seen] == [1, 2, 3]  # once per epoch, for all 8 networks
    assert len(result.repeats) == 8 and result.epochs_run == 3
    assert all(run.epochs_run == 3 for run in result.repeats)
    assert seen[-1][1] == pytest.approx(np.mean([run.val_loss[2] for run in result.repeats]))


def test_a_failing_network_ends_the_lockstep_with_its_error():
    from fcnn_opt.training.folds import _Abandoned

    step = Lockstep(2, None)
    step.abandon()
    with pytest.raises(_Abandoned):
        step.member(1, {"train_loss": 1.0, "val_loss": 1.0})
    with pytest.raises(ValueError):
        train_folds(make_dataset("moons", n_points=200), 2, TrainConfig(dims=(4,), epochs=3, lib="sklearn",
                                                                          optimizer="adagrad"))


CV = """
[study]
name = "cv"
sampler = "random"
pruner = "none"
n_trials = 3
seed = 2
[dataset]
sklearn = "breast_cancer"
test_fraction = 0.2
{folds}
[params]
epochs = 6
units = [4, 8]
lr = {{ low = 1e-3, high = 1e-1, log = true }}
"""


def test_a_cross_validated_study_is_scored_out_of_fold(tmp_path):
    from fcnn_opt.search.evaluation import evaluate
    from fcnn_opt.store.artifact_files import load_run_array

    url = f"sqlite:///{tmp_path / 'cv.db'}"
    config = write_toml(tmp_path / "cv.toml", CV.format(folds="folds = 4"))
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "cross-validated on 4 folds of the rows outside the test split, stratified by class" in done.stdout
    study = optuna.load_study(study_name="cv", storage=url)
    data = load_sklearn("breast_cancer", test_fraction=0.2)
    _, y = pooled_rows(data)
    for trial in study.trials:
        folds = trial.user_attrs["folds"]
        assert folds["n"] == 4 and len(folds["val_loss"]) == 4
        assert trial.value == pytest.approx(np.mean(folds["val_loss"]), rel=1e-5)
        assert trial.user_attrs["val_loss_std"] == pytest.approx(np.std(folds["val_loss"], ddof=1), rel=1e-4)
        oof = load_run_array(trial, "out_of_fold")
        assert oof.shape == (len(y), 1) and np.isfinite(oof).all()
    best = run_cli("best", "--study-name", "cv", "--storage", url, cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert "over 4 folds (minimize, cross-validated)" in best.stdout
    assert f"({len(y)} points, cross-validated" in best.stdout
    result = evaluate(url, "cv")
    oof = load_run_array(study.best_trial, "out_of_fold")
    assert result.validation["loss"] == [pytest.approx(loss(data.task, oof, y))]
    assert len(result.test["loss"]) == 4 and result.averaged["loss"] > 0


def test_one_fold_leaves_a_study_as_it_was(tmp_path):
    """folds = 1 gives the fingerprint and the trials, bit for bit, of the same study without
    folds as an earlier release read it (before the table defaults, which a silent file gets)."""
    import tomllib

    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    plain = parse_spec(tomllib.loads(CV.format(folds="")), table_defaults=False)
    one = parse_spec(tomllib.loads(CV.format(folds="folds = 1")))
    assert plain.fingerprint() == one.fingerprint() and one.folds == 1 and "folds" not in one.dataset
    assert plain.with_overrides(folds=1).fingerprint() == plain.fingerprint()
    assert plain.with_overrides(folds=3).fingerprint() != plain.fingerprint()
    values = []
    run_study(plain, storage=f"sqlite:///{tmp_path / 'plain.db'}", progress=False, artifacts="none")
    config = write_toml(tmp_path / "cv.toml", CV.format(folds="folds = 1"))
    done = run_cli("study", "--config", config, "--storage", f"sqlite:///{tmp_path / 'one.db'}", "--no-progress",
                   "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for name in ("plain", "one"):
        trials = optuna.load_study(study_name="cv", storage=f"sqlite:///{tmp_path / name}.db").trials
        values.append([(t.params, t.value, t.intermediate_values) for t in trials])
    assert values[0] == values[1] and len(values[0]) == 3


@pytest.mark.parametrize("extra, message", [
    ("folds = 0", "[dataset].folds must be a whole number from 1 to 20, got 0."),
    ("folds = 3\nval_fraction = 0.3", "[dataset] takes folds or val_fraction, not both"),
])
def test_bad_folds_get_one_line(tmp_path, extra, message):
    config = write_toml(tmp_path / "cv.toml", CV.format(folds=extra))
    done = run_cli("study", "--config", config, "--storage", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_folds_a_class_cannot_fill_are_refused_before_any_trial(tmp_path):
    csv = tmp_path / "few.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i},{i % 7},{int(i < 3)}\n" for i in range(40)))
    config = write_toml(tmp_path / "few.toml", f"""
[study]
name = "few"
n_trials = 2
[dataset]
path = "{csv}"
target = "label"
folds = 5
[params]
epochs = 2
""")
    done = run_cli("study", "--config", config, "--storage", f"sqlite:///{tmp_path / 'few.db'}", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "fewer than the 5 folds" in done.stderr
    assert not (tmp_path / "few.db").exists() or "few" not in run_cli(
        "studies", "--storage", f"sqlite:///{tmp_path / 'few.db'}", cwd=tmp_path).stdout


def test_the_population_engine_trains_each_fold_as_alone_and_stops_a_trials_folds_together():
    """Several configs' folds in the population engine: each fold network is the network the
    population trains on that fold alone; the pruner of each config sees its mean and stops
    its folds (and only its) together; out-of-fold rows as train_folds keeps them."""
    from fcnn_opt.training.folds import train_folds_together
    from fcnn_opt.training.population import train_population

    data = make_dataset("moons", n_points=240, seed=2)
    configs = [TrainConfig(dims=(6,), epochs=9, lr=0.02, batch_size=32),
               TrainConfig(dims=(6,), epochs=9, lr=0.005, batch_size=32, activation="tanh")]
    seen: list[list] = [[], []]

    def watch(i):
        def on_epoch(epoch, metrics):
            seen[i].append((epoch, metrics["val_loss"]))
            return i == 0 and epoch == 4
        return on_epoch

    results = train_folds_together(data, 3, configs, repeats=2, on_epochs=[watch(0), watch(1)])
    assert [e for e, _ in seen[0]] == [1, 2, 3, 4] and [e for e, _ in seen[1]] == list(range(1, 10))
    assert results[0].epochs_run == 4 and results[1].epochs_run == 9
    assert len(results[0].repeats) == 6 and all(run.epochs_run == 4 for run in results[0].repeats)
    folds, rows = make_folds(data, 3), fold_rows(data, 3)
    for f, fold in enumerate(folds):
        alone = train_population(fold, [configs[1], configs[1].replace(seed=configs[1].seed + 1)])
        for r in range(2):
            np.testing.assert_allclose(results[1].repeats[2 * f + r].val_loss, alone[r].val_loss, rtol=1e-5)
        mean = np.mean([alone[r].predict(fold.X_val) for r in range(2)], axis=0)
        np.testing.assert_allclose(results[1].out_of_fold[rows[f]], mean.reshape(len(fold.X_val), -1), atol=1e-6)
    assert seen[1][-1][1] == pytest.approx(np.mean([run.val_loss[-1] for run in results[1].repeats]))


def test_a_cross_validated_study_runs_in_the_population_engine(tmp_path):
    url = f"sqlite:///{tmp_path / 'cv.db'}"
    config = write_toml(tmp_path / "cv.toml", CV.format(folds="folds = 3"))
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", "--no-artifacts",
                   "--batch-trials", "3", "--n-trials", "6", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    trials = optuna.load_study(study_name="cv", storage=url).trials
    assert len(trials) == 6
    for trial in trials:
        assert trial.user_attrs["engine"] == "population (cpu)" and trial.user_attrs["folds"]["n"] == 3
        assert trial.value == pytest.approx(np.mean(trial.user_attrs["folds"]["val_loss"]), rel=1e-5)
