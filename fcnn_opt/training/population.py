"""Train many networks at once: a population trained in lockstep with batched tensor ops.

At the seed article's size every library spends almost all its time on per-call
overhead. Here K networks share every call: their parameters sit in one ``(K, P)`` tensor
and each layer is one batched matmul. Members of a group share the batch size (so they
take the same number of steps); everything else is per member:

- widths: padded to the group's widest layer; padded units are masked to zero, so their
  weights get zero gradients and never change;
- depth: padded to the group's deepest member; a shallower member skips the extra layers
  (its hidden state passes through unchanged);
- activation, optimiser (one update rule whose per-member constants give SGD, Adam,
  RMSprop or Adagrad), learning rate, l2, epochs, seed (initial weights and mini-batch
  order, the same as the single-model backends draw).

A member trained here follows the PyTorch backend's trajectory to float32 rounding (see
tests/test_population.py). A member that stops (its epochs are done, it diverged or its
``on_epoch`` said stop, e.g. pruned) is removed from the tensors, so it costs nothing more.

    >>> from fcnn_opt import TrainConfig, make_dataset
    >>> from fcnn_opt.training.population import train_population
    >>> configs = [TrainConfig(dims=(w,), lr=lr, epochs=20) for w in (2, 4, 8) for lr in (1e-3, 1e-2)]
    >>> results = train_population(make_dataset("circles"), configs)
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch

from fcnn_opt.training.backends._base import (
    ADAGRAD_EPS,
    ADAM_BETAS,
    ADAM_EPS,
    PROB_EPS,
    RMSPROP_EPS,
    RMSPROP_RHO,
    epoch_batches,
    init_weights,
    layer_sizes,
)
from fcnn_opt.training.backends._numpy import NumpyNet
from fcnn_opt.training.backends._torch import cpu_threads
from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import BINARY, MULTICLASS, Dataset
from fcnn_opt.training.loop import TrainResult, snapshot_epochs

# on_epoch(member index, epoch, metrics) -> True to stop that member
PopulationOnEpoch = Callable[[int, int, dict], "bool | None"]
# on_done(member index): that member has stopped training, for whatever reason
OnDone = Callable[[int], None]

# Per-optimiser constants of the shared update rule:
#   m = b1 m + c1 g;  v = b2 v + c2 g^2;  p -= step * m / (sqrt(v) / s2 + eps)
# with step = lr / (1 - b1^t) and s2 = sqrt(1 - b2^t) for Adam, step = lr and s2 = 1 otherwise.
_RULES = {  # name: (b1, c1, b2, c2, eps)
    "sgd": (0.0, 1.0, 0.0, 0.0, 1.0),  # v stays 0, denominator 1: p -= lr g
    "adam": (ADAM_BETAS[0], 1 - ADAM_BETAS[0], ADAM_BETAS[1], 1 - ADAM_BETAS[1], ADAM_EPS),
    "rmsprop": (0.0, 1.0, RMSPROP_RHO, 1 - RMSPROP_RHO, RMSPROP_EPS),
    "adagrad": (0.0, 1.0, 1.0, 1.0, ADAGRAD_EPS),
}
_ACTIVATIONS = ("relu", "tanh", "sigmoid")


def group_key(config: TrainConfig, device: str = "cpu") -> tuple[int, int]:
    """Members with the same key train together: the batch size, and on the CPU the width
    rounded up to 2^k (padding costs arithmetic there; on a GPU it costs almost nothing,
    while every extra group costs its own kernel launches, so a GPU pads to the widest)."""
    if device != "cpu":
        return config.batch_size, 0
    widest = max(config.dims)
    return config.batch_size, 1 << max(2, (widest - 1).bit_length())


class _Group:
    """The tensors of one group of members trained in lockstep."""

    def __init__(self, data: Dataset, configs: list[TrainConfig], device: torch.device):
        self.device, self.task = device, data.task
        self.configs = configs
        K = len(configs)
        self.depth = max(c.depth for c in configs)
        self.width = max(max(c.dims) for c in configs)
        n_in, n_out, H, D = data.X_train.shape[1], data.n_outputs, self.width, self.depth
        self.shapes = [(n_in, H)] + [(H, H)] * (D - 1) + [(H, n_out)]
        offsets, total = [], 0
        for fan_in, fan_out in self.shapes:
            offsets.append((total, total + fan_in * fan_out, total + fan_in * fan_out + fan_out))
            total += fan_in * fan_out + fan_out
        self.offsets, self.n_params = offsets, total

        flat = np.zeros((K, total), dtype=np.float32)
        width_mask = np.zeros((D, K, 1, H), dtype=np.float32)
        active = np.zeros((D, K, 1, 1), dtype=bool)
        decay = np.zeros((1, total), dtype=np.float32)
        for w0, w1, _ in offsets:
            decay[0, w0:w1] = 1.0
        for k, config in enumerate(configs):
            weights = init_weights(layer_sizes(config, data), config.seed)
            hidden, (W_out, b_out) = weights[:-1], weights[-1]
            for layer, (W, b) in enumerate(hidden):
                self._place(flat[k], layer, W, b)
                width_mask[layer, k, 0, :W.shape[1]] = 1.0
                active[layer, k] = True
            self._place(flat[k], D, W_out, b_out)
        self.flat = torch.tensor(flat, device=device, requires_grad=True)
        self.width_mask = torch.tensor(width_mask, device=device)
        self.active = torch.tensor(active, device=device)
        self.all_active = [bool(a.all()) for a in active]
        self.decay = torch.tensor(decay, device=device)
        self._per_member_constants()
        self.m = torch.zeros_like(self.flat, requires_grad=False)
        self.v = torch.zeros_like(self.flat, requires_grad=False)
        self.t = 0

    def _place(self, row: np.ndarray, layer: int, W: np.ndarray, b: np.ndarray) -> None:
        w0, w1, b1 = self.offsets[layer]
        fan_in, fan_out = self.shapes[layer]
        block = np.zeros((fan_in, fan_out), dtype=np.float32)
        block[:W.shape[0], :W.shape[1]] = W
        row[w0:w1] = block.ravel()
        row[w1:w1 + W.shape[1]] = b

    def _per_member_constants(self) -> None:
        def column(values, dtype=torch.float32):
            return torch.tensor(values, dtype=dtype, device=self.device).reshape(-1, 1)

        rules = [_RULES[c.optimizer] for c in self.configs]
        self.b1, self.c1, self.b2, self.c2, self.eps = (column([r[i] for r in rules]) for i in range(5))
        self.is_adam = column([c.optimizer == "adam" for c in self.configs], torch.bool)
        self.lr = column([c.lr for c in self.configs])
        self.l2 = column([c.l2 for c in self.configs])
        self.any_l2 = any(c.l2 for c in self.configs)
        acts = [c.activation for c in self.configs]
        self.act_masks = {a: column([x == a for x in acts]).reshape(-1, 1, 1)
                          for a in _ACTIVATIONS if a in acts}

    def keep(self, rows: list[int]) -> None:
        """Drop every member not in ``rows`` (indices into the current members)."""
        index = torch.tensor(rows, device=self.device, dtype=torch.long)
        self.flat = self.flat.detach()[index].requires_grad_(True)
        self.m, self.v = self.m[index], self.v[index]
        self.width_mask, self.active = self.width_mask[:, index], self.active[:, index]
        self.all_active = [bool(a.all()) for a in self.active]
        for name in ("b1", "c1", "b2", "c2", "eps", "is_adam", "lr", "l2"):
            setattr(self, name, getattr(self, name)[index])
        self.act_masks = {a: m[index] for a, m in self.act_masks.items()}
        self.configs = [self.configs[i] for i in rows]

    def _layers(self, flat: torch.Tensor):
        K = flat.shape[0]
        for (w0, w1, b1), (fan_in, fan_out) in zip(self.offsets, self.shapes, strict=True):
            yield flat[:, w0:w1].view(K, fan_in, fan_out), flat[:, w1:b1].view(K, 1, fan_out)

    def _activate(self, z: torch.Tensor) -> torch.Tensor:
        functions = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
        if len(self.act_masks) == 1:
            return functions[next(iter(self.act_masks))](z)
        return sum(functions[a](z) * mask for a, mask in self.act_masks.items())

    def logits(self, x: torch.Tensor, flat: torch.Tensor | None = None) -> torch.Tensor:
        """Output pre-activations ``(K, n, n_out)`` for inputs ``x`` of shape (K, n, 2) or (n, 2)."""
        layers = list(self._layers(self.flat if flat is None else flat))
        h = x
        for layer, (W, b) in enumerate(layers[:-1]):
            a = self._activate(torch.baddbmm(b, h, W) if h.dim() == 3 else torch.matmul(h, W) + b)
            a = a * self.width_mask[layer]
            h = a if self.all_active[layer] else torch.where(self.active[layer], a, h)
        W, b = layers[-1]
        return torch.baddbmm(b, h, W)

    def member_losses(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean loss per member, shape (K,)."""
        f = torch.nn.functional
        if self.task == BINARY:
            return f.binary_cross_entropy_with_logits(z[..., 0], y, reduction="none").mean(dim=1)
        if self.task == MULTICLASS:
            K, n, C = z.shape
            return f.cross_entropy(z.reshape(K * n, C), y.reshape(K * n), reduction="none").view(K, n).mean(dim=1)
        return ((z[..., 0] - y) ** 2).mean(dim=1)

    def step(self) -> None:
        """One update of every member with its own optimiser, learning rate and l2."""
        with torch.no_grad():
            g = self.flat.grad
            if self.any_l2:
                g = g + self.l2 * self.decay * self.flat
            self.t += 1
            self.m.mul_(self.b1).add_(self.c1 * g)
            self.v.mul_(self.b2).add_(self.c2 * g * g)
            bias1 = 1 - ADAM_BETAS[0] ** self.t
            bias2 = (1 - ADAM_BETAS[1] ** self.t) ** 0.5
            step = torch.where(self.is_adam, self.lr / bias1, self.lr)
            scale = torch.where(self.is_adam, torch.full_like(self.lr, bias2), torch.ones_like(self.lr))
            denom = self.v.sqrt().div_(scale).add_(self.eps)
            self.flat.sub_(step * self.m / denom)
            self.flat.grad = None

    def numpy_nets(self, rows: list[int], data: Dataset) -> list[NumpyNet]:
        """The networks of members ``rows``, un-padded, as NumPy models (one transfer)."""
        values = self.flat.detach()[torch.tensor(rows, device=self.device)].cpu().numpy()
        return [self._numpy_net(k, row, data) for k, row in zip(rows, values, strict=True)]

    def _numpy_net(self, k: int, row: np.ndarray, data: Dataset) -> NumpyNet:
        config = self.configs[k]
        weights, fan_in = [], data.X_train.shape[1]
        for layer, width in enumerate(config.dims):
            w0, w1, _ = self.offsets[layer]
            full_in, full_out = self.shapes[layer]
            W = row[w0:w1].reshape(full_in, full_out)[:fan_in, :width]
            weights.append((W.copy(), row[w1:w1 + width].copy()))
            fan_in = width
        w0, w1, b1 = self.offsets[self.depth]
        W = row[w0:w1].reshape(self.shapes[-1])[:fan_in]
        weights.append((W.copy(), row[w1:b1].copy()))
        return NumpyNet(weights, config.activation, data.task)


