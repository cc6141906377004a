"""The NumPy backend's epoch loop compiled with Numba: the same network, without per-call cost.

At W2's sizes (batch 32, two hidden layers of tens of units) one mini-batch step of the NumPy
backend is about forty-five NumPy calls of about a microsecond each: the call overhead, not
the arithmetic, sets its speed. Here a whole epoch of steps (forward pass, backpropagation,
optimiser update) is one compiled call. It follows the NumPy code step for step: the same
layout of parameters (one flat float32 buffer, each layer's ``W`` row by row then its ``b``),
the same losses, the same update rules with PyTorch's constants. Its inner loops run along
contiguous rows so the compiler vectorises them, and tanh is a rational function (the one
Eigen uses for float32, a few units in the last place from the exact value; sigmoid is
``(1 + tanh(z / 2)) / 2``), because a call to the C library's ``tanh`` or ``exp`` per
element costs more than everything else together. The trajectory agrees with the NumPy and
PyTorch backends to float32 rounding (tests/test_backends.py).

This module imports Numba: import it only when
:func:`fcnn_opt.training.backends._numpy.jit_available` says so. The first use compiles the loop (a
few seconds) and caches the machine code beside this file for later processes.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from fcnn_opt.training.backends._base import (
    ADAGRAD_EPS,
    ADAM_BETAS,
    ADAM_EPS,
    RMSPROP_EPS,
    RMSPROP_RHO,
)
from fcnn_opt.training.datasets import BINARY, MULTICLASS

ACTIVATIONS = {"relu": 0, "tanh": 1, "sigmoid": 2}
OPTIMIZERS = {"sgd": 0, "adam": 1, "rmsprop": 2, "adagrad": 3}
TASKS = {BINARY: 0, MULTICLASS: 1}  # anything else: regression (2)

_B1, _B2 = np.float32(ADAM_BETAS[0]), np.float32(ADAM_BETAS[1])
_B1_64, _B2_64 = float(ADAM_BETAS[0]), float(ADAM_BETAS[1])
_ADAM_EPS, _RMS_EPS, _ADA_EPS = np.float32(ADAM_EPS), np.float32(RMSPROP_EPS), np.float32(ADAGRAD_EPS)
_RHO = np.float32(RMSPROP_RHO)
_ONE, _ZERO, _HALF = np.float32(1.0), np.float32(0.0), np.float32(0.5)

# tanh(x) = x P(x^2) / Q(x^2) on [-7.9, 7.9], and +-1 beyond (Eigen's float32 ptanh).
_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5 = np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04), np.float32(1.48572235717979e-05)
_A7, _A9 = np.float32(5.12229709037114e-08), np.float32(-8.60467152213735e-11)
_A11, _A13 = np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2C = np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03)
_B4, _B6 = np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06)


@njit(cache=True, nogil=True, inline="always")
def _tanh(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2C
    q = x2 * q + _B0
    return x * p / q


@njit(cache=True, nogil=True, inline="always")
def _activate(z, act):
    if act == 0:
        return max(z, _ZERO)
    if act == 1:
        return _tanh(z)
    return _HALF + _HALF * _tanh(_HALF * z)


@njit(cache=True, nogil=True, inline="always")
def _activation_grad(a, act):
    if act == 0:
        return _ONE if a > 0 else _ZERO
    if act == 1:
        return _ONE - a * a
    return a * (_ONE - a)


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "nsz", "arcp"})
def epoch(flat, grad, state, state2, decay, sizes, starts, act, task, opt, lr, l2, step, Xe, Te, batch_size):
    """Train one epoch over the gathered, shuffled ``Xe``/``Te`` (float32, C order), updating
    ``flat`` and the optimiser's ``state``/``state2`` in place; returns the summed per-sample
    loss and the optimiser's step count. Matrix products go to BLAS (``np.dot``), without
    Python between them; the element-wise work is compiled loops."""
    n_layers = len(sizes) - 1
    n = Xe.shape[0]
    n_out = sizes[n_layers]
    total = 0.0
    for begin in range(0, n, batch_size):
        m = min(batch_size, n - begin)
        # forward: acts[l + 1] = activation(acts[l] W_l + b_l); the last layer stays linear
        acts = [Xe[begin:begin + m]]
        for layer in range(n_layers):
            fan_in, fan_out, w0 = sizes[layer], sizes[layer + 1], starts[layer]
            b0 = w0 + fan_in * fan_out
            z = np.dot(acts[layer], flat[w0:b0].reshape((fan_in, fan_out)))
            last = layer == n_layers - 1
            for i in range(m):
                for k in range(fan_out):
                    value = z[i, k] + flat[b0 + k]
                    z[i, k] = value if last else _activate(value, act)
            acts.append(z)
        # loss, and its gradient with respect to the output pre-activation
        z = acts[n_layers]
        delta = np.empty((m, n_out), dtype=np.float32)
        loss = 0.0
        for i in range(m):
            if task == 0:
                t = Te[begin + i, 0]
                loss += max(z[i, 0], 0.0) + math.log1p(math.exp(-abs(z[i, 0]))) - t * z[i, 0]
                delta[i, 0] = _ONE / (_ONE + np.float32(math.exp(-z[i, 0]))) - t
            elif task == 1:
                top = z[i, 0]
                for k in range(1, n_out):
                    top = max(top, z[i, k])
                s = _ZERO
                for k in range(n_out):
                    e = np.float32(math.exp(z[i, k] - top))
                    delta[i, k] = e
                    s += e
                loss += math.log(s)
                for k in range(n_out):
                    loss -= Te[begin + i, k] * (z[i, k] - top)
                    delta[i, k] = delta[i, k] / s - Te[begin + i, k]
            else:
                for k in range(n_out):
                    d = z[i, k] - Te[begin + i, k]
                    loss += d * d
                    delta[i, k] = 2 * d
        total += loss
        delta *= np.float32(1.0 / m)
        # backward: each layer's gradient [dW; db], then the delta of the layer below
        for layer in range(n_layers - 1, -1, -1):
            fan_in, fan_out, w0 = sizes[layer], sizes[layer + 1], starts[layer]
            b0 = w0 + fan_in * fan_out
            grad[w0:b0] = np.dot(acts[layer].T, delta).ravel()
            for k in range(fan_out):
                g = _ZERO
                for i in range(m):
                    g += delta[i, k]
                grad[b0 + k] = g
            if layer:
                below = np.dot(delta, flat[w0:b0].reshape((fan_in, fan_out)).T)
                a = acts[layer]
                for i in range(m):
                    for j in range(fan_in):
                        below[i, j] *= _activation_grad(a[i, j], act)
                delta = below
        # the optimiser, on the flat buffer (PyTorch's rules, as _numpy._Optimizer)
        step_size, root = lr, _ONE
        if opt == 1:
            step += 1
            step_size = np.float32(lr / (1 - _B1_64 ** step))
            root = np.float32(math.sqrt(1 - _B2_64 ** step))
        for p in range(len(flat)):
            g = grad[p]
            if l2 != 0:
                g += l2 * decay[p] * flat[p]
            if opt == 0:
                flat[p] -= lr * g
            elif opt == 1:
                state[p] = _B1 * state[p] + (_ONE - _B1) * g
                state2[p] = _B2 * state2[p] + (_ONE - _B2) * (g * g)
                flat[p] -= step_size * (state[p] / (np.float32(math.sqrt(state2[p])) / root + _ADAM_EPS))
            elif opt == 2:
                state[p] = _RHO * state[p] + (_ONE - _RHO) * (g * g)
                flat[p] -= lr * (g / (np.float32(math.sqrt(state[p])) + _RMS_EPS))
            else:
                state[p] += g * g
                flat[p] -= lr * (g / (np.float32(math.sqrt(state[p])) + _ADA_EPS))
    return total, step
