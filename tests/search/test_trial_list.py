"""The ledger's trial list, read incrementally (fcnn_opt.search.ledger.TrialList): after any mix of
this and another worker's writes it holds what a full read holds, and decides as it does."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from fcnn_opt.search import ledger
from fcnn_opt.search.ledger import Admission, Counts


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_trial_list_read_incrementally_equals_a_full_read(storage, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}" if storage == "sqlite" else None
    if url is None:
        from fcnn_opt.store.storages import open_storage

        url = open_storage(f"journal:{tmp_path / 's.log'}")
    here = optuna.create_study(study_name="s", storage=url, sampler=optuna.samplers.RandomSampler(seed=0))
    other = optuna.load_study(study_name="s", storage=url, sampler=optuna.samplers.RandomSampler(seed=1))
    trials = ledger.TrialList(here)
    steps = [
        lambda: here.enqueue_trial({"x": 0.5}),  # queued (WAITING)
        lambda: other.ask(),  # claims the queued one: WAITING -> RUNNING
        lambda: other.tell(0, 1.0),
        lambda: [here.ask() for _ in range(3)],
        lambda: here.tell(1, state=TrialState.PRUNED),
        lambda: ledger.skip(here, optuna.Trial(here, ledger.trial_id(here, trials.by_number[2])), "surplus: test"),
        lambda: other.tell(3, state=TrialState.FAIL),
        lambda: other.enqueue_trial({"x": 0.25}),
        lambda: [other.ask() for _ in range(2)],
        lambda: here.tell(5, 2.0),
    ]
    for step in steps:
        step()
        changed = trials.read()
        full = ledger.rows(here)
        assert trials.rows() == full
        assert trials.counts == Counts.from_rows(full)
        assert [r.number for r in trials.waiting()] == [r.number for r in full if r.state.name == "WAITING"]
        assert [r.number for r in trials.running()] == [r.number for r in full if r.state.name == "RUNNING"]
        assert set(r.number for r in changed) <= {r.number for r in full}
        admission = Admission(full)
        for row in full:
            for budget in range(1, len(full) + 1):
                verdict = admission.refusal(row.number, budget, per_point=False)
                assert trials.refusal(row.number, budget, per_point=False) == verdict, (row.number, budget)
                if trials.surely_admitted(row.number, budget):  # then no read is needed to admit it
                    assert verdict is None, (row.number, budget)
    finished = [r.number for r in trials.finished]
    assert sorted(finished) == [r.number for r in ledger.rows(here) if r.state.name in ("COMPLETE", "PRUNED")]
    assert trials.read() == []  # nothing changed: nothing new
