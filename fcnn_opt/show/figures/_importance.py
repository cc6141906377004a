"""Hyperparameter importances with error bars: Optuna's fANOVA on bootstrap resamples of the
complete trials, so that the spread says how sure the importance is::

    >>> from fcnn_opt.plots import plot_importance_uncertainty
    >>> fig = plot_importance_uncertainty(study, save="importances.png")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    PlotError,
    metric_name,
    new_mpl_figure,
    render,
    require_plotly,
    searched_params,
    trials_of,
)
from fcnn_opt.show.figures._surrogate import complete_trials, require_sklearn

# --- importances with error bars ------------------------------------------------------------


@dataclass(frozen=True)
class ImportanceData:
    """What :func:`importance_uncertainty_data` computed: each hyperparameter's fANOVA importance
    (mean and std over the bootstrap resamples, most important first)."""

    study_name: str
    metric: str
    names: list[str]  # most important first
    mean: list[float]  # shares, summing to 1
    std: list[float]
    samples: np.ndarray  # (repeats, len(names))
    n_trials: int
    n_pruned: int
    left_out: list[str]  # conditional hyperparameters, not in every complete trial
    title: str


def importance_uncertainty_data(study, *, repeats: int = 10, seed: int = 0, bootstrap: bool = True,
                                n_trees: int = 16) -> ImportanceData:
    """Optuna's fANOVA importances, ``repeats`` times: each time on a bootstrap resample of the
    complete trials (``bootstrap``) with another forest seed, so the spread shows both how
    much the importances depend on the trials that happened to be run and on the forest.
    Each forest has ``n_trees`` trees (Optuna's default, 64, for one fit): ten forests of 16
    are 160 trees in all, and cost the report 2.5 s where ten of 64 cost 10 s on W2's 200 trials.

    Only hyperparameters present in every complete trial take part (fANOVA's rule);
    conditional ones are listed in ``left_out``.
    """
    import optuna

    trials = complete_trials(study)
    n_pruned = len(trials_of(study, ("PRUNED",)))
    params = [p for p in searched_params(trials) if all(p in t.params for t in trials)]
    if len(trials) < 2 or not params:
        raise PlotError("needs at least 2 complete trials and a hyperparameter that varies among them.")
    require_sklearn("fANOVA importances")
    rng = np.random.default_rng(seed)
    rows = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory", each time
    try:
        for r in range(repeats):
            sample = [trials[i] for i in rng.integers(0, len(trials), len(trials))] if bootstrap else trials
            copy = optuna.create_study(direction=study.direction)
            copy.add_trials(sample)
            evaluator = optuna.importance.FanovaImportanceEvaluator(n_trees=n_trees, seed=seed + r)
            try:
                found = optuna.importance.get_param_importances(copy, evaluator=evaluator, params=params)
            except (ValueError, RuntimeError, ZeroDivisionError):  # a resample where nothing varies
                continue
            row = np.array([found.get(p, 0.0) for p in params], dtype=float)
            if np.isfinite(row).all() and row.sum() > 0:
                rows.append(row / row.sum())
    finally:
        optuna.logging.set_verbosity(verbosity)
    if not rows:
        raise PlotError("fANOVA could not assess any importance (too few distinct trials).")
    samples = np.stack(rows)
    order = np.argsort(-samples.mean(0), kind="stable")
    how = f"{len(rows)} bootstrap resamples" if bootstrap else f"{len(rows)} forest seeds"
    pruned = f", {n_pruned} pruned left out" if n_pruned else ""
    title = (f"Hyperparameter importance for {metric_name(study)}, study {study.study_name!r}: fANOVA, "
             f"mean ± std over {how} of the {len(trials)} complete trials{pruned}")
    return ImportanceData(study.study_name, metric_name(study), [params[i] for i in order],
                          [float(v) for v in samples.mean(0)[order]], [float(v) for v in samples.std(0)[order]],
                          samples[:, order], len(trials), n_pruned,
                          [p for p in searched_params(trials) if p not in params], title)


def _importance_note(data: ImportanceData) -> str:
    return f"not assessed (not in every trial): {', '.join(data.left_out)}" if data.left_out else ""


def draw_importance_mpl(data: ImportanceData):
    """The importances as a matplotlib bar chart with error bars."""
    n = len(data.names)
    fig = new_mpl_figure(8.6, 1.9 + 0.45 * n)
    ax = fig.add_subplot()
    ypos = np.arange(n)[::-1]
    low = np.minimum(data.std, data.mean)  # a share is never below 0
    ax.barh(ypos, data.mean, xerr=[low, data.std], color="#1f77b4", alpha=0.85, capsize=4,
            error_kw={"elinewidth": 1.2, "ecolor": "black"})
    for y, m, s in zip(ypos, data.mean, data.std, strict=True):
        ax.text(m + s + 0.01, y, f"{m:.2f} ± {s:.2f}", va="center", fontsize=9)
    ax.set_yticks(ypos, data.names)
    ax.set_xlim(0, min(1.05, max(m + s for m, s in zip(data.mean, data.std, strict=True)) + 0.16))
    ax.set_xlabel(f"share of the variance of {data.metric} (fANOVA); bar: mean, error bar: ± 1 std")
    ax.grid(axis="x", alpha=0.3)
    note = _importance_note(data)
    head, _, tail = data.title.partition(": ")
    fig.suptitle(f"{head}\n{tail}" + (f"\n{note}" if note else ""), fontsize=10)
    return fig


def draw_importance_plotly(data: ImportanceData):
    """The importances as a plotly bar chart with error bars."""
    go = require_plotly()
    fig = go.Figure(go.Bar(x=data.mean[::-1], y=data.names[::-1], orientation="h",
                           error_x={"type": "data", "array": data.std[::-1], "visible": True,
                                    "arrayminus": [min(s, m) for m, s in zip(data.mean[::-1], data.std[::-1], strict=True)]},
                           text=[f"{m:.2f} ± {s:.2f}" for m, s in zip(data.mean[::-1], data.std[::-1], strict=True)],
                           textposition="outside", marker={"color": "#1f77b4"},
                           hovertemplate="%{y}: %{x:.3f}<extra></extra>"))
    note = _importance_note(data)
    head, _, tail = data.title.partition(": ")
    fig.update_layout(title={"text": f"{head}<br><span style='font-size:12px'>{tail}"
                                     + (f"<br>{note}" if note else "") + "</span>"},
                      xaxis_title=f"share of the variance of {data.metric} (fANOVA); bar: mean, error bar: ± 1 std",
                      template="plotly_white", height=220 + 45 * len(data.names), margin={"t": 110})
    return fig


def plot_importance_uncertainty(study, *, repeats: int = 10, seed: int = 0, bootstrap: bool = True,
                                backend: str = "plotly", save=None):
    """Hyperparameter importances with error bars: fANOVA (Optuna's public evaluator) on
    ``repeats`` bootstrap resamples of the complete trials; bar: mean share, error bar: ± 1 std.

    Args: see :func:`importance_uncertainty_data`; ``backend`` and ``save`` as in the other
    figures.
    """
    data = importance_uncertainty_data(study, repeats=repeats, seed=seed, bootstrap=bootstrap)
    return render(data, draw_importance_plotly, draw_importance_mpl, backend, save)
