"""Conformance of the fast path (Optuna's private names, fcnn_opt.store.optuna_internals) with
Optuna's public API (``FCNN_OPT_PUBLIC_API=1``), on every storage.

The same seeded study (TPE with median pruning, TPE with Hyperband, a grid, TPE in population
batches) is run once each way on SQLite, PostgreSQL, MySQL/MariaDB and a journal file; the two must hold
identical trials: numbers, states, values, parameters in the order they were sampled, their
distributions, intermediate values, user and system attributes (all but the measured
``seconds_per_epoch``). The fast path's studies are then read back by Optuna's own ``optuna``
command, ``optuna.copy_study`` and optuna-dashboard's HTTP API.

CI runs this file with the whole suite on the newest Optuna of the tested range, then a second
time on the oldest (see .ci/run).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import optuna
import pytest
from conftest import cli_env

from fcnn_opt.store import optuna_internals as internals

pytestmark = pytest.mark.conformance

BASE_PARAMS = {"lib": "numpy", "epochs": 8, "lr": {"low": 1e-3, "high": 0.2, "log": True},
               "activation": ["relu", "tanh"], "optimizer": ["sgd", "adam"], "batch_size": [32, 64]}
WORKLOADS = {
    "tpe": ({"study": {"sampler": "tpe", "pruner": "median", "n_trials": 14, "seed": 5},
             "dataset": {"name": "circles", "n_points": 300},
             "params": {**BASE_PARAMS, "n_layers": {"low": 1, "high": 2},
                        "units": {"low": 2, "high": 8, "log": True, "per_layer": True}}}, 1),
    "grid": ({"study": {"sampler": "grid", "pruner": "none", "seed": 0},
              "dataset": {"name": "circles", "n_points": 300},
              "params": {"lib": "numpy", "epochs": [4, 6], "units": [2, 4], "activation": "relu",
                         "optimizer": "adam", "lr": 0.01, "batch_size": 100}}, 1),
    "hyperband": ({"study": {"sampler": "tpe", "pruner": "hyperband", "n_trials": 24, "seed": 3},
                   "dataset": {"name": "moons", "n_points": 300},
                   "params": {**BASE_PARAMS, "epochs": 45, "units": {"low": 2, "high": 16, "log": True}}}, 1),
    "population": ({"study": {"sampler": "tpe", "pruner": "median", "n_trials": 8, "seed": 7},
                    "dataset": {"name": "moons", "n_points": 300},
                    "params": {**BASE_PARAMS, "lib": "torch", "units": [2, 4, 8]}}, 4),
}
MEASURED = {"seconds_per_epoch"}  # differs from run to run by nature
ARTIFACTS: Path | None = None  # set per test: the artifact folder of the runs


@pytest.fixture(params=["sqlite", "journal", "postgres", "mysql"])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'conformance.db'}"
    if request.param == "journal":
        return f"journal:{tmp_path / 'conformance.log'}"
    return request.getfixturevalue({"postgres": "pg_url", "mysql": "mysql_url"}[request.param])


@pytest.fixture(autouse=True)
def artifact_folder(tmp_path):
    global ARTIFACTS
    ARTIFACTS = tmp_path / "artifacts"
    yield ARTIFACTS
    ARTIFACTS = None


@pytest.fixture
def path_switch(monkeypatch):
    """Run a function on the fast path or on the public one (FCNN_OPT_PUBLIC_API=1)."""

    def switch(public: bool) -> None:
        if public:
            monkeypatch.setenv(internals.PUBLIC_API_ENV, "1")
        else:
            monkeypatch.delenv(internals.PUBLIC_API_ENV, raising=False)
        internals.reset_decision()
        assert internals.fast_path() is (not public), internals.fallback_reason()

    yield switch
    monkeypatch.delenv(internals.PUBLIC_API_ENV, raising=False)
    internals.reset_decision()


def run(workload: str, url: str, name: str) -> None:
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    definition, batch = WORKLOADS[workload]
    spec = parse_spec({**definition, "study": {**definition["study"], "name": name}}, source=workload)
    run_study(spec, storage=url, progress=False, artifacts="complete", batch_trials=batch,
              artifact_dir=ARTIFACTS)


def snapshot(trials) -> list[dict]:
    """Everything a trial holds but its ids and times: its run file's contents instead of the
    file's (random) name, and its pictures by file name, each checked to be in the folder."""
    from fcnn_opt.store.artifact_files import RUN_FILE_ATTR, load_histories, load_weights

    rows = []
    for t in trials:
        user = {k: v for k, v in t.user_attrs.items() if k not in MEASURED and k != RUN_FILE_ATTR}
        if RUN_FILE_ATTR in t.user_attrs:
            user["run"] = ([(W.tolist(), b.tolist()) for W, b in load_weights(t)], load_histories(t))
        system, pictures = {}, []
        for key, value in t.system_attrs.items():
            if key.startswith("artifacts:"):
                meta = json.loads(value)
                assert (ARTIFACTS / meta["artifact_id"]).stat().st_size > 10_000
                pictures.append((meta["filename"], meta["mimetype"]))
            else:
                system[key] = value
        rows.append({"number": t.number, "state": t.state.name, "values": t.values,
                     "params": list(t.params.items()),
                     "distributions": [(k, optuna.distributions.distribution_to_json(d))
                                       for k, d in t.distributions.items()],
                     "intermediate": sorted(t.intermediate_values.items()),
                     "user_attrs": user, "system_attrs": system, "pictures": sorted(pictures)})
    return rows


