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
    ModelError,
    dataset_args,
    load_study,
    model_of,
    opened_storage,
    pick_trial,
    single_value,
)


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

    def summary(self, split: str, name: str) -> str:
        """``"0.0623 ± 0.0041 (3 seeds)"``, ``"0.0623"`` for one network, or ``"-"``."""
        scores = getattr(self, split)
        values = None if scores is None else scores.get(name)
        if not values:
            return "-"
        return mean_std(values)

    def lines(self) -> list[str]:
        count = len(self.seeds)
        out = [f"trial {self.trial_number} ({self.state.lower()}) of {self.study_name!r}: {count} "
               f"network{'s' if count > 1 else ''} (seed{'s' if count > 1 else ''} "
               f"{', '.join(map(str, self.seeds))})"]
        return out + [f"  {split:<11} {self.scores_text(split)}" for split in ("validation", "test")]

    def scores_text(self, split: str) -> str:
        """One split's scores as the command line and the report's header say them, e.g.
        ``"loss 0.10 ± 0.023 (3 seeds), accuracy 0.957 ± 0.009 (3 seeds)  (500 points, ...)"``."""
        if getattr(self, split) is None:
            return ("none: the study has no test split ([dataset] test_fraction = 0); its validation loss, "
                    "which chose this trial, is the only estimate")
        names = ["loss"] + (["accuracy"] if self.validation.get("accuracy") else [])
        what = {"validation": "the split that chose this trial", "test": "held out, never seen by the search"}
        scores = ", ".join(f"{name} {self.summary(split, name)}" for name in names)
        return f"{scores}  ({self.n_points[split]} points, {what[split]})"


def mean_std(values: list[float]) -> str:
    """Mean ± sample standard deviation of several networks' scores; one score as itself."""
    if len(values) == 1:
        return f"{values[0]:.5g}"
    return f"{np.mean(values):.5g} ± {np.std(values, ddof=1):.2g} ({len(values)} seeds)"


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
    from fcnn_opt.store.artifact_files import local_data_args
    from fcnn_opt.training.backends._base import accuracy, loss
    from fcnn_opt.training.tables import build

    args = dataset_args(chosen, study)
    data = build(local_data_args(args, study.user_attrs, artifact_dir))
    repeats = chosen.user_attrs.get("repeats") or {}
    seeds = repeats.get("seeds") or [(chosen.user_attrs.get("config") or {}).get("seed", 0)]
    splits = {"validation": (data.X_val, data.y_val)}
    if data.has_test:
        splits["test"] = (data.X_test, data.y_test)
    scores: dict[str, dict[str, list]] = {name: {"loss": [], "accuracy": []} for name in splits}
    for r in range(len(seeds)):
        model = model_of(study, chosen, artifact_dir, repeat=r, raw=False)  # the splits are scaled
        for name, (X, y) in splits.items():
            out = model.output(X)
            scores[name]["loss"].append(loss(data.task, out, y))
            value = accuracy(data.task, out, y)
            if value is not None:
                scores[name]["accuracy"].append(value)
    metric = study.user_attrs.get("metric", "val_loss")
    return Evaluation(study_name=study.study_name, trial_number=chosen.number, state=chosen.state.name,
                      value=single_value(chosen), metric=metric, seeds=list(seeds),
                      validation=scores["validation"], test=scores.get("test"),
                      n_points={name: len(X) for name, (X, _) in splits.items()}, dataset=args)


__all__ = ["Evaluation", "ModelError", "evaluate", "evaluate_trial", "mean_std"]
