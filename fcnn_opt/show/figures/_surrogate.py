"""Fitted response surfaces with uncertainty: a surrogate model of the final metric over the
searched hyperparameters, its partial dependence, and importances with error bars.

A binned heatmap of 30-80 trials is mostly empty cells. A surrogate fitted to the complete
trials (a Gaussian process up to 100 trials, a random forest beyond) fills the space in and
says how sure it is; it is drawn only when it predicts trials it was not fitted on (see
:func:`surrogate_data` for the rule). Pruned trials are left out: their value is that of an
unfinished run::

    >>> from fcnn_opt.plots import plot_partial_dependence, plot_surrogate_surface
    >>> fig = plot_partial_dependence(study, save="pd.png")  # doctest: +SKIP
    >>> fig = plot_surrogate_surface(study, x="lr", y="units")  # doctest: +SKIP

scikit-learn (the ``sklearn`` extra) is imported only when a surrogate is fitted.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    PlotError,
    direction_of,
    fmt,
    is_multi,
    is_number,
    metric_name,
    new_mpl_figure,
    render,
    require_plotly,
    searched_params,
    trials_of,
)

KINDS = ("auto", "gp", "forest")
GP_MAX_TRIALS = 100  # kind="auto": a Gaussian process up to this many trials, a forest beyond
MIN_TRIALS = 8  # the trust rule: at least this many complete trials ...
MIN_R2 = 0.3  # ... and a cross-validated R² at least this
GRID = 30  # grid points of a numeric hyperparameter
MAX_MATRIX = 6  # hyperparameters in the partial-dependence matrix
MAX_BACKGROUND = 60  # trials averaged over in a 2-D partial dependence (a seeded subsample)
N_TREES = 100
INSTALL_HINT = "Install it with `pip install scikit-learn`."


def _complete(study) -> list:
    """The complete trials with a finite value; :class:`PlotError` for a multi-objective study."""
    if is_multi(study):
        raise PlotError("needs a single-objective study; this one has several objectives (see its Pareto front).")
    return [t for t in trials_of(study) if t.value is not None and math.isfinite(t.value)]


def _require_sklearn(what: str) -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise PlotError(f"{what} needs scikit-learn. {INSTALL_HINT}") from None


def _one_thread():
    """BLAS on one thread: the surrogate's matrices are small, and threads fighting over a busy
    machine made a 60-trial fit 15 times slower (threadpoolctl comes with scikit-learn)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


