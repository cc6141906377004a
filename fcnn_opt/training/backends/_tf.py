"""The TensorFlow backend: ``tf.GradientTape`` steps in one traced ``tf.function``, PyTorch's rules.

The network is written as explicit ``x @ W + b`` layers holding the shared initial weights,
like the PyTorch backend. The optimisers are written out in TensorFlow ops rather than taken
from ``keras.optimizers``, because Keras' versions follow other conventions (Adam adds
epsilon before the bias correction of ``v``, RMSprop and Adagrad add it inside the square
root, Adagrad starts its accumulator at 0.1); written out, they follow ``torch.optim`` and
the NumPy backend step for step. Weight decay adds ``l2 * W`` to the weight matrices'
gradients only.
"""

from __future__ import annotations

import os

# Both must be set before TensorFlow is first imported. Level 3 hides TensorFlow's C++ logs,
# but not the oneDNN notice, which is printed before logging starts; turning the oneDNN
# custom ops off hides it, and at this size they gain nothing (about 3 ms per epoch either way).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

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

ACTIVATIONS = {"relu": tf.nn.relu, "tanh": tf.tanh, "sigmoid": tf.sigmoid}


def data_loss(task: str, z: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
    """Mean loss from the output layer's pre-activation ``z``."""
    if task == BINARY:
        return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=z[:, 0]))
    if task == MULTICLASS:
        return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=z))
    return tf.reduce_mean(tf.square(z[:, 0] - y))


def output(task: str, z: tf.Tensor) -> tf.Tensor:
    """The network's output from its logits ``z``: probabilities (binary ``(n,)``, multiclass
    ``(n, k)``) or values."""
    if task == BINARY:
        return tf.sigmoid(z[:, 0])
    if task == MULTICLASS:
        return tf.nn.softmax(z, axis=1)
    return z[:, 0]


class TFNet(Model):
    """A fully connected network as a list of ``(W, b)`` ``tf.Variable`` pairs."""

    def __init__(self, weights: Weights, activation: str, task: str):
        self.params = [(tf.Variable(W), tf.Variable(b)) for W, b in weights]
        self.act = ACTIVATIONS[activation]
        self.task = task

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """The last layer's pre-activation for the rows ``x``."""
        for W, b in self.params[:-1]:
            x = self.act(tf.matmul(x, W) + b)
        W, b = self.params[-1]
        return tf.matmul(x, W) + b

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs for ``X``, as :meth:`Model.predict` defines them."""
        z = self.logits(tf.constant(np.asarray(X, dtype=np.float32)))
        return output(self.task, z).numpy()

    def weights(self) -> Weights:
        """The network's ``[(W, b), ...]`` per layer, as NumPy copies."""
        return [(W.numpy().copy(), b.numpy().copy()) for W, b in self.params]


class _Optimizer:
    """SGD, Adam, RMSprop and Adagrad in TensorFlow ops, with ``torch.optim``'s update rules."""

    def __init__(self, name: str, lr: float, l2: float, net: TFNet):
        self.name, self.lr, self.l2 = name, lr, l2
        self.variables = [v for pair in net.params for v in pair]
        self.decay = [True, False] * len(net.params)  # weight matrices, not biases
        n_slots = {"sgd": 0, "adam": 2}.get(name, 1)
        self.slots = [[tf.Variable(tf.zeros_like(v)) for v in self.variables] for _ in range(n_slots)]
        self.step_count = tf.Variable(0.0, dtype=tf.float64)

    def apply(self, grads: list[tf.Tensor]) -> None:
        if self.l2:
            grads = [g + self.l2 * v if d else g
                     for g, v, d in zip(grads, self.variables, self.decay, strict=True)]
        if self.name == "adam":
            self._adam(grads)
            return
        for i, (g, p) in enumerate(zip(grads, self.variables, strict=True)):
            if self.name == "sgd":
                p.assign_sub(self.lr * g)
                continue
            acc = self.slots[0][i]
            if self.name == "rmsprop":
                acc.assign(RMSPROP_RHO * acc + (1 - RMSPROP_RHO) * g * g)
                eps = RMSPROP_EPS
            else:  # adagrad
                acc.assign_add(g * g)
                eps = ADAGRAD_EPS
            p.assign_sub(self.lr * g / (tf.sqrt(acc) + eps))

    def _adam(self, grads: list[tf.Tensor]) -> None:
        b1, b2 = ADAM_BETAS
        t = self.step_count.assign_add(1.0)
        # the bias corrections in float64, as PyTorch computes them in Python floats
        step_size = tf.cast(self.lr / (1 - b1 ** t), tf.float32)
        correction2 = tf.cast(tf.sqrt(1 - b2 ** t), tf.float32)
        for g, p, m, v in zip(grads, self.variables, *self.slots, strict=True):
            m.assign(b1 * m + (1 - b1) * g)
            v.assign(b2 * v + (1 - b2) * g * g)
            p.assign_sub(step_size * m / (tf.sqrt(v) / correction2 + ADAM_EPS))


def _epoch_function(net: TFNet, optimizer: _Optimizer, task: str, X: tf.Tensor, y: tf.Tensor):
    """A ``tf.function`` that trains one epoch in a graph loop and returns the summed loss.

    It takes the epoch's sample order and the batch boundaries in it (batch ``i`` is
    ``order[bounds[i]:bounds[i + 1]]``), so it is traced once per fit and never again.
    """

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)] * 2)
    def run_epoch(order: tf.Tensor, bounds: tf.Tensor) -> tf.Tensor:
        total = tf.constant(0.0)
        for i in tf.range(tf.size(bounds) - 1):
            tf.autograph.experimental.set_loop_options(parallel_iterations=1)  # steps in order
            idx = order[bounds[i]:bounds[i + 1]]
            with tf.GradientTape() as tape:
                batch_loss = data_loss(task, net.logits(tf.gather(X, idx)), tf.gather(y, idx))
            optimizer.apply(tape.gradient(batch_loss, optimizer.variables))
            total += batch_loss * tf.cast(tf.size(idx), tf.float32)
        return total

    return run_epoch


class TFBackend(Backend):
    """Trains with one traced ``tf.function`` per fit, running each epoch's batches in a graph loop.

    A graph loop over the epoch costs one Python call per epoch instead of one per batch,
    about three times faster at the seed article's size than a traced per-batch step.
    """

    name = "tf"
    package = "tensorflow-cpu"

    def fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end) -> Model:
        """Train from ``weights`` (see :meth:`Backend.fit`), each epoch one compiled ``tf.function``."""
        net = TFNet(weights, config.activation, data.task)
        optimizer = _Optimizer(config.optimizer, config.lr, config.l2, net)
        run_epoch = _epoch_function(net, optimizer, data.task, tf.constant(data.X_train),
                                    tf.constant(data.y_train))
        n = len(data.X_train)
        for epoch in range(1, config.epochs + 1):
            idx = batches(epoch)
            bounds = np.cumsum([0] + [len(i) for i in idx])
            if epoch_end(net, float(run_epoch(np.concatenate(idx), bounds)) / n):
                break
        return net
