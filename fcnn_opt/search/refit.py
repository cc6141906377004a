"""The model a study hands over: the chosen settings trained again on every row, averaged
over the best few, and calibrated.

    python -m fcnn_opt refit --study-name digits            # the best trial
    python -m fcnn_opt refit --study-name digits --top 5    # an ensemble of the 5 best

A trial's own network trained on the training split only (64 % of the rows with a 20 %
test split and 20 % validation), and with cross-validation on one fold's share. The search
has done its job once it has chosen the settings; here they are trained again on every row
outside the test split (training and validation together), for the epochs the trial ran
(its whole schedule, the learning rate's decay included), with the trial's own seed.

``top = k`` refits several of the k best complete trials and averages their outputs (the
class probabilities, or the values): the cheapest large gain in log loss when many good
trials are at hand. Where every one of them was cross-validated, greedy ensemble selection
on their out-of-fold predictions (:func:`select_ensemble`) chooses the members and their
weights, so a trial that does not lower the loss of the average is left out and the best
ones count more; otherwise the k best count equally. For classification each candidate's
predictions are first softened to the floor described below (:func:`select_at_the_floor`),
so that where the held-out rows are all right the selection does not simply hand over the
surest candidate. One temperature ``T`` is then fitted to the chosen trials'
held-out predictions (out of fold with ``[dataset] folds``, the validation split otherwise;
never the test split) by minimising their log loss: probabilities ``p`` become
``softmax(log p / T)`` (binary: ``sigmoid(logit(p) / T)``). ``T > 1`` softens an
overconfident model. The temperature never sharpens (``T >= 1``): the held-out predictions come
from networks that trained on fewer rows than the refit ones (a fold's share, or the training
split), which are at least as confident for the same epochs; and on a small table whose
held-out predictions are all right, a fit that sharpens them has nothing to stop it but the
few rows it sees, and one wrong row on new data then costs a lot.

Held-out predictions that are all right cannot show that a model is too sure, and on a small
table that is where it is most often wrong: every one of wine's 142 rows right out of fold,
the one wrong row of its test split given a probability under 1e-5. So the temperature has a
floor (:func:`floor_temperature`): having seen ``n`` held-out rows, the model must still
expect at least one error in ``n + 2`` new ones (Laplace's rule of succession), its expected
error being the mean of ``1 - max p`` over the held-out rows. Where it expects fewer, the
temperature is fitted as if one more held-out row had been wrong (:func:`hedged_temperature`):
it minimises the log loss of the ``n`` rows plus one row that the model gets wrong, any of
theirs with its runner-up class for the truth, and is never below the smallest temperature
that makes the model expect one error in ``n + 2``. Expecting an error does not say what it
costs; pricing one in does, and on wine's splits whose held-out rows were all right it
softened the model further (temperatures of 1.8 to 2.3 where the expectation alone asked
for 1.1 to 1.6) and lowered the test log loss of every one of them. Where the held-out
predictions hold errors of their own (digits, breast cancer), the model already expects
more and the floor changes nothing. The selection compares candidates at the expectation's
floor alone (:func:`select_at_the_floor`): at the priced one it chose worse members.

``members = "folds"`` (``[study] refit = { top = k, members = "folds" }``, the table
default) trains nothing: each trial the selection chose hands over the networks its
cross-validation trained, one per fold, which share its weight (AutoGluon's bagged models).
On a small table they beat the refit: averaging K networks that each saw a different
(K-1)/K of the rows smooths what one network trained on all rows is too sure of, and the
search keeps the time a refit would take. No temperature is fitted for them, only the floor
applies (see :func:`_fold_ensemble`).

The refit is stored with the study: its networks in one run file in the study's artifact
folder, and what it is (trials, epochs, rows, temperature, log loss before and after) in the
study's user attribute ``refit``. :func:`fcnn_opt.load_model`, ``best``, ``evaluate`` and
``export`` use it when there is one and no ``--trial`` is given.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fcnn_opt.search.models import (
    REFIT_ATTR,
    EnsembleModel,
    ModelError,
    apply_temperature,
    dataset_args,
    ensemble_text,
    fold_ensemble_text,
    load_study,
    model_of,
    opened_storage,
    pick_trial,
    refit_model,
)
from fcnn_opt.search.objective import FOLDS_ATTR, OUT_OF_FOLD
from fcnn_opt.search.space import MAX_REFIT as MAX_TOP
from fcnn_opt.store.artifact_files import (
    RUN_FILE_ATTR,
    WeightsNotFound,
    load_networks,
    load_run_array,
    local_data_args,
    save_run,
)
from fcnn_opt.store.artifact_files import artifact_dir as default_folder
from fcnn_opt.store.optuna_internals import complete_trials
from fcnn_opt.training.backends._base import PROB_EPS, loss
from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import BINARY, MULTICLASS
from fcnn_opt.training.folds import pooled_rows
from fcnn_opt.training.loop import train
from fcnn_opt.training.tables import build

TEMPERATURE_BOUNDS = (1.0, 20.0)  # softens only: see the module's docstring


def fit_temperature(task: str, p: np.ndarray, y: np.ndarray) -> float:
    """The temperature in :data:`TEMPERATURE_BOUNDS` that minimises the log loss of held-out
    probabilities ``p`` for labels ``y`` (1 for regression, and where no softer one is better)."""
    if task not in (BINARY, MULTICLASS):
        return 1.0
    from scipy.optimize import minimize_scalar

    found = minimize_scalar(lambda t: loss(task, apply_temperature(task, p, t), y), bounds=TEMPERATURE_BOUNDS,
                            method="bounded", options={"xatol": 1e-4})
    best = float(found.x)
    # keep 1 unless the fit is really better (a flat optimum wanders)
    return best if loss(task, apply_temperature(task, p, best), y) < loss(task, p, y) - 1e-9 else 1.0


def expected_error(task: str, p: np.ndarray) -> float:
    """The share of rows that probabilities ``p`` expect to get wrong: the mean of ``1 - max p``
    (binary ``p`` are of class 1)."""
    p = np.asarray(p, dtype=np.float64)
    sure = np.maximum(p, 1.0 - p) if task == BINARY else p.max(axis=1)
    return float(np.mean(1.0 - sure))


def floor_binds(task: str, p: np.ndarray) -> bool:
    """Whether held-out probabilities ``p`` of ``n`` rows expect fewer errors than one in
    ``n + 2`` rows (classification only): where they do, the floor softens them."""
    return task in (BINARY, MULTICLASS) and expected_error(task, p) < 1.0 / (len(p) + 2)


def floor_temperature(task: str, p: np.ndarray) -> float:
    """The smallest temperature in :data:`TEMPERATURE_BOUNDS` at which held-out probabilities
    ``p`` of ``n`` rows expect at least one error in ``n + 2`` rows (see the module's docstring);
    1 where they already do, and for regression."""
    if not floor_binds(task, p):
        return 1.0
    from scipy.optimize import brentq

    target = 1.0 / (len(p) + 2)
    short = lambda t: expected_error(task, apply_temperature(task, p, t)) - target  # noqa: E731
    high = TEMPERATURE_BOUNDS[1]
    return high if short(high) < 0 else float(brentq(short, 1.0, high, xtol=1e-4))


def unseen_error_cost(task: str, p: np.ndarray) -> float:
    """The log loss of one new row that probabilities ``p`` get wrong, taken as any of their
    rows with its runner-up class for the truth: the mean of ``-log`` of the second largest
    probability of each row (binary ``p`` are of class 1)."""
    p = np.asarray(p, dtype=np.float64)
    runner_up = np.minimum(p, 1.0 - p) if task == BINARY else np.sort(p, axis=1)[:, -2]
    return float(np.mean(-np.log(np.clip(runner_up, PROB_EPS, 1.0))))  # clipped as the log loss clips


def hedged_temperature(task: str, p: np.ndarray, y: np.ndarray) -> float:
    """The temperature of the model handed over where the floor binds (see the module's
    docstring): at least :func:`floor_temperature`, and at least the one that minimises the log
    loss of held-out probabilities ``p`` for labels ``y`` with one more row counted, a row
    they get wrong (:func:`unseen_error_cost`); 1 where the floor does not bind, and for
    regression."""
    if not floor_binds(task, p):
        return 1.0
    from scipy.optimize import minimize_scalar

    n = len(p)

    def priced(t: float) -> float:
        softer = apply_temperature(task, p, t)
        return (n * loss(task, softer, y) + unseen_error_cost(task, softer)) / (n + 1)

    found = minimize_scalar(priced, bounds=TEMPERATURE_BOUNDS, method="bounded", options={"xatol": 1e-4})
    return max(floor_temperature(task, p), float(found.x))


@dataclass
class RefitSummary:
    """What :func:`refit` did, for the command line and the study's attribute."""

    study_name: str
    trials: list[int]
    epochs: list[int]
    rows: int
    asked: int  # how many members were chosen (more than ``trials`` when the time ran out)
    temperature: float
    calibrated_on: str  # "out-of-fold", "validation" or "" (regression)
    loss_before: float | None
    loss_after: float | None
    seconds: float
    attr: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """The summary as the command line prints it."""
        if self.attr.get("members") == "folds":
            each = "one per fold and seed" if self.attr.get("repeats", 1) > 1 else "one per fold"
            out = [f"ensemble  {fold_ensemble_text(self.trials, self.attr.get('weights'))} ({each}), "
                   f"averaged: nothing trained after the search ({self.seconds:.1f} s)"]
        else:
            which = (f"trial {self.trials[0]}" if len(self.trials) == 1
                     else f"an ensemble of trials {ensemble_text(self.trials, self.attr.get('weights'))}")
            out = [f"refit     {which}: trained on all {self.rows:,} rows outside the test split "
                   f"({', '.join(map(str, self.epochs))} epochs) in {self.seconds:.1f} s"]
        if "candidates" in self.attr:
            out.append(f"          chosen by ensemble selection on the out-of-fold predictions of the "
                       f"{self.attr['candidates']} best trials: {self.asked} of them lower the loss of the average"
                       f"{_softened_text(self.attr.get('softened', 0))}")
        if self.asked > len(self.trials):
            out.append(f"          the {len(self.trials)} heaviest of the {self.asked} chosen: the time budget "
                       "allowed no more")
        if self.calibrated_on and "floor" in self.attr:
            out.append(f"softened  temperature {self.temperature:.3g}, the floor: the {self.calibrated_on} predictions "
                       f"expected fewer errors than one in {self.attr['floor']} rows, so it is fitted as if one more "
                       f"had been wrong; log loss on them {self.loss_before:.5g} -> {self.loss_after:.5g}")
        elif self.calibrated_on:
            out.append(f"calibrated temperature {self.temperature:.3g}, fitted on the {self.calibrated_on} predictions: "
                       f"log loss {self.loss_before:.5g} -> {self.loss_after:.5g}")
        out.append("model     load_model, best, evaluate and export use it now (--trial N: a trial's own network)")
        return out


def choose_trials(study, trial: int | None, top: int) -> list:
    """Trial ``trial``, or the ``top`` best complete trials of ``study``, best first."""
    if trial is not None:
        return [pick_trial(study, trial)]
    if not isinstance(top, int) or isinstance(top, bool) or not 1 <= top <= MAX_TOP:
        raise ModelError(f"--top must be a whole number from 1 to {MAX_TOP}, got {top!r}.")
    if len(study.directions) > 1:
        raise ModelError(f"Study {study.study_name!r} has several objectives, so no single best trial; "
                         "refit one of its Pareto set with --trial N.")
    complete = [t for t in complete_trials(study) if t.value is not None]
    if not complete:
        raise ModelError(f"Study {study.study_name!r} has no complete trial yet.")
    maximize = study.direction.name == "MAXIMIZE"
    return sorted(complete, key=lambda t: (-t.value if maximize else t.value, t.number))[:top]


def refit(storage, study_name: str, *, trial: int | None = None, top: int = 1, members: str = "refit",
          artifact_dir: str | Path | None = None, progress=None, deadline: float | None = None) -> RefitSummary:
    """Refit trial ``trial`` (None: the ``top`` best) of a stored study on every row outside its
    test split, calibrate it, and store it with the study (see the module's docstring).

    ``members = "folds"``: instead of training anything, each chosen trial hands over the
    networks its cross-validation trained, one per fold, weighted equally within the trial
    (see :func:`_fold_ensemble`).

    ``deadline`` (a ``time.monotonic()`` value, a time-budgeted study's end): the heaviest
    member is always refit; each next one only if, at the pace of the refits so far, it ends
    in time (the weights of those refit are then scaled to sum to 1).

    Raises:
        ModelError: no such study or trial, a trial without its stored settings or data, or
            settings that cannot be trained here.
    """
    started = time.perf_counter()
    with opened_storage(storage, read_only=False) as opened:
        study = load_study(opened, study_name)
        candidates = choose_trials(study, trial, top)
        data = _data_of(study, candidates[0], artifact_dir)
        held_out = _out_of_fold(candidates, data.task, artifact_dir)
        if members == "folds" and held_out is None:
            raise ModelError("members = folds hands over the networks of each trial's cross-validation; trial "
                             f"{next(t.number for t in candidates if not _cross_validated(t, artifact_dir))} "
                             "was not cross-validated ([dataset] folds = 1): use members = refit.")
        selection = {}  # what the stored refit says of the selection, where there was one
        if held_out is not None and len(candidates) > 1:  # every candidate was cross-validated: choose on it
            weights = select_at_the_floor(data.task, held_out, pooled_rows(data)[1])
            order = sorted((i for i in range(len(candidates)) if weights[i] > 0), key=lambda i: (-weights[i], i))
            selection = {"selected": len(order), "candidates": len(candidates),
                         "softened": sum(floor_binds(data.task, p) for p in held_out)}
        else:
            weights, order = np.full(len(candidates), 1.0 / len(candidates)), list(range(len(candidates)))
        if members == "folds":
            return _fold_ensemble(study, candidates, weights, order, selection, storage, artifact_dir, started,
                                  data, held_out)
        networks, epochs, refit_ones = [], [], []
        per_epoch = None  # seconds one epoch of a refit took: what the next member would cost
        for number, i in enumerate(order):
            t = candidates[i]
            config_epochs = (t.user_attrs.get("config") or {}).get("epochs", 0)
            if deadline is not None and networks and time.monotonic() + per_epoch * config_epochs > deadline:
                break  # the time budget is spent: the heaviest members are refit
            if progress is not None:
                progress(number, len(order), t.number)
            began = time.monotonic()
            trained = _train_on_every_row(t, data)
            per_epoch = (time.monotonic() - began) / max(trained.epochs_run, 1)
            networks.append(trained.weights())
            epochs.append(trained.epochs_run)
            refit_ones.append(i)
        chosen = [candidates[i] for i in refit_ones]
        shares = weights[refit_ones] / weights[refit_ones].sum()
        folds = None if held_out is None else [held_out[i] for i in refit_ones]
        p, y, source = _held_out_predictions(study, chosen, shares, data, folds, artifact_dir)
        temperature, before, after, floor = 1.0, None, None, {}
        if source:
            temperature, before, after, floor = _calibrated(data.task, p, y, fit_temperature(data.task, p, y))
        run_file = save_run(_folder_of(chosen[0], storage, artifact_dir), networks[0], {}, repeats=networks[1:])
        rows = len(data.X_train) + len(data.X_val)
        attr = {"trials": [t.number for t in chosen], "epochs": epochs, "rows": rows,
                "temperature": temperature, "calibrated_on": source,
                "loss_before": before, "loss_after": after,
                "activations": [(t.user_attrs.get("config") or {}).get("activation", "relu") for t in chosen],
                RUN_FILE_ATTR: run_file, **floor}
        if selection:  # "selected": members the selection chose (more than refit when time ran out)
            attr.update(weights=[round(float(w), 6) for w in shares], **selection)
        study.set_user_attr(REFIT_ATTR, attr)
    return RefitSummary(study_name, attr["trials"], epochs, rows, len(order), temperature, source, before, after,
                        time.perf_counter() - started, attr)


def _fold_ensemble(study, candidates, weights, order, selection, storage, artifact_dir, started,
                   data, held_out) -> RefitSummary:
    """``members = "folds"``: the chosen trials' fold networks as one ensemble, stored as a refit.

    Each chosen trial counts with its selection weight, shared equally by its K fold networks,
    so the ensemble predicts the weighted mean of the trials' fold averages. Nothing is trained
    and no temperature is fitted: the only held-out predictions are the out-of-fold ones, one
    network per row, which are surer than the average of K networks the ensemble predicts
    with, so a temperature fitted on them would soften it too far (on digits, 1.17 raised the
    test log loss of a fold ensemble from 0.071 to 0.084). Only the floor applies
    (:func:`floor_temperature`), on the chosen trials' out-of-fold predictions averaged with
    their weights.
    """
    networks, trials, epochs, activations, shares = [], [], [], [], []
    try:
        for i in order:
            t = candidates[i]
            own = load_networks(t, artifact_dir)
            networks += own
            trials += [t.number] * len(own)
            epochs += [int(t.user_attrs.get("epochs_run", 0))] * len(own)
            activations += [(t.user_attrs.get("config") or {}).get("activation", "relu")] * len(own)
            shares += [float(weights[i]) / len(own)] * len(own)
    except WeightsNotFound as exc:
        raise ModelError(str(exc)) from None
    total = sum(shares)
    folder = _folder_of(candidates[order[0]], storage, artifact_dir)
    temperature, source, before, after, floor = 1.0, "", None, None, {}
    chosen = np.asarray([weights[i] for i in order]) / sum(weights[i] for i in order)
    p, y, held = _held_out_predictions(study, None, chosen, data, [held_out[i] for i in order], artifact_dir)
    if held:
        softer, loss_before, loss_after, said = _calibrated(data.task, p, y, 1.0)
        if said:  # only the floor calibrates a fold ensemble
            temperature, source, before, after, floor = softer, held, loss_before, loss_after, said
    attr = {"trials": trials, "epochs": epochs, "rows": 0, "temperature": temperature, "calibrated_on": source,
            "loss_before": before, "loss_after": after, "activations": activations,
            "weights": [round(w / total, 6) for w in shares], "members": "folds",
            RUN_FILE_ATTR: save_run(folder, networks[0], {}, repeats=networks[1:]), **floor}
    repeats = max((candidates[i].user_attrs.get(FOLDS_ATTR) or {}).get("repeats", 1) for i in order)
    if repeats > 1:  # each trial hands over K x R networks
        attr["repeats"] = repeats
    attr.update(selection)
    study.set_user_attr(REFIT_ATTR, attr)
    return RefitSummary(study.study_name, trials, epochs, 0, len(order), temperature, source, before, after,
                        time.perf_counter() - started, attr)


def _calibrated(task: str, p: np.ndarray, y: np.ndarray, fitted: float) -> tuple[float, float, float, dict]:
    """The temperature to use for held-out probabilities ``p`` of labels ``y``, ``fitted`` or
    the floor (:func:`hedged_temperature`) where that is softer; their log loss before and
    after it; and what the stored refit says of the floor (``{"floor": rows}``: one error
    expected in ``rows`` new rows) when it decided."""
    floor = hedged_temperature(task, p, y)
    temperature, said = (floor, {"floor": len(p) + 2}) if floor > fitted else (fitted, {})
    return temperature, loss(task, p, y), loss(task, apply_temperature(task, p, temperature), y), said


def _softened_text(count: int) -> str:
    """What the summary says of the candidates the floor softened for the selection."""
    return f" ({count} softened to {'its floor' if count == 1 else 'their floors'} for the choice)" if count else ""


def _folder_of(trial, storage, artifact_dir) -> Path:
    """Where a refit's run file goes: ``artifact_dir``, else the folder of ``trial``'s run file,
    else the storage's default artifact folder."""
    pointer = trial.user_attrs.get(RUN_FILE_ATTR) or {}
    return Path(artifact_dir or pointer.get("folder") or default_folder(storage if isinstance(storage, str) else None))


def _cross_validated(trial, artifact_dir) -> bool:
    return load_run_array(trial, OUT_OF_FOLD, artifact_dir) is not None


SELECTION_ROUNDS = 25  # greedy steps of ensemble selection: weights in 25ths


def select_ensemble(task: str, predictions: list[np.ndarray], y: np.ndarray,
                    rounds: int = SELECTION_ROUNDS) -> np.ndarray:
    """Greedy ensemble selection with replacement (Caruana et al., 2004), as auto-sklearn and
    AutoGluon choose their ensembles: start from nothing, and ``rounds`` times add the
    candidate whose addition gives the running average of ``predictions`` (held-out
    predictions of the same rows, best candidate first) the lowest loss against ``y``; ties go
    to the better candidate. Returns each candidate's weight: how often it was added over
    ``rounds`` (0 for one that never helped; the weights sum to 1)."""
    stacked = np.asarray([_as_output(task, p) for p in predictions], dtype=np.float64)
    counts = np.zeros(len(stacked))
    total = np.zeros_like(stacked[0])
    for step in range(1, rounds + 1):
        losses = [loss(task, (total + candidate) / step, y) for candidate in stacked]
        best = int(np.argmin(losses))  # the first of equal losses: the better candidate
        counts[best] += 1
        total += stacked[best]
    return counts / rounds


def select_at_the_floor(task: str, predictions: list[np.ndarray], y: np.ndarray) -> np.ndarray:
    """:func:`select_ensemble` on the candidates' held-out predictions, each first softened to
    its own floor (:func:`floor_temperature`; the identity where the floor does not bind, and
    for regression).

    Where a candidate gets every held-out row right, or all but one, its log loss measures
    little but how sure it is, and selection on it hands over the surest candidate alone: on a
    small, nearly separable table, the one that costs most on the first new row it gets wrong
    (docs/performance.md, "Twelve splits"). Softened to the floor, every such candidate
    expects the same share of errors, so selection compares where each puts its doubt, not
    how much of it it has. Only the weights are chosen on the softened predictions: the
    ensemble averages the members' own outputs and is calibrated afterwards, as before."""
    softened = [apply_temperature(task, p, floor_temperature(task, p)) for p in predictions]
    return select_ensemble(task, softened, y)


def _data_of(study, trial, artifact_dir):
    return build(local_data_args(dataset_args(trial, study), study.user_attrs, artifact_dir))


def _train_on_every_row(trial, data):
    """The trial's settings trained on the training and validation rows together, for the
    epochs of its own run (and its schedule); the loop's validation metrics are measured on
    those same rows (nothing is held out here: the search already chose)."""
    stored = trial.user_attrs.get("config")
    if not stored:
        raise ModelError(f"Trial {trial.number} stores no settings to refit (a study written before 0.1.0?).")
    config = TrainConfig.from_dict(stored)
    X, y = pooled_rows(data)
    every_row = dataclasses.replace(data, X_train=X, y_train=y, X_val=X, y_val=y)
    try:
        return train(every_row, config)
    except (ValueError, ImportError) as exc:
        raise ModelError(f"Trial {trial.number} cannot be refit here: {exc}") from None


def _out_of_fold(trials, task: str, artifact_dir) -> list[np.ndarray] | None:
    """Each trial's out-of-fold predictions of the rows outside the test split; None unless
    every trial was cross-validated."""
    try:
        folds = [load_run_array(t, OUT_OF_FOLD, artifact_dir) for t in trials]
    except WeightsNotFound as exc:
        raise ModelError(str(exc)) from None
    return [_as_output(task, f) for f in folds] if all(f is not None for f in folds) else None


def _held_out_predictions(study, chosen, shares, data, folds, artifact_dir) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    """The chosen trials' prediction of rows none of their networks trained on, averaged with
    ``shares``, with the labels, and where they come from: out of fold (``folds``, the chosen
    trials' out-of-fold predictions, when every one was cross-validated), else the validation
    split (each trial's own network). Nothing for regression."""
    if data.task not in (BINARY, MULTICLASS):
        return None, None, ""
    if folds is not None:
        return np.tensordot(shares, np.asarray(folds), axes=1), pooled_rows(data)[1], "out-of-fold"
    try:
        outputs = [model_of(study, t, artifact_dir, raw=False).output(data.X_val) for t in chosen]
    except WeightsNotFound as exc:
        raise ModelError(str(exc)) from None
    return np.tensordot(shares, np.asarray(outputs, dtype=np.float64), axes=1), data.y_val, "validation"


def _as_output(task: str, predictions: np.ndarray) -> np.ndarray:
    """Stored predictions ``(n, outputs)`` in the shape ``output`` gives: ``(n,)`` for binary."""
    predictions = np.asarray(predictions, dtype=np.float64)
    return predictions[:, 0] if task == BINARY and predictions.ndim == 2 else predictions


__all__ = ["EnsembleModel", "REFIT_ATTR", "RefitSummary", "apply_temperature", "choose_trials",
           "expected_error", "fit_temperature", "floor_binds", "floor_temperature", "hedged_temperature", "refit",
           "refit_model", "select_at_the_floor", "select_ensemble", "unseen_error_cost"]
