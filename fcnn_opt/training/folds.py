"""Cross-validation: one set of hyperparameters trained on K folds of the rows a search may see.

One validation split of a few hundred rows makes a noisy judge: a search that runs many
trials ends up choosing the settings that were luckiest on those rows. With ``K`` folds,
the rows outside the test split (training and validation together) are cut into K disjoint
parts, stratified by class for classification; network ``k`` trains on every part but
``k`` and is validated on part ``k``, so every row is validated exactly once. The K
networks (K x R with seed repeats: fold ``k``, repeat ``r`` trains with seed ``seed + r``)
train in lockstep, one thread each (with the population engine, one population per fold and
seed, whose members are several trials' networks: :func:`train_folds_together`), and report as one: after each epoch the mean of their
metrics goes to ``on_epoch``, so the pruner judges the settings on every row; when it says
stop, every network stops.

    >>> from fcnn_opt import TrainConfig, make_dataset
    >>> from fcnn_opt.training.folds import make_folds, train_folds
    >>> data = make_dataset("moons", n_points=300)
    >>> [len(fold.X_val) for fold in make_folds(data, 3)]
    [100, 100, 100]
    >>> result = train_folds(data, 3, TrainConfig(dims=(8,), epochs=5))
    >>> len(result.repeats), len(result.val_loss), result.out_of_fold.shape
    (3, 5, (300, 1))

The features keep the dataset's scaling (fitted on its training split), so every fold's
network reads the same inputs as the dataset's own; a trial's model is fold 0's network.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import numpy as np

from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import Dataset
from fcnn_opt.training.loop import OnEpoch, TrainResult, train
from fcnn_opt.training.repeats import combine, diverged, mean_metrics, repeat_configs

MAX_FOLDS = 20


class FoldError(ValueError):
    """Folds that cannot be made from these rows; the message says why."""


def pooled_rows(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """The rows a search may see, validation rows first: ``(X, y)``. Out-of-fold predictions
    are kept in this order."""
    return np.concatenate([dataset.X_val, dataset.X_train]), np.concatenate([dataset.y_val, dataset.y_train])


def fold_of_rows(y: np.ndarray, k: int, seed: int, stratify: bool) -> np.ndarray:
    """Each row's fold, ``0..k-1``: seeded, as even as possible, and for classification as
    even within each class (rows of a class are dealt to the folds in turn, in a seeded order,
    starting where the previous class left off)."""
    n = len(y)
    rng = np.random.default_rng([seed, 3])
    fold = np.empty(n, dtype=np.int64)
    if not stratify:
        fold[rng.permutation(n)] = np.arange(n) % k
        return fold
    start = 0
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        rows = rows[rng.permutation(len(rows))]
        fold[rows] = (start + np.arange(len(rows))) % k
        start = (start + len(rows)) % k
    return fold


def make_folds(dataset: Dataset, k: int) -> list[Dataset]:
    """K datasets over the rows of ``dataset``'s training and validation splits: dataset ``i``
    validates on fold ``i`` and trains on the others, the folds dealt by :func:`fold_of_rows`
    with the dataset's seed. The test split (if any) is left as it is."""
    return _folds_and_rows(dataset, k)[0]


def fold_rows(dataset: Dataset, k: int) -> list[np.ndarray]:
    """For each fold, the positions of its validation rows in :func:`pooled_rows`' order."""
    return _folds_and_rows(dataset, k)[1]


