"""The scikit-learn backend: ``MLPClassifier`` / ``MLPRegressor`` trained one ``partial_fit`` per epoch.

scikit-learn's MLPs train with SGD or Adam only. Each epoch is one ``partial_fit`` call on
the epoch's samples laid out in the shared batch order, with ``shuffle=False`` and
``batch_size=config.batch_size``, so scikit-learn cuts the same mini-batches as the other
backends (``batches(epoch)`` gives full batches and one shorter last batch).

How scikit-learn's conventions are mapped onto fcnn_opt's (read in
``sklearn/neural_network/_multilayer_perceptron.py``, scikit-learn 1.9):

- Weight decay: ``_compute_loss_grad`` adds ``alpha * W`` to the summed (not averaged)
  batch gradient and then divides by the batch size ``n``, so the decay gradient is
  ``alpha / n * W``, where ``n`` is the batch's total sample weight; ``alpha = l2 *
  batch_size`` gives ``l2 * W`` on every full batch. When ``l2 > 0`` and the last batch is
  shorter (``m`` samples), its samples get weight ``batch_size / m`` (``partial_fit``'s
  ``sample_weight``, scikit-learn >= 1.7), which gives it ``l2 * W`` too and leaves its
  data gradient, a weighted mean with equal weights, unchanged.
- Regression: scikit-learn minimises *half* the mean squared error. Its gradients are half
  of fcnn_opt's, so SGD runs at ``2 * lr``, Adam with ``epsilon = ADAM_EPS / 2`` (Adam is
  otherwise scale-free) and ``alpha`` is halved; the updates are then those of the MSE.
- Adam: scikit-learn adds epsilon to ``sqrt(v)`` before the bias correction, PyTorch after;
  the two differ only while ``v`` is of the order of ``eps**2``.
"""

from __future__ import annotations

import numpy as np
from sklearn.neural_network import MLPClassifier, MLPRegressor

from fcnn_opt.training.backends._base import ADAM_BETAS, ADAM_EPS, Backend, Model, Weights
from fcnn_opt.training.config import TrainConfig
from fcnn_opt.training.datasets import BINARY, MULTICLASS, REGRESSION, Dataset

ACTIVATIONS = {"relu": "relu", "tanh": "tanh", "sigmoid": "logistic"}


def make_estimator(config: TrainConfig, task: str, batch_size: int) -> MLPClassifier | MLPRegressor:
    """The MLP whose ``partial_fit`` performs fcnn_opt's updates (see the module docstring)."""
    scale = 0.5 if task == REGRESSION else 1.0  # scikit-learn's loss / fcnn_opt's loss
    settings = dict(
        hidden_layer_sizes=config.dims,
        activation=ACTIVATIONS[config.activation],
        solver=config.optimizer,
        alpha=config.l2 * batch_size * scale,
        batch_size=batch_size,
        learning_rate_init=config.lr / scale if config.optimizer == "sgd" else config.lr,
        learning_rate="constant",
        momentum=0.0,
        nesterovs_momentum=False,
        beta_1=ADAM_BETAS[0],
        beta_2=ADAM_BETAS[1],
        epsilon=ADAM_EPS * scale,
        shuffle=False,
        random_state=config.seed,
    )
    return MLPRegressor(**settings) if task == REGRESSION else MLPClassifier(**settings)


def _penalty(estimator: MLPClassifier | MLPRegressor) -> float:
    """The L2 penalty scikit-learn adds to a full batch's mean loss: ``alpha / (2 n) * sum W**2``."""
    return 0.5 * estimator.alpha / estimator.batch_size * sum(float(np.sum(W * W)) for W in estimator.coefs_)


class SklearnNet(Model):
    """A fitted scikit-learn MLP."""

    def __init__(self, estimator: MLPClassifier | MLPRegressor, task: str):
        self.estimator, self.task = estimator, task

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The network's outputs for ``X``, as :meth:`Model.predict` defines them."""
        X = np.asarray(X, dtype=np.float32)
        if self.task == BINARY:
            return self.estimator.predict_proba(X)[:, 1]
        if self.task == MULTICLASS:
            return self.estimator.predict_proba(X)
        return self.estimator.predict(X)

    def weights(self) -> Weights:
        """The estimator's ``[(W, b), ...]`` per layer, as copies."""
        return [(W.copy(), b.copy()) for W, b in zip(self.estimator.coefs_, self.estimator.intercepts_,
                                                      strict=True)]


class SklearnBackend(Backend):
    """Trains scikit-learn's MLP from the shared initial weights, one ``partial_fit`` per epoch.

    Initial weights: scikit-learn draws its own in its first ``fit``/``partial_fit`` call and
    has no public way to pass them in. So one ``partial_fit`` on the first batch builds the
    estimator (classes, layers, output activation), the shared weights are then copied into
    ``coefs_`` and ``intercepts_`` in place, and the optimiser that call created is dropped
    (``_optimizer``, private): the next ``partial_fit`` starts a fresh one on the copied
    weights, as ``_fit_stochastic`` does whenever the attribute is missing.

    Train loss: ``loss_`` after each epoch is the sample-weighted mean batch loss, in
    scikit-learn's scale (half the MSE for regression) plus the L2 penalty of the weights
    at each batch. The reported value is fcnn_opt's data loss: the penalty is subtracted and
    the scale undone. Exact when ``l2 == 0``; with ``l2 > 0`` the penalty is taken from the
    mean of ``sum W**2`` at the epoch's start and end instead of at every batch (measured
    within 3e-5 of the NumPy backend's train loss at ``l2 = 1e-3``, 3e-4 at ``l2 = 1e-2``).
    """

    name = "sklearn"
    package = "scikit-learn"
    optimizers = ("sgd", "adam")

    def fit(self, data: Dataset, config: TrainConfig, weights: Weights, batches, epoch_end) -> Model:
        """Train one scikit-learn MLP from ``weights`` (see :meth:`Backend.fit`): one
        ``partial_fit`` per epoch over the rows in that epoch's mini-batch order."""
        X, y = data.X_train, data.y_train
        n = len(X)
        batch_size = min(config.batch_size, n)  # scikit-learn warns on a batch larger than n
        estimator = make_estimator(config, data.task, batch_size)
        classes = {} if data.task == REGRESSION else {"classes": np.arange(data.n_classes)}
        estimator.partial_fit(X[:batch_size], y[:batch_size], **classes)
        for (W, b), coef, intercept in zip(weights, estimator.coefs_, estimator.intercepts_, strict=True):
            coef[...] = W
            intercept[...] = b
        del estimator._optimizer
        net = SklearnNet(estimator, data.task)
        scale = 0.5 if data.task == REGRESSION else 1.0
        weighting = {}
        if config.l2 and n % batch_size:  # full weight decay on the short last batch
            weight = np.ones(n, dtype=np.float32)
            weight[-(n % batch_size):] = batch_size / (n % batch_size)
            weighting = {"sample_weight": weight}
        for epoch in range(1, config.epochs + 1):
            order = np.concatenate(batches(epoch))
            penalty_before = _penalty(estimator)
            estimator.partial_fit(X[order], y[order], **weighting)
            penalty = (penalty_before + _penalty(estimator)) / 2
            if epoch_end(net, (estimator.loss_ - penalty) / scale):
                break
        return net
