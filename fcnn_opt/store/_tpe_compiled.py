"""TPE's arithmetic compiled with Numba: the log of the standard normal distribution function,
and the density of TPE's kernel mixture at its candidates.

Optuna's TPE evaluates ``log Phi(a)`` for every kernel bound at every draw (over ten
thousand values a draw on W2), one Python call per value: more than half of each draw.
This is the same function, branch for branch and operation for operation, with the same C
library calls (``erf``, ``erfc``, ``log``), so it gives the same bits. One operation cannot
be written here as Optuna writes it: the far left tail's ``a**2`` is the C library's ``pow``,
which Numba would turn into ``a * a`` (a different rounding in about one case in a
thousand), so the caller passes the squares, computed by NumPy's ``float_power`` (the C
library's ``pow``); see :func:`fcnn_opt.store.optuna_internals.compiled_tpe_tails`.

:func:`mixture_terms` (with :func:`log_gauss_mass` and :func:`unique_pairs`) computes the
density of TPE's "above" estimator (one kernel per trial) at the 24 candidates, the cost of a
draw that grows with the study: the same terms as Optuna's, summed in one pass over the
kernels instead of through (candidates x kernels x dimensions) arrays, so not to the same
bits; :func:`fcnn_opt.store.optuna_internals.fast_choice` uses it only where it picks the
candidate Optuna's own arithmetic picks.

This module imports Numba: import it only when Numba is installed. The first use compiles
each function and caches the machine code beside this file for later processes.
"""

from __future__ import annotations

import math
import sys
import threading

import numpy as np
from numba import njit

_SQRT2 = 2**0.5
_EPS = sys.float_info.epsilon
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


@njit(cache=True, nogil=True, inline="always")
def _ndtr(a):
    x = a / _SQRT2
    if x < -1 / _SQRT2:
        return 0.5 * math.erfc(-x)
    if x < 1 / _SQRT2:
        return 0.5 + 0.5 * math.erf(x)
    return 1.0 - 0.5 * math.erfc(x)


@njit(cache=True, nogil=True, inline="always")
def _far_left(a, square):
    """Optuna's asymptotic series below -20 (``square`` is ``a**2``)."""
    log_lhs = -0.5 * square - math.log(-a) - _HALF_LOG_2PI
    last_total, right_hand_side, numerator, denom_factor = 0.0, 1.0, 1.0, 1.0
    denom_cons = 1 / square
    sign = 1
    i = 0
    while abs(last_total - right_hand_side) > _EPS:
        i += 1
        last_total = right_hand_side
        sign = -sign
        denom_factor *= denom_cons
        numerator *= 2 * i - 1
        right_hand_side += sign * numerator * denom_factor
    return log_lhs + math.log(right_hand_side)


@njit(cache=True, nogil=True)
def log_ndtr(a, squares):
    """``log Phi(a)`` element by element for a contiguous float64 array (any shape);
    ``squares`` holds ``a**2`` as the C library's ``pow`` gives it."""
    flat, flat_squares = a.ravel(), squares.ravel()
    out = np.empty(flat.size)
    for k in range(flat.size):
        v = flat[k]
        if v > 6:
            out[k] = -_ndtr(-v)
        elif v > -20:
            out[k] = math.log(_ndtr(v))
        else:
            out[k] = _far_left(v, flat_squares[k])
    return out.reshape(a.shape)


