"""Drawing a fitted surrogate (:mod:`~fcnn_opt.show.figures._surrogate`): the partial-dependence
matrix, in the layout of scikit-optimize's ``plot_objective``, and the fitted surface over two
hyperparameters beside its uncertainty, in plotly and matplotlib::

    >>> from fcnn_opt.plots import plot_partial_dependence, plot_surrogate_surface
    >>> fig = plot_partial_dependence(study, save="pd.png")  # doctest: +SKIP
    >>> fig = plot_surrogate_surface(study, x="lr", y="units")  # doctest: +SKIP
"""

from __future__ import annotations

import math

import numpy as np

from fcnn_opt.show.figures._common import PlotError, fmt, new_mpl_figure, render, require_plotly
from fcnn_opt.show.figures._surrogate import ParamSpec, SurrogateData, surrogate_data

# --- drawing helpers ------------------------------------------------------------------------


def _cmap(data) -> str:
    return "viridis_r" if data.direction == "minimize" else "viridis"  # good is bright


def _positions(spec: ParamSpec, values: list, jitter: bool = True) -> np.ndarray:
    """Where trials are drawn on the axis of ``spec`` (NaN where absent); categories are
    jittered a little so equal trials stay visible."""
    pos = np.array([spec.position(v) for v in values], dtype=float)
    if not spec.numeric and jitter:  # a seed per axis, so two categorical axes jitter independently
        pos = pos + np.random.default_rng([len(values), spec.start]).uniform(-0.18, 0.18, len(pos))
    return pos


def _grid_positions(spec: ParamSpec, values: list) -> np.ndarray:
    return np.asarray(values, dtype=float) if spec.numeric else np.arange(len(values), dtype=float)


def _edges(centers: np.ndarray, log: bool) -> np.ndarray:
    c = np.log(centers) if log else centers
    mid = (c[:-1] + c[1:]) / 2
    e = np.concatenate([[c[0] - (mid[0] - c[0]) if len(c) > 1 else c[0] - 0.5], mid,
                        [c[-1] + (c[-1] - mid[-1]) if len(c) > 1 else c[-1] + 0.5]])
    return np.exp(e) if log else e


def _mpl_axis(ax, spec: ParamSpec, which: str, labels: bool = True) -> None:
    """Scale, limits and ticks of one axis for ``spec``: log in plain numbers, categories by name."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    axis = ax.xaxis if which == "x" else ax.yaxis
    set_lim = ax.set_xlim if which == "x" else ax.set_ylim
    if spec.numeric:
        if spec.log:
            (ax.set_xscale if which == "x" else ax.set_yscale)("log")
            decades = math.log10(spec.high / spec.low)
            axis.set_major_locator(LogLocator(10, subs=(1.0, 2.0, 5.0) if decades < 1.6 else (1.0,)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        elif spec.integer:
            axis.set_major_locator(MaxNLocator(integer=True))
        set_lim(spec.low, spec.high)
    else:
        m = len(spec.choices)
        axis.set_ticks(range(m), [fmt(c) for c in spec.choices] if labels else [""] * m)
        set_lim(-0.5, m - 0.5)
    if not labels:
        axis.set_major_formatter(FuncFormatter(lambda v, _: ""))
        axis.set_minor_formatter(NullFormatter())


def _mpl_surface(ax, spec_x, spec_y, x_values, y_values, z, cmap, norm):
    """A filled contour when both axes are numeric, else a cell grid."""
    gx, gy = _grid_positions(spec_x, x_values), _grid_positions(spec_y, y_values)
    if spec_x.numeric and spec_y.numeric:
        return ax.contourf(gx, gy, z, levels=14, cmap=cmap, norm=norm)
    ex = _edges(gx, spec_x.log) if spec_x.numeric else np.arange(len(gx) + 1) - 0.5
    ey = _edges(gy, spec_y.log) if spec_y.numeric else np.arange(len(gy) + 1) - 0.5
    return ax.pcolormesh(ex, ey, z, cmap=cmap, norm=norm, shading="flat")


def _mpl_trials(ax, data: SurrogateData, sx: ParamSpec, sy: ParamSpec, colored=None, norm=None):
    px, py = _positions(sx, data.params[sx.name]), _positions(sy, data.params[sy.name])
    if colored is None:
        ax.scatter(px, py, s=14, c="white", edgecolors="black", linewidths=0.6, zorder=3, label="trials",
                   clip_on=False)  # trials at the ends of a range stay whole
    else:
        colored = ax.scatter(px, py, s=42, c=data.values, cmap=colored, norm=norm, edgecolors="black",
                             linewidths=0.5, zorder=3, label="trials", clip_on=False)
    ax.scatter(px[data.best], py[data.best], s=190, marker="*", c="#e8112d", edgecolors="black",
               linewidths=0.7, zorder=4, label="best trial", clip_on=False)
    return colored


def _suptitle(fig, data: SurrogateData, what: str, size: float = 11) -> None:
    """The title and notes, wrapped to the figure's width."""
    import textwrap

    chars = int(fig.get_figwidth() * 72 / (0.5 * size))
    head = f"{what}: {data.title}"
    if len(head) > chars:
        head = head.replace(", study ", "\nstudy ", 1)
    lines = [part for line in (*head.split("\n"), *data.notes) for part in textwrap.wrap(line, chars)]
    fig.suptitle("\n".join(lines), fontsize=size, color="black" if data.trusted else "#a31515")


