"""The figures, for notebooks and scripts: ``from fcnn_opt.plots import plot_response``.

The public face of :mod:`fcnn_opt.show`: every ``plot_*`` and ``*_data`` function of
:mod:`fcnn_opt.show.figures`, and :func:`build_report` (the offline HTML report). Nothing
is imported until a name is used, so plotly and matplotlib load only when a figure is drawn.
"""

from __future__ import annotations

import importlib

from fcnn_opt.show.figures import __all__ as _FIGURES

__all__ = sorted([*_FIGURES, "build_report"])


def __getattr__(name: str):
    if name == "build_report":
        return importlib.import_module("fcnn_opt.show.report").build_report
    if name in _FIGURES:
        return getattr(importlib.import_module("fcnn_opt.show.figures"), name)
    raise AttributeError(f"module 'fcnn_opt.plots' has no attribute {name!r}")


def __dir__():
    return __all__
