"""`bench --tables`: bad names are refused in one line, before any system runs."""

from __future__ import annotations

import pytest
from conftest import benchmark_module, run_cli


@pytest.mark.parametrize("args,expected", [
    (["--tables", "digits,nope"], "Unknown table(s) ['nope']. Valid tables: digits, breast_cancer, wine, diabetes."),
    (["--tables", "wine", "--repeats", "0"], "--seeds must be integers or ranges (0,1,2 or 0-11) and --seconds > 0"),
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


def test_fcnn_opt_lower_counts_the_splits_one_by_one():
    """The medians of three splits can favour a peer that fcnn_opt beats on two of them: the
    paired column counts splits, skipping any a system failed, and only beside fcnn_opt."""
    tables = benchmark_module("tables")
    run = lambda rmse: {"trials": 5, "note": "", "wall": 60.0, "rmse": rmse}  # noqa: E731
    runs = {"fcnn_opt": [run(57.7), run(61.0), run(54.5)],
            "optuna_sklearn": [run(58.4), run(56.2), run(57.1)],
            "flaml": [run(50.0), {"error": "boom"}, run(60.0)]}
    headers, rows = tables.table_rows("regress", list(runs), runs, 60)
    column = headers.index("fcnn_opt lower")
    by_system = {row[0]: row[column] for row in rows}
    assert by_system == {"fcnn_opt": "", "optuna_sklearn": "2 of 3, p 1", "flaml": "1 of 2, p 1"}
    assert rows[1][headers.index("test RMSE")] == "57.10 (56.20-58.40)"  # its median is the lower one
    headers, _ = tables.table_rows("regress", ["optuna_sklearn"], {"optuna_sklearn": runs["optuna_sklearn"]}, 60)
    assert "fcnn_opt lower" not in headers


def test_the_paired_column_says_when_the_splits_cannot_tell_the_systems_apart():
    """Wilcoxon's signed-rank test on the pairs: three splits all one way give p = 0.25 at best
    (2 / 2**3), twelve give 2 / 2**12; equal pairs say nothing, so no p for them."""
    tables = benchmark_module("tables")
    assert tables.paired_p([(1.0, 2.0), (1.0, 3.0), (1.0, 4.0)]) == 0.25
    assert tables.paired_p([(1.0, 1.0 + i) for i in range(1, 13)]) == 2 / 2 ** 12
    assert tables.paired_p([(2.0, 2.0), (3.0, 3.0)]) is None
    assert tables.paired_p([(1.0, 2.0), (2.0, 1.0)]) == 1.0  # one split each way: no evidence
    run = lambda loss: {"trials": 5, "note": "", "wall": 60.0, "log_loss": loss, "accuracy": 1.0}  # noqa: E731
    runs = {"fcnn_opt": [run(0.01 * i) for i in range(1, 13)], "linear": [run(0.01 * i + 0.02) for i in range(1, 13)],
            "mlp_defaults": [run(0.01 * i) for i in range(1, 13)]}
    headers, rows = tables.table_rows("classify", list(runs), runs, 60)
    column = [row[headers.index("fcnn_opt lower")] for row in rows]
    assert column == ["", "12 of 12, p 0.00049", "0 of 12"]


def test_seeds_are_a_list_a_range_or_both(capsys):
    tables = benchmark_module("tables")
    assert tables.parse_seeds("0,1,2") == [0, 1, 2]
    assert tables.parse_seeds("0-11") == list(range(12))
    assert tables.parse_seeds("0-2, 7") == [0, 1, 2, 7]
    assert tables.parse_seeds("5") == [5]
    for bad in ("", "a", "3-1", "0-2,2", "-1", "1-", "1.5"):
        assert tables.parse_seeds(bad) == [], bad
    with pytest.raises(SystemExit) as ended:
        tables.main(["--seeds", "3-1", "--tables", "wine"])
    assert ended.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "got '3-1'" in err
