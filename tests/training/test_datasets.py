import numpy as np
import pytest

from fcnn_opt import list_datasets, make_dataset

ORIGINAL = ["and", "or", "xor", "stripe", "square", "circle", "prod", "sum_squares", "polynom",
            "squares", "circles", "quadrants"]


def test_all_datasets_listed_with_descriptions():
    names = list_datasets()
    assert set(ORIGINAL + ["spiral", "gauss", "moons"]) == set(names)
    assert all(isinstance(d, str) and d for d in names.values())


@pytest.mark.parametrize("name", list(list_datasets()))
def test_shapes_split_and_task(name):
    data = make_dataset(name, n_points=500, val_fraction=0.2)
    assert data.X_train.shape == (400, 2) and data.X_val.shape == (100, 2)
    assert data.X_train.dtype == np.float32
    if data.task == "multiclass":
        assert data.y_train.dtype == np.int64 and set(np.unique(data.y)) <= set(range(data.n_classes))
    else:
        assert data.y_train.dtype == np.float32
    a1, a2, points = data.grid()
    assert points.shape == (101 * 101, 2)
    lo1, hi1, lo2, hi2 = data.bounds(pad=1.0)
    assert a1[0] == pytest.approx(lo1) and a2[-1] == pytest.approx(hi2)


# The original library's formulas, written independently of fcnn_opt's table.
FORMULAS = {
    "and": lambda x1, x2: (x1 > 0) & (x2 > 0),
    "or": lambda x1, x2: (x1 > 0) | (x2 > 0),
    "xor": lambda x1, x2: x1 * x2 > 0,
    "stripe": lambda x1, x2: abs(x1 - x2) <= 1,
    "square": lambda x1, x2: abs(x1) + abs(x2) <= 1,
    "circle": lambda x1, x2: x1**2 + x2**2 <= 1,
    "prod": lambda x1, x2: x1 * x2 / 4,
    "sum_squares": lambda x1, x2: (x1**2 + x2**2) / 4,
    "polynom": lambda x1, x2: (x1**2 - 3 * x1 * x2 - x2**2) / 4,
    "squares": lambda x1, x2: np.floor(abs(x1) + abs(x2)),
    "circles": lambda x1, x2: np.floor((x1**2 + x2**2) / 2),
    "quadrants": lambda x1, x2: np.floor(2 * (np.arctan2(x2, x1) / np.pi + 1)),
}


@pytest.mark.parametrize("name", ORIGINAL)
def test_original_formulas_and_input_range(name):
    data = make_dataset(name, n_points=2000)
    X = data.X.astype(np.float64)
    assert X.min() >= -2 and X.max() <= 2
    expected = FORMULAS[name](X[:, 0], X[:, 1])
    # inputs are stored in float32; compare on points not within rounding of a boundary
    got = data.y
    if data.task == "regression":
        np.testing.assert_allclose(got, expected, atol=1e-5)
    else:
        assert np.mean(got == expected) > 0.999


def test_circles_matches_the_article_class_balance():
    counts = np.bincount(make_dataset("circles", n_points=2500).y)
    # The article reports about 963/1014/428/95 of 2500 (random draw): same proportions.
    np.testing.assert_allclose(counts / 2500, [963 / 2500, 1014 / 2500, 428 / 2500, 95 / 2500], atol=0.03)


def test_same_arguments_same_arrays_and_seed_changes_them():
    a, b = make_dataset("xor", seed=3), make_dataset("xor", seed=3)
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_val, b.y_val)
    assert not np.array_equal(a.X_train, make_dataset("xor", seed=4).X_train)


def test_fixed_seed_gives_known_values():
    # Pinned values: a change here means datasets are no longer the same across versions.
    data = make_dataset("circles", n_points=100, seed=0)
    np.testing.assert_allclose(data.X_train[0], [1.1483933, -1.0425222], rtol=1e-6)
    assert data.y_train[:10].tolist() == [1, 0, 1, 2, 1, 0, 0, 0, 2, 0]
    assert float(data.X_train.astype(np.float64).sum()) == pytest.approx(33.1221744, rel=1e-6)


@pytest.mark.parametrize("name,task", [("xor", "binary"), ("circles", "multiclass"), ("prod", "regression")])
def test_noise(name, task):
    clean = make_dataset(name, n_points=4000)
    noisy = make_dataset(name, n_points=4000, noise=0.2)
    np.testing.assert_array_equal(clean.X, noisy.X)
    if task == "regression":
        residual = noisy.y - clean.y
        assert 0.1 < residual.std() / clean.y.std() < 0.3
    else:
        flipped = np.mean(noisy.y != clean.y)
        assert 0.15 < flipped < 0.25


def test_unknown_name_and_bad_arguments():
    with pytest.raises(ValueError, match="Valid datasets: .*circles"):
        make_dataset("nope")
    with pytest.raises(ValueError, match="noise"):
        make_dataset("xor", noise=0.9)
    with pytest.raises(ValueError, match="val_fraction"):
        make_dataset("xor", val_fraction=1.0)


def test_ground_truth_is_noise_free():
    data = make_dataset("circle", noise=0.3)
    _, _, points = data.grid()
    truth = data.ground_truth(points)
    assert truth.shape == (len(points),) and set(np.unique(truth)) == {0.0, 1.0}
    assert make_dataset("spiral").ground_truth(points) is None


# --- the test split ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["circles", "xor", "spiral", "polynom"])
def test_a_test_split_is_disjoint_and_stable_under_the_seed(name):
    data = make_dataset(name, n_points=1000, test_fraction=0.2, seed=3)
    assert (len(data.X_train), len(data.X_val), len(data.X_test)) == (600, 200, 200)
    # The three splits together are the dataset's points, each exactly once (as a multiset: the
    # spiral has two points at the origin).
    whole = make_dataset(name, n_points=1000, seed=3)
    parts = np.concatenate([data.X_train, data.X_val, data.X_test])
    assert np.array_equal(np.sort(parts.view(np.complex64).ravel()), np.sort(whole.X.view(np.complex64).ravel()))
    again = make_dataset(name, n_points=1000, test_fraction=0.2, seed=3)
    for field in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test"):
        assert np.array_equal(getattr(data, field), getattr(again, field))
    other = make_dataset(name, n_points=1000, test_fraction=0.2, seed=4)
    assert not np.array_equal(data.X_test, other.X_test)


def test_test_fraction_zero_leaves_training_and_validation_as_they_were():
    """Studies made before test splits existed train on exactly the same points."""
    before = make_dataset("circles", n_points=500, seed=1)
    zero = make_dataset("circles", n_points=500, seed=1, test_fraction=0.0)
    assert zero.X_test is None and not zero.has_test
    for field in ("X_train", "y_train", "X_val", "y_val"):
        assert np.array_equal(getattr(before, field), getattr(zero, field))
    # With a test split, validation is unchanged; the test points come out of training.
    split = make_dataset("circles", n_points=500, seed=1, test_fraction=0.2)
    assert np.array_equal(split.X_val, before.X_val)
    assert np.array_equal(np.concatenate([split.X_test, split.X_train]), before.X_train)


@pytest.mark.parametrize("bad", [-0.1, 1.0, 0.85, "0.2"])
def test_bad_test_fractions_say_what_is_allowed(bad):
    with pytest.raises(ValueError, match="test_fraction"):
        make_dataset("circles", n_points=100, test_fraction=bad)