def load(url: str, name: str):
    from fcnn_opt.store.storages import open_storage

    return optuna.load_study(study_name=name, storage=open_storage(url, heartbeat=False))


@pytest.mark.parametrize("workload", list(WORKLOADS))
def test_fast_and_public_paths_store_identical_trials(workload, storage_url, path_switch, tmp_path):
    fast_name, public_name, public_url = f"{workload}_fast", f"{workload}_public", storage_url
    if workload == "hyperband":  # its brackets hash the study's name: one name, two databases
        fast_name = public_name = workload
        public_url = f"sqlite:///{tmp_path / 'public.db'}"
    path_switch(public=False)
    run(workload, storage_url, fast_name)
    path_switch(public=True)
    run(workload, public_url, public_name)
    fast = snapshot(load(storage_url, fast_name).trials)
    public = snapshot(load(public_url, public_name).trials)
    assert len(fast) == len(public) > 0
    for mine, theirs in zip(fast, public, strict=True):
        assert mine == theirs, f"trial {mine['number']} differs"
    states = {t["state"] for t in fast}
    assert states <= {"COMPLETE", "PRUNED"}
    assert all(len(t["pictures"]) == (t["state"] == "COMPLETE") for t in fast)
    if workload == "tpe":  # the comparison covered pruned trials and per-layer widths
        assert states == {"COMPLETE", "PRUNED"}
        assert any(p == "units_l2" for t in fast for p, _ in t["params"])
    if workload == "hyperband":  # pruned at the rungs of more than one bracket (5, 15 epochs...)
        assert len({t["intermediate"][-1][0] for t in fast if t["state"] == "PRUNED"}) > 1


