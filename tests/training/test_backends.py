"""The backend contract, one suite run against all five libraries.

Every backend starts from the same weights and sees the same mini-batches, so besides
learning each task it must reproduce the NumPy backend's histories up to float32 rounding.
The tolerances below were measured on the reference machine (2-core CPU, see
docs/backends.md) and carry a margin of 8x or more.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.training.backends._base import loss

ROOT = Path(__file__).resolve().parents[2]
LIBS = ("numpy", "torch", "tf", "keras", "sklearn")
MODULES = {"torch": "torch", "tf": "tensorflow", "keras": "keras", "sklearn": "sklearn"}

# One easy dataset and a setting that learns it per task; sgd and adam only, so that
# scikit-learn runs them too. The regression case also exercises weight decay.
TASKS = {
    "binary": ("xor", TrainConfig(dims=(8,), activation="tanh", optimizer="adam", lr=0.02,
                                  batch_size=50, epochs=30)),
    "multiclass": ("quadrants", TrainConfig(dims=(8,), activation="relu", optimizer="adam", lr=0.02,
                                            batch_size=50, epochs=30)),
    "regression": ("prod", TrainConfig(dims=(8,), activation="tanh", optimizer="sgd", lr=0.1,
                                       batch_size=50, epochs=30, l2=1e-4)),
}

# Largest |loss - NumPy's| over every epoch of the TASKS runs, validation and train loss.
# Measured: torch 1.1e-7, tf 9.5e-8, sklearn 1.2e-6 and keras 3.6e-6 (both add Adam's
# epsilon before the bias correction; sklearn's train loss with l2 > 0 is estimated, 8.5e-7).
AGREEMENT = {"numpy": 0.0, "torch": 1e-5, "tf": 1e-5, "sklearn": 1e-5, "keras": 1e-4}

# Two runs with the same seed: every backend was bit-for-bit identical when measured (0.0).
REPRODUCIBLE = 1e-6


@pytest.fixture(params=LIBS)
def lib(request) -> str:
    if request.param in MODULES:
        pytest.importorskip(MODULES[request.param])
    return request.param


@functools.cache
def dataset(name: str):
    return make_dataset(name, n_points=600)


@functools.cache
def run(lib: str, task: str):
    """The TASKS run of ``task`` on ``lib``, trained once per test session."""
    name, config = TASKS[task]
    return train(dataset(name), config.replace(lib=lib))


def chance_loss(data) -> float:
    """Validation loss of predicting the training prior (classification) or mean (regression)."""
    n = len(data.y_val)
    if data.task == "multiclass":
        prior = np.bincount(data.y_train, minlength=data.n_classes) / len(data.y_train)
        return loss(data.task, np.tile(prior, (n, 1)), data.y_val)
    return loss(data.task, np.full(n, data.y_train.mean()), data.y_val)


@pytest.mark.parametrize("task", TASKS)
def test_learns_each_task_well_below_chance(lib, task):
    result = run(lib, task)
    assert result.val_loss[-1] < 0.5 * chance_loss(result.dataset)  # measured: 0.03-0.15x


@pytest.mark.parametrize("task", TASKS)
def test_matches_numpy_epoch_by_epoch(lib, task):
    result, reference = run(lib, task), run("numpy", task)
    np.testing.assert_allclose(result.val_loss, reference.val_loss, rtol=0, atol=AGREEMENT[lib])
    np.testing.assert_allclose(result.train_loss, reference.train_loss, rtol=0, atol=AGREEMENT[lib])


def test_histories_have_one_entry_per_epoch(lib):
    for task, (_, config) in TASKS.items():
        result = run(lib, task)
        assert len(result.train_loss) == len(result.val_loss) == len(result.epoch_seconds) == config.epochs
        assert (result.val_accuracy is None) == (task == "regression")
        assert not result.stopped_early
        assert result.predict(result.dataset.X_val).shape == result.dataset.y_val.shape + (
            (result.dataset.n_classes,) if task == "multiclass" else ())


def test_same_seed_gives_the_same_histories(lib):
    first = run(lib, "binary")
    name, config = TASKS["binary"]
    again = train(dataset(name), config.replace(lib=lib))
    np.testing.assert_allclose(again.val_loss, first.val_loss, rtol=0, atol=REPRODUCIBLE)
    np.testing.assert_allclose(again.train_loss, first.train_loss, rtol=0, atol=REPRODUCIBLE)


def test_on_epoch_returning_true_stops_after_that_epoch(lib):
    seen = []

    def on_epoch(epoch, metrics):
        seen.append(epoch)
        return epoch == 3

    name, config = TASKS["multiclass"]
    result = train(dataset(name), config.replace(lib=lib, epochs=10), on_epoch)
    assert seen == [1, 2, 3]
    assert len(result.val_loss) == len(result.train_loss) == 3
    assert result.stopped_early


def test_bad_settings_fail_before_any_training(lib):
    data = dataset("xor")
    seen = []
    with pytest.raises(ValueError, match="lr must be"):
        train(data, TrainConfig(lib=lib, lr=-1), lambda epoch, metrics: seen.append(epoch))
    if lib == "sklearn":
        for optimizer in ("rmsprop", "adagrad"):
            with pytest.raises(ValueError, match=f"does not support optimizer='{optimizer}'"):
                train(data, TrainConfig(lib=lib, optimizer=optimizer), lambda e, m: seen.append(e))
    if lib != "torch":
        with pytest.raises(ValueError, match="device='cuda' needs lib='torch'"):
            TrainConfig(lib=lib, device="cuda")
    assert seen == []


@pytest.mark.parametrize("optimizer", ["rmsprop", "adagrad"])
@pytest.mark.parametrize("framework", ["torch", "tf", "keras"])
def test_rmsprop_and_adagrad_match_numpy(framework, optimizer):
    pytest.importorskip(MODULES[framework])
    config = TrainConfig(dims=(8,), optimizer=optimizer, lr=0.01, batch_size=50, epochs=5, l2=1e-3)
    data = dataset("quadrants")
    result, reference = train(data, config.replace(lib=framework)), train(data, config)
    # measured: torch and tf 3e-8, keras 1.3e-6 on rmsprop (its epsilon sits inside the root)
    np.testing.assert_allclose(result.val_loss, reference.val_loss, rtol=0, atol=AGREEMENT[framework])


def _run_python(code: str, **env) -> subprocess.CompletedProcess:
    environ = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), **env)
    return subprocess.run([sys.executable, "-c", code], env=environ, capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("lib,package", [("torch", "torch"), ("tf", "tensorflow-cpu"),
                                         ("keras", "keras"), ("sklearn", "scikit-learn")])
def test_missing_library_names_the_package_to_install(lib, package):
    code = (f"import sys\nsys.modules[{MODULES[lib]!r}] = None  # as if not installed\n"
            "from fcnn_opt.training.backends import get_backend\n"
            f"try:\n    get_backend({lib!r})\nexcept ImportError as exc:\n    print(exc)\n")
    out = _run_python(code)
    assert out.returncode == 0, out.stderr
    assert f"lib={lib!r} needs" in out.stdout and f"pip install {package}" in out.stdout


def test_keras_on_another_backend_is_refused_clearly():
    pytest.importorskip("torch")
    code = ("from fcnn_opt.training.backends import get_backend\n"
            "try:\n    get_backend('keras')\nexcept RuntimeError as exc:\n    print(exc)\n")
    out = _run_python(code, KERAS_BACKEND="torch")
    assert out.returncode == 0, out.stderr
    assert "backend 'torch'" in out.stdout and "KERAS_BACKEND=tensorflow" in out.stdout


# Keras reuses compiled networks across runs (see KerasBackend): a reused network must give
# exactly what a fresh one gives.
KERAS_A = TrainConfig(lib="keras", dims=(8,), activation="relu", optimizer="adam", lr=0.02,
                      batch_size=50, epochs=4, seed=3)
KERAS_B = TrainConfig(lib="keras", dims=(6, 4), activation="tanh", optimizer="rmsprop", lr=0.01,
                      batch_size=64, epochs=4, seed=4, l2=1e-3)


@pytest.fixture
def keras_backend():
    pytest.importorskip("keras")
    from fcnn_opt.training.backends import get_backend

    backend = get_backend("keras")
    backend.clear()
    yield backend
    backend.clear()


def _assert_same_histories(result, reference):
    np.testing.assert_allclose(result.train_loss, reference.train_loss, rtol=0, atol=REPRODUCIBLE)
    np.testing.assert_allclose(result.val_loss, reference.val_loss, rtol=0, atol=REPRODUCIBLE)


def test_keras_reused_network_gives_the_fresh_networks_histories(keras_backend):
    data = dataset("quadrants")
    fresh_a = train(data, KERAS_A)
    again_a = train(data, KERAS_A)  # back to back
    fresh_b = train(data, KERAS_B)
    after_b = train(data, KERAS_A)  # A, B, then A again
    assert len(keras_backend._compiled) == 2
    for result in (again_a, after_b):
        _assert_same_histories(result, fresh_a)
    other = KERAS_A.replace(lr=0.005, batch_size=32, seed=9)
    reused = train(data, other)  # same network, another learning rate, batch size and seed
    assert len(keras_backend._compiled) == 2
    keras_backend.clear()
    _assert_same_histories(reused, train(data, other))
    _assert_same_histories(train(data, KERAS_B), fresh_b)


def test_keras_traces_the_train_step_once_per_network(keras_backend, monkeypatch):
    import keras

    traces = []
    step = keras.Sequential.train_step

    def counted(model, batch):  # Keras calls train_step only while tracing
        traces.append(model)
        return step(model, batch)

    monkeypatch.setattr(keras.Sequential, "train_step", counted)
    data = dataset("quadrants")
    for lr, batch_size, seed in [(0.02, 50, 0), (0.1, 32, 1), (0.001, 480, 2)]:
        train(data, KERAS_A.replace(lr=lr, batch_size=batch_size, seed=seed, epochs=2))
    assert len(traces) == 1


def test_keras_result_keeps_its_own_weights_after_a_later_run(keras_backend):
    data = dataset("quadrants")
    first = train(data, KERAS_A)
    weights = first.weights()
    out = first.predict(data.X_val)
    # after training, predictions use the final weights: the last epoch's val loss again
    assert loss(data.task, out, data.y_val) == first.val_loss[-1]
    train(data, KERAS_A.replace(seed=11, lr=0.1))  # reuses and changes the compiled network
    np.testing.assert_array_equal(first.predict(data.X_val), out)
    for (W, b), (W0, b0) in zip(first.weights(), weights, strict=True):
        np.testing.assert_array_equal(W, W0)
        np.testing.assert_array_equal(b, b0)


def test_keras_run_stopped_by_an_exception_leaves_the_next_run_exact(keras_backend):
    data = dataset("quadrants")

    def fail(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(data, KERAS_A.replace(lr=0.3), fail)
    after = train(data, KERAS_A)
    keras_backend.clear()
    _assert_same_histories(after, train(data, KERAS_A))


def test_keras_run_inside_a_run_gets_its_own_network(keras_backend):
    data = dataset("quadrants")
    inner = []

    def nested(epoch, metrics):
        if epoch == 2:
            inner.append(train(data, KERAS_A.replace(seed=5)))

    outer = train(data, KERAS_A, nested)
    assert len(keras_backend._compiled) == 1
    keras_backend.clear()
    _assert_same_histories(outer, train(data, KERAS_A))
    _assert_same_histories(inner[0], train(data, KERAS_A.replace(seed=5)))


def test_keras_cache_is_bounded_and_frees_the_traced_steps(keras_backend, monkeypatch):
    import gc
    import weakref

    from tensorflow.python.framework.func_graph import FuncGraph

    import fcnn_opt.training.backends._keras as keras_module

    monkeypatch.setattr(keras_module, "MAX_CACHED_MODELS", 2)
    data = dataset("quadrants")
    gc.collect()
    before = {id(o) for o in gc.get_objects() if type(o) is FuncGraph}
    for width in (2, 3):
        train(data, KERAS_A.replace(dims=(width,), epochs=1))
    assert len(keras_backend._compiled) == 2
    graphs = [weakref.ref(o) for o in gc.get_objects() if type(o) is FuncGraph and id(o) not in before]
    assert graphs  # the two traced train steps
    train(data, KERAS_A.replace(dims=(4,), epochs=1))  # a third network empties the cache
    assert len(keras_backend._compiled) == 1
    gc.collect()
    # nothing else (e.g. TensorFlow's global gradient registry) keeps them: keras-team/keras#17458
    assert all(ref() is None for ref in graphs)
