"""A run that reaches its last epoch completes: pruning it there would save nothing."""

from __future__ import annotations

import time

import optuna
import pytest
from conftest import run_cli, write_toml

from fcnn_opt.search.objective import EpochWatch


class AlwaysPrune:
    """A reporter whose pruner stops every trial at every epoch it is asked about."""

    def __init__(self):
        self.asked, self.recorded = [], []

    def report(self, value, epoch):
        self.asked.append(epoch)
        return True

    def record(self, value, epoch):
        self.recorded.append(epoch)


def test_the_last_epoch_is_recorded_without_asking_the_pruner_or_the_clock():
    early = AlwaysPrune()
    watch = EpochWatch(early, "val_loss", last_epoch=5)
    assert watch(2, {"val_loss": 0.5}) is True and watch.pruned_at == 2 and early.asked == [2]
    last = AlwaysPrune()
    watch = EpochWatch(last, "val_loss", stop_at=time.perf_counter() - 1, last_epoch=5)
    assert watch(5, {"val_loss": 0.5}) is False
    assert watch.pruned_at is None and not watch.out_of_time
    assert last.asked == [] and last.recorded == [5]  # its value still reaches the trial
    late = EpochWatch(AlwaysPrune(), "val_loss", stop_at=time.perf_counter() - 1, last_epoch=5)
    late.reporter.report = lambda value, epoch: False
    assert late(4, {"val_loss": 0.5}) is True and late.out_of_time  # the clock still stops it before
    assert EpochWatch(AlwaysPrune(), "val_loss", last_epoch=5)(5, {"val_loss": float("nan")}) is True


STUDY = """
[study]
name = "rungs"
sampler = "random"
pruner = "sha"
n_trials = 18
seed = 0
[dataset]
name = "moons"
n_points = 200
[params]
epochs = { max = 9, min = 1 }
lr = { low = 1e-4, high = 0.3, log = true }
units = [2, 4, 8, 16]
"""


@pytest.mark.parametrize("public_api", [False, True], ids=["mirror", "public API"])
def test_successive_halving_never_prunes_a_trial_at_its_last_epoch(tmp_path, public_api):
    """Rungs at 1, 3 and 9 epochs, 9 the last: Optuna's pruner would judge the trials that
    reach it there (and prune two in three). They complete instead, with every epoch's value,
    on the pruning mirror and through Optuna's public API alike."""
    cfg = write_toml(tmp_path / "rungs.toml", STUDY)
    url = f"sqlite:///{tmp_path / 'r.db'}"
    env = {"FCNN_OPT_PUBLIC_API": "1"} if public_api else {}
    run = run_cli("study", "--config", cfg, "--storage", url, "--no-progress", "--no-artifacts", cwd=tmp_path, **env)
    assert run.returncode == 0, run.stderr
    trials = optuna.load_study(study_name="rungs", storage=url).trials
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert pruned and all(max(t.intermediate_values) in (1, 3) for t in pruned)  # the pruner still works
    assert len(complete) >= 3  # every trial promoted past the rung at 3
    assert all(sorted(t.intermediate_values) == list(range(1, 10)) for t in complete)
    assert all(t.value == t.intermediate_values[9] for t in complete)
