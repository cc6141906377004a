"""``fcnn_opt.load_model``: a stored trial's network back as a NumPy model, computing what it
computed when it was trained."""

from __future__ import annotations

import numpy as np
import pytest

import fcnn_opt
from fcnn_opt.search.models import ModelError


def test_the_best_model_reproduces_its_validation_loss_and_accuracy(small_study):
    """The loaded network's loss and accuracy on the study's validation points equal the last
    values the trial reported while training (to float32 rounding)."""
    from fcnn_opt.training.backends._base import accuracy, loss

    url, study = small_study
    model = fcnn_opt.load_model(url, "small")
    best = study.best_trial
    assert (model.trial_number, model.value, model.task) == (best.number, best.value, "multiclass")
    data = fcnn_opt.make_dataset(**study.user_attrs["dataset"])
    proba = model.predict_proba(data.X_val)
    assert proba.shape == (len(data.X_val), 4) and np.allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert loss(data.task, proba, data.y_val) == pytest.approx(best.value, rel=1e-5)
    final = best.intermediate_values[max(best.intermediate_values)]
    assert loss(data.task, proba, data.y_val) == pytest.approx(final, rel=1e-5)
    assert np.array_equal(model.predict(data.X_val), proba.argmax(axis=1))
    assert accuracy(data.task, proba, data.y_val) > 0.25


def test_bad_requests_say_what_is_wrong(small_study):
    url, study = small_study
    pruned = next(t.number for t in study.trials if t.state.name == "PRUNED")
    with pytest.raises(ModelError, match="no trial 999"):
        fcnn_opt.load_model(url, "small", trial=999)
    with pytest.raises(ModelError, match="not complete; pass allow_partial=True"):
        fcnn_opt.load_model(url, "small", trial=pruned)
    assert fcnn_opt.load_model(url, "small", trial=pruned, allow_partial=True).trial_number == pruned
    with pytest.raises(ModelError, match="No study named 'nope'"):
        fcnn_opt.load_model(url, "nope")


@pytest.mark.parametrize("name", ["xor", "polynom"])
def test_binary_and_regression_outputs(name):
    from fcnn_opt.search.models import TrainedModel

    data = fcnn_opt.make_dataset(name, n_points=300)
    result = fcnn_opt.train(data, fcnn_opt.TrainConfig(dims=(8,), epochs=5))
    model = TrainedModel(result.weights(), "relu", data.task, "s", 0, None)
    expected = np.asarray(result.predict(data.X_val), dtype=np.float64).reshape(len(data.X_val), -1)[:, 0]
    assert np.allclose(model.output(data.X_val), expected, atol=1e-6)
    if data.task == "binary":
        assert model.predict_proba(data.X_val).shape == (len(data.X_val), 2)
        assert set(np.unique(model.predict(data.X_val))) <= {0, 1}
    else:
        assert np.allclose(model.predict(data.X_val), expected, atol=1e-6)
        with pytest.raises(ModelError, match="regresses"):
            model.predict_proba(data.X_val)