def _optuna_cli(command: str, url: str, name: str):
    storage = ["--storage", url[len("journal:"):], "--storage-class", "JournalFileBackend"] \
        if url.startswith("journal:") else ["--storage", url]
    entry = "import sys; from optuna.cli import main; sys.exit(main())"  # the `optuna` command
    done = subprocess.run([sys.executable, "-c", entry, command, "--study-name", name, *storage, "-f", "json"],
                          capture_output=True, text=True, env=cli_env(), timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _dashboard_trials(url: str, name: str) -> list[dict]:
    """The study's trials as optuna-dashboard's HTTP API serves them (a real server, a real GET)."""
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import optuna_dashboard

    from fcnn_opt.store.storages import open_storage

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    server = make_server("127.0.0.1", 0, optuna_dashboard.wsgi(open_storage(url, heartbeat=False)),
                         handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}/api/studies"
        with urllib.request.urlopen(base, timeout=60) as response:
            studies = json.load(response)["study_summaries"]
        study_id = next(s["study_id"] for s in studies if s["study_name"] == name)
        with urllib.request.urlopen(f"{base}/{study_id}?after=0", timeout=60) as response:
            return json.load(response)["trials"]
    finally:
        server.shutdown()


def test_fast_path_studies_read_back_through_optunas_own_tools(storage_url, path_switch):
    path_switch(public=False)
    run("tpe", storage_url, "readback")
    study = load(storage_url, "readback")
    ours = {t.number: t for t in study.trials}

    # The optuna command line.
    listed = _optuna_cli("trials", storage_url, "readback")
    assert [row["number"] for row in listed] == sorted(ours)
    for row in listed:
        trial = ours[row["number"]]
        assert row["state"] == trial.state.name
        assert row["params"] == trial.params
        assert row["value"] == pytest.approx(trial.value)
        assert row["user_attrs"]["run_file"] == trial.user_attrs["run_file"]
    best = _optuna_cli("best-trial", storage_url, "readback")
    assert best["number"] == study.best_trial.number and best["value"] == pytest.approx(study.best_value)

    # optuna.copy_study: everything but the ids and times arrives unchanged.
    copy = optuna.storages.InMemoryStorage()
    optuna.copy_study(from_study_name="readback", from_storage=open_storage_for(storage_url),
                      to_storage=copy, to_study_name="copied")
    assert snapshot(optuna.load_study(study_name="copied", storage=copy).trials) == snapshot(study.trials)

    # optuna-dashboard's HTTP API.
    served = {t["number"]: t for t in _dashboard_trials(storage_url, "readback")}
    assert sorted(served) == sorted(ours)
    for number, row in served.items():
        trial = ours[number]
        assert row["state"] == trial.state.name.capitalize()
        assert {p["name"]: p["param_external_value"] for p in row["params"]} == \
            {k: str(v) for k, v in trial.params.items()}
        steps = {v["step"]: v["value"] for v in row["intermediate_values"]}
        assert steps.keys() == trial.intermediate_values.keys()
        assert all(math.isclose(steps[s], v) for s, v in trial.intermediate_values.items())
        assert {a["key"] for a in row["user_attrs"]} == set(trial.user_attrs)


def test_complete_trials_read_alone_are_the_public_paths(storage_url, path_switch):
    """``complete_trials`` (what refit, load_model and evaluate read) queries the complete
    trials alone on a database: the same trials, everything in them, as the public path's
    ``study.get_trials(states=...)``."""
    path_switch(public=False)
    run("tpe", storage_url, "complete")
    study = load(storage_url, "complete")
    by_number = lambda trials: sorted(trials, key=lambda t: t.number)  # noqa: E731
    fast = by_number(internals.complete_trials(study))
    assert fast and len(fast) < len(study.trials)  # the pruned trials are left out
    expected = snapshot([t for t in study.trials if t.state.name == "COMPLETE"])
    assert snapshot(fast) == expected
    path_switch(public=True)
    assert snapshot(by_number(internals.complete_trials(load(storage_url, "complete")))) == expected


def open_storage_for(url: str):
    from fcnn_opt.store.storages import open_storage

    return open_storage(url, heartbeat=False)


def test_the_fast_path_is_on_by_default_inside_the_tested_range(monkeypatch):
    """In the tested range the boundary takes the fast path (so the conformance tests above
    compare two different paths), and it names the range pyproject.toml states."""
    import tomllib
    from pathlib import Path

    monkeypatch.delenv(internals.PUBLIC_API_ENV, raising=False)
    internals.reset_decision()
    try:
        assert internals.fast_path(), internals.fallback_reason()
        assert internals.missing_private_names() == []
    finally:
        internals.reset_decision()
    pyproject = tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())
    assert f"optuna{internals.range_text()}" in pyproject["project"]["dependencies"]


def test_compiled_tpe_tails_give_optunas_own_bits(path_switch):
    """TPE's log of the normal distribution function, compiled, equals Optuna's own bit for bit,
    in each of its three branches (above 6, down to -20, the series below) and at their edges,
    and is Optuna's again after the block."""
    import numba  # noqa: F401  (loaded, as the NumPy backend's compiled loop loads it)
    import numpy as np
    from optuna.samplers._tpe import _truncnorm

    path_switch(public=False)
    rng = np.random.default_rng(0)
    a = np.concatenate([np.linspace(-45.0, 12.0, 57_001), rng.normal(0.0, 4.0, 50_000),
                        rng.uniform(-1.0, 1.0, 20_000), rng.uniform(-1e4, -20.0, 30_000), [-20.0, -19.999999, -20.000001, 6.0, 6.000001, 0.0, -0.0,
                                                          np.inf, -np.inf, np.nan]]).reshape(3, -1)  # any shape
    original = _truncnorm._log_ndtr
    expected = original(a)
    with internals.compiled_tpe_tails():
        assert _truncnorm._log_ndtr is not original
        with internals.compiled_tpe_tails():  # nested: the same swap, undone once
            got = _truncnorm._log_ndtr(a)
        assert _truncnorm._log_ndtr is not original
    assert _truncnorm._log_ndtr is original
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)  # NaN where NaN, every other value to the bit


def test_compiled_tpe_tails_stay_off_on_the_public_path_and_without_numba_loaded(path_switch, monkeypatch):
    import sys

    import numba  # noqa: F401
    from optuna.samplers._tpe import _truncnorm

    original = _truncnorm._log_ndtr
    path_switch(public=True)
    with internals.compiled_tpe_tails():
        assert _truncnorm._log_ndtr is original
    path_switch(public=False)
    monkeypatch.delitem(sys.modules, "numba")  # another backend: Numba never imported
    with internals.compiled_tpe_tails():
        assert _truncnorm._log_ndtr is original