def train_population(dataset: Dataset, configs: Sequence[TrainConfig], on_epoch: PopulationOnEpoch | None = None,
                     *, device: str = "cpu", snapshots: int = 0, on_done: OnDone | None = None) -> list[TrainResult]:
    """Train every config in ``configs`` together; results in the same order.

    Args:
        dataset: the data every member trains on.
        configs: one TrainConfig per member (each with depth >= 1; ``lib`` is ignored).
        on_epoch: called as ``on_epoch(i, epoch, metrics)`` for member ``i`` after each of
            its epochs; True stops that member (the others go on).
        device: ``cpu`` or ``cuda``.
        snapshots: as :func:`fcnn_opt.training.loop.train`'s: each member keeps its weights
            after this many epochs spread over its run.
        on_done: called as ``on_done(i)`` once member ``i`` stops training: its epochs are
            done, ``on_epoch`` stopped it, or it diverged (which ``on_epoch`` is not told).
    """
    for config in configs:
        if config.depth == 0:
            raise NotImplementedError("the population trainer needs at least one hidden layer; "
                                      "train linear models with train()")
    results = [TrainResult(config=c, dataset=dataset, val_accuracy=None if dataset.task == "regression" else [])
               for c in configs]
    groups: dict[tuple, list[int]] = defaultdict(list)
    torch_device = torch.device(device)
    for i, config in enumerate(configs):
        groups[group_key(config, torch_device.type)].append(i)
    X = torch.as_tensor(dataset.X_train, device=torch_device)
    y = torch.as_tensor(dataset.y_train, device=torch_device)
    X_val = torch.as_tensor(dataset.X_val, device=torch_device)
    y_val = torch.as_tensor(dataset.y_val, device=torch_device)
    with cpu_threads(torch_device):
        for members in groups.values():
            _train_group(dataset, [configs[i] for i in members], members, results, on_epoch, X, y,
                         X_val, y_val, snapshots, on_done)
    return results


