"""`train(dataset, config)`: one training run on any backend, with per-epoch metrics.

    >>> from fcnn_opt import TrainConfig, make_dataset, train
    >>> result = train(make_dataset("circles"), TrainConfig(dims=(8,), epochs=5))
    >>> len(result.val_loss)
    5
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fcnn_opt.training.backends import Model, Weights, get_backend
from fcnn_opt.training.backends._base import (
    TrainState,
    accuracy,
    epoch_batches,
    init_weights,
    layer_sizes,
    loss,
)
from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import Dataset

OnEpoch = Callable[[int, dict], "bool | None"]


@dataclass(eq=False)
class TrainResult:
    """Per-epoch histories and the fitted model of one run.

    ``train_loss`` is the mean mini-batch loss over the epoch's samples; ``val_loss`` and
    ``val_accuracy`` (None for regression) are measured on the validation split after
    each epoch; ``stopped_early`` is True when ``on_epoch`` stopped the run. A result of
    seed repeats (:mod:`fcnn_opt.training.repeats`) holds the mean histories and each run
    in ``repeats``; otherwise ``repeats`` is empty.
    """

    config: TrainConfig
    dataset: Dataset
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] | None = None
    epoch_seconds: list[float] = field(default_factory=list)
    stopped_early: bool = False
    model: Model | None = field(default=None, repr=False)
    repeats: list[TrainResult] = field(default_factory=list, repr=False)
    # epoch -> the network's weights after it (train(..., snapshots=N)): the boundary as it learns
    snapshots: dict[int, Weights] = field(default_factory=dict, repr=False)
    # train(..., keep_state=True): where the run ended, to continue it (see TrainState)
    state: TrainState | None = field(default=None, repr=False)
    # cross-validation (fcnn_opt.training.folds): each row's prediction by the fold that validated it
    out_of_fold: np.ndarray | None = field(default=None, repr=False)

    @property
    def epochs_run(self) -> int:
        """The epochs trained (fewer than configured when pruned or diverged)."""
        return len(self.val_loss)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities (classification) or values (regression) at points ``X``."""
        return self.model.predict(np.asarray(X, dtype=np.float32))

    def weights(self) -> Weights:
        """The final network's ``[(W, b), ...]`` per layer, as NumPy arrays."""
        return self.model.weights()

    def description(self, keys=None) -> str:
        """The legend string of the network's settings: see :meth:`TrainConfig.description`."""
        return self.config.description(keys, n_outputs=self.dataset.n_outputs, n_inputs=self.dataset.n_features)


def snapshot_epochs(epochs: int, count: int) -> set[int]:
    """``count`` epochs spread evenly over ``1..epochs``, the first and the last included."""
    if count <= 0:
        return set()
    if count == 1:
        return {epochs}
    return {int(round(1 + i * (epochs - 1) / (count - 1))) for i in range(count)}


HISTORIES = ("train_loss", "val_loss", "val_accuracy", "epoch_seconds")


