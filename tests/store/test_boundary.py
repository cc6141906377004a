"""The Optuna boundary decides between the fast path and Optuna's public API, and says why."""

from __future__ import annotations

import optuna
import pytest
from conftest import STUDIES, run_cli

from fcnn_opt.store import optuna_internals as internals


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.delenv(internals.PUBLIC_API_ENV, raising=False)
    internals.reset_decision()
    yield
    internals.reset_decision()


def test_an_untested_optuna_version_falls_back_with_one_line(fresh, monkeypatch, capsys):
    monkeypatch.setattr(optuna, "__version__", "9.1.0")
    assert internals.fast_path() is False
    assert internals.fast_path() is False  # decided once: one line, not one per call
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"fcnn_opt: Optuna 9.1.0 is outside the tested range {internals.range_text()}; "
                     "using Optuna's public API only (same trials, slower runs)"]


def test_a_missing_private_name_falls_back_naming_it(fresh, monkeypatch, capsys):
    monkeypatch.setattr(internals, "_PRIVATE_NAMES",
                        (*internals._PRIVATE_NAMES, ("optuna.storages._rdb.models", "TrialModel.gone")))
    assert internals.fast_path() is False
    err = capsys.readouterr().err
    assert "lacks optuna.storages._rdb.models.TrialModel.gone" in err
    assert internals.fallback_reason().endswith("TrialModel.gone")


def test_a_renamed_instance_attribute_is_found_missing(monkeypatch):
    monkeypatch.setattr(internals, "_INSTANCE_NAMES", (("optuna.study", "Study", ("_storage", "_renamed")),))
    assert internals.missing_private_names() == ["optuna.study.Study()._renamed"]


def test_the_environment_forces_the_public_path_quietly(fresh, monkeypatch, capsys):
    monkeypatch.setenv(internals.PUBLIC_API_ENV, "1")
    assert internals.fast_path() is False
    assert capsys.readouterr().err == ""


def test_the_public_path_runs_a_study_through_the_command_line(tmp_path):
    """End to end with FCNN_OPT_PUBLIC_API=1: trials are pruned and complete, and the run
    says nothing about a fallback it was asked for."""
    done = run_cli("study", "--config", STUDIES / "tpe.toml", "--n-trials", 12, "--storage",
                   f"sqlite:///{tmp_path / 'p.db'}", "--no-progress", "--no-artifacts", "--study-name", "p",
                   cwd=tmp_path, FCNN_OPT_PUBLIC_API="1")
    assert done.returncode == 0, done.stderr
    assert "fcnn_opt:" not in done.stderr
    study = optuna.load_study(study_name="p", storage=f"sqlite:///{tmp_path / 'p.db'}")
    assert len(study.trials) == 12 and {t.state.name for t in study.trials} <= {"COMPLETE", "PRUNED"}
