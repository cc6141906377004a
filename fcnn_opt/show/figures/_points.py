"""The dataset's points coloured by label or value: the original's ``plotPoints``.

    >>> from fcnn_opt import make_dataset
    >>> from fcnn_opt.plots import plot_points
    >>> fig = plot_points(make_dataset("circles"), save="circles.png")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import TAB10, new_mpl_figure, render, require_plotly
from fcnn_opt.training.datasets import MULTICLASS, REGRESSION, Dataset

BINARY_COLORS = ("#d53e4f", "#3288bd")  # the two ends of the Spectral map: class 0, class 1
VALUE_CMAP = "Spectral_r"  # regression values (high = red), as the original's Spectral


@dataclass(frozen=True)
class PointsData:
    """What :func:`points_data` computed: a dataset's training and validation points on its
    plane, with a title."""

    name: str
    task: str
    n_classes: int
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    title: str
    axes: tuple[str, str] = ("x1", "x2")


def points_data(dataset: Dataset) -> PointsData:
    """The points :func:`plot_points` draws: ``dataset``'s training and validation points on its
    plane, titled with its task, size, noise and class counts."""
    counts = ""
    if dataset.task != REGRESSION:
        counts = " " + "/".join(str(int(c)) for c in np.bincount(dataset.y.astype(int),
                                                                  minlength=dataset.n_classes))
    noise = f", noise {dataset.noise:g}" if dataset.noise else ""
    title = (f"{dataset.name}: {dataset.task}, {len(dataset.X)} points{noise}"
             f"{'; per class' + counts if counts else ''}")
    return PointsData(dataset.name, dataset.task, dataset.n_classes, dataset.on_plane(dataset.X_train),
                      dataset.y_train, dataset.on_plane(dataset.X_val), dataset.y_val, title, dataset.plane_names)


def class_label(task: str, k: int) -> str:
    """The legend label of class ``k``."""
    return f"class {k}"


def scatter_mpl(ax, X, y, task: str, n_classes: int, *, size: float = 10, edge: float = 0.3,
                marker: str = "o", label_prefix: str = "", vmin=None, vmax=None, legend=True):
    """Points on a matplotlib axis: class colours, or values on the Spectral map."""
    if task == REGRESSION:
        return ax.scatter(X[:, 0], X[:, 1], c=y, cmap=VALUE_CMAP, vmin=vmin, vmax=vmax, s=size,
                          edgecolors="k", linewidths=edge, marker=marker)
    colors = TAB10 if task == MULTICLASS else BINARY_COLORS
    for k in range(n_classes):
        mask = y.astype(int) == k
        ax.scatter(X[mask, 0], X[mask, 1], color=colors[k % len(colors)], s=size, edgecolors="k",
                   linewidths=edge, marker=marker,
                   label=f"{label_prefix}{class_label(task, k)}" if legend else None)
    return None


def _mpl(data: PointsData):
    fig = new_mpl_figure(6.4, 5.6)
    ax = fig.add_subplot()
    X = np.concatenate([data.X_train, data.X_val])
    y = np.concatenate([data.y_train, data.y_val])
    mappable = scatter_mpl(ax, X, y, data.task, data.n_classes, size=12)
    if mappable is not None:
        fig.colorbar(mappable, ax=ax, label="target value")
    else:
        fig.legend(loc="outside right upper", frameon=False)
    ax.set(xlabel=data.axes[0], ylabel=data.axes[1], title=data.title, aspect="equal")
    ax.title.set_fontsize(10)
    return fig


def scatter_plotly(X, y, task: str, n_classes: int, *, name: str = "", size: int = 5,
                   showlegend: bool = True, symbol: str = "circle", coloraxis: str | None = None):
    """Plotly traces for points: one per class, or one coloured by value."""
    go = require_plotly()
    line = {"width": 0.5, "color": "black"}
    if task == REGRESSION:
        marker = {"color": y, "size": size, "line": line, "symbol": symbol}
        if coloraxis:
            marker["coloraxis"] = coloraxis
        else:
            marker.update(colorscale="Spectral", reversescale=True, showscale=True)
        return [go.Scatter(x=X[:, 0], y=X[:, 1], mode="markers", name=name or "points",
                           marker=marker, showlegend=False)]
    colors = TAB10 if task == MULTICLASS else BINARY_COLORS
    traces = []
    for k in range(n_classes):
        mask = y.astype(int) == k
        traces.append(go.Scatter(
            x=X[mask, 0], y=X[mask, 1], mode="markers", name=f"{name}{class_label(task, k)}",
            legendgroup=f"class{k}", showlegend=showlegend,
            marker={"color": colors[k % len(colors)], "size": size, "line": line, "symbol": symbol}))
    return traces


def _plotly(data: PointsData):
    go = require_plotly()
    X = np.concatenate([data.X_train, data.X_val])
    y = np.concatenate([data.y_train, data.y_val])
    fig = go.Figure(scatter_plotly(X, y, data.task, data.n_classes, size=6))
    fig.update_layout(title=data.title, xaxis_title=data.axes[0], yaxis_title=data.axes[1], width=700, height=600,
                      template="plotly_white")
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


def plot_points(dataset: Dataset, *, backend: str = "plotly", save=None):
    """The dataset's points coloured by class or value.

    Args:
        dataset: from :func:`fcnn_opt.make_dataset`.
        backend: ``"plotly"`` (returned figure is interactive) or ``"matplotlib"``.
        save: a path or list of paths; ``.png`` is drawn with matplotlib, ``.html`` with plotly.
    """
    return render(points_data(dataset), _plotly, _mpl, backend, save)
