"""Shared fixtures: run the command line in a subprocess against this checkout."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STUDIES = ROOT / "studies"


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` imported as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


GATE = ROOT / "tests" / "gate"


def gate_env(folder: Path, free: int = 0) -> dict:
    """Environment for a command whose trials the test holds (see tests/gate/sitecustomize.py):
    each process runs ``free`` trials, then holds each next one, RUNNING, until ``folder/open``
    exists. Pass it as ``**gate_env(...)`` to :func:`run_cli` or ``popen_cli``."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"FCNN_OPT_TEST_GATE": str(folder), "FCNN_OPT_TEST_GATE_FREE": str(free),
            "PYTHONPATH": f"{GATE}{os.pathsep}{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def held_trials(folder: Path, count: int, proc: subprocess.Popen | None = None, timeout: float = 600) -> list[int]:
    """Wait until ``count`` trials are held at the gate in ``folder``; their numbers. The wait
    ends on the event, not on a clock: ``timeout`` only bounds a test that went wrong."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        held = sorted(int(f.name.rsplit("-", 1)[1]) for f in folder.glob("held-*"))
        if len(held) >= count:
            return held
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the command ended ({proc.returncode}) with {len(held)} of {count} trials held: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{len(held)} of {count} trials held after {timeout} s")
        time.sleep(0.05)


def open_gate(folder: Path) -> None:
    (folder / "open").touch()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'study.db'}"


def history(trial, name: str = "val_loss") -> list:
    """A finished trial's per-epoch history, from its run file (or 0.1.0's user attributes)."""
    from fcnn_opt.store.artifact_files import load_histories

    return load_histories(trial)[name]


def write_toml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def grid_study(name: str, epochs: int, units: list[int], lr: list[float] | float) -> str:
    """A study file's text: a grid, no pruner, over ``units`` x ``lr`` on 400 points of xor
    (``lr`` a number: one value, not searched)."""
    return f"""
[study]
name = "{name}"
sampler = "grid"
pruner = "none"
[dataset]
name = "xor"
n_points = 400
[params]
epochs = {epochs}
units = {units}
lr = {lr}
"""


def require_service(name: str, reason: str) -> None:
    """A test needs ``name`` (PostgreSQL, Chromium, ...) and it is missing: skip, except in CI
    (``FCNN_OPT_REQUIRE_SERVICES=1``, set by .ci/run), where a missing service is a failure."""
    message = f"{name} is not available: {reason}"
    if os.environ.get("FCNN_OPT_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message} (FCNN_OPT_REQUIRE_SERVICES=1: services must be present)", pytrace=False)
    pytest.skip(message)


# Workers' tests: heartbeats each second, a trial stale after 3 s without one; a quick TPE study.
FAST_HEARTBEAT = {"FCNN_OPT_HEARTBEAT": "1", "FCNN_OPT_GRACE": "3"}

FAST_TPE = """
[study]
name = "fast"
sampler = "tpe"
pruner = "none"
n_trials = {n}
seed = 5
[dataset]
name = "xor"
n_points = 400
[params]
epochs = {epochs}
lr = {{ low = 1e-3, high = 1e-1, log = true }}
units = [2, 4, 8]
activation = ["relu", "tanh"]
"""

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

    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    folder = tmp_path_factory.mktemp("small_study")
    url = f"sqlite:///{folder / 'study.db'}"
    run_study(parse_spec(SMALL_STUDY), storage=url, progress=False)
    return url, optuna.load_study(study_name="small", storage=url)


# Database servers for the distributed tests. Each test gets a database of its own, created
# here and dropped afterwards, so tests never see each other's studies.
PG_ADMIN_URL = os.environ.get("FCNN_OPT_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
MYSQL_ADMIN_URL = os.environ.get("FCNN_OPT_TEST_MYSQL", "mysql://root@127.0.0.1:3306/test")


def _with_database(url: str, name: str, scheme: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((scheme, parts.netloc, "/" + name, "", ""))


def _first_line(exc: Exception) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@pytest.fixture
def pg_url():
    """Storage URL of a fresh PostgreSQL database, dropped (``WITH (FORCE)``) after the test."""
    import uuid

    import psycopg2

    try:
        admin = psycopg2.connect(PG_ADMIN_URL, connect_timeout=5)
    except psycopg2.Error as exc:
        require_service("postgres", f"cannot connect to {PG_ADMIN_URL} ({_first_line(exc)}); "
                                    "set $FCNN_OPT_TEST_POSTGRES to a superuser URL")
    admin.autocommit = True
    name = f"fcnn_opt_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(PG_ADMIN_URL, name, "postgresql+psycopg2")
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def mysql_url():
    """Storage URL of a fresh MySQL/MariaDB database, dropped after the test."""
    import uuid
    from urllib.parse import urlsplit

    import pymysql

    parts = urlsplit(MYSQL_ADMIN_URL)
    try:
        admin = pymysql.connect(host=parts.hostname, port=parts.port or 3306, user=parts.username,
                                password=parts.password or "", connect_timeout=5, autocommit=True)
    except pymysql.Error as exc:
        require_service("mysql", f"cannot connect to {MYSQL_ADMIN_URL} ({_first_line(exc)}); "
                                 "set $FCNN_OPT_TEST_MYSQL to an admin URL")
    name = f"fcnn_opt_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}`")
    try:
        yield _with_database(MYSQL_ADMIN_URL, name, "mysql+pymysql")
    finally:
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()
