"""The model a study hands over: refit on every row outside the test split, an ensemble of the
best trials, one calibrating temperature, and each of them exported as one model."""

from __future__ import annotations

import dataclasses

import numpy as np
import optuna
import pytest
from conftest import run_cli, write_toml

import fcnn_opt
from fcnn_opt.search.refit import (
    REFIT_ATTR,
    EnsembleModel,
    apply_temperature,
    expected_error,
    fit_temperature,
    floor_temperature,
    hedged_temperature,
    refit,
    refit_model,
    select_at_the_floor,
    select_ensemble,
    unseen_error_cost,
)
from fcnn_opt.training.backends._base import loss

STUDY = """
[study]
name = "table"
sampler = "random"
pruner = "none"
n_trials = {n_trials}
seed = 3
{refit}
[dataset]
sklearn = "{table}"
test_fraction = 0.2
{folds}
[params]
epochs = 8
units = [4, 8]
lr = {{ low = 3e-3, high = 3e-2, log = true }}
"""


def run_study(tmp_path, table="breast_cancer", folds="folds = 3", refit_line="", name="s", params=None,
              n_trials=5):
    """Run ``STUDY`` on ``table``; ``params``: a ``[params]`` section in place of its own."""
    url = f"sqlite:///{tmp_path / f'{name}.db'}"
    text = STUDY.format(table=table, folds=folds, refit=refit_line, n_trials=n_trials)
    if params is not None:
        text = text[:text.index("[params]")] + params
    config = write_toml(tmp_path / f"{name}.toml", text)
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    return url, done


@pytest.fixture(scope="module")
def cv_study(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("refit")
    url, _ = run_study(tmp_path)
    return tmp_path, url


def test_the_refit_network_is_the_trial_trained_on_every_row_outside_the_test_split(cv_study):
    from fcnn_opt.training.config import TrainConfig
    from fcnn_opt.training.folds import pooled_rows
    from fcnn_opt.training.loop import train
    from fcnn_opt.training.tables import load_sklearn

    _, url = cv_study
    summary = refit(url, "table", trial=2)
    data = load_sklearn("breast_cancer", test_fraction=0.2)
    X, y = pooled_rows(data)
    assert summary.rows == len(X) == len(data.X_train) + len(data.X_val) and summary.trials == [2]
    study = optuna.load_study(study_name="table", storage=url)
    trial = study.trials[2]
    config = TrainConfig.from_dict(trial.user_attrs["config"])
    alone = train(dataclasses.replace(data, X_train=X, y_train=y, X_val=X, y_val=y), config)
    assert summary.epochs == [config.epochs]
    model = refit_model(study, raw=False)
    assert isinstance(model, EnsembleModel) and len(model.members) == 1
    for (W, b), (W2, b2) in zip(model.members[0].weights, alone.weights(), strict=True):
        np.testing.assert_allclose(W, W2, atol=1e-6)
        np.testing.assert_allclose(b, b2, atol=1e-6)
    # Not the trial's own network, which trained on the training folds only.
    own = fcnn_opt.load_model(url, "table", trial=2)
    assert not np.allclose(own.weights[0][0], model.members[0].weights[0][0])


def test_an_ensemble_predicts_the_weighted_mean_of_its_members_calibrated_on_out_of_fold_rows(cv_study):
    from fcnn_opt.search.objective import OUT_OF_FOLD
    from fcnn_opt.store.artifact_files import load_run_array
    from fcnn_opt.training.folds import pooled_rows
    from fcnn_opt.training.tables import load_sklearn

    _, url = cv_study
    summary = refit(url, "table", top=3)
    study = optuna.load_study(study_name="table", storage=url)
    best_three = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: (t.value, t.number))[:3]
    # the members and weights are ensemble selection's on the three best trials' out-of-fold predictions
    y = pooled_rows(load_sklearn("breast_cancer", test_fraction=0.2))[1]
    chosen = select_at_the_floor("binary", [load_run_array(t, OUT_OF_FOLD)[:, 0] for t in best_three], y)
    expected = sorted((i for i in range(3) if chosen[i] > 0), key=lambda i: (-chosen[i], i))
    assert summary.trials == [best_three[i].number for i in expected] and summary.calibrated_on == "out-of-fold"
    model = fcnn_opt.load_model(url, "table")  # the refit, by default
    assert isinstance(model, EnsembleModel) and model.trials == summary.trials
    np.testing.assert_allclose(model.shares, chosen[expected], atol=1e-6)
    mean, std = model.input_scaling
    X = mean + std * np.random.default_rng(0).normal(size=(50, 30))
    weighted = sum(w * member.output(X) for w, member in zip(model.shares, model.members, strict=True))
    np.testing.assert_allclose(model.mean_output(X), weighted, rtol=1e-12)
    np.testing.assert_allclose(model.output(X), apply_temperature("binary", weighted, summary.temperature), rtol=1e-12)
    assert summary.loss_after <= summary.loss_before
    # --trial N (and use_refit=False) still give a trial's own network
    assert fcnn_opt.load_model(url, "table", trial=0).trial_number == 0
    assert fcnn_opt.load_model(url, "table", use_refit=False).trial_number == study.best_trial.number


