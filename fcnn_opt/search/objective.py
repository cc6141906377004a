"""`Objective`: an Optuna objective that trains one network per trial, with pruning.

Use it in any study of your own::

    import optuna
    from fcnn_opt import Objective

    objective = Objective(dataset="circles", space={"lr": {"low": 1e-3, "high": 1e-1, "log": True},
                                                    "units": [2, 4, 8]})
    study = optuna.create_study(direction=objective.direction, pruner=optuna.pruners.MedianPruner())
    study.optimize(objective, n_trials=20)

After every epoch the objective calls ``trial.report(metric, epoch)`` and
``trial.should_prune()`` (after the last one, only ``report``: the network is trained and
the trial completes), and raises :class:`optuna.TrialPruned` when told to. Each trial
keeps its loss histories, the original's legend string, the library, the dataset, seconds
per epoch and the final weights as user attributes.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from fcnn_opt.search.metrics import objective_values
from fcnn_opt.search.space import StudySpec, load_spec, parse_spec
from fcnn_opt.show.artifacts import TrialPictures
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.artifact_files import CONTINUES_ATTR, RUN_FILE_ATTR, load_state, save_run
from fcnn_opt.training.backends import TrainState
from fcnn_opt.training.datasets import Dataset
from fcnn_opt.training.folds import train_folds
from fcnn_opt.training.loop import TrainResult, train
from fcnn_opt.training.repeats import train_repeats
from fcnn_opt.training.tables import build, scaling_attr

if TYPE_CHECKING:
    import optuna

# Called when a trial's training ends (complete, pruned or diverged), e.g. to attach a picture.
TrialHook = Callable[["optuna.Trial", TrainResult], None]


def suggest(trial: optuna.Trial, spec: StudySpec) -> dict[str, Any]:
    """Ask ``trial`` for every searched hyperparameter of ``spec``; fixed ones are not suggested."""
    values: dict[str, Any] = {}
    params = spec.params
    order = ["lib", "n_layers", "units", "activation", "optimizer", "lr", "epochs", "batch_size", "l2", "seed"]
    for name in order:
        p = params[name]
        if not p.searched:
            continue
        if name == "units" and p.per_layer:
            n_layers = values.get("n_layers", params["n_layers"].value)
            for i in range(1, n_layers + 1):
                values[f"units_l{i}"] = _suggest_one(trial, f"units_l{i}", p)
        else:
            values[name] = _suggest_one(trial, name, p)
    return values


def _suggest_one(trial: optuna.Trial, name: str, p) -> Any:
    if p.choices is not None:
        return trial.suggest_categorical(name, list(p.choices))
    if p.kind == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, p.low, p.high, step=p.step, log=p.log)


def _rounded(values, digits: int = 7) -> list:
    return [float(f"{v:.{digits}g}") if v is not None and math.isfinite(v) else None for v in values]


def weights_to_json(weights) -> list:
    """A network's ``[(W, b), ...]`` as nested lists rounded to 7 decimals (JSON-ready)."""
    return [[W.astype(float).round(7).tolist(), b.astype(float).round(7).tolist()] for W, b in weights]


