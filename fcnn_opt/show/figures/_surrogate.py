"""Fitted response surfaces with uncertainty: a surrogate model of the final metric over the
searched hyperparameters, its partial dependence, and importances with error bars.

A binned heatmap of 30-80 trials is mostly empty cells. A surrogate fitted to the complete
trials (a Gaussian process up to 100 trials, a random forest beyond) fills the space in and
says how sure it is; it is drawn only when it predicts trials it was not fitted on (see
:func:`surrogate_data` for the rule). Pruned trials are left out: their value is that of an
unfinished run::

    >>> from fcnn_opt.plots import surrogate_data
    >>> data = surrogate_data(study)  # doctest: +SKIP
    >>> data.trusted, data.quality.r2  # doctest: +SKIP

This module fits and explains; :mod:`~fcnn_opt.show.figures._partial_dependence` draws the
partial-dependence matrix and the fitted surface, :mod:`~fcnn_opt.show.figures._importance`
the importances with error bars. scikit-learn is imported only when a surrogate is fitted.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from fcnn_opt.show.figures._common import (
    PlotError,
    check_axes,
    direction_of,
    is_multi,
    is_number,
    metric_name,
    searched_params,
    trials_of,
)

KINDS = ("auto", "gp", "forest")
GP_MAX_TRIALS = 100  # a Gaussian process is fitted up to this many trials (kind="auto" tries it there)
MIN_TRIALS = 8  # the trust rule: at least this many complete trials ...
MIN_R2 = 0.3  # ... and a cross-validated R² at least this
GRID = 30  # grid points of a numeric hyperparameter
MAX_MATRIX = 6  # hyperparameters in the partial-dependence matrix
MAX_BACKGROUND = 60  # trials averaged over in a 2-D partial dependence (a seeded subsample)
N_TREES = 100
INSTALL_HINT = "Install it with `pip install scikit-learn`."


def complete_trials(study) -> list:
    """The complete trials with a finite value; :class:`PlotError` for a multi-objective study."""
    if is_multi(study):
        raise PlotError("needs a single-objective study; this one has several objectives (see its Pareto front).")
    return [t for t in trials_of(study) if t.value is not None and math.isfinite(t.value)]


def require_sklearn(what: str) -> None:
    """Raise :class:`PlotError` saying how to install scikit-learn if it is missing (``what``:
    the figure that needs it)."""
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
        """``value`` on the surrogate's scale: 0 at ``low``, 1 at ``high`` (log-scaled if ``log``)."""
        t = math.log if self.log else float
        return (t(value) - t(self.low)) / (t(self.high) - t(self.low))

    def raw(self, unit):
        """The inverse of :meth:`unit`: values in the hyperparameter's own units."""
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
        """One line on the surrogate's held-out R² and RMSE, or why it is not trusted."""
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
    """What :func:`surrogate_data` computed: the fitted surrogate's quality, importances, partial
    dependences and surface, and the trials it was fitted on."""

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
        """Whether the surrogate predicts held-out trials well enough to be drawn."""
        return self.quality.trusted

    def spec(self, name: str) -> ParamSpec:
        """The :class:`ParamSpec` of hyperparameter ``name``."""
        return next(s for s in self.specs if s.name == name)

    @property
    def label(self) -> str:
        """The metric's axis label, saying which way is better."""
        return f"{self.metric} ({'lower' if self.direction == 'minimize' else 'higher'} is better)"

    @property
    def title(self) -> str:
        """The figures' title: the kind of surrogate, the metric, the study and its trials."""
        model = "Gaussian-process" if self.kind == "gp" else "Random-forest"
        pruned = f", {self.n_pruned} pruned left out" if self.n_pruned else ""
        return (f"{model} surrogate of {self.metric}, study {self.study_name!r} "
                f"({self.quality.n} complete trials{pruned})")

    @property
    def notes(self) -> list[str]:
        """Lines under the figures: the surrogate's quality and the hyperparameters not shown."""
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
            the std over trees) or ``"auto"``: whichever of the two predicts held-out trials
            better (the GP only up to 100 trials). On real TPE studies, whose trials crowd one
            region with a few far-off losses, the forest usually wins (W2's 200 trials: CV R²
            0.54 against -0.10).
        x, y: the fitted surface's two hyperparameters; default the two most important by the
            surrogate's own permutation importance.
        seed: for the fit, the folds, the permutations and the 2-D background subsample.
        pairs: compute the matrix's 2-D partial dependences (``plot_surrogate_surface`` needs
            none).
    """
    if kind not in KINDS:
        raise PlotError(f"kind must be one of {{{', '.join(KINDS)}}}. Received: {kind!r}")
    trials = complete_trials(study)
    if not trials:
        raise PlotError(f"Study {study.study_name!r} has no complete trial.")
    searched = searched_params(trials)
    kept = [p for p in searched if 2 * sum(p in t.params for t in trials) >= len(trials)]
    if not kept:
        raise PlotError("needs a hyperparameter that takes more than one value among complete trials.")
    check_axes(x, y, kept, "a searched hyperparameter", "Searched")
    require_sklearn("The surrogate figures")
    with _one_thread():
        return _fit_and_explain(study, trials, kept, searched, kind, x, y, seed, pairs)


def _fit_and_explain(study, trials, kept, searched, kind, x, y, seed, pairs) -> SurrogateData:
    """:func:`surrogate_data` once its arguments are checked."""
    specs, start = [], 0
    for name in kept:
        specs.append(_spec(name, trials, start))
        start += specs[-1].width
    X = _encode(specs, trials)
    values = np.array([t.value for t in trials], dtype=float)
    kinds = [kind] if kind != "auto" else (["gp", "forest"] if len(trials) <= GP_MAX_TRIALS else ["forest"])
    tried = [(_cross_validate(k, X, values, seed), k) for k in kinds]
    quality, kind = max(tried, key=lambda pair: -math.inf if math.isnan(pair[0].r2) else pair[0].r2)
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