def _train_group(data: Dataset, configs, members: list[int], results: list[TrainResult],
                 on_epoch, X, y, X_val, y_val, snapshots: int = 0, on_done: OnDone | None = None) -> None:
    group = _Group(data, configs, X.device)
    ids = list(members)  # result index of each current row
    n = len(X)
    batch_size = configs[0].batch_size
    epoch = 0
    while ids:
        epoch += 1
        start = time.perf_counter()
        order = _epoch_order(n, batch_size, [c.seed for c in group.configs], epoch, X.device)
        total = torch.zeros(len(ids), device=X.device)
        for s in range(0, n, batch_size):
            idx = order[..., s:s + batch_size]  # (batch,) when every member shares the order
            targets = y[idx] if idx.dim() == 2 else y[idx].expand(len(ids), -1)
            member_losses = group.member_losses(group.logits(X[idx]), targets)
            member_losses.sum().backward()
            group.step()
            total += member_losses.detach() * idx.shape[-1]
        with torch.no_grad():
            val_losses, val_accuracies = _val_metrics(data.task, group.logits(X_val), y_val)
        train_losses = (total / n).tolist()
        seconds = (time.perf_counter() - start) / len(ids)
        keep, done = [], []
        if snapshots:
            _take_snapshots(group, data, ids, results, epoch, snapshots)
        for row, i in enumerate(ids):
            result = results[i]
            val = val_losses[row]
            metrics = {"train_loss": train_losses[row], "val_loss": val,
                       "val_accuracy": None if val_accuracies is None else val_accuracies[row],
                       "seconds": seconds}
            result.train_loss.append(metrics["train_loss"])
            result.val_loss.append(val)
            result.epoch_seconds.append(seconds)
            if result.val_accuracy is not None:
                result.val_accuracy.append(metrics["val_accuracy"])
            stop = not np.isfinite(val) or not np.isfinite(metrics["train_loss"])
            if not stop and on_epoch is not None:
                stop = bool(on_epoch(i, epoch, metrics))
            result.stopped_early = stop
            if stop or epoch >= result.config.epochs:
                done.append(row)
            else:
                keep.append(row)
        if done:
            for row, net in zip(done, group.numpy_nets(done, data), strict=True):
                results[ids[row]].model = net
                if on_done is not None:
                    on_done(ids[row])
        if len(keep) < len(ids):
            ids = [ids[row] for row in keep]
            if ids:
                group.keep(keep)


