"""The NumPy backend: forward pass, hand-written backprop and four optimisers, from scratch.

All parameters live in one flat float32 buffer (each W and b is a view into it) and so do
their gradients, so an optimiser step is a handful of vector operations whatever the
depth. At the seed article's size (2-8-4, batch 100) that per-call economy is what makes
this backend faster than every framework: the arithmetic itself is tiny.
"""

from __future__ import annotations

import numpy as np

from fcnn_opt.training.backends._base import (
    ADAGRAD_EPS,
    ADAM_BETAS,
    ADAM_EPS,
    RMSPROP_EPS,
    RMSPROP_RHO,
    Backend,
    Model,
    TrainState,
    Weights,
)
from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import BINARY, MULTICLASS, Dataset


def _views(flat: np.ndarray, sizes: list[int]) -> Weights:
    views, offset = [], 0
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = flat[offset:offset + fan_in * fan_out].reshape(fan_in, fan_out)
        offset += fan_in * fan_out
        b = flat[offset:offset + fan_out]
        offset += fan_out
        views.append((W, b))
    return views


def _activate(z: np.ndarray, activation: str) -> np.ndarray:
    if activation == "relu":
        return np.maximum(z, 0.0, out=z)
    if activation == "tanh":
        return np.tanh(z, out=z)
    np.negative(z, out=z)
    np.exp(z, out=z)
    z += 1.0
    return np.reciprocal(z, out=z)


def _activation_grad(a: np.ndarray, activation: str) -> np.ndarray:
    """d activation / d z, written in terms of the activation's output ``a``."""
    if activation == "relu":
        return a > 0
    if activation == "tanh":
        return 1.0 - a * a
    return a * (1.0 - a)


def _output(z: np.ndarray, task: str) -> np.ndarray:
    if task == BINARY:
        return 1.0 / (1.0 + np.exp(-z[:, 0]))
    if task == MULTICLASS:
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)
    return z[:, 0].copy()