class Objective:
    """Train one network per trial and return its final validation metric.

    Args:
        spec: a parsed study definition (see :mod:`fcnn_opt.search.space`); or give ``dataset``
            and ``space`` instead.
        dataset: dataset name, or a dict of :func:`make_dataset` arguments.
        space: the ``[params]`` table as a dict (fixed values, lists of choices, ranges).
        metric: ``"val_loss"`` (minimise, default) or ``"val_accuracy"`` (maximise).
        on_trial_end: optional hooks called with ``(trial, result)`` after training.
        artifact_dir: a folder (an Optuna FileSystemArtifactStore) for each trial's weights, as
            one .npz file instead of a JSON user attribute (see
            :mod:`fcnn_opt.store.artifact_files`), and its picture.
        pictures: which trials get a picture in ``artifact_dir`` for optuna-dashboard:
            ``"none"`` (default), ``"complete"``, ``"best"`` or ``"all"``.
        snapshots: keep each network's weights after this many epochs spread over its run
            (in its run file; needs ``artifact_dir``): the report animates its decision
            boundary and its picture becomes an animated PNG. 0 (default) keeps none.
    """

    def __init__(self, spec: StudySpec | None = None, *, dataset: str | dict = "circles",
                 space: dict | None = None, metric: str = "val_loss",
                 on_trial_end: list[TrialHook] | None = None, artifact_dir: str | Path | None = None,
                 pictures: str = "none", snapshots: int = 0):
        if spec is None:
            data = {"name": dataset} if isinstance(dataset, str) else dict(dataset)
            # as given: a table gets one validation split unless ``dataset`` asks for folds
            spec = parse_spec({"dataset": data, "params": space or {}, "study": {"metric": metric}},
                              source="Objective", table_defaults=False)
        self.spec = spec
        self.on_trial_end = list(on_trial_end or [])
        if not isinstance(snapshots, int) or isinstance(snapshots, bool) or not 0 <= snapshots <= 100:
            raise ValueError(f"snapshots must be an integer from 0 to 100, got {snapshots!r}.")
        self.snapshots = snapshots
        self.artifact_dir = Path(artifact_dir) if artifact_dir is not None else None
        self.pictures = None
        if pictures != "none":
            if self.artifact_dir is None:
                raise ValueError("Objective(pictures=...) needs an artifact_dir to keep them in.")
            self.pictures = TrialPictures(self.artifact_dir, pictures, background=False)
        self._dataset: Dataset | None = None
        # A ``time.perf_counter()`` value: a trial still training then is stopped at its next
        # epoch and recorded as pruned (the runner sets it to the end of a time budget once
        # the study has a complete trial).
        self.stop_at: float | None = None

    @classmethod
    def from_file(cls, path: str | Path, **kwargs) -> Objective:
        """An objective for the study defined in a TOML file."""
        return cls(load_spec(path), **kwargs)

    @property
    def direction(self) -> str:
        """``"minimize"`` or ``"maximize"``: the direction of the study's metric, for
        ``optuna.create_study(direction=...)``."""
        return self.spec.direction

    @property
    def directions(self) -> list[str]:
        """One per objective: for ``optuna.create_study(directions=...)``."""
        return self.spec.directions

    @property
    def dataset(self) -> Dataset:
        """The study's dataset, built on first use and kept."""
        if self._dataset is None:
            self._dataset = build(self.spec.dataset)
        return self._dataset

    def __call__(self, trial: optuna.Trial) -> float:
        """Train the trial's network, reporting every epoch to ``trial``; return the metric."""
        return self.run(trial, TrialReporter(trial))

    def run(self, trial: optuna.Trial, reporter) -> float:
        """Like calling the objective, with per-epoch values going to ``reporter``."""
        plan = continuation_of(trial, reporter)
        if plan is not None:
            return self.continue_run(trial, reporter, plan)
        config = self.config_for(reporter.params_trial)
        watch = EpochWatch(reporter, self.spec.metric, report=not self.spec.multi, stop_at=self.stop_at,
                           last_epoch=config.epochs)
        result = self.train(config, watch)
        if watch.out_of_time:
            reporter.store({STOPPED_ATTR: "the time budget ended"})
        return self.conclude(trial, result, reporter, watch.pruned_at)

    def train(self, config, on_epoch) -> TrainResult:
        """Train one trial's network by its own backend (its seed repeats one after another,
        or together in the population engine; see :mod:`fcnn_opt.training.repeats`; with
        ``[dataset] folds``, one network per fold and seed, in lockstep: see
        :mod:`fcnn_opt.training.folds`). Where the
        study continues its best trials (``anneal``), the run keeps its state from the last
        epoch before its learning rate starts to fall (its end, when it does not)."""
        if self.spec.folds > 1:
            return train_folds(self.dataset, self.spec.folds, config, self.spec.repeats, on_epoch=on_epoch,
                               snapshots=self.snapshots)
        if self.spec.repeats > 1:
            return train_repeats(self.dataset, config, self.spec.repeats, on_epoch=on_epoch,
                                 snapshots=self.snapshots)
        keep = self.spec.state_epoch if self.spec.anneal > 0 else False
        return train(self.dataset, config, on_epoch=on_epoch, snapshots=self.snapshots, keep_state=keep)

    def continue_run(self, trial: optuna.Trial, reporter, plan: dict) -> float:
        """A continuation trial (see :data:`CONTINUES_ATTR`): the trial it continues, trained on
        from its stored state (the last epoch before its rate fell) to ``plan["epochs"]`` epochs
        in all, the learning rate falling linearly to zero over the same share of them as over
        the parent's (see :func:`continued_config`). Its epochs are reported (numbered on from
        the state's) and never pruned; its histories and network are stored like any trial's."""
        storage = internals.storage_of(trial.study)
        parent = storage.get_trial(internals.trial_id_for_number(trial.study, int(plan["trial"])))
        state = load_state(parent, self.artifact_dir)
        if state is None:  # recorded as failed, with the reason; the study goes on
            reporter.store({"fail_reason": f"trial {parent.number} kept no state to continue from (it was not "
                                           "trained by a study that continues its best trials)"})
            return float("nan")
        config = continued_config(self.config_for(reporter.params_trial), int(plan["epochs"]))
        watch = EpochWatch(reporter, self.spec.metric, prune=False)
        result = train(self.dataset, config, on_epoch=watch, resume=TrainState(**state), snapshots=self.snapshots)
        return self.conclude(trial, result, reporter, None)

    def config_for(self, trial: optuna.Trial):
        """Suggest the trial's hyperparameters and build its TrainConfig."""
        return self.spec.train_config(suggest(trial, self.spec))

    def conclude(self, trial: optuna.Trial, result: TrainResult, reporter,
                 pruned_at: int | None) -> float | list[float]:
        """Store the run on the trial; return its metric (a multi-objective study: each
        objective's value), NaN if it diverged, or raise TrialPruned."""
        import optuna

        metric = self.spec.metric
        attrs = result_attrs(result, self.spec, self.artifact_dir)
        final = getattr(result, metric)[-1]
        diverged = final is None or not math.isfinite(final)
        if diverged:
            attrs["fail_reason"] = f"diverged: {metric} became {final} at epoch {result.epochs_run}"
        reporter.store(attrs)
        for hook in self.on_trial_end:
            hook(trial, result)
        if self.pictures is not None:
            state = "failed" if diverged else ("pruned" if pruned_at is not None else "complete")
            self.pictures.submit(trial, result, reporter, state, None if diverged else float(final),
                                 dataset_args=dict(self.spec.dataset), maximize=self.direction == "maximize")
        if diverged:
            return float("nan")  # Optuna records the trial as FAIL and the study goes on
        if pruned_at is not None:
            raise optuna.TrialPruned(f"pruned at epoch {pruned_at}")
        if self.spec.multi:
            values = objective_values(result, self.spec.objectives)
            reporter.store({"objectives": dict(zip(self.spec.objectives, values, strict=True))})
            return values
        return float(final)


