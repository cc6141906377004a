"""The pruners a study may name (``[study] pruner``, ``--pruner``), one registry entry each.

    >>> from fcnn_opt.search.pruners import PRUNERS, make_pruner
    >>> PRUNERS.names()
    ('median', 'percentile', 'sha', 'hyperband', 'patient', 'wilcoxon', 'none')
    >>> type(make_pruner("median")).__name__
    'MedianPruner'

Add one with :func:`register_pruner`, from your own code or a plugin module
(:mod:`fcnn_opt.search.registry` says how the command line finds it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fcnn_opt.search.registry import Registry

if TYPE_CHECKING:
    import optuna

RUNG_FACTOR = 3  # successive halving keeps the best third of the trials at each rung
STARTUP = {"n_startup_trials": 5, "n_warmup_steps": 5}  # median, percentile, patient

# factory(spec) -> an Optuna pruner; ``spec`` is the study's StudySpec, or None outside a study.
PrunerFactory = Callable[[Any], Any]


@dataclass(frozen=True)
class PrunerEntry:
    """One pruner: its name, how it is built, the pip extra it needs, and what it can do.

    ``decided_on_mirror``: the pruner decides on the values of a trial's epochs alone, so
    fcnn_opt's runner decides it on the in-memory pruning mirror
    (:class:`fcnn_opt.search.mirror.PruningMirror`) instead of reading the storage every epoch.
    ``prunes``: it may stop a trial (false for ``none``, the one offered with several objectives).
    """

    name: str
    factory: PrunerFactory
    description: str = ""
    extra: str | None = None
    decided_on_mirror: bool = False
    prunes: bool = True


PRUNERS: Registry[PrunerEntry] = Registry("pruner")


def register_pruner(name: str, factory: PrunerFactory, *, description: str = "", extra: str | None = None,
                    decided_on_mirror: bool = False, prunes: bool = True, replace: bool = False) -> PrunerEntry:
    """Register a pruner under ``name`` and return its entry; ``factory(spec)`` returns an
    Optuna pruner. ``decided_on_mirror`` is a promise about the pruner it returns: that it
    decides on the values the study's trials reported and nothing it writes itself (or that
    :mod:`fcnn_opt.search.mirror_rules` has a rule deciding as it does); leave it false for
    anything else."""
    return PRUNERS.register(PrunerEntry(name, factory, description, extra, decided_on_mirror, prunes),
                            replace=replace)


def make_pruner(name: str, spec: Any = None) -> optuna.pruners.BasePruner:
    """The Optuna pruner registered as ``name`` for the study ``spec`` (its
    :class:`~fcnn_opt.search.space.StudySpec`, or None); an unknown name raises
    :class:`~fcnn_opt.search.registry.RegistryError` listing the valid ones.

    Where ``spec``'s epochs are a resource (``epochs = { max, min }``), successive halving and
    Hyperband take their rungs from it: min epochs first, then three times as many, keeping
    the best third; otherwise their first rung is at 5 epochs.
    """
    return PRUNERS.get(name).factory(spec)


def _rungs(spec) -> dict:
    """Successive halving's and Hyperband's first rung (and factor) for ``spec``."""
    epochs = spec.epoch_range if spec is not None else None
    if epochs is None:  # Optuna's other defaults: reduction factor 4 (sha), 3 (hyperband)
        return {"min_resource": 5}
    return {"min_resource": epochs[0], "reduction_factor": RUNG_FACTOR}


def _median(spec):
    import optuna

    return optuna.pruners.MedianPruner(**STARTUP)


def _percentile(spec):
    import optuna

    return optuna.pruners.PercentilePruner(25.0, **STARTUP)


def _sha(spec):
    import optuna

    return optuna.pruners.SuccessiveHalvingPruner(**_rungs(spec))


def _hyperband(spec):
    import optuna

    epochs = spec.epoch_range if spec is not None else None
    return optuna.pruners.HyperbandPruner(**_rungs(spec), **({"max_resource": epochs[1]} if epochs else {}))


def _patient(spec):
    import optuna

    return optuna.pruners.PatientPruner(optuna.pruners.MedianPruner(**STARTUP), patience=5)


def _wilcoxon(spec):
    import optuna

    return optuna.pruners.WilcoxonPruner(p_threshold=0.1, n_startup_steps=5)


def _none(spec):
    import optuna

    return optuna.pruners.NopPruner()


register_pruner("median", _median, description="stops a trial worse than the median of the finished ones "
                                                "at the same epoch (the default)", decided_on_mirror=True)
register_pruner("percentile", _percentile, description="stops a trial outside the best 25% at the same epoch",
                decided_on_mirror=True)
register_pruner("sha", _sha, description="successive halving (rungs from epochs = { max, min } when set)",
                decided_on_mirror=True)
register_pruner("hyperband", _hyperband, description="Hyperband: successive halving in brackets",
                decided_on_mirror=True)
register_pruner("patient", _patient, description="the median rule, once a trial has not improved for 5 epochs",
                decided_on_mirror=True)
register_pruner("wilcoxon", _wilcoxon, description="a Wilcoxon signed-rank test against the best trial",
                decided_on_mirror=True)
register_pruner("none", _none, description="never prunes", decided_on_mirror=True, prunes=False)
