"""Hyperparameter response surface: the final metric over two chosen hyperparameters, the
others averaged out, beside one marginal curve per hyperparameter with its spread.

On a grid study every cell is a grid point (averaged over the other hyperparameters); for
continuous samplers numeric hyperparameters with many values are binned (log-spaced bins
when they were sampled on a log scale), giving a binned heatmap::

    >>> from fcnn_opt.plots import plot_hp_surface
    >>> fig = plot_hp_surface(study, x="units", y="epochs")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    PlotError,
    check_axes,
    direction_of,
    fmt,
    is_number,
    log_scaled,
    metric_name,
    new_mpl_figure,
    render,
    require_plotly,
    searched_params,
    trials_of,
)

MAX_LEVELS = 8  # a numeric hyperparameter with more distinct values is binned


@dataclass(frozen=True)
class Axis:
    """How one hyperparameter's values map to the cells of a heatmap or a marginal curve."""

    name: str
    labels: list[str]  # one per cell
    index: list[int]  # cell of each trial (same order as the trials)
    numeric: bool
    log: bool
    centers: list[float] | None  # numeric cell positions, for marginal curves
    binned: bool = False


@dataclass(frozen=True)
class Marginal:
    """One hyperparameter's marginal: the metric's mean, std and count per bin of its values, and
    each trial's value and metric."""

    axis: Axis
    mean: list[float]
    std: list[float]
    count: list[int]
    values: list  # each trial's raw parameter value
    metric: list[float]  # each trial's final metric
    spread: list[float] | None = None  # with seed repeats: each trial's std over its seeds


@dataclass(frozen=True)
class HPSurfaceData:
    """What :func:`hp_surface_data` computed: the mean metric over two hyperparameters (``z``,
    with ``counts`` per cell; None without a second axis) and each hyperparameter's marginal."""

    metric: str
    direction: str
    x: Axis | None
    y: Axis | None
    z: np.ndarray | None  # (len(y.labels), len(x.labels)) mean metric, NaN where empty
    counts: np.ndarray | None
    marginals: list[Marginal]
    binned: bool
    title: str


def _axis(name: str, trials) -> Axis:
    values = [t.params[name] for t in trials]
    distinct = list(dict.fromkeys(values))
    numeric = all(is_number(v) for v in distinct)
    log = numeric and log_scaled(trials, name)
    dist = next((t.distributions[name] for t in trials if name in t.distributions), None)
    sampled_float = type(dist).__name__ == "FloatDistribution" and getattr(dist, "step", None) is None
    # Choices (grid values) and integers with few values are cells of their own; floats
    # drawn from a range are binned, however few trials there are.
    if not numeric or (len(distinct) <= MAX_LEVELS and not (sampled_float and len(distinct) > 2)):
        levels = sorted(distinct) if numeric else _categorical_order(trials, name, distinct)
        index = [levels.index(v) for v in values]
        centers = [float(v) for v in levels] if numeric else None
        return Axis(name, [fmt(v) for v in levels], index, numeric, log, centers)
    arr = np.asarray(values, dtype=float)
    n_bins = int(np.clip(round(math.sqrt(len(values)) / 1.5), 3, MAX_LEVELS))
    n_bins = min(n_bins, len(distinct))
    lo, hi = arr.min(), arr.max()
    if log and lo > 0:
        edges = np.geomspace(lo, hi, n_bins + 1)
        centers = np.sqrt(edges[:-1] * edges[1:])
    else:
        edges = np.linspace(lo, hi, n_bins + 1)
        centers = (edges[:-1] + edges[1:]) / 2
    index = np.clip(np.searchsorted(edges, arr, side="right") - 1, 0, n_bins - 1)
    labels = [f"{a:.2g}–{b:.2g}" for a, b in zip(edges[:-1], edges[1:], strict=True)]
    return Axis(name, labels, [int(i) for i in index], True, log, [float(c) for c in centers], True)


def _categorical_order(trials, name: str, distinct: list) -> list:
    dist = next((t.distributions[name] for t in trials if name in t.distributions), None)
    choices = list(getattr(dist, "choices", []))
    if choices and set(distinct) <= set(choices):
        return [c for c in choices if c in distinct]
    return sorted(distinct, key=str)


