"""Trial pictures as Optuna artifacts (drawn off the critical path), and each trial's run file
(weights and histories) in the artifact folder instead of the trial row."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
from conftest import history, run_cli, write_toml
from optuna.artifacts import get_all_artifact_meta
from PIL import Image

from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.artifact_files import RUN_FILE_ATTR, artifact_dir, load_weights

TINY = """
[study]
name = "tiny"
sampler = "grid"
pruner = "none"
[dataset]
name = "xor"
n_points = 200
[params]
epochs = 3
units = [2, 4]
"""

PRUNING = """
[study]
name = "pruning"
sampler = "random"
pruner = "median"
n_trials = 14
seed = 4
[dataset]
name = "circles"
n_points = 300
[params]
epochs = 10
lr = { low = 1e-4, high = 0.3, log = true }
units = [2, 8]
"""


@pytest.mark.parametrize("url,expected", [
    ("sqlite:///studies/fcnn_opt.db", "studies/artifacts"),
    ("sqlite:////data/runs/x.db", "/data/runs/artifacts"),
    ("journal:/data/j/study.log", "/data/j/artifacts"),
    ("postgresql://user:pw@host/db", "studies/artifacts"),
    ("sqlite:///:memory:", "studies/artifacts"),
])
def test_artifact_folder_follows_the_storage(url, expected):
    assert artifact_dir(url) == Path(expected)


def _pictures(study, trial) -> list:
    return get_all_artifact_meta(trial, storage=study._storage)


def test_complete_trials_get_a_picture_by_default_and_pruned_ones_none(small_study):
    url, study = small_study
    folder = Path(url[len("sqlite:///"):]).parent / "artifacts"
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert {t.state.name for t in finished} == {"COMPLETE", "PRUNED"}
    for t in finished:
        metas = _pictures(study, t)
        if t.state.name == "PRUNED":
            assert metas == [], t.number
            continue
        assert len(metas) == 1, t.number
        meta = metas[0]
        assert meta.mimetype == "image/png" and meta.filename == f"response_trial{t.number}_circles.png"
        with Image.open(folder / meta.artifact_id) as image:
            image.load()
            assert image.format == "PNG" and image.size[0] > 600
            # A drawn surface, not a placeholder: many colours.
            assert len(image.getcolors(1 << 16) or range(1 << 16)) > 50
        assert "artifact_error" not in t.user_attrs


def test_weights_and_histories_live_in_the_run_file_not_the_trial_row(small_study):
    url, study = small_study
    database = sqlite3.connect(url[len("sqlite:///"):])
    keys = {k for (k,) in database.execute("select distinct key from trial_user_attributes")}
    assert RUN_FILE_ATTR in keys and not keys & {"weights", "train_loss", "val_loss", "val_accuracy"}
    for t in study.trials:
        if t.state.name not in ("COMPLETE", "PRUNED"):
            continue
        weights = load_weights(t)
        assert [W.shape[1] for W, _ in weights][-1] == 4  # four classes out
        assert history(t) == pytest.approx([t.intermediate_values[e] for e in sorted(t.intermediate_values)],
                                            rel=1e-6)
        assert len(history(t, "train_loss")) == len(history(t, "val_accuracy")) == len(t.intermediate_values)


@pytest.mark.parametrize("public", [False, True])
@pytest.mark.parametrize("mode", ["all", "best", "none"])
def test_picture_modes(tmp_path, mode, public):
    """all: every finished trial; best: only trials that beat the best so far; none: none.
    On Optuna's public API the pictures are uploaded with upload_artifact instead."""
    config = write_toml(tmp_path / "p.toml", PRUNING)
    url = f"sqlite:///{tmp_path / 'p.db'}"
    env = {internals.PUBLIC_API_ENV: "1"} if public else {}
    done = run_cli("study", "--config", config, "--storage", url, "--artifacts", mode, "--no-progress",
                   cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="pruning", storage=url)
    pictured = [t.number for t in study.trials if _pictures(study, t)]
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    if mode == "all":
        assert pictured == [t.number for t in finished]
    elif mode == "none":
        assert pictured == []
    else:
        best, improved = None, []
        for t in study.trials:
            if t.state.name == "COMPLETE" and (best is None or t.value < best):
                best = t.value
                improved.append(t.number)
        assert pictured == improved and study.best_trial.number == improved[-1]
    for t in study.trials:
        for meta in _pictures(study, t):
            assert (tmp_path / "artifacts" / meta.artifact_id).stat().st_size > 10_000


