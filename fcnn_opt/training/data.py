"""The dataset every trial trains on, and how any table of numbers becomes one.

:class:`Dataset` holds the training, validation and (optionally) test arrays. The built-in
2-D datasets come from :func:`fcnn_opt.training.datasets.make_dataset`; your own data from
:func:`from_arrays` (a feature matrix and a target), :func:`from_frame` (a pandas DataFrame)
or the file and scikit-learn readers of :mod:`fcnn_opt.training.tables`.

What is done to your own data, always the same way:

- the task is ``classify`` or ``regress`` when given; otherwise a target of strings, booleans
  or at most :data:`MAX_INFERRED_CLASSES` distinct integers is classified, anything else
  regressed (:attr:`Dataset.task_note` says which rule decided);
- classes become ``0..k-1`` in sorted order (numbers as numbers), their names kept for
  plots (``class_names``) as the file writes them (:func:`class_labels`);
- the points are split as the built-in datasets are (validation first, then test, in one
  seeded order);
- features are standardised with the mean and standard deviation of the *training* split,
  and a regression target likewise; both are kept (``input_scaling``, ``target_scaling``)
  and stored with each trial, so a loaded or exported model takes raw inputs and gives raw
  outputs (the scaling is folded into its first and last layer). By default each column
  has its own mean and deviation (``scaling = "columns"``); ``scaling = "shared"`` takes one
  mean and one deviation over every feature value, for features measured in one unit
  (pixels, counts of one kind, a spectrum): per-column standardisation would blow up the
  columns that barely vary (a digit image's border pixels) to the spread of the ones that
  carry the shape, while one shared scale keeps their sizes relative to each other;
- missing values (NaN, empty cells) are refused, naming the column and how many rows.

    >>> import numpy as np
    >>> from fcnn_opt import Dataset
    >>> X = np.random.default_rng(0).normal(size=(300, 5))
    >>> data = Dataset.from_arrays(X, X[:, 0] > 0, feature_names=[f"f{i}" for i in range(5)])
    >>> data.task, data.n_features, data.class_names
    ('binary', 5, ('False', 'True'))
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

BINARY, MULTICLASS, REGRESSION = "binary", "multiclass", "regression"
ASKED_TASKS = ("classify", "regress")  # what a user may ask for
MAX_INFERRED_CLASSES = 20
MAX_ROWS = 1_000_000  # larger tables need allow_large
MAX_COLUMNS = 10_000
SCALINGS = ("columns", "shared")  # how the features are standardised (see the module docstring)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A dataset split into training, validation and (optionally) test arrays (all float32
    inputs: two for the built-in datasets, any number for your own). The test split is never seen by a search: ``X_test`` is None when the
    dataset was made with ``test_fraction=0``.

    Targets: binary and regression ``y`` are float32 of shape ``(n,)``; multi-class ``y``
    holds int64 class indices.
    """

    name: str
    task: str
    n_classes: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    noise: float = 0.0
    seed: int = 0
    X_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    # Own data (fcnn_opt.training.tables): names, how the task was chosen, the scaling applied.
    feature_names: tuple[str, ...] | None = None
    class_names: tuple[str, ...] | None = None
    task_note: str = ""
    input_scaling: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)
    target_scaling: tuple[float, float] | None = field(default=None, repr=False)
    plane: tuple[int, int] = (0, 1)  # the two features pictures are drawn over
    # True once the plane is settled: chosen by the user, or already set to the two features
    # that matter most to the network drawn (else wide data is given those, once).
    plane_fixed: bool = False
    _label: Callable[[np.ndarray], np.ndarray] | None = field(default=None, repr=False)

    @property
    def n_outputs(self) -> int:
        """Width of the network's output layer."""
        return self.n_classes if self.task == MULTICLASS else 1

    @classmethod
    def from_arrays(cls, X, y, **kwargs) -> Dataset:
        """Your own data as a dataset: see :func:`fcnn_opt.training.data.from_arrays`."""
        return from_arrays(X, y, **kwargs)

    @classmethod
    def from_frame(cls, frame, target: str, **kwargs) -> Dataset:
        """A pandas DataFrame as a dataset: see :func:`fcnn_opt.training.data.from_frame`."""
        return from_frame(frame, target, **kwargs)

    @property
    def n_rows(self) -> int:
        """Points in all three splits."""
        return len(self.X_train) + len(self.X_val) + (len(self.X_test) if self.has_test else 0)

    @property
    def n_features(self) -> int:
        """The number of input features."""
        return self.X_train.shape[1]

    @property
    def names(self) -> tuple[str, ...]:
        """The features' names (``x1, x2`` for the built-in datasets)."""
        return self.feature_names or tuple(f"x{i + 1}" for i in range(self.n_features))

    def on_plane(self, X: np.ndarray) -> np.ndarray:
        """Points ``X`` projected on the :attr:`plane` the pictures are drawn over, ``(n, 2)``
        (one feature: the second coordinate is 0)."""
        X = np.asarray(X)
        if self.n_features == 1:
            return np.column_stack([X[:, 0], np.zeros(len(X), dtype=X.dtype)])
        return X[:, list(self.plane)]

    def over(self, features: Sequence[str]) -> Dataset:
        """This dataset, pictured over the two ``features`` named (the others at their medians)."""
        import dataclasses

        names = list(self.names)
        unknown = [f for f in features if f not in names]
        if len(features) != 2 or unknown or features[0] == features[1]:
            raise DataError(f"{self.name}: name two different features to draw over; got {list(features)}. "
                            f"Features: {', '.join(names)}.")
        return dataclasses.replace(self, plane=(names.index(features[0]), names.index(features[1])),
                                   plane_fixed=True)

    @property
    def plane_names(self) -> tuple[str, str]:
        """Axis labels of the pictures: ``("x1", "x2")``, or the two features drawn (with
        "(standardised)", and "others at their medians" when there are more)."""
        if self.feature_names is None:
            return "x1", "x2"
        if self.n_features == 1:
            return f"{self.names[0]} (standardised)", ""
        i, j = self.plane
        return f"{self.names[i]} (standardised)", f"{self.names[j]} (standardised)"

    @property
    def has_test(self) -> bool:
        """Whether the dataset holds out a test split."""
        return self.X_test is not None and len(self.X_test) > 0

    @property
    def X(self) -> np.ndarray:
        """The training and validation inputs together (the test split left out)."""
        return np.concatenate([self.X_train, self.X_val])

    @property
    def y(self) -> np.ndarray:
        """The training and validation targets together (the test split left out)."""
        return np.concatenate([self.y_train, self.y_val])

    def bounds(self, pad: float = 1.0) -> tuple[float, float, float, float]:
        """``(x1_min, x1_max, x2_min, x2_max)`` of all points over the :attr:`plane`'s two
        features (one feature: the second axis is ``[-pad, pad]``), padded by ``pad``."""
        X = self.X
        lo, hi = X.min(axis=0) - pad, X.max(axis=0) + pad
        if self.n_features == 1:
            return float(lo[0]), float(hi[0]), -pad, pad
        i, j = self.plane
        return float(lo[i]), float(hi[i]), float(lo[j]), float(hi[j])

    def grid(self, resolution: int = 101, pad: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The prediction grid for pictures: ``(x1 axis, x2 axis, points)``.

        ``points`` has shape ``(resolution**2, 2)`` in row-major order, so a prediction
        reshaped to ``(resolution, resolution)`` has x2 along rows and x1 along columns.
        """
        x1_min, x1_max, x2_min, x2_max = self.bounds(pad)
        a1 = np.linspace(x1_min, x1_max, resolution)
        a2 = np.linspace(x2_min, x2_max, resolution)
        g1, g2 = np.meshgrid(a1, a2)
        if self.n_features == 2 and self.plane == (0, 1):
            return a1, a2, np.column_stack([g1.ravel(), g2.ravel()]).astype(np.float32)
        # A slice: the plane's two features vary, the others stay at their training medians.
        points = np.tile(np.median(self.X_train, axis=0), (g1.size, 1))
        points[:, self.plane[0]] = g1.ravel()
        if self.n_features > 1:
            points[:, self.plane[1]] = g2.ravel()
        return a1, a2, points.astype(np.float32)

    def ground_truth(self, X: np.ndarray) -> np.ndarray | None:
        """The noise-free target at arbitrary points, or None where no formula exists."""
        if self._label is None:
            return None
        return _cast_targets(self._label(np.asarray(X, dtype=np.float64)), self.task)


def _cast_targets(y: np.ndarray, task: str) -> np.ndarray:
    if task == MULTICLASS:
        return y.astype(np.int64)
    return y.astype(np.float32)


class DataError(ValueError):
    """Data that cannot be used as it is; the message says what and where."""


def from_arrays(X, y, *, task: str | None = None, name: str = "arrays",
                feature_names: Sequence[str] | None = None, val_fraction: float = 0.2,
                test_fraction: float = 0.0, seed: int = 0, allow_large: bool = False,
                target_text: Sequence[str] | None = None, scaling: str = "columns") -> Dataset:
    """A dataset from a feature matrix ``X`` (n x d, numbers) and a target ``y`` (n values).

    Args:
        task: ``"classify"`` or ``"regress"``; inferred from ``y`` when None.
        name: what pictures and summaries call the data.
        feature_names: one per column of ``X`` (default ``x1, x2, ...``).
        val_fraction, test_fraction, seed: the split, as for :func:`make_dataset`.
        allow_large: accept more than :data:`MAX_ROWS` rows or :data:`MAX_COLUMNS` columns.
        target_text: the target as a file writes it, one text per row: classes are named by
            it (see :func:`class_labels`).
        scaling: ``"columns"`` (each feature standardised on its own) or ``"shared"`` (one
            mean and deviation for every feature, for features in one unit); see above.

    Raises:
        DataError: a shape, a missing value, a target with one class, or a size out of bounds.
    """
    if scaling not in SCALINGS:
        raise DataError(f"{name}: scaling must be one of {', '.join(map(repr, SCALINGS))}, got {scaling!r}.")
    X = np.asarray(X)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise DataError(f"{name}: X must be (rows, columns) and y one value per row; got X {X.shape}, "
                        f"y {y.shape}.")
    names = tuple(feature_names) if feature_names is not None else tuple(f"x{i + 1}" for i in range(X.shape[1]))
    if len(names) != X.shape[1]:
        raise DataError(f"{name}: {len(names)} feature names for {X.shape[1]} columns.")
    check_size(len(X), X.shape[1], name, allow_large)
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise DataError(f"{name}: the features must be numbers (got {X.dtype}); encode categories "
                        "yourself, e.g. one column per category.")
    X = X.astype(np.float64)
    _refuse_missing(X, names, name)
    if y.dtype.kind == "f" and np.isnan(y).any():
        raise DataError(f"{name}: the target has missing values in {int(np.isnan(y).sum())} rows.")
    task, note = infer_task(y, task, name)
    if task == REGRESSION:
        targets, class_names = y.astype(np.float64), None
    else:
        targets, class_names = class_labels(y, target_text)
        if len(class_names) < 2:
            raise DataError(f"{name}: the target has one class ({class_names[0]!r}); classification needs two "
                            "or more.")
        task = BINARY if len(class_names) == 2 else MULTICLASS
    return _split(X, targets, task, name, names, class_names, note, val_fraction, test_fraction, seed, scaling)


def class_labels(y, written: Sequence[str] | None = None) -> tuple[np.ndarray, tuple[str, ...]]:
    """``(codes, names)``: each row's class ``0..k-1`` and each class's name, for target ``y``.

    Numbers are ordered as numbers, anything else as text. A class is named as its value is
    written: ``written`` is the target as a file holds it (one text per row), so a CSV's
    ``0, 1, 2`` stay ``0, 1, 2`` and its ``0.5`` stays ``0.5``. A value written more than one
    way (``1`` and ``1.0``) is named plainly (``1``). Without ``written``, ``str`` of each value.

        >>> class_labels(np.array([2.0, 0.0, 1.0, 0.0]), ["2", "0", "1", "0"])
        (array([2, 0, 1, 0]), ('0', '1', '2'))
        >>> class_labels(np.array(["setosa", "virginica", "setosa"]))[1]
        ('setosa', 'virginica')
    """
    y = np.asarray(y)
    values, codes = np.unique(y.astype(str) if y.dtype.kind in "OUS" else y, return_inverse=True)
    codes = codes.reshape(-1)
    if written is None:
        return codes, tuple(str(v) for v in values)
    written = np.asarray([str(t) for t in written], dtype=str)
    if written.shape != y.shape:
        raise ValueError(f"{len(written)} written labels for {len(y)} target values.")
    texts, first = np.unique(written, return_index=True)
    class_of_text = codes[first]
    forms = np.bincount(class_of_text, minlength=len(values))
    names = [_plain(v) for v in values]
    for text, k in zip(texts, class_of_text, strict=True):
        if forms[k] == 1:
            names[k] = str(text)
    return codes, tuple(names)


def _plain(value) -> str:
    """A label's name when it is written in several ways: an integral number as an integer."""
    if isinstance(value, (float, np.floating)) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value)