def test_ensemble_selection_leaves_out_what_does_not_help_and_weighs_what_does():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=400).astype(np.float64)
    truth = np.where(y > 0, 0.8, 0.2)
    noisy_a = np.clip(truth + rng.normal(0, 0.15, 400), 0.02, 0.98)  # two good ones, wrong in different places
    noisy_b = np.clip(truth + rng.normal(0, 0.15, 400), 0.02, 0.98)
    bad = np.full(400, 0.5)
    weights = select_ensemble("binary", [noisy_a, noisy_b, bad], y)
    assert weights.sum() == pytest.approx(1) and weights[2] == 0 and weights[0] > 0 and weights[1] > 0
    blend = weights[0] * noisy_a + weights[1] * noisy_b
    assert loss("binary", blend, y) < min(loss("binary", noisy_a, y), loss("binary", noisy_b, y))
    # one candidate alone: all its weight; identical candidates: the better-ranked (first) one
    assert list(select_ensemble("binary", [noisy_a], y)) == [1.0]
    assert list(select_ensemble("binary", [noisy_a, noisy_a.copy()], y)) == [1.0, 0.0]


def test_selection_at_the_floor_does_not_hand_over_the_surest_candidate_alone():
    """Two candidates get every held-out row right. The first is surer on every row, so its raw
    log loss is lower and raw selection hands it over alone; but it is far surer of some rows
    than of others, and at the floor (both softened to expect one error in n + 2 rows) the
    evenly sure one has the lower loss and is chosen first."""
    n = 40
    y = np.arange(n) % 3
    uneven = np.where(np.arange(n) < n - 4, 1 - 1e-9, 1 - 5e-4)  # p of the true class
    even = np.full(n, 1 - 1e-4)
    as_probabilities = lambda p_true: np.where(np.eye(3, dtype=bool)[y], p_true[:, None],  # noqa: E731
                                               ((1 - p_true) / 2)[:, None])
    sure, evenly = as_probabilities(uneven), as_probabilities(even)
    assert loss("multiclass", sure, y) < loss("multiclass", evenly, y)
    assert list(select_ensemble("multiclass", [sure, evenly], y)) == [1.0, 0.0]
    weights = select_at_the_floor("multiclass", [sure, evenly], y)
    assert weights[1] > weights[0]
    at_floor = [apply_temperature("multiclass", p, floor_temperature("multiclass", p)) for p in (sure, evenly)]
    assert loss("multiclass", at_floor[1], y) < loss("multiclass", at_floor[0], y)
    # candidates the floor leaves alone (they already expect enough errors) are selected as before
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 2, size=400).astype(np.float64)
    noisy = [np.clip(np.where(labels > 0, 0.8, 0.2) + rng.normal(0, 0.15, 400), 0.02, 0.98) for _ in range(2)]
    assert select_at_the_floor("binary", noisy, labels).tolist() == select_ensemble("binary", noisy, labels).tolist()


