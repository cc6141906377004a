"""A trial's honest estimate: its networks scored on the test split the search never saw.

    python -m fcnn_opt evaluate --study-name tpe            # the best trial
    python -m fcnn_opt evaluate --study-name tpe --trial 17

The best of many validation losses is an optimistic estimate of how the chosen settings do
on new data: the search picked it *because* it was low. A study whose ``[dataset]`` sets
``test_fraction`` keeps that share of the points out of training and validation (see
:func:`fcnn_opt.training.datasets.make_dataset`); here each of the trial's networks (one per
seed repeat) is scored on them, from its stored weights. Nothing is scored during the
search, so no choice can lean on these numbers.

A study without a test split (``test_fraction`` 0, and every study made before test splits
existed) is still evaluated: the test estimate is reported as missing, and the validation
numbers are labelled as what they are.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnn_opt.search.models import (
    REFIT_ATTR,
    ModelError,
    dataset_args,
    load_study,
    model_of,
    opened_storage,
    pick_trial,
    refit_model,
    single_value,
)
from fcnn_opt.search.objective import FOLDS_ATTR, OUT_OF_FOLD
from fcnn_opt.store.artifact_files import load_run_array, local_data_args
from fcnn_opt.store.optuna_internals import complete_trials
from fcnn_opt.training.backends._base import accuracy, loss
from fcnn_opt.training.folds import pooled_rows
from fcnn_opt.training.tables import build


@dataclass
class Evaluation:
    """Loss and accuracy (None for regression) of each of a trial's networks, per split.

    ``test`` is None when the study has no test split.
    """

    study_name: str
    trial_number: int
    state: str
    value: float | None
    metric: str
    seeds: list[int]
    validation: dict[str, list[float]]
    test: dict[str, list[float]] | None
    n_points: dict[str, int] = field(default_factory=dict)
    dataset: dict = field(default_factory=dict)
    folds: int = 1  # cross-validated: validation is out of fold, and networks are fold by fold
    averaged: dict[str, float] | None = None  # the test split scored on the mean of every network's output

    def summary(self, split: str, name: str) -> str:
        """``"0.0623 ± 0.0041 (3 seeds)"``, ``"0.0623"`` for one network, or ``"-"``."""
        scores = getattr(self, split)
        values = None if scores is None else scores.get(name)
        if not values:
            return "-"
        return mean_std(values, "networks" if self.folds > 1 else "seeds")

    def lines(self) -> list[str]:
        """The evaluation as printed by ``evaluate``: a head line (trial, networks, seeds or folds),
        then the mean ± std of the loss and accuracy on each split."""
        count = len(self.seeds)
        if self.folds > 1:
            head = (f"trial {self.trial_number} ({self.state.lower()}) of {self.study_name!r}: {count} networks "
                    f"({self.folds} folds x {count // self.folds} seed{'s' if count > self.folds else ''})")
        else:
            head = (f"trial {self.trial_number} ({self.state.lower()}) of {self.study_name!r}: {count} "
                    f"network{'s' if count > 1 else ''} (seed{'s' if count > 1 else ''} "
                    f"{', '.join(map(str, self.seeds))})")
        out = [head] + [f"  {split:<11} {self.scores_text(split)}" for split in ("validation", "test")]
        if self.averaged:
            scores = ", ".join(f"{name} {value:.5g}" for name, value in self.averaged.items())
            out.append(f"  {'averaged':<11} {scores}  (test points, the mean of the {count} networks' outputs)")
        return out

    def scores_text(self, split: str) -> str:
        """One split's scores as the command line and the report's header say them, e.g.
        ``"loss 0.10 ± 0.023 (3 seeds), accuracy 0.957 ± 0.009 (3 seeds)  (500 points, ...)"``."""
        if getattr(self, split) is None:
            return ("none: the study has no test split ([dataset] test_fraction = 0); its validation loss, "
                    "which chose this trial, is the only estimate")
        names = ["loss"] + (["accuracy"] if self.validation.get("accuracy") else [])
        what = {"validation": "the split that chose this trial", "test": "held out, never seen by the search"}
        if self.folds > 1:
            what["validation"] = ("cross-validated: each scored by the fold network that never trained on it; "
                                  "the folds chose this trial")
        scores = ", ".join(f"{name} {self.summary(split, name)}" for name in names)
        return f"{scores}  ({self.n_points[split]} points, {what[split]})"


def mean_std(values: list[float], unit: str = "seeds") -> str:
    """Mean ± sample standard deviation of several networks' scores, ``unit`` naming what they
    differ by (their seeds, or with folds, the networks); one score as itself."""
    if len(values) == 1:
        return f"{values[0]:.5g}"
    return f"{np.mean(values):.5g} ± {np.std(values, ddof=1):.2g} ({len(values)} {unit})"


def evaluate(storage, study_name: str, trial: int | None = None, *,
             artifact_dir: str | Path | None = None, allow_partial: bool = False) -> Evaluation:
    """Score trial ``trial`` (None: the best) of a stored study on its validation and test splits.

    Raises:
        ModelError: no such study or trial, an unfinished trial (without ``allow_partial``),
            or weights that cannot be found.
    """
    with opened_storage(storage) as opened:
        study = load_study(opened, study_name)
        return evaluate_trial(study, pick_trial(study, trial, allow_partial), artifact_dir)


def evaluate_trial(study, chosen, artifact_dir=None) -> Evaluation:
    """:func:`evaluate` for a trial already loaded from ``study``."""
    args = dataset_args(chosen, study)
    data = build(local_data_args(args, study.user_attrs, artifact_dir))
    repeats = chosen.user_attrs.get("repeats") or {}
    seeds = repeats.get("seeds") or [(chosen.user_attrs.get("config") or {}).get("seed", 0)]
    folds = chosen.user_attrs.get(FOLDS_ATTR) or {}
    if folds:
        seed = (chosen.user_attrs.get("config") or {}).get("seed", 0)
        seeds = [seed + r for _ in range(folds["n"]) for r in range(folds["repeats"])]
    splits = {"validation": (data.X_val, data.y_val)}
    if data.has_test:
        splits["test"] = (data.X_test, data.y_test)
    scores: dict[str, dict[str, list]] = {name: {"loss": [], "accuracy": []} for name in splits}
    outputs = []
    for r in range(len(seeds)):
        model = model_of(study, chosen, artifact_dir, repeat=r, raw=False)  # the splits are scaled
        for name, (X, y) in splits.items():
            if folds and name == "validation":
                continue  # a fold network trained on most of these rows: see the out-of-fold scores
            out = model.output(X)
            if name == "test":
                outputs.append(np.asarray(out, dtype=np.float64))
            _score(scores[name], data.task, out, y)
    averaged = None
    if folds:
        X_pool, y_pool = pooled_rows(data)
        splits["validation"] = (X_pool, y_pool)
        _score(scores["validation"], data.task, load_run_array(chosen, OUT_OF_FOLD, artifact_dir), y_pool)
        if outputs:
            mean = {"loss": [], "accuracy": []}
            _score(mean, data.task, np.mean(outputs, axis=0), data.y_test)
            averaged = {name: values[0] for name, values in mean.items() if values}
    metric = study.user_attrs.get("metric", "val_loss")
    return Evaluation(study_name=study.study_name, trial_number=chosen.number, state=chosen.state.name,
                      value=single_value(chosen), metric=metric, seeds=list(seeds),
                      validation=scores["validation"], test=scores.get("test"),
                      n_points={name: len(X) for name, (X, _) in splits.items()}, dataset=args,
                      folds=folds.get("n", 1), averaged=averaged)


def _score(scores: dict[str, list], task: str, out, y) -> None:
    scores["loss"].append(loss(task, out, y))
    value = accuracy(task, out, y)
    if value is not None:
        scores["accuracy"].append(value)


def refit_lines(study, artifact_dir=None) -> list[str]:
    """The study's refit (:mod:`fcnn_opt.search.refit`) scored on the test split, calibrated
    and not; nothing when the study has no refit."""
    model = refit_model(study, artifact_dir, raw=False)  # scored on the dataset's scaled arrays
    if model is None:
        return []
    attr = study.user_attrs[REFIT_ATTR]
    first = next(t for t in complete_trials(study) if t.number == model.trials[0])
    data = build(local_data_args(dataset_args(first, study), study.user_attrs, artifact_dir))
    lines = [f"model       {model.description}"]
    if not data.has_test:
        return lines + ["  test        none: the study has no test split ([dataset] test_fraction = 0)"]
    names = ("loss", "accuracy")
    calibrated, plain = {"loss": [], "accuracy": []}, {"loss": [], "accuracy": []}
    _score(calibrated, data.task, model.output(data.X_test), data.y_test)
    _score(plain, data.task, model.mean_output(data.X_test), data.y_test)

    def text(scores):
        return ", ".join(f"{name} {scores[name][0]:.5g}" for name in names if scores[name])

    seen_by = "search" if attr.get("members") == "folds" else "search or the refit"
    lines.append(f"  test        {text(calibrated)}  ({len(data.X_test)} points, held out, never seen by the "
                 f"{seen_by})")
    if model.temperature != 1.0:
        why = (f"the floor: the {attr.get('calibrated_on')} predictions expected fewer errors than one in "
               f"{attr['floor']} rows" if "floor" in attr else f"fitted on the {attr.get('calibrated_on')} predictions")
        lines.append(f"  uncalibrated {text(plain)}  (temperature {model.temperature:.3g}, {why})")
    elif attr.get("calibrated_on"):
        lines.append(f"  calibration none: the {attr['calibrated_on']} predictions asked for no softer "
                     "temperature (it never sharpens)")
    return lines


__all__ = ["Evaluation", "ModelError", "evaluate", "evaluate_trial", "mean_std", "refit_lines"]
