"""The Keras backend: a ``keras.Sequential`` of Dense layers trained by one ``model.fit`` call.

Keras 3 runs here on TensorFlow. The layers start from the shared initial weights, a
``keras.utils.PyDataset`` serves each epoch's mini-batches in the shared order, and a
callback hands every epoch to ``epoch_end``. Keras' own optimisers are used, so two of them
follow Keras' conventions rather than PyTorch's (see :func:`make_optimizer`).
"""

from __future__ import annotations

import os

# Set before TensorFlow is first imported (see _tf.py for why both are needed to keep quiet).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np

from ..config import TrainConfig
from ..datasets import BINARY, MULTICLASS, Dataset
from ._base import (
    ADAGRAD_EPS,
    ADAM_BETAS,
    ADAM_EPS,
    RMSPROP_EPS,
    RMSPROP_RHO,
    Backend,
    Model,
    Weights,
)

if keras.backend.backend() != "tensorflow":
    raise RuntimeError(
        f"lib='keras' needs Keras on the TensorFlow backend, but Keras was already loaded with "
        f"backend {keras.backend.backend()!r}. Keras fixes its backend when it is first imported: "
        f"set KERAS_BACKEND=tensorflow (or leave it unset) before anything imports keras."
    )


def make_optimizer(name: str, lr: float) -> keras.optimizers.Optimizer:
    """The named ``keras.optimizers`` optimiser, as close to ``torch.optim`` as Keras allows.

    SGD matches exactly. Adam adds epsilon to ``sqrt(v)`` before the bias correction (the
    paper's "epsilon hat"), which differs from PyTorch only while ``v`` is of the order of
    ``eps**2``. RMSprop and Adagrad add epsilon *inside* the square root,
    ``g / sqrt(acc + eps)``, where PyTorch computes ``g / (sqrt(acc) + eps)``; passing
    ``eps**2`` makes the two denominators agree to within a factor ``sqrt(2)`` for every
    ``acc`` and exactly once ``acc >> eps**2`` (passing ``eps`` itself would damp every step
    whose squared gradient is below ``1e-7``). Adagrad's accumulator starts at 0 as PyTorch's.
    """
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=lr)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1],
                                     epsilon=ADAM_EPS)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(learning_rate=lr, rho=RMSPROP_RHO, epsilon=RMSPROP_EPS ** 2)
    return keras.optimizers.Adagrad(learning_rate=lr, initial_accumulator_value=0.0,
                                    epsilon=ADAGRAD_EPS ** 2)


def _losses(task: str) -> tuple[keras.losses.Loss, keras.metrics.Metric]:
    """The training loss (on logits) and the same loss as a metric named ``data_loss``."""
    if task == BINARY:
        return (keras.losses.BinaryCrossentropy(from_logits=True),
                keras.metrics.BinaryCrossentropy(name="data_loss", from_logits=True))
    if task == MULTICLASS:
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                keras.metrics.SparseCategoricalCrossentropy(name="data_loss", from_logits=True))
    return keras.losses.MeanSquaredError(), keras.metrics.MeanSquaredError(name="data_loss")


class KerasNet(Model):
    """A compiled ``keras.Sequential`` whose last layer outputs logits (or values)."""

    def __init__(self, weights: Weights, config: TrainConfig, task: str):
        regularizer = keras.regularizers.L2(config.l2 / 2) if config.l2 else None  # grad l2 * W
        layers = [keras.Input(shape=(weights[0][0].shape[0],))]
        for i, (W, _) in enumerate(weights):
            hidden = i < len(weights) - 1
            layers.append(keras.layers.Dense(W.shape[1], activation=config.activation if hidden else None,
                                             kernel_regularizer=regularizer))
        self.model = keras.Sequential(layers)
        self.model.set_weights([array for pair in weights for array in pair])
        loss, metric = _losses(task)
        self.model.compile(optimizer=make_optimizer(config.optimizer, config.lr), loss=loss,
                           metrics=[metric], jit_compile=False)
        # Creating the optimiser's slots now, not inside the first traced step, keeps fit from
        # leaving their initialisation graphs behind: about 2.4 MB per run (see docs/backends.md).
        self.model.optimizer.build(self.model.trainable_variables)
        self.task = task

    def predict(self, X: np.ndarray) -> np.ndarray:
        z = self.model(np.asarray(X, dtype=np.float32), training=False)
        if self.task == BINARY:
            return keras.ops.convert_to_numpy(keras.ops.sigmoid(z[:, 0]))
        if self.task == MULTICLASS:
            return keras.ops.convert_to_numpy(keras.ops.softmax(z, axis=1))
        return keras.ops.convert_to_numpy(z[:, 0])

    def weights(self) -> Weights:
        arrays = self.model.get_weights()
        return [(arrays[i].copy(), arrays[i + 1].copy()) for i in range(0, len(arrays), 2)]


class _EpochBatches(keras.utils.PyDataset):
    """Serves the mini-batches of the epoch set by :meth:`start`, in ``batches(epoch)`` order.

    The epoch is set by a callback rather than counted in ``on_epoch_end``, which Keras also
    calls once when ``fit`` starts.
    """

    def __init__(self, X: np.ndarray, y: np.ndarray, batches):
        super().__init__()
        self.X, self.y, self.batches = X, y, batches
        self.start(1)

    def start(self, epoch: int) -> None:
        self.current = self.batches(epoch)

    def __len__(self) -> int:
        return len(self.current)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        idx = self.current[i]
        return self.X[idx], self.y[idx]


class _Epochs(keras.callbacks.Callback):
    """Sets each epoch's batches, reports its data loss to ``epoch_end`` and stops on True."""

    def __init__(self, net: KerasNet, dataset: _EpochBatches, epoch_end):
        super().__init__()
        self.net, self.dataset, self.epoch_end = net, dataset, epoch_end

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.dataset.start(epoch + 1)  # Keras counts epochs from 0

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if self.epoch_end(self.net, float(logs["data_loss"])):
            self.model.stop_training = True


class KerasBackend(Backend):
    """Trains with ``model.fit(..., shuffle=False)`` over a PyDataset of the shared batches.

    The train loss handed to ``epoch_end`` is the data loss only: ``logs["loss"]`` includes
    the L2 penalty, so the compiled loss is also tracked as a metric, ``data_loss``, the
    sample-weighted mean of the batch losses over the epoch, like the other backends'.
    ``keras.backend.clear_session()`` runs at the start of every fit, so Keras' global state
    does not grow over a study's many runs.
    """

    name = "keras"
    package = "keras and tensorflow-cpu"

    def fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end) -> Model:
        keras.backend.clear_session()
        net = KerasNet(weights, config, data.task)
        y = data.y_train if data.task == MULTICLASS else data.y_train.reshape(-1, 1)
        dataset = _EpochBatches(data.X_train, y, batches)
        net.model.fit(dataset, epochs=config.epochs, shuffle=False, verbose=0,
                      callbacks=[_Epochs(net, dataset, epoch_end)])
        return net