def _take_snapshots(group, data: Dataset, ids: list[int], results: list[TrainResult], epoch: int,
                    count: int) -> None:
    """Copy out the weights of the members for which ``epoch`` is a snapshot epoch."""
    rows = [row for row, i in enumerate(ids) if epoch in snapshot_epochs(results[i].config.epochs, count)]
    if rows:
        for row, net in zip(rows, group.numpy_nets(rows, data), strict=True):
            results[ids[row]].snapshots[epoch] = net.weights()


def _epoch_order(n: int, batch_size: int, seeds: list[int], epoch: int, device) -> torch.Tensor:
    """Each member's mini-batch order for the epoch, drawn as the single-model backends draw
    it: ``(K, n)``, or ``(n,)`` when every member has the same seed (one draw for all; a
    study's trials share the study's seed unless the seed is searched)."""
    orders = {seed: np.concatenate(epoch_batches(n, batch_size, seed, epoch)) for seed in dict.fromkeys(seeds)}
    if len(orders) == 1:
        return torch.as_tensor(next(iter(orders.values())), device=device)
    return torch.as_tensor(np.stack([orders[seed] for seed in seeds]), device=device)


def _val_metrics(task: str, z: torch.Tensor, y: torch.Tensor) -> tuple[list, list | None]:
    """Every member's validation loss and accuracy from its logits ``(K, n, n_out)``, computed
    on the device as :func:`~fcnn_opt.training.backends._base.loss` and ``accuracy`` compute them for
    one model (float64 from the float32 outputs, the same clipping), in two transfers."""
    if task == BINARY:
        p = torch.sigmoid(z[..., 0]).double().clamp(PROB_EPS, 1 - PROB_EPS)
        losses = -(y * p.log() + (1 - y) * (1 - p).log()).mean(dim=1)
        hits = ((p > 0.5) == (y > 0.5)).double().mean(dim=1)
    elif task == MULTICLASS:
        p = torch.softmax(z, dim=-1).double()
        picked = p.gather(2, y.view(1, -1, 1).expand(len(p), -1, 1))[..., 0].clamp(PROB_EPS, 1.0)
        losses = -picked.log().mean(dim=1)
        hits = (p.argmax(dim=-1) == y).double().mean(dim=1)
    else:
        return ((z[..., 0].double() - y) ** 2).mean(dim=1).tolist(), None
    return losses.tolist(), hits.tolist()
