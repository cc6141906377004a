"""The values a study may optimise, one registry entry each: ``[study] metric`` (one value,
reported every epoch, so pruners can judge it) and ``[study] objectives`` (several at once).

    >>> from fcnn_opt.search.metrics import OBJECTIVES
    >>> OBJECTIVES.names(per_epoch=True)
    ('val_loss', 'val_accuracy')
    >>> OBJECTIVES.get("n_params").direction
    'minimize'

Add one with :func:`register_objective`, from your own code or a plugin module
(:mod:`fcnn_opt.search.registry` says how the command line finds it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fcnn_opt.search.registry import Registry

PREDICT_POINTS = 1024  # predict_ms: milliseconds to predict this many points

# measure(result) -> the objective's value for one finished run (a TrainResult).
Measure = Callable[[Any], float]


@dataclass(frozen=True)
class ObjectiveEntry:
    """One objective: its name, how it is measured, the pip extra it needs, and what it is.

    ``direction``: ``"minimize"`` or ``"maximize"``. ``per_epoch``: the training loop reports it
    every epoch, so it may be a study's one ``metric`` and pruners can judge it (the others are
    measured once, when a run ends, and serve only in ``objectives``). ``classification``: it
    exists only for a classification dataset.
    """

    name: str
    measure: Measure
    direction: str
    description: str = ""
    extra: str | None = None
    per_epoch: bool = False
    classification: bool = False


OBJECTIVES: Registry[ObjectiveEntry] = Registry("objective")


def register_objective(name: str, measure: Measure, direction: str, *, description: str = "",
                       extra: str | None = None, classification: bool = False,
                       replace: bool = False) -> ObjectiveEntry:
    """Register an objective of multi-objective studies under ``name`` and return its entry:
    ``measure(result)`` returns its value for a finished run (a
    :class:`~fcnn_opt.training.loop.TrainResult`), to be minimised or maximised (``direction``).
    Per-epoch metrics come from the training loop and are not added here."""
    if direction not in ("minimize", "maximize"):
        raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}.")
    return OBJECTIVES.register(ObjectiveEntry(name, measure, direction, description, extra,
                                              classification=classification), replace=replace)


def direction_of(name: str) -> str:
    """``"minimize"`` or ``"maximize"``: the direction of the objective ``name``."""
    return OBJECTIVES.get(name).direction


def objective_values(result, objectives) -> list[float]:
    """The value of each of ``objectives`` (names) for one finished run (a TrainResult)."""
    return [float(OBJECTIVES.get(name).measure(result)) for name in objectives]


def _last_epoch(name: str) -> Measure:
    def measure(result) -> float:
        return float(getattr(result, name)[-1])

    return measure


def _n_params(result) -> float:
    return float(sum(W.size + b.size for W, b in result.weights()))


def _train_seconds(result) -> float:
    return float(sum(result.epoch_seconds))


def _predict_ms(result) -> float:
    points = result.dataset.grid(32)[2]
    timings = []
    for _ in range(5):
        start = time.perf_counter()
        result.predict(points)
        timings.append(time.perf_counter() - start)
    return 1000.0 * min(timings) * PREDICT_POINTS / len(points)


OBJECTIVES.register(ObjectiveEntry("val_loss", _last_epoch("val_loss"), "minimize", per_epoch=True,
                                   description="validation loss, last epoch's (the mean over seed repeats)"))
OBJECTIVES.register(ObjectiveEntry("val_accuracy", _last_epoch("val_accuracy"), "maximize", per_epoch=True,
                                   classification=True,
                                   description="validation accuracy, last epoch's (the mean over seed repeats)"))
register_objective("n_params", _n_params, "minimize", description="weights and biases of the network")
register_objective("train_seconds", _train_seconds, "minimize", description="training time (all repeats)")
register_objective("predict_ms", _predict_ms, "minimize",
                   description="the fastest of 5 predictions of 1024 points by the trained model, "
                               "in its own library, in milliseconds")
