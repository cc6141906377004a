"""Figures that explain a study (public as :mod:`fcnn_opt.plots`), for notebooks, the HTML report and
optuna-dashboard.

Each ``plot_*`` function returns a figure (plotly by default, interactive in Jupyter;
``backend="matplotlib"`` for a matplotlib one) and saves it on request: ``save="x.png"``
is drawn with matplotlib (Agg, no display needed), ``save="x.html"`` is plotly with
plotly.js embedded, so the file opens offline::

    import fcnn_opt
    from fcnn_opt.plots import plot_points, plot_response, plot_loss_histories, plot_hp_surface

    data = fcnn_opt.make_dataset("circles")
    plot_points(data)
    plot_response(fcnn_opt.train(data, fcnn_opt.TrainConfig(epochs=50)), save="model.png")
    plot_loss_histories(study, color_by="epochs", style_by="units")
    plot_hp_surface(study, x="units", y="epochs")

plotly and matplotlib are imported only when a figure is drawn.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "plot_points": "_points",
    "points_data": "_points",
    "plot_response": "_response",
    "response_data": "_response",
    "plot_loss_histories": "_loss",
    "loss_histories_data": "_loss",
    "plot_hp_surface": "_hp_surface",
    "hp_surface_data": "_hp_surface",
    "plot_lib_comparison": "_libs",
    "lib_comparison_data": "_libs",
    "plot_fit": "_fit",
    "plot_progress": "_progress",
    "progress_data": "_progress",
    "plot_learning": "_learning",
    "learning_data": "_learning",
    # fitted surrogates of the metric (they need scikit-learn)
    "plot_partial_dependence": "_partial_dependence",
    "plot_surrogate_surface": "_partial_dependence",
    "plot_importance_uncertainty": "_importance",
    "surrogate_data": "_surrogate",
    "importance_uncertainty_data": "_importance",
    "fit_data": "_fit",
    "optuna_figure": "_optuna",
    "OPTUNA_FIGURES": "_optuna",
    "PlotError": "_common",
    "safe_name": "_common",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fcnn_opt.show.figures' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