def from_frame(frame, target: str, features: Sequence[str] | None = None, **kwargs) -> Dataset:
    """A dataset from a pandas DataFrame: column ``target``, and ``features`` (default: every
    other column). Other arguments as :func:`from_arrays`."""
    columns = [str(c) for c in frame.columns]
    check_columns(columns, target, features, kwargs.get("name", "DataFrame"))
    features = list(features) if features is not None else [c for c in columns if c != target]
    for column in features:
        if frame[column].dtype.kind not in "biuf":
            raise DataError(f"{kwargs.get('name', 'DataFrame')}: feature column {column!r} is not numeric "
                            f"({frame[column].dtype}); encode it as numbers first (no silent one-hot).")
    X = frame[features].to_numpy(dtype=np.float64, na_value=np.nan)
    y = frame[target].to_numpy()
    if frame[target].isna().any():
        raise DataError(f"{kwargs.get('name', 'DataFrame')}: the target column {target!r} has missing values "
                        f"in {int(frame[target].isna().sum())} rows.")
    return from_arrays(X, y, feature_names=features, **kwargs)


def infer_task(y: np.ndarray, task: str | None, name: str) -> tuple[str, str]:
    """``(binary|multiclass|regression, how it was decided)`` for target ``y``."""
    if task is not None:
        if task not in ASKED_TASKS:
            raise DataError(f"{name}: task must be one of {{{', '.join(ASKED_TASKS)}}}, got {task!r}.")
        if task == "regress" and y.dtype.kind not in "biuf":
            raise DataError(f"{name}: task = \"regress\" needs a numeric target; it holds {y.dtype} values.")
        return (REGRESSION if task == "regress" else MULTICLASS), f"task {task} (as given)"
    if y.dtype.kind in "OUSb":
        return MULTICLASS, "classify (the target holds labels)"
    distinct = np.unique(y)
    integral = y.dtype.kind in "iu" or bool(np.all(np.mod(distinct, 1) == 0))
    if integral and len(distinct) <= MAX_INFERRED_CLASSES:
        return MULTICLASS, (f"classify ({len(distinct)} distinct integer values; set task = \"regress\" "
                            "to regress them)")
    return REGRESSION, f"regress ({len(distinct)} distinct values)"


