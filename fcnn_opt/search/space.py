"""Study definitions as data: a TOML file's dataset, study settings and search space.

A value under ``[params]`` is either fixed (a scalar), a list of choices (the grid for
the grid sampler), or a range table ``{low, high, log, step}``; ``units`` may add
``per_layer = true`` to search one width per hidden layer::

    [dataset]
    name = "circles"

    [study]
    sampler = "tpe"
    n_trials = 100

    [params]
    lr = { low = 1e-4, high = 1e-1, log = true }
    n_layers = { low = 1, high = 3 }
    units = { low = 2, high = 64, log = true, per_layer = true }
    activation = ["relu", "tanh", "sigmoid"]

``epochs = { max = 400 }`` (optionally ``min = 15``, ``decay = 100``) makes epochs a resource
the search spends instead of a hyperparameter: every trial may train up to ``max`` epochs,
successive halving (the default pruner then) lets only the best third of the trials go on at
``min``, ``3 min``, ``9 min``, ... epochs, and the learning rate of a trial falls linearly to
zero over its last ``decay`` epochs. With a time budget (``timeout`` and no ``n_trials``),
``[study] anneal`` keeps a share of the time to continue the best trials from their state
(:mod:`fcnn_opt.search.anneal`; 0.2 by default for constant-rate trials, ``decay = 0``).

Every error names the file, the key, the bad value and the expected form.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fcnn_opt.search.metrics import OBJECTIVES, direction_of
from fcnn_opt.search.pruners import PRUNERS, RUNG_FACTOR
from fcnn_opt.search.samplers import SAMPLERS
from fcnn_opt.training import tables
from fcnn_opt.training.config import ACTIVATIONS, LIB_ALIASES, LIBS, OPTIMIZERS, TrainConfig
from fcnn_opt.training.data import SCALINGS
from fcnn_opt.training.datasets import _spec, check_arguments, list_datasets
from fcnn_opt.training.folds import MAX_FOLDS
from fcnn_opt.training.tables import is_table

# Samplers, pruners and objectives are registries (fcnn_opt.search.samplers, .pruners, .metrics):
# what a study file may name is what they hold when it is read.

# [params] keys: kind, and for categorical keys the allowed values
_PARAM_KINDS: dict[str, tuple[str, tuple | None]] = {
    "lib": ("str", LIBS),
    "n_layers": ("int", None),
    "units": ("int", None),
    "activation": ("str", ACTIVATIONS),
    "optimizer": ("str", OPTIMIZERS),
    "lr": ("float", None),
    "epochs": ("int", None),
    "batch_size": ("int", None),
    "l2": ("float", None),
    "seed": ("int", None),
}
_PARAM_DEFAULTS = {"lib": "numpy", "n_layers": 1, "units": 8, "activation": "relu", "optimizer": "adam",
                   "lr": 0.005, "epochs": 100, "batch_size": 100, "l2": 0.0}
_DATASET_KEYS = {"name": str, "n_points": int, "noise": float, "val_fraction": float,
                 "test_fraction": float, "seed": int, "folds": int,
                 # your own data (fcnn_opt.training.tables): a file or a scikit-learn dataset
                 "path": str, "target": str, "features": list, "task": str, "sklearn": str, "sha256": str,
                 "scaling": str}
_TABLE_KEYS = {"path", "target", "features", "task", "sklearn", "sha256", "scaling"}
_BUILTIN_ONLY = {"name", "n_points", "noise"}
_CLUSTER_KEYS = {"address": str, "resources": dict}
_STUDY_KEYS = {"name": str, "sampler": str, "pruner": str, "metric": str, "n_trials": int,
               "seed": int, "description": str, "repeats": int, "objectives": list, "timeout": float,
               "anneal": float, "refit": object}
# epochs = { max = ..., min = ... }: epochs as a resource that successive halving spends
_RESOURCE_KEYS = {"max", "min", "decay"}  # successive halving keeps 1 in RUNG_FACTOR (pruners.py)
DEFAULT_ANNEAL = 0.2  # the share of a time budget spent continuing the best constant-rate trials
MAX_REPEATS = 100
MAX_REFIT = 20  # [study] refit = { top = K }: at most this many trials averaged
# [study] refit = { members = ... }: what the chosen trials hand over (fcnn_opt.search.refit):
# their settings trained again on every row, or the networks their cross-validation trained.
REFIT_MEMBERS = ("refit", "folds")
# A study on a table whose file says nothing of folds or refit gets these: the settings that
# won `bench --tables` (docs/performance.md). The built-in 2-D datasets keep one validation
# split and no refit, as the seed article's experiments had them.
TABLE_FOLDS = 5
TABLE_REFIT = 10
TABLE_MEMBERS = "folds"  # where the study cross-validates: its chosen trials' fold networks
_RANGE_KEYS = {"low", "high", "log", "step", "per_layer"}
_CHOICE_KEYS = {"choices", "per_layer"}
MAX_LAYERS = 8

# The seed article's experiment, used when no study file is given (= studies/seed_grid.toml).
SEED_GRID = {
    "study": {"name": "seed_grid", "sampler": "grid", "pruner": "none", "metric": "val_loss", "seed": 0},
    "dataset": {"name": "circles", "n_points": 2500, "noise": 0.0, "val_fraction": 0.2, "seed": 0},
    "params": {"lib": "numpy", "epochs": [50, 100], "n_layers": 1, "units": [2, 4, 8],
               "activation": "relu", "optimizer": "adam", "lr": 0.005, "batch_size": 100, "l2": 0.0},
}


class SpaceError(ValueError):
    """A study definition that cannot be used; the message says where and why."""


@dataclass(frozen=True)
class Param:
    """One hyperparameter: fixed ``value``, or searched over ``choices`` or ``low..high``."""

    name: str
    kind: str  # "str", "int" or "float"
    value: Any = None
    choices: tuple | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    per_layer: bool = False
    resource_min: int | None = None  # epochs = { max, min, decay }: value is max; min is the first rung
    resource_decay: int | None = None  # the last epochs of a trial, over which its rate falls to zero

    @property
    def searched(self) -> bool:
        """Whether the value is searched (choices or a range) rather than fixed."""
        return self.choices is not None or self.low is not None

    def to_json(self) -> dict:
        """The parameter's set fields as a dict (None and False left out), for the fingerprint."""
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}

    def to_toml(self) -> Any:
        """The ``[params]`` value this parameter was parsed from (read back by parse_spec)."""
        if self.choices is not None:
            return {"choices": list(self.choices), "per_layer": True} if self.per_layer else list(self.choices)
        if self.resource_min is not None:
            return {"max": self.value, "min": self.resource_min, "decay": self.resource_decay}
        if self.low is None:
            return self.value
        raw = {"low": self.low, "high": self.high}
        raw.update({k: v for k, v in (("log", self.log), ("step", self.step), ("per_layer", self.per_layer))
                    if v not in (None, False)})
        return raw


