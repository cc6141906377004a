"""fcnn_opt: hyperparameter optimisation and visual explanation for small fully connected
networks, built on Optuna.

The package is layered (see docs/architecture.md), from the bottom: ``training`` (what one
trial trains) and ``store`` (where studies live, and the one module that touches Optuna's
internals), ``show`` (figures, report, per-trial pictures), ``search`` (how a study runs)
and ``cli``.

The public API is imported lazily, so ``import fcnn_opt`` stays fast and never loads
PyTorch or TensorFlow::

    import fcnn_opt
    data = fcnn_opt.make_dataset("circles")
    result = fcnn_opt.train(data, fcnn_opt.TrainConfig(dims=(8,), epochs=50))
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "make_dataset": "training.datasets",
    "list_datasets": "training.datasets",
    "Dataset": "training.datasets",
    "TrainConfig": "training.config",
    "train": "training.loop",
    "TrainResult": "training.loop",
    "get_backend": "training.backends",
    "Objective": "search.objective",
    "StudySpec": "search.space",
    "load_spec": "search.space",
    "run_study": "search.runner",
    "run_worker": "search.workers",
    "run_parallel": "search.workers",
    "run_on_cluster": "search.cluster",
    "load_model": "search.models",
    "TrainedModel": "search.models",
    "evaluate": "search.evaluation",
    "export_model": "search.export",
    "train_repeats": "training.repeats",
    # one entry per extension (docs/extending.md)
    "register_sampler": "search.samplers",
    "register_pruner": "search.pruners",
    "register_objective": "search.metrics",
    "register_format": "search.export",
    "register_storage": "store.storages",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name == "plots":  # figures: fcnn_opt.plots.plot_response(...), imported on first use
        return importlib.import_module(".plots", __name__)
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fcnn_opt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