def _folds_and_rows(dataset: Dataset, k: int) -> tuple[list[Dataset], list[np.ndarray]]:
    if isinstance(k, bool) or not isinstance(k, int) or not 2 <= k <= MAX_FOLDS:
        raise FoldError(f"folds must be a whole number from 2 to {MAX_FOLDS}, got {k!r}.")
    X, y = pooled_rows(dataset)
    if len(X) < 2 * k:
        raise FoldError(f"{dataset.name}: {len(X)} rows cannot make {k} folds of at least 2 rows each.")
    classify = dataset.task != "regression"
    if classify:
        smallest = min(int((y == label).sum()) for label in np.unique(y))
        if smallest < k:
            raise FoldError(f"{dataset.name}: a class has {smallest} rows, fewer than the {k} folds; "
                            f"use at most {max(smallest, 2)} folds.")
    fold = fold_of_rows(y, k, dataset.seed, stratify=classify)
    folds = [dataclasses.replace(dataset, X_train=X[fold != i], y_train=y[fold != i], X_val=X[fold == i],
                                 y_val=y[fold == i]) for i in range(k)]
    return folds, [np.flatnonzero(fold == i) for i in range(k)]


class _Abandoned(Exception):
    """Another network of the lockstep failed, or the caller was interrupted: stop quietly."""


class Lockstep:
    """``on_epoch`` for N runs trained at the same time, one per thread: each run waits after
    an epoch until every run still training has reached it; the last to arrive passes their
    mean to ``on_epoch`` and the answer (stop or go on) is every run's. A run that diverged
    stops them all, as with seed repeats."""

    def __init__(self, n: int, on_epoch: OnEpoch | None):
        self.on_epoch = on_epoch
        self._active = n
        self._arrived: dict[int, list[dict]] = {}
        self._decided: dict[int, bool] = {}
        self._abandoned = False
        self._cond = threading.Condition()
        self.stopped_at: int | None = None

    def member(self, epoch: int, metrics: dict) -> bool:
        """One run's ``metrics`` for ``epoch``: waits until every run still training has reported
        the epoch; returns whether to stop (every run gets the same answer)."""
        with self._cond:
            if self.stopped_at is not None:
                return True
            self._arrived.setdefault(epoch, []).append(metrics)
            self._decide(epoch)
            while epoch not in self._decided and not self._abandoned:
                self._cond.wait()
            if self._abandoned:
                raise _Abandoned()
            return self._decided[epoch]

    def finished(self) -> None:
        """A run ended (its epochs were done): the others no longer wait for it."""
        with self._cond:
            self._active -= 1
            for epoch in sorted(self._arrived):
                self._decide(epoch)

    def abandon(self) -> None:
        """Stop waiting: every run waiting, or reporting later, ends quietly (another failed, or the
        caller was interrupted)."""
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()

    def _decide(self, epoch: int) -> None:
        runs = self._arrived.get(epoch, [])
        if epoch in self._decided or len(runs) < self._active or not runs:
            return
        del self._arrived[epoch]
        stop = any(diverged(m) for m in runs) or bool(self.on_epoch is not None and self.on_epoch(epoch, mean_metrics(runs)))
        self._decided[epoch] = stop
        if stop:
            self.stopped_at = epoch
        self._cond.notify_all()


def train_folds(dataset: Dataset, k: int, config: TrainConfig, repeats: int = 1,
                on_epoch: OnEpoch | None = None, *, snapshots: int = 0) -> TrainResult:
    """Train ``config`` on each of ``dataset``'s ``k`` folds (``repeats`` seeds each) in
    lockstep and combine them.

    Returns :func:`fcnn_opt.training.repeats.combine`'s result (mean histories, fold 0's first
    network as the model, every run in ``.repeats``, fold by fold) with ``out_of_fold``: each
    pooled row's prediction by the networks that did not train on it (the mean over seeds),
    in :func:`pooled_rows`' order.
    """
    folds, rows = _folds_and_rows(dataset, k)
    members = [(data, c) for data in folds for c in repeat_configs(config, repeats)]
    step = Lockstep(len(members), on_epoch)
    results: list = [None] * len(members)

    def work(i: int) -> None:
        data, member_config = members[i]
        results[i] = train(data, member_config, on_epoch=lambda epoch, m: step.member(epoch, m),
                           snapshots=snapshots if i == 0 else 0)
        step.finished()

    _side_by_side(len(members), work, [step])
    result = combine(results, step.stopped_at)
    result.out_of_fold = out_of_fold(folds, rows, results, repeats)
    return result