def continued_config(config, epochs: int):
    """The parent's config trained to ``epochs`` in all, its rate falling over the same share
    of them as over the parent's (all of the added epochs when the parent's never fell)."""
    if not config.decay_epochs:
        return config.replace(epochs=epochs, decay_epochs=epochs - config.epochs)
    return config.replace(epochs=epochs, decay_epochs=round(epochs * config.decay_epochs / config.epochs))


def continuation_of(trial: optuna.Trial, reporter) -> dict | None:
    """The plan of a continuation trial (its :data:`CONTINUES_ATTR`), or None for a new trial.
    Trials drawn on the pruning mirror are new ones: their attributes are not read back."""
    if reporter.params_trial is not trial:
        return None
    plan = trial.user_attrs.get(CONTINUES_ATTR)
    return plan if isinstance(plan, dict) else None


class Reporter(Protocol):
    """Where a running trial reports its epochs and keeps its attributes, and how it ends.

    :class:`TrialReporter` writes through Optuna's public API at once;
    :class:`fcnn_opt.search.mirror.MirrorReporter` buffers everything and decides pruning on
    the pruning mirror. :mod:`fcnn_opt.search.outcomes` tells a trial through either."""

    trial: optuna.Trial  # the study's trial
    params_trial: optuna.Trial  # the trial its hyperparameters are drawn from

    def report(self, value: float, epoch: int) -> bool:
        """Report the epoch's value; returns whether the trial is to be pruned now."""

    def record(self, value: float, epoch: int) -> None:
        """Report the epoch's value without asking the pruner."""

    def store(self, attrs: dict[str, Any]) -> None:
        """Set user attributes of the trial."""

    def store_system(self, attrs: dict[str, Any]) -> None:
        """Set system attributes of the trial."""

    def flush(self) -> None:
        """Write whatever is buffered to the trial (before it is told)."""

    def close(self, state: optuna.trial.TrialState, value: float | None) -> None:
        """The trial was told ``state`` (and ``value``): finish whatever the reporter holds."""


