"""The seed article's figure: every trial's loss history on one plot, colour by one
hyperparameter's value and line style by another's, train and validation side by side.

    >>> from fcnn_opt.plots import plot_loss_histories
    >>> fig = plot_loss_histories(study, color_by="epochs", style_by="units")  # doctest: +SKIP

The legend names only the hyperparameters that vary (each trial's ``description``). With
more than :data:`MAX_LEGEND` curves the legend lists the colour and style keys instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from fcnn_opt.show.figures._common import (
    MPL_STYLES,
    PLOTLY_DASHES,
    TAB10,
    PlotError,
    fmt,
    is_number,
    log_scaled,
    new_mpl_figure,
    render,
    require_plotly,
    searched_params,
    trials_of,
)
from fcnn_opt.store.artifact_files import WeightsNotFound, load_histories
from fcnn_opt.training.datasets import _spec

MAX_LEGEND = 12  # above this many curves, one legend entry per colour and style, not per trial
CONTINUOUS_CMAP = "viridis"


@dataclass(frozen=True)
class Curve:
    """One trial's training and validation loss per epoch, and the values it is coloured and
    styled by."""

    number: int
    state: str  # COMPLETE or PRUNED
    label: str
    train: list
    val: list
    color_value: object = None
    style_value: object = None


@dataclass(frozen=True)
class LossHistoriesData:
    """What :func:`loss_histories_data` computed: the curves and how they are coloured and styled."""

    curves: list[Curve]
    color_by: str | None
    style_by: str | None
    color_levels: list = field(default_factory=list)  # categorical colour values, in order
    color_range: tuple[float, float] | None = None  # continuous colour scale
    color_log: bool = False
    style_levels: list = field(default_factory=list)
    loss_name: str = "loss"
    title: str = ""

    @property
    def per_trial_legend(self) -> bool:
        """Whether there are few enough curves for one legend entry (and colour) each."""
        return len(self.curves) <= MAX_LEGEND

    def color(self, curve: Curve) -> str:
        """The curve's colour: its trial's, its ``color_by`` level's, or on the continuous scale."""
        if self.color_by is None:
            return TAB10[self.curves.index(curve) % len(TAB10)] if self.per_trial_legend else TAB10[0]
        if self.color_range is None:
            return TAB10[self.color_levels.index(curve.color_value) % len(TAB10)]
        from matplotlib import colormaps
        from matplotlib.colors import to_hex

        return to_hex(colormaps[CONTINUOUS_CMAP](self.color_position(curve.color_value)))

    def color_position(self, value) -> float:
        """Where ``value`` lies on the continuous colour scale, from 0 to 1 (log-scaled if
        ``color_log``)."""
        lo, hi = self.color_range
        if self.color_log:
            value, lo, hi = np.log10(value), np.log10(lo), np.log10(hi)
        return float((value - lo) / (hi - lo)) if hi > lo else 0.5

    def style_index(self, curve: Curve) -> int:
        """The curve's line style, an index into the styles of its ``style_by`` level (0 without one)."""
        if self.style_by is None:
            return 0
        return self.style_levels.index(curve.style_value) % len(MPL_STYLES)


def _levels(values: list) -> list:
    distinct = list(dict.fromkeys(values))
    if all(is_number(v) for v in distinct):
        return sorted(distinct)
    return sorted(distinct, key=str)


def _check_param(name: str, trials, role: str) -> None:
    known = sorted({k for t in trials for k in t.params})
    if name not in known:
        raise PlotError(f"{role}={name!r} is not a parameter of this study. Parameters: {', '.join(known) or 'none'}.")


def default_keys(trials) -> tuple[str | None, str | None]:
    """The article's choice: colour by the first varying hyperparameter, style by the next
    one with at most four values."""
    varying = searched_params(trials)
    color_by = varying[0] if varying else None
    style_by = next((name for name in varying[1:]
                     if len({t.params.get(name) for t in trials}) <= len(MPL_STYLES)), None)
    return color_by, style_by


