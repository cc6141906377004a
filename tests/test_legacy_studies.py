"""Studies written by release 0.1.0 (tests/fixtures, see its README) still open, read, draw and
resume. The fixtures are copied first and must never change."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import optuna
import pytest
from conftest import run_cli

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def legacy(tmp_path):
    """Copies of the release-0.1.0 database and journal, with the study files that made them."""
    before = {p.name: _digest(p) for p in FIXTURES.iterdir() if p.is_file()}
    for name in ("release_0_1_0.db", "release_0_1_0.log", "release_0_1_0_tpe.toml", "release_0_1_0_grid.toml"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    yield tmp_path
    assert {p.name: _digest(p) for p in FIXTURES.iterdir() if p.is_file()} == before


def _db(folder: Path) -> str:
    return f"sqlite:///{folder / 'release_0_1_0.db'}"


def test_old_studies_are_listed_read_and_their_best_trial_shown(legacy):
    done = run_cli("studies", "--storage", _db(legacy), cwd=legacy)
    assert done.returncode == 0, done.stderr
    assert "legacy_tpe" in done.stdout and "legacy_grid" in done.stdout
    done = run_cli("best", "--study-name", "legacy_tpe", "--storage", _db(legacy), cwd=legacy)
    assert done.returncode == 0, done.stderr
    assert "trial 2" in done.stdout and "1.0609" in done.stdout
    done = run_cli("trials", "--study-name", "legacy_grid", "--storage", f"journal:{legacy / 'release_0_1_0.log'}",
                   "--format", "csv", cwd=legacy)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("COMPLETE") == 4


def test_old_trials_draw_from_their_stored_weights(legacy):
    """Weights stored as a JSON user attribute (the 0.1.0 format) rebuild the network."""
    from fcnn_opt.plots import plot_response, response_data

    study = optuna.load_study(study_name="legacy_tpe", storage=_db(legacy))
    trial = study.best_trial
    assert isinstance(trial.user_attrs["weights"], list)
    data = response_data(trial)
    assert data.output.shape == (len(data.a2), len(data.a1))
    assert len(set(data.output.ravel().round(6).tolist())) > 1  # a trained network, not a constant
    plot_response(trial, save=str(legacy / "best.png"), backend="matplotlib")
    assert (legacy / "best.png").stat().st_size > 10_000


def test_old_studies_resume_where_they_stopped(legacy):
    # TPE: the budget grows from 10 to 13, and only the 3 missing trials run.
    done = run_cli("study", "--config", legacy / "release_0_1_0_tpe.toml", "--storage", _db(legacy),
                   "--n-trials", 13, "--no-progress", "--no-artifacts", cwd=legacy)
    assert done.returncode == 0, done.stderr
    assert "this run: 3 in" in done.stdout
    study = optuna.load_study(study_name="legacy_tpe", storage=_db(legacy))
    assert [t.number for t in study.trials] == list(range(13))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    # The grid in the journal is complete: a second run finds nothing to do.
    journal = f"journal:{legacy / 'release_0_1_0.log'}"
    done = run_cli("study", "--config", legacy / "release_0_1_0_grid.toml", "--storage", journal,
                   "--no-progress", "--no-artifacts", cwd=legacy)
    assert done.returncode == 0, done.stderr
    assert "this run: 0 in" in done.stdout and "4 complete" in done.stdout


def test_a_worker_joins_an_old_study(legacy):
    """A worker needs only the stored definition, which 0.1.0 wrote."""
    done = run_cli("study", "--config", legacy / "release_0_1_0_grid.toml", "--storage", _db(legacy),
                   "--create-only", cwd=legacy)
    assert done.returncode == 0, done.stderr
    done = run_cli("worker", "--study-name", "legacy_tpe", "--storage", _db(legacy), "--no-progress",
                   "--no-artifacts", cwd=legacy)
    assert done.returncode == 0, done.stderr
    assert "8 complete, 2 pruned, 0 failed" in done.stdout  # its budget was done already
