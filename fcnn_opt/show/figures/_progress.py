"""How a study spent its time: the best value so far against wall time, and the epochs each
trial trained (pruned trials stop early; a trial that continues another from its state,
see :mod:`fcnn_opt.search.anneal`, counts only the epochs it added), side by side.

    >>> from fcnn_opt.plots import plot_progress
    >>> fig = plot_progress(study, save="progress.png")  # doctest: +SKIP

Times come from each trial's start and end as Optuna recorded them, counted from the
study's first trial; a study that ran in several sessions shows the gaps between them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    PlotError,
    direction_of,
    metric_name,
    new_mpl_figure,
    render,
    require_plotly,
)
from fcnn_opt.store.artifact_files import CONTINUES_ATTR

STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#d62728", "FAIL": "#7f7f7f"}
CONTINUED, CONTINUED_COLOR = "CONTINUED", "#2ca02c"  # complete trials that continued another


@dataclass(frozen=True)
class ProgressData:
    """What :func:`progress_data` computed: the best value so far against wall time, and the
    epochs each finished trial trained."""

    title: str
    metric: str
    seconds: np.ndarray  # when each complete trial ended, from the first trial's start
    best: np.ndarray  # the best value so far at those times
    numbers: np.ndarray  # every finished trial's number
    epochs: np.ndarray  # the epochs it trained
    states: list[str]  # how it ended (CONTINUED: a complete continuation)
    continued: np.ndarray  # for each complete trial (as in seconds): whether it continued another


def progress_data(study) -> ProgressData:
    """The numbers behind :func:`plot_progress`."""
    finished = [t for t in study.get_trials(deepcopy=False)
                if t.state.name in STATE_COLORS and t.datetime_start is not None and t.datetime_complete is not None]
    complete = sorted((t for t in finished if t.state.name == "COMPLETE" and t.values and len(t.values) == 1),
                      key=lambda t: t.datetime_complete)
    if not complete:
        raise PlotError(f"Study {study.study_name!r} has no complete trial with a single value.")
    origin = min(t.datetime_start for t in finished)
    seconds = np.array([(t.datetime_complete - origin).total_seconds() for t in complete])
    values = np.array([t.value for t in complete], dtype=float)
    best = (np.fmin.accumulate if direction_of(study) == "minimize" else np.fmax.accumulate)(values)
    finished.sort(key=lambda t: t.number)
    epochs = np.array([len(t.intermediate_values) if CONTINUES_ATTR in t.user_attrs
                       else t.user_attrs.get("epochs_run") or len(t.intermediate_values) for t in finished])
    states = [CONTINUED if CONTINUES_ATTR in t.user_attrs and t.state.name == "COMPLETE" else t.state.name
              for t in finished]
    return ProgressData(
        f"How study {study.study_name!r} spent its time: {len(finished)} trials in "
        f"{(max(t.datetime_complete for t in finished) - origin).total_seconds():.1f} s, "
        f"{int(epochs.sum())} epochs trained",
        metric_name(study), seconds, best, np.array([t.number for t in finished]), epochs, states,
        np.array([CONTINUES_ATTR in t.user_attrs for t in complete], dtype=bool))


def _bar_groups(data: ProgressData):
    """(label, color, mask) for each kind of trial present, in the legend's order."""
    colors = {**STATE_COLORS, CONTINUED: CONTINUED_COLOR}
    names = {CONTINUED: "continued from its state"}
    for state, color in colors.items():
        mask = np.array([s == state for s in data.states])
        if mask.any():
            yield f"{names.get(state, state.lower())} ({int(mask.sum())})", color, mask


def draw_progress_mpl(data: ProgressData):
    """The progress as a matplotlib figure: best value against time beside epochs per trial."""
    fig = new_mpl_figure(13.0, 4.6)
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.2])
    left.step(data.seconds, data.best, where="post", color="#1f77b4", lw=2)
    left.plot(data.seconds, data.best, "o", ms=3, color="#1f77b4")
    if data.continued.any():  # where a continuation set the best so far
        left.plot(data.seconds[data.continued], data.best[data.continued], "o", ms=5, color=CONTINUED_COLOR,
                  label="a continuation ended")
        left.legend(frameon=True, framealpha=0.9, fontsize=9, loc="upper right")
    left.set(xlabel="seconds since the first trial started", ylabel=f"best {data.metric} so far")
    left.set_yscale("log" if np.all(data.best > 0) else "linear")
    left.grid(alpha=0.3, which="both")
    left.set_title("best so far against wall time", fontsize=10)
    for label, color, mask in _bar_groups(data):
        right.bar(data.numbers[mask], data.epochs[mask], color=color, width=1.0, label=label)
    right.set(xlabel="trial number", ylabel="epochs trained")
    right.legend(frameon=True, framealpha=0.9, fontsize=9, loc="upper right")
    right.set_title("epochs spent per trial", fontsize=10)
    fig.suptitle(data.title, fontsize=11)
    return fig


def draw_progress_plotly(data: ProgressData):
    """The progress as a plotly figure: best value against time beside epochs per trial."""
    go = require_plotly()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("best so far against wall time", "epochs spent per trial"),
                        column_widths=[0.45, 0.55])
    fig.add_trace(go.Scatter(x=data.seconds, y=data.best, mode="lines+markers", line={"shape": "hv"},
                             name=f"best {data.metric}"), row=1, col=1)
    if data.continued.any():
        fig.add_trace(go.Scatter(x=data.seconds[data.continued], y=data.best[data.continued], mode="markers",
                                 marker={"color": CONTINUED_COLOR, "size": 8}, name="a continuation ended"),
                      row=1, col=1)
    for label, color, mask in _bar_groups(data):
        fig.add_trace(go.Bar(x=data.numbers[mask], y=data.epochs[mask], marker_color=color, name=label),
                      row=1, col=2)
    fig.update_xaxes(title_text="seconds since the first trial started", row=1, col=1)
    fig.update_yaxes(title_text=f"best {data.metric} so far", type="log" if np.all(data.best > 0) else "linear",
                     row=1, col=1)
    fig.update_xaxes(title_text="trial number", row=1, col=2)
    fig.update_yaxes(title_text="epochs trained", row=1, col=2)
    fig.update_layout(title=data.title, template="plotly_white", height=460, barmode="overlay", bargap=0)
    return fig


def plot_progress(study, *, backend: str = "plotly", save=None):
    """Best value so far against wall time, and the epochs each trial trained."""
    return render(progress_data(study), draw_progress_plotly, draw_progress_mpl, backend, save)