def loss_histories_data(study, color_by: str | None = None, style_by: str | None = None, *,
                        include_pruned: bool = True, artifact_dir=None) -> LossHistoriesData:
    """One curve per complete (and, by default, pruned) trial that stores its histories
    (read from its run file in ``artifact_dir``, by default where it was written)."""
    states = ("COMPLETE", "PRUNED") if include_pruned else ("COMPLETE",)
    histories = {}
    for t in trials_of(study, states):
        try:
            histories[t.number] = load_histories(t, artifact_dir)
        except WeightsNotFound as exc:
            raise PlotError(str(exc)) from None
    trials = [t for t in trials_of(study, states) if histories[t.number].get("val_loss")]
    if not trials:
        raise PlotError(f"Study {study.study_name!r} has no finished trial with a loss history.")
    if color_by is None and style_by is None:
        color_by, style_by = default_keys(trials)
    for name, role in ((color_by, "color_by"), (style_by, "style_by")):
        if name is not None:
            _check_param(name, trials, role)
    curves = []
    for t in trials:
        label = t.user_attrs.get("description") or ", ".join(f"{k}: {fmt(v)}" for k, v in t.params.items())
        if t.state.name == "PRUNED":
            label += " (pruned)"
        curves.append(Curve(t.number, t.state.name, label, histories[t.number].get("train_loss", []),
                            histories[t.number]["val_loss"], t.params.get(color_by), t.params.get(style_by)))
    color_levels, color_range, color_log = [], None, False
    if color_by is not None:
        values = [c.color_value for c in curves]
        levels = _levels(values)
        if all(is_number(v) for v in levels) and len(levels) > len(TAB10) // 2:
            color_range = (float(min(levels)), float(max(levels)))
            color_log = log_scaled(trials, color_by) or (color_range[0] > 0 and color_range[1] / color_range[0] > 50)
        else:
            color_levels = levels
    style_levels = _levels([c.style_value for c in curves]) if style_by is not None else []
    if len(style_levels) > len(MPL_STYLES):
        raise PlotError(f"style_by={style_by!r} has {len(style_levels)} values; line styles can tell "
                        f"{len(MPL_STYLES)} apart. Use it as color_by, or pick another parameter.")
    task_loss = {"binary": "binary cross-entropy", "multiclass": "cross-entropy",
                 "regression": "mean squared error"}
    loss_name = "loss"
    dataset = study.user_attrs.get("dataset", {})
    if isinstance(dataset, dict) and dataset.get("name"):
        try:
            loss_name = task_loss[_spec(dataset["name"]).task]
        except ValueError:
            pass
    n_pruned = sum(c.state == "PRUNED" for c in curves)
    keys = " and ".join(f"{role} {name}" for role, name in (("colour:", color_by), ("line style:", style_by))
                        if name)
    title = (f"Loss histories of study {study.study_name!r}: {len(curves)} trials"
             f"{f' ({n_pruned} pruned)' if n_pruned else ''}{'; ' + keys if keys else ''}")
    return LossHistoriesData(curves, color_by, style_by, color_levels, color_range, color_log,
                             style_levels, loss_name, title)


def _y_range(data: LossHistoriesData) -> tuple[float, float]:
    """Loss axis limits that ignore a diverging curve's last few values."""
    values = np.array([v for c in data.curves for v in (*c.train, *c.val) if v is not None], dtype=float)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    typical = float(np.percentile(values, 99))
    if hi > 3 * typical > 0:  # a diverging curve: keep the others readable
        hi = typical
    pad = 0.05 * (hi - lo) if hi > lo else 0.1 * abs(hi) or 0.1
    return max(0.0, lo - pad), hi + pad


def _group_legend_mpl(fig, ax, data: LossHistoriesData):
    from matplotlib.lines import Line2D

    handles = []
    if data.color_by is not None and data.color_range is None:
        handles += [Line2D([], [], color=TAB10[i % len(TAB10)], lw=2.5, label=f"{data.color_by}: {fmt(v)}")
                    for i, v in enumerate(data.color_levels)]
    if data.style_by is not None:
        handles += [Line2D([], [], color="0.3", lw=2, ls=MPL_STYLES[i], label=f"{data.style_by}: {fmt(v)}")
                    for i, v in enumerate(data.style_levels)]
    if any(c.state == "PRUNED" for c in data.curves):
        handles.append(Line2D([], [], color="0.3", lw=1, alpha=0.4, label="pruned trial (faint)"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)


def draw_loss_mpl(data: LossHistoriesData):
    """The histories as a matplotlib figure: training and validation loss per epoch."""
    from matplotlib.ticker import MaxNLocator

    legend_width = 3.6 if data.per_trial_legend else 2.0
    fig = new_mpl_figure(12.5 + legend_width, 5.2)
    axes = fig.subplots(1, 2, sharey=True)
    bottom, top = _y_range(data)
    for ax, part in zip(axes, ("train", "val"), strict=True):
        for curve in data.curves:
            # Shorter runs on top: with a fixed seed, a 100-epoch run starts as the 50-epoch one.
            zorder = 2 + 1 / (1 + len(curve.val))
            values = curve.train if part == "train" else curve.val
            pruned = curve.state == "PRUNED"
            ax.plot(np.arange(1, len(values) + 1), values, color=data.color(curve),
                    ls=MPL_STYLES[data.style_index(curve)], lw=1.0 if pruned else 2.0,
                    alpha=0.5 if pruned else 0.85, label=curve.label, zorder=zorder)
        ax.set(xlabel="epoch", ylim=(bottom, top),
               title="training loss (epoch mean)" if part == "train" else "validation loss")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    axes[0].set_ylabel(data.loss_name)
    if data.per_trial_legend:
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize=9)
    else:
        _group_legend_mpl(fig, axes[1], data)
    if data.color_range is not None:
        from matplotlib import colormaps
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LogNorm, Normalize

        norm = (LogNorm if data.color_log else Normalize)(*data.color_range)
        fig.colorbar(ScalarMappable(norm=norm, cmap=colormaps[CONTINUOUS_CMAP]), ax=axes,
                     label=f"line colour: {data.color_by}", location="bottom", shrink=0.45, aspect=40,
                     pad=0.02)
    fig.suptitle(data.title, fontsize=11)
    return fig


