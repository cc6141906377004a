"""`bench --growth`: bad counts are refused in one line; the table's cells are overhead per trial."""

from __future__ import annotations

import contextlib
import io

import pytest
from conftest import benchmark_module, run_cli


@pytest.mark.parametrize("args,expected", [
    (["--trials", "100,many"], "--trials and --workers take comma-separated whole numbers"),
    (["--trials", "0"], "--trials, --workers and --window must be positive"),
])
def test_bad_arguments_exit_2_with_one_line(args, expected):
    done = run_cli("bench", "--growth", *args, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr
    assert done.stdout == ""


def test_a_cell_is_the_wall_time_per_trial_and_worker_less_training():
    # 4 trials ending 10 ms apart after a start at 0; 1 ms of training each
    result = {"first": 0.0, "ends": [0.010, 0.020, 0.030, 0.040], "training": [0.001] * 4, "wall": 1.0}
    module = benchmark_module("growth")
    assert module.overheads(result, [2, 4, 8], workers=1, window=2) == [9.0, 9.0, None]
    assert module.overheads(result, [4], workers=2, window=4) == [19.0]  # two workers: each took 20 ms a trial


def test_a_short_run_prints_its_table():
    module = benchmark_module("growth")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert module.main(["--trials", "6,12", "--storages", "sqlite", "--ways", "tpe", "--workers", "1",
                            "--window", "6"]) == 0
    lines = out.getvalue().splitlines()
    assert lines[1].split() == ["storage", "way", "workers", "6", "12", "s"]
    cells = lines[3].split()
    assert cells[:3] == ["sqlite", "tpe", "1"] and all(float(c) > 0 for c in cells[3:5])
