"""`bench --tables`: bad names are refused in one line, before any system runs."""

from __future__ import annotations

import pytest
from conftest import run_cli


@pytest.mark.parametrize("args,expected", [
    (["--tables", "digits,nope"], "Unknown table(s) ['nope']. Valid tables: digits, breast_cancer, wine, diabetes."),
    (["--tables", "wine", "--repeats", "0"], "--seeds must be integers and --seconds > 0"),
])
def test_bad_arguments_exit_2_with_one_line(args, expected):
    done = run_cli("bench", *args, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr
    assert done.stdout == ""