@njit(cache=True, nogil=True)
def mixture_terms(base, cat_codes, cat_logw, x, lows, highs, mu, sigma, xd, d_lows, d_highs, d_halves, d_log,
                  d_mu, d_sigma):
    """Each kernel's weighted log density at each sample, ``(samples, kernels)``: the terms
    Optuna's ``_MixtureOfProductDistribution.log_pdf`` sums in its log-sum-exp, added
    kernel-contiguously in another order, in one call, without its (samples x kernels x
    dimensions) temporaries (so equal to Optuna's to rounding, not bit for bit: see
    :func:`fcnn_opt.store.optuna_internals.fast_choice`).

    ``base[k]``: kernel k's log weight; ``cat_logw[d, c, k]``: categorical dimension d's log
    weight of choice c, the samples' choices in ``cat_codes``. Continuous dimensions: ``x[i,
    d]`` the (transformed) sample, ``lows``, ``highs`` the bounds, ``mu``, ``sigma`` (dimension,
    kernel) the kernels (out of bounds: minus infinity, judged as Optuna's ``_truncnorm.logpdf``
    judges it where the sample is outside ``lows``..``highs``; inside, no kernel judges it out).
    Discrete dimensions: ``xd[i, d]`` the sample (untransformed), ``d_lows``, ``d_highs`` the
    adapted bounds, ``d_halves`` half the step, ``d_log`` whether on a log scale, ``d_mu``,
    ``d_sigma`` the kernels: each kernel's mass over the sample's cell less its mass inside the
    bounds, evaluated once per distinct (value, kernel parameters), as Optuna does."""
    n_samples, n_kernels = cat_codes.shape[0], base.shape[0]
    kernel = base.copy()
    for d in range(x.shape[1]):
        for k in range(n_kernels):
            s = sigma[d, k]
            mass = _bounded_mass((lows[d] - mu[d, k]) / s, (highs[d] - mu[d, k]) / s)
            kernel[k] -= _HALF_LOG_2PI + mass + math.log(s)
    d_at = np.empty((xd.shape[1], n_samples), dtype=np.int64)
    d_pair = np.empty((xd.shape[1], n_kernels), dtype=np.int64)
    unsure = np.zeros(n_samples, dtype=np.bool_)
    tables = []
    for d in range(xd.shape[1]):
        at, pair, table, inside, far = _discrete_masses(xd[:, d], d_mu[d], d_sigma[d], d_lows[d], d_highs[d],
                                                        d_halves[d], d_log[d])
        d_at[d], d_pair[d] = at, pair
        tables.append(table)
        for k in range(n_kernels):
            kernel[k] -= inside[pair[k]]
        for i in range(n_samples):
            unsure[i] |= far[at[i]]
    # a term left out as far (see _discrete_masses) is below the largest kernel constant by more than -FAR_LOG_MASS
    floor = kernel.max() + FAR_LOG_MASS + math.log(n_kernels) + 37.0
    inverse = 1.0 / sigma  # products, not quotients, in the loops below: these vectorise
    out = np.empty((n_samples, n_kernels))
    for i in range(n_samples):
        out[i] = kernel
        for d in range(cat_codes.shape[1]):
            c = cat_codes[i, d]
            for k in range(n_kernels):
                out[i, k] += cat_logw[d, c, k]
        for d in range(x.shape[1]):
            value = x[i, d]
            for k in range(n_kernels):
                z = (value - mu[d, k]) * inverse[d, k]
                out[i, k] -= 0.5 * (z * z)
            if not lows[d] <= value <= highs[d]:
                for k in range(n_kernels):
                    s = sigma[d, k]
                    z = (value - mu[d, k]) / s
                    if z < (lows[d] - mu[d, k]) / s or z > (highs[d] - mu[d, k]) / s:
                        out[i, k] = -np.inf
        for d in range(xd.shape[1]):
            masses, pair = tables[d][d_at[d, i]], d_pair[d]
            for k in range(n_kernels):
                out[i, k] += masses[pair[k]]
        if unsure[i] and not out[i].max() > floor:  # what was left out might count: NaN, to defer to Optuna
            out[i] = np.nan
    return out


@njit(cache=True, nogil=True)
def _discrete_masses(values, mu, sigma, low, high, half, is_log):
    """One discrete dimension of :func:`mixture_terms`: each sample's index among the
    distinct sample values, each kernel's among the distinct (mu, sigma) pairs, the log mass
    of each pair over each distinct value's cell (value, pair), and each pair's log mass
    between ``low`` and ``high``; and for each distinct value whether a cell was left out as
    far: more than ``FAR`` of the pair's widths away from its centre (a log mass under
    :data:`FAR_LOG_MASS`, held as minus infinity; :func:`mixture_terms` checks that it
    cannot count, where the costliest arithmetic, the far tail's series, would go)."""
    distinct = np.empty(values.size)
    at = np.empty(values.size, dtype=np.int64)
    n_distinct = 0
    for i in range(values.size):
        j = 0
        while j < n_distinct and distinct[j] != values[i]:
            j += 1
        if j == n_distinct:
            distinct[j] = values[i]
            n_distinct += 1
        at[i] = j
    mus, sigmas, pair = unique_pairs(mu, sigma)
    table = np.empty((n_distinct, mus.size))
    far = np.zeros(n_distinct, dtype=np.bool_)
    for j in range(n_distinct):
        left, right = distinct[j] - half, distinct[j] + half
        if is_log:
            left, right = math.log(left), math.log(right)
        for q in range(mus.size):
            lo, hi = (left - mus[q]) / sigmas[q], (right - mus[q]) / sigmas[q]
            if hi < -FAR or lo > FAR:
                table[j, q] = -np.inf
                far[j] = True
            else:
                table[j, q] = log_gauss_mass_one(lo, hi)
    inside = np.empty(mus.size)
    for q in range(mus.size):
        inside[q] = _bounded_mass((low - mus[q]) / sigmas[q], (high - mus[q]) / sigmas[q])
    return at, pair, table, inside, far


