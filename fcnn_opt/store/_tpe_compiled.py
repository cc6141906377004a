"""The log of the standard normal distribution function, compiled with Numba, for TPE.

Optuna's TPE evaluates ``log Phi(a)`` for every kernel bound at every draw (over ten
thousand values a draw on W2), one Python call per value: more than half of each draw.
This is the same function, branch for branch and operation for operation, with the same C
library calls (``erf``, ``erfc``, ``log``), so it gives the same bits. One operation cannot
be written here as Optuna writes it: the far left tail's ``a**2`` is the C library's ``pow``,
which Numba would turn into ``a * a`` (a different rounding in about one case in a
thousand), so the caller passes the squares, computed by NumPy's ``float_power`` (the C
library's ``pow``); see :func:`fcnn_opt.store.optuna_internals.compiled_tpe_tails`.

This module imports Numba: import it only when Numba is installed. The first use compiles
the function and caches the machine code beside this file for later processes.
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
