"""The table defaults: a study on a table whose file is silent on folds and refit
cross-validates and refits; the file (or the command line) can turn each off; built-in
datasets and studies made before the defaults stay as they were."""

from __future__ import annotations

import tomllib

import optuna
import pytest
from conftest import run_cli, write_toml

from fcnn_opt.search.space import TABLE_FOLDS, TABLE_REFIT, parse_spec

TABLE = """
[study]
name = "wine"
sampler = "random"
pruner = "none"
n_trials = 2
seed = 1
{study}
[dataset]
sklearn = "wine"
test_fraction = 0.2
{dataset}
[params]
epochs = 4
units = [4, 8]
"""


def _spec(study: str = "", dataset: str = "", **kwargs):
    return parse_spec(tomllib.loads(TABLE.format(study=study, dataset=dataset)), **kwargs)


def test_a_silent_table_file_gets_folds_and_a_refit_ensemble():
    spec = _spec()
    assert (spec.folds, spec.refit, spec.table_defaults) == (TABLE_FOLDS, TABLE_REFIT, ("folds", "refit"))
    assert spec.anneal == 0.0  # continuing a trial needs one network per trial


@pytest.mark.parametrize("study, dataset, folds, refit, filled", [
    ("", "folds = 1", 1, TABLE_REFIT, ("refit",)),
    ("", "folds = 3", 3, TABLE_REFIT, ("refit",)),
    ("", "val_fraction = 0.3", 1, TABLE_REFIT, ("refit",)),  # a validation split was chosen
    ("refit = false", "", TABLE_FOLDS, 0, ("folds",)),
    ("refit = true", "", TABLE_FOLDS, 1, ("folds",)),
    ("anneal = 0.0", "", 1, TABLE_REFIT, ("refit",)),  # anneal is about one network per trial
    ('objectives = ["val_loss", "n_params"]', "", TABLE_FOLDS, 0, ("folds",)),  # no single best to refit
])
def test_what_the_file_says_wins_over_the_defaults(study, dataset, folds, refit, filled):
    spec = _spec(study, dataset)
    assert (spec.folds, spec.refit, spec.table_defaults) == (folds, refit, filled)


def test_built_in_datasets_and_stored_definitions_get_no_defaults():
    builtin = parse_spec({"dataset": {"name": "moons"}, "study": {}, "params": {}})
    assert (builtin.folds, builtin.refit, builtin.table_defaults) == (1, 0, ())
    # a study's stored definition is read back as written: folds = 1 stays one split
    one = _spec(dataset="folds = 1", study="refit = false")
    again = parse_spec(one.to_dict(), table_defaults=False)
    assert (again.folds, again.refit, again.fingerprint()) == (1, 0, one.fingerprint())
    # and a default, once stored, is part of the definition like any setting
    spec = _spec()
    assert parse_spec(spec.to_dict(), table_defaults=False).fingerprint() == spec.fingerprint()


def test_without_the_defaults_a_table_spec_is_what_an_earlier_release_read():
    spec = _spec()
    older = spec.without_table_defaults()
    explicit = _spec(dataset="folds = 1", study="refit = false")
    assert (older.folds, older.refit, older.table_defaults) == (1, 0, ())
    assert older.fingerprint() == explicit.fingerprint() != spec.fingerprint()
    assert spec.with_overrides(folds=1).table_defaults == ("refit",)


def test_a_table_study_says_which_defaults_it_used_and_refits(tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    config = write_toml(tmp_path / "wine.toml", TABLE.format(study="", dataset=""))
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (f"table defaults, as the file leaves them open: {TABLE_FOLDS} folds and an ensemble of the "
            f"{TABLE_REFIT} best trials' fold networks (turn off: [dataset] folds = 1, [study] refit = false)"
            ) in done.stdout
    study = optuna.load_study(study_name="wine", storage=url)
    assert all(t.user_attrs["folds"]["n"] == TABLE_FOLDS for t in study.trials)
    # the model handed over: the chosen trials' fold networks, nothing trained after the search
    assert study.user_attrs["refit"]["members"] == "folds" and "ensemble  the " in done.stdout
    # turned off on the command line: one split, and the summary no longer speaks of defaults
    done = run_cli("study", "--config", config, "--storage", url, "--study-name", "one", "--folds", "1",
                   "--no-progress", "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "table defaults, as the file leaves them open: a refit of the" in done.stdout  # no folds to use
    assert "folds and" not in done.stdout
    assert all("folds" not in t.user_attrs for t in optuna.load_study(study_name="one", storage=url).trials)


def test_a_table_study_made_before_the_defaults_resumes_as_it_was_made(tmp_path):
    """A study an earlier release made from the same silent file (one split, no refit) is
    resumed, not refused as another study, and goes on with one split and no refit."""
    from fcnn_opt.search.runner import run_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    config = write_toml(tmp_path / "wine.toml", TABLE.format(study="", dataset=""))
    run_study(_spec().without_table_defaults(), storage=url, progress=False, artifacts="none")
    done = run_cli("study", "--config", config, "--storage", url, "--n-trials", "4", "--no-progress",
                   "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "table defaults" not in done.stdout
    study = optuna.load_study(study_name="wine", storage=url)
    assert len(study.trials) == 4 and all("folds" not in t.user_attrs for t in study.trials)
    assert "refit" not in study.user_attrs
