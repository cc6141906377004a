"""Your own data from a file or from scikit-learn, as a :class:`~fcnn_opt.training.data.Dataset`.

Sources: a file (:func:`read_table`: ``.csv``, ``.npz``, ``.parquet`` with pyarrow) or one
of the datasets that ship inside scikit-learn (:data:`SKLEARN_DATASETS`, no download); a
study file names them in ``[dataset]``: ``path``, ``target``, ``features``, ``task``, or
``sklearn``, and :func:`build` turns those arguments (or a built-in dataset's) into the
dataset. What is done to the data (task, classes, split, scaling, missing values) is said in
:mod:`fcnn_opt.training.data`. Also here: the scaling kept with each trial and folded into
loaded and exported models (:func:`fold_scaling`), the data file's hash that a study checks
(:func:`file_digest`), and the two features a picture of wide data is drawn over
(:func:`important_plane`).

    >>> from fcnn_opt.training.tables import load_sklearn
    >>> data = load_sklearn("iris", test_fraction=0.2)
    >>> data.task, data.n_features, data.class_names
    ('multiclass', 4, ('setosa', 'versicolor', 'virginica'))
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fcnn_opt.training.backends._base import loss
from fcnn_opt.training.data import (
    DataError,
    Dataset,
    check_columns,
    check_size,
    from_arrays,
    from_frame,
)
from fcnn_opt.training.datasets import make_dataset

SKLEARN_DATASETS = ("iris", "wine", "breast_cancer", "digits", "diabetes")
FILE_TYPES = (".csv", ".npz", ".parquet")


def read_table(path: str | Path, *, target: str | None = None, features: Sequence[str] | None = None,
               **kwargs) -> Dataset:
    """A dataset from a ``.csv`` (header row; ``target`` names a column), an ``.npz`` (arrays
    ``X`` and ``y``, optional ``feature_names``) or a ``.parquet`` file (needs pyarrow)."""
    path = Path(path)
    kwargs.setdefault("name", path.stem)
    if path.suffix not in FILE_TYPES:
        raise DataError(f"{path}: unknown file type {path.suffix or '(none)'!r}. Expected one of "
                        f"{', '.join(FILE_TYPES)}.")
    if not path.is_file():
        raise DataError(f"{path}: no such file.")
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as data:
            if "X" not in data.files or "y" not in data.files:
                raise DataError(f"{path}: an .npz needs arrays named X and y; it has {', '.join(data.files)}.")
            names = [str(n) for n in data["feature_names"]] if "feature_names" in data.files else None
            X, y = data["X"], data["y"]
        if features is not None:
            names = names or [f"x{i + 1}" for i in range(X.shape[1])]
            check_columns(names, None, features, kwargs["name"])
            X, names = X[:, [names.index(f) for f in features]], list(features)
        return from_arrays(X, y, feature_names=names, **kwargs)
    if target is None:
        raise DataError(f"{path}: name the target column ([dataset] target = \"column\").")
    if path.suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError("reading .parquet needs pyarrow: pip install 'fcnn_opt[data]'.") from None
        return from_frame(pq.read_table(path).to_pandas(), target, features, **kwargs)
    return _read_csv(path, target, features, **kwargs)


def _read_csv(path: Path, target: str, features, **kwargs) -> Dataset:
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: the file is empty.") from None
        rows = list(reader)
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    check_columns(header, target, features, str(path))
    features = list(features) if features is not None else [c for c in header if c != target]
    check_size(len(rows), len(features), str(path), kwargs.get("allow_large", False))
    columns = {name: header.index(name) for name in [*features, target]}
    X = np.empty((len(rows), len(features)))
    for j, name in enumerate(features):
        X[:, j] = _numbers(path, name, [r[columns[name]] if columns[name] < len(r) else "" for r in rows])
    raw = [r[columns[target]].strip() if columns[target] < len(r) else "" for r in rows]
    empty = sum(1 for v in raw if not v)
    if empty:
        raise DataError(f"{path}: the target column {target!r} has missing values in {empty} rows.")
    return from_arrays(X, target_values(raw), feature_names=features, target_text=raw, **kwargs)


def target_values(cells: Sequence[str]) -> np.ndarray:
    """A CSV's target column as values: integers when every cell is one, else numbers when every
    cell is one, else the texts themselves. The classes' names are the cells as written
    (:func:`~fcnn_opt.training.data.class_labels`).

        >>> target_values(["0", "2", "1"]), target_values(["0.5", "1"]), target_values(["1", "a"])
        (array([0, 2, 1]), array([0.5, 1. ]), array(['1', 'a'], dtype='<U1'))
    """
    cells = [c.strip() for c in cells]
    try:
        return np.array([int(c) for c in cells], dtype=np.int64)
    except (ValueError, OverflowError):
        pass
    try:
        return np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        return np.array(cells)


def _numbers(path: Path, column: str, cells: list[str]) -> np.ndarray:
    values = np.empty(len(cells))
    missing = 0
    for i, cell in enumerate(cells):
        cell = cell.strip()
        if not cell or cell.lower() in ("nan", "na", "null"):
            missing += 1
            values[i] = np.nan
            continue
        try:
            values[i] = float(cell)
        except ValueError:
            raise DataError(f"{path}: feature column {column!r} is not numeric (row {i + 2}: {cell!r}); "
                            "encode it as numbers first (no silent one-hot).") from None
    if missing:
        raise DataError(f"{path}: feature column {column!r} has missing values in {missing} rows.")
    return values


def load_sklearn(name: str, **kwargs) -> Dataset:
    """One of the datasets that ship inside scikit-learn (no download): :data:`SKLEARN_DATASETS`."""
    if name not in SKLEARN_DATASETS:
        raise DataError(f"Unknown scikit-learn dataset {name!r}. Valid: {', '.join(SKLEARN_DATASETS)}.")
    try:
        import sklearn.datasets
    except ImportError:
        raise DataError(f"[dataset] sklearn = {name!r} needs scikit-learn: pip install scikit-learn.") \
            from None
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    kwargs.setdefault("name", name)
    kwargs.setdefault("task", "regress" if name == "diabetes" else "classify")
    y = bunch.target
    if getattr(bunch, "target_names", None) is not None and name != "diabetes":
        y = np.asarray(bunch.target_names)[bunch.target]
    return from_arrays(bunch.data, y, feature_names=[str(f) for f in bunch.feature_names], **kwargs)


def file_digest(path: str | Path) -> str:
    """SHA-256 of a data file's bytes: a study stores it, and refuses a file that changed."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fold_scaling(weights, input_scaling=None, target_scaling=None):
    """Weights that take raw inputs and give raw outputs: the input standardisation folded into
    the first layer (``W0 / std``, ``b0 - (mean / std) @ W0``), a regression target's into the
    last (``W * t_std``, ``b * t_std + t_mean``). Exact up to float rounding."""
    weights = [(np.asarray(W, np.float64), np.asarray(b, np.float64)) for W, b in weights]
    if input_scaling is not None:
        mean, std = (np.asarray(v, np.float64) for v in input_scaling)
        W, b = weights[0]
        weights[0] = (W / std[:, None], b - (mean / std) @ W)
    if target_scaling is not None:
        t_mean, t_std = target_scaling
        W, b = weights[-1]
        weights[-1] = (W * t_std, b * t_std + t_mean)
    return [(W.astype(np.float32), b.astype(np.float32)) for W, b in weights]


