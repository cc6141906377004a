"""The log of the standard normal distribution function, compiled with Numba, for TPE.

Optuna's TPE evaluates ``log Phi(a)`` for every kernel bound at every draw (hundreds of
thousands of values a draw on W2), one Python call per value: more than half of each draw.
This is the same function, branch for branch and with the same C library calls (``erf``,
``erfc``, ``log``), so it gives the same bits. Values at or below -20 (Optuna sums an
asymptotic series there whose ``a**2`` is the C library's ``pow``, which Numba would turn
into a multiplication that rounds differently) come back as NaN, for the caller to take
from Optuna's own function; see :func:`fcnn_opt.store.optuna_internals.compiled_tpe_tails`.

This module imports Numba: import it only when Numba is installed. The first use compiles
the function and caches the machine code beside this file for later processes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

FAR_LEFT = -20.0  # at or below: Optuna's series (returned as NaN here)
_SQRT2 = 2**0.5


@njit(cache=True, nogil=True, inline="always")
def _ndtr(a):
    x = a / _SQRT2
    if x < -1 / _SQRT2:
        return 0.5 * math.erfc(-x)
    if x < 1 / _SQRT2:
        return 0.5 + 0.5 * math.erf(x)
    return 1.0 - 0.5 * math.erfc(x)


@njit(cache=True, nogil=True)
def log_ndtr(a):
    """``log Phi(a)`` element by element for a float64 array (any shape); NaN at or below -20
    and for NaN."""
    flat = a.ravel()
    out = np.empty(flat.size)
    for k in range(flat.size):
        v = flat[k]
        if v > 6:
            out[k] = -_ndtr(-v)
        elif v > FAR_LEFT:
            out[k] = math.log(_ndtr(v))
        else:
            out[k] = np.nan
    return out.reshape(a.shape)
