"""A stored trial's trained network, back as a NumPy model: ``fcnn_opt.load_model``.

    >>> import fcnn_opt
    >>> model = fcnn_opt.load_model("sqlite:///studies/fcnn_opt.db", "seed_grid")  # doctest: +SKIP
    >>> model.predict(points)  # doctest: +SKIP

The network is rebuilt from the trial's run file (its final weights; see
:mod:`fcnn_opt.store.artifact_files`) with the activation it was trained with, and computes
exactly what fcnn_opt's NumPy backend computes. No training library is needed.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fcnn_opt.training.datasets import BINARY, MULTICLASS


class ModelError(ValueError):
    """A trial that cannot be loaded as a model; the message says why."""


@dataclass
class TrainedModel:
    """A trained fully connected network in NumPy.

    ``predict(X)``: class indices (classification) or values (regression);
    ``predict_proba(X)``: class probabilities, ``(n, k)`` (binary: ``[1 - p, p]``).
    """

    weights: list[tuple[np.ndarray, np.ndarray]]
    activation: str
    task: str
    study_name: str
    trial_number: int
    value: float | None
    config: dict = field(default_factory=dict)
    # Own data: the (mean, std) of each raw input, already folded into the weights; where the
    # network's inputs live (exports are checked there).
    input_scaling: tuple | None = field(default=None, repr=False)
    _net: Any = field(default=None, repr=False)

    def __post_init__(self):
        from fcnn_opt.training.backends._numpy import NumpyNet

        self._net = NumpyNet(self.weights, self.activation, self.task)

    def output(self, X) -> np.ndarray:
        """The network's output: probabilities of class 1 (binary, ``(n,)``), of each class
        (``(n, k)``), or values (``(n,)``)."""
        out = np.asarray(self._net.predict(np.asarray(X, dtype=np.float32)), dtype=np.float64)
        return out.reshape(len(out), -1)[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out

    def predict_proba(self, X) -> np.ndarray:
        if self.task not in (BINARY, MULTICLASS):
            raise ModelError("predict_proba is for classification; this network regresses (use predict).")
        out = self.output(X)
        return np.column_stack([1 - out, out]) if self.task == BINARY else out

    def predict(self, X) -> np.ndarray:
        out = self.output(X)
        if self.task == BINARY:
            return (out > 0.5).astype(int)
        if self.task == MULTICLASS:
            return np.argmax(out, axis=1)
        return out


def load_model(storage, study_name: str, trial: int | None = None, *,
               artifact_dir: str | Path | None = None, allow_partial: bool = False) -> TrainedModel:
    """The trained network of trial ``trial`` (default: the best) of a stored study.

    Args:
        storage: a storage URL (as everywhere in fcnn_opt) or an Optuna storage.
        study_name: the study.
        trial: a trial number; None for the study's best trial.
        artifact_dir: the study's artifact folder, if it moved since the study ran.
        allow_partial: also load a pruned or failed trial's network (as it was when it stopped).

    Raises:
        ModelError: no such study or trial, a trial that did not complete (without
            ``allow_partial``), or a trial whose weights cannot be found.
    """
    with opened_storage(storage) as opened:
        return _load(opened, study_name, trial, artifact_dir, allow_partial)


@contextmanager
def opened_storage(storage):
    """``storage`` itself, or the storage a URL names, opened for this block: one opened here
    is disposed of afterwards, leaving no connection open behind the caller's back."""
    from fcnn_opt.store.storages import open_storage

    if not isinstance(storage, str):
        yield storage
        return
    storage = open_storage(storage, read_only=True)
    try:
        yield storage
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()


def _load(storage, study_name: str, trial: int | None, artifact_dir, allow_partial: bool) -> TrainedModel:
    study = load_study(storage, study_name)
    return model_of(study, pick_trial(study, trial, allow_partial), artifact_dir)


def load_study(storage, study_name: str):
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise ModelError(f"No study named {study_name!r} in this storage.") from None


def pick_trial(study, trial: int | None, allow_partial: bool = False):
    """Trial number ``trial`` of ``study`` (None: the best), refused unless it completed or
    ``allow_partial``."""
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    if trial is None:
        complete = [t for t in trials.values() if t.state.name == "COMPLETE"]
        if not complete:
            raise ModelError(f"Study {study.study_name!r} has no complete trial yet.")
        if len(study.directions) > 1:
            front = sorted(t.number for t in study.best_trials)
            raise ModelError(f"Study {study.study_name!r} has several objectives, so no single best trial; "
                             f"choose one of its Pareto set with --trial N: {', '.join(map(str, front))}.")
        chosen = study.best_trial
    elif trial not in trials:
        raise ModelError(f"Study {study.study_name!r} has no trial {trial}. "
                         f"Trials: 0..{max(trials, default=-1)}.")
    else:
        chosen = trials[trial]
    if chosen.state.name != "COMPLETE" and not allow_partial:
        raise ModelError(f"Trial {chosen.number} is {chosen.state.name.lower()}, not complete; "
                         "pass allow_partial=True for the network as it was when it stopped.")
    return chosen


def model_of(study, chosen, artifact_dir=None, repeat: int = 0, raw: bool = True) -> TrainedModel:
    """The network of a stored trial (with seed repeats: repeat ``repeat``'s).

    On your own data the network was trained on standardised features (and, for regression, a
    standardised target); with ``raw`` (the default) that scaling is folded into its first and
    last layers, so it takes and gives values in the data's own units. ``raw=False``: the
    network as trained, for the dataset's standardised arrays.
    """
    from fcnn_opt.store.artifact_files import WeightsNotFound, load_weights
    from fcnn_opt.training.tables import fold_scaling, scaling_from_attr

    try:
        weights = load_weights(chosen, artifact_dir, repeat=repeat)
    except WeightsNotFound as exc:
        raise ModelError(str(exc)) from None
    scaling = chosen.user_attrs.get("scaling")
    input_scaling = None
    if raw and scaling:
        input_scaling, target_scaling = scaling_from_attr(scaling)
        weights = fold_scaling(weights, input_scaling, target_scaling)
    config = chosen.user_attrs.get("config") or {}
    task = _task_of(chosen, study)
    return TrainedModel(weights=weights, activation=config.get("activation", "relu"), task=task,
                        study_name=study.study_name, trial_number=chosen.number, value=single_value(chosen),
                        config=config, input_scaling=input_scaling)


def single_value(trial) -> float | None:
    """The trial's value; None if it has none, or several (a multi-objective study)."""
    values = trial.values
    return values[0] if values is not None and len(values) == 1 else None


def dataset_args(trial, study) -> dict:
    """The :func:`~fcnn_opt.training.datasets.make_dataset` arguments the trial trained with."""
    return dict(trial.user_attrs.get("dataset_args") or study.user_attrs.get("dataset")
                or {"name": trial.user_attrs.get("dataset", "circles")})


def _task_of(trial, study) -> str:
    """The task of the dataset the trial trained on (from its name; nothing is generated)."""
    from fcnn_opt.training.datasets import _spec

    if "task" in trial.user_attrs:  # own data
        return trial.user_attrs["task"]
    return _spec(dataset_args(trial, study)["name"]).task