class NumpyNet(Model):
    """A fully connected network whose parameters are views into one flat buffer."""

    def __init__(self, weights: Weights, activation: str, task: str):
        self.sizes = [weights[0][0].shape[0]] + [W.shape[1] for W, _ in weights]
        self.activation, self.task = activation, task
        self.flat = np.concatenate([np.concatenate([W.ravel(), b]) for W, b in weights]).astype(np.float32)
        self.params = _views(self.flat, self.sizes)
        self.grad = np.zeros_like(self.flat)
        self.grads = _views(self.grad, self.sizes)
        self.decay_mask = np.zeros_like(self.flat)  # 1 on weight matrices, 0 on biases
        for W, _ in _views(self.decay_mask, self.sizes):
            W[...] = 1.0

    def forward(self, X: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
        """Hidden activations (input first) and the output layer's pre-activation."""
        acts = [X]
        for W, b in self.params[:-1]:
            z = np.dot(acts[-1], W)  # np.dot: less call overhead than @ on small 2-D arrays
            z += b
            acts.append(_activate(z, self.activation))
        W, b = self.params[-1]
        z = np.dot(acts[-1], W)
        z += b
        return acts, z

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs for ``X``, as :meth:`Model.predict` defines them."""
        return _output(self.forward(np.asarray(X, dtype=np.float32))[1], self.task)

    def weights(self) -> Weights:
        """The network's ``[(W, b), ...]`` per layer, as copies."""
        return [(W.copy(), b.copy()) for W, b in self.params]

    def moments(self) -> tuple[list[np.ndarray], int]:
        """The optimiser's buffers and step count after training (see :class:`TrainState`)."""
        optimizer = self.optimizer
        return optimizer.moments(), optimizer.step_count

    def _ones(self, n: int) -> np.ndarray:
        if getattr(self, "_ones_cache", None) is None or len(self._ones_cache) != n:
            self._ones_cache = np.ones(n, dtype=np.float32)
        return self._ones_cache

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Targets as an ``(n, n_out)`` float32 matrix (one-hot for multi-class)."""
        if self.task == MULTICLASS:
            return np.eye(self.sizes[-1], dtype=np.float32)[y]
        return np.asarray(y, dtype=np.float32).reshape(-1, 1)

    def loss_and_grad(self, X: np.ndarray, T: np.ndarray) -> float:
        """Mean data loss of the batch; fills ``self.grad`` with its gradient.

        ``T`` is the batch's target matrix from :meth:`targets`.
        """
        acts, z = self.forward(X)
        n = len(X)
        if self.task == BINARY:
            loss = (np.logaddexp(0.0, z).sum() - np.vdot(T, z)) / n  # softplus(z) - t z
            delta = np.exp(-z)
            delta += 1.0
            np.reciprocal(delta, out=delta)
            delta -= T
        elif self.task == MULTICLASS:
            z -= z.max(axis=1, keepdims=True)
            delta = np.exp(z)
            total = delta.sum(axis=1, keepdims=True)
            loss = (np.log(total).sum() - np.vdot(T, z)) / n
            delta /= total
            delta -= T
        else:
            delta = z - T
            loss = np.vdot(delta, delta) / n
            delta *= 2.0
        delta *= np.float32(1.0 / n)
        for layer in range(len(self.params) - 1, -1, -1):
            gW, gb = self.grads[layer]
            np.dot(acts[layer].T, delta, out=gW)
            np.dot(self._ones(n), delta, out=gb)  # the column sums, faster than sum(axis=0)
            if layer:
                delta = np.dot(delta, self.params[layer][0].T)
                delta *= _activation_grad(acts[layer], self.activation)
        return float(loss)


class _Optimizer:
    """The four optimisers on the flat parameter vector, with PyTorch's update rules."""

    def __init__(self, name: str, lr: float, l2: float, net: NumpyNet):
        self.name, self.lr, self.l2, self.net = name, np.float32(lr), np.float32(l2), net
        self.state = np.zeros_like(net.flat)
        self.state2 = np.zeros_like(net.flat) if name == "adam" else None
        self.step_count = 0
        self.buffer = np.empty_like(net.flat)

    def _buffers(self) -> list[np.ndarray]:
        """The buffers a TrainState keeps: Adam's two moments, or the one of the others."""
        return [self.state] + ([self.state2] if self.state2 is not None else [])

    def moments(self) -> list[np.ndarray]:
        return [buffer.copy() for buffer in self._buffers()]

    def restore(self, state: TrainState) -> None:
        """Continue from ``state``'s buffers and step count (the same optimiser's)."""
        buffers = self._buffers()
        if len(state.moments) != len(buffers) or any(m.shape != b.shape for m, b in zip(state.moments, buffers, strict=True)):
            raise ValueError(f"The state to continue from does not fit optimizer={self.name!r} on this network.")
        for buffer, saved in zip(buffers, state.moments, strict=True):
            buffer[...] = saved
        self.step_count = int(state.steps)

    def step(self) -> None:
        p, g, buf = self.net.flat, self.net.grad, self.buffer
        if self.l2:
            np.multiply(p, self.net.decay_mask, out=buf)
            buf *= self.l2
            g += buf
        if self.name == "sgd":
            np.multiply(g, self.lr, out=buf)
            p -= buf
            return
        if self.name == "adam":
            self.step_count += 1
            b1, b2 = ADAM_BETAS
            m, v = self.state, self.state2
            m *= b1
            m += (1 - b1) * g
            v *= b2
            np.multiply(g, g, out=buf)
            buf *= 1 - b2
            v += buf
            step_size = self.lr / (1 - b1 ** self.step_count)
            np.sqrt(v, out=buf)
            buf /= np.float32(np.sqrt(1 - b2 ** self.step_count))
            buf += ADAM_EPS
            np.divide(m, buf, out=buf)
            buf *= np.float32(step_size)
            p -= buf
            return
        acc = self.state
        if self.name == "rmsprop":
            acc *= RMSPROP_RHO
            np.multiply(g, g, out=buf)
            buf *= 1 - RMSPROP_RHO
            acc += buf
            eps = RMSPROP_EPS
        else:  # adagrad
            np.multiply(g, g, out=buf)
            acc += buf
            eps = ADAGRAD_EPS
        np.sqrt(acc, out=buf)
        buf += eps
        np.divide(g, buf, out=buf)
        buf *= self.lr
        p -= buf


class NumpyBackend(Backend):
    """The NumPy backend: the training loop in NumPy (compiled by Numba when it is installed),
    the reference every other backend is tested against; it can resume a run from its state."""

    name = "numpy"
    package = "numpy"
    resumable = True

    def load(self) -> None:
        """Import Numba and the compiled epoch loop (0.5 s or more), which the first fit would."""
        if jit_available():
            from fcnn_opt.training.backends import _compiled  # noqa: F401

    def fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end,
            start: TrainState | None = None) -> Model:
        """Train from ``weights`` (epochs 1..), or continue ``start`` (its weights, optimiser
        buffers and steps) from the epoch after its own. The network keeps its optimiser's
        state afterwards: :meth:`NumpyNet.moments`."""
        net = NumpyNet(start.weights if start is not None else weights, config.activation, data.task)
        optimizer = _Optimizer(config.optimizer, config.lr, config.l2, net)
        first = 1
        if start is not None:
            optimizer.restore(start)
            first = start.epoch + 1
        net.optimizer = optimizer
        if jit_available():
            return _fit_compiled(net, optimizer, data, config, batches, epoch_end, first)
        X, T = data.X_train, net.targets(data.y_train)
        n = len(X)
        with np.errstate(over="ignore"):  # exp overflow in sigmoid saturates to 0 or 1, as intended
            for epoch in range(first, config.epochs + 1):
                optimizer.lr = np.float32(config.lr_at(epoch))
                index = batches(epoch)
                order = np.concatenate(index)
                Xe, Te = X[order], T[order]  # one gather per epoch; batches are then views
                total, start = 0.0, 0
                for idx in index:
                    stop = start + len(idx)
                    total += net.loss_and_grad(Xe[start:stop], Te[start:stop]) * len(idx)
                    optimizer.step()
                    start = stop
                if epoch_end(net, total / n):
                    break
        return net