def check_size(rows: int, columns: int, name: str, allow_large: bool) -> None:
    """Refuse a table under 10 rows, or, unless ``allow_large``, above :data:`MAX_ROWS` rows or
    :data:`MAX_COLUMNS` columns (a :class:`DataError` naming ``name``)."""
    if rows < 10:
        raise DataError(f"{name}: {rows} rows; a study needs at least 10.")
    if allow_large:
        return
    if rows > MAX_ROWS or columns > MAX_COLUMNS:
        raise DataError(f"{name}: {rows:,} rows x {columns:,} columns is above the limits "
                        f"({MAX_ROWS:,} rows, {MAX_COLUMNS:,} columns); pass --allow-large to go ahead.")


def _refuse_missing(X: np.ndarray, names, name: str) -> None:
    bad = ~np.isfinite(X)
    if bad.any():
        column = int(np.argmax(bad.any(axis=0)))
        raise DataError(f"{name}: feature column {names[column]!r} has missing or infinite values in "
                        f"{int(bad[:, column].sum())} rows ({int(bad.any(axis=1).sum())} rows in all).")


def check_columns(columns: Sequence[str], target: str | None, features, where: str) -> None:
    """Refuse a ``target`` or ``features`` column that ``columns`` lacks (a :class:`DataError`
    naming ``where`` and listing the columns)."""
    wanted = ([target] if target is not None else []) + list(features or [])
    unknown = [c for c in wanted if c not in columns]
    if unknown:
        raise DataError(f"{where}: no column {unknown[0]!r}. Columns: {', '.join(columns)}.")
    if features is not None and target in features:
        raise DataError(f"{where}: the target {target!r} is also listed as a feature.")


