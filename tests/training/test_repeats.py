"""Seed repeats: R networks of one set of hyperparameters, reporting their mean."""

from __future__ import annotations

import numpy as np
import pytest

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.training.repeats import MeanOfRepeats, combine, repeat_configs, train_repeats


@pytest.fixture(scope="module")
def data():
    return make_dataset("circles", n_points=400, seed=0)


def test_repeat_zero_is_the_run_without_repeats_and_the_others_change_only_the_seed():
    config = TrainConfig(dims=(4,), seed=7)
    configs = repeat_configs(config, 3)
    assert configs[0] is config
    assert [c.seed for c in configs] == [7, 8, 9]
    assert all(c.replace(seed=7) == config for c in configs)


@pytest.mark.parametrize("order", ["together", "one_after_another"])
def test_the_mean_is_reported_once_every_repeat_reached_the_epoch(order):
    seen = []
    watch = MeanOfRepeats(3, lambda epoch, m: seen.append((epoch, m["val_loss"])))
    values = {(r, e): 1.0 + r + 0.1 * e for r in range(3) for e in (1, 2)}
    calls = ([(r, e) for e in (1, 2) for r in range(3)] if order == "together"
             else [(r, e) for r in range(3) for e in (1, 2)])
    for r, e in calls:
        assert watch.member(r, e, {"train_loss": 1.0, "val_loss": values[r, e]}) is False
    assert [epoch for epoch, _ in seen] == [1, 2]
    assert [value for _, value in seen] == pytest.approx([2.1, 2.2])


def test_when_the_mean_says_stop_every_repeat_stops():
    watch = MeanOfRepeats(2, lambda epoch, m: epoch == 2)
    assert not watch.member(0, 1, {"train_loss": 1.0, "val_loss": 1.0})
    assert not watch.member(1, 1, {"train_loss": 1.0, "val_loss": 1.0})
    assert not watch.member(0, 2, {"train_loss": 1.0, "val_loss": 1.0})
    assert watch.member(1, 2, {"train_loss": 1.0, "val_loss": 1.0})
    assert watch.member(0, 3, {"train_loss": 1.0, "val_loss": 1.0}) and watch.stopped_at == 2


@pytest.mark.parametrize("dims", [(8,), ()], ids=["population_engine", "one_after_another"])
def test_train_repeats_keeps_every_run_and_their_mean(data, dims):
    """With a hidden layer the repeats train together in the population engine; a linear
    model trains them one after another. Either way the combined histories are the means."""
    config = TrainConfig(dims=dims, epochs=6, seed=2)
    seen = []
    result = train_repeats(data, config, 3, on_epoch=lambda e, m: seen.append((e, m["val_loss"])))
    assert len(result.repeats) == 3 and [r.config.seed for r in result.repeats] == [2, 3, 4]
    runs = np.array([r.val_loss for r in result.repeats])
    assert runs.shape == (3, 6) and len({tuple(row) for row in runs}) == 3  # the seeds differ
    assert result.val_loss == pytest.approx(runs.mean(axis=0).tolist())
    assert [v for _, v in seen] == pytest.approx(result.val_loss)
    assert result.model is result.repeats[0].model
    # Repeat r is the network a plain run with seed + r trains (to the engines' rounding).
    alone = train(data, config.replace(seed=3))
    assert result.repeats[1].val_loss == pytest.approx(alone.val_loss, rel=1e-4)


def test_a_pruned_mean_stops_all_repeats_at_the_same_epoch(data):
    config = TrainConfig(dims=(4,), epochs=20)
    result = train_repeats(data, config, 4, on_epoch=lambda epoch, m: epoch >= 3)
    assert result.epochs_run == 3 and all(r.epochs_run == 3 for r in result.repeats)


def test_a_diverged_repeat_makes_the_mean_not_finite(data):
    runs = [train(data, TrainConfig(dims=(4,), epochs=3, seed=s)) for s in range(2)]
    runs[1].val_loss[-1] = float("nan")
    assert not np.isfinite(combine(runs).val_loss[-1])