def test_no_artifacts_flag_and_artifact_folder_options(tmp_path):
    config = write_toml(tmp_path / "tiny.toml", TINY)
    url = f"sqlite:///{tmp_path / 'a.db'}"
    done = run_cli("study", "--config", config, "--storage", url, "--no-artifacts", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    study = optuna.load_study(study_name="tiny", storage=url)
    assert all(not _pictures(study, t) for t in study.trials)
    runs = sorted(t.user_attrs[RUN_FILE_ATTR]["artifact_id"] for t in study.trials)
    assert sorted(p.name for p in (tmp_path / "artifacts").iterdir()) == runs

    for flag, folder in (("--artifact-dir", "pics"), ("--artifacts", "older")):  # --artifacts DIR: 0.1.0's spelling
        other = f"sqlite:///{tmp_path / (folder + '.db')}"
        done = run_cli("study", "--config", config, "--storage", other, flag, tmp_path / folder,
                       "--no-progress", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        study = optuna.load_study(study_name="tiny", storage=other)
        ids = [m.artifact_id for t in study.trials for m in _pictures(study, t)]
        runs = [t.user_attrs[RUN_FILE_ATTR]["artifact_id"] for t in study.trials]
        assert len(ids) == 2 and sorted(p.name for p in (tmp_path / folder).iterdir()) == sorted(ids + runs)


@pytest.mark.parametrize("args,message", [
    (["--artifacts", "some"], "--artifacts 'some': expected one of all, complete, best, none"),
    (["--no-artifacts", "--artifacts", "all"], "--no-artifacts contradicts --artifacts all"),
])
def test_bad_artifact_options_are_one_line_errors(tmp_path, args, message):
    config = write_toml(tmp_path / "tiny.toml", TINY)
    done = run_cli("study", "--config", config, "--storage", f"sqlite:///{tmp_path / 'x.db'}", *args,
                   "--no-progress", cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.db").exists()


def test_a_dead_renderer_never_fails_a_trial(tmp_path, monkeypatch):
    """The renderer process dies at its first picture: every trial still completes, and each
    linked picture is a small one saying why."""
    import fcnn_opt.show.renderer as renderer
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    # A renderer that reads the start of its first job, then dies.
    monkeypatch.setattr(renderer.Renderer, "command",
                        (sys.executable, "-c", "import sys; sys.stdin.buffer.read(8); sys.exit(3)"))
    url = f"sqlite:///{tmp_path / 'd.db'}"
    spec = parse_spec({"study": {"name": "d", "sampler": "grid", "pruner": "none"},
                       "dataset": {"name": "xor", "n_points": 200}, "params": {"epochs": 3, "units": [2, 4, 8]}})
    summary = run_study(spec, storage=url, progress=False)
    assert summary.counts.complete == 3
    study = optuna.load_study(study_name="d", storage=url)
    for t in study.trials:
        (meta,) = _pictures(study, t)
        with Image.open(tmp_path / "artifacts" / meta.artifact_id) as image:
            assert image.size == (640, 60)  # the placeholder
    assert np.isfinite(study.best_value)


def test_the_objective_in_a_study_of_ones_own_keeps_run_files_and_pictures(tmp_path):
    """``Objective(artifact_dir=..., pictures=...)`` inside a plain ``study.optimize``: the
    picture is uploaded with Optuna's public upload_artifact, the weights go to a run file."""
    from fcnn_opt import Objective

    objective = Objective(dataset={"name": "xor", "n_points": 200}, space={"units": [2, 4], "epochs": 4},
                          artifact_dir=tmp_path / "art", pictures="all")
    study = optuna.create_study(direction=objective.direction, storage=f"sqlite:///{tmp_path / 'own.db'}")
    study.optimize(objective, n_trials=2)
    for t in study.trials:
        (meta,) = _pictures(study, t)
        assert (tmp_path / "art" / meta.artifact_id).stat().st_size > 10_000
        assert [W.shape for W, _ in load_weights(t)][0][1] == t.params["units"]
    without = Objective(dataset="xor", space={"epochs": 2})  # no folder: 0.1.0's JSON attributes
    plain = optuna.create_study()
    plain.optimize(without, n_trials=1)
    assert "weights" in plain.trials[0].user_attrs and "val_loss" in plain.trials[0].user_attrs


def test_a_moved_artifact_folder_is_found_through_the_environment(tmp_path, monkeypatch):
    from fcnn_opt.store.artifact_files import WeightsNotFound

    config = write_toml(tmp_path / "tiny.toml", TINY)
    url = f"sqlite:///{tmp_path / 'm.db'}"
    done = run_cli("study", "--config", config, "--storage", url, "--artifacts", "none", "--no-progress", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    (tmp_path / "artifacts").rename(tmp_path / "moved")
    trial = optuna.load_study(study_name="tiny", storage=url).trials[0]
    with pytest.raises(WeightsNotFound, match="--artifact-dir"):
        load_weights(trial)
    monkeypatch.setenv("FCNN_OPT_ARTIFACTS", str(tmp_path / "moved"))
    assert load_weights(trial)[0][0].shape == (2, trial.params["units"])
    done = run_cli("report", "--study-name", "tiny", "--storage", url, "--artifact-dir", tmp_path / "moved",
                   "--out", tmp_path / "report", "--no-png", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    skipped = [line.lower() for line in done.stdout.splitlines() if line.startswith("skipped")]
    # the figures drawn from the trials' run files (a fitted surface needs two hyperparameters)
    from_run_files = [line for line in skipped if ("response" in line or "loss" in line) and "fitted" not in line]
    assert not from_run_files, skipped
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Model response surface: best" in html and "Loss histories" in html


def test_training_never_waits_on_a_busy_renderer(tmp_path):
    """Jobs go to a sending thread: with the renderer process stopped (SIGSTOP), over a
    megabyte of jobs, far more than a pipe holds, is taken at once; once the renderer runs
    again, every job is answered and its picture written."""
    import os
    import signal
    import threading

    from fcnn_opt.show.renderer import Renderer

    answers = []
    renderer = Renderer(lambda artifact_id, error: answers.append((artifact_id, error)))
    rng = np.random.default_rng(0)
    job = {"dataset": {"name": "xor", "n_points": 200}, "activation": "relu",
           "weights": [(rng.normal(size=(2, 4)).astype(np.float32), np.zeros(4, np.float32)),
                       (rng.normal(size=(4, 1)).astype(np.float32), np.zeros(1, np.float32))],
           "train_loss": [0.7, 0.5], "val_loss": [0.7, 0.6], "title": "t", "subtitle": "",
           "padding": b"x" * 20_000}  # read and ignored by the renderer
    names = [f"job-{k}" for k in range(60)]
    os.kill(renderer.process.pid, signal.SIGSTOP)
    try:
        submitting = threading.Thread(target=lambda: [renderer.submit(name, str(tmp_path), job) for name in names])
        submitting.start()
        submitting.join(timeout=30)
        assert not submitting.is_alive(), "submit waited for the stopped renderer"
    finally:
        os.kill(renderer.process.pid, signal.SIGCONT)
    renderer.close()
    assert sorted(answers) == [(name, None) for name in sorted(names)]
    for name in names:
        with Image.open(tmp_path / name) as image:
            assert image.size[0] > 600