class TrialReporter:
    """Report each epoch to the trial and ask its pruner, one storage call at a time (Optuna's
    public API; :class:`fcnn_opt.search.mirror.MirrorReporter` is the buffered alternative).
    A :class:`Reporter`."""

    def __init__(self, trial: optuna.Trial):
        self.trial = self.params_trial = trial  # params_trial: where hyperparameters are drawn

    def report(self, value: float, epoch: int) -> bool:
        """Report the value to the trial; returns whether its pruner prunes it now."""
        self.trial.report(value, epoch)
        return self.trial.should_prune()

    def record(self, value: float, epoch: int) -> None:
        """Report a value without asking the pruner."""
        self.trial.report(value, epoch)

    def store(self, attrs: dict[str, Any]) -> None:
        """Set user attributes of the trial, one write each."""
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)

    def store_system(self, attrs: dict[str, Any]) -> None:
        """Set system attributes of the trial, one write each."""
        storage, trial_id = internals.storage_of(self.trial.study), internals.trial_id_of(self.trial)
        for key, value in attrs.items():
            storage.set_trial_system_attr(trial_id, key, value)

    def flush(self) -> None:
        """Nothing is buffered: every value was written when it was reported."""

    def close(self, state: optuna.trial.TrialState, value: float | None) -> None:
        """Nothing to finish: the trial holds everything."""


class EpochWatch:
    """``on_epoch`` for training: reports the metric each epoch, stops when told to prune.

    With ``report=False`` (a multi-objective study: Optuna takes no per-epoch values there)
    it only stops a run whose metric is no longer finite; with ``prune=False`` it reports
    each value without asking the pruner (a continuation runs to its end). Past ``stop_at``
    (a ``time.perf_counter()`` value) a run that reports and may be pruned stops after
    reporting the epoch, as if pruned, and ``out_of_time`` is set.

    ``last_epoch`` (the run's schedule, ``config.epochs``): that epoch's value is recorded
    without asking the pruner, and the clock is not looked at. The network is trained by
    then, and stopping it saves nothing: a pruner that would judge it there (successive
    halving's last rung is often the last epoch) would throw away a finished network and
    hide its value from the sampler, so a run that reaches its last epoch completes.
    """

    def __init__(self, reporter, metric: str, report: bool = True, prune: bool = True,
                 stop_at: float | None = None, last_epoch: int | None = None):
        self.reporter, self.metric, self.reports, self.prunes = reporter, metric, report, prune
        self.stop_at, self.last_epoch = stop_at, last_epoch
        self.pruned_at: int | None = None
        self.out_of_time = False

    def __call__(self, epoch: int, metrics: dict) -> bool:
        value = metrics[self.metric]
        if value is None or not math.isfinite(value):
            return True
        if self.reports and (not self.prunes or epoch == self.last_epoch):
            self.reporter.record(value, epoch)
        elif self.reports and self.reporter.report(value, epoch):
            self.pruned_at = epoch
            return True
        elif self.reports and self.stop_at is not None and time.perf_counter() > self.stop_at:
            self.pruned_at, self.out_of_time = epoch, True
            return True
        return False


def varying_keys(spec: StudySpec) -> list[str]:
    """Description keys for the hyperparameters the study searches (the legend's keys)."""
    keys = []
    for name in spec.searched:
        keys.append({"n_layers": "depth", "units": "units"}.get(name, name))
    if any(k.startswith("units_l") for k in spec.searched) or "n_layers" in spec.searched:
        keys.append("units")
    return list(dict.fromkeys(keys)) or ["lib", "units", "optimizer"]


STOPPED_ATTR = "stopped"  # why a trial was stopped other than by its pruner
REPEATS_ATTR = "repeats"