def scaling_attr(data: Dataset) -> dict | None:
    """A dataset's scaling as a JSON-safe trial attribute (None for the built-in datasets)."""
    if data.input_scaling is None:
        return None
    mean, std = data.input_scaling
    attr = {"input_mean": [float(v) for v in mean], "input_std": [float(v) for v in std]}
    if data.target_scaling is not None:
        attr["target_mean"], attr["target_std"] = (float(v) for v in data.target_scaling)
    return attr


def scaling_from_attr(attr: dict | None) -> tuple:
    """``(input_scaling, target_scaling)`` from :func:`scaling_attr`'s dict (None, None without)."""
    if not attr:
        return None, None
    target = (attr["target_mean"], attr["target_std"]) if "target_mean" in attr else None
    return (np.asarray(attr["input_mean"]), np.asarray(attr["input_std"])), target


def important_plane(data: Dataset, predict, seed: int = 0) -> tuple[int, int]:
    """The two features whose shuffling hurts ``predict`` most on the validation split
    (permutation importance, one shuffle each): the plane a picture of wide data is drawn over."""
    if data.n_features <= 2:
        return (0, 1)
    X, y = data.X_val, data.y_val
    base = loss(data.task, predict(X), y)
    rng = np.random.default_rng(seed)
    harm = []
    for j in range(data.n_features):
        shuffled = X.copy()
        shuffled[:, j] = rng.permutation(shuffled[:, j])
        with np.errstate(all="ignore"):
            harm.append(loss(data.task, predict(shuffled), y) - base)
    first, second = np.argsort(np.nan_to_num(harm, nan=-np.inf))[::-1][:2]
    return int(first), int(second)


