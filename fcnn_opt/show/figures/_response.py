"""Model response surface, the original's ``plotModelEstimate``: a trained network's output
over the input plane (probability for binary, class for multi-class, value for regression)
with the training points on top, the ground truth beside it and the loss history.

From a finished trial the network is rebuilt from its stored weights with the NumPy
forward pass, so drawing never needs the library that trained it::

    >>> from fcnn_opt.plots import plot_response
    >>> fig = plot_response(study.best_trial, study=study, save="best.png")  # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    TAB10,
    PlotError,
    new_mpl_figure,
    render,
    require_plotly,
    value_text,
)
from fcnn_opt.show.figures._points import VALUE_CMAP, scatter_mpl, scatter_plotly
from fcnn_opt.store.artifact_files import (
    WeightsNotFound,
    load_histories,
    load_weights,
    local_data_args,
)
from fcnn_opt.training.backends._numpy import NumpyNet
from fcnn_opt.training.datasets import BINARY, MULTICLASS, REGRESSION, Dataset
from fcnn_opt.training.loop import TrainResult
from fcnn_opt.training.tables import build, drawn_over_important_plane

RESULT_KEYS = ("lib", "units", "activation", "optimizer", "lr", "epochs")


@dataclass(frozen=True)
class ResponseData:
    """A model's output on the picture grid and what is drawn beside it."""

    task: str
    n_classes: int
    a1: np.ndarray  # x1 axis of the grid
    a2: np.ndarray  # x2 axis of the grid
    output: np.ndarray  # (len(a2), len(a1)): probability, class index or value
    truth: np.ndarray | None  # same shape, the noise-free target; None without a formula
    X: np.ndarray  # training points
    y: np.ndarray
    train_loss: list
    val_loss: list
    description: str
    subtitle: str
    dataset: str
    axes: tuple[str, str] = ("x1", "x2")  # the two inputs drawn ("" second: there is one)
    positive: str = "class 1"  # what a binary network's probability is of

    @property
    def one_input(self) -> bool:
        """A network of one input: drawn as a curve, not over a plane."""
        return self.axes[1] == ""

    @property
    def loss_name(self) -> str:
        """The name of the task's loss: cross-entropy or mean squared error."""
        return {BINARY: "binary cross-entropy", MULTICLASS: "cross-entropy",
                REGRESSION: "mean squared error"}[self.task]


def trial_dataset(trial, study=None, artifact_dir=None, features=None) -> Dataset:
    """The dataset a finished trial was trained on, rebuilt from its stored arguments (your own
    data file from the study's copy in the artifact folder when it is not on this machine)."""
    args = trial.user_attrs.get("dataset_args")
    if args is None and study is not None:
        args = study.user_attrs.get("dataset")
    if args is None:
        name = trial.user_attrs.get("dataset")
        if name is None:
            raise PlotError(f"Trial {trial.number} stores no dataset; was it run by fcnn_opt's Objective?")
        args = {"name": name}
    if study is not None:
        args = local_data_args(args, study.user_attrs, artifact_dir)
    data = build(args)
    if features:
        try:
            data = data.over(features)
        except ValueError as exc:
            raise PlotError(str(exc)) from None
    return data


def trial_network(trial, task: str, artifact_dir=None):
    """A NumPy network with the trial's stored final weights (see
    :func:`fcnn_opt.store.artifact_files.load_weights`)."""
    config = trial.user_attrs.get("config") or {}
    try:
        weights = load_weights(trial, artifact_dir)
    except WeightsNotFound as exc:
        raise PlotError(str(exc)) from None
    return NumpyNet(weights, config.get("activation", "relu"), task)


def grid_output(dataset: Dataset, predict, resolution: int):
    """The grid's axes, the model's output on it (class index, probability or value; NaN where
    the network's output is not finite) and the noise-free truth (None without a formula)."""
    a1, a2, points = dataset.grid(resolution)
    shape = (len(a2), len(a1))
    with np.errstate(all="ignore"):
        raw = np.asarray(predict(points), dtype=np.float64)
    if dataset.task == MULTICLASS:
        output = np.argmax(raw, axis=1).reshape(shape).astype(float)
        output[~np.isfinite(raw).all(axis=1).reshape(shape)] = np.nan
    else:
        output = raw.reshape(shape)
    truth = dataset.ground_truth(points)
    if truth is not None:
        truth = truth.astype(float).reshape(shape)
        if dataset.task == MULTICLASS:  # the formula's classes beyond the data's, e.g. outer rings
            truth[truth >= dataset.n_classes] = np.nan
    return a1, a2, output, truth


