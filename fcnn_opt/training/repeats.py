"""Seed repeats: one set of hyperparameters trained R times with different seeds.

Small networks on these datasets vary a lot from seed to seed, so one run says little about
its hyperparameters. Repeat ``r`` trains with ``seed + r`` (repeat 0 is the run a study
without repeats makes). The runs report as one: after each epoch, once every repeat has
reached it, ``on_epoch`` gets the mean of their metrics, so a pruner judges the
hyperparameters, not one lucky seed; when it says stop, every repeat stops.

    >>> from fcnn_opt import TrainConfig, make_dataset
    >>> from fcnn_opt.training.repeats import train_repeats
    >>> result = train_repeats(make_dataset("circles"), TrainConfig(dims=(8,), epochs=5), 3)
    >>> len(result.repeats), len(result.val_loss)
    (3, 5)

NumPy and PyTorch networks with a hidden layer train together in the population engine
(:mod:`fcnn_opt.training.population`); the other libraries train one repeat after another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import Dataset
from fcnn_opt.training.loop import OnEpoch, TrainResult, train

POPULATION_LIBS = ("numpy", "torch")  # the population engine follows their arithmetic
_METRICS = ("train_loss", "val_loss", "val_accuracy")


def repeat_configs(config: TrainConfig, repeats: int) -> list[TrainConfig]:
    """The configs of ``repeats`` runs of ``config``: seeds ``seed, seed + 1, ...``."""
    return [config if r == 0 else config.replace(seed=config.seed + r) for r in range(repeats)]


def trains_together(config: TrainConfig) -> bool:
    """Whether the population engine (PyTorch, an optional extra) can train this network."""
    import importlib.util

    return config.lib in POPULATION_LIBS and config.depth >= 1 and importlib.util.find_spec("torch") is not None


class MeanOfRepeats:
    """``on_epoch`` for each of R runs: calls ``on_epoch(epoch, mean metrics)`` once all R have
    reached an epoch, and from then on stops every run if it said stop (or one diverged).

    Works whichever order the runs report in: together (epoch by epoch) or one after the
    other (the mean of an epoch is known when the last run reaches it).
    """

    def __init__(self, repeats: int, on_epoch: OnEpoch | None):
        self.repeats, self.on_epoch = repeats, on_epoch
        self._epochs: dict[int, list[dict]] = {}
        self.stopped_at: int | None = None  # the epoch after which every run stops

    def member(self, repeat: int, epoch: int, metrics: dict) -> bool:
        """Repeat ``repeat``'s ``metrics`` for ``epoch``; returns whether that run stops now (its
        epoch diverged, or the mean of a completed epoch was told to stop)."""
        if self.stopped_at is not None:
            return True
        if diverged(metrics):
            self.stopped_at = epoch  # one diverged run makes the mean meaningless
            return True
        seen = self._epochs.setdefault(epoch, [])
        seen.append(metrics)
        if len(seen) < self.repeats:
            return False
        del self._epochs[epoch]
        if self.on_epoch is not None and self.on_epoch(epoch, mean_metrics(seen)):
            self.stopped_at = epoch
            return True
        return False


def mean_metrics(runs: Sequence[dict]) -> dict:
    """The mean of each metric over runs (``seconds``: their sum, the epoch's cost)."""
    out = {name: _mean([m.get(name) for m in runs]) for name in _METRICS}
    out["seconds"] = float(sum(m.get("seconds", 0.0) for m in runs))
    return out


def diverged(metrics: dict) -> bool:
    """Whether a run's epoch metrics show it diverged (a training or validation loss that is
    missing or not finite): the mean of it and its siblings would mean nothing."""
    return not all(_finite(metrics.get(name)) for name in ("train_loss", "val_loss"))


def _finite(value) -> bool:
    return value is not None and math.isfinite(value)


def _mean(values) -> float | None:
    if any(v is None for v in values):
        return None
    return float(np.mean(values))


def train_repeats(dataset: Dataset, config: TrainConfig, repeats: int, on_epoch: OnEpoch | None = None,
                  *, device: str = "cpu", snapshots: int = 0) -> TrainResult:
    """Train ``config`` ``repeats`` times (seeds ``seed .. seed + repeats - 1``) and combine them.

    ``on_epoch(epoch, metrics)`` sees the mean over repeats; True stops them all. Returns
    :func:`combine`'s result: mean histories, repeat 0's model, every run in ``.repeats``.
    """
    configs = repeat_configs(config, repeats)
    watch = MeanOfRepeats(repeats, on_epoch)
    if trains_together(config):
        from fcnn_opt.training.population import train_population

        results = train_population(dataset, configs, on_epoch=watch.member, device=device, snapshots=snapshots)
    else:
        results = [train(dataset, c, on_epoch=lambda epoch, m, r=r: watch.member(r, epoch, m), snapshots=snapshots)
                   for r, c in enumerate(configs)]
    return combine(results, watch.stopped_at)


def combine(results: Sequence[TrainResult], stopped_at: int | None = None) -> TrainResult:
    """One result for R runs of the same hyperparameters.

    Histories are the per-epoch means (what the pruner saw), over the epochs every run
    reached (and no further than ``stopped_at``); ``epoch_seconds`` sums the runs; the
    model and config are repeat 0's; ``repeats`` holds each run, trimmed alike.
    """
    epochs = min(r.epochs_run for r in results)
    if stopped_at is not None:
        epochs = min(epochs, stopped_at)
    for run in results:
        _trim(run, epochs)
    first = results[0]
    combined = TrainResult(config=first.config, dataset=first.dataset, model=first.model,
                           stopped_early=any(r.stopped_early for r in results))
    per_epoch = [mean_metrics([_epoch_metrics(r, e) for r in results]) for e in range(epochs)]
    combined.train_loss = [m["train_loss"] for m in per_epoch]
    combined.val_loss = [m["val_loss"] for m in per_epoch]
    combined.epoch_seconds = [m["seconds"] for m in per_epoch]
    if first.val_accuracy is not None:
        combined.val_accuracy = [m["val_accuracy"] for m in per_epoch]
    combined.repeats = list(results)
    combined.snapshots = {e: w for e, w in first.snapshots.items() if e <= epochs}  # repeat 0's
    return combined


def _epoch_metrics(result: TrainResult, e: int) -> dict:
    return {"train_loss": result.train_loss[e], "val_loss": result.val_loss[e],
            "val_accuracy": None if result.val_accuracy is None else result.val_accuracy[e],
            "seconds": result.epoch_seconds[e]}


def _trim(result: TrainResult, epochs: int) -> None:
    """Forget the epochs a run trained past the point where its repeats stopped (the
    population engine asks each run in turn, so the runs asked before the one that decided
    to stop train one epoch more; their weights, kept for a pruned trial, include it)."""
    if result.epochs_run > epochs:
        result.train_loss, result.val_loss = result.train_loss[:epochs], result.val_loss[:epochs]
        result.epoch_seconds = result.epoch_seconds[:epochs]
        if result.val_accuracy is not None:
            result.val_accuracy = result.val_accuracy[:epochs]


def final_values(result: TrainResult, metric: str) -> list[float]:
    """Each repeat's last value of ``metric`` (one value without repeats)."""
    runs = result.repeats or [result]
    return [getattr(run, metric)[-1] for run in runs]