def drawn_over_important_plane(data: Dataset, predict) -> Dataset:
    """``data`` with its pictures' plane set, once, to the two most important features for
    this network (unchanged for two or fewer features, or when the plane is already fixed:
    chosen by the user, or set by an earlier call for the same drawing)."""
    import dataclasses

    if data.n_features <= 2 or data.plane_fixed:
        return data
    return dataclasses.replace(data, plane=important_plane(data, predict), plane_fixed=True)


def is_table(args: dict) -> bool:
    """Whether ``[dataset]`` arguments name the user's own data rather than a built-in dataset."""
    return "path" in args or "sklearn" in args


def build(args: dict, allow_large: bool = True) -> Dataset:
    """The dataset ``[dataset]`` arguments describe: a built-in one, a file or a scikit-learn one.

    ``allow_large=False`` refuses a table above the row and column limits; a study's sizes are
    checked once, before it starts (:mod:`fcnn_opt.search.sizes`), so by default nothing is."""
    args = dataset_args(args)
    if not is_table(args):
        return make_dataset(**args)
    key = _read_key(args)
    if key not in _READ:
        common = {k: args[k] for k in ("task", "val_fraction", "test_fraction", "seed", "scaling") if k in args}
        common["allow_large"] = True  # the limits are checked below, on what was read
        if "sklearn" in args:
            data = load_sklearn(args["sklearn"], **common)
        else:
            data = read_table(args["path"], target=args.get("target"), features=args.get("features"), **common)
        _READ.clear()  # one table kept: a run reads its own data, once
        _READ[key] = data
    data = _READ[key]
    check_size(data.n_rows, data.n_features, data.name, allow_large)
    return data


STUDY_ONLY_KEYS = ("folds",)  # [dataset] keys that say how a study uses the data, not which data


def dataset_args(args: dict) -> dict:
    """``[dataset]`` without the keys that say how a study uses the rows (``folds``): the
    arguments that build the data."""
    return {k: v for k, v in args.items() if k not in STUDY_ONLY_KEYS}


# The last table read, by its arguments and its file's size and time: checking a study file,
# sizing the study and training all ask for the same table, which is read (and for a CSV
# parsed) once. A Dataset is not changed by anyone who uses it.
_READ: dict[tuple, Dataset] = {}


def _read_key(args: dict) -> tuple:
    import json

    path = Path(args["path"]) if "path" in args else None
    stat = path.stat() if path is not None and path.is_file() else None
    return json.dumps(args, sort_keys=True, default=str), None if stat is None else (stat.st_size, stat.st_mtime_ns)


__all__ = ["DataError", "SKLEARN_DATASETS", "build", "check_size", "dataset_args", "file_digest", "fold_scaling",
           "from_arrays", "from_frame", "is_table", "load_sklearn", "read_table",
           "scaling_attr", "scaling_from_attr", "target_values"]