def split_sizes(n: int, val_fraction: float, test_fraction: float, *, min_train: int = 1,
                unit: str = "points") -> tuple[int, int]:
    """The validation and test sizes of ``n`` points (validation first, test next, training the
    rest, at least ``min_train``), the same for the built-in datasets and your own.

    Raises:
        ValueError: a fraction out of range, or a split left empty, said in one line.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1). Received: {val_fraction!r}")
    if not isinstance(test_fraction, (int, float)) or isinstance(test_fraction, bool) \
            or not 0.0 <= test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in [0, 1). Received: {test_fraction!r}")
    n_val, n_test = int(round(n * val_fraction)), int(round(n * test_fraction))
    if n_val < 1 or n - n_val - n_test < min_train or (test_fraction > 0 and n_test < 1):
        raise ValueError(f"val_fraction={val_fraction} and test_fraction={test_fraction} leave an empty "
                         f"split of {n} {unit}.")
    return n_val, n_test


def _split(X, targets, task, name, names, class_names, note, val_fraction, test_fraction, seed,
           scaling: str = "columns") -> Dataset:
    n = len(X)
    try:  # two training rows at least: their spread scales the features
        n_val, n_test = split_sizes(n, val_fraction, test_fraction, min_train=2, unit="rows")
    except ValueError as exc:
        raise DataError(f"{name}: {exc}") from None
    order = np.random.default_rng([seed, 2]).permutation(n)
    X, targets = X[order], targets[order]
    train = slice(n_val + n_test, None)
    if scaling == "shared":  # one mean and deviation over every value, as one per column
        mean, std = np.full(X.shape[1], X[train].mean()), np.full(X.shape[1], X[train].std())
    else:
        mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std = np.where(std > 0, std, 1.0)
    Xs = ((X - mean) / std).astype(np.float32)
    target_scaling = None
    if task == REGRESSION:
        t_mean, t_std = float(targets[train].mean()), float(targets[train].std()) or 1.0
        targets = ((targets - t_mean) / t_std).astype(np.float32)
        target_scaling = (t_mean, t_std)
    elif task == BINARY:
        targets = targets.astype(np.float32)
    else:
        targets = targets.astype(np.int64)
    return Dataset(
        name=name, task=task, n_classes=len(class_names) if class_names else 0,
        X_train=Xs[train], y_train=targets[train], X_val=Xs[:n_val], y_val=targets[:n_val], seed=seed,
        X_test=Xs[n_val:n_val + n_test] if n_test else None,
        y_test=targets[n_val:n_val + n_test] if n_test else None,
        feature_names=names, class_names=class_names, task_note=note,
        input_scaling=(mean, std), target_scaling=target_scaling)