def draw_loss_plotly(data: LossHistoriesData):
    """The histories as a plotly figure: training and validation loss per epoch."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.04,
                        subplot_titles=("training loss (epoch mean)", "validation loss"))
    for curve in sorted(data.curves, key=lambda c: -len(c.val)):  # shorter runs drawn last, on top
        pruned = curve.state == "PRUNED"
        style = {"color": data.color(curve), "dash": PLOTLY_DASHES[data.style_index(curve)],
                 "width": 1 if pruned else 2}
        for col, values in ((1, curve.train), (2, curve.val)):
            fig.add_trace(go.Scatter(
                x=list(range(1, len(values) + 1)), y=values, mode="lines", line=style,
                opacity=0.5 if pruned else 0.85, name=f"trial {curve.number}: {curve.label}",
                legendgroup=str(curve.number), showlegend=col == 2 and data.per_trial_legend,
                legendrank=1000 + data.curves.index(curve),
                hovertemplate=f"trial {curve.number}<br>{curve.label}<br>epoch %{{x}}: %{{y:.4g}}<extra></extra>"),
                row=1, col=col)
    if not data.per_trial_legend:
        if data.color_by is not None and data.color_range is None:
            for i, v in enumerate(data.color_levels):
                fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{data.color_by}: {fmt(v)}",
                                         line={"color": TAB10[i % len(TAB10)], "width": 3}), row=1, col=2)
        for i, v in enumerate(data.style_levels):
            fig.add_trace(go.Scatter(x=[None], y=[None], mode="lines", name=f"{data.style_by}: {fmt(v)}",
                                     line={"color": "#555", "dash": PLOTLY_DASHES[i]}), row=1, col=2)
    if data.color_range is not None:
        lo, hi = data.color_range
        tick_lo, tick_hi = (np.log10(lo), np.log10(hi)) if data.color_log else (lo, hi)
        ticks = np.linspace(tick_lo, tick_hi, 5)
        fig.add_trace(go.Scatter(
            x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
            marker={"color": [tick_lo], "colorscale": "Viridis", "cmin": tick_lo, "cmax": tick_hi,
                    "showscale": True, "colorbar": {
                        "title": {"text": data.color_by}, "x": -0.12, "len": 0.8, "tickvals": ticks,
                        "ticktext": [fmt(10 ** t if data.color_log else t) for t in ticks]}}), row=1, col=1)
    fig.update_xaxes(title_text="epoch")
    fig.update_yaxes(title_text=data.loss_name, range=list(_y_range(data)), row=1, col=1)
    fig.update_layout(title=data.title, template="plotly_white", height=520,
                      legend={"font": {"size": 10}})
    return fig


def plot_loss_histories(study, color_by: str | None = None, style_by: str | None = None, *,
                        include_pruned: bool = True, backend: str = "plotly", save=None):
    """Every trial's train and validation loss per epoch, as in the seed article.

    Args:
        study: an fcnn_opt study (its trials store ``train_loss`` and ``val_loss``).
        color_by: hyperparameter whose value sets the colour (a colour scale when it takes
            many numeric values). Default: the first one that varies.
        style_by: hyperparameter whose value sets the line style (at most 4 values).
            Default: the next varying one with at most 4 values.
        include_pruned: draw pruned trials too (faint, thin).
        backend: ``"plotly"`` or ``"matplotlib"``: the kind of figure returned.
        save: a path or list of paths; ``.png`` is drawn with matplotlib, ``.html`` with plotly.
    """
    data = loss_histories_data(study, color_by, style_by, include_pruned=include_pruned)
    return render(data, draw_loss_plotly, draw_loss_mpl, backend, save)