def _cells(ax: Axis, metric: np.ndarray) -> tuple[list[float], list[float], list[int]]:
    mean, std, count = [], [], []
    index = np.asarray(ax.index)
    for i in range(len(ax.labels)):
        values = metric[index == i]
        count.append(int(values.size))
        mean.append(float(values.mean()) if values.size else math.nan)
        std.append(float(values.std()) if values.size > 1 else 0.0)
    return mean, std, count


def default_axes(study, trials) -> tuple[str | None, str | None]:
    """The two most important hyperparameters (Optuna's fANOVA), else the first two varying."""
    varying = searched_params(trials)
    if len(varying) <= 2:
        return (varying + [None, None])[0], (varying + [None, None])[1]
    try:
        import optuna

        importances = optuna.importance.get_param_importances(study, params=varying)
        ranked = [name for name in importances if name in varying]
    except Exception:  # too few trials or a degenerate space: keep the suggestion order
        ranked = varying
    return ranked[0], ranked[1]


def _seed_spread(trials, metric: str) -> list[float] | None:
    """Each trial's standard deviation over its seed repeats (``<metric>_std``), or None when
    the trials have no repeats."""
    spread = [t.user_attrs.get(f"{metric}_std") for t in trials]
    if all(v is None for v in spread):
        return None
    return [v if v is not None and math.isfinite(v) else 0.0 for v in spread]


def hp_surface_data(study, x: str | None = None, y: str | None = None) -> HPSurfaceData:
    """The mean final metric of complete trials per cell of ``x`` and ``y`` and per value of
    every varying hyperparameter."""
    trials = [t for t in trials_of(study) if t.value is not None and math.isfinite(t.value)]
    if not trials:
        raise PlotError(f"Study {study.study_name!r} has no complete trial.")
    varying = searched_params(trials)
    if not varying:
        raise PlotError("needs a hyperparameter that takes more than one value among complete trials.")
    known = sorted({k for t in trials for k in t.params})
    check_axes(x, y, known, "a parameter", "Parameters")
    if x is None and y is None:
        x, y = default_axes(study, trials)
    elif x is None:
        x = next((n for n in varying if n != y), None)
    elif y is None:
        y = next((n for n in varying if n != x), None)
    # Trials missing a parameter (conditional spaces, e.g. units_l3 with 2 layers) drop out.
    metric = np.array([t.value for t in trials], dtype=float)
    marginals = []
    for name in varying:
        subset = [t for t in trials if name in t.params]
        ax = _axis(name, subset)
        sub_metric = np.array([t.value for t in subset], dtype=float)
        mean, std, count = _cells(ax, sub_metric)
        marginals.append(Marginal(ax, mean, std, count, [t.params[name] for t in subset], list(sub_metric),
                                  _seed_spread(subset, metric_name(study))))
    x_axis = y_axis = z = counts = None
    binned = any(m.axis.binned for m in marginals)
    if x is not None and y is not None:
        both = [i for i, t in enumerate(trials) if x in t.params and y in t.params]
        subset = [trials[i] for i in both]
        x_axis, y_axis = _axis(x, subset), _axis(y, subset)
        z = np.full((len(y_axis.labels), len(x_axis.labels)), np.nan)
        counts = np.zeros_like(z, dtype=int)
        sums = np.zeros_like(z)
        for xi, yi, value in zip(x_axis.index, y_axis.index, metric[both], strict=True):
            sums[yi, xi] += value
            counts[yi, xi] += 1
        z[counts > 0] = sums[counts > 0] / counts[counts > 0]
    name = metric_name(study)
    direction = direction_of(study)
    pair = f": {name} over {x} and {y}" if x_axis is not None else ""
    title = (f"Hyperparameter response of study {study.study_name!r}{pair} "
             f"({len(trials)} complete trials, {'binned, ' if binned else ''}others averaged)")
    return HPSurfaceData(name, direction, x_axis, y_axis, z, counts, marginals, binned, title)


def _best_label(data: HPSurfaceData) -> str:
    return f"{data.metric} ({'lower' if data.direction == 'minimize' else 'higher'} is better)"


def _cmap(data: HPSurfaceData) -> str:
    return "viridis_r" if data.direction == "minimize" else "viridis"  # good cells are bright


