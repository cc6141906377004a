"""The pruning mirror's TPE reads an index of its trials kept as they finish
(fcnn_opt.store.mirror_index, fcnn_opt.store.optuna_internals.indexed_tpe): the index must equal
one rebuilt from scratch, whoever wrote the trials, and the draws must be Optuna's own, bit for bit.
"""

from __future__ import annotations

import math

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from fcnn_opt.search import ledger
from fcnn_opt.search.mirror import PruningMirror
from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.mirror_index import TrialIndex, logged_memory_storage

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture(autouse=True)
def quiet():
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    yield
    optuna.logging.set_verbosity(level)


def mixed_space():
    """A search space with every kind of dimension TPE models: a choice, a log-scale float,
    integers on a linear and a log scale, a float and a stepped float."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    return {"a": CategoricalDistribution(["x", "y", "z"]), "lr": FloatDistribution(1e-4, 1e-1, log=True),
            "n": IntDistribution(1, 3), "u": IntDistribution(2, 64, log=True), "v": FloatDistribution(-1, 1),
            "q": FloatDistribution(0, 1, step=0.1)}


def mixed_observations(rng, n: int) -> dict:
    """``n`` trials' values of :func:`mixed_space`, as TPE's observation arrays (ties on the integers)."""
    return {"a": rng.randint(0, 3, n), "lr": np.exp(rng.uniform(np.log(1e-4), np.log(1e-1), n)),
            "n": rng.randint(1, 4, n).astype(float), "u": rng.randint(2, 65, n).astype(float),
            "v": rng.uniform(-1, 1, n), "q": rng.randint(0, 11, n) / 10}


def suggest(trial) -> float:
    """W2's space in small: a log float, a depth with per-layer widths, two categoricals."""
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    widths = [trial.suggest_int(f"units_l{i + 1}", 2, 64, log=True) for i in range(trial.suggest_int("n_layers", 1, 3))]
    activation = trial.suggest_categorical("activation", ["relu", "tanh", "sigmoid"])
    batch = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    widths_term = sum(math.log2(w) for w in widths) / 10
    return (math.log10(lr) + 2.5) ** 2 + widths_term + (activation == "tanh") / 3 + batch / 1e3


def objective(trial) -> float:
    """Complete, pruned (with and without epochs, a NaN one) and failed trials."""
    value = suggest(trial)
    for step in range(trial.number % 4):
        trial.report(math.nan if trial.number % 9 == 2 else value + 3 - step, step)
    if trial.number % 7 == 3:
        raise optuna.TrialPruned()
    if trial.number % 11 == 5:
        raise ValueError("a failed trial")
    return value


def tpe(liar: bool, indexed: bool) -> optuna.samplers.TPESampler:
    """The mirror's TPE (fcnn_opt's settings), indexed or Optuna's own."""
    sampler = optuna.samplers.TPESampler(seed=3, multivariate=True, group=True, constant_liar=liar)
    if indexed:
        assert internals.indexed_tpe(sampler)
    return sampler


def trials_of(study: optuna.Study) -> list:
    return [(t.number, t.state, t.values, t.params) for t in study.trials]


def assert_index_is_rebuilt(study: optuna.Study) -> None:
    index = study._storage.index(study._study_id, study.direction.name == "MAXIMIZE")
    assert index.same_as(TrialIndex.rebuilt(study))


