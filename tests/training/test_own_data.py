"""Your own data: arrays, DataFrames, CSV, NPZ, Parquet and scikit-learn's tables as datasets."""

from __future__ import annotations

import numpy as np
import pytest

from fcnn_opt import Dataset, TrainConfig, train
from fcnn_opt.training.data import DataError, class_labels
from fcnn_opt.training.tables import (
    build,
    fold_scaling,
    important_plane,
    load_sklearn,
    read_table,
    target_values,
)


def _table(n=400, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=[10.0, -3.0, 0.0], scale=[5.0, 0.1, 1.0], size=(n, 3))
    y = np.where(X[:, 0] - 10 + 20 * (X[:, 1] + 3) > 0, "yes", "no")
    return X, y


def test_arrays_become_a_standardised_split_dataset_with_named_classes():
    X, y = _table()
    data = Dataset.from_arrays(X, y, feature_names=["a", "b", "c"], test_fraction=0.2, seed=1)
    assert (data.task, data.n_classes, data.class_names) == ("binary", 2, ("no", "yes"))
    assert (len(data.X_train), len(data.X_val), len(data.X_test)) == (240, 80, 80)
    # Standardised with the training split's statistics only.
    assert np.allclose(data.X_train.mean(axis=0), 0, atol=1e-5)
    assert np.allclose(data.X_train.std(axis=0), 1, atol=1e-4)
    mean, std = data.input_scaling
    back = np.concatenate([data.X_train, data.X_val, data.X_test]) * std + mean  # the raw rows, each once
    assert np.allclose(np.sort(back[:, 0]), np.sort(X[:, 0]), atol=1e-4)
    # Same seed, same split; the labels stay with their rows.
    again = Dataset.from_arrays(X, y, feature_names=["a", "b", "c"], test_fraction=0.2, seed=1)
    assert np.array_equal(data.X_test, again.X_test)
    raw = data.X_val * std + mean
    labels = np.where(raw[:, 0] - 10 + 20 * (raw[:, 1] + 3) > 0, 1.0, 0.0)
    assert np.array_equal(labels, data.y_val)


def test_a_shared_scaling_takes_one_mean_and_deviation_over_every_feature():
    """``scaling = "shared"``: the training rows' mean and deviation over all their values, the
    same for every column, so the columns keep their sizes relative to each other;
    ``"columns"`` is the default, bit for bit; anything else is refused in one line."""
    X, y = _table()
    data = Dataset.from_arrays(X, y, test_fraction=0.2, seed=1, scaling="shared")
    mean, std = data.input_scaling
    raw_train = data.X_train.astype(np.float64) * std + mean
    assert np.allclose(mean, raw_train.mean(), rtol=1e-6) and np.allclose(std, raw_train.std(), rtol=1e-5)
    assert np.allclose(data.X_train.std(axis=0) / data.X_train.std(axis=0)[0],
                       raw_train.std(axis=0) / raw_train.std(axis=0)[0], rtol=1e-4)  # 5 : 0.1 : 1 kept
    default = Dataset.from_arrays(X, y, test_fraction=0.2, seed=1)
    columns = Dataset.from_arrays(X, y, test_fraction=0.2, seed=1, scaling="columns")
    assert np.array_equal(default.X_train, columns.X_train) and np.array_equal(default.X_test, columns.X_test)
    assert all(np.array_equal(a, b) for a, b in zip(default.input_scaling, columns.input_scaling, strict=True))
    with pytest.raises(DataError, match="scaling must be one of 'columns', 'shared', got 'global'"):
        Dataset.from_arrays(X, y, scaling="global")


@pytest.mark.parametrize("y, task, expected", [
    (np.arange(300) % 3, None, "multiclass"),  # a few integers: classes
    (np.linspace(0, 1, 300), None, "regression"),  # many values: regression
    (np.arange(300) % 3, "regress", "regression"),  # the user decides
    (np.array(["a", "b"] * 150), None, "binary"),
])
def test_the_task_is_inferred_and_the_rule_is_said(y, task, expected):
    X = np.random.default_rng(0).normal(size=(300, 2))
    data = Dataset.from_arrays(X, y, task=task)
    assert data.task == expected and data.task_note
    if expected == "regression":
        assert data.target_scaling is not None and abs(float(data.y_train.mean())) < 1e-5