# --- encoding -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """How one hyperparameter becomes columns of the surrogate's input: a numeric one is one
    column, scaled to [0, 1] over its range (in log space when sampled on a log scale); a
    categorical one is one-hot over the choices the complete trials took."""

    name: str
    numeric: bool
    log: bool
    low: float | None
    high: float | None
    choices: tuple
    start: int  # first column
    width: int  # columns
    integer: bool = False

    def unit(self, value) -> float:
        t = math.log if self.log else float
        return (t(value) - t(self.low)) / (t(self.high) - t(self.low))

    def raw(self, unit):
        unit = np.asarray(unit, dtype=float)
        if self.log:
            return np.exp(math.log(self.low) + unit * (math.log(self.high) - math.log(self.low)))
        return self.low + unit * (self.high - self.low)

    def set(self, rows: np.ndarray, position) -> None:
        """Give every row of ``rows`` the value ``position`` (a unit value, or a choice's index)."""
        if self.numeric:
            rows[..., self.start] = position
        else:
            rows[..., self.start:self.start + self.width] = 0.0
            rows[..., self.start + int(position)] = 1.0

    def grid(self) -> tuple[np.ndarray, list]:
        """(positions to set, the values they stand for): ``GRID`` points over the range, or
        every choice."""
        if self.integer and self.high - self.low < GRID:  # every integer, no values between
            values = np.arange(int(self.low), int(self.high) + 1)
            return np.array([self.unit(v) for v in values]), [int(v) for v in values]
        if self.numeric:
            units = np.linspace(0.0, 1.0, GRID)
            return units, [float(v) for v in self.raw(units)]
        return np.arange(self.width), list(self.choices)

    def position(self, value) -> float:
        """Where a trial's value is drawn: its raw value, or its choice's index."""
        if value is None:
            return math.nan
        return float(value) if self.numeric else float(self.choices.index(value))


def _spec(name: str, trials, start: int) -> ParamSpec:
    dists = [t.distributions[name] for t in trials if name in t.distributions]
    values = [t.params[name] for t in trials if name in t.params]
    choices = getattr(dists[0], "choices", None) if dists else None
    if choices is None and all(is_number(v) for v in values):
        lows = [d.low for d in dists if is_number(getattr(d, "low", None))]
        highs = [d.high for d in dists if is_number(getattr(d, "high", None))]
        low, high = float(min(lows + values)), float(max(highs + values))
        log = any(getattr(d, "log", False) for d in dists) and low > 0
        integer = all(isinstance(v, int) for v in values) and all(type(d).__name__ == "IntDistribution" for d in dists)
        return ParamSpec(name, True, log, low, high, (), start, 1, integer)
    seen = list(dict.fromkeys(values))
    order = [c for c in (choices or ()) if c in seen] + sorted((v for v in seen if v not in (choices or ())), key=str)
    return ParamSpec(name, False, False, None, None, tuple(order), start, len(order))


def _encode(specs: list[ParamSpec], trials) -> np.ndarray:
    """One row per trial; a parameter a trial lacks (a conditional one) is set to its low end
    (the first choice of a categorical one)."""
    width = sum(s.width for s in specs)
    X = np.zeros((len(trials), width))
    for i, t in enumerate(trials):
        for s in specs:
            if s.name in t.params:
                s.set(X[i], s.unit(t.params[s.name]) if s.numeric else s.choices.index(t.params[s.name]))
            else:
                s.set(X[i], 0.0)
    return X


# --- the surrogate --------------------------------------------------------------------------


class _Surrogate:
    """A fitted model: ``predict(X) -> (mean, std)``, std being the model's doubt about the mean
    (Gaussian process: posterior std of the latent function, noise excluded; forest: std of the
    trees' predictions)."""

    def __init__(self, kind: str, seed: int, restarts: int = 2):
        self.kind, self.seed, self.restarts = kind, seed, restarts

    def fit(self, X: np.ndarray, y: np.ndarray) -> _Surrogate:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimiser convergence notes on tiny data
            if self.kind == "gp":
                from sklearn.gaussian_process import GaussianProcessRegressor
                from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

                kernel = (ConstantKernel(1.0, (1e-3, 1e3))
                          * Matern(np.full(X.shape[1], 0.5), (2e-2, 1e2), nu=2.5)
                          + WhiteKernel(1e-2, (1e-6, 1.0)))
                gp = GaussianProcessRegressor(kernel, normalize_y=True, n_restarts_optimizer=self.restarts,
                                              random_state=self.seed).fit(X, y)
                # The same fit without the noise term in the kernel (as alpha on the diagonal), so
                # predict's std is the doubt about the fitted mean, not that of a new trial.
                self.noise_ = float(gp.kernel_.k2.noise_level)
                self.model_ = GaussianProcessRegressor(gp.kernel_.k1, alpha=self.noise_ + 1e-10, optimizer=None,
                                                       normalize_y=True).fit(X, y)
            else:
                from sklearn.ensemble import RandomForestRegressor

                self.model_ = RandomForestRegressor(N_TREES, random_state=self.seed, n_jobs=1).fit(X, y)
        return self

    def predict(self, X: np.ndarray, std: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        if self.kind == "gp":
            if not std:
                return self.model_.predict(X), None
            mean, sd = self.model_.predict(X, return_std=True)
            return mean, sd
        if not std:
            return self.model_.predict(X), None
        trees = np.stack([tree.predict(X) for tree in self.model_.estimators_])
        return trees.mean(axis=0), trees.std(axis=0)


@dataclass(frozen=True)
class Quality:
    """How well the surrogate predicts trials it was not fitted on."""

    r2: float  # pooled over the held-out predictions; NaN under 3 trials
    rmse: float
    n: int
    scheme: str  # "5-fold", "leave-one-out" or "none"
    trusted: bool

    @property
    def message(self) -> str:
        r2 = "n/a" if math.isnan(self.r2) else f"{self.r2:.2f}"
        if self.trusted:
            return f"CV R² = {r2}, RMSE = {self.rmse:.3g} ({self.scheme}, {self.n} trials)"
        return (f"surrogate not trusted: CV R² = {r2} on {self.n} trials "
                f"(needs ≥ {MIN_R2} and ≥ {MIN_TRIALS} trials)")


def _cross_validate(kind: str, X: np.ndarray, y: np.ndarray, seed: int) -> Quality:
    n = len(y)
    if n < 3 or float(np.ptp(y)) == 0.0:
        return Quality(math.nan, math.nan, n, "none", False)
    from sklearn.model_selection import KFold, LeaveOneOut

    splits = LeaveOneOut() if n < 15 else KFold(5, shuffle=True, random_state=seed)
    held_out = np.empty(n)
    for train, test in splits.split(X):
        held_out[test] = _Surrogate(kind, seed, restarts=0).fit(X[train], y[train]).predict(X[test], std=False)[0]
    r2 = 1.0 - float(((y - held_out) ** 2).sum() / ((y - y.mean()) ** 2).sum())
    rmse = float(np.sqrt(((y - held_out) ** 2).mean()))
    return Quality(r2, rmse, n, "leave-one-out" if n < 15 else "5-fold", n >= MIN_TRIALS and r2 >= MIN_R2)


def _permutation_importance(model: _Surrogate, specs, X, y, seed: int, repeats: int = 5) -> dict[str, float]:
    """Each hyperparameter's share of the rise in squared error when its column(s) are shuffled
    among the trials (the model's own view of what matters)."""
    rng = np.random.default_rng(seed)
    base = float(((model.predict(X, std=False)[0] - y) ** 2).mean())
    rise = {}
    for s in specs:
        block = slice(s.start, s.start + s.width)
        total = 0.0
        for _ in range(repeats):
            shuffled = X.copy()
            shuffled[:, block] = X[rng.permutation(len(X)), block]
            total += float(((model.predict(shuffled, std=False)[0] - y) ** 2).mean()) - base
        rise[s.name] = max(total / repeats, 0.0)
    scale = sum(rise.values())
    return {k: (v / scale if scale > 0 else 0.0) for k, v in sorted(rise.items(), key=lambda kv: -kv[1])}


def _fanova_order(study, trials, names: list[str], seed: int) -> list[str]:
    """``names`` by Optuna's fANOVA importance (those in every trial; the rest after them, in
    suggestion order); unchanged when fANOVA cannot rank them. Orders an untrusted surrogate's
    trials-only figures."""
    import optuna

    common = [n for n in names if all(n in t.params for t in trials)]
    try:
        ranked = list(optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed), params=common))
    except Exception:  # too few trials or nothing varies: keep the suggestion order
        return names
    return [n for n in ranked if n in names] + [n for n in names if n not in ranked]