@pytest.mark.parametrize("liar", [False, True])
@pytest.mark.parametrize("direction", ["minimize", "maximize"])
def test_the_indexed_tpe_draws_what_optunas_draws(liar, direction):
    """Seeded studies on a logged in-memory storage, one with Optuna's TPE and one with the
    indexed one, hold the same trials: complete, pruned and failed ones, trials running while
    others draw (the constant liar counts them), and trials another worker added, out of order."""
    if not internals.fast_path():
        pytest.skip("no indexed TPE on the public path")
    studies = [optuna.create_study(storage=logged_memory_storage(), sampler=tpe(liar, indexed), direction=direction)
               for indexed in (False, True)]
    for study in studies:
        study.optimize(objective, n_trials=40, catch=(ValueError,))
        held = [study.ask() for _ in range(3)]  # running while the next ones draw
        for trial in held:
            suggest(trial)
        study.optimize(objective, n_trials=15, catch=(ValueError,))
        for trial in reversed(held):  # they end after later trials
            study.tell(trial, suggest(trial))
        names = ("lr", "n_layers", "units_l1", "activation", "batch_size")
        other = optuna.trial.create_trial(params={"lr": 0.003, "n_layers": 1, "units_l1": 9, "activation": "relu",
                                                  "batch_size": 64},
                                          distributions={k: held[0].distributions[k] for k in names}, value=0.01)
        study.add_trial(other)  # another worker's trial, as the mirror copies it
        study.optimize(objective, n_trials=10, catch=(ValueError,))
    assert trials_of(studies[0]) == trials_of(studies[1])
    assert type(studies[1].sampler).__name__ == "IndexedTPESampler"
    assert_index_is_rebuilt(studies[1])


def test_the_index_stays_equal_to_a_rebuild_while_trials_finish_in_any_order():
    study = optuna.create_study(storage=logged_memory_storage(), sampler=optuna.samplers.RandomSampler(seed=0))
    running = []
    for i in range(30):
        trial = study.ask()
        suggest(trial)
        running.append(trial)
        if i % 3 == 2:  # finish the middle one of the three: numbers arrive out of order
            trial = running.pop(len(running) // 2)
            study.tell(trial, state=TrialState.PRUNED if i % 2 else TrialState.COMPLETE,
                       values=None if i % 2 else [float(i)])
        assert_index_is_rebuilt(study)
    index = study._storage.index(study._study_id, False)
    assert list(index.numbers) == sorted(index.numbers)
    assert [t for t in study._storage.running[study._study_id]] == [t._trial_id for t in running]


def test_the_split_is_optunas():
    """Below: the best complete trials by value (ties by number), then the pruned ones
    deepest and best first, NaN last; Optuna's _split_trials on the same trials."""
    from optuna.samplers._tpe.sampler import _split_trials

    rng = np.random.RandomState(0)
    for direction in ("minimize", "maximize"):
        study = optuna.create_study(storage=logged_memory_storage(), direction=direction)
        for i in range(60):
            trial = study.ask()
            trial.suggest_float("x", 0, 1)
            for step in range(rng.randint(0, 4)):
                trial.report(float(rng.choice([0.5, 1.0, math.nan])), step)
            if i % 3:
                study.tell(trial, float(rng.choice([0.1, 0.2, 0.3])))  # many ties
            else:
                study.tell(trial, state=TrialState.PRUNED)
        index = study._storage.index(study._study_id, direction == "maximize")
        trials = study.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))
        for n_below in (0, 1, 5, 25, 40, 60):
            try:
                below, _ = _split_trials(study, trials, n_below)
            except TypeError:  # Optuna 4.x takes whether constraints are on
                below, _ = _split_trials(study, trials, n_below, False)
            assert list(index.numbers[index.split(n_below)]) == [t.number for t in below], (direction, n_below)


def test_the_compiled_pick_is_optunas_or_defers():
    """The compiled density of the above estimator picks Optuna's candidate, or defers (None)
    where candidates tie (or on Optuna 4); never another one."""
    pytest.importorskip("numba")
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    if not internals.fast_path():
        pytest.skip("the public path")
    from fcnn_opt.store._tpe_compiled import mixture_terms_ready

    mixture_terms_ready(wait=True)
    space = mixed_space()
    parameters = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters
    rng = np.random.RandomState(1)
    picked = deferred = 0
    for n in (0, 3, 30, 300, 3000):
        seen = mixed_observations(rng, n)
        below = _ParzenEstimator({k: v[:25] for k, v in seen.items()}, space, parameters)
        above = _ParzenEstimator(seen, space, parameters)
        for _ in range(10):
            samples = below.sample(rng, 24)
            exact = int(np.argmax(below.log_pdf(samples) - above.log_pdf(samples)))
            pick = internals.fast_choice(below, above, samples)
            if pick is None:
                deferred += 1
                continue
            picked += 1
            assert pick == exact, n
    if internals.optuna_version() < (5, 0):  # Optuna 4 lays its mixture out otherwise: its own arithmetic
        assert picked == 0
    else:
        assert picked >= 20 and deferred >= 10  # below and above are one estimator up to n = 25: all tie
    from fcnn_opt.store._tpe_compiled import mixture_terms

    assert len(mixture_terms.signatures) == 1  # compiled beforehand for the very types the picks passed


