"""The NumPy backend's hand-written backprop and optimisers, checked against PyTorch.

Like micrograd's tests: the same weights and batch through ``NumpyNet.loss_and_grad`` and
through torch autograd must give the same loss and gradients, and each optimiser's steps
must move the parameters exactly as ``torch.optim`` does.
"""

from __future__ import annotations

import numpy as np
import pytest

from fcnn_opt import make_dataset
from fcnn_opt.training.backends._base import init_weights
from fcnn_opt.training.backends._numpy import NumpyNet, _Optimizer

torch = pytest.importorskip("torch")
from fcnn_opt.training.backends._torch import TorchNet, data_loss, make_optimizer  # noqa: E402

DATASETS = {"binary": "circle", "multiclass": "circles", "regression": "sum_squares"}


def _weights(n_outputs: int, seed: int = 0):
    """Glorot weights with non-zero biases, so that bias gradients flow through every layer."""
    rng = np.random.default_rng(seed)
    return [(W, rng.normal(0.0, 0.3, size=b.shape).astype(np.float32))
            for W, b in init_weights([2, 6, 5, n_outputs], seed)]


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("task", DATASETS)
def test_backprop_matches_torch_autograd(task, activation):
    data = make_dataset(DATASETS[task], n_points=200)
    X, y = data.X_train[:64], data.y_train[:64]
    weights = _weights(data.n_outputs)
    net = NumpyNet(weights, activation, task)
    numpy_loss = net.loss_and_grad(X, net.targets(y))

    reference = TorchNet(weights, activation, task)
    torch_loss = data_loss(task, reference.logits(torch.as_tensor(X)), torch.as_tensor(y))
    torch_loss.backward()
    assert numpy_loss == pytest.approx(torch_loss.item(), abs=1e-6)
    for (gW, gb), (W, b) in zip(net.grads, reference.params, strict=True):
        np.testing.assert_allclose(gW, W.grad.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(gb, b.grad.numpy(), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["sgd", "adam", "rmsprop", "adagrad"])
def test_optimizer_steps_match_torch_optim(name):
    lr, l2 = 0.01, 0.1  # a large l2, so that decaying the biases too would show
    weights = _weights(n_outputs=3)
    net = NumpyNet(weights, "relu", "multiclass")
    optimizer = _Optimizer(name, lr, l2, net)
    reference = TorchNet(weights, "relu", "multiclass")
    torch_optimizer = make_optimizer(name, [W for W, _ in reference.params],
                                     [b for _, b in reference.params], lr, l2)
    rng = np.random.default_rng(1)
    for _ in range(3):  # several steps, so that the optimisers' state matters
        grads = [(rng.normal(size=W.shape).astype(np.float32), rng.normal(size=b.shape).astype(np.float32))
                 for W, b in weights]
        for (gW, gb), (nW, nb), (W, b) in zip(grads, net.grads, reference.params, strict=True):
            nW[...], nb[...] = gW, gb
            W.grad, b.grad = torch.tensor(gW), torch.tensor(gb)
        optimizer.step()
        torch_optimizer.step()
    for (nW, nb), (W, b) in zip(net.params, reference.params, strict=True):
        np.testing.assert_allclose(nW, W.detach().numpy(), rtol=0, atol=1e-6)
        np.testing.assert_allclose(nb, b.detach().numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("optimizer", ["sgd", "adam", "rmsprop", "adagrad"])
@pytest.mark.parametrize("dataset", ["xor", "circles", "prod"])  # binary, multi-class, regression
def test_compiled_epochs_follow_the_numpy_calls(monkeypatch, activation, optimizer, dataset):
    """The compiled epoch loop (the `fast` extra) against the plain NumPy calls: two hidden
    layers, weight decay, a last mini-batch shorter than the others (250 points, batch 60)."""
    import numba  # noqa: F401  (installed by the test extra: the compiled path must be tested)

    from fcnn_opt import TrainConfig, make_dataset, train
    from fcnn_opt.training.backends._numpy import jit_available

    data = make_dataset(dataset, n_points=300)
    config = TrainConfig(lib="numpy", dims=(9, 5), activation=activation, optimizer=optimizer, lr=0.01,
                         l2=1e-3, batch_size=60, epochs=6, seed=4)
    assert jit_available()
    compiled = train(data, config)
    monkeypatch.setenv("FCNN_OPT_NO_JIT", "1")
    assert not jit_available()
    plain = train(data, config)
    np.testing.assert_allclose(compiled.train_loss, plain.train_loss, rtol=0, atol=1e-5)
    np.testing.assert_allclose(compiled.val_loss, plain.val_loss, rtol=0, atol=1e-5)
    for (Wa, ba), (Wb, bb) in zip(compiled.weights(), plain.weights(), strict=True):
        np.testing.assert_allclose(Wa, Wb, rtol=0, atol=1e-4)
        np.testing.assert_allclose(ba, bb, rtol=0, atol=1e-4)