def train_folds_together(dataset: Dataset, k: int, configs: Sequence[TrainConfig], repeats: int = 1,
                         on_epochs: Sequence[OnEpoch | None] | None = None, *, device: str = "cpu",
                         snapshots: int = 0) -> list[TrainResult]:
    """:func:`train_folds` for several configs at once, in the population engine: one
    population per fold and seed (``k x repeats`` of them, side by side, one thread each),
    whose members are the configs. Config ``i``'s networks report their mean to
    ``on_epochs[i]`` and stop together; returns each config's result, as :func:`train_folds`
    returns it."""
    from fcnn_opt.training.backends._torch import cpu_threads
    from fcnn_opt.training.population import train_population

    folds, rows = _folds_and_rows(dataset, k)
    runs = [(f, r) for f in range(k) for r in range(repeats)]  # fold by fold, as train_folds orders them
    steps = [Lockstep(len(runs), on_epoch) for on_epoch in (on_epochs or [None] * len(configs))]
    trained: list = [None] * len(runs)

    def work(j: int) -> None:
        fold, r = runs[j]
        members = [repeat_configs(config, repeats)[r] for config in configs]
        trained[j] = train_population(folds[fold], members, on_epoch=lambda i, epoch, m: steps[i].member(epoch, m),
                                      device=device, snapshots=snapshots if j == 0 else 0,
                                      on_done=lambda i: steps[i].finished())

    with cpu_threads(device):  # once for every thread: each population's own setting then restores it alike
        _side_by_side(len(runs), work, steps)
    results = []
    for i, step in enumerate(steps):
        own = [found[i] for found in trained]
        result = combine(own, step.stopped_at)
        result.out_of_fold = out_of_fold(folds, rows, own, repeats)
        results.append(result)
    return results


def _side_by_side(n: int, work, steps: Sequence[Lockstep]) -> None:
    """Run ``work(0) .. work(n - 1)`` at the same time, ``work(0)`` in the caller's thread
    (where a Ctrl-C or SIGTERM lands). An error in one abandons every lockstep, so nobody
    waits for a run that will not come, and is raised here once all have stopped."""
    errors: list[BaseException] = []
    finished = [False] * n

    def run(j: int) -> None:
        try:
            work(j)
        except _Abandoned:
            return
        except BaseException as exc:  # noqa: B036 - re-raised in the caller's thread below
            errors.append(exc)
            for step in steps:
                step.abandon()
            return
        finished[j] = True

    threads = [threading.Thread(target=run, args=(j,), daemon=True, name=f"fold-{j}") for j in range(1, n)]
    for thread in threads:
        thread.start()
    try:
        run(0)
    finally:
        if errors or not finished[0]:
            for step in steps:
                step.abandon()
        for thread in threads:
            thread.join()
    if errors:
        raise errors[0]


def out_of_fold(folds: Sequence[Dataset], rows: Sequence[np.ndarray], results: Sequence[TrainResult],
                repeats: int) -> np.ndarray:
    """Each pooled row's prediction (class probabilities, or the scaled value) by the networks
    of the fold that validated it, the mean over their seeds: ``(rows, outputs)``."""
    n = sum(len(r) for r in rows)
    predictions = None
    for i, data in enumerate(folds):
        runs = results[i * repeats:(i + 1) * repeats]
        mean = np.mean([np.asarray(run.predict(data.X_val), dtype=np.float64).reshape(len(data.X_val), -1)
                        for run in runs], axis=0)
        if predictions is None:
            predictions = np.full((n, mean.shape[1]), np.nan)
        predictions[rows[i]] = mean
    return predictions


__all__ = ["FoldError", "Lockstep", "MAX_FOLDS", "fold_of_rows", "fold_rows", "make_folds", "out_of_fold",
           "pooled_rows", "train_folds", "train_folds_together"]