def test_a_study_on_a_nearly_separable_table_selects_its_members_at_the_floor(tmp_path):
    """Wine, 3 folds, 10 trials: raw selection would hand over the best trial alone; the
    study's refit holds what selection at the floor chooses, which here is another trial."""
    from fcnn_opt.search.models import load_study, opened_storage
    from fcnn_opt.search.refit import _data_of, _out_of_fold, choose_trials
    from fcnn_opt.training.folds import pooled_rows

    url, done = run_study(tmp_path, table="wine", name="wine", n_trials=10,
                          params="[params]\nepochs = 80\nunits = [16, 32]\nlr = { low = 1e-2, high = 5e-2, log = true }\n"
                                 "l2 = { low = 1e-6, high = 1e-3, log = true }\n")
    with opened_storage(url) as storage:
        study = load_study(storage, "table")
        candidates = choose_trials(study, None, 10)
        y = pooled_rows(_data_of(study, candidates[0], None))[1]
        held_out = _out_of_fold(candidates, "multiclass", None)
        raw, at_floor = select_ensemble("multiclass", held_out, y), select_at_the_floor("multiclass", held_out, y)
        assert raw.tolist() != at_floor.tolist()  # the case this test is about: the floor changes the choice
        chosen = sorted(candidates[i].number for i in range(len(candidates)) if at_floor[i] > 0)
        assert sorted(set(study.user_attrs["refit"]["trials"])) == chosen
        # the refit stores, and the run's summary says, how many candidates the floor softened
        softened = sum(floor_temperature("multiclass", p) > 1 for p in held_out)
        assert softened > 0 and study.user_attrs["refit"]["softened"] == softened
        assert f"({softened} softened to their floors for the choice)" in done.stdout


def test_a_spent_time_budget_refits_the_best_trial_only(cv_study):
    import time

    _, url = cv_study
    chosen = refit(url, "table", top=4)  # the members ensemble selection chooses, given the time
    summary = refit(url, "table", top=4, deadline=time.monotonic())
    assert summary.trials == chosen.trials[:1] and summary.asked == len(chosen.trials)
    if summary.asked > 1:
        assert (f"the 1 heaviest of the {summary.asked} chosen: the time budget allowed no more"
                in "\n".join(summary.lines()))
    model = fcnn_opt.load_model(url, "table")
    assert model.trials == summary.trials and model.shares.tolist() == [1.0]


def test_a_fold_ensemble_is_the_weighted_mean_of_the_chosen_trials_fold_networks(cv_study):
    """``members = "folds"``: each chosen trial hands over its 3 fold networks (its selection
    weight shared equally among them); nothing is trained, no temperature is fitted."""
    from fcnn_opt.search.models import model_of
    from fcnn_opt.search.objective import OUT_OF_FOLD
    from fcnn_opt.store.artifact_files import load_run_array
    from fcnn_opt.training.folds import pooled_rows
    from fcnn_opt.training.tables import load_sklearn

    _, url = cv_study
    summary = refit(url, "table", top=3, members="folds")
    study = optuna.load_study(study_name="table", storage=url)
    best_three = sorted((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: (t.value, t.number))[:3]
    y = pooled_rows(load_sklearn("breast_cancer", test_fraction=0.2))[1]
    chosen = select_at_the_floor("binary", [load_run_array(t, OUT_OF_FOLD)[:, 0] for t in best_three], y)
    expected = sorted((i for i in range(3) if chosen[i] > 0), key=lambda i: (-chosen[i], i))
    assert summary.trials == [best_three[i].number for i in expected for _ in range(3)]
    assert summary.temperature == 1.0 and summary.calibrated_on == ""
    model = fcnn_opt.load_model(url, "table")
    assert len(model.members) == 3 * len(expected) and model.temperature == 1.0
    mean, std = model.input_scaling
    X = mean + std * np.random.default_rng(0).normal(size=(50, 30))
    by_trial = [np.mean([model_of(study, best_three[i], repeat=r).output(X) for r in range(3)], axis=0)
                for i in expected]
    weighted = sum(chosen[i] * p for i, p in zip(expected, by_trial, strict=True))
    np.testing.assert_allclose(model.output(X), weighted, atol=1e-5)  # weights stored to 6 digits
    # its first member is the heaviest trial's own network, the one its first fold trained
    assert np.allclose(model.members[0].weights[0][0], model_of(study, best_three[expected[0]]).weights[0][0])
    assert summary.lines()[0].startswith(f"ensemble  the {len(model.members)} cross-validation networks of ")
    assert model.description.startswith(f"the {len(model.members)} cross-validation networks of ")


def test_a_fold_ensemble_of_repeated_trials_holds_every_fold_and_seed(tmp_path):
    """With ``repeats = 2`` and 3 folds each chosen trial hands over its 6 networks, and the
    summary says they are one per fold and seed."""
    url, done = run_study(tmp_path, refit_line='repeats = 2\nrefit = { top = 3, members = "folds" }')
    study = optuna.load_study(study_name="table", storage=url)
    attr = study.user_attrs[REFIT_ATTR]
    chosen = set(attr["trials"])
    assert attr["repeats"] == 2 and len(attr["trials"]) == 6 * len(chosen)
    assert all(attr["trials"].count(n) == 6 for n in chosen)
    assert "cross-validation networks of " in done.stdout and "(one per fold and seed), averaged" in done.stdout
    assert len(fcnn_opt.load_model(url, "table").members) == 6 * len(chosen)


def test_a_fold_ensemble_needs_cross_validated_trials(tmp_path):
    refused = write_toml(tmp_path / "r.toml", STUDY.format(table="wine", folds="folds = 1", n_trials=5,
                                                           refit='refit = { top = 2, members = "folds" }'))
    done = run_cli("study", "--config", refused, "--storage", f"sqlite:///{tmp_path / 'r.db'}", cwd=tmp_path)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "members = \"folds\" hands over the networks of each trial's cross-validation" in done.stderr
    url, _ = run_study(tmp_path, table="wine", folds="folds = 1", name="one")
    done = run_cli("refit", "--study-name", "table", "--storage", url, "--members", "folds", cwd=tmp_path)
    assert done.returncode == 2 and "was not cross-validated ([dataset] folds = 1): use members = refit" in done.stderr


def test_calibration_lowers_the_log_loss_of_an_overconfident_model():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.05, 0.95, size=4000)
    y = (rng.uniform(size=4000) < truth).astype(np.float32)
    logit = np.log(truth) - np.log1p(-truth)
    overconfident = 1 / (1 + np.exp(-3 * logit))  # three times too sure
    temperature = fit_temperature("binary", overconfident, y)
    assert temperature == pytest.approx(3, rel=0.15)
    assert loss("binary", apply_temperature("binary", overconfident, temperature), y) < loss("binary", overconfident, y) - 0.05
    three = np.stack([truth ** 4, (1 - truth) ** 4, np.full_like(truth, 0.01)], axis=1)
    three /= three.sum(axis=1, keepdims=True)
    labels = np.where(y > 0, 0, 1)
    t = fit_temperature("multiclass", three, labels)
    assert t > 1 and loss("multiclass", apply_temperature("multiclass", three, t), labels) < loss("multiclass", three, labels)
    assert fit_temperature("regression", truth, truth) == 1.0