def jit_available() -> bool:
    """Whether each epoch runs as one compiled call (:mod:`._compiled`): Numba is installed and
    ``FCNN_OPT_NO_JIT`` is not set (``FCNN_OPT_NO_JIT=1`` runs the NumPy calls above instead)."""
    import importlib.util
    import os

    return os.environ.get("FCNN_OPT_NO_JIT", "") in ("", "0") and importlib.util.find_spec("numba") is not None


def _fit_compiled(net: NumpyNet, optimizer: _Optimizer, data: Dataset, config: TrainConfig, batches,
                  epoch_end, first: int = 1) -> NumpyNet:
    """:meth:`NumpyBackend.fit` with each epoch's mini-batch steps in one compiled call."""
    from fcnn_opt.training.backends import _compiled

    X = np.ascontiguousarray(data.X_train, dtype=np.float32)
    T = net.targets(data.y_train)
    n = len(X)
    sizes = np.array(net.sizes, dtype=np.int64)
    starts = np.cumsum([0] + [(a + 1) * b for a, b in zip(net.sizes[:-1], net.sizes[1:], strict=True)])[:-1]
    starts = starts.astype(np.int64)
    state2 = optimizer.state2 if optimizer.state2 is not None else optimizer.state
    act = _compiled.ACTIVATIONS[net.activation]
    task = _compiled.TASKS.get(net.task, 2)
    opt = _compiled.OPTIMIZERS[optimizer.name]
    for epoch in range(first, config.epochs + 1):
        order = np.concatenate(batches(epoch))
        lr = np.float32(config.lr_at(epoch))
        total, optimizer.step_count = _compiled.epoch(
            net.flat, net.grad, optimizer.state, state2, net.decay_mask, sizes, starts, act, task, opt, lr,
            optimizer.l2, optimizer.step_count, X[order], T[order], config.batch_size)
        if epoch_end(net, total / n):
            break
    return net
