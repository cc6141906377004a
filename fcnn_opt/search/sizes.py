"""Sizes checked before any work starts: counts within stated limits, memory that fits.

A study asking for a billion points or a layer of ten million units would otherwise fail
late: a MemoryError traceback while the dataset is drawn, or every trial failing one after
the other. :func:`check_sizes` looks at the study's largest case (every range at its top,
the population engine's batch of networks, the seed repeats) before a study is created or a
worker joins, and refuses, in one line, what is out of bounds or cannot fit in this
machine's memory. ``allow_large`` (``--allow-large``) lifts the count limits; the memory
check stays, because a study that cannot fit cannot run.

The memory estimate is deliberately simple and errs high: float32 arrays; the dataset three
times over (the arrays, a shuffled copy, the backend's own); per network its parameters
four times (weights, gradients and Adam's two moments) plus the activations of one
mini-batch and of the validation split, forward and backward.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from fcnn_opt.search.space import SpaceError, StudySpec
from fcnn_opt.training.datasets import MULTICLASS, _spec, check_arguments
from fcnn_opt.training.folds import FoldError, make_folds
from fcnn_opt.training.tables import build, dataset_args, is_table

# Counts a study may ask for without allow_large.
LIMITS = {"n_points": 1_000_000, "units": 4096, "epochs": 100_000, "batch_size": 1_000_000,
          "n_trials": 1_000_000}
FLOAT = 4  # bytes
MEMORY_SHARE = 0.8  # of the memory available now


@dataclass(frozen=True)
class SizeEstimate:
    """The memory a study's largest trial needs: its dataset as float32 arrays, and its networks
    (weights, gradients, optimiser moments and activations of every member trained at once)."""

    rows: int
    features: int
    widths: tuple[int, ...]  # the largest network's layer widths, inputs to outputs
    members: int  # networks trained at once
    dataset_bytes: int
    network_bytes: int  # all members together

    @property
    def total(self) -> int:
        """Bytes in all: dataset and networks."""
        return self.dataset_bytes + self.network_bytes


def largest(spec: StudySpec, name: str):
    """The largest value ``[params].name`` can take (fixed, choices or a range's top)."""
    p = spec.params[name]
    if p.choices is not None:
        return max(p.choices)
    return p.high if p.low is not None else p.value


@dataclass(frozen=True)
class DataShape:
    """A dataset's rows, features, outputs, and training and validation rows."""

    rows: int
    features: int
    outputs: int
    train: int
    val: int


def data_shape(spec: StudySpec, allow_large: bool = False) -> DataShape:
    """The shape of ``spec``'s dataset: from the arguments alone for a built-in dataset (so an
    absurd ``n_points`` is refused before a point is drawn), from the loaded table otherwise."""
    if is_table(spec.dataset):
        data = build(spec.dataset, allow_large=allow_large)
        return DataShape(data.n_rows, data.n_features, data.n_outputs, len(data.X_train), len(data.X_val))
    args = dataset_args(spec.dataset)
    rows = args.get("n_points", 2500)
    n_val, n_test = check_arguments(**args)
    kind = _spec(args["name"])
    return DataShape(rows, 2, kind.n_classes if kind.task == MULTICLASS else 1, rows - n_val - n_test, n_val)


def estimate(spec: StudySpec, shape: DataShape, batch_trials: int = 1) -> SizeEstimate:
    """Memory for ``spec``'s largest case on a dataset of ``shape``."""
    rows, features = shape.rows, shape.features
    depth, units = int(largest(spec, "n_layers")), int(largest(spec, "units"))
    widths = (features, *([units] * depth), shape.outputs)
    params = sum(a * b + b for a, b in zip(widths[:-1], widths[1:], strict=True))
    batch = min(int(largest(spec, "batch_size")), shape.train)
    activations = 3 * (batch + shape.val) * sum(widths)
    members = max(1, batch_trials) * spec.repeats * spec.folds
    return SizeEstimate(rows, features, widths, members, dataset_bytes=3 * rows * (features + 1) * FLOAT,
                        network_bytes=members * (4 * params + activations) * FLOAT)


def available_memory() -> int | None:
    """Bytes of memory available now (MemAvailable on Linux), or None when unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_counts(spec: StudySpec, allow_large: bool = False) -> None:
    """Refuse counts above :data:`LIMITS` (before the dataset is even built)."""
    if allow_large:
        return
    asked = {"units": largest(spec, "units"), "epochs": largest(spec, "epochs"),
             "batch_size": largest(spec, "batch_size"), "n_trials": spec.n_trials or 0,
             "n_points": spec.dataset.get("n_points", 0)}
    for name, value in asked.items():
        if value > LIMITS[name]:
            where = "[dataset]" if name == "n_points" else ("[study]" if name == "n_trials" else "[params]")
            raise SpaceError(f"{spec.source}: {where}.{name} = {value:,} is above the limit of "
                             f"{LIMITS[name]:,}; pass --allow-large to go ahead anyway.")


def check_sizes(spec: StudySpec, *, batch_trials: int = 1, allow_large: bool = False) -> SizeEstimate:
    """Refuse, in one line, a study whose counts are out of bounds or whose largest case
    cannot fit in memory; returns the estimate otherwise."""
    check_counts(spec, allow_large)
    try:
        size = estimate(spec, data_shape(spec, allow_large), batch_trials)
    except ValueError as exc:  # a table above the row or column limits
        raise SpaceError(str(exc)) from None
    check_folds(spec)
    free = available_memory()
    if free is not None and size.total > MEMORY_SHARE * free:
        raise SpaceError(
            f"{spec.source}: the largest case needs about {_gb(size.total)} (dataset {size.rows:,} x "
            f"{size.features} {_gb(size.dataset_bytes)}; {size.members} network(s) of widths "
            f"{'-'.join(map(str, size.widths))} {_gb(size.network_bytes)}), and this machine has "
            f"{_gb(free)} available; lower units, n_layers, batch_size, n_points, repeats or --batch-trials.")
    return size


def check_folds(spec: StudySpec) -> None:
    """Refuse folds the data cannot make (a class with fewer rows than folds), before any trial."""
    if spec.folds == 1:
        return
    try:
        make_folds(build(spec.dataset), spec.folds)
    except FoldError as exc:
        raise SpaceError(f"{spec.source}: [dataset].folds: {exc}") from None


def _gb(n: float) -> str:
    if n < 1e9:
        return f"{n / 1e6:,.0f} MB"
    return f"{n / 1e9:,.1f} GB" if math.isfinite(n) else "?"