def response_data(source, *, study=None, dataset: Dataset | None = None,
                  resolution: int = 101, artifact_dir=None, features=None) -> ResponseData:
    """Build a :class:`ResponseData` from a ``TrainResult`` or a finished Optuna trial.

    Args:
        source: a :class:`~fcnn_opt.training.loop.TrainResult`, or a ``FrozenTrial`` stored by
            fcnn_opt's Objective (with its weights).
        study: the trial's study, used to find the dataset's arguments on older trials.
        dataset: the dataset to draw on, instead of rebuilding the stored one.
        resolution: grid points per axis (the original's 101).
        artifact_dir: the study's artifact folder, where a trial's weights are (default: the
            folder they were written to).
    """
    if isinstance(source, TrainResult):
        if source.model is None:
            raise PlotError("This TrainResult has no model to draw.")
        data = dataset or source.dataset
        data = drawn_over_important_plane(data, source.predict)
        a1, a2, output, truth = grid_output(data, source.predict, resolution)
        description = source.description(RESULT_KEYS)
        subtitle = f"{data.name}, {source.epochs_run} epochs, final val_loss {source.val_loss[-1]:.4g}"
        train_loss, val_loss = list(source.train_loss), list(source.val_loss)
    elif hasattr(source, "user_attrs") and hasattr(source, "number"):
        data = dataset or trial_dataset(source, study, artifact_dir, features)
        net = trial_network(source, data.task, artifact_dir)
        data = drawn_over_important_plane(data, net.predict)
        a1, a2, output, truth = grid_output(data, net.predict, resolution)
        attrs = source.user_attrs
        description = attrs.get("description") or ", ".join(f"{k}: {v}" for k, v in source.params.items())
        value = value_text(source, study)
        subtitle = f"trial {source.number} ({source.state.name.lower()}{value}), {data.name}"
        histories = load_histories(source, artifact_dir)
        train_loss, val_loss = histories.get("train_loss", []), histories.get("val_loss", [])
    else:
        raise PlotError(f"Cannot draw a response surface from {type(source).__name__}; "
                        "give a TrainResult or a finished Optuna trial.")
    return ResponseData(task=data.task, n_classes=data.n_classes, a1=a1, a2=a2, output=output,
                        truth=truth, X=data.on_plane(data.X_train), y=data.y_train, train_loss=train_loss,
                        val_loss=val_loss, description=description,
                        subtitle="; ".join(filter(None, [subtitle, _slice_note(data)])),
                        dataset=data.name, axes=data.plane_names,
                        positive=data.class_names[1] if data.class_names else "class 1")


def _slice_note(data: Dataset) -> str:
    """What a picture of more than two features shows: a slice through the others' medians."""
    if data.n_features <= 2:
        return ""
    return (f"a slice: {data.names[data.plane[0]]} and {data.names[data.plane[1]]} vary, the other "
            f"{data.n_features - 2} features stay at their medians")


def value_range(y, output, truth) -> tuple[float, float]:
    """The colour range of a surface: the 1st to 99th percentile of the targets, the finite
    outputs and the truth together."""
    values = [np.asarray(y, dtype=float), output[np.isfinite(output)]]
    if truth is not None:
        values.append(truth.ravel())
    stacked = np.concatenate([np.ravel(v) for v in values])
    stacked = stacked[np.isfinite(stacked)]
    lo, hi = np.percentile(stacked, [1, 99]) if stacked.size else (0.0, 1.0)
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _value_range(data: ResponseData) -> tuple[float, float]:
    return value_range(data.y, data.output, data.truth)