@pytest.mark.parametrize("X, y, message", [
    (np.ones((50, 2)), np.zeros(50), "one class"),
    (np.where(np.arange(100).reshape(50, 2) == 7, np.nan, 1.0), np.arange(50) % 2,
     "feature column 'x2' has missing or infinite values in 1 rows"),
    (np.array([["a", "b"]] * 50), np.arange(50) % 2, "must be numbers"),
    (np.ones((5, 2)), np.arange(5) % 2, "at least 10"),
])
def test_bad_arrays_are_refused_in_one_line(X, y, message):
    with pytest.raises(DataError, match=message):
        Dataset.from_arrays(X, y)


def test_a_dataframe_and_a_csv_and_a_parquet_and_an_npz_give_the_same_dataset(tmp_path):
    import pandas as pd  # the [data] extra, installed by [test]
    X, y = _table(200)
    frame = pd.DataFrame({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "label": y})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    np.savez(tmp_path / "t.npz", X=X, y=y, feature_names=np.array(["a", "b", "c"]))
    made = [Dataset.from_frame(frame, "label"), read_table(tmp_path / "t.csv", target="label"),
            read_table(tmp_path / "t.parquet", target="label"), read_table(tmp_path / "t.npz")]
    for data in made:
        assert data.names == ("a", "b", "c") and data.class_names == ("no", "yes")
        assert np.allclose(data.X_train, made[0].X_train, atol=1e-6)
        assert np.array_equal(data.y_val, made[0].y_val)
    only = read_table(tmp_path / "t.csv", target="label", features=["c", "a"])
    assert only.names == ("c", "a") and only.n_features == 2


@pytest.mark.parametrize("text, kwargs, message", [
    ("a,b\n" + "1,x\n" * 20, {"target": "a"}, "feature column 'b' is not numeric (row 2: 'x')"),
    ("a,b\n" + "1,\n" * 20, {"target": "a"}, "feature column 'b' has missing values in 20 rows"),
    ("a,b\n" + "1,2\n" * 20, {"target": "zz"}, "no column 'zz'. Columns: a, b"),
    ("a,b\n" + "1,2\n" * 20, {"target": "a", "features": ["a"]}, "also listed as a feature"),
    ("a,b\n" + "1,2\n" * 20, {}, "name the target column"),
])
def test_bad_files_say_what_and_where(tmp_path, text, kwargs, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_table(path, **kwargs)
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "missing.csv", target="a")


@pytest.mark.parametrize("cells, dtype, codes, names", [
    (["0", "2", "1", "0"], "i", [0, 2, 1, 0], ("0", "1", "2")),  # integers stay integers
    (["10", "2", "-1", "2"], "i", [2, 1, 0, 1], ("-1", "2", "10")),  # in numeric order
    (["setosa", "virginica", "setosa"], "U", [0, 1, 0], ("setosa", "virginica")),
    (["1", "a", "b", "1"], "U", [0, 1, 2, 0], ("1", "a", "b")),  # mixed: all text
    (["0.5", "1.5", "0.5"], "f", [0, 1, 0], ("0.5", "1.5")),  # floats as written
    (["1.0", "2.0", "1.0"], "f", [0, 1, 0], ("1.0", "2.0")),
    (["1", "1.0", "2.5", "1"], "f", [0, 0, 1, 0], ("1", "2.5")),  # one value written two ways
    (["1e3", "20", "1e3"], "f", [1, 0, 1], ("20", "1e3")),
])
def test_class_labels_are_named_as_the_file_writes_them(cells, dtype, codes, names):
    y = target_values(cells)
    assert y.dtype.kind == dtype
    got_codes, got_names = class_labels(y, cells)
    assert list(got_codes) == codes and got_names == names


def test_class_labels_without_written_text_name_each_value():
    assert class_labels(np.array([2, 0, 2]))[1] == ("0", "2")
    assert class_labels(np.array([True, False]))[1] == ("False", "True")
    assert class_labels(np.array(["b", "a"]))[1] == ("a", "b")