def train(dataset: Dataset, config: TrainConfig, on_epoch: OnEpoch | None = None,
          snapshots: int = 0, resume: TrainState | None = None, keep_state: bool | int = False) -> TrainResult:
    """Train ``config``'s network on ``dataset``.

    Args:
        dataset: from :func:`fcnn_opt.make_dataset`.
        config: a :class:`TrainConfig`.
        on_epoch: called as ``on_epoch(epoch, metrics)`` after every epoch (epochs count
            from 1; ``metrics`` has ``train_loss``, ``val_loss``, ``val_accuracy``,
            ``seconds``). Returning True stops training.
        snapshots: keep the network's weights after this many epochs, spread over the run
            (:func:`snapshot_epochs`), in ``result.snapshots``; 0 keeps none.
        resume: continue this state of a run of the same network and optimiser (from
            ``keep_state``) up to ``config.epochs``: the result's histories start with the
            state's, and ``on_epoch`` is called for the new epochs only. The histories then
            equal those of one uninterrupted run, whose learning rate was constant up to the
            state's epoch (NumPy backend).
        keep_state: keep where the run ended in ``result.state``, to resume it later; an
            epoch number keeps the state after that epoch instead (if the run gets there), e.g.
            the last one before ``decay_epochs`` start, to continue with a longer run.

    Raises:
        ValueError: settings the chosen library cannot honour, before any training.
        ImportError: the chosen library is not installed.
    """
    backend = get_backend(config.lib)
    backend.check(config)
    result = TrainResult(config=config, dataset=dataset)
    if dataset.task != "regression":
        result.val_accuracy = []
    n_train = len(dataset.X_train)
    weights = init_weights(layer_sizes(config, dataset), config.seed)
    extra = {}
    if keep_state is not False and not backend.resumable:
        raise ValueError(f"lib={config.lib!r} cannot keep a run's state to continue it: use lib='numpy'.")
    if resume is not None:
        _check_resume(backend, config, resume, weights)
        for name in HISTORIES:
            if getattr(result, name) is not None:
                getattr(result, name).extend(resume.histories.get(name) or [])
        extra = {"start": resume}
    clock = [time.perf_counter()]
    wanted = snapshot_epochs(config.epochs, snapshots)
    keep_at = None if isinstance(keep_state, bool) else int(keep_state)

    def batches(epoch: int) -> list[np.ndarray]:
        return epoch_batches(n_train, config.batch_size, config.seed, epoch)

    def epoch_end(model: Model, train_loss: float) -> bool:
        out = model.predict(dataset.X_val)
        val_loss = loss(dataset.task, out, dataset.y_val)
        metrics = {"train_loss": float(train_loss), "val_loss": val_loss,
                   "val_accuracy": accuracy(dataset.task, out, dataset.y_val)}
        metrics["seconds"] = time.perf_counter() - clock[0]
        result.train_loss.append(metrics["train_loss"])
        result.val_loss.append(val_loss)
        result.epoch_seconds.append(metrics["seconds"])
        if result.val_accuracy is not None:
            result.val_accuracy.append(metrics["val_accuracy"])
        if len(result.val_loss) in wanted:
            result.snapshots[len(result.val_loss)] = model.weights()
        if len(result.val_loss) == keep_at:
            result.state = _state_of(model, result)
        if not np.isfinite(val_loss) or not np.isfinite(train_loss):
            result.stopped_early = True  # diverged: no point going on
            return True
        stop = on_epoch is not None and bool(on_epoch(len(result.val_loss), metrics))
        result.stopped_early = stop
        clock[0] = time.perf_counter()  # the caller's own time is not the epoch's
        return stop

    result.model = backend.fit(dataset, config, weights, batches, epoch_end, **extra)
    if keep_state is True:
        result.state = _state_of(result.model, result)
    return result


def _state_of(model: Model, result: TrainResult) -> TrainState:
    moments, steps = model.moments()
    return TrainState(epoch=result.epochs_run, weights=model.weights(), moments=moments, steps=steps,
                      histories={name: list(getattr(result, name) or []) for name in HISTORIES})


def _check_resume(backend, config: TrainConfig, state: TrainState, weights) -> None:
    if not backend.resumable:
        raise ValueError(f"lib={config.lib!r} cannot continue a run from its state: use lib='numpy'.")
    if [W.shape for W, _ in state.weights] != [W.shape for W, _ in weights]:
        raise ValueError("The state to continue from is another network's: its layer sizes differ.")
    if not 0 <= state.epoch < config.epochs:
        raise ValueError(f"The state to continue from is at epoch {state.epoch}; "
                         f"config.epochs ({config.epochs}) must be beyond it.")
    if state.epoch > config.epochs - config.decay_epochs:
        raise ValueError(f"The state at epoch {state.epoch} is inside the decay of the run asked for "
                         f"(its last {config.decay_epochs} epochs): continue from an earlier state.")