def test_the_estimator_built_here_is_optunas_bit_for_bit():
    """On Optuna 5 the mirror's TPE builds its Parzen estimators itself (one sort a parameter
    instead of two): every array equals Optuna's own, ties, log scales, steps, choices, empty
    and tiny observation sets, each setting of the parameters; on Optuna 4 it builds none."""
    from optuna.distributions import IntDistribution
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
    from optuna.samplers._tpe.sampler import default_weights

    if internals.optuna_version() < (5, 0):
        assert internals._own_estimator_checked() is False
        return
    space = {**mixed_space(), "s": IntDistribution(0, 10, step=2)}
    rng = np.random.RandomState(3)
    compared = 0
    for prior_weight, clip, endpoints, weights in ((1.0, True, False, default_weights),
                                                   (0.0, False, True, lambda n: np.arange(1.0, n + 1)),
                                                   (2.5, True, True, default_weights)):
        parameters = _ParzenEstimatorParameters(prior_weight=prior_weight, consider_magic_clip=clip,
                                                consider_endpoints=endpoints, weights=weights, multivariate=True)
        for n in (0, 1, 2, 3, 30, 300, 3000):
            seen = {**mixed_observations(rng, n), "v": rng.choice([-1.0, 0.0, 0.25, 1.0], n),  # ties on floats too
                    "s": 2.0 * rng.randint(0, 6, n)}
            mine = internals._optuna5_estimator(seen, space, parameters)
            assert internals._same_mixture(mine, _ParzenEstimator(seen, space, parameters)), (prior_weight, n)
            compared += 1
            built = internals.parzen_estimator(_ParzenEstimator, seen, space, parameters)
            assert internals._same_mixture(built, mine)
    assert compared == 21 and internals._own_estimator_checked() is True
    # a tie's order decides which kernels get the wide widths: a scatter of a different sort would differ
    tied = {"n": np.array([2.0] * 40 + [1.0] * 40 + [3.0] * 40)}
    mine = internals._optuna5_estimator(tied, {"n": IntDistribution(1, 3)}, parameters)
    assert internals._same_mixture(mine, _ParzenEstimator(tied, {"n": IntDistribution(1, 3)}, parameters))


