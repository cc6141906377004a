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

from fcnn_opt.store.artifact_files import (
    RUN_FILE_ATTR,
    WeightsNotFound,
    load_weights,
    read_run_file,
    repeat_prefix,
    weights_from_arrays,
)
from fcnn_opt.store.optuna_internals import complete_trials
from fcnn_opt.store.storages import open_storage
from fcnn_opt.training.backends._numpy import NumpyNet
from fcnn_opt.training.datasets import BINARY, MULTICLASS, _spec
from fcnn_opt.training.tables import fold_scaling, scaling_from_attr


class ModelError(ValueError):
    """A trial that cannot be loaded as a model; the message says why."""


class Predictor:
    """``predict`` and ``predict_proba`` from a model's ``output`` and ``task``."""

    task: str

    def output(self, X) -> np.ndarray:  # pragma: no cover - every model defines it
        """The network's output for the rows ``X``: class probabilities or values (see
        :meth:`TrainedModel.output`)."""
        raise NotImplementedError

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities of the rows ``X``, one column per class ``(n, k)``; classification only."""
        if self.task not in (BINARY, MULTICLASS):
            raise ModelError("predict_proba is for classification; this network regresses (use predict).")
        out = self.output(X)
        return np.column_stack([1 - out, out]) if self.task == BINARY else out

    def predict(self, X) -> np.ndarray:
        """The predicted class of each row of ``X`` (regression: the predicted value)."""
        out = self.output(X)
        if self.task == BINARY:
            return (out > 0.5).astype(int)
        if self.task == MULTICLASS:
            return np.argmax(out, axis=1)
        return out


@dataclass
class TrainedModel(Predictor):
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
        self._net = NumpyNet(self.weights, self.activation, self.task)

    def output(self, X) -> np.ndarray:
        """The network's output: probabilities of class 1 (binary, ``(n,)``), of each class
        (``(n, k)``), or values (``(n,)``)."""
        out = np.asarray(self._net.predict(np.asarray(X, dtype=np.float32)), dtype=np.float64)
        return out.reshape(len(out), -1)[:, 0] if out.ndim == 2 and out.shape[1] == 1 else out


def load_model(storage, study_name: str, trial: int | None = None, *,
               artifact_dir: str | Path | None = None, allow_partial: bool = False, use_refit: bool = True):
    """The trained network of trial ``trial`` of a stored study; with no ``trial``, the study's
    refit (:mod:`fcnn_opt.search.refit`: an :class:`~fcnn_opt.search.refit.EnsembleModel`)
    if it has one, else its best trial's network.

    Args:
        storage: a storage URL (as everywhere in fcnn_opt) or an Optuna storage.
        study_name: the study.
        trial: a trial number; None for the study's refit, or its best trial without one.
        artifact_dir: the study's artifact folder, if it moved since the study ran.
        allow_partial: also load a pruned or failed trial's network (as it was when it stopped).
        use_refit: False: the best trial's own network even when the study has a refit.

    Raises:
        ModelError: no such study or trial, a trial that did not complete (without
            ``allow_partial``), or a trial whose weights cannot be found.
    """
    with opened_storage(storage) as opened:
        return _load(opened, study_name, trial, artifact_dir, allow_partial, use_refit)


@contextmanager
def opened_storage(storage, read_only: bool = True):
    """``storage`` itself, or the storage a URL names, opened for this block (``read_only``
    unless told otherwise): one opened here is disposed of afterwards, leaving no connection
    open behind the caller's back."""
    if not isinstance(storage, str):
        yield storage
        return
    storage = open_storage(storage, read_only=read_only, heartbeat=False)
    try:
        yield storage
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:
            engine.dispose()


def _load(storage, study_name: str, trial: int | None, artifact_dir, allow_partial: bool, use_refit: bool = True):
    study = load_study(storage, study_name)
    if trial is None and use_refit:
        refitted = refit_model(study, artifact_dir)
        if refitted is not None:
            return refitted
    return model_of(study, pick_trial(study, trial, allow_partial), artifact_dir)


REFIT_ATTR = "refit"  # the study's user attribute that describes its refit (fcnn_opt.search.refit)
PROB_EPS = 1e-7  # probabilities are kept this far from 0 and 1 before their log-odds are taken


@dataclass
class EnsembleModel(Predictor):
    """The weighted mean output of several networks, calibrated by one temperature
    (classification).

    With one member and ``temperature`` 1 it computes exactly what that member computes.
    ``trials`` are the trials whose settings the members were trained with, the heaviest
    first; ``weights`` their shares of the mean (summing to 1; None: equal shares).
    """

    members: list[TrainedModel]
    temperature: float
    study_name: str
    trials: list[int]
    rows: int = 0  # the rows the members trained on
    value: float | None = None  # the best chosen trial's value (the search's estimate)
    description: str = ""
    weights: list[float] | None = None

    @property
    def shares(self) -> np.ndarray:
        """Each member's share of the mean, summing to 1 (equal when no ``weights`` were given)."""
        if self.weights is None:
            return np.full(len(self.members), 1.0 / len(self.members))
        return np.asarray(self.weights, dtype=np.float64)

    @property
    def task(self) -> str:
        """The task of the members: binary, multiclass or regression."""
        return self.members[0].task

    @property
    def trial_number(self) -> int:
        """The best chosen trial's number (the first of :attr:`trials`)."""
        return self.trials[0]

    @property
    def input_scaling(self):
        """The ``(mean, std)`` of each raw input folded into the members (own data), else None."""
        return self.members[0].input_scaling

    @property
    def config(self) -> dict:
        """The settings of the best chosen trial's network."""
        return self.members[0].config

    def mean_output(self, X) -> np.ndarray:
        """The members' weighted mean output, before the temperature."""
        outputs = [member.output(X) for member in self.members]
        if self.weights is None:
            return np.mean(outputs, axis=0)
        return np.tensordot(self.shares, np.asarray(outputs, dtype=np.float64), axes=1)

    def output(self, X) -> np.ndarray:
        """The members' mean output with the fitted temperature applied (see :func:`apply_temperature`)."""
        return apply_temperature(self.task, self.mean_output(X), self.temperature)


