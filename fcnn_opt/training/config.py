"""TrainConfig: every setting of one training run, validated when it is built.

    >>> from fcnn_opt import TrainConfig
    >>> TrainConfig(lib="torch", dims=(8,), optimizer="adam").description(
    ...     ["lib", "units", "optimizer"], n_outputs=4)
    'lib: torch, units: 2-8-4, optimizer: adam'
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields, replace

LIBS = ("numpy", "torch", "tf", "keras", "sklearn")
ACTIVATIONS = ("relu", "tanh", "sigmoid")
OPTIMIZERS = ("sgd", "adam", "rmsprop", "adagrad")
DEVICES = ("cpu", "cuda")

# The original library's short names, accepted on input.
LIB_ALIASES = {"np": "numpy", "pt": "torch", "pytorch": "torch", "tensorflow": "tf", "ks": "keras",
               "sk": "sklearn", "skl": "sklearn", "scikit-learn": "sklearn"}

# Keys understood by TrainConfig.description, with the original's synonyms.
DESCRIPTION_KEYS = ("lib", "units", "depth", "activation", "optimizer", "lr", "epochs",
                    "batch_size", "l2", "seed")
_KEY_ALIASES = {"act": "activation", "opt": "optimizer", "batchSize": "batch_size",
                "nb_epochs": "epochs", "dims": "units"}


def _choice(name: str, value, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {{{', '.join(allowed)}}}. Received: {value!r}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run.

    Attributes:
        lib: training library, one of ``numpy, torch, tf, keras, sklearn``.
        dims: hidden-layer widths; ``len(dims)`` is the depth (0 gives a linear model).
        activation: hidden activation, one of ``relu, tanh, sigmoid``.
        optimizer: one of ``sgd, adam, rmsprop, adagrad``.
        lr: learning rate, > 0.
        epochs: passes over the training set, >= 1.
        batch_size: mini-batch size, >= 1.
        l2: weight decay on the weight matrices (not biases), >= 0: adds ``l2 * W`` to
            each weight gradient, i.e. a penalty ``l2 / 2 * ||W||^2``.
        seed: seeds the initial weights and the mini-batch order.
        decay_epochs: the last ``decay_epochs`` epochs lower the learning rate linearly towards
            zero (epoch ``e`` of them trains at ``lr * (epochs - e + 1) / (decay_epochs + 1)``);
            0 (default) keeps it constant. Before them the rate is constant, so a run can be
            continued from any epoch and annealed later (NumPy backend).
        device: ``cpu`` or ``cuda`` (torch only).
    """

    lib: str = "numpy"
    dims: tuple[int, ...] = (8,)
    activation: str = "relu"
    optimizer: str = "adam"
    lr: float = 0.005
    epochs: int = 100
    batch_size: int = 100
    l2: float = 0.0
    seed: int = 0
    device: str = "cpu"
    decay_epochs: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "lib", LIB_ALIASES.get(self.lib, self.lib))
        _choice("lib", self.lib, LIBS)
        dims = self.dims
        if _is_int(dims):
            dims = (dims,)
        if isinstance(dims, str) or not isinstance(dims, Iterable):
            raise ValueError(f"dims must be a sequence of positive integers, e.g. (8, 8). Received: {dims!r}")
        dims = tuple(dims)
        if not all(_is_int(d) and d >= 1 for d in dims):
            raise ValueError(f"dims must be a sequence of positive integers, e.g. (8, 8). Received: {self.dims!r}")
        object.__setattr__(self, "dims", dims)
        _choice("activation", self.activation, ACTIVATIONS)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if not _is_real(self.lr) or self.lr <= 0:
            raise ValueError(f"lr must be a finite number > 0. Received: {self.lr!r}")
        if not _is_int(self.epochs) or self.epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1. Received: {self.epochs!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1. Received: {self.batch_size!r}")
        if not _is_real(self.l2) or self.l2 < 0:
            raise ValueError(f"l2 must be a finite number >= 0. Received: {self.l2!r}")
        if not _is_int(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer. Received: {self.seed!r}")
        if not _is_int(self.decay_epochs) or not 0 <= self.decay_epochs <= self.epochs:
            raise ValueError(f"decay_epochs must be an integer from 0 to epochs ({self.epochs}). "
                             f"Received: {self.decay_epochs!r}")
        _choice("device", self.device, DEVICES)
        if self.device == "cuda" and self.lib != "torch":
            raise ValueError(f"device='cuda' needs lib='torch'. Received: lib={self.lib!r}")
        object.__setattr__(self, "lr", float(self.lr))
        object.__setattr__(self, "l2", float(self.l2))

    @property
    def depth(self) -> int:
        """The number of hidden layers."""
        return len(self.dims)

    def lr_at(self, epoch: int) -> float:
        """The learning rate of ``epoch`` (counted from 1): see ``decay_epochs``."""
        constant = self.epochs - self.decay_epochs
        if epoch <= constant:
            return self.lr
        return self.lr * (self.epochs - epoch + 1) / (self.decay_epochs + 1)

    def replace(self, **changes) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings as a JSON-ready dict (what a trial stores; read back by :meth:`from_dict`)."""
        data = asdict(self)
        data["dims"] = list(self.dims)
        if not self.decay_epochs:  # as written before the field existed
            del data["decay_epochs"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The settings :meth:`to_dict` wrote (validated); raises ValueError on an unknown field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"Unknown TrainConfig field(s) {unknown}. Valid fields: {', '.join(sorted(known))}")
        data = dict(data)
        if "dims" in data and isinstance(data["dims"], list):
            data["dims"] = tuple(data["dims"])
        return cls(**data)

    def units(self, n_inputs: int = 2, n_outputs: int | None = None) -> str:
        """Layer widths as the original wrote them, e.g. ``"2-8-4"``."""
        widths = [n_inputs, *self.dims] + ([n_outputs] if n_outputs is not None else [])
        return "-".join(str(w) for w in widths)

    def description(self, keys: Iterable[str] | None = None, *, n_outputs: int | None = None,
                    n_inputs: int = 2) -> str:
        """The original's legend string: ``"key: value, ..."`` for the chosen keys.

        Args:
            keys: keys among ``lib, units, depth, activation (act), optimizer (opt), lr,
                epochs, batch_size, l2, seed``; all of them when None.
            n_outputs: output width, to write ``units`` as ``2-8-4`` rather than ``2-8``.
            n_inputs: input width (2 for the built-in datasets).
        """
        keys = list(DESCRIPTION_KEYS if keys is None else keys)
        values = {
            "lib": self.lib,
            "units": self.units(n_inputs, n_outputs=n_outputs),
            "depth": self.depth,
            "activation": self.activation,
            "optimizer": self.optimizer,
            "lr": f"{self.lr:g}",
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "l2": f"{self.l2:g}",
            "seed": self.seed,
        }
        parts = []
        for key in keys:
            canonical = _KEY_ALIASES.get(key, key)
            if canonical not in values:
                raise ValueError(f"Unknown description key {key!r}. Valid keys: {', '.join(DESCRIPTION_KEYS)}")
            parts.append(f"{key}: {values[canonical]}")
        return ", ".join(parts)
