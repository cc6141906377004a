"""The decision boundary as the network learns: its output over the input plane after each
snapshot epoch (``study --snapshots N``), the best and the worst trial side by side.

    >>> from fcnn_opt.plots import plot_learning
    >>> fig = plot_learning(study, save="learning.html")  # doctest: +SKIP

The plotly figure is an animation with an epoch slider (and a play button); the matplotlib
one, for a PNG, is a strip of small multiples, one row per trial. The loss curves beside
the surface carry a marker at the epoch shown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    PlotError,
    new_mpl_figure,
    render,
    require_plotly,
    trials_of,
)
from fcnn_opt.show.figures._points import scatter_mpl, scatter_plotly
from fcnn_opt.show.figures._response import (
    ResponseData,
    _surface_mpl,
    _surface_plotly,
    grid_output,
    response_data,
    trial_dataset,
    trial_network,
    value_range,
)
from fcnn_opt.store.artifact_files import load_histories, load_snapshots
from fcnn_opt.training.backends._numpy import NumpyNet
from fcnn_opt.training.tables import drawn_over_important_plane

RESOLUTION = 61  # grid points per axis of each frame


@dataclass(frozen=True)
class LearningRun:
    """One trial's snapshots: the network's output over the plane after each snapshot epoch, and
    its loss curves."""

    label: str  # "best", "worst"
    trial_number: int
    epochs: list[int]  # the snapshot epochs
    frames: list[ResponseData]  # the output over the plane after each of them
    train_loss: list
    val_loss: list


@dataclass(frozen=True)
class LearningData:
    """What :func:`learning_data` computed: the runs of the trials shown (best and worst)."""

    title: str
    runs: list[LearningRun]


def learning_data(study, *, trials=None, artifact_dir=None, features=None) -> LearningData:
    """The best and worst complete trials' snapshots (or those of the trials given)."""
    import dataclasses

    if trials is None:
        complete = [t for t in trials_of(study) if t.values and len(t.values) == 1 and np.isfinite(t.value)]
        ranked = sorted(complete, key=lambda t: t.value, reverse=study.direction.name == "MAXIMIZE")
        trials = [("best", ranked[0]), ("worst", ranked[-1])][: min(2, len(ranked))]
    runs = []
    for label, trial in trials:
        snapshots = load_snapshots(trial, artifact_dir)
        if not snapshots:
            continue
        data = trial_dataset(trial, study, artifact_dir, features)
        final = trial_network(trial, data.task, artifact_dir)
        data = drawn_over_important_plane(data, final.predict)  # one plane for every frame
        base = response_data(trial, study=study, dataset=data, resolution=RESOLUTION, artifact_dir=artifact_dir)
        activation = (trial.user_attrs.get("config") or {}).get("activation", "relu")
        frames = []
        for weights in snapshots.values():
            net = NumpyNet(weights, activation, data.task)
            output = grid_output(data, net.predict, RESOLUTION)[2]
            frames.append(dataclasses.replace(base, output=output))
        histories = load_histories(trial, artifact_dir)
        runs.append(LearningRun(label, trial.number, list(snapshots), frames, histories.get("train_loss", []),
                                histories.get("val_loss", [])))
    if not runs:
        raise PlotError("no trial kept snapshots; run the study with --snapshots N (e.g. 10).")
    return LearningData(f"The decision boundary as it learns, study {study.study_name!r}", runs)


def _frame_index(run: LearningRun, k: int) -> int:
    return min(k, len(run.epochs) - 1)