def _layout(n: int) -> tuple[int, int]:
    cols = min(n, 4)
    return math.ceil(n / cols), cols


def _log_axis(ax, values) -> None:
    """A log x axis in plain numbers (1, 2, 5, 10, ... over a short range), no minor labels."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = np.asarray(values, dtype=float)
    decades = np.log10(values.max() / values.min()) if values.size and values.min() > 0 else 3.0
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades < 1.6 else (1.0,)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def draw_hp_mpl(data: HPSurfaceData):
    """The surface as a matplotlib figure: the heat map and one panel per marginal."""
    n = len(data.marginals)
    rows, cols = _layout(max(n, 1))
    heat = data.z is not None
    width = 5.2 + 3.3 * cols if heat else 3.6 * cols
    fig = new_mpl_figure(width, max(4.4, 3.0 * rows + 0.6))
    grid = fig.add_gridspec(rows, cols + (2 if heat else 0))
    if heat:
        ax = fig.add_subplot(grid[:, :2])
        z = np.ma.masked_invalid(data.z)
        image = ax.imshow(z, origin="lower", aspect="auto", cmap=_cmap(data))
        crowded = sum(len(label) for label in data.x.labels) > 36
        ax.set_xticks(range(len(data.x.labels)), data.x.labels, rotation=25 if crowded else 0,
                      ha="right" if crowded else "center")
        ax.set_yticks(range(len(data.y.labels)), data.y.labels)
        ax.set(xlabel=data.x.name + (" (bins)" if data.x.binned else ""),
               ylabel=data.y.name + (" (bins)" if data.y.binned else ""))
        if z.size <= 64:
            finite = data.z[np.isfinite(data.z)]
            middle = (finite.min() + finite.max()) / 2 if finite.size else 0
            for (yi, xi), value in np.ndenumerate(data.z):
                if np.isfinite(value):
                    dark = (value > middle) if data.direction == "minimize" else (value < middle)
                    ax.text(xi, yi, f"{value:.3g}\nn={data.counts[yi, xi]}", ha="center", va="center",
                            fontsize=8, color="white" if dark else "black")
        fig.colorbar(image, ax=ax, label=_best_label(data), location="bottom", shrink=0.8)
        ax.set_title(f"mean {data.metric} per cell", fontsize=10)
    for i, m in enumerate(data.marginals):
        ax = fig.add_subplot(grid[i // cols, (2 if heat else 0) + i % cols])
        if m.axis.centers is not None and len(m.axis.labels) > 1:
            positions = np.asarray(m.axis.centers)
            raw = np.asarray(m.values, dtype=float)
            if m.axis.log:
                _log_axis(ax, raw)
        else:
            positions = np.arange(len(m.axis.labels))
            raw = np.asarray(m.axis.index, dtype=float)
            ax.set_xticks(positions, m.axis.labels, rotation=30 if len(m.axis.labels) > 3 else 0)
        mean, std = np.asarray(m.mean), np.asarray(m.std)
        if m.spread is not None:
            ax.errorbar(raw, m.metric, yerr=m.spread, fmt="none", ecolor="0.55", alpha=0.5, lw=0.8,
                        label="± 1 std over seeds")
        ax.scatter(raw, m.metric, s=10, color="0.55", alpha=0.6, linewidths=0, label="trials")
        ax.plot(positions, mean, "o-", color="#1f77b4", lw=2, label="mean")
        ax.fill_between(positions, mean - std, mean + std, color="#1f77b4", alpha=0.2, label="± 1 std")
        ax.set(xlabel=m.axis.name)
        ax.grid(alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel(data.metric)
        if i == 0:
            ax.legend(frameon=False, fontsize=8)
    fig.suptitle(data.title, fontsize=11)
    return fig


def draw_hp_plotly(data: HPSurfaceData):
    """The surface as a plotly figure: the heat map and one panel per marginal."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    n = len(data.marginals)
    rows, cols = _layout(max(n, 1))
    heat = data.z is not None
    specs = [[{"rowspan": rows, "colspan": 2} if heat and r == 0 else None] * (2 if heat else 0)
             + [{} for _ in range(cols)] for r in range(rows)]
    if heat:
        for r in range(rows):
            specs[r][1] = None
            if r:
                specs[r][0] = None
    titles = ([f"mean {data.metric} per cell"] if heat else []) + [m.axis.name for m in data.marginals]
    fig = make_subplots(rows=rows, cols=cols + (2 if heat else 0), specs=specs, subplot_titles=titles,
                        horizontal_spacing=0.07, vertical_spacing=0.16)
    if heat:
        text = [[f"{v:.3g}<br>n={c}" if np.isfinite(v) else "" for v, c in zip(zr, cr, strict=True)]
                for zr, cr in zip(data.z, data.counts, strict=True)]
        fig.add_trace(go.Heatmap(
            z=np.where(np.isfinite(data.z), data.z, None), x=data.x.labels, y=data.y.labels,
            colorscale="Viridis", reversescale=data.direction == "minimize", text=text,
            texttemplate="%{text}" if data.z.size <= 64 else None,
            colorbar={"title": {"text": f"{data.metric}<br>({'lower' if data.direction == 'minimize' else 'higher'} is<br>better)",
                                "side": "top"}, "thickness": 12, "len": 0.75, "y": 0.4,
                      "x": fig.layout.xaxis.domain[1] + 0.005, "xanchor": "left"},
            hovertemplate=f"{data.x.name} %{{x}}<br>{data.y.name} %{{y}}<br>{data.metric} %{{z:.4g}}<extra></extra>"),
            row=1, col=1)
        fig.update_xaxes(title_text=data.x.name, type="category", row=1, col=1)
        fig.update_yaxes(title_text=data.y.name, type="category", row=1, col=1)
    for i, m in enumerate(data.marginals):
        row, col = i // cols + 1, (2 if heat else 0) + i % cols + 1
        if m.axis.centers is not None and len(m.axis.labels) > 1:
            positions, raw = m.axis.centers, m.values
            if m.axis.log:
                values = np.asarray(m.values, dtype=float)
                decades = np.log10(values.max() / values.min()) if values.min() > 0 else 3.0
                fig.update_xaxes(type="log", dtick=1 if decades >= 1.6 else "D2", row=row, col=col)
        else:
            positions, raw = m.axis.labels, [m.axis.labels[i] for i in m.axis.index]
            fig.update_xaxes(type="category", row=row, col=col)
        upper = [a + b for a, b in zip(m.mean, m.std, strict=True)]
        lower = [a - b for a, b in zip(m.mean, m.std, strict=True)]
        fig.add_trace(go.Scatter(x=list(positions) + list(positions)[::-1], y=upper + lower[::-1], fill="toself", mode="lines",
                                 fillcolor="rgba(31,119,180,0.2)", line={"width": 0}, hoverinfo="skip",
                                 name="± 1 std", showlegend=i == 0, legendgroup="std"), row=row, col=col)
        seeds = ({"type": "data", "array": m.spread, "visible": True, "thickness": 0.8, "width": 0}
                 if m.spread is not None else None)
        fig.add_trace(go.Scatter(x=raw, y=m.metric, mode="markers", marker={"color": "#888", "size": 5},
                                 error_y=seeds, opacity=0.6, showlegend=i == 0, legendgroup="trials",
                                 name="trials (bars: ± 1 std over seeds)" if seeds else "trials"),
                      row=row, col=col)
        fig.add_trace(go.Scatter(x=positions, y=m.mean, mode="lines+markers", line={"color": "#1f77b4"},
                                 name="mean", showlegend=i == 0, legendgroup="mean"), row=row, col=col)
        fig.update_xaxes(title_text=m.axis.name, row=row, col=col)
    fig.update_layout(title=data.title, template="plotly_white", height=max(480, 330 * rows + 150))
    return fig


def plot_hp_surface(study, x: str | None = None, y: str | None = None, *, backend: str = "plotly",
                    save=None):
    """The final metric over hyperparameters ``x`` and ``y`` plus one marginal per hyperparameter.

    Args:
        study: an fcnn_opt (or any Optuna) study with complete trials.
        x, y: the two hyperparameters of the heatmap; default: the two most important.
        backend: ``"plotly"`` or ``"matplotlib"``: the kind of figure returned.
        save: a path or list of paths; ``.png`` is drawn with matplotlib, ``.html`` with plotly.
    """
    data = hp_surface_data(study, x, y)
    return render(data, draw_hp_plotly, draw_hp_mpl, backend, save)
