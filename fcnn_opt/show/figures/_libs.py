"""Library comparison, for studies where ``lib`` varies: validation curves side by side
(one panel per library, same axes) and the seconds per epoch of each library.

    >>> from fcnn_opt.plots import plot_lib_comparison
    >>> fig = plot_lib_comparison(study)  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    TAB10,
    PlotError,
    new_mpl_figure,
    render,
    require_plotly,
    trials_of,
)
from fcnn_opt.store.artifact_files import WeightsNotFound, load_histories
from fcnn_opt.training.config import LIBS


@dataclass(frozen=True)
class LibRuns:
    """One library's trials: their validation curves and seconds per epoch."""

    lib: str
    color: str
    labels: list[str]  # one per trial
    curves: list[list[float]]  # validation loss per epoch, one per trial
    seconds_per_epoch: list[float]


@dataclass(frozen=True)
class LibComparisonData:
    """What :func:`lib_comparison_data` computed: one :class:`LibRuns` per library."""

    libs: list[LibRuns]
    title: str


def lib_comparison_data(study, artifact_dir=None) -> LibComparisonData:
    """The finished trials' validation curves and seconds per epoch, grouped by library (read
    from their run files in ``artifact_dir``, by default where they were written)."""
    finished = trials_of(study, ("COMPLETE", "PRUNED"))
    try:
        val_loss = {t.number: load_histories(t, artifact_dir).get("val_loss") for t in finished}
    except WeightsNotFound as exc:
        raise PlotError(str(exc)) from None
    trials = [t for t in finished if val_loss[t.number]]
    libs = list(dict.fromkeys(t.user_attrs.get("lib", t.params.get("lib")) for t in trials))
    libs = [lib for lib in LIBS if lib in libs] + [lib for lib in libs if lib not in LIBS]
    if len(libs) < 2:
        raise PlotError(f"Study {study.study_name!r} trains with one library only "
                        f"({', '.join(map(str, libs)) or 'none'}); nothing to compare.")
    runs = []
    for i, lib in enumerate(libs):
        mine = [t for t in trials if t.user_attrs.get("lib", t.params.get("lib")) == lib]
        labels = []
        for t in mine:
            others = ", ".join(f"{k}: {v}" for k, v in t.params.items() if k != "lib")
            labels.append(f"trial {t.number}" + (f" ({others})" if others else ""))
        runs.append(LibRuns(lib, TAB10[i % len(TAB10)], labels, [val_loss[t.number] for t in mine],
                            [float(t.user_attrs.get("seconds_per_epoch", math.nan)) for t in mine]))
    title = (f"Library comparison in study {study.study_name!r}: validation loss per epoch and "
             "seconds per epoch (same initial weights and batches in every library)")
    return LibComparisonData(runs, title)


def draw_libs_mpl(data: LibComparisonData):
    """The comparison as a matplotlib figure: one panel of curves per library, and the seconds
    per epoch."""
    from matplotlib.ticker import MaxNLocator

    n = len(data.libs)
    fig = new_mpl_figure(3.3 * n + 4.2, 4.4)
    grid = fig.add_gridspec(1, n + 2)
    first = None
    for i, runs in enumerate(data.libs):
        ax = fig.add_subplot(grid[0, i], sharey=first)
        first = first or ax
        for curve in runs.curves:
            ax.plot(np.arange(1, len(curve) + 1), curve, color=runs.color, lw=1.5, alpha=0.8)
        ax.set(title=runs.lib, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
        ax.grid(alpha=0.3)
        if i:
            ax.tick_params(labelleft=False)
        else:
            ax.set_ylabel("validation loss")
    ax = fig.add_subplot(grid[0, n:])
    names = [r.lib for r in data.libs]
    means = [float(np.nanmean(r.seconds_per_epoch)) for r in data.libs]
    ax.barh(names, means, color=[r.color for r in data.libs], alpha=0.85)
    for y, r in enumerate(data.libs):
        ax.scatter(r.seconds_per_epoch, [y] * len(r.seconds_per_epoch), color="k", s=12, zorder=3)
        right = np.nanmax([means[y], *r.seconds_per_epoch])
        ax.annotate(f"{means[y] * 1e3:.3g} ms", (right, y), xytext=(6, 0), textcoords="offset points",
                    va="center", fontsize=9)
    finite = [m for m in means if m > 0 and math.isfinite(m)]
    if finite and max(finite) / min(finite) > 20:
        ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set(xlabel="seconds per epoch (bar: mean, dots: trials)", title="speed")
    ax.grid(alpha=0.3, axis="x")
    ax.margins(x=0.25)
    fig.suptitle(data.title, fontsize=11)
    return fig


def draw_libs_plotly(data: LibComparisonData):
    """The comparison as a plotly figure: one panel of curves per library, and the seconds per
    epoch."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    n = len(data.libs)
    specs = [[{} for _ in range(n)] + [{"colspan": 2}, None]]
    fig = make_subplots(rows=1, cols=n + 2, specs=specs, shared_yaxes=False,
                        subplot_titles=[r.lib for r in data.libs] + ["seconds per epoch"])
    for i, runs in enumerate(data.libs):
        for label, curve in zip(runs.labels, runs.curves, strict=True):
            fig.add_trace(go.Scatter(x=list(range(1, len(curve) + 1)), y=curve, mode="lines", name=label,
                                     line={"color": runs.color}, legendgroup=runs.lib, showlegend=False,
                                     hovertemplate=f"{runs.lib}, {label}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"),
                          row=1, col=i + 1)
        fig.update_xaxes(title_text="epoch", row=1, col=i + 1)
        fig.update_yaxes(matches="y", title_text="validation loss" if i == 0 else None, row=1, col=i + 1)
    fig.add_trace(go.Bar(y=[r.lib for r in data.libs], x=[float(np.nanmean(r.seconds_per_epoch)) for r in data.libs],
                         orientation="h", marker={"color": [r.color for r in data.libs]}, showlegend=False,
                         name="mean seconds per epoch"), row=1, col=n + 1)
    for r in data.libs:
        fig.add_trace(go.Scatter(x=r.seconds_per_epoch, y=[r.lib] * len(r.seconds_per_epoch), mode="markers",
                                 marker={"color": "black", "size": 6}, showlegend=False, text=r.labels,
                                 hovertemplate="%{text}<br>%{x:.3g} s/epoch<extra></extra>"), row=1, col=n + 1)
    fig.update_xaxes(title_text="seconds per epoch", row=1, col=n + 1)
    fig.update_yaxes(autorange="reversed", row=1, col=n + 1)
    fig.update_layout(title=data.title, template="plotly_white", height=450)
    return fig


def plot_lib_comparison(study, *, backend: str = "plotly", save=None):
    """Validation curves per library and seconds per epoch per library.

    Args:
        study: an fcnn_opt study in which ``lib`` varies (e.g. ``studies/compare_libs.toml``).
        backend: ``"plotly"`` or ``"matplotlib"``: the kind of figure returned.
        save: a path or list of paths; ``.png`` is drawn with matplotlib, ``.html`` with plotly.
    """
    return render(lib_comparison_data(study), draw_libs_plotly, draw_libs_mpl, backend, save)
