"""An SQLite study file stands alone once a command has ended, and reading it never writes it.

Each test copies the ``.db`` alone, as a user copies, mails or commits it, and counts the
trials in the copy; a ``-wal`` log left beside the file would hold what the copy lacks.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter

import optuna
import pytest
from conftest import cli_env, gate_env, held_trials, run_cli, write_toml

SMALL = """
[study]
name = "small"
sampler = "tpe"
pruner = "median"
n_trials = 6
seed = 1
[dataset]
name = "xor"
n_points = 200
[params]
epochs = 5
units = [2, 4, 8]
lr = { low = 1e-3, high = 1e-1, log = true }
"""


def states_in_a_copy(db, tmp_path, name: str = "small") -> Counter:
    """The trials' states as a copy of the ``.db`` file alone holds them."""
    assert not db.with_name(db.name + "-wal").exists(), "a write-ahead log was left beside the study file"
    assert not db.with_name(db.name + "-shm").exists()
    copy = tmp_path / "copied" / db.name
    copy.parent.mkdir(exist_ok=True)
    shutil.copy(db, copy)
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{copy}")
    return Counter(t.state.name for t in study.trials)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def small_study(tmp_path):
    config = write_toml(tmp_path / "small.toml", SMALL)
    db = tmp_path / "study.db"
    return config, db, f"sqlite:///{db}"


@pytest.mark.parametrize("how", ["one process", "two workers", "worker command"])
def test_the_study_file_alone_holds_every_trial_after_a_run(tmp_path, small_study, how):
    config, db, url = small_study
    if how == "worker command":
        created = run_cli("study", "--config", config, "--storage", url, "--create-only", cwd=tmp_path)
        assert created.returncode == 0, created.stderr
        assert states_in_a_copy(db, tmp_path) == Counter()  # created, no trial yet, nothing in a log
        done = run_cli("worker", "--storage", url, "--study-name", "small", "--no-progress", cwd=tmp_path)
    else:
        workers = ("--workers", 2) if how == "two workers" else ()
        done = run_cli("study", "--config", config, "--storage", url, "--no-progress", *workers, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    states = states_in_a_copy(db, tmp_path)
    assert states["COMPLETE"] + states["PRUNED"] == 6 and states["RUNNING"] == 0, states


def test_a_run_stopped_by_sigterm_leaves_a_whole_study_file(tmp_path, small_study):
    config, db, url = small_study
    gate = tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, "-m", "fcnn_opt", "study", "--config", str(config), "--storage", url,
                             "--no-progress"], cwd=tmp_path, env=cli_env(**gate_env(gate, free=2)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held_trials(gate, 1, proc)  # two trials done, the third RUNNING
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    states = states_in_a_copy(db, tmp_path)
    assert states["COMPLETE"] + states["PRUNED"] == 2 and states["FAIL"] == 1, states


def test_a_killed_run_loses_nothing_and_the_next_command_folds_its_log_in(tmp_path, small_study):
    """SIGKILL runs no handler: the trials it had told are in the log, which SQLite replays on
    the next open; the next command to end leaves them in the file alone."""
    config, db, url = small_study
    gate = tmp_path / "gate"
    proc = subprocess.Popen([sys.executable, "-m", "fcnn_opt", "study", "--config", str(config), "--storage", url,
                             "--no-progress"], cwd=tmp_path, env=cli_env(**gate_env(gate, free=3)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    held_trials(gate, 1, proc)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    storage = optuna.storages.RDBStorage(url)
    seen = Counter(t.state.name for t in optuna.load_study(study_name="small", storage=storage).trials)
    storage.engine.dispose()  # this test's connection closed: the command below is the file's last reader
    assert seen["COMPLETE"] + seen["PRUNED"] == 3 and seen["RUNNING"] == 1, seen
    listed = run_cli("trials", "--study-name", "small", "--storage", url, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    states = states_in_a_copy(db, tmp_path)
    assert states["COMPLETE"] + states["PRUNED"] == 3 and states["RUNNING"] == 1, states


def test_commands_that_read_leave_the_file_as_it_was(tmp_path, small_study):
    config, db, url = small_study
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    before = digest(db)
    reading = [("best", "--study-name", "small"), ("trials", "--study-name", "small", "--format", "csv"),
               ("studies",), ("evaluate", "--study-name", "small"),
               ("export", "--study-name", "small", "--format", "npz", "--out", tmp_path / "best.npz"),
               ("report", "--study-name", "small", "--out", tmp_path / "report", "--no-png", "--surrogate", "none"),
               ("report", "--study-name", "nope", "--out", tmp_path / "nope")]
    for command in reading:
        run = run_cli(*command, "--storage", url, cwd=tmp_path)
        assert run.returncode == (2 if "nope" in command else 0), (command, run.stderr)
        assert digest(db) == before, f"{command[0]} changed the study file"
        assert sorted(p.name for p in tmp_path.glob("study.db*")) == ["study.db"], command


def test_reading_a_file_written_by_optuna_alone_keeps_its_journal_mode(tmp_path):
    """A study made with plain Optuna (rollback journal, not write-ahead log) is read as it is."""
    db = tmp_path / "plain.db"
    study = optuna.create_study(study_name="plain", storage=f"sqlite:///{db}")
    study.optimize(lambda trial: trial.suggest_float("x", -1, 1) ** 2, n_trials=3)
    del study
    before = digest(db)
    run = run_cli("trials", "--study-name", "plain", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert digest(db) == before