# --- partial dependence ---------------------------------------------------------------------


@dataclass(frozen=True)
class Dependence:
    """The surrogate's partial dependence on one hyperparameter: for each grid value, the mean
    prediction with the hyperparameter set to it in every trial; ``band`` is the mean over those
    trials of the surrogate's std (its doubt about the fitted mean, not the trials' spread)."""

    name: str
    values: list  # grid values (numeric) or choices
    mean: np.ndarray
    band: np.ndarray


@dataclass(frozen=True)
class Dependence2D:
    """The 2-D partial dependence on ``x`` and ``y``: ``mean[i, j]`` at ``y_values[i]``,
    ``x_values[j]``; ``std`` (the mean surrogate std) only for the fitted surface."""

    x: str
    y: str
    x_values: list
    y_values: list
    mean: np.ndarray
    std: np.ndarray | None


def _dependence(model, spec: ParamSpec, X) -> Dependence:
    positions, values = spec.grid()
    rows = np.repeat(X[None], len(positions), axis=0)
    for g, p in enumerate(positions):
        spec.set(rows[g], p)
    mean, std = model.predict(rows.reshape(-1, X.shape[1]))
    shape = (len(positions), len(X))
    return Dependence(spec.name, values, mean.reshape(shape).mean(1), std.reshape(shape).mean(1))


def _dependence_2d(model, sx: ParamSpec, sy: ParamSpec, X, std: bool) -> Dependence2D:
    px, vx = sx.grid()
    py, vy = sy.grid()
    rows = np.repeat(np.repeat(X[None, None], len(py), axis=0), len(px), axis=1)
    for i, q in enumerate(py):
        sy.set(rows[i], q)
    for j, p in enumerate(px):
        sx.set(rows[:, j], p)
    mean, sd = model.predict(rows.reshape(-1, X.shape[1]), std=std)
    shape = (len(py), len(px), len(X))
    return Dependence2D(sx.name, sy.name, vx, vy, mean.reshape(shape).mean(2),
                        sd.reshape(shape).mean(2) if std else None)


