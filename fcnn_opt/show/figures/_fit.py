"""How well a trained network fits held-out points: a confusion matrix (classification) or
predicted against true values (regression).

    >>> from fcnn_opt.plots import plot_fit
    >>> fig = plot_fit(study.best_trial, study=study, save="fit.png")  # doctest: +SKIP

Scored on the test split when the study has one (points the search never saw), else on the
validation split; a regression is drawn in the target's own units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import new_mpl_figure, render, require_plotly
from fcnn_opt.show.figures._response import trial_dataset, trial_network
from fcnn_opt.training.datasets import MULTICLASS, REGRESSION


@dataclass(frozen=True)
class FitData:
    """What :func:`fit_data` computed: a confusion matrix (classification) or targets and
    predictions (regression) on ``split``."""

    task: str
    split: str  # "test" or "validation"
    title: str
    classes: tuple[str, ...] = ()
    matrix: np.ndarray | None = None  # (true, predicted) counts
    true: np.ndarray | None = None  # regression: targets and predictions, in the data's units
    predicted: np.ndarray | None = None


def fit_data(trial, *, study=None, artifact_dir=None) -> FitData:
    """The trial's network scored on its dataset's test split (else validation)."""
    data = trial_dataset(trial, study, artifact_dir)
    net = trial_network(trial, data.task, artifact_dir)
    split = "test" if data.has_test else "validation"
    X, y = (data.X_test, data.y_test) if data.has_test else (data.X_val, data.y_val)
    out = np.asarray(net.predict(X), dtype=np.float64)
    where = f"trial {trial.number}, {data.name}: {len(X)} {split} points"
    if data.task == REGRESSION:
        scale = data.target_scaling or (0.0, 1.0)
        true, predicted = np.asarray(y) * scale[1] + scale[0], out.reshape(-1) * scale[1] + scale[0]
        rmse = float(np.sqrt(np.mean((predicted - true) ** 2)))
        return FitData(REGRESSION, split, f"Predicted against true values ({where}); RMSE {rmse:.4g}",
                       true=true, predicted=predicted)
    k = data.n_classes
    guess = np.argmax(out, axis=1) if data.task == MULTICLASS else (out.reshape(-1) > 0.5).astype(int)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (np.asarray(y).astype(int), guess), 1)
    classes = data.class_names or tuple(f"class {i}" for i in range(k))
    accuracy = float(np.trace(matrix) / max(matrix.sum(), 1))
    return FitData(data.task, split, f"Confusion matrix ({where}); accuracy {accuracy:.3f}",
                   classes=classes, matrix=matrix)


def _row_shares(matrix: np.ndarray) -> np.ndarray:
    totals = matrix.sum(axis=1, keepdims=True)
    return np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)


def draw_fit_mpl(data: FitData):
    """The fit as a matplotlib figure: the confusion matrix, or predicted against true values."""
    if data.task == REGRESSION:
        fig = new_mpl_figure(6.0, 5.6)
        ax = fig.add_subplot()
        ax.scatter(data.true, data.predicted, s=12, alpha=0.6, color="#1f77b4", edgecolors="none")
        lo, hi = float(min(data.true.min(), data.predicted.min())), float(max(data.true.max(), data.predicted.max()))
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=1, ls="--", label="perfect prediction")
        ax.set(xlabel="true value", ylabel="predicted value", aspect="equal")
        ax.legend(frameon=False)
        ax.grid(alpha=0.3)
    else:
        k = len(data.classes)
        size = min(3.5 + 0.5 * k, 10)
        fig = new_mpl_figure(size + 1.2, size)
        ax = fig.add_subplot()
        shares = _row_shares(data.matrix)
        image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
        for (i, j), count in np.ndenumerate(data.matrix):
            ax.text(j, i, f"{count}\n{shares[i, j]:.0%}", ha="center", va="center", fontsize=9 if k <= 6 else 7,
                    color="white" if shares[i, j] > 0.55 else "black")
        ax.set_xticks(range(k), data.classes, rotation=30 if k > 3 else 0, ha="right" if k > 3 else "center")
        ax.set_yticks(range(k), data.classes)
        ax.set(xlabel="predicted class", ylabel="true class")
        fig.colorbar(image, ax=ax, label="share of the true class's points", shrink=0.8)
    ax.set_title(data.title, fontsize=10, wrap=True)
    return fig


def draw_fit_plotly(data: FitData):
    """The fit as a plotly figure: the confusion matrix, or predicted against true values."""
    go = require_plotly()
    if data.task == REGRESSION:
        lo = float(min(data.true.min(), data.predicted.min()))
        hi = float(max(data.true.max(), data.predicted.max()))
        fig = go.Figure([go.Scatter(x=data.true, y=data.predicted, mode="markers", name="points",
                                    marker={"size": 6, "opacity": 0.6}),
                         go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="perfect prediction",
                                    line={"dash": "dash", "color": "#555"})])
        fig.update_layout(xaxis_title="true value", yaxis_title="predicted value")
    else:
        shares = _row_shares(data.matrix)
        text = [[f"{c}<br>{s:.0%}" for c, s in zip(row, srow, strict=True)]
                for row, srow in zip(data.matrix, shares, strict=True)]
        fig = go.Figure(go.Heatmap(z=shares, x=list(data.classes), y=list(data.classes), text=text,
                                   texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
                                   colorbar={"title": {"text": "share of<br>true class"}}))
        fig.update_layout(xaxis_title="predicted class", yaxis_title="true class",
                          yaxis={"autorange": "reversed"})
    fig.update_layout(title=data.title, template="plotly_white", height=520)
    return fig


def plot_fit(trial, *, study=None, artifact_dir=None, backend: str = "plotly", save=None):
    """A trial's confusion matrix or predicted-against-true plot on held-out points."""
    return render(fit_data(trial, study=study, artifact_dir=artifact_dir), draw_fit_plotly, draw_fit_mpl,
                  backend, save)