def test_an_integer_target_in_a_csv_keeps_its_integer_labels(tmp_path):
    """A CSV's ``0, 1, 2`` are the classes' names everywhere they are shown, not ``0.0, 1.0, 2.0``."""
    from fcnn_opt.show.pictures import _class_swatches

    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    y = (X[:, 0] > -0.5).astype(int) + (X[:, 0] > 0.5)
    path = tmp_path / "ints.csv"
    path.write_text("a,b,label\n" + "".join(f"{a},{b},{k}\n" for (a, b), k in zip(X, y, strict=True)))
    data = read_table(path, target="label")
    assert (data.task, data.class_names) == ("multiclass", ("0", "1", "2"))
    assert np.array_equal(np.sort(np.unique(data.y_train)), [0, 1, 2])
    raw = data.X_val * data.input_scaling[1] + data.input_scaling[0]
    assert np.array_equal((raw[:, 0] > -0.5).astype(int) + (raw[:, 0] > 0.5), data.y_val)  # class k is label k

    class Draw:  # what the per-trial pictures' legend writes
        def __init__(self):
            self.texts = []

        def ellipse(self, *args, **kwargs):
            pass

        def text(self, xy, text, **kwargs):
            self.texts.append(text)

    draw = Draw()
    _class_swatches(draw, data, 0, 0)
    assert draw.texts == ["0", "1", "2"]


@pytest.mark.parametrize("name, task, n_features", [("iris", "multiclass", 4), ("wine", "multiclass", 13),
                                                    ("breast_cancer", "binary", 30), ("digits", "multiclass", 64),
                                                    ("diabetes", "regression", 10)])
def test_scikit_learns_tables_load_without_a_download(name, task, n_features):
    data = load_sklearn(name)
    assert (data.task, data.n_features) == (task, n_features)
    assert build({"sklearn": name}).n_features == n_features


@pytest.mark.parametrize("scaling", ["columns", "shared"])
def test_folding_the_scaling_gives_a_model_on_raw_inputs_and_outputs(scaling):
    """Every backend trains on the standardised arrays; the folded weights compute the same
    predictions from raw inputs, in the target's own units."""
    from fcnn_opt.training.backends._numpy import NumpyNet

    rng = np.random.default_rng(0)
    X = rng.normal(loc=50, scale=[10, 0.01], size=(300, 2))
    data = Dataset.from_arrays(X, 3 * X[:, 0] + 1000, task="regress", scaling=scaling)
    result = train(data, TrainConfig(dims=(8,), epochs=20, lr=0.02))
    raw_X = data.X_val * data.input_scaling[1] + data.input_scaling[0]
    folded = NumpyNet(fold_scaling(result.weights(), data.input_scaling, data.target_scaling), "relu",
                      "regression")
    expected = result.predict(data.X_val).ravel() * data.target_scaling[1] + data.target_scaling[0]
    assert np.allclose(folded.predict(raw_X.astype(np.float32)).ravel(), expected, rtol=1e-4)


def test_wide_data_is_drawn_over_its_two_most_important_features():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(500, 6))
    data = Dataset.from_arrays(X, (X[:, 4] + 0.5 * X[:, 1] > 0).astype(int))
    result = train(data, TrainConfig(dims=(16,), epochs=30, lr=0.02))
    assert sorted(important_plane(data, result.predict)) == [1, 4]
    a1, a2, points = data.grid(5)
    assert points.shape == (25, 6)
    assert np.allclose(points[:, 2:], np.median(data.X_train, axis=0)[2:])  # a slice at the medians


@pytest.mark.parametrize("lib", ["numpy", "torch", "tf", "keras", "sklearn"])
def test_every_backend_trains_on_a_table_of_any_width(lib):
    """Four inputs, three classes: each library builds the same network from the same initial
    weights and reaches a similar loss (the backends' own contract, on wide data)."""
    data = load_sklearn("iris", seed=0)
    config = TrainConfig(lib=lib, dims=(8,), epochs=5, batch_size=16, lr=0.01)
    result = train(data, config)
    reference = train(data, config.replace(lib="numpy"))
    assert [W.shape for W, _ in result.weights()] == [(4, 8), (8, 3)]
    assert result.val_loss[-1] == pytest.approx(reference.val_loss[-1], rel=0.05)