# --- the data behind the figures ------------------------------------------------------------


@dataclass(frozen=True)
class SurrogateData:
    study_name: str
    metric: str
    direction: str
    kind: str  # "gp" or "forest"
    n_pruned: int
    specs: list[ParamSpec]  # the hyperparameters modelled
    dropped: list[str]  # conditional ones in fewer than half the trials, left out
    quality: Quality
    importances: dict[str, float] | None  # permutation shares, most important first (trusted only)
    shown: list[str]  # the matrix's hyperparameters
    left_out: list[str]  # modelled but not in the matrix (beyond MAX_MATRIX)
    values: np.ndarray  # each complete trial's final metric
    params: dict[str, list]  # each hyperparameter's value per trial (None where absent)
    best: int  # index of the best trial
    dependence: dict[str, Dependence]  # trusted only
    pairs: dict[tuple[str, str], Dependence2D]  # (x, y) of the matrix; trusted only
    surface: Dependence2D | None  # with std; trusted only
    surface_axes: tuple[str, str] | None

    @property
    def trusted(self) -> bool:
        return self.quality.trusted

    def spec(self, name: str) -> ParamSpec:
        return next(s for s in self.specs if s.name == name)

    @property
    def label(self) -> str:
        return f"{self.metric} ({'lower' if self.direction == 'minimize' else 'higher'} is better)"

    @property
    def title(self) -> str:
        model = "Gaussian-process" if self.kind == "gp" else "Random-forest"
        pruned = f", {self.n_pruned} pruned left out" if self.n_pruned else ""
        return (f"{model} surrogate of {self.metric}, study {self.study_name!r} "
                f"({self.quality.n} complete trials{pruned})")

    @property
    def notes(self) -> list[str]:
        notes = [self.quality.message]
        if self.left_out:
            notes.append(f"{len(self.left_out)} less important hyperparameter(s) not shown: "
                         f"{', '.join(self.left_out)}")
        if self.dropped:
            notes.append(f"left out (in fewer than half the trials): {', '.join(self.dropped)}")
        return notes


def surrogate_data(study, *, kind: str = "auto", x: str | None = None, y: str | None = None, seed: int = 0,
                   pairs: bool = True) -> SurrogateData:
    """Fit a surrogate of the final metric of the complete trials and compute what the figures
    draw.

    Encoding: a numeric hyperparameter is scaled to [0, 1] over its searched range (in log
    space when its Optuna distribution is log); a categorical one is one-hot. A conditional
    hyperparameter (e.g. ``units_l3``, absent when ``n_layers`` < 3) present in fewer than half
    the complete trials is left out; in the others a trial that lacks it gets its low end (the
    first choice), with no extra indicator column.

    The trust rule: the surrogate is drawn only with at least ``MIN_TRIALS`` (8) complete trials
    and a cross-validated R² (5-fold, leave-one-out under 15 trials, pooled over the held-out
    predictions) of at least ``MIN_R2`` (0.3). Otherwise the data holds the trials alone and
    ``quality.message`` says why; no partial dependence is computed, and the hyperparameters
    are ordered by Optuna's fANOVA instead of the surrogate's permutation importance.

    Partial dependence (classic): for each grid value (30 over a numeric range, every integer
    of a short integer range, every choice), the hyperparameter is set to it in every trial's
    encoded row and the predictions are averaged; the band is the mean of the surrogate's own
    std over those rows (its doubt about the fitted mean: the Gaussian process's posterior std
    without the noise term, the forest's spread over trees), not the spread of the trials. The
    2-D ones average over at most ``MAX_BACKGROUND`` (60) trials, a seeded subsample.

    Args:
        kind: ``"gp"`` (Gaussian process, Matern 5/2 with one length scale per column plus a
            white-noise term, ``normalize_y``), ``"forest"`` (random forest; its uncertainty is
            the std over trees) or ``"auto"`` (a GP up to 100 trials, a forest beyond).
        x, y: the fitted surface's two hyperparameters; default the two most important by the
            surrogate's own permutation importance.
        seed: for the fit, the folds, the permutations and the 2-D background subsample.
        pairs: compute the matrix's 2-D partial dependences (``plot_surrogate_surface`` needs
            none).
    """
    if kind not in KINDS:
        raise PlotError(f"kind must be one of {{{', '.join(KINDS)}}}. Received: {kind!r}")
    trials = _complete(study)
    if not trials:
        raise PlotError(f"Study {study.study_name!r} has no complete trial.")
    searched = searched_params(trials)
    kept = [p for p in searched if 2 * sum(p in t.params for t in trials) >= len(trials)]
    if not kept:
        raise PlotError("needs a hyperparameter that takes more than one value among complete trials.")
    for name, role in ((x, "x"), (y, "y")):
        if name is not None and name not in kept:
            raise PlotError(f"{role}={name!r} is not a searched hyperparameter of this study. "
                            f"Searched: {', '.join(kept)}.")
    if x is not None and x == y:
        raise PlotError(f"x and y must be two different hyperparameters; both are {x!r}.")
    _require_sklearn("The surrogate figures")
    with _one_thread():
        return _fit_and_explain(study, trials, kept, searched, kind, x, y, seed, pairs)


