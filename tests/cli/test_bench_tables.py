"""`bench --tables`: bad names are refused in one line, before any system runs."""

from __future__ import annotations

import pytest
from conftest import benchmark_module, run_cli


@pytest.mark.parametrize("args,expected", [
    (["--tables", "digits,nope"], "Unknown table(s) ['nope']. Valid tables: digits, breast_cancer, wine, diabetes."),
    (["--tables", "wine", "--repeats", "0"], "--seeds must be integers and --seconds > 0"),
])
def test_bad_arguments_exit_2_with_one_line(args, expected):
    done = run_cli("bench", *args, timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and expected in done.stderr
    assert done.stdout == ""


def test_digits_pixels_are_scaled_on_one_scale_by_every_system(tmp_path):
    """Digits' features share one unit: fcnn_opt's study says scaling = "shared", and the
    scikit-learn systems' scaler takes one mean and deviation too; other tables scale per column."""
    import numpy as np

    from fcnn_opt.search.space import load_spec

    tables = benchmark_module("tables")
    (tmp_path / "wine").mkdir()
    splits = {"digits": tables.prepare("digits", 0, tmp_path), "wine": tables.prepare("wine", 0, tmp_path / "wine")}
    assert splits["digits"]["scaling"] == "shared" and splits["wine"]["scaling"] == "columns"
    text = tables.study_file(tmp_path / "train.csv", "classify", 0, 10.0, splits["digits"]["scaling"])
    (tmp_path / "s.toml").write_text(text)
    assert load_spec(tmp_path / "s.toml").dataset["scaling"] == "shared"
    assert "scaling" not in tables.study_file(tmp_path / "train.csv", "classify", 0, 10.0)
    X = np.array([[0.0, 10.0], [2.0, 30.0]])
    tables.SCALING["scaling"] = "shared"
    try:
        shared = tables._scaler().fit(X).transform(X)
    finally:
        tables.SCALING["scaling"] = "columns"
    assert np.allclose(shared, (X - X.mean()) / X.std())
    assert np.allclose(tables._scaler().fit(X).transform(X), [[-1, -1], [1, 1]])  # StandardScaler