def test_calibration_never_sharpens():
    """Held-out predictions that are all right (or timid) keep T = 1: a sharper ensemble would
    lower their log loss, and cost a lot on the first wrong row of new data."""
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=60).astype(np.float32)
    timid = np.where(y > 0, 0.7, 0.3)  # every row right, each one only 70 % sure
    assert loss("binary", apply_temperature("binary", timid, 0.3), y) < loss("binary", timid, y)
    assert fit_temperature("binary", timid, y) == 1.0
    labels = rng.integers(0, 3, size=60)
    sure = np.full((60, 3), 0.2)
    sure[np.arange(60), labels] = 0.6
    assert fit_temperature("multiclass", sure, labels) == 1.0


def test_held_out_predictions_all_right_are_softened_until_they_expect_one_error_in_n_plus_2():
    """The floor: 60 rows all right and all but certain expect far fewer than one error in 62
    new rows, so they are softened until they expect exactly that, and a wrong new row costs
    less; predictions that already expect more keep T = 1, and so does regression."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, size=60).astype(np.float32)
    certain = np.where(y > 0, 1 - 1e-6, 1e-6)
    t = floor_temperature("binary", certain)
    assert t > 1 and expected_error("binary", certain) < 1e-5
    assert expected_error("binary", apply_temperature("binary", certain, t)) == pytest.approx(1 / 62, rel=1e-3)
    wrong_row = np.array([1e-6]), np.array([1.0], dtype=np.float32)  # a new row, sure and wrong
    assert loss("binary", apply_temperature("binary", wrong_row[0], t), wrong_row[1]) < loss("binary", *wrong_row) - 5
    labels = rng.integers(0, 3, size=60)
    sure = np.full((60, 3), 1e-7)
    sure[np.arange(60), labels] = 1 - 2e-7
    t3 = floor_temperature("multiclass", sure)
    assert t3 > 1 and expected_error("multiclass", apply_temperature("multiclass", sure, t3)) == pytest.approx(1 / 62, rel=1e-3)
    timid = np.where(y > 0, 0.9, 0.1)  # expects 10 % wrong: more than one in 62
    assert floor_temperature("binary", timid) == 1.0
    assert floor_temperature("regression", np.asarray(y)) == 1.0


def test_where_the_floor_binds_the_model_is_fitted_as_if_one_more_held_out_row_were_wrong():
    """Held-out rows all right: the temperature handed over minimises their log loss with one
    more row counted, a row the model gets wrong (any of theirs with its runner-up class for
    the truth), and so is softer than the floor alone; a sure wrong row then costs less. Where
    the floor does not bind (the rows already expect enough errors), T stays 1."""
    rng = np.random.default_rng(5)
    n = 80
    y = rng.integers(0, 3, size=n)
    margin = rng.uniform(6.0, 14.0, size=n)  # log-odds of the true class over the other two
    logits = np.zeros((n, 3))
    logits[np.arange(n), y] = margin
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    floor, hedged = floor_temperature("multiclass", p), hedged_temperature("multiclass", p, y)
    assert 1 < floor < hedged

    def priced(t):
        q = apply_temperature("multiclass", p, t)
        return (n * loss("multiclass", q, y) + unseen_error_cost("multiclass", q)) / (n + 1)

    assert priced(hedged) < min(priced(floor), priced(hedged * 0.9), priced(hedged * 1.1))
    softer = apply_temperature("multiclass", p, hedged)
    assert expected_error("multiclass", softer) > 1 / (n + 2)
    wrong = np.roll(y, 1)  # every row labelled with another class
    assert loss("multiclass", softer, wrong) < loss("multiclass", apply_temperature("multiclass", p, floor), wrong)
    timid = np.full((n, 3), 0.1)
    timid[np.arange(n), y] = 0.8
    assert hedged_temperature("multiclass", timid, y) == 1.0
    assert hedged_temperature("regression", y.astype(float), y.astype(float)) == 1.0


SEPARATED = """
[study]
name = "blobs"
sampler = "random"
pruner = "none"
n_trials = 3
seed = 0
refit = {{ top = 3, members = "{members}" }}