def _fit_and_explain(study, trials, kept, searched, kind, x, y, seed, pairs) -> SurrogateData:
    """:func:`surrogate_data` once its arguments are checked."""
    if kind == "auto":
        kind = "gp" if len(trials) <= GP_MAX_TRIALS else "forest"
    specs, start = [], 0
    for name in kept:
        specs.append(_spec(name, trials, start))
        start += specs[-1].width
    X = _encode(specs, trials)
    values = np.array([t.value for t in trials], dtype=float)
    quality = _cross_validate(kind, X, values, seed)
    order = [s.name for s in specs]
    importances = dependence = None
    pair_data: dict[tuple[str, str], Dependence2D] = {}
    surface = None
    if quality.trusted:
        model = _Surrogate(kind, seed).fit(X, values)
        importances = _permutation_importance(model, specs, X, values, seed)
        order = list(importances)
    else:
        order = _fanova_order(study, trials, order, seed)
    shown = order[:MAX_MATRIX]
    axes = None
    if len(order) >= 2:
        x = x or next(n for n in order if n != y)
        y = y or next(n for n in order if n != x)
        axes = (x, y)
    if quality.trusted:
        by_name = {s.name: s for s in specs}
        dependence = {name: _dependence(model, by_name[name], X) for name in order}
        rng = np.random.default_rng(seed)
        background = X[np.sort(rng.choice(len(X), MAX_BACKGROUND, replace=False))] if len(X) > MAX_BACKGROUND else X
        if pairs:
            for i, row in enumerate(shown):
                for col in shown[:i]:
                    pair_data[(col, row)] = _dependence_2d(model, by_name[col], by_name[row], background, std=False)
        if axes:
            surface = _dependence_2d(model, by_name[axes[0]], by_name[axes[1]], background, std=True)
    best = int(np.argmin(values) if direction_of(study) == "minimize" else np.argmax(values))
    return SurrogateData(
        study.study_name, metric_name(study), direction_of(study), kind, len(trials_of(study, ("PRUNED",))), specs,
        [p for p in searched if p not in kept], quality, importances, shown, order[MAX_MATRIX:], values,
        {s.name: [t.params.get(s.name) for t in trials] for s in specs}, best, dependence or {}, pair_data,
        surface, axes)


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


# --- importances with error bars ------------------------------------------------------------


@dataclass(frozen=True)
class ImportanceData:
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


def importance_uncertainty_data(study, *, repeats: int = 10, seed: int = 0, bootstrap: bool = True) -> ImportanceData:
    """Optuna's fANOVA importances, ``repeats`` times: each time on a bootstrap resample of the
    complete trials (``bootstrap``) with another forest seed, so the spread shows both how
    much the importances depend on the trials that happened to be run and on the forest.

    Only hyperparameters present in every complete trial take part (fANOVA's rule);
    conditional ones are listed in ``left_out``.
    """
    import optuna

    trials = _complete(study)
    n_pruned = len(trials_of(study, ("PRUNED",)))
    params = [p for p in searched_params(trials) if all(p in t.params for t in trials)]
    if len(trials) < 2 or not params:
        raise PlotError("needs at least 2 complete trials and a hyperparameter that varies among them.")
    _require_sklearn("fANOVA importances")
    rng = np.random.default_rng(seed)
    rows = []
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # "A new study created in memory", each time
    try:
        for r in range(repeats):
            sample = [trials[i] for i in rng.integers(0, len(trials), len(trials))] if bootstrap else trials
            copy = optuna.create_study(direction=study.direction)
            copy.add_trials(sample)
            evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed + r)
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
