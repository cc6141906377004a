"""Synthetic 2-D datasets: the original library's twelve, plus spiral, gauss and moons.

Every dataset is built from a seeded NumPy generator, so the same arguments give the
same arrays on every machine::

    >>> from fcnn_opt import make_dataset
    >>> data = make_dataset("circles", n_points=2500, seed=0)
    >>> data.task, data.n_classes, data.X_train.shape
    ('multiclass', 4, (2000, 2))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fcnn_opt.training.data import (
    BINARY,
    MULTICLASS,
    REGRESSION,
    Dataset,
    _cast_targets,
    split_sizes,
)

TASKS = (BINARY, MULTICLASS, REGRESSION)


@dataclass(frozen=True)
class _Spec:
    task: str
    description: str
    label: Callable[[np.ndarray], np.ndarray] | None  # ground truth over the plane, if analytic
    n_classes: int = 0
    sample: Callable[[int, np.random.Generator], tuple[np.ndarray, np.ndarray]] | None = None


def _uniform(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-2.0, 2.0, size=(n, 2))


def _spiral(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Two interleaved arms, as in TensorFlow Playground, scaled to radius 2.
    half = n // 2
    counts = (half, n - half)
    xs, ys = [], []
    for label, (count, delta) in enumerate(zip(counts, (0.0, np.pi), strict=True)):
        t = np.arange(count) / count
        radius = 2.0 * t
        angle = 1.75 * 2.0 * np.pi * t + delta
        xs.append(np.column_stack([radius * np.sin(angle), radius * np.cos(angle)]))
        ys.append(np.full(count, label))
    return np.concatenate(xs), np.concatenate(ys)


def _gauss(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # Two isotropic blobs centred at (1, 1) (label 1) and (-1, -1) (label 0).
    half = n // 2
    pos = rng.normal(1.0, 0.5, size=(half, 2))
    neg = rng.normal(-1.0, 0.5, size=(n - half, 2))
    return np.concatenate([pos, neg]), np.concatenate([np.ones(half), np.zeros(n - half)])


def _moons(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    # scikit-learn's make_moons, centred and scaled by 1.5 to fill about [-2, 2]^2.
    half = n // 2
    t_out = np.linspace(0.0, np.pi, half)
    t_in = np.linspace(0.0, np.pi, n - half)
    outer = np.column_stack([np.cos(t_out), np.sin(t_out)])
    inner = np.column_stack([1.0 - np.cos(t_in), 0.5 - np.sin(t_in)])
    X = (np.concatenate([outer, inner]) - [0.5, 0.25]) * 1.5
    X = X + rng.normal(0.0, 0.05, size=X.shape)
    return X, np.concatenate([np.zeros(half), np.ones(n - half)])


def _x1(X):
    return X[:, 0]


def _x2(X):
    return X[:, 1]


_SPECS: dict[str, _Spec] = {
    # binary, exactly as the original library defines them
    "and": _Spec(BINARY, "x1 > 0 and x2 > 0", lambda X: (_x1(X) > 0) & (_x2(X) > 0)),
    "or": _Spec(BINARY, "x1 > 0 or x2 > 0", lambda X: (_x1(X) > 0) | (_x2(X) > 0)),
    "xor": _Spec(BINARY, "x1 * x2 > 0 (same-sign quadrants)", lambda X: _x1(X) * _x2(X) > 0),
    "stripe": _Spec(BINARY, "|x1 - x2| <= 1, a diagonal band", lambda X: np.abs(_x1(X) - _x2(X)) <= 1),
    "square": _Spec(BINARY, "|x1| + |x2| <= 1, a diamond", lambda X: np.abs(_x1(X)) + np.abs(_x2(X)) <= 1),
    "circle": _Spec(BINARY, "x1^2 + x2^2 <= 1, a disc", lambda X: _x1(X) ** 2 + _x2(X) ** 2 <= 1),
    # regression
    "prod": _Spec(REGRESSION, "x1 * x2 / 4", lambda X: _x1(X) * _x2(X) / 4),
    "sum_squares": _Spec(REGRESSION, "(x1^2 + x2^2) / 4, a bowl", lambda X: (_x1(X) ** 2 + _x2(X) ** 2) / 4),
    "polynom": _Spec(
        REGRESSION,
        "(x1^2 - 3 x1 x2 - x2^2) / 4, a saddle",
        lambda X: (_x1(X) ** 2 - 3 * _x1(X) * _x2(X) - _x2(X) ** 2) / 4,
    ),
    # multi-class
    "squares": _Spec(
        MULTICLASS, "floor(|x1| + |x2|): 4 nested diamonds", lambda X: np.floor(np.abs(_x1(X)) + np.abs(_x2(X))), 4
    ),
    "circles": _Spec(
        MULTICLASS, "floor((x1^2 + x2^2) / 2): 4 rings (the seed article's data)",
        lambda X: np.floor((_x1(X) ** 2 + _x2(X) ** 2) / 2), 4,
    ),
    "quadrants": _Spec(
        MULTICLASS, "floor(2 (atan2(x2, x1) / pi + 1)): the 4 quadrants",
        lambda X: np.floor(2 * (np.arctan2(_x2(X), _x1(X)) / np.pi + 1)) % 4, 4,
    ),
    # beyond the original
    "spiral": _Spec(BINARY, "two interleaved spiral arms (TensorFlow Playground)", None, sample=_spiral),
    "gauss": _Spec(BINARY, "two Gaussian blobs at (1, 1) and (-1, -1)", None, sample=_gauss),
    "moons": _Spec(BINARY, "two interleaving half circles (scikit-learn's make_moons)", None, sample=_moons),
}

ALIASES = {"sumSquares": "sum_squares"}


def list_datasets() -> dict[str, str]:
    """Return ``{name: "task: one-line description"}`` for every dataset."""
    return {name: f"{spec.task}: {spec.description}" for name, spec in _SPECS.items()}


def _spec(name: str) -> _Spec:
    key = ALIASES.get(name, name)
    if key not in _SPECS:
        raise ValueError(f"Unknown dataset {name!r}. Valid datasets: {', '.join(_SPECS)}.")
    return _SPECS[key]


def _add_noise(y: np.ndarray, spec: _Spec, noise: float, rng: np.random.Generator) -> np.ndarray:
    if noise == 0:
        return y
    if spec.task == REGRESSION:
        return y + rng.normal(0.0, noise * (y.std() or 1.0), size=y.shape)
    flip = rng.random(y.shape) < noise
    if spec.task == BINARY:
        return np.where(flip, 1 - y, y)
    shift = rng.integers(1, spec.n_classes, size=y.shape)  # a different class, uniformly
    return np.where(flip, (y + shift) % spec.n_classes, y)


def check_arguments(name: str, *, n_points: int = 2500, noise: float = 0.0, val_fraction: float = 0.2,
                    test_fraction: float = 0.0, seed: int = 0) -> tuple[int, int]:
    """Check :func:`make_dataset`'s arguments without drawing a point (cheap for any
    ``n_points``); returns the validation and test sizes.

    Raises:
        ValueError: an unknown dataset or an argument out of range, said in one line.
    """
    _spec(name)
    if not isinstance(n_points, int) or isinstance(n_points, bool) or n_points < 10:
        raise ValueError(f"n_points must be an integer >= 10. Received: {n_points!r}")
    if not 0.0 <= noise <= 0.5:
        raise ValueError(f"noise must be in [0, 0.5]. Received: {noise!r}")
    n_val, n_test = split_sizes(n_points, val_fraction, test_fraction)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer. Received: {seed!r}")
    return n_val, n_test


def make_dataset(
    name: str,
    *,
    n_points: int = 2500,
    noise: float = 0.0,
    val_fraction: float = 0.2,
    test_fraction: float = 0.0,
    seed: int = 0,
) -> Dataset:
    """Build a dataset by name (see :func:`list_datasets`).

    Args:
        name: dataset name, e.g. ``"circles"``.
        n_points: total number of points, training plus validation.
        noise: label-flip probability for classification; for regression, the standard
            deviation of additive Gaussian noise as a fraction of the targets' spread.
        val_fraction: share of the points held out for validation, in (0, 1).
        test_fraction: share held out as a test split, in [0, 1), never used by a search;
            0 (the default) leaves the training and validation arrays exactly as they were
            before test splits existed. The validation points come first in the seeded
            order, the test points next, so the same seed gives the same three splits.
        seed: seed of the generator that draws the points, noise and split.
    """
    spec = _spec(name)
    n_val, n_test = check_arguments(name, n_points=n_points, noise=noise, val_fraction=val_fraction,
                                    test_fraction=test_fraction, seed=seed)

    # Independent streams: changing the noise never moves the points or the split.
    points_rng, noise_rng, split_rng = (np.random.default_rng([seed, i]) for i in range(3))
    if spec.sample is None:
        X = _uniform(n_points, points_rng)
        y = spec.label(X).astype(np.float64)
    else:
        X, y = spec.sample(n_points, points_rng)
    y = _add_noise(y, spec, noise, noise_rng)
    order = split_rng.permutation(n_points)
    X, y = X[order].astype(np.float32), _cast_targets(y[order], spec.task)
    n_classes = spec.n_classes if spec.task == MULTICLASS else (2 if spec.task == BINARY else 0)
    return Dataset(
        name=ALIASES.get(name, name),
        task=spec.task,
        n_classes=n_classes,
        X_train=X[n_val + n_test:],
        y_train=y[n_val + n_test:],
        X_val=X[:n_val],
        y_val=y[:n_val],
        noise=noise,
        seed=seed,
        X_test=X[n_val:n_val + n_test] if n_test else None,
        y_test=y[n_val:n_val + n_test] if n_test else None,
        _label=spec.label,
    )