[dataset]
path = "{path}"
target = "kind"
test_fraction = 0.2
folds = 3

[params]
epochs = 150
units = 16
lr = {{ low = 0.03, high = 0.1, log = true }}
"""


@pytest.mark.parametrize("members", ["folds", "refit"])
def test_an_ensemble_whose_out_of_fold_rows_are_all_right_is_softened_by_the_floor(tmp_path, members):
    """Two blobs far apart: every out-of-fold prediction is right and all but certain, so the
    ensemble handed over (fold networks, or refit ones, whose fitted temperature is 1) gets
    the floor's temperature, fitted as if one more row were wrong, which every command shows."""
    from fcnn_opt.search.objective import OUT_OF_FOLD
    from fcnn_opt.search.refit import _data_of
    from fcnn_opt.store.artifact_files import load_run_array
    from fcnn_opt.training.folds import pooled_rows

    rng = np.random.default_rng(0)
    kind = np.arange(100) % 2
    X = rng.normal(scale=0.3, size=(100, 2)) + np.where(kind[:, None] > 0, 4.0, -4.0)
    np.savetxt(tmp_path / "blobs.csv", np.column_stack([X, kind]), delimiter=",", header="a,b,kind", comments="",
               fmt=["%.6f", "%.6f", "%d"])
    config = write_toml(tmp_path / "blobs.toml", SEPARATED.format(path=tmp_path / "blobs.csv", members=members))
    url = f"sqlite:///{tmp_path / 'blobs.db'}"
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="blobs", storage=url)
    attr = study.user_attrs[REFIT_ATTR]
    numbers = list(dict.fromkeys(attr["trials"]))
    shares = np.array([sum(w for t, w in zip(attr["trials"], attr["weights"], strict=True) if t == n) for n in numbers])
    shares /= shares.sum()  # stored to 6 digits
    trials = {t.number: t for t in study.trials}
    oof = np.tensordot(shares, [load_run_array(trials[n], OUT_OF_FOLD)[:, 0] for n in numbers], axes=1)
    rows = len(oof)
    assert rows == 80 and expected_error("binary", oof) < 1 / (rows + 2)  # all right, all but certain
    assert attr["floor"] == rows + 2 and attr["calibrated_on"] == "out-of-fold" and attr["temperature"] > 1
    y = pooled_rows(_data_of(study, trials[numbers[0]], None))[1]  # the out-of-fold rows' labels, in their order
    assert attr["temperature"] == pytest.approx(hedged_temperature("binary", oof, y), rel=1e-3)
    softened = apply_temperature("binary", oof, attr["temperature"])
    assert expected_error("binary", softened) >= 1 / (rows + 2) * (1 - 1e-3)
    assert attr["loss_after"] > attr["loss_before"]  # on rows it got right, softer costs a little
    assert "softened  temperature" in done.stdout and f"one in {rows + 2} rows" in done.stdout
    model = fcnn_opt.load_model(url, "blobs")
    assert model.temperature == attr["temperature"]
    shown = run_cli("evaluate", "--study-name", "blobs", "--storage", url, cwd=tmp_path)
    assert shown.returncode == 0 and f"the floor: the out-of-fold predictions expected fewer errors than one in " \
        f"{rows + 2} rows" in shown.stdout


