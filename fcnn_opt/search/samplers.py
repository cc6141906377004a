"""The samplers a study may name (``[study] sampler``, ``--sampler``), one registry entry each.

    >>> from fcnn_opt.search.samplers import SAMPLERS, make_sampler
    >>> SAMPLERS.names(multi_objective=True)
    ('grid', 'random', 'tpe', 'nsga2')
    >>> type(make_sampler("tpe", seed=0)).__name__
    'TPESampler'

Add one with :func:`register_sampler`, from your own code or a plugin module
(:mod:`fcnn_opt.search.registry` says how the command line finds it).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fcnn_opt.search.registry import Registry, RegistryError

if TYPE_CHECKING:
    import optuna

# factory(seed=..., spec=..., concurrent=...) -> an Optuna sampler. ``spec`` is the study's
# StudySpec (or None outside a study); ``concurrent`` says that trials are asked several at a
# time (population batches), so a sampler that can should draw away from the running ones.
SamplerFactory = Callable[..., Any]


@dataclass(frozen=True)
class SamplerEntry:
    """One sampler: its name, how it is built, the pip extra it needs, and what it can do.

    ``multi_objective``: it optimises several objectives (``[study] objectives``).
    ``drawn_on_mirror``: fcnn_opt's runner draws its trials on the in-memory pruning mirror
    (:class:`fcnn_opt.search.mirror.PruningMirror`) with a copy of the study's sampler.
    ``reads_trials``: its draws read the study's earlier trials (false for random sampling), so
    the mirror keeps what they read (a pruned trial's epochs).
    ``seeded``: the study's seed (and a worker's seed + K) makes its draws repeatable.
    ``grid``: it runs a fixed set of points, each once (the ``[params]`` lists), queued by the
    runner; ranges are refused.
    """

    name: str
    factory: SamplerFactory
    description: str = ""
    extra: str | None = None
    multi_objective: bool = False
    drawn_on_mirror: bool = False
    seeded: bool = True
    grid: bool = False
    reads_trials: bool = True


SAMPLERS: Registry[SamplerEntry] = Registry("sampler")


def register_sampler(name: str, factory: SamplerFactory, *, description: str = "", extra: str | None = None,
                     multi_objective: bool = False, drawn_on_mirror: bool = False, seeded: bool = True,
                     grid: bool = False, reads_trials: bool = True, replace: bool = False) -> SamplerEntry:
    """Register a sampler under ``name`` and return its entry.

    ``factory`` is called as ``factory(seed=..., spec=..., concurrent=...)`` and returns an
    Optuna sampler. ``drawn_on_mirror`` is a promise about the sampler the factory returns:
    that a copy of it draws the same trials from an in-memory copy of the study's finished
    trials (true of Optuna's RandomSampler and TPESampler, whose draws read nothing else);
    leave it false for anything else.
    """
    return SAMPLERS.register(SamplerEntry(name, factory, description, extra, multi_objective, drawn_on_mirror,
                                          seeded, grid, reads_trials), replace=replace)


def make_sampler(name: str, seed: int | None, spec: Any = None, *,
                 concurrent: bool = False) -> optuna.samplers.BaseSampler:
    """The Optuna sampler registered as ``name``, seeded with ``seed``, for the study ``spec``
    (its :class:`~fcnn_opt.search.space.StudySpec`; the grid sampler takes its points from it).

    ``concurrent``: trials are asked several at a time (population batches), so TPE lies
    constantly about the running ones; otherwise it does not (it then re-reads every trial
    uncached at each draw, which on W2 with two workers cost 42 s against 24 s; workers
    differ by their seeds instead). Raises :class:`RegistryError` for an unknown name and
    :class:`ImportError` naming the pip extra when the sampler's package is missing.
    """
    entry = SAMPLERS.get(name)
    # TPE's group=True (one multivariate model per set of parameters that occur together, so
    # the per-layer widths of a searched depth are modelled jointly) is marked experimental.
    warnings.filterwarnings("ignore", message="Argument ``group`` is an experimental feature")
    try:
        return entry.factory(seed=seed, spec=spec, concurrent=concurrent)
    except ImportError as exc:
        hint = f" (pip install 'fcnn_opt[{entry.extra}]')" if entry.extra else ""
        raise ImportError(f"Sampler {name!r} needs a package that is missing{hint}: {exc}") from None


def _optuna_sampler(class_name: str, **settings) -> SamplerFactory:
    """A factory for ``optuna.samplers.<class_name>(seed=seed, **settings)``."""

    def build(*, seed, spec, concurrent):
        import optuna

        return getattr(optuna.samplers, class_name)(seed=seed, **settings)

    return build


def _tpe(*, seed, spec, concurrent):
    import optuna

    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, constant_liar=concurrent)


def _grid(*, seed, spec, concurrent):
    import optuna

    if spec is None:
        raise RegistryError("The grid sampler needs the study's definition (spec) for its points.")
    return optuna.samplers.GridSampler(spec.grid(), seed=seed)


register_sampler("grid", _grid, description="every combination of the [params] lists, each once",
                 multi_objective=True, grid=True)
register_sampler("random", _optuna_sampler("RandomSampler"), description="independent uniform draws",
                 multi_objective=True, drawn_on_mirror=True, reads_trials=False)
register_sampler("tpe", _tpe, description="Optuna's TPE, multivariate, grouped (the default)",
                 multi_objective=True, drawn_on_mirror=True)
register_sampler("cmaes", _optuna_sampler("CmaEsSampler", warn_independent_sampling=False),
                 description="CMA-ES")
register_sampler("qmc", _optuna_sampler("QMCSampler", warn_independent_sampling=False),
                 description="quasi-Monte Carlo (Sobol) points")
register_sampler("gp", _optuna_sampler("GPSampler"), description="Gaussian-process Bayesian optimisation",
                 extra="torch")
register_sampler("nsga2", _optuna_sampler("NSGAIISampler"), description="NSGA-II, for several objectives",
                 multi_objective=True)
