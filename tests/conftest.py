"""Shared fixtures: run the command line in a subprocess against this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"


def cli_env(**extra) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("OPTUNA_STORAGE", None)
    env.update(extra)
    return env


def run_cli(*args, cwd=None, timeout=300, **env) -> subprocess.CompletedProcess:
    """``python -m fcnn_opt ARGS`` in a fresh process; returns the completed process."""
    return subprocess.run([sys.executable, "-m", "fcnn_opt", *map(str, args)], cwd=cwd, env=cli_env(**env),
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def require_service(name: str, reason: str) -> None:
    """A test needs ``name`` (PostgreSQL, Chromium, ...) and it is missing: skip, except in CI
    (``FCNN_OPT_REQUIRE_SERVICES=1``, set by .ci/run), where a missing service is a failure."""
    message = f"{name} is not available: {reason}"
    if os.environ.get("FCNN_OPT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (FCNN_OPT_REQUIRE_SERVICES=1: services must be present)", pytrace=False)
    pytest.skip(message)


# A small real study for the figure, report and dashboard tests: random sampling with median
# pruning on 4-class circles, so it has complete and pruned trials, a log-scaled float, an
# integer and a categorical hyperparameter, and an artifact per finished trial.
SMALL_STUDY = {
    "study": {"name": "small", "sampler": "random", "pruner": "median", "n_trials": 12, "seed": 2},
    "dataset": {"name": "circles", "n_points": 400},
    "params": {"epochs": 12, "lr": {"low": 1e-4, "high": 0.3, "log": True}, "units": [2, 4, 8],
               "activation": ["relu", "tanh"]},
}


@pytest.fixture(scope="session")
def small_study(tmp_path_factory):
    """``(storage URL, study)`` of :data:`SMALL_STUDY`, run once per session in a temporary folder."""
    import optuna

    from fcnn_opt.space import parse_spec
    from fcnn_opt.study import run_study

    folder = tmp_path_factory.mktemp("small_study")
    url = f"sqlite:///{folder / 'study.db'}"
    run_study(parse_spec(SMALL_STUDY), storage=url, progress=False)
    return url, optuna.load_study(study_name="small", storage=url)
