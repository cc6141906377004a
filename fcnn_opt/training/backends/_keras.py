"""The Keras backend: a ``keras.Sequential`` of Dense layers trained by one ``model.fit`` call.

Keras 3 runs here on TensorFlow. The layers start from the shared initial weights, a
``keras.utils.PyDataset`` serves each epoch's mini-batches in the shared order, and a
callback hands every epoch to ``epoch_end``. Keras' own optimisers are used, so two of them
follow Keras' conventions rather than PyTorch's (see :func:`make_optimizer`). Compiled
networks are reused by later runs of the same shape (see :class:`KerasBackend`), so a long
study neither retraces every run nor grows in memory.
"""

from __future__ import annotations

import os
import threading

# Set before TensorFlow is first imported (see _tf.py for why both are needed to keep quiet).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

from fcnn_opt.training.backends._base import (
    ADAGRAD_EPS,
    ADAM_BETAS,
    ADAM_EPS,
    RMSPROP_EPS,
    RMSPROP_RHO,
    Backend,
    Model,
    Weights,
)
from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import BINARY, MULTICLASS, Dataset

if keras.backend.backend() != "tensorflow":
    raise RuntimeError(
        f"lib='keras' needs Keras on the TensorFlow backend, but Keras was already loaded with "
        f"backend {keras.backend.backend()!r}. Keras fixes its backend when it is first imported: "
        f"set KERAS_BACKEND=tensorflow (or leave it unset) before anything imports keras."
    )


def _one_replica(cls: type) -> type:
    """``cls`` without the gradient all-reduce when one replica trains, as here.

    Keras' TensorFlow optimisers pass the gradients through
    ``ReplicaContext.all_reduce`` inside the traced step. With one replica that is an
    identity, but it is built with ``tf.custom_gradient``, which in a graph registers its
    gradient function in TensorFlow's global gradient registry and never removes it; the
    entry holds the whole traced train step, so no compiled model could ever be freed
    (about 1.2 MB per model; keras-team/keras#17458). Skipping it leaves the arithmetic as it
    was: the updates read the same gradient tensors.
    """

    class OneReplica(cls):
        def _all_reduce_sum_gradients(self, grads_and_vars):
            context = tf.distribute.get_replica_context()
            if context is None or context.num_replicas_in_sync == 1:
                return list(grads_and_vars)
            return super()._all_reduce_sum_gradients(grads_and_vars)

    OneReplica.__name__ = OneReplica.__qualname__ = cls.__name__
    return OneReplica


_OPTIMIZERS = {name: _one_replica(cls) for name, cls in [
    ("sgd", keras.optimizers.SGD), ("adam", keras.optimizers.Adam),
    ("rmsprop", keras.optimizers.RMSprop), ("adagrad", keras.optimizers.Adagrad)]}


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
    cls = _OPTIMIZERS[name]
    if name == "sgd":
        return cls(learning_rate=lr)
    if name == "adam":
        return cls(learning_rate=lr, beta_1=ADAM_BETAS[0], beta_2=ADAM_BETAS[1], epsilon=ADAM_EPS)
    if name == "rmsprop":
        return cls(learning_rate=lr, rho=RMSPROP_RHO, epsilon=RMSPROP_EPS ** 2)
    return cls(learning_rate=lr, initial_accumulator_value=0.0, epsilon=ADAGRAD_EPS ** 2)


def _losses(task: str) -> tuple[keras.losses.Loss, keras.metrics.Metric]:
    """The training loss (on logits) and the same loss as a metric named ``data_loss``."""
    if task == BINARY:
        return (keras.losses.BinaryCrossentropy(from_logits=True),
                keras.metrics.BinaryCrossentropy(name="data_loss", from_logits=True))
    if task == MULTICLASS:
        return (keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                keras.metrics.SparseCategoricalCrossentropy(name="data_loss", from_logits=True))
    return keras.losses.MeanSquaredError(), keras.metrics.MeanSquaredError(name="data_loss")


MAX_CACHED_MODELS = 8  # compiled networks kept for reuse; see KerasBackend