def ensemble_text(trials: list[int], weights: list[float] | None) -> str:
    """``"4, 33, 2"``, or with unequal weights ``"4 (40 %), 33 (36 %), 2 (24 %)"``."""
    if weights is None or len(set(weights)) == 1:
        return ", ".join(map(str, trials))
    return ", ".join(f"{t} ({w:.0%})".replace("%", " %") for t, w in zip(trials, weights, strict=True))


def fold_ensemble_text(trials: list[int], weights: list[float] | None) -> str:
    """An ensemble of fold networks (one entry per network in ``trials`` and ``weights``) in
    words: ``"the 10 cross-validation networks of trials 4 (60 %), 33 (40 %)"``."""
    numbers = list(dict.fromkeys(trials))
    shares = None if weights is None else [sum(w for t, w in zip(trials, weights, strict=True) if t == n)
                                           for n in numbers]
    which = f"trial {numbers[0]}" if len(numbers) == 1 else f"trials {ensemble_text(numbers, shares)}"
    return f"the {len(trials)} cross-validation networks of {which}"


def apply_temperature(task: str, p: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities ``p`` (binary: of class 1, ``(n,)``; multiclass ``(n, k)``) with their
    log-odds divided by ``temperature``; values (regression) as they are."""
    if task not in (BINARY, MULTICLASS) or temperature == 1.0:
        return p
    p = np.clip(np.asarray(p, dtype=np.float64), PROB_EPS, 1 - PROB_EPS)
    if task == BINARY:
        return 1.0 / (1.0 + np.exp(-(np.log(p) - np.log1p(-p)) / temperature))
    z = np.log(p) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def refit_model(study, artifact_dir=None, raw: bool = True) -> EnsembleModel | None:
    """The study's stored refit (see :func:`refit`) as a model; None when it has none."""
    attr = study.user_attrs.get(REFIT_ATTR)
    if not attr:
        return None
    try:
        arrays = read_run_file(attr[RUN_FILE_ATTR], artifact_dir, f"Study {study.study_name!r}'s refit")
    except WeightsNotFound as exc:
        raise ModelError(str(exc)) from None
    trials = {t.number: t for t in complete_trials(study)}  # every member's settings are a complete trial's
    first = trials[attr["trials"][0]]
    scaling = first.user_attrs.get("scaling")
    # every member was trained on the same rows, so one scaling serves them all
    input_scaling, target_scaling = scaling_from_attr(scaling) if raw and scaling else (None, None)
    members = []
    for i, (number, activation) in enumerate(zip(attr["trials"], attr["activations"], strict=True)):
        weights = weights_from_arrays(arrays, repeat_prefix(i))
        if input_scaling is not None:
            weights = fold_scaling(weights, input_scaling, target_scaling)
        trial = trials[number]
        members.append(TrainedModel(weights=weights, activation=activation, task=_task_of(trial, study),
                                    study_name=study.study_name, trial_number=number, value=trial.value,
                                    config=trial.user_attrs.get("config") or {}, input_scaling=input_scaling))
    weights = attr.get("weights")  # refits before ensemble selection averaged equally
    if attr.get("members") == "folds":
        description = fold_ensemble_text(attr["trials"], weights)
    else:
        what = (f"the refit of trial {attr['trials'][0]}" if len(members) == 1
                else f"the refit ensemble of trials {ensemble_text(attr['trials'], weights)}")
        description = f"{what}, trained on all {attr.get('rows', 0):,} rows outside the test split"
    return EnsembleModel(members=members, temperature=float(attr.get("temperature", 1.0)), weights=weights,
                         study_name=study.study_name, trials=list(attr["trials"]), rows=int(attr.get("rows", 0)),
                         value=first.value, description=description)


def load_study(storage, study_name: str):
    """The study ``study_name`` of an opened ``storage``; raises :class:`ModelError` if it has none."""
    import optuna

    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        raise ModelError(f"No study named {study_name!r} in this storage.") from None


def pick_trial(study, trial: int | None, allow_partial: bool = False):
    """Trial number ``trial`` of ``study`` (None: the best), refused unless it completed or
    ``allow_partial``."""
    if trial is None:
        if not complete_trials(study):
            raise ModelError(f"Study {study.study_name!r} has no complete trial yet.")
        if len(study.directions) > 1:
            front = sorted(t.number for t in study.best_trials)
            raise ModelError(f"Study {study.study_name!r} has several objectives, so no single best trial; "
                             f"choose one of its Pareto set with --trial N: {', '.join(map(str, front))}.")
        chosen = study.best_trial
    else:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        if trial not in trials:
            raise ModelError(f"Study {study.study_name!r} has no trial {trial}. "
                             f"Trials: 0..{max(trials, default=-1)}.")
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
    if "task" in trial.user_attrs:  # own data
        return trial.user_attrs["task"]
    return _spec(dataset_args(trial, study)["name"]).task