def repeat_attrs(result: TrainResult, metric: str) -> dict[str, Any]:
    """Seed repeats as user attributes: ``repeats`` (how many, their seeds, each one's final
    metrics) and ``<metric>_std``, the spread of the trial's value (its mean)."""
    import numpy as np

    runs = result.repeats
    info: dict[str, Any] = {"n": len(runs), "seeds": [run.config.seed for run in runs]}
    for name in ("val_loss", "val_accuracy"):
        if getattr(runs[0], name) is not None:
            info[name] = _rounded([getattr(run, name)[-1] for run in runs])
    finals = [v for v in info[metric] if v is not None]
    std = float(np.std(finals, ddof=1)) if len(finals) == len(runs) else float("nan")
    return {REPEATS_ATTR: info, f"{metric}_std": _rounded([std])[0]}


FOLDS_ATTR = "folds"
OUT_OF_FOLD = "out_of_fold"  # the run file's array of out-of-fold predictions


def fold_attrs(result: TrainResult, spec: StudySpec) -> dict[str, Any]:
    """Cross-validation as user attributes: ``folds`` (how many, seeds per fold, each fold's
    final metrics, the mean over its seeds) and ``<metric>_std``, the spread over folds of the
    trial's value (their mean)."""
    import numpy as np

    k, per_fold = spec.folds, spec.repeats
    runs = result.repeats
    info: dict[str, Any] = {"n": k, "repeats": per_fold}
    for name in ("val_loss", "val_accuracy"):
        if getattr(runs[0], name) is not None:
            finals = [getattr(run, name)[-1] for run in runs]
            info[name] = _rounded([float(np.mean(finals[i * per_fold:(i + 1) * per_fold])) for i in range(k)])
    values = [v for v in info[spec.metric] if v is not None]
    std = float(np.std(values, ddof=1)) if len(values) == k else float("nan")
    return {FOLDS_ATTR: info, f"{spec.metric}_std": _rounded([std])[0]}


def result_attrs(result: TrainResult, spec: StudySpec, artifact_dir: Path | None = None) -> dict[str, Any]:
    """A run's description, histories and weights, as the trial's user attributes: with an
    ``artifact_dir``, the histories and weights go to the trial's run file there and the
    attributes hold a pointer to it (see :mod:`fcnn_opt.store.artifact_files`)."""
    config = result.config
    attrs = {
        "description": result.description(varying_keys(spec)),
        "lib": config.lib,
        "dataset": result.dataset.name,
        "dataset_args": dict(spec.dataset),  # to rebuild the points for pictures
        "units": config.units(result.dataset.n_features, n_outputs=result.dataset.n_outputs),
        "config": config.to_dict(),
        "seconds_per_epoch": float(f"{sum(result.epoch_seconds) / max(result.epochs_run, 1):.6g}"),
        "epochs_run": result.epochs_run,
    }
    if result.dataset.input_scaling is not None:  # own data: what a loaded model must undo
        attrs.update(task=result.dataset.task, scaling=scaling_attr(result.dataset))
    histories = {"train_loss": _rounded(result.train_loss), "val_loss": _rounded(result.val_loss)}
    if result.val_accuracy is not None:
        histories["val_accuracy"] = _rounded(result.val_accuracy)
    if result.out_of_fold is not None:
        attrs.update(fold_attrs(result, spec))
    elif result.repeats:
        attrs.update(repeat_attrs(result, spec.metric))
    if artifact_dir is not None:
        others = [run.weights() for run in result.repeats[1:]]
        state = None
        if result.state is not None:  # to continue the run later (see Objective.continue_run)
            state = {"weights": result.state.weights, "moments": result.state.moments, "steps": result.state.steps,
                     "epoch": result.state.epoch, "epoch_seconds": result.state.histories["epoch_seconds"]}
        extra = {OUT_OF_FOLD: result.out_of_fold} if result.out_of_fold is not None else None
        attrs[RUN_FILE_ATTR] = save_run(artifact_dir, result.weights(), histories, repeats=others,
                                        snapshots=result.snapshots, state=state, arrays=extra)
    else:
        attrs.update(histories, weights=weights_to_json(result.weights()))
    return attrs