FAR = 20.0  # standard deviations beyond which a discrete cell's mass is left out (see _discrete_masses)
FAR_LOG_MASS = -200.0  # above log Phi(-20) (about -203.9): no cell left out has more
WHOLE = 8.5  # a kernel whose bounds are this many widths away on both sides keeps all but 2e-17 of its mass


@njit(cache=True, nogil=True, inline="always")
def _bounded_mass(lo, hi):
    """The log mass of a kernel between its bounds (standardised ``lo`` < 0 < ``hi``): 0 where
    both lie beyond :data:`WHOLE` (the exact value is within 2e-17 of it, below the rounding of
    the sums it enters), else :func:`log_gauss_mass_one`."""
    if lo < -WHOLE and hi > WHOLE:
        return 0.0
    return log_gauss_mass_one(lo, hi)


@njit(cache=True, nogil=True)
def unique_pairs(a, b):
    """The distinct pairs ``(a[i], b[i])`` (in order of first appearance) and, for each i, the
    index of its pair: what Optuna's ``_unique_inverse_2d`` gives (up to the pairs' order) in
    one hashed pass instead of two sorts. ``a`` and ``b`` hold no NaN."""
    n = a.size
    size = 16
    while size < 2 * n:
        size *= 2
    mask = size - 1
    slot = np.full(size, -1, dtype=np.int64)
    first_a, first_b = np.empty(n), np.empty(n)
    inverse = np.empty(n, dtype=np.int64)
    found = 0
    for i in range(n):
        x, y = a[i], b[i]
        h = int((abs(x) * 2654435761.0 + abs(y) * 40503.0) % 4294967296.0) & mask
        while slot[h] >= 0 and not (first_a[slot[h]] == x and first_b[slot[h]] == y):
            h = (h + 1) & mask
        if slot[h] < 0:
            slot[h] = found
            first_a[found], first_b[found] = x, y
            found += 1
        inverse[i] = slot[h]
    return first_a[:found], first_b[:found], inverse


@njit(cache=True, nogil=True, inline="always")
def _log_ndtr_one(v):
    """``log Phi(v)`` for one value, as :func:`log_ndtr` (the far tail's square here in
    Numba's own arithmetic: this one serves :func:`log_gauss_mass`, which needs no exact bits)."""
    if v > 6:
        return -_ndtr(-v)
    if v > -20:
        return math.log(_ndtr(v))
    return _far_left(v, v * v)


@njit(cache=True, nogil=True, inline="always")
def log_gauss_mass_one(lo, hi):
    """The log of the standard normal's mass between ``lo`` and ``hi``, by the cases of
    Optuna's ``_truncnorm._log_gauss_mass`` (left tail, right tail by symmetry, centre) with
    the C library's ``erf``: equal to Optuna's to rounding, for :func:`mixture_terms`."""
    if hi <= 0 or lo > 0:
        if lo > 0:  # the right tail, mirrored into the left
            lo, hi = -hi, -lo
        log_hi, log_lo = _log_ndtr_one(hi), _log_ndtr_one(lo)
        return log_hi + math.log1p(-math.exp(log_lo - log_hi))
    return math.log1p(-_ndtr(lo) - _ndtr(-hi))


_COMPILING: list[threading.Thread] = []  # the one thread compiling mixture_terms, once started
_START = threading.Lock()  # held while that thread is started


def mixture_terms_ready(wait: bool = False) -> bool:
    """Whether :func:`mixture_terms` is compiled in this process (or loaded from the cache).

    The first call starts compiling it in a background thread and says False: compiled in the
    middle of a study, it took 4 s (15 s on a loaded machine) on a fresh install, which a
    time-budgeted study overran its budget by; until it is ready, the caller evaluates
    Optuna's own way. ``wait``: wait for it instead (for tests and warm-ups)."""
    if mixture_terms.signatures:
        return True
    with _START:
        if not _COMPILING:
            _COMPILING.append(threading.Thread(target=_compile_mixture_terms, name="fcnn_opt-tpe-compile",
                                               daemon=True))
            _COMPILING[0].start()
    if wait:
        _COMPILING[0].join()
    return bool(mixture_terms.signatures)


def _compile_mixture_terms() -> None:
    """Compile :func:`mixture_terms` for the argument types its caller passes (C-contiguous
    float64 arrays, int64 choices, booleans), by calling it on one kernel and one sample with
    one dimension of each kind."""
    one, row = np.zeros(1), np.zeros((1, 1))
    mixture_terms(one, np.zeros((1, 1), dtype=np.int64), np.zeros((1, 1, 1)), row, one - 1, one + 1, row,
                  row + 1, row, one - 1, one + 1, one + 0.5, np.zeros(1, dtype=np.bool_), row, row + 1)