# --- partial-dependence matrix --------------------------------------------------------------


def draw_pd_mpl(data: SurrogateData):
    """The partial-dependence matrix as a matplotlib figure: each hyperparameter's dependence on
    the diagonal, each pair's below it (an untrusted surrogate: the trials alone)."""
    from matplotlib.colors import Normalize

    names = data.shown
    k = len(names)
    side = 2.7 if k > 2 else 3.4
    fig = new_mpl_figure(max(6.4, side * k + 1.4), max(4.6, side * k + 0.9 + 0.2 * len(data.notes)))
    grid = fig.subplots(k, k, squeeze=False)
    cmap = _cmap(data)
    if data.trusted and data.pairs:
        zs = np.concatenate([p.mean.ravel() for p in data.pairs.values()])
        norm = Normalize(zs.min(), zs.max())
    else:
        norm = Normalize(data.values.min(), data.values.max())
    mappable = None
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            ax = grid[i][j]
            sx, sy = data.spec(col), data.spec(row)
            if j > i:
                ax.set_axis_off()
                continue
            bottom, left = i == k - 1, j == 0
            if i == j:
                # the legend goes in the empty top-right cell (inside the only panel when alone)
                _mpl_diagonal(ax, data, sx, legend=(grid[0][-1] if i == 0 else None))
                _mpl_axis(ax, sx, "x", labels=bottom)
                ax.yaxis.tick_right()
                ax.yaxis.set_label_position("right")
                ax.set_ylabel(data.metric, fontsize=9)
                share = f" · {data.importances[col]:.0%} of importance" if data.importances else ""
                ax.set_title(f"{col}{share}", fontsize=9.5)
            else:
                if data.trusted:
                    pd = data.pairs[(col, row)]
                    mappable = _mpl_surface(ax, sx, sy, pd.x_values, pd.y_values, pd.mean, cmap, norm)
                    _mpl_trials(ax, data, sx, sy)
                else:
                    mappable = _mpl_trials(ax, data, sx, sy, colored=cmap, norm=norm)
                _mpl_axis(ax, sx, "x", labels=bottom)
                _mpl_axis(ax, sy, "y", labels=left)
                if left:
                    ax.set_ylabel(row)
            if bottom:
                ax.set_xlabel(col)
            ax.tick_params(labelsize=8)
    if mappable is not None:
        what = "partial dependence of " if data.trusted else ""
        fig.colorbar(mappable, ax=grid[:, -1].tolist() if k > 1 else grid[0, 0], shrink=0.7, pad=0.04,
                     label=f"{what}{data.label}")
    _suptitle(fig, data, "Partial dependence", 10.5 if k > 2 else 9.5)
    return fig