def _surface_mpl(ax, data: ResponseData, z: np.ndarray, vrange):
    from matplotlib.colors import ListedColormap

    if data.task == MULTICLASS:
        k = data.n_classes
        cmap = ListedColormap(TAB10[:k])
        return ax.contourf(data.a1, data.a2, z, levels=np.arange(k + 1) - 0.5, cmap=cmap, alpha=0.45)
    if data.task == BINARY:
        filled = ax.contourf(data.a1, data.a2, z, levels=np.linspace(0, 1, 11), cmap="Spectral",
                             alpha=0.75)
        if np.nanmin(z) < 0.5 < np.nanmax(z):
            ax.contour(data.a1, data.a2, z, levels=[0.5], colors="k", linewidths=1.0)
        return filled
    from matplotlib.ticker import MaxNLocator

    levels = MaxNLocator(14).tick_values(*vrange)
    return ax.contourf(data.a1, data.a2, np.clip(z, levels[0], levels[-1]), levels=levels,
                       cmap=VALUE_CMAP, alpha=0.8)


def draw_response_mpl(data: ResponseData, *, point_size: float = 7):
    """The matplotlib figure: model output | ground truth | loss history.

    A fixed layout (no constrained layout): this figure is drawn for every trial of a
    study as its dashboard artifact, and a fixed layout draws in half the time.
    """
    from matplotlib.patches import Rectangle

    if data.one_input:
        return _draw_curve_mpl(data, point_size)
    fig = new_mpl_figure(14.6, 4.9, layout=None)
    fig.suptitle(f"{data.description}\n{data.subtitle}", fontsize=11, y=0.985)
    grid = fig.add_gridspec(1, 5, width_ratios=[1, 1, 0.05, 0.3, 1.05], left=0.04, right=0.985,
                            top=0.84, bottom=0.2, wspace=0.15)
    axes = [fig.add_subplot(grid[0, i]) for i in (0, 1, 4)]
    vrange = _value_range(data)
    output_title = {BINARY: f"model: probability of {data.positive}", MULTICLASS: "model: predicted class",
                    REGRESSION: "model: predicted value"}[data.task]
    filled = None
    for ax, z, title in ((axes[0], data.output, output_title), (axes[1], data.truth, "ground truth")):
        if z is not None:
            drawn = _surface_mpl(ax, data, z, vrange)
            filled = filled if filled is not None else drawn
        else:
            title = "ground truth: no formula (points only)"
        if data.task == REGRESSION:  # the surfaces carry the values; points show where data is
            ax.scatter(data.X[:, 0], data.X[:, 1], s=2, color="k", alpha=0.35, linewidths=0)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                scatter_mpl(ax, data.X, data.y, data.task, data.n_classes, size=point_size, edge=0.25,
                            legend=ax is axes[0])
        lo, hi = data.X.min(axis=0), data.X.max(axis=0)
        ax.add_patch(Rectangle(lo, *(hi - lo), fill=False, ls=(0, (4, 3)), lw=0.9, ec="0.2"))
        ax.set(xlim=(data.a1[0], data.a1[-1]), ylim=(data.a2[0], data.a2[-1]), xlabel=data.axes[0],
               ylabel=data.axes[1], aspect="equal")
        ax.set_title(title, fontsize=10)
    cax = fig.add_subplot(grid[0, 2])
    if data.task == MULTICLASS:
        cax.set_axis_off()
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", bbox_to_anchor=(0.33, 0.0),
                   ncol=data.n_classes, frameon=False, fontsize=9, markerscale=2,
                   title="training points (dashed box: sampled region) and predicted regions",
                   title_fontsize=9)
    elif filled is not None:
        label = f"probability of {data.positive}" if data.task == BINARY else "value"
        fig.colorbar(filled, cax=cax, label=label)
        points = "black dots" if data.task == REGRESSION else "dots coloured by class"
        fig.text(0.33, 0.03, f"training points: {points}; dashed box: the sampled region", ha="center",
                 fontsize=9)
    _loss_mpl(axes[2], data)
    return fig