def draw_learning_plotly(data: LearningData):
    """The snapshots as a plotly figure with a slider over the epochs (one row per run)."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    rows = len(data.runs)
    titles = []
    for run in data.runs:
        titles += [f"{run.label}: trial {run.trial_number}", "loss history"]
    fig = make_subplots(rows=rows, cols=2, subplot_titles=titles, horizontal_spacing=0.1,
                        vertical_spacing=0.12, column_widths=[0.45, 0.55])
    steps = max(len(run.epochs) for run in data.runs)
    surface_traces = []  # index in fig.data of each run's surface and marker

    def traces_at(run: LearningRun, k: int):
        frame = run.frames[_frame_index(run, k)]
        vrange = value_range(frame.y, frame.output, None)
        epoch = run.epochs[_frame_index(run, k)]
        losses = [v for v in run.val_loss + run.train_loss if v is not None and np.isfinite(v)]
        lo, hi = (min(losses), max(losses)) if losses else (0.0, 1.0)
        return (_surface_plotly(frame, frame.output, vrange, showscale=False),
                go.Scatter(x=[epoch, epoch], y=[lo, hi], mode="lines", line={"color": "#333", "width": 1.5},
                           name="epoch shown", showlegend=False))

    for row, run in enumerate(data.runs, start=1):
        surface, marker = traces_at(run, 0)
        fig.add_trace(surface, row=row, col=1)
        surface_traces.append(len(fig.data) - 1)
        frame = run.frames[0]
        for trace in _points(frame):
            fig.add_trace(trace, row=row, col=1)
        epochs = list(range(1, len(run.val_loss) + 1))
        fig.add_trace(go.Scatter(x=epochs, y=run.train_loss, mode="lines", name="train loss",
                                 line={"color": "#1f77b4"}, showlegend=row == 1), row=row, col=2)
        fig.add_trace(go.Scatter(x=epochs, y=run.val_loss, mode="lines", name="validation loss",
                                 line={"color": "#ff7f0e", "dash": "dash"}, showlegend=row == 1), row=row, col=2)
        fig.add_trace(marker, row=row, col=2)
        surface_traces.append(len(fig.data) - 1)
        fig.update_xaxes(title_text=frame.axes[0], range=[frame.a1[0], frame.a1[-1]], row=row, col=1)
        fig.update_yaxes(title_text=frame.axes[1], range=[frame.a2[0], frame.a2[-1]], row=row, col=1)
        fig.update_xaxes(title_text="epoch", row=row, col=2)
        fig.update_yaxes(title_text=frame.loss_name, row=row, col=2)
    frames = []
    for k in range(steps):
        traces = [trace for run in data.runs for trace in traces_at(run, k)]
        label = " / ".join(str(run.epochs[_frame_index(run, k)]) for run in data.runs)
        frames.append(go.Frame(data=traces, traces=surface_traces, name=str(k), layout={"title": {
            "text": f"{data.title}: after epoch {label}"}}))
    fig.frames = frames
    slider = {"active": 0, "currentvalue": {"prefix": "snapshot "}, "pad": {"t": 40},
              "steps": [{"label": " / ".join(str(run.epochs[_frame_index(run, k)]) for run in data.runs),
                         "method": "animate", "args": [[str(k)], {"mode": "immediate", "frame": {"duration": 0,
                                                                                                   "redraw": True}}]}
                        for k in range(steps)]}
    play = {"type": "buttons", "x": 0.0, "y": -0.08, "xanchor": "left", "buttons": [
        {"label": "play", "method": "animate",
         "args": [None, {"frame": {"duration": 600, "redraw": True}, "fromcurrent": True}]}]}
    fig.update_layout(title=f"{data.title}: after epoch " + " / ".join(str(r.epochs[0]) for r in data.runs),
                      sliders=[slider], updatemenus=[play], height=430 * rows + 120, width=1100,
                      template="plotly_white")
    return fig


def _points(frame: ResponseData):
    traces = scatter_plotly(frame.X, frame.y, frame.task, frame.n_classes, size=3, showlegend=False,
                            coloraxis=None)
    for trace in traces:
        trace.marker.opacity = 0.5
    return traces


def draw_learning_mpl(data: LearningData, columns: int = 5):
    """``columns`` of the snapshots per run, spread over its epochs, as a matplotlib figure
    (one row per run)."""
    rows = len(data.runs)
    fig = new_mpl_figure(2.6 * columns, 2.8 * rows + 0.6)
    grid = fig.add_gridspec(rows, columns)
    for row, run in enumerate(data.runs):
        picks = sorted({int(round(i * (len(run.epochs) - 1) / max(columns - 1, 1))) for i in range(columns)})
        for col, k in enumerate(picks):
            frame = run.frames[k]
            ax = fig.add_subplot(grid[row, col])
            _surface_mpl(ax, frame, frame.output, value_range(frame.y, frame.output, None))
            scatter_mpl(ax, frame.X, frame.y, frame.task, frame.n_classes, size=1.5, edge=0, legend=False)
            ax.set(xlim=(frame.a1[0], frame.a1[-1]), ylim=(frame.a2[0], frame.a2[-1]), xticks=[], yticks=[],
                   aspect="equal")
            val = run.val_loss[run.epochs[k] - 1] if run.epochs[k] - 1 < len(run.val_loss) else None
            loss = f", val {val:.3g}" if val is not None else ""
            ax.set_title(f"epoch {run.epochs[k]}{loss}", fontsize=9)
            if col == 0:
                ax.set_ylabel(f"{run.label}: trial {run.trial_number}", fontsize=10)
    fig.suptitle(data.title, fontsize=11)
    return fig


def plot_learning(study, *, trials=None, artifact_dir=None, features=None, backend: str = "plotly", save=None):
    """The best and worst trials' boundaries after each snapshot epoch (an animation in plotly,
    small multiples in matplotlib). ``trials``: ``[(label, FrozenTrial), ...]`` instead."""
    return render(learning_data(study, trials=trials, artifact_dir=artifact_dir, features=features),
                  draw_learning_plotly,
                  draw_learning_mpl, backend, save)