def test_tables_above_the_size_limits_need_allow_large():
    X, y = np.zeros((12, 10_001)), np.arange(12) % 2
    with pytest.raises(DataError, match="12 rows x 10,001 columns is above the limits.*--allow-large"):
        Dataset.from_arrays(X, y)
    assert Dataset.from_arrays(X, y, allow_large=True).n_features == 10_001


def test_a_one_input_network_is_drawn_as_a_curve_of_its_predictions():
    from fcnn_opt.plots import plot_response, response_data
    from fcnn_opt.show.figures._response import curve
    from fcnn_opt.show.pictures import response_png

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 10, size=(300, 1))
    data = Dataset.from_arrays(X, np.sin(X[:, 0]), feature_names=["time"], task="regress")
    result = train(data, TrainConfig(dims=(16,), epochs=10, lr=0.01, activation="tanh"))
    drawn = response_data(result)
    assert drawn.one_input and drawn.axes == ("time (standardised)", "")
    x, y, what = curve(drawn)
    assert np.allclose(y, result.predict(x.reshape(-1, 1).astype(np.float32)).ravel(), atol=1e-5)
    assert what == "predicted value (standardised)"
    fig = plot_response(result)
    assert [t.name for t in fig.data][:2] == ["training points", "model: predicted value (standardised)"]
    assert response_png(data, result.weights(), "tanh", result.train_loss, result.val_loss, title="t")[:4] == b"\x89PNG"


def _picture(png: bytes, frame: int = 0) -> np.ndarray:
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png))
    image.seek(frame)
    return np.asarray(image.convert("RGB"), dtype=int)


def test_a_one_input_dashboard_picture_is_a_curve_across_the_panel_not_a_plane():
    from fcnn_opt.show.pictures import PANEL, animated_png, response_png

    rng = np.random.default_rng(0)
    X = rng.uniform(-2, 2, size=(300, 1))
    rising = Dataset.from_arrays(X, 3 * X[:, 0], feature_names=["dose"], task="regress")
    result = train(rising, TrainConfig(dims=(8,), epochs=30, lr=0.02, optimizer="adam"), snapshots=3)
    picture = _picture(response_png(rising, result.weights(), "relu", result.train_loss, result.val_loss, title="t"))
    left, top, width = 36, 62, 2 * PANEL + 36  # the curve spans both surface panels' room
    panel = picture[top:top + PANEL, left:left + width]
    curve = (panel == (34, 34, 34)).all(axis=2)  # the model's line, #222222
    x_lo, x_hi, _, _ = rising.bounds()
    sampled = [round((v - x_lo) * width / (x_hi - x_lo)) for v in (rising.X_train.min(), rising.X_train.max())]
    columns = np.flatnonzero(curve.any(axis=0))
    assert len(columns) > 0.9 * (sampled[1] - sampled[0])  # across the sampled range at least
    rows = [np.flatnonzero(curve[:, c]).mean() for c in columns]
    quarter = len(rows) // 4
    assert np.mean(rows[:quarter]) > np.mean(rows[-quarter:]) + PANEL / 3  # it rises, as the data does
    frames = _picture(animated_png(rising, result.snapshots, "relu", result.train_loss, result.val_loss, title="t"), 2)
    assert (frames == (34, 34, 34)).all(axis=2).sum() > PANEL  # each frame draws the curve too

    split = Dataset.from_arrays(X, np.where(X[:, 0] > 0, "high", "low"), feature_names=["dose"], task="classify")
    result = train(split, TrainConfig(dims=(8,), epochs=30, lr=0.05, optimizer="adam"))
    picture = _picture(response_png(split, result.weights(), "relu", result.train_loss, result.val_loss, title="t"))
    low_side, high_side = picture[top + 5, left + 5], picture[top + 5, left + width - 5]
    # shaded by the predicted class: "high" is class 0 (sorted names), red; "low" class 1, blue
    assert low_side[2] > low_side[0] and high_side[0] > high_side[2]