@pytest.fixture(scope="module")
def wine_ensemble(tmp_path_factory):
    """Multiclass (wine), 3 members (one split: the 3 best, no selection), given unequal
    weights and a temperature of 1.7 so that every export must fold both in (wine's held-out
    predictions are nearly all right, so the fitted temperature is 1)."""
    folder = tmp_path_factory.mktemp("wine")
    url, _ = run_study(folder, table="wine", folds="folds = 1", name="wine")
    refit(url, "table", top=3)
    study = optuna.load_study(study_name="table", storage=url)
    study.set_user_attr(REFIT_ATTR, {**study.user_attrs[REFIT_ATTR], "temperature": 1.7, "weights": [0.5, 0.3, 0.2]})
    return url


@pytest.mark.parametrize("fmt, suffix", [("npz", ".npz"), ("torch", ".pt2"), ("onnx", ".onnx")])
def test_every_format_that_holds_an_ensemble_reads_it_back(tmp_path, wine_ensemble, fmt, suffix):
    """One file, read back by its own library, predicts what the ensemble predicts."""
    url = wine_ensemble
    model = fcnn_opt.load_model(url, "table")
    assert len(model.members) == 3 and model.temperature == 1.7 and model.shares.tolist() == [0.5, 0.3, 0.2]
    out = tmp_path / f"ensemble{suffix}"
    done = run_cli("export", "--study-name", "table", "--storage", url, "--format", fmt, "--out", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "the refit ensemble of trials" in done.stdout
    mean, std = model.input_scaling
    X = (mean + std * np.random.default_rng(2).normal(size=(40, 13))).astype(np.float32)
    if fmt == "npz":
        from fcnn_opt.search.export import load_npz

        got = load_npz(out).output(X)
    elif fmt == "torch":
        import torch

        got = torch.export.load(str(out)).module()(torch.from_numpy(X)).detach().double().numpy()
    else:
        import onnxruntime

        got = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"X": X})[0]
    np.testing.assert_allclose(got, model.output(X), atol=1e-5)  # raw inputs, as load_model's model takes
    refused = run_cli("export", "--study-name", "table", "--storage", url, "--format", "sklearn", "--out",
                      tmp_path / "e.pkl", cwd=tmp_path)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "holds one network" in refused.stderr and "use npz, torch, onnx" in refused.stderr


def test_a_study_file_asks_for_the_refit_and_every_command_uses_it(tmp_path):
    url, done = run_study(tmp_path, folds="folds = 1", refit_line="refit = { top = 2 }", name="r")  # one split
    assert "refit     an ensemble of trials" in done.stdout
    assert "calibrated temperature" in done.stdout and "fitted on the validation predictions" in done.stdout
    best = run_cli("best", "--study-name", "table", "--storage", url, cwd=tmp_path)
    assert best.returncode == 0, best.stderr
    assert "model       the refit ensemble of trials" in best.stdout and "never seen by the search or the refit" in best.stdout
    evaluated = run_cli("evaluate", "--study-name", "table", "--storage", url, cwd=tmp_path)
    assert evaluated.returncode == 0
    assert "uncalibrated" in evaluated.stdout or "calibration none: the validation predictions" in evaluated.stdout
    own = run_cli("evaluate", "--study-name", "table", "--storage", url, "--trial", 0, cwd=tmp_path)
    assert own.returncode == 0 and "model " not in own.stdout and own.stdout.startswith("trial 0")
    report = run_cli("report", "--study-name", "table", "--storage", url, "--out", tmp_path / "report", "--no-png",
                     "--surrogate", "none", cwd=tmp_path)
    assert report.returncode == 0, report.stderr
    header = (tmp_path / "report" / "report.html").read_text()
    assert "<dt>model handed over</dt><dd>the refit ensemble of trials" in header
    assert "<dt>validation</dt>" in header and "<dt>test estimate</dt>" in header
    bad = run_cli("refit", "--study-name", "table", "--storage", url, "--top", 0, cwd=tmp_path)
    assert bad.returncode == 2 and "--top must be a whole number from 1 to 20" in bad.stderr
