"""The contract every backend implements, and what all backends share.

All backends start from the same initial weights (Glorot-uniform kernels, zero biases,
drawn with NumPy from the run's seed) and see the mini-batches in the same order, so two
backends differ only by their own arithmetic. Validation metrics are computed here, in
NumPy, from each backend's predictions, so they mean the same thing everywhere.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fcnn_opt.training.config import OPTIMIZERS, TrainConfig
from fcnn_opt.training.datasets import BINARY, MULTICLASS, Dataset

Weights = list[tuple[np.ndarray, np.ndarray]]  # [(W of shape (fan_in, fan_out), b), ...]

# Optimiser constants shared by every backend (PyTorch's conventions).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
RMSPROP_RHO = 0.9
RMSPROP_EPS = 1e-7
ADAGRAD_EPS = 1e-10
PROB_EPS = 1e-7  # probabilities are clipped to [eps, 1 - eps] inside the log losses


def layer_sizes(config: TrainConfig, data: Dataset) -> list[int]:
    """The widths of ``config``'s network on ``data``, inputs to outputs."""
    return [data.X_train.shape[1], *config.dims, data.n_outputs]


def init_weights(sizes: list[int], seed: int) -> Weights:
    """Glorot-uniform kernels and zero biases, in float32, from ``seed``."""
    rng = np.random.default_rng([seed, 0])
    weights = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        W = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        weights.append((W, np.zeros(fan_out, dtype=np.float32)))
    return weights


def epoch_batches(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """Index arrays of one epoch's mini-batches: a fresh permutation per epoch."""
    order = np.random.default_rng([seed, 1, epoch]).permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


def loss(task: str, output: np.ndarray, y: np.ndarray) -> float:
    """Mean data loss of predictions ``output`` (probabilities or values)."""
    output = np.asarray(output, dtype=np.float64)
    if task == BINARY:
        p = np.clip(output.reshape(-1), PROB_EPS, 1 - PROB_EPS)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if task == MULTICLASS:
        p = np.clip(output[np.arange(len(y)), y], PROB_EPS, 1.0)
        return float(-np.mean(np.log(p)))
    return float(np.mean((output.reshape(-1) - y) ** 2))


def accuracy(task: str, output: np.ndarray, y: np.ndarray) -> float | None:
    """The share of rows whose predicted class is right; None for regression."""
    if task == BINARY:
        return float(np.mean((output.reshape(-1) > 0.5) == (y > 0.5)))
    if task == MULTICLASS:
        return float(np.mean(np.argmax(output, axis=1) == y))
    return None


@dataclass(eq=False)
class TrainState:
    """Where a run stands after ``epoch`` epochs, enough to continue it exactly: the weights,
    the optimiser's buffers (``moments``: Adam's two, one for RMSprop and Adagrad, SGD's unused
    one) and its step count, and the histories so far (``train_loss``, ``val_loss``,
    ``val_accuracy``, ``epoch_seconds``). Mini-batch order depends only on the seed and the
    epoch, so a continued run sees the batches an uninterrupted one would."""

    epoch: int
    weights: Weights
    moments: list[np.ndarray]
    steps: int
    histories: dict[str, list] = field(default_factory=dict)


# Called after every epoch with the model and the epoch's mean train loss; True stops.
EpochEnd = Callable[["Model", float], bool]


class Backend(ABC):
    """One training library behind the common contract.

    A subclass sets ``name``, ``package`` (what to pip-install) and, if it cannot run every
    optimiser, ``optimizers``. ``fit`` trains and calls ``epoch_end`` after every epoch.
    """

    name: str = ""
    package: str = ""
    optimizers: tuple[str, ...] = OPTIMIZERS
    # Whether fit takes ``start`` (a TrainState to continue) and honours ``decay_epochs``.
    resumable: bool = False

    def check(self, config: TrainConfig) -> None:
        """Raise ValueError for settings this library cannot honour (never substitute)."""
        if config.optimizer not in self.optimizers:
            raise ValueError(
                f"lib={self.name!r} does not support optimizer={config.optimizer!r}. "
                f"It supports: {', '.join(self.optimizers)}."
            )
        if config.decay_epochs and not self.resumable:
            raise ValueError(f"lib={self.name!r} does not support decay_epochs (a decaying learning "
                             "rate, and continuing a run from its state): use lib='numpy'.")

    def load(self) -> None:
        """Import now what the first ``fit`` would import (compiled code, say), so that a
        process started ahead of its work loads it while it waits. Importing the backend's
        module already imports its library; by default there is nothing more."""
        return None

    @abstractmethod
    def fit(self, data: Dataset, config: TrainConfig, weights: Weights,
            batches: Callable[[int], list[np.ndarray]], epoch_end: EpochEnd) -> Model:
        """Train from ``weights``; ``batches(epoch)`` gives the epoch's index arrays."""


class Model(ABC):
    """A fitted network: predictions and its weights as NumPy arrays."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities ``(n, k)`` (multi-class), probabilities ``(n,)`` (binary) or values."""

    @abstractmethod
    def weights(self) -> Weights:
        """The network's ``[(W, b), ...]`` per layer, as NumPy arrays (copies)."""
        ...
