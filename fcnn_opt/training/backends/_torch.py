"""The PyTorch backend: a plain eager training loop with ``torch.optim``.

The network is written as explicit ``x @ W + b`` layers holding the shared initial
weights, so it matches the NumPy backend parameter for parameter. Weight decay applies to
the weight matrices only, like every other backend.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

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

ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}


@contextmanager
def cpu_threads(device, n: int = 1):
    """Use ``n`` intra-op threads on the CPU while training, then restore the setting.

    At this size every op is tiny: extra threads only add hand-offs, and on a busy
    machine they wait for each other (measured: 2 threads 8x slower than 1 under load).
    """
    if torch.device(device).type != "cpu":
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def make_optimizer(name: str, params_decay, params_plain, lr: float, l2: float) -> torch.optim.Optimizer:
    """The named ``torch.optim`` optimiser with fcnn_opt's shared constants."""
    groups = [{"params": params_decay, "weight_decay": l2}, {"params": params_plain, "weight_decay": 0.0}]
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr)
    if name == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=ADAM_BETAS, eps=ADAM_EPS)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=lr, alpha=RMSPROP_RHO, eps=RMSPROP_EPS)
    return torch.optim.Adagrad(groups, lr=lr, eps=ADAGRAD_EPS)


def data_loss(task: str, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean loss from the output layer's pre-activation ``z``."""
    if task == BINARY:
        return torch.nn.functional.binary_cross_entropy_with_logits(z[:, 0], y)
    if task == MULTICLASS:
        return torch.nn.functional.cross_entropy(z, y)
    return torch.mean((z[:, 0] - y) ** 2)


def output(task: str, z: torch.Tensor) -> torch.Tensor:
    """The network's output from its logits ``z``: probabilities (binary ``(n,)``, multiclass
    ``(n, k)``) or values."""
    if task == BINARY:
        return torch.sigmoid(z[:, 0])
    if task == MULTICLASS:
        return torch.softmax(z, dim=1)
    return z[:, 0]


class TorchNet(Model):
    """A fully connected network as a list of ``(W, b)`` tensor pairs on ``device``."""

    def __init__(self, weights: Weights, activation: str, task: str, device: str = "cpu"):
        self.device = torch.device(device)
        self.params = [
            (torch.tensor(W, device=self.device, requires_grad=True),
             torch.tensor(b, device=self.device, requires_grad=True))
            for W, b in weights
        ]
        self.act = ACTIVATIONS[activation]
        self.task = task

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The last layer's pre-activation for the rows ``x``."""
        for W, b in self.params[:-1]:
            x = self.act(torch.addmm(b, x, W))
        W, b = self.params[-1]
        return torch.addmm(b, x, W)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs for ``X``, as :meth:`Model.predict` defines them."""
        with torch.no_grad():
            z = self.logits(torch.as_tensor(np.asarray(X, dtype=np.float32), device=self.device))
            return output(self.task, z).cpu().numpy()

    def weights(self) -> Weights:
        """The network's ``[(W, b), ...]`` per layer, as NumPy copies."""
        return [(W.detach().cpu().numpy().copy(), b.detach().cpu().numpy().copy()) for W, b in self.params]


class TorchBackend(Backend):
    """The PyTorch backend: an eager loop over explicit ``x @ W + b`` layers with ``torch.optim``
    (see the module docstring)."""

    name = "torch"
    package = "torch"

    def fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end) -> Model:
        """Train from ``weights`` (see :meth:`Backend.fit`) on ``config.device``, with one intra-op
        thread on the CPU (see :func:`cpu_threads`)."""
        with cpu_threads(config.device):
            return self._fit(data, config, weights, batches, epoch_end)

    def _fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end) -> Model:
        net = TorchNet(weights, config.activation, data.task, config.device)
        optimizer = make_optimizer(config.optimizer, [W for W, _ in net.params],
                                   [b for _, b in net.params], config.lr, config.l2)
        X = torch.as_tensor(data.X_train, device=net.device)
        y = torch.as_tensor(data.y_train, device=net.device)
        n = len(X)
        for epoch in range(1, config.epochs + 1):
            total = torch.zeros((), device=net.device)
            for idx in batches(epoch):
                index = torch.as_tensor(idx, device=net.device)
                batch_loss = data_loss(data.task, net.logits(X[index]), y[index])
                optimizer.zero_grad(set_to_none=False)
                batch_loss.backward()
                optimizer.step()
                total += batch_loss.detach() * len(idx)
            if epoch_end(net, float(total) / n):
                break
        return net
