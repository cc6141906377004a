"""Optuna's own figures, drawn with ``optuna.visualization`` (plotly) and
``optuna.visualization.matplotlib`` (PNG), with a reason when one cannot be drawn.

    >>> from fcnn_opt.plots import optuna_figure
    >>> fig = optuna_figure(study, "intermediate_values")  # doctest: +SKIP

Optuna's matplotlib functions switch the global style to ggplot; here they run inside
``matplotlib.rc_context`` so the caller's style is left as it was.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from fcnn_opt.show.figures._common import (
    PlotError,
    metric_name,
    objective_names,
    save_png,
    searched_params,
    trials_of,
)
from fcnn_opt.show.figures._hp_surface import default_axes

MAX_CONTOUR_PARAMS = 3  # a contour matrix of n parameters has n x n panels
MAX_PARAMS = 8


@dataclass(frozen=True)
class OptunaFigureInfo:
    """One of Optuna's figures as the report shows it: its ``plot_<key>`` function, title and
    caption, the searched hyperparameters it needs, and whether it takes ``target_name``."""

    key: str
    title: str
    caption: str
    min_params: int = 0  # searched hyperparameters needed
    target_name: bool = True  # takes target_name=


OPTUNA_FIGURES = (
    OptunaFigureInfo("optimization_history", "Optimization history",
                     "Each complete trial's final value and the best value so far."),
    OptunaFigureInfo("intermediate_values", "Intermediate values",
                     "Every trial's per-epoch value as reported to the pruner; pruned trials stop early.",
                     target_name=False),
    OptunaFigureInfo("param_importances", "Hyperparameter importances",
                     "fANOVA importance of each hyperparameter for the final value.", 1),
    OptunaFigureInfo("contour", "Contour",
                     f"The final value over pairs of hyperparameters (the {MAX_CONTOUR_PARAMS} most important).", 2),
    OptunaFigureInfo("slice", "Slice", "The final value against each hyperparameter.", 1),
    OptunaFigureInfo("parallel_coordinate", "Parallel coordinates",
                     "Each complete trial as a line through its hyperparameter values.", 1),
    OptunaFigureInfo("edf", "Empirical distribution function",
                     "Share of complete trials whose final value is at most x."),
    OptunaFigureInfo("timeline", "Timeline", "When each trial ran and how it ended.", target_name=False),
)
_INFO = {info.key: info for info in OPTUNA_FIGURES}


def _params_for(study, info: OptunaFigureInfo) -> list[str] | None:
    trials = trials_of(study)
    varying = searched_params(trials)
    if info.min_params and len(varying) < info.min_params:
        raise PlotError(f"needs at least {info.min_params} searched hyperparameter(s) with more than "
                        f"one value among complete trials; this study has {len(varying)}.")
    if info.key == "contour" and len(varying) > MAX_CONTOUR_PARAMS:
        first, second = default_axes(study, trials)
        rest = [p for p in varying if p not in (first, second)]
        return [first, second, *rest][:MAX_CONTOUR_PARAMS]
    if info.min_params and len(varying) > MAX_PARAMS:
        return varying[:MAX_PARAMS]
    return None if not info.min_params else varying


def optuna_figure(study, key: str, *, backend: str = "plotly", save=None):
    """One of Optuna's figures by ``key`` (see :data:`OPTUNA_FIGURES`).

    Returns a plotly figure, or a matplotlib Figure for ``backend="matplotlib"``; ``save``
    (a ``.png`` path) draws the matplotlib version into that file.
    Raises :class:`PlotError` with the reason when the study cannot give this figure.
    """
    import optuna

    if key not in _INFO:
        raise PlotError(f"Unknown Optuna figure {key!r}. Valid figures: {', '.join(_INFO)}.")
    if backend not in ("plotly", "matplotlib"):
        raise PlotError(f"backend must be one of {{plotly, matplotlib}}. Received: {backend!r}")
    info = _INFO[key]
    if not trials_of(study):
        raise PlotError("needs at least one complete trial.")
    kwargs = {}
    params = _params_for(study, info)
    if params is not None:
        kwargs["params"] = params
    if info.target_name:
        kwargs["target_name"] = metric_name(study)
    if save is not None:
        fig = _matplotlib(study, key, kwargs, save)
        if backend == "matplotlib":
            return fig
    if backend == "plotly":
        fig = _call(getattr(optuna.visualization, f"plot_{key}"), study, kwargs)
        if key == "intermediate_values":
            _states_plotly(fig, study)
        return fig
    return _matplotlib(study, key, kwargs)


# Intermediate values coloured by how each trial ended, so pruned trials stand out.
STATE_COLORS = {"COMPLETE": "#1f77b4", "PRUNED": "#d62728", "FAIL": "#7f7f7f", "RUNNING": "#2ca02c"}


def _trial_states(study) -> dict[str, str]:
    return {f"Trial{t.number}": t.state.name for t in study.get_trials(deepcopy=False)}


def _state_counts(study) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        if t.intermediate_values:
            counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def _states_plotly(fig, study) -> None:
    states, counts, shown = _trial_states(study), _state_counts(study), set()
    for trace in fig.data:
        state = states.get(trace.name)
        if state is None:
            continue
        color = STATE_COLORS.get(state, "#7f7f7f")
        trace.update(line={"color": color, "width": 1.5}, marker={"color": color, "size": 4},
                     opacity=0.8 if state == "PRUNED" else 0.6, legendgroup=state,
                     legendgrouptitle=None, showlegend=state not in shown,
                     hovertext=f"{trace.name} ({state.lower()})")
        if state not in shown:
            trace.name = f"{state.lower()} ({counts.get(state, 0)} trials)"
            shown.add(state)
    fig.update_layout(title="Intermediate values: complete trials blue, pruned trials red", showlegend=True,
                      xaxis_title="epoch", yaxis_title=f"{metric_name(study)} after each epoch")


def _states_mpl(ax, study) -> None:
    from matplotlib.lines import Line2D

    states, counts = _trial_states(study), _state_counts(study)
    for line in ax.get_lines():
        state = states.get(line.get_label())
        if state is not None:
            line.set_color(STATE_COLORS.get(state, "#7f7f7f"))
            line.set_alpha(0.8 if state == "PRUNED" else 0.6)
            line.set_markersize(2.5)
    handles = [Line2D([], [], color=STATE_COLORS.get(state, "#7f7f7f"), marker="o", markersize=3,
                      label=f"{state.lower()} ({n} trials)") for state, n in counts.items()]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    ax.set_title("Intermediate values: complete trials blue, pruned trials red")
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"{metric_name(study)} after each epoch")


def _call(fn, study, kwargs):
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            return fn(study, **kwargs)
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            raise PlotError(f"Optuna cannot draw it: {exc}") from None


def _matplotlib(study, key: str, kwargs, save=None):
    import matplotlib
    import numpy as np
    import optuna.visualization.matplotlib as mpl_vis

    with matplotlib.rc_context():
        axes = np.asarray(_call(getattr(mpl_vis, f"plot_{key}"), study, kwargs), dtype=object)
        fig = axes.ravel()[0].figure
        if key == "intermediate_values":
            _states_mpl(axes.ravel()[0], study)
        if key == "contour" and axes.size > 1:
            n = int(round(np.sqrt(axes.size)))
            fig.set_size_inches(3.4 * n + 1.5, 3.1 * n + 0.6)
        elif key == "slice":
            fig.set_size_inches(max(8.0, 3.3 * axes.size), 4.2)
        else:
            fig.set_size_inches(9.5, 5.2)
        if save is not None:
            if key != "parallel_coordinate":  # its hand-placed axes refuse both layout engines
                # the colorbars of slice and of a contour matrix are placed by constrained layout only
                fig.set_layout_engine("constrained" if key == "slice" or axes.size > 1 else "tight")
            save_png(fig, save)
            import matplotlib.pyplot as plt

            plt.close(fig)
    return fig


# Optuna's matplotlib legend, said plainly.
PARETO_LABELS = {"Best Trial": "Pareto set", "Trial": "dominated trials"}


def pareto_front(study, *, backend: str = "plotly", save=None):
    """Optuna's Pareto-front plot of a multi-objective study, axes named after its objectives
    (with more than three objectives, the first two; the others are in the report's table)."""
    import optuna

    if not trials_of(study):
        raise PlotError("needs at least one complete trial.")
    names = objective_names(study)
    title = f"Pareto front: {' vs '.join(names[:3])} (red: the Pareto set, {len(study.best_trials)} trials)"
    kwargs: dict = {"target_names": names}
    if len(names) > 3:
        kwargs = {"targets": lambda t: (t.values[0], t.values[1]), "target_names": names[:2]}
    if save is not None or backend == "matplotlib":
        import matplotlib
        import matplotlib.pyplot as plt

        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ax = optuna.visualization.matplotlib.plot_pareto_front(study, **kwargs)
            fig = ax.figure
            fig.set_size_inches(8, 6)
            ax.set_title(title)
            legend = ax.get_legend()
            for text in legend.get_texts() if legend is not None else ():
                text.set_text(PARETO_LABELS.get(text.get_text(), text.get_text()))
            if save is not None:
                fig.savefig(save, dpi=110, bbox_inches="tight")
                plt.close(fig)
        return fig
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return optuna.visualization.plot_pareto_front(study, **kwargs).update_layout(title=title)
