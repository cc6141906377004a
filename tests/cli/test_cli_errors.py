"""Bad input: one line on stderr, exit code 2, no traceback, nothing stored is touched."""

from __future__ import annotations

import pytest
from conftest import run_cli, write_toml

BASE = """
[study]
name = "bad"
sampler = "{sampler}"
[dataset]
name = "xor"
[params]
{params}
"""


@pytest.mark.parametrize("params,sampler,expected", [
    ("colour = 1", "tpe", "unknown key [params].colour"),
    ("lr = \"fast\"", "tpe", "[params].lr must be a number"),
    ("units = []", "tpe", "[params].units is an empty list"),
    ("lr = { low = 0.1, high = 0.01 }", "tpe", "low > high"),
    ("l2 = { low = 0.0, high = 0.1, log = true }", "tpe", "log-scaled, so low must be > 0"),
    ("lr = { low = 1e-3, high = 0.1 }", "grid", "the grid sampler needs a list"),
    ("activation = [\"relu\", \"gelu\"]", "tpe", "Expected one of {relu, tanh, sigmoid}"),
    ("units = { low = 2 }", "tpe", "range must be units = { low = ..., high = ..."),
    ("epochs = 0", "tpe", "[params].epochs must be >= 1"),
])
def test_bad_study_files(tmp_path, params, sampler, expected):
    path = write_toml(tmp_path / "bad.toml", BASE.format(sampler=sampler, params=params))
    done = run_cli("study", "--config", path, "--storage", f"sqlite:///{tmp_path}/s.db", cwd=tmp_path)
    assert done.returncode == 2
    assert expected in done.stderr and str(path) in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,expected", [
    (["--config", "missing.toml"], "cannot read the study file"),
    (["--dataset", "nope"], "Valid datasets"),
    (["--lib", "jax"], "not allowed"),
    (["--n-trials", "0"], "--n-trials: expected an integer >= 1"),
    (["--timeout", "-1"], "--timeout must be > 0"),
    (["--storage", "nonsense"], "is malformed"),
])
def test_bad_command_line_values(tmp_path, args, expected):
    done = run_cli("study", *args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert expected in done.stderr and "Traceback" not in done.stderr


def test_not_toml(tmp_path):
    path = write_toml(tmp_path / "x.toml", "this is = = not toml")
    done = run_cli("study", "--config", path, cwd=tmp_path)
    assert done.returncode == 2 and "not valid TOML" in done.stderr


def test_foreign_sqlite_file_is_refused_and_left_untouched(tmp_path):
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table customers (id integer)")
    before = db.read_bytes()
    done = run_cli("study", "--storage", f"sqlite:///{db}", cwd=tmp_path)
    assert done.returncode == 2 and "another application" in done.stderr
    assert db.read_bytes() == before
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all")
    done = run_cli("studies", "--storage", f"sqlite:///{junk}", cwd=tmp_path)
    assert done.returncode == 2 and "not an SQLite database" in done.stderr
    assert junk.read_bytes() == b"not a database at all"


def test_unknown_study(tmp_path, sqlite_url):
    done = run_cli("trials", "--study-name", "ghost", "--storage", sqlite_url, cwd=tmp_path)
    assert done.returncode == 2 and "No study named 'ghost'" in done.stderr


def test_help_is_fast_and_imports_no_framework():
    import subprocess
    import sys
    import time

    from conftest import cli_env

    code = ("import sys, time; t = time.perf_counter(); import fcnn_opt; fcnn_opt.make_dataset; "
            "from fcnn_opt.cli import commands; commands.build_parser(); "
            "assert 'torch' not in sys.modules and 'tensorflow' not in sys.modules, sorted(sys.modules); "
            "print(time.perf_counter() - t)")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    help_run = run_cli("--help")
    assert help_run.returncode == 0 and "study" in help_run.stdout
    assert time.perf_counter() - start < 30  # a sanity bound only; the speed figure is in the docs


def test_datasets_command():
    done = run_cli("datasets")
    assert done.returncode == 0 and "circles" in done.stdout and "spiral" in done.stdout