def _loss_mpl(ax, data: ResponseData) -> None:
    from matplotlib.ticker import MaxNLocator

    epochs = np.arange(1, len(data.val_loss) + 1)
    if len(data.train_loss):
        ax.plot(epochs[:len(data.train_loss)], data.train_loss, label="train", color="#1f77b4", lw=1.8)
    if len(data.val_loss):
        ax.plot(epochs, data.val_loss, label="validation", color="#ff7f0e", lw=1.8, ls="--")
    ax.set(xlabel="epoch", ylabel=data.loss_name)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))
    ax.set_title("loss history", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(frameon=False)


def curve(data: ResponseData) -> tuple[np.ndarray, np.ndarray, str]:
    """A one-input network's output along its input: ``(x, y, what y is)`` (its grid's output
    does not change along the picture's second axis)."""
    what = {BINARY: f"probability of {data.positive}", MULTICLASS: "predicted class",
            REGRESSION: "predicted value (standardised)"}[data.task]
    return data.a1, data.output[0], what


def _draw_curve_mpl(data: ResponseData, point_size: float):
    """One input: the model's output as a curve over the training points, beside the loss."""
    fig = new_mpl_figure(11.5, 4.6, layout=None)
    fig.suptitle(f"{data.description}\n{data.subtitle}", fontsize=11, y=0.985)
    grid = fig.add_gridspec(1, 2, width_ratios=[1.3, 1], left=0.07, right=0.98, top=0.82, bottom=0.13, wspace=0.25)
    ax = fig.add_subplot(grid[0, 0])
    x, y, what = curve(data)
    jitter = np.random.default_rng(0).uniform(-0.04, 0.04, len(data.y)) if data.task != REGRESSION else 0
    ax.scatter(data.X[:, 0], np.asarray(data.y, dtype=float) + jitter, s=point_size, color="0.35", alpha=0.5,
               linewidths=0, label="training points")
    ax.plot(x, y, color="#d62728", lw=2.2, label=f"model: {what}")
    ax.set(xlabel=data.axes[0], ylabel="class" if data.task == MULTICLASS else what, xlim=(x[0], x[-1]))
    if data.task == MULTICLASS:
        ax.set_yticks(range(data.n_classes))
    ax.grid(alpha=0.3)
    ax.legend(frameon=False, fontsize=9)
    ax.set_title("the model along its one input", fontsize=10)
    _loss_mpl(fig.add_subplot(grid[0, 1]), data)
    return fig


def _surface_plotly(data: ResponseData, z: np.ndarray, vrange, showscale: bool):
    go = require_plotly()
    if data.task == MULTICLASS:
        k = data.n_classes
        scale = []
        for i in range(k):
            scale += [[i / k, TAB10[i]], [(i + 1) / k, TAB10[i]]]
        return go.Heatmap(x=data.a1, y=data.a2, z=z, zmin=-0.5, zmax=k - 0.5, colorscale=scale,
                          opacity=0.45, showscale=False, hovertemplate="x1 %{x:.2f}<br>x2 %{y:.2f}"
                          "<br>class %{z}<extra></extra>")
    if data.task == BINARY:
        return go.Contour(x=data.a1, y=data.a2, z=z, zmin=0, zmax=1, colorscale="Spectral", opacity=0.75,
                          contours={"start": 0, "end": 1, "size": 0.1}, showscale=showscale,
                          colorbar={"title": {"text": f"P({data.positive})"}, "len": 0.9},
                          line={"width": 0.3})
    lo, hi = vrange
    return go.Contour(x=data.a1, y=data.a2, z=np.clip(z, lo, hi), zmin=lo, zmax=hi, colorscale="Spectral",
                      reversescale=True, opacity=0.8, showscale=showscale, line={"width": 0.3},
                      contours={"start": lo, "end": hi, "size": (hi - lo) / 14},
                      colorbar={"title": {"text": "value"}, "len": 0.9})


def draw_response_plotly(data: ResponseData):
    """The response surface as a plotly figure: the network's output over the plane beside the
    ground truth, the points on both, and the loss curves (one input: a curve instead)."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    if data.one_input:
        return _draw_curve_plotly(data)
    truth_title = "ground truth" if data.truth is not None else "ground truth: no formula (points only)"
    fig = make_subplots(rows=1, cols=3, subplot_titles=("model output", truth_title, "loss history"),
                        horizontal_spacing=0.07)
    vrange = _value_range(data)
    for col, z in ((1, data.output), (2, data.truth)):
        if z is not None:
            fig.add_trace(_surface_plotly(data, z, vrange, showscale=col == 1), row=1, col=col)
        for trace in scatter_plotly(data.X, data.y, data.task, data.n_classes, size=4, showlegend=col == 1,
                                    coloraxis=None):
            if data.task == REGRESSION:
                trace.marker.update(cmin=vrange[0], cmax=vrange[1], showscale=False)
            fig.add_trace(trace, row=1, col=col)
        fig.update_xaxes(range=[data.a1[0], data.a1[-1]], title_text=data.axes[0], row=1, col=col)
        fig.update_yaxes(range=[data.a2[0], data.a2[-1]], title_text=data.axes[1], row=1, col=col,
                         scaleanchor=f"x{'' if col == 1 else col}", scaleratio=1)
    epochs = list(range(1, len(data.val_loss) + 1))
    fig.add_trace(go.Scatter(x=epochs, y=data.train_loss, name="train loss", mode="lines",
                             line={"color": "#1f77b4"}), row=1, col=3)
    fig.add_trace(go.Scatter(x=epochs, y=data.val_loss, name="validation loss", mode="lines",
                             line={"color": "#ff7f0e", "dash": "dash"}), row=1, col=3)
    fig.update_xaxes(title_text="epoch", row=1, col=3)
    fig.update_yaxes(title_text=data.loss_name, row=1, col=3)
    fig.update_layout(title={"text": f"{data.description}<br><sup>{data.subtitle}</sup>"}, height=480,
                      width=1350, template="plotly_white",
                      legend={"orientation": "h", "y": -0.18, "x": 0.0})
    return fig


def _draw_curve_plotly(data: ResponseData):
    go = require_plotly()
    from plotly.subplots import make_subplots

    x, y, what = curve(data)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("the model along its one input", "loss history"),
                        column_widths=[0.56, 0.44], horizontal_spacing=0.1)
    fig.add_trace(go.Scatter(x=data.X[:, 0], y=np.asarray(data.y, dtype=float), mode="markers", name="training points",
                             marker={"color": "#555", "size": 4, "opacity": 0.5}), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines", name=f"model: {what}", line={"color": "#d62728", "width": 3}),
                  row=1, col=1)
    epochs = list(range(1, len(data.val_loss) + 1))
    fig.add_trace(go.Scatter(x=epochs, y=data.train_loss, name="train loss", mode="lines"), row=1, col=2)
    fig.add_trace(go.Scatter(x=epochs, y=data.val_loss, name="validation loss", mode="lines",
                             line={"dash": "dash"}), row=1, col=2)
    fig.update_xaxes(title_text=data.axes[0], row=1, col=1)
    fig.update_yaxes(title_text=what, row=1, col=1)
    fig.update_xaxes(title_text="epoch", row=1, col=2)
    fig.update_yaxes(title_text=data.loss_name, row=1, col=2)
    fig.update_layout(title={"text": f"{data.description}<br><sup>{data.subtitle}</sup>"}, height=460,
                      template="plotly_white")
    return fig


def plot_response(source, *, study=None, dataset: Dataset | None = None, backend: str = "plotly",
                  save=None, resolution: int = 101, artifact_dir=None):
    """A trained model's response surface beside the ground truth and its loss history.

    Args:
        source: a :class:`~fcnn_opt.training.loop.TrainResult`, or a finished trial of an fcnn_opt
            study (e.g. ``study.best_trial``).
        study: the trial's study (helps find the dataset of trials from older versions).
        dataset: draw on this dataset instead of the one the model was trained on.
        backend: ``"plotly"`` or ``"matplotlib"``: the kind of figure returned.
        save: a path or list of paths; ``.png`` is drawn with matplotlib, ``.html`` with plotly.
        resolution: grid points per axis.
        artifact_dir: the study's artifact folder, where a trial's weights are (default: the
            folder they were written to).
    """
    data = response_data(source, study=study, dataset=dataset, resolution=resolution,
                         artifact_dir=artifact_dir)
    return render(data, draw_response_plotly, draw_response_mpl, backend, save)
