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
def mixture_terms(base, cat_codes, cat_logw, x, lows, highs, mu, sigma, a, b, disc_at, disc_pair, disc_table):
    """Each kernel's weighted log density at each sample, ``(samples, kernels)``: the terms
    Optuna's ``_MixtureOfProductDistribution.log_pdf`` sums before its log-sum-exp, added
    kernel-contiguously in another order, without its (samples x kernels x dimensions)
    temporaries (so equal to Optuna's to rounding, not bit for bit: see
    :func:`fcnn_opt.store.optuna_internals.fast_choice`).

    ``base[k]``: kernel k's log weight plus every term that depends on the kernel alone;
    ``cat_logw[d, c, k]``: categorical dimension d's log weight of choice c; ``x[i, d]`` a
    continuous dimension's (transformed) sample, ``lows``, ``highs`` its bounds and ``mu``,
    ``sigma``, ``a``, ``b`` (dimension, kernel) its kernels and standardised bounds, as Optuna's
    ``_truncnorm.logpdf`` takes them (out of bounds: minus infinity, judged as Optuna judges it
    where the sample is outside ``lows``..``highs``; inside, no kernel judges it out);
    ``disc_table[d, u, p]`` a discrete dimension's log mass of the sample value
    ``u = disc_at[i, d]`` under the kernel parameters ``p = disc_pair[d, k]``."""
    n_samples, n_kernels = cat_codes.shape[0], base.shape[0]
    out = np.empty((n_samples, n_kernels))
    for i in range(n_samples):
        row = out[i]
        row[:] = base
        for d in range(cat_codes.shape[1]):
            weights = cat_logw[d, cat_codes[i, d]]
            for k in range(n_kernels):
                row[k] += weights[k]
        for d in range(x.shape[1]):
            value, m, s = x[i, d], mu[d], sigma[d]
            for k in range(n_kernels):
                z = (value - m[k]) / s[k]
                row[k] += -(z * z) / 2.0
            if not lows[d] <= value <= highs[d]:
                lo, hi = a[d], b[d]
                for k in range(n_kernels):
                    z = (value - m[k]) / s[k]
                    if z < lo[k] or z > hi[k]:
                        row[k] = -np.inf
        for d in range(disc_at.shape[1]):
            table, pair = disc_table[d, disc_at[i, d]], disc_pair[d]
            for k in range(n_kernels):
                row[k] += table[pair[k]]
    return out


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


@njit(cache=True, nogil=True)
def log_gauss_mass(a, b):
    """The log of the standard normal's mass between ``a`` and ``b`` (arrays of one shape),
    by the cases of Optuna's ``_truncnorm._log_gauss_mass`` (left tail, right tail by
    symmetry, centre) with the C library's ``erf``: equal to Optuna's to rounding, for the
    compiled density of :func:`mixture_terms`'s callers."""
    flat_a, flat_b = a.ravel(), b.ravel()
    out = np.empty(flat_a.size)
    for k in range(flat_a.size):
        lo, hi = flat_a[k], flat_b[k]
        if hi <= 0 or lo > 0:
            if lo > 0:  # the right tail, mirrored into the left
                lo, hi = -hi, -lo
            log_hi, log_lo = _log_ndtr_one(hi), _log_ndtr_one(lo)
            out[k] = log_hi + math.log1p(-math.exp(log_lo - log_hi))
        else:
            out[k] = math.log1p(-_ndtr(lo) - _ndtr(-hi))
    return out.reshape(a.shape)