class _Compiled:
    """A compiled ``keras.Sequential`` (last layer: logits or values) and its optimiser.

    Everything a traced train step bakes in is fixed here: the layer widths, the activation,
    the loss, the optimiser and its constants, the L2 factor. What changes between runs is
    held in variables and set by :meth:`start`: the weights, the optimiser's state and its
    learning rate. So one compiled network serves every run with the same :func:`_key`, and
    its ``train_function`` is traced once.
    """

    def __init__(self, weights: Weights, config: TrainConfig, task: str):
        regularizer = keras.regularizers.L2(config.l2 / 2) if config.l2 else None  # grad l2 * W
        layers = [keras.Input(shape=(weights[0][0].shape[0],))]
        for i, (W, _) in enumerate(weights):
            hidden = i < len(weights) - 1
            layers.append(keras.layers.Dense(W.shape[1], activation=config.activation if hidden else None,
                                             kernel_regularizer=regularizer))
        self.model = keras.Sequential(layers)
        loss, metric = _losses(task)
        self.model.compile(optimizer=make_optimizer(config.optimizer, config.lr), loss=loss,
                           metrics=[metric], jit_compile=False)
        # Creating the optimiser's slots now, not inside the first traced step, keeps fit from
        # leaving their initialisation graphs behind (about 2.4 MB each; see docs/backends.md).
        self.model.optimizer.build(self.model.trainable_variables)
        # The optimiser's state before any step: iterations 0, zero slots (Adagrad's too).
        self.optimizer_start = [np.array(v.numpy()) for v in self.model.optimizer.variables]

    def start(self, weights: Weights, lr: float) -> None:
        """Load the initial weights and a fresh optimiser state with learning rate ``lr``."""
        self.model.set_weights([array for pair in weights for array in pair])
        optimizer = self.model.optimizer
        for variable, value in zip(optimizer.variables, self.optimizer_start, strict=True):
            variable.assign(value)
        optimizer.learning_rate = lr  # a variable: the traced step reads it, nothing retraces


def _key(weights: Weights, config: TrainConfig, task: str) -> tuple:
    """What a compiled network's traced step depends on (the batch size does not retrace)."""
    sizes = (weights[0][0].shape[0], *(W.shape[1] for W, _ in weights))
    return sizes, config.activation, config.optimizer, config.l2, task


class KerasNet(Model):
    """One run's network: the shared compiled model while training, its own weights after.

    During ``fit`` it predicts with the compiled model's live weights. :meth:`freeze` then
    keeps a copy of the final weights, and later predictions run the same model statelessly
    on that copy (``stateless_call``), so a later run that reuses the compiled model does
    not change what this one predicts.
    """

    def __init__(self, compiled: _Compiled, task: str):
        self.model = compiled.model
        self.task = task
        self._final: list[np.ndarray] | None = None

    def freeze(self) -> None:
        """Keep a copy of the final weights, which later predictions use (see the class docstring)."""
        self._final = [np.array(v.numpy()) for v in self.model.trainable_variables]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs for ``X``, as :meth:`Model.predict` defines them."""
        X = np.asarray(X, dtype=np.float32)
        if self._final is None:
            z = self.model(X, training=False)
        else:
            z, _ = self.model.stateless_call(self._final, [], X, training=False)
        if self.task == BINARY:
            return keras.ops.convert_to_numpy(keras.ops.sigmoid(z[:, 0]))
        if self.task == MULTICLASS:
            return keras.ops.convert_to_numpy(keras.ops.softmax(z, axis=1))
        return keras.ops.convert_to_numpy(z[:, 0])

    def weights(self) -> Weights:
        """The final weights (after :meth:`freeze`), else the compiled model's live ones, as copies."""
        arrays = self._final if self._final is not None else self.model.get_weights()
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

    Compiled networks are kept, up to :data:`MAX_CACHED_MODELS`, and a run whose network has
    the same widths, activation, optimiser, L2 factor and task reuses one: its weights, its
    optimiser's state and learning rate are reset, and ``fit`` runs the train step already
    traced (the batch size is not part of it). That saves the build, compile and trace of
    every run after the first, and the memory each trace leaves behind. When a new network
    would exceed the limit, the cache is emptied and ``keras.backend.clear_session()`` resets
    Keras' global state. Runs take a lock, so threads train one at a time; a run started
    from inside another run's ``epoch_end`` gets a network of its own, outside the cache.
    """

    name = "keras"
    package = "keras and tensorflow-cpu"

    def __init__(self):
        self._compiled: dict[tuple, _Compiled] = {}
        self._lock = threading.RLock()  # runs share compiled models: one fit at a time
        self._running = 0  # fits in progress in the thread holding the lock (nested runs)

    def fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end) -> Model:
        """Train one network on the shared compiled model of its shape (see :meth:`Backend.fit`);
        runs are serialised by a lock, since they share the compiled models."""
        with self._lock:
            if self._running:
                compiled = _Compiled(weights, config, data.task)
            else:
                compiled = self._compiled_for(weights, config, data.task)
            compiled.start(weights, config.lr)
            net = KerasNet(compiled, data.task)
            y = data.y_train if data.task == MULTICLASS else data.y_train.reshape(-1, 1)
            dataset = _EpochBatches(data.X_train, y, batches)
            self._running += 1
            try:
                net.model.fit(dataset, epochs=config.epochs, shuffle=False, verbose=0,
                              callbacks=[_Epochs(net, dataset, epoch_end)])
            finally:
                self._running -= 1
                net.freeze()
        return net

    def _compiled_for(self, weights: Weights, config: TrainConfig, task: str) -> _Compiled:
        key = _key(weights, config, task)
        if key not in self._compiled:
            if len(self._compiled) >= MAX_CACHED_MODELS:
                self.clear()
            self._compiled[key] = _Compiled(weights, config, task)
        return self._compiled[key]

    def clear(self) -> None:
        """Forget the compiled networks and reset Keras' global state."""
        with self._lock:
            self._compiled.clear()
            keras.backend.clear_session()