@dataclass(frozen=True)
class StudySpec:
    """A parsed study definition."""

    name: str
    dataset: dict
    params: dict[str, Param]
    sampler: str = "tpe"
    pruner: str = "median"
    metric: str = "val_loss"
    n_trials: int | None = None
    seed: int = 0
    description: str = ""
    repeats: int = 1  # networks per trial, seeds seed .. seed + repeats - 1
    objectives: tuple[str, ...] = ()  # several: a multi-objective study (no pruning)
    timeout: float | None = None  # seconds each run may take; without n_trials, the budget is time
    # share of a time budget kept to continue the best trials with a decaying learning rate
    # (epochs as a resource only; see fcnn_opt.search.anneal); 0 turns it off
    anneal: float = 0.0
    # refit the best trial (1) or the k best, averaged (k), on every row once the search ends;
    # 0: no refit (see fcnn_opt.search.refit). Not part of the fingerprint: trials are the same.
    refit: int = 0
    # what each chosen trial adds to the ensemble: "refit" (its settings trained again on every
    # row) or "folds" (the K networks its cross-validation trained; no training after the search)
    refit_members: str = "refit"
    source: str = "<defaults>"
    train_seed_fixed: bool = field(default=False, repr=False)
    # the settings the table defaults filled in ("folds", "refit"): the file said nothing of them
    table_defaults: tuple[str, ...] = ()
    # [cluster]: where the file's runs go (address, resources; see fcnn_opt.search.cluster).
    # Not part of the definition or the fingerprint: a study is the same wherever it runs.
    cluster: dict = field(default_factory=dict)

    @property
    def folds(self) -> int:
        """Cross-validation folds per trial (``[dataset] folds``); 1: one validation split."""
        return int(self.dataset.get("folds", 1))

    @property
    def direction(self) -> str:
        """The direction of ``metric`` (of a one-objective study; see :attr:`directions`)."""
        return direction_of(self.metric)

    @property
    def multi(self) -> bool:
        """Whether the study optimises several objectives (a Pareto set, no single best trial)."""
        return len(self.objectives) > 1

    @property
    def uses_grid(self) -> bool:
        """Whether the sampler runs the grid of the ``[params]`` lists, each point once."""
        return SAMPLERS.get(self.sampler).grid

    @property
    def directions(self) -> list[str]:
        """One direction per objective: ``[direction]`` for a one-objective study."""
        return [direction_of(name) for name in self.objectives] if self.multi else [self.direction]

    @property
    def searched(self) -> dict[str, Param]:
        """The parameters that are searched, by name (the fixed ones left out)."""
        return {k: p for k, p in self.params.items() if p.searched}

    @property
    def libs(self) -> tuple[str, ...]:
        """The training libraries this study's trials may use (several when ``lib`` is searched)."""
        lib = self.params["lib"]
        return tuple(lib.choices) if lib.choices is not None else (lib.value,)

    @property
    def epoch_range(self) -> tuple[int, int] | None:
        """``(min, max)`` when epochs are a resource (``epochs = { max = ... }``): every trial may
        train up to max epochs, and successive halving stops all but the best third of them at
        min, 3 min, 9 min, ... epochs. None when epochs are a hyperparameter or fixed."""
        p = self.params["epochs"]
        return (p.resource_min, p.value) if p.resource_min is not None else None

    @property
    def decay_epochs(self) -> int:
        """Where epochs are a resource: the last epochs of a trial that reaches max, over which
        its learning rate falls linearly to zero (``decay``; 0 keeps it constant)."""
        return self.params["epochs"].resource_decay or 0

    @property
    def state_epoch(self) -> int:
        """Where epochs are a resource: the epoch whose state a trial keeps to be continued,
        the last before its rate starts to fall (max when it never does)."""
        return self.params["epochs"].value - self.decay_epochs

    @property
    def anneals(self) -> bool:
        """Whether runs end by continuing their best trials (a time budget, epochs a resource)."""
        return self.anneal > 0 and self.timeout is not None and self.n_trials is None

    def grid(self) -> dict[str, list]:
        """The grid sampler's search space (Optuna parameter name -> values)."""
        grid: dict[str, list] = {}
        for name, p in self.searched.items():
            if p.choices is None:
                raise SpaceError(
                    f"{self.source}: [params].{name} is a range; the grid sampler needs a list of "
                    f"values, e.g. {name} = [1, 2, 3]."
                )
            if name == "units" and p.per_layer:
                layers = self.params["n_layers"]
                if layers.searched:
                    raise SpaceError(
                        f"{self.source}: [params].units has per_layer = true while n_layers is searched; "
                        "the grid sampler needs a fixed n_layers for per-layer widths."
                    )
                for i in range(1, layers.value + 1):
                    grid[f"units_l{i}"] = list(p.choices)
            else:
                grid[name] = list(p.choices)
        return grid

    def grid_size(self) -> int:
        """The number of points of :meth:`grid`: the product of its lists' lengths."""
        return math.prod(len(v) for v in self.grid().values())

    def fingerprint(self) -> str:
        """A hash of everything that defines the trials, to refuse mixing two studies."""
        dataset = dict(self.dataset)
        if "sha256" in dataset:  # a data file is known by its content, wherever it lies
            dataset.pop("path", None)
        data = {"dataset": dataset, "metric": self.metric,
                "params": {k: p.to_json() for k, p in sorted(self.params.items())}}
        if self.repeats > 1:  # absent at 1, so studies made before repeats keep their hash
            data["repeats"] = self.repeats
        if self.multi:
            data["objectives"] = list(self.objectives)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        """The definition as a TOML-shaped dict (JSON-safe): ``parse_spec`` reads it back to
        a spec with the same fingerprint, so a worker can rebuild the study without the file."""
        study = {"name": self.name, "sampler": self.sampler, "pruner": self.pruner,
                 "metric": self.metric, "seed": self.seed}
        if self.n_trials is not None:
            study["n_trials"] = self.n_trials
        if self.description:
            study["description"] = self.description
        if self.repeats > 1:
            study["repeats"] = self.repeats
        if self.objectives:
            study["objectives"] = list(self.objectives)
        if self.timeout is not None:
            study["timeout"] = self.timeout
        if self.epoch_range is not None:
            study["anneal"] = self.anneal
        if self.refit:
            study["refit"] = {"top": self.refit}
            if self.refit_members != "refit":
                study["refit"]["members"] = self.refit_members
        return {"study": study, "dataset": dict(self.dataset),
                "params": {name: p.to_toml() for name, p in self.params.items()}}

    def without_table_defaults(self) -> StudySpec:
        """The spec as its file wrote it, without the table defaults: how an earlier release,
        which had none, read the same file (see :func:`fcnn_opt.search.runner.as_stored`)."""
        if not self.table_defaults:
            return self
        data = dict(self.dataset)
        anneal = self.anneal
        if "folds" in self.table_defaults:
            data.pop("folds", None)
            anneal = _parse_anneal({"repeats": self.repeats}, self.params, self.objectives, self.source)
        refit, members = (0, "refit") if "refit" in self.table_defaults else (self.refit, self.refit_members)
        return replace(self, dataset=data, anneal=anneal, refit=refit, refit_members=members, table_defaults=())

    def with_overrides(self, *, lib: str | None = None, dataset: str | None = None,
                       seed: int | None = None, sampler: str | None = None,
                       pruner: str | None = None, n_trials: int | None = None,
                       repeats: int | None = None, folds: int | None = None) -> StudySpec:
        """Apply command-line overrides, validated like the file's own values."""
        params, data = dict(self.params), dict(self.dataset)
        changes: dict[str, Any] = {}
        if lib is not None:
            params["lib"] = _parse_param("lib", LIB_ALIASES.get(lib, lib), "--lib")
        if dataset is not None:  # a built-in dataset instead of the file's
            data = {k: v for k, v in data.items() if k not in _TABLE_KEYS}
            data["name"] = dataset
            _check_dataset(data, "--dataset")
        if seed is not None:
            _check_int("--seed", seed, 0)
            changes["seed"] = seed
            if not self.train_seed_fixed:
                params["seed"] = Param("seed", "int", value=seed)
        for key, value, allowed in (("sampler", sampler, SAMPLERS), ("pruner", pruner, PRUNERS)):
            if value is not None:
                _check_choice(f"--{key}", value, allowed.names())
                changes[key] = value
        if n_trials is not None:
            _check_int("--n-trials", n_trials, 1)
            changes["n_trials"] = n_trials
        if repeats is not None:
            _check_repeats("--repeats", repeats)
            changes["repeats"] = repeats
        if folds is not None:
            data = {k: v for k, v in data.items() if k != "val_fraction" or folds == 1}
            data["folds"] = folds
            _check_folds(data, "--folds")
            changes["table_defaults"] = tuple(d for d in self.table_defaults if d != "folds")
            if "refit" in self.table_defaults:  # the table default follows the folds
                changes["refit_members"] = _table_members(folds)
            elif folds < 2 and self.refit_members == "folds":
                raise SpaceError(f"--folds {folds}: this study's [study] refit hands over its trials' fold "
                                 "networks (members = \"folds\"), which needs folds = 2 or more.")
        if (lib is not None and params["lib"].value != "numpy") or (repeats or 1) > 1 or (folds or 1) > 1:
            changes["anneal"] = 0.0  # only NumPy continues a run, one network per trial
        if lib is not None and params["lib"].value != "numpy" and params["epochs"].resource_decay:
            params["epochs"] = replace(params["epochs"], resource_decay=0)  # and only NumPy decays the rate
        spec = StudySpec(**{**self.__dict__, **changes, "params": params, "dataset": data})
        if spec.uses_grid:
            spec.grid()  # raise now for ranges given to the grid sampler
        _check_multi(spec, "the command line", pruner_given=pruner is not None)
        return spec

    def train_config(self, values: dict[str, Any]) -> TrainConfig:
        """The TrainConfig of one trial from its parameter values (fixed ones filled in)."""
        merged = {k: p.value for k, p in self.params.items() if not p.searched}
        merged.update(values)
        n_layers = merged.pop("n_layers")
        if "units" in merged:
            dims = (merged.pop("units"),) * n_layers
        else:
            dims = tuple(merged.pop(f"units_l{i}") for i in range(1, n_layers + 1))
        for key in [k for k in merged if k.startswith("units_l")]:
            merged.pop(key)
        return TrainConfig(dims=dims, decay_epochs=self.decay_epochs, **merged)


