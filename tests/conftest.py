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