def test_the_compiled_density_is_optunas_to_rounding():
    """The compiled mixture density equals Optuna's ``log_pdf`` to 1e-12 (relative), samples
    inside and outside the bounds of every kind of dimension."""
    pytest.importorskip("numba")
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator

    if internals.optuna_version() < (5, 0):
        pytest.skip("Optuna 4 lays its mixture out otherwise: its own arithmetic decides")
    space = mixed_space()
    parameters = optuna.samplers.TPESampler(seed=0)._parzen_estimator_parameters
    rng = np.random.RandomState(5)
    for n in (0, 5, 400):
        seen = mixed_observations(rng, n)
        estimator = _ParzenEstimator(seen, space, parameters)
        samples = estimator.sample(rng, 24)
        samples["v"][:3] = [-1.5, 1.5, 1.0]  # outside the bounds, and on one
        exact = estimator.log_pdf(samples)
        compiled = internals._compiled_log_pdf(estimator, samples)
        finite = np.isfinite(exact)
        assert np.array_equal(finite, np.isfinite(compiled)) and not finite[:2].any() and finite.sum() >= 20
        np.testing.assert_allclose(compiled[finite], exact[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.filterwarnings("ignore:divide by zero encountered in log")  # Optuna's log of the prior's weight 0
def test_far_cells_left_out_defer_where_they_could_count():
    """The compiled density leaves out discrete cells more than 20 widths from a kernel; where
    every kernel is that far from a sample (no prior kernel, all trials at one end), what was
    left out is all there is: the density is NaN there and the pick goes to Optuna's own
    evaluation, never a wrong candidate."""
    pytest.importorskip("numba")
    from optuna.distributions import IntDistribution
    from optuna.samplers._tpe.parzen_estimator import _ParzenEstimator, _ParzenEstimatorParameters
    from optuna.samplers._tpe.sampler import default_weights

    if internals.optuna_version() < (5, 0) or not internals._compiled_tails_on():
        pytest.skip("the compiled density runs on Optuna 5 with Numba loaded")
    space = {"u": IntDistribution(2, 64, log=True)}
    parameters = _ParzenEstimatorParameters(prior_weight=0.0, consider_magic_clip=True, consider_endpoints=False,
                                            weights=default_weights, multivariate=True)
    above = _ParzenEstimator({"u": np.full(400, 2.0)}, space, parameters)
    below = _ParzenEstimator({"u": np.array([60.0, 62.0, 64.0] * 3)}, space, parameters)
    samples = {"u": np.array([2.0, 3.0, 64.0, 60.0])}
    exact = above.log_pdf(samples)
    compiled = internals._compiled_log_pdf(above, samples)
    assert np.all(np.isfinite(exact))
    np.testing.assert_allclose(compiled[:2], exact[:2], rtol=1e-12, atol=1e-12)  # near the kernels: computed
    assert np.all(np.isnan(compiled[2:]))  # only far cells: left out, so NaN
    samples = below.sample(np.random.RandomState(0), 24)
    pick = internals.fast_choice(below, above, samples)
    assert pick is None or pick == int(np.argmax(below.log_pdf(samples) - above.log_pdf(samples)))


def test_two_workers_mirrors_hold_what_a_rebuild_holds(sqlite_url):
    """Two mirrors of one SQLite study, each drawing and finishing trials and reading the
    other's through its trial list: each copy's index equals a rebuild of that copy, and
    each trial list equals a full read of the study."""
    if not internals.fast_path():
        pytest.skip("no mirror on the public path")
    optuna.create_study(study_name="s", storage=sqlite_url)
    studies = [optuna.load_study(study_name="s", storage=sqlite_url, sampler=optuna.samplers.TPESampler(
        seed=seed, multivariate=True, group=True, constant_liar=False)) for seed in (0, 1)]
    mirrors = [PruningMirror(study, "tpe", "none") for study in studies]
    lists = [ledger.TrialList(study) for study in studies]
    for turn in range(36):
        me = turn % 2 if turn < 24 else 0  # the second worker stops: the first reads its last trials
        mirror, trials = mirrors[me], lists[me]
        trials.read()
        mirror.refresh(trials)
        [trial] = mirror.ask(suggest)
        reporter = mirror.reporter(trial)
        value = suggest(reporter.params_trial)
        state = TrialState.PRUNED if turn % 5 == 4 else TrialState.COMPLETE
        reporter.record(value + 1, 0)
        reporter.flush()
        studies[me].tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        reporter.close(state, value)
        for mirror_, trials_ in zip(mirrors, lists, strict=True):
            trials_.read()
            assert trials_.rows() == ledger.rows(studies[0])
            assert_index_is_rebuilt(mirror_.copy)
    for mirror, trials in zip(mirrors, lists, strict=True):
        mirror.refresh(trials)
        assert len(mirror.copy.get_trials(states=(TrialState.COMPLETE, TrialState.PRUNED))) == 36
        assert_index_is_rebuilt(mirror.copy)