def _of_type(value, expected: type) -> bool:
    """Whether a TOML value has the type a key expects (an integer serves as a float; a
    boolean is never a number)."""
    return (isinstance(value, expected) or (expected is float and isinstance(value, int))) \
        and not isinstance(value, bool)


def _check_choice(where: str, value, allowed) -> None:
    if value not in allowed:
        raise SpaceError(f"{where}: expected one of {{{', '.join(map(str, allowed))}}}, got {value!r}.")


def _check_int(where: str, value, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise SpaceError(f"{where}: expected an integer >= {minimum}, got {value!r}.")


def _parse_objectives(where: str, raw, task: str) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not raw or not all(isinstance(name, str) for name in raw):
        raise SpaceError(f"{where}: expected a list of objective names, e.g. [\"val_loss\", \"n_params\"], "
                         f"got {raw!r}.")
    for name in raw:
        _check_choice(where, name, OBJECTIVES.names())
    if len(set(raw)) != len(raw):
        raise SpaceError(f"{where}: an objective is listed twice: {raw}.")
    if len(raw) < 2:
        metrics = " or ".join(f'"{name}"' for name in OBJECTIVES.names(per_epoch=True))
        raise SpaceError(f"{where}: lists one objective; objectives is for several (e.g. "
                         f"[\"val_loss\", \"n_params\"]); for one, use metric = {metrics}.")
    for name in raw:
        if OBJECTIVES.get(name).classification and task == "regression":
            raise SpaceError(f"{where}: {name} needs a classification dataset; this one regresses.")
    return tuple(raw)


def _check_multi(spec: StudySpec, where: str, pruner_given: bool) -> None:
    """A multi-objective study: one of the samplers that handle several objectives, no pruner."""
    if not spec.multi:
        return
    if not SAMPLERS.get(spec.sampler).multi_objective:
        multi = SAMPLERS.names(multi_objective=True)
        raise SpaceError(f"{where}: sampler {spec.sampler!r} cannot optimise several objectives "
                         f"({', '.join(spec.objectives)}). Use one of {{{', '.join(multi)}}}.")
    if PRUNERS.get(spec.pruner).prunes and pruner_given:
        raise SpaceError(f"{where}: pruner {spec.pruner!r} is not offered with several objectives "
                         "(Optuna's pruners judge one value per epoch); use pruner = \"none\".")


def _check_repeats(where: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_REPEATS:
        raise SpaceError(f"{where}: expected an integer from 1 to {MAX_REPEATS} (networks trained per "
                         f"trial, one per seed), got {value!r}.")


def _check_dataset(data: dict, where: str, base: Path | None = None) -> str:
    """Check ``[dataset]`` (in place: a data file's path is made absolute, from ``base``, and its
    content hash added) and return its task (binary, multiclass or regression)."""
    for key, value in data.items():
        if key not in _DATASET_KEYS:
            raise SpaceError(f"{where}: unknown key [dataset].{key}. Valid keys: {', '.join(_DATASET_KEYS)}.")
        expected = _DATASET_KEYS[key]
        if not _of_type(value, expected):
            raise SpaceError(f"{where}: [dataset].{key} must be {expected.__name__}, got {value!r}.")
    _check_folds(data, where)
    _check_scaling(data, where)
    if tables.is_table(data):
        _check_table(data, where, base)
    elif data.get("name") not in list_datasets():
        raise SpaceError(f"{where}: [dataset].name {data.get('name')!r} is unknown. "
                         f"Valid datasets: {', '.join(list_datasets())}.")
    try:
        if tables.is_table(data):
            return tables.build(data).task
        check_arguments(**tables.dataset_args(data))  # nothing drawn: sizes are checked before any work (search.sizes)
        return _spec(data["name"]).task
    except ValueError as exc:
        raise SpaceError(f"{where}: [dataset]: {exc}") from None


def _check_folds(data: dict, where: str) -> None:
    """``[dataset] folds = K``: cross-validation over K folds (see fcnn_opt.training.folds).
    Absent at 1, so a study without folds keeps its fingerprint."""
    folds = data.get("folds", 1)
    if isinstance(folds, bool) or not isinstance(folds, int) or not 1 <= folds <= MAX_FOLDS:
        raise SpaceError(f"{where}: [dataset].folds must be a whole number from 1 to {MAX_FOLDS}, got {folds!r}.")
    if folds == 1:
        data.pop("folds", None)
    elif "val_fraction" in data:
        raise SpaceError(f"{where}: [dataset] takes folds or val_fraction, not both: with {folds} folds each "
                         "fold in turn is the validation split.")


def _check_scaling(data: dict, where: str) -> None:
    """``[dataset] scaling``: how a table's features are standardised (see
    fcnn_opt.training.data). Absent at "columns", so a study that leaves it keeps its fingerprint."""
    if "scaling" not in data:
        return
    if data["scaling"] not in SCALINGS:
        raise SpaceError(f"{where}: [dataset].scaling must be one of {', '.join(map(repr, SCALINGS))}, "
                         f"got {data['scaling']!r}.")
    if not tables.is_table(data):
        raise SpaceError(f"{where}: [dataset].scaling applies to your own data (path or sklearn); the built-in "
                         "datasets are generated on one scale.")
    if data["scaling"] == "columns":
        data.pop("scaling")


def _check_table(data: dict, where: str, base: Path | None) -> None:
    """Your own data: ``path`` or ``sklearn``, never with a built-in dataset's keys; the file's
    path made absolute and its hash recorded, or checked against the hash the study stored."""
    mixed = sorted(_BUILTIN_ONLY & set(data))
    if mixed:
        raise SpaceError(f"{where}: [dataset] {', '.join(mixed)} belong to the built-in datasets; with "
                         "path or sklearn, give target, features, task, scaling, val_fraction, test_fraction, seed.")
    if "path" in data and "sklearn" in data:
        raise SpaceError(f"{where}: [dataset] takes path or sklearn, not both.")
    if "features" in data and not all(isinstance(f, str) for f in data["features"]):
        raise SpaceError(f"{where}: [dataset].features must be a list of column names.")
    if "sklearn" in data:
        _check_choice(f"{where}: [dataset].sklearn", data["sklearn"], tables.SKLEARN_DATASETS)
        return
    path = Path(data["path"]).expanduser()
    if not path.is_absolute():
        path = ((base or Path.cwd()) / path).resolve()
    if not path.is_file():
        raise SpaceError(f"{where}: [dataset].path {str(path)!r}: no such file"
                         + (" on this machine (copy the study's data file there)." if "sha256" in data else "."))
    digest = tables.file_digest(path)
    if data.get("sha256") not in (None, digest):
        raise SpaceError(f"{where}: the data file {str(path)!r} changed since the study was made "
                         f"(sha256 {digest[:12]}..., the study has {data['sha256'][:12]}...); "
                         "a study's trials must all see the same data.")
    data["path"], data["sha256"] = str(path), digest


def _check_value(where: str, name: str, kind: str, allowed, value) -> Any:
    if kind == "str":
        if not isinstance(value, str) or (allowed and value not in allowed):
            raise SpaceError(f"{where}: [params].{name} value {value!r} is not allowed. "
                             f"Expected one of {{{', '.join(allowed)}}}.")
        return value
    if kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise SpaceError(f"{where}: [params].{name} must be an integer, got {value!r}.")
        minimum = 0 if name in ("seed",) else 1
        if value < minimum:
            raise SpaceError(f"{where}: [params].{name} must be >= {minimum}, got {value!r}.")
        if name == "n_layers" and value > MAX_LAYERS:
            raise SpaceError(f"{where}: [params].n_layers must be <= {MAX_LAYERS}, got {value!r}.")
        return value
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise SpaceError(f"{where}: [params].{name} must be a number, got {value!r}.")
    if value < 0 or (name == "lr" and value == 0):
        raise SpaceError(f"{where}: [params].{name} must be {'> 0' if name == 'lr' else '>= 0'}, got {value!r}.")
    return float(value)


def _parse_param(name: str, raw, where: str, lib: Param | None = None) -> Param:
    if name not in _PARAM_KINDS:
        raise SpaceError(f"{where}: unknown key [params].{name}. Valid keys: {', '.join(_PARAM_KINDS)}.")
    kind, allowed = _PARAM_KINDS[name]
    if name == "lib" and isinstance(raw, str):
        raw = LIB_ALIASES.get(raw, raw)
    per_layer = False
    if isinstance(raw, dict):
        per_layer = bool(raw.get("per_layer", False))
        if per_layer and name != "units":
            raise SpaceError(f"{where}: [params].{name}: per_layer applies to units only.")
        if name == "epochs" and "max" in raw:
            return _parse_resource(raw, where, lib)
        if "choices" in raw:
            extra = set(raw) - _CHOICE_KEYS
            if extra:
                raise SpaceError(f"{where}: [params].{name}: unknown key(s) {sorted(extra)} next to choices.")
            raw = raw["choices"]
        else:
            return _parse_range(name, kind, raw, where, per_layer)
    if isinstance(raw, list):
        if not raw:
            raise SpaceError(f"{where}: [params].{name} is an empty list; give at least one value.")
        choices = tuple(_check_value(where, name, kind, allowed, v) for v in raw)
        if len(set(choices)) != len(choices):
            raise SpaceError(f"{where}: [params].{name} lists a value twice: {list(raw)}.")
        return Param(name, kind, choices=choices, per_layer=per_layer)
    return Param(name, kind, value=_check_value(where, name, kind, allowed, raw))


def _parse_resource(raw: dict, where: str, lib: Param | None) -> Param:
    """``epochs = { max = 400, min = 15, decay = 100 }``: min defaults to max / 27 rounded up,
    so the last rung (9 min) comes well before max: a trial stopped there has not spent nearly
    all of it. decay defaults to max / 4 (at most max - 9 min: the rate falls after the last
    rung) with the NumPy backend (the one that decays a rate and continues a run) and to 0
    with the others."""
    form = "epochs = { max = 400 } or { max = 400, min = 15, decay = 100 }"
    extra = set(raw) - _RESOURCE_KEYS
    if extra:
        raise SpaceError(f"{where}: [params].epochs as a resource must be {form}; got keys {sorted(raw)}.")
    top = _check_value(where, "epochs", "int", None, raw["max"])
    low = raw.get("min", max(1, -(-top // RUNG_FACTOR ** 3)))
    low = _check_value(where, "epochs", "int", None, low)
    if low > top:
        raise SpaceError(f"{where}: [params].epochs has min > max ({low} > {top}).")
    numpy = lib is None or (not lib.searched and lib.value == "numpy")
    decay = raw.get("decay", max(0, min(top // 4, top - RUNG_FACTOR ** 2 * low)) if numpy else 0)
    if not isinstance(decay, int) or isinstance(decay, bool) or not 0 <= decay <= top - RUNG_FACTOR ** 2 * low:
        raise SpaceError(f"{where}: [params].epochs.decay must be an integer from 0 to max - 9 min "
                         f"({top - RUNG_FACTOR ** 2 * low}: the rate falls after the last rung), got {decay!r}.")
    if decay and not numpy:
        raise SpaceError(f"{where}: [params].epochs.decay needs lib = \"numpy\" (the backend that decays the "
                         "rate); set decay = 0.")
    return Param("epochs", "int", value=top, resource_min=low, resource_decay=decay)


def _parse_range(name: str, kind: str, raw: dict, where: str, per_layer: bool) -> Param:
    form = f"{name} = {{ low = ..., high = ..., log = false }}"
    if kind == "str":
        raise SpaceError(f"{where}: [params].{name} takes a value or a list of choices, not a range.")
    extra = set(raw) - _RANGE_KEYS
    if extra or "low" not in raw or "high" not in raw:
        raise SpaceError(f"{where}: [params].{name} range must be {form}; got keys {sorted(raw)}.")
    low = _check_value(where, name, kind, None, raw["low"])
    high = _check_value(where, name, kind, None, raw["high"])
    if low > high:
        raise SpaceError(f"{where}: [params].{name} has low > high ({low} > {high}).")
    log = raw.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: [params].{name}.log must be true or false, got {log!r}.")
    if log and low <= 0:
        raise SpaceError(f"{where}: [params].{name} is log-scaled, so low must be > 0, got {low!r}.")
    step = raw.get("step")
    if step is not None:
        if log:
            raise SpaceError(f"{where}: [params].{name} cannot have both log = true and a step.")
        step = _check_value(where, name, kind, None, step)
    return Param(name, kind, low=low, high=high, log=log, step=step, per_layer=per_layer)


def parse_spec(data: dict, source: str = "<dict>", name: str | None = None,
               base: Path | None = None, table_defaults: bool = True) -> StudySpec:
    """Build a StudySpec from a TOML-shaped dict; ``source`` names it in errors, and a data
    file's relative path is relative to ``base`` (the study file's folder; default: here).

    A study on a table (``[dataset] path`` or ``sklearn``) whose file says nothing of folds or
    refit gets ``TABLE_FOLDS`` folds and a refit ensemble of the ``TABLE_REFIT`` best trials
    (``spec.table_defaults`` names what was filled in), unless ``table_defaults`` is false (a
    stored definition, read back as it was written). Folds are not filled in where the file
    chose a validation split (``val_fraction``) or asked for ``anneal``, which needs one
    network per trial; refit is not, for several objectives."""
    unknown = set(data) - {"dataset", "study", "params", "cluster"}
    if unknown:
        raise SpaceError(f"{source}: unknown table(s) {sorted(unknown)}. "
                         "Valid tables: [dataset], [study], [params], [cluster].")
    cluster = _check_cluster(data.get("cluster", {}), source)
    study = dict(data.get("study", {}))
    for key, value in study.items():
        if key not in _STUDY_KEYS:
            raise SpaceError(f"{source}: unknown key [study].{key}. Valid keys: {', '.join(_STUDY_KEYS)}.")
        if _STUDY_KEYS[key] is not object and not _of_type(value, _STUDY_KEYS[key]):  # object: checked below
            raise SpaceError(f"{source}: [study].{key} must be {_STUDY_KEYS[key].__name__}, got {value!r}.")
    _check_choice(f"{source}: [study].sampler", study.get("sampler", "tpe"), SAMPLERS.names())
    _check_choice(f"{source}: [study].pruner", study.get("pruner", "median"), PRUNERS.names())
    _check_choice(f"{source}: [study].metric", study.get("metric", "val_loss"), OBJECTIVES.names(per_epoch=True))
    if "n_trials" in study:
        _check_int(f"{source}: [study].n_trials", study["n_trials"], 1)
    seed = study.get("seed", 0)
    _check_int(f"{source}: [study].seed", seed, 0)
    _check_repeats(f"{source}: [study].repeats", study.get("repeats", 1))
    timeout = study.get("timeout")
    if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise SpaceError(f"{source}: [study].timeout must be a number of seconds > 0, got {timeout!r}.")

    dataset = dict(data.get("dataset", {}))
    table = is_table(dataset)
    if not table:
        dataset = {"name": "circles", **dataset}
    defaults = _table_defaults(dataset, study) if table and table_defaults else ()
    if "folds" in defaults:
        dataset["folds"] = TABLE_FOLDS
    task = _check_dataset(dataset, source, base)

    raw_params = dict(data.get("params", {}))
    train_seed_fixed = "seed" in raw_params
    raw_params.setdefault("seed", seed)
    lib = _parse_param("lib", raw_params["lib"], source) if "lib" in raw_params else None
    params = {key: _parse_param(key, raw, source, lib) for key, raw in raw_params.items()}
    for key, default in _PARAM_DEFAULTS.items():
        params.setdefault(key, Param(key, _PARAM_KINDS[key][0], value=default))
    objectives = _parse_objectives(f"{source}: [study].objectives", study.get("objectives"), task)
    if "refit" in defaults and not objectives:
        study["refit"] = {"top": TABLE_REFIT, "members": _table_members(int(dataset.get("folds", 1)))}
    else:
        defaults = tuple(d for d in defaults if d != "refit")
    # The metric the loss plots and pictures speak of: the first validation objective.
    metric = next((name for name in objectives if OBJECTIVES.get(name).per_epoch), study.get("metric", "val_loss"))
    resource = params["epochs"].resource_min is not None
    default_pruner = "none" if objectives else ("sha" if resource else "median")
    refit, members = _parse_refit(study.get("refit", False), f"{source}: [study].refit", objectives,
                                  int(dataset.get("folds", 1)))
    spec = StudySpec(
        name=study.get("name", name or "fcnn_opt"),
        dataset=dataset,
        params=params,
        sampler=study.get("sampler", "tpe"),
        pruner=study.get("pruner", default_pruner),
        metric=metric,
        n_trials=study.get("n_trials"),
        seed=seed,
        description=study.get("description", ""),
        repeats=study.get("repeats", 1),
        objectives=objectives,
        timeout=float(timeout) if timeout is not None else None,
        anneal=_parse_anneal(study, params, objectives, source, dataset.get("folds", 1)),
        refit=refit,
        refit_members=members,
        source=source,
        train_seed_fixed=train_seed_fixed,
        table_defaults=defaults,
        cluster=cluster,
    )
    if spec.uses_grid:
        spec.grid()
    _check_multi(spec, f"{source}: [study]", pruner_given="pruner" in study)
    return spec


def _check_cluster(cluster, source: str) -> dict:
    """``[cluster]``: ``address`` (a Dask scheduler, ``"local"`` or ``"local:N"``) and
    ``resources`` (a table of Dask resources each worker task needs, e.g. ``{ GPU = 1 }``)."""
    if not isinstance(cluster, dict):
        raise SpaceError(f"{source}: [cluster] must be a table, got {cluster!r}.")
    for key, value in cluster.items():
        if key not in _CLUSTER_KEYS:
            raise SpaceError(f"{source}: unknown key [cluster].{key}. Valid keys: {', '.join(_CLUSTER_KEYS)}.")
        if not isinstance(value, _CLUSTER_KEYS[key]):
            raise SpaceError(f"{source}: [cluster].{key} must be a {_CLUSTER_KEYS[key].__name__}, got {value!r}.")
    for name, amount in cluster.get("resources", {}).items():
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not amount > 0:
            raise SpaceError(f"{source}: [cluster].resources.{name} must be a number > 0, got {amount!r}.")
    return dict(cluster)


def _table_defaults(dataset: dict, study: dict) -> tuple[str, ...]:
    """Which of the table defaults a table study's file leaves to us (see :func:`parse_spec`)."""
    folds_chosen = "folds" in dataset or "val_fraction" in dataset or "anneal" in study
    return (() if folds_chosen else ("folds",)) + (() if "refit" in study else ("refit",))


def _parse_refit(value, where: str, objectives=(), folds: int = 1) -> tuple[int, str]:
    """``[study] refit``: ``true`` (the best trial), ``{ top = k, members = ... }`` (the k best,
    averaged) or ``false``. Returns how many trials (0: none) and what each hands over:
    ``members = "refit"`` (the default: its settings trained again on every row) or
    ``"folds"`` (the networks of its cross-validation, which needs ``[dataset] folds`` of 2
    or more)."""
    if isinstance(value, bool):
        top, members = int(value), "refit"
    elif isinstance(value, dict) and set(value) <= {"top", "members"} and isinstance(value.get("top", 1), int) \
            and not isinstance(value.get("top"), bool) and 1 <= value.get("top", 1) <= MAX_REFIT:
        top, members = value.get("top", 1), value.get("members", "refit")
    else:
        raise SpaceError(f"{where} must be true, false or {{ top = K, members = ... }} with K from 1 to "
                         f"{MAX_REFIT}, got {value!r}.")
    if top and objectives:
        raise SpaceError(f"{where}: a study with several objectives has no single best trial to refit; "
                         "refit one of its Pareto set with `python -m fcnn_opt refit --trial N`.")
    _check_choice(f"{where}.members", members, REFIT_MEMBERS)
    if members == "folds" and folds < 2:
        raise SpaceError(f"{where}.members = \"folds\" hands over the networks of each trial's cross-validation, "
                         "and this study has none: set [dataset] folds = K (2 or more), or members = \"refit\".")
    return top, members


def _table_members(folds: int) -> str:
    """What the table default hands over: :data:`TABLE_MEMBERS` where the study cross-validates,
    else the refit (one split has no fold networks)."""
    return TABLE_MEMBERS if folds > 1 else "refit"


def _parse_anneal(study: dict, params: dict[str, Param], objectives, source: str, folds: int = 1) -> float:
    """``[study] anneal``: the share of a time budget spent continuing the best trials.

    It defaults to 0.2 where trials keep a constant rate (``epochs.decay = 0``: continuing
    them with a falling rate is what settles them) and can be continued (lib numpy, one
    network per trial, one objective), and to 0 elsewhere: trials whose own rate falls are
    already settled, and continuing them measured no better than searching on
    (docs/performance.md). Asking for it where it cannot work is an error."""
    where = f"{source}: [study].anneal"
    given = "anneal" in study
    epochs = params["epochs"]
    value = study.get("anneal", DEFAULT_ANNEAL if not epochs.resource_decay else 0.0)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise SpaceError(f"{where} must be a share of the time budget from 0 to below 1 (e.g. 0.2), got {value!r}.")
    blocker = None
    if epochs.resource_min is None:
        blocker = "epochs to be a resource: epochs = { max = 400 }"
    elif params["lib"].searched or params["lib"].value != "numpy":
        blocker = "lib = \"numpy\" (the backend that continues a run from its state)"
    elif study.get("repeats", 1) > 1 or folds > 1:
        blocker = "one network per trial (repeats = 1, folds = 1)"
    elif objectives:
        blocker = "one objective"
    if blocker is None:
        return float(value)
    if given and value > 0:
        raise SpaceError(f"{where}: continuing the best trials needs {blocker}; set anneal = 0 or remove it.")
    return 0.0


def load_spec(path: str | Path) -> StudySpec:
    """Read a study definition from a TOML file."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SpaceError(f"{path}: cannot read the study file ({exc.strerror}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{path}: not valid TOML ({exc}).") from None
    return parse_spec(data, source=str(path), name=path.stem, base=path.parent)