def _mpl_diagonal(ax, data: SurrogateData, spec: ParamSpec, legend: bool) -> None:
    px = _positions(spec, data.params[spec.name])
    ax.scatter(px, data.values, s=12, color="0.5", alpha=0.7, linewidths=0, label="trials", zorder=2,
               clip_on=False)
    ax.scatter(px[data.best], data.values[data.best], s=150, marker="*", c="#e8112d", edgecolors="black",
               linewidths=0.6, zorder=4, label="best trial", clip_on=False)
    if data.trusted:
        d = data.dependence[spec.name]
        gx = _grid_positions(spec, d.values)
        style = "-" if len(gx) > 10 else "o-"
        ax.plot(gx, d.mean, style, color="#1f77b4", lw=2, ms=5, label="partial dependence", zorder=3)
        ax.fill_between(gx, d.mean - d.band, d.mean + d.band, color="#1f77b4", alpha=0.22,
                        label="± 1 surrogate std", zorder=1)
    ax.grid(alpha=0.3)
    if legend is not None:
        handles, labels = ax.get_legend_handles_labels()
        legend.legend(handles, labels, frameon=False, fontsize=8, loc="upper right")


def draw_pd_plotly(data: SurrogateData):
    """The partial-dependence matrix as a plotly figure: each hyperparameter's dependence on the
    diagonal, each pair's below it (an untrusted surrogate: the trials alone)."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    names = data.shown
    k = len(names)
    fig = make_subplots(rows=k, cols=k, horizontal_spacing=0.1 / k + 0.02, vertical_spacing=0.1 / k + 0.03,
                        subplot_titles=[names[i] if i == j else "" for i in range(k) for j in range(k)])
    zs = (np.concatenate([p.mean.ravel() for p in data.pairs.values()]) if data.trusted and data.pairs
          else data.values)
    colors = _Colors((float(zs.min()), float(zs.max())), "Viridis", data.direction == "minimize",
                     {"title": {"text": _plotly_label(data), "side": "right"}, "thickness": 14, "len": 0.6})
    for i, row in enumerate(names):
        for j, col in enumerate(names):
            if j > i:
                continue
            sx, sy = data.spec(col), data.spec(row)
            if i == j:
                _plotly_diagonal(fig, go, data, sx, i + 1, first=i == 0)
            else:
                if data.trusted:
                    pd = data.pairs[(col, row)]
                    fig.add_trace(_plotly_surface(go, sx, sy, pd.x_values, pd.y_values, pd.mean, colors),
                                  i + 1, j + 1)
                _plotly_trials(fig, go, data, sx, sy, i + 1, j + 1, colors=None if data.trusted else colors)
                _plotly_axis(fig, sy, "y", i + 1, j + 1, title=row if j == 0 else None)
            _plotly_axis(fig, sx, "x", i + 1, j + 1, title=col if i == k - 1 else None)
    fig.update_layout(template="plotly_white", title=_plotly_title(data, "Partial dependence"),
                      height=max(480, 260 * k + 140), width=max(720, 270 * k + 200),
                      legend={"orientation": "h", "y": -0.06 - 0.12 / k, "yanchor": "top"},
                      margin={"t": _top_margin(data)})
    return fig


def _plotly_label(data: SurrogateData) -> str:
    better = "lower" if data.direction == "minimize" else "higher"
    return f"{data.metric}<br>({better} is better)"


def _plotly_title(data: SurrogateData, what: str) -> dict:
    notes = "<br>".join(f"<span style='font-size:12px;color:{'#333' if data.trusted else '#a31515'}'>{n}</span>"
                        for n in data.notes)
    title = data.title.replace(", study ", "<br>study ", 1)
    return {"text": f"{what}: {title}<br>{notes}", "x": 0.01, "xanchor": "left", "yref": "container",
            "y": 1.0, "yanchor": "top", "pad": {"t": 12}}


def _top_margin(data: SurrogateData) -> int:
    """Room for the two title lines, the notes and the subplot titles below them."""
    return 110 + 18 * len(data.notes)


def _plotly_coords(spec: ParamSpec, positions: np.ndarray) -> list:
    """plotly coordinates: log10 of a log parameter's value (on a linear axis with plain-number
    ticks, so contours and cells stay exact), else the value or the category index."""
    pos = np.log10(positions) if spec.log else positions
    return [None if not np.isfinite(v) else float(v) for v in pos]


def _plotly_axis(fig, spec: ParamSpec, which: str, row: int, col: int, title: str | None) -> None:
    update = fig.update_xaxes if which == "x" else fig.update_yaxes
    if spec.numeric and spec.log:
        lo, hi = math.log10(spec.low), math.log10(spec.high)
        subs = (1, 2, 5) if hi - lo < 1.6 else (1,)
        ticks = [math.log10(m * 10.0 ** e) for e in range(math.floor(lo), math.ceil(hi) + 1) for m in subs]
        ticks = [t for t in ticks if lo - 1e-9 <= t <= hi + 1e-9]
        update(tickvals=ticks, ticktext=[f"{10 ** t:g}" for t in ticks], range=[lo, hi], row=row, col=col)
    elif spec.numeric:
        ticks = {"dtick": 1} if spec.integer and spec.high - spec.low <= 10 else {}
        update(range=[spec.low, spec.high], row=row, col=col, **ticks)
    else:
        update(tickvals=list(range(len(spec.choices))), ticktext=[fmt(c) for c in spec.choices],
               range=[-0.5, len(spec.choices) - 0.5], row=row, col=col)
    if title:
        update(title_text=title + (" (log)" if spec.log else ""), row=row, col=col)


class _Colors:
    """One colour scale shared by several plotly traces, set on each trace (a shared
    ``coloraxis`` is ignored by plotly.js once contours and heatmaps both use it); the first
    trace to ask shows the colour bar."""

    def __init__(self, zrange: tuple[float, float], colorscale: str, reverse: bool, colorbar: dict):
        self.lo, self.hi = zrange
        self.colorscale, self.reverse, self.colorbar = colorscale, reverse, colorbar
        self.shown = False

    def _bar(self) -> dict:
        first, self.shown = not self.shown, True
        return {"showscale": first, "colorbar": self.colorbar, "colorscale": self.colorscale,
                "reversescale": self.reverse}

    def trace(self) -> dict:
        return {"zmin": self.lo, "zmax": self.hi, "zauto": False, **self._bar()}

    def marker(self) -> dict:
        return {"cmin": self.lo, "cmax": self.hi, **self._bar()}


def _plotly_surface(go, sx: ParamSpec, sy: ParamSpec, x_values, y_values, z, colors: _Colors,
                    name="partial dependence"):
    """A filled contour when both axes are numeric, else a cell grid; contour levels are fixed
    over the colour range, so panels sharing a colour scale agree."""
    gx = _plotly_coords(sx, _grid_positions(sx, x_values))
    gy = _plotly_coords(sy, _grid_positions(sy, y_values))
    hover = f"{sx.name} %{{customdata[0]}}<br>{sy.name} %{{customdata[1]}}<br>{name} %{{z:.4g}}<extra></extra>"
    custom = [[[fmt(a), fmt(b)] for a in x_values] for b in y_values]
    if sx.numeric and sy.numeric:
        lo, hi = colors.lo, colors.hi
        levels = {"start": lo, "end": hi, "size": (hi - lo) / 14 if hi > lo else 1.0}
        return go.Contour(x=gx, y=gy, z=z, autocontour=False, contours=levels, line={"width": 0.3},
                          customdata=custom, hovertemplate=hover, name=name, showlegend=False, **colors.trace())
    return go.Heatmap(x=gx, y=gy, z=z, customdata=custom, hovertemplate=hover, name=name, showlegend=False,
                      **colors.trace())


def _plotly_trials(fig, go, data: SurrogateData, sx, sy, row, col, colors: _Colors | None,
                   first: bool | None = None):
    """The trials (white, or coloured by their metric with ``colors``) and the best one (a star)."""
    px = _plotly_coords(sx, _positions(sx, data.params[sx.name]))
    py = _plotly_coords(sy, _positions(sy, data.params[sy.name]))
    text = [f"{sx.name} {fmt(a)}<br>{sy.name} {fmt(b)}<br>{data.metric} {v:.4g}"
            for a, b, v in zip(data.params[sx.name], data.params[sy.name], data.values, strict=True)]
    marker = ({"color": data.values, "size": 8, "line": {"width": 0.6, "color": "black"}, **colors.marker()}
              if colors else {"color": "white", "size": 6, "line": {"width": 0.8, "color": "black"}})
    show = (row, col) == (2, 1) if first is None else first
    fig.add_trace(go.Scatter(x=px, y=py, mode="markers", marker=marker, text=text, hoverinfo="text",
                             name="trials", legendgroup="trials", showlegend=show), row, col)
    fig.add_trace(go.Scatter(x=[px[data.best]], y=[py[data.best]], mode="markers", text=[text[data.best]],
                             hoverinfo="text", marker={"symbol": "star", "size": 16, "color": "#e8112d",
                                                       "line": {"width": 0.8, "color": "black"}},
                             name="best trial", legendgroup="best", showlegend=show), row, col)


def _plotly_diagonal(fig, go, data: SurrogateData, spec: ParamSpec, i: int, first: bool) -> None:
    px = _plotly_coords(spec, _positions(spec, data.params[spec.name]))
    fig.add_trace(go.Scatter(x=px, y=data.values, mode="markers", marker={"color": "#888", "size": 5},
                             opacity=0.7, name="trials", legendgroup="trials", showlegend=False,
                             text=[fmt(v) for v in data.params[spec.name]],
                             hovertemplate=f"{spec.name} %{{text}}<br>{data.metric} %{{y:.4g}}<extra></extra>"), i, i)
    if data.trusted:
        d = data.dependence[spec.name]
        gx = _plotly_coords(spec, _grid_positions(spec, d.values))
        upper, lower = list(d.mean + d.band), list(d.mean - d.band)
        fig.add_trace(go.Scatter(x=gx + gx[::-1], y=upper + lower[::-1], fill="toself", mode="lines",
                                 fillcolor="rgba(31,119,180,0.22)", line={"width": 0}, hoverinfo="skip",
                                 name="± 1 surrogate std", legendgroup="band", showlegend=first), i, i)
        fig.add_trace(go.Scatter(x=gx, y=list(d.mean), mode="lines" if len(gx) > 10 else "lines+markers",
                                 line={"color": "#1f77b4", "width": 2.5}, name="partial dependence",
                                 legendgroup="pd", showlegend=first), i, i)
    fig.add_trace(go.Scatter(x=[px[data.best]], y=[data.values[data.best]], mode="markers", hoverinfo="skip",
                             marker={"symbol": "star", "size": 14, "color": "#e8112d",
                                     "line": {"width": 0.8, "color": "black"}},
                             name="best trial", legendgroup="best", showlegend=False), i, i)
    fig.update_yaxes(title_text=data.metric if i == 1 else None, side="right", row=i, col=i)


def plot_partial_dependence(study, *, kind: str = "auto", seed: int = 0, backend: str = "plotly", save=None):
    """A matrix in the layout of scikit-optimize's ``plot_objective``: each hyperparameter's
    partial dependence on the diagonal (mean ± the surrogate's std, trials as dots), each pair
    below it as a filled contour with the trials and the best trial (a star) on top; at most 6
    hyperparameters, the most important by the surrogate's permutation importance.

    An untrusted surrogate (see :func:`surrogate_data`) draws only the trials, and says so.

    Args:
        study: a single-objective study with complete trials.
        kind: ``"auto"``, ``"gp"`` or ``"forest"``.
        seed: for the surrogate fit and its cross-validation.
        backend: ``"plotly"`` or ``"matplotlib"``: the kind of figure returned.
        save: a path or list of paths; ``.png`` is drawn with matplotlib, ``.html`` with plotly.
    """
    return render(surrogate_data(study, kind=kind, seed=seed), draw_pd_plotly, draw_pd_mpl, backend, save)


# --- fitted surface -------------------------------------------------------------------------


def surface_axes(data: SurrogateData) -> tuple[ParamSpec, ParamSpec]:
    """The fitted surface's two hyperparameters; :class:`PlotError` when there is only one."""
    if data.surface_axes is None:
        raise PlotError("needs two searched hyperparameters; this study has "
                        f"{len(data.specs)} ({', '.join(s.name for s in data.specs)}).")
    return data.spec(data.surface_axes[0]), data.spec(data.surface_axes[1])


def draw_surface_mpl(data: SurrogateData):
    """The surrogate's surface over two hyperparameters beside its uncertainty (std), as a
    matplotlib figure (an untrusted surrogate: the trials alone)."""
    from matplotlib.colors import Normalize

    sx, sy = surface_axes(data)
    panels = 2 if data.trusted else 1
    fig = new_mpl_figure(5.6 * panels + 0.6 if data.trusted else 7.4, 5.4)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    if data.trusted:
        s = data.surface
        image = _mpl_surface(axes[0], sx, sy, s.x_values, s.y_values, s.mean, _cmap(data),
                             Normalize(s.mean.min(), s.mean.max()))
        fig.colorbar(image, ax=axes[0], location="bottom", shrink=0.85, label=f"fitted {data.label}")
        axes[0].set_title(f"fitted mean of {data.metric} (others averaged out)", fontsize=10)
        doubt = _mpl_surface(axes[1], sx, sy, s.x_values, s.y_values, s.std, "Purples",
                             Normalize(0, s.std.max()))
        fig.colorbar(doubt, ax=axes[1], location="bottom", shrink=0.85,
                     label=f"surrogate std of {data.metric} (darker = less sure)")
        axes[1].set_title("its uncertainty (mean surrogate std)", fontsize=10)
        for ax in axes:
            _mpl_trials(ax, data, sx, sy)
        axes[0].legend(frameon=True, fontsize=8, loc="best", framealpha=0.8)
    else:
        dots = _mpl_trials(axes[0], data, sx, sy, colored=_cmap(data),
                           norm=Normalize(data.values.min(), data.values.max()))
        fig.colorbar(dots, ax=axes[0], location="bottom", shrink=0.85, label=data.label)
        axes[0].set_title("the trials only (no fitted surface)", fontsize=10)
    for ax in axes:
        _mpl_axis(ax, sx, "x")
        _mpl_axis(ax, sy, "y")
        ax.set(xlabel=sx.name, ylabel=sy.name)
    _suptitle(fig, data, "Fitted surface", 10)
    return fig


def draw_surface_plotly(data: SurrogateData):
    """The surrogate's surface over two hyperparameters beside its uncertainty (std), as a plotly
    figure (an untrusted surrogate: the trials alone)."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    sx, sy = surface_axes(data)
    panels = 2 if data.trusted else 1
    titles = ([f"fitted mean of {data.metric}", "its uncertainty (mean surrogate std)"] if data.trusted
              else ["the trials only (no fitted surface)"])
    fig = make_subplots(rows=1, cols=panels, subplot_titles=titles, horizontal_spacing=0.16)
    s = data.surface
    zs = s.mean if data.trusted else data.values
    colors = _Colors((float(zs.min()), float(zs.max())), "Viridis", data.direction == "minimize",
                     {"title": {"text": _plotly_label(data)}, "thickness": 12, "len": 0.8,
                      "x": 0.42 if data.trusted else 1.02})
    if data.trusted:
        fig.add_trace(_plotly_surface(go, sx, sy, s.x_values, s.y_values, s.mean, colors), 1, 1)
        doubt = _Colors((0.0, float(s.std.max())), "Purples", False, {
            "title": {"text": f"std of {data.metric}<br>(darker = less sure)"}, "thickness": 12, "len": 0.8})
        fig.add_trace(_plotly_surface(go, sx, sy, s.x_values, s.y_values, s.std, doubt, name="surrogate std"), 1, 2)
    for col in range(1, panels + 1):
        _plotly_trials(fig, go, data, sx, sy, 1, col, colors=None if data.trusted else colors, first=col == 1)
        _plotly_axis(fig, sx, "x", 1, col, title=sx.name)
        _plotly_axis(fig, sy, "y", 1, col, title=sy.name)
    fig.update_layout(template="plotly_white", title=_plotly_title(data, "Fitted surface"),
                      height=560, width=560 * panels + 120, legend={"orientation": "h", "y": -0.15},
                      margin={"t": _top_margin(data)})
    return fig


def plot_surrogate_surface(study, x: str | None = None, y: str | None = None, *, kind: str = "auto",
                           seed: int = 0, backend: str = "plotly", save=None):
    """Two panels: the surrogate's fitted mean of the final metric over ``x`` and ``y`` (the
    other hyperparameters averaged out over the trials, a 2-D partial dependence) and its
    uncertainty (the mean surrogate std), the trials on top; default ``x``, ``y``: the two most
    important. An untrusted surrogate draws only the trials, and says so.

    Args: as :func:`plot_partial_dependence`, plus ``x`` and ``y``.
    """
    data = surrogate_data(study, kind=kind, x=x, y=y, seed=seed, pairs=False)
    surface_axes(data)
    return render(data, draw_surface_plotly, draw_surface_mpl, backend, save)
