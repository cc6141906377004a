"""A time budget as a way to run a study: `[study] timeout` (or `--timeout`) without n_trials."""

from __future__ import annotations

import optuna
import pytest
from conftest import run_cli, write_toml

from fcnn_opt.search.plan import NO_TRIAL_BUDGET, budget_of
from fcnn_opt.search.space import SpaceError, parse_spec

STUDY = """
[study]
name = "tb"
sampler = "tpe"
timeout = 3
[dataset]
n_points = 400
[params]
epochs = 20
lr = { low = 1e-3, high = 0.1, log = true }
units = [2, 4, 8, 16]
"""


def test_a_time_budget_without_n_trials_has_no_trial_budget():
    spec = parse_spec({"study": {"timeout": 30}})
    assert spec.timeout == 30.0 and budget_of(spec) == NO_TRIAL_BUDGET
    assert budget_of(parse_spec({"study": {"timeout": 30, "n_trials": 5}})) == 5
    assert parse_spec(spec.to_dict()).timeout == 30.0  # workers read it back
    with pytest.raises(SpaceError, match=r"\[study\].timeout must be a number of seconds > 0"):
        parse_spec({"study": {"timeout": 0}})


def test_a_time_budgeted_run_ends_on_time_leaves_nothing_running_and_resumes(tmp_path):
    cfg = write_toml(tmp_path / "tb.toml", STUDY)
    url = f"sqlite:///{tmp_path / 'tb.db'}"
    first = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "no trial budget: a time budget" in first.stdout
    assert "of the 3 s given; trials ran until the time was up" in first.stdout
    study = optuna.load_study(study_name="tb", storage=url)
    states = {t.state.name for t in study.trials}
    assert "RUNNING" not in states and "WAITING" not in states and len(study.trials) >= 1
    # On time, however fast the machine: no trial started after the 3 s (counted from the
    # first trial's start, which comes after the clock's; 1 s allows for claiming a trial).
    starts = [t.datetime_start.timestamp() for t in study.trials]
    assert max(starts) - min(starts) <= 3 + 1
    ran_before = len(study.trials)
    # Resuming gives the study another 3 s (--timeout overrides the file's).
    second = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", "--timeout", 2, cwd=tmp_path)
    assert second.returncode == 0 and "of the 2 s given" in second.stdout
    assert len(optuna.load_study(study_name="tb", storage=url).trials) > ran_before


def test_a_trial_budget_reached_before_the_time_says_so(tmp_path):
    cfg = write_toml(tmp_path / "tb.toml", STUDY.replace("timeout = 3", "timeout = 60\nn_trials = 4"))
    run = run_cli("study", "--config", cfg, "--storage", f"sqlite:///{tmp_path / 'tb.db'}", "--no-progress",
                  cwd=tmp_path)
    assert run.returncode == 0 and "the trial budget was done first" in run.stdout


def test_the_shipped_minute_study_is_time_budgeted_and_its_report_shows_the_time(tmp_path):
    from conftest import STUDIES

    from fcnn_opt.plots import progress_data
    from fcnn_opt.search.space import load_spec

    spec = load_spec(STUDIES / "minute.toml")
    assert spec.timeout == 60 and spec.n_trials is None and budget_of(spec) == NO_TRIAL_BUDGET
    assert spec.epoch_range == (15, 400) and spec.decay_epochs == 100 and spec.pruner == "sha"
    assert not spec.anneals  # trials whose rate falls are not continued (docs/performance.md)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    run = run_cli("study", "--config", STUDIES / "minute.toml", "--timeout", 3, "--storage", url, "--no-progress",
                  cwd=tmp_path)
    assert run.returncode == 0 and "of the 3 s given" in run.stdout, run.stderr
    study = optuna.load_study(study_name="best_in_a_minute", storage=url)
    data = progress_data(study)
    assert list(data.seconds) == sorted(data.seconds) and 0 < data.seconds[-1] < 15
    assert all(a >= b for a, b in zip(data.best, data.best[1:], strict=False))  # the best only improves
    assert data.best[-1] == pytest.approx(study.best_value)
    finished = sorted((t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")), key=lambda t: t.number)
    assert list(data.epochs) == [t.user_attrs["epochs_run"] for t in finished]
    by_pruner = [t.user_attrs["epochs_run"] for t in finished if "stopped" not in t.user_attrs]
    assert set(by_pruner) <= {15, 45, 135, 400} and 400 in by_pruner  # the rungs, and max
    assert all(t.number == finished[-1].number for t in finished if "stopped" in t.user_attrs)  # the last, at most
    assert "CONTINUED" not in data.states and not data.continued.any()


def test_a_trial_still_training_when_the_time_is_up_stops_there(tmp_path):
    """A grid of a 5-epoch trial, then one of 100,000 epochs, in a 2 s budget: the second stops
    at the epoch after the time ends, recorded as pruned (with its epochs so far and why),
    instead of running on for hours. The first runs to its end: the study has a trial to hand over."""
    long = """
[study]
name = "tb"
sampler = "grid"
timeout = 2
[dataset]
n_points = 400
[params]
epochs = [5, 100000]
units = [4]
"""
    cfg = write_toml(tmp_path / "long.toml", long)
    url = f"sqlite:///{tmp_path / 'long.db'}"
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    first, second = optuna.load_study(study_name="tb", storage=url).trials
    assert first.state.name == "COMPLETE" and first.params["epochs"] == 5 and "stopped" not in first.user_attrs
    assert second.state.name == "PRUNED" and second.user_attrs["stopped"] == "the time budget ended"
    assert 1 <= len(second.intermediate_values) < 100000
