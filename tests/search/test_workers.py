"""Many workers on one study, against the real PostgreSQL server (and MariaDB, SQLite, journal).

Each test has a database of its own (the ``pg_url`` fixture). Nothing is mocked: workers are
real ``python -m fcnn_opt`` processes, a crash is a real ``kill -9``, a dropped connection is
the server terminating the worker's backend.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import optuna
import pytest
from conftest import (
    FAST_HEARTBEAT,
    FAST_TPE,
    cli_env,
    gate_env,
    grid_study,
    held_trials,
    history,
    open_gate,
    run_cli,
    write_toml,
)

# Twelve grid points for several workers to share.
GRID12 = grid_study("grid12", epochs=500, units=[2, 3, 4, 6], lr=[0.003, 0.03, 0.3])

# A worker killed mid-trial: the test holds the victim's trial at a gate (tests/gate/).
LONG = """
[study]
name = "long"
sampler = "{sampler}"
pruner = "none"
n_trials = 3
[dataset]
name = "circles"
n_points = 400
[params]
epochs = 50
units = [4, 8, 16]
"""


_STORAGES: dict = {}


def storage(url: str):
    from fcnn_opt.store.storages import open_storage

    if url not in _STORAGES:
        _STORAGES[url] = open_storage(url, heartbeat=False)
    return _STORAGES[url]


def trials(url: str, name: str) -> list:
    """The study's trials; none while it does not exist yet."""
    try:
        return optuna.load_study(study_name=name, storage=storage(url)).trials
    except KeyError:
        return []


def by_state(url: str, name: str) -> Counter:
    return Counter(t.state.name for t in trials(url, name))


def popen_cli(*args, cwd, **env) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fcnn_opt", *map(str, args)], cwd=cwd, env=cli_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 60.0, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {condition}")


def held_by_workers(gate, count: int, proc=None) -> None:
    """Wait until ``count`` different processes hold a trial at the gate, then let all go: every
    one of them has claimed a trial, however the machine schedules their starts."""
    def processes():
        return {f.name.split("-")[1] for f in gate.glob("held-*")}

    while len(processes()) < count:
        held_trials(gate, len(list(gate.glob("held-*"))) + 1, proc)
    open_gate(gate)


def grid_points(url: str, name: str, state: str = "COMPLETE") -> Counter:
    return Counter(tuple(sorted(t.params.items())) for t in trials(url, name) if t.state.name == state)


@pytest.mark.postgres
def test_four_workers_run_each_grid_point_exactly_once(tmp_path, pg_url):
    config = write_toml(tmp_path / "grid.toml", GRID12)
    created = run_cli("study", "--config", config, "--storage", pg_url, "--create-only", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert "12 queued" in created.stdout
    # A second process queueing the same grid at the same moment: every point is queued twice.
    study = optuna.load_study(study_name="grid12", storage=storage(pg_url))
    for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,)):
        study.enqueue_trial(t.system_attrs["fixed_params"], skip_if_exists=False)
    gate = tmp_path / "gate"
    proc = popen_cli("study", "--config", config, "--storage", pg_url, "--workers", 4, "--no-progress",
                     "--no-artifacts", cwd=tmp_path, **gate_env(gate))
    held_by_workers(gate, 2, proc)  # so more than one worker runs points, on any machine
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    points = grid_points(pg_url, "grid12")
    assert len(points) == 12 and set(points.values()) == {1}, points
    everything = trials(pg_url, "grid12")
    assert len(everything) == 24
    duplicates = [t for t in everything if t.state.name == "FAIL"]
    assert len(duplicates) == 12
    assert all(t.user_attrs["fail_reason"].startswith("duplicate") and "epochs_run" not in t.user_attrs
               for t in duplicates)
    assert len({t.user_attrs["worker"] for t in everything if t.state.name == "COMPLETE"}) > 1
    assert "12 complete, 0 pruned, 0 failed, 12 skipped" in out


@pytest.mark.postgres
def test_four_workers_share_the_budget_exactly(tmp_path, pg_url):
    """The commands of docs/distributed.md: create the study once, then start workers."""
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=24, epochs=600))  # every worker gets some
    created = run_cli("study", "--config", config, "--storage", pg_url, "--create-only", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    assert f"python -m fcnn_opt worker --storage {pg_url} --study-name fast" in created.stdout
    gate = tmp_path / "gate"
    workers = [popen_cli("worker", "--storage", pg_url, "--study-name", "fast", "--no-progress", cwd=tmp_path,
                         **gate_env(gate)) for _ in range(4)]
    held_by_workers(gate, 2)  # at least two of them claim a trial before any trains
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0, 0, 0, 0], [err for _, err in outputs]
    states = by_state(pg_url, "fast")
    assert states["COMPLETE"] == 24 and states["RUNNING"] == 0 and states["WAITING"] == 0, states
    # Whatever raced past the budget was finished unrun, marked as surplus.
    for t in trials(pg_url, "fast"):
        if t.state.name == "FAIL":
            assert t.user_attrs["fail_reason"].startswith("surplus") and "epochs_run" not in t.user_attrs
    ran = [int(out.split("this run: ")[1].split()[0]) for out, _ in outputs]
    assert sum(ran) == 24 and sum(r > 0 for r in ran) >= 2, ran
    # every worker uploaded its trials' pictures to the one artifact folder (for optuna-dashboard)
    assert len([f for f in (tmp_path / "studies" / "artifacts").rglob("*") if f.is_file()]) >= 24


@pytest.mark.postgres
@pytest.mark.parametrize("where,sampler", [("postgres", "tpe"), ("postgres", "grid"), ("journal", "grid")])
def test_worker_killed_mid_trial_is_noticed_and_its_trial_retried(tmp_path, request, where, sampler):
    url = request.getfixturevalue("pg_url") if where == "postgres" else f"journal:{tmp_path / 'long.log'}"
    config = write_toml(tmp_path / "long.toml", LONG.format(sampler=sampler))
    created = run_cli("study", "--config", config, "--storage", url, "--create-only", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    worker = ("worker", "--storage", url, "--study-name", "long", "--no-progress", "--no-artifacts")
    gate = tmp_path / "gate"
    victim = popen_cli(*worker, cwd=tmp_path, **FAST_HEARTBEAT, **gate_env(gate))
    number = held_trials(gate, 1, victim)[0]  # the victim's first trial, RUNNING, held before it trains
    killed = next(t for t in trials(url, "long") if t.number == number)
    assert killed.state.name == "RUNNING"
    os.kill(victim.pid, signal.SIGKILL)  # kill -9: no handler runs, the trial stays RUNNING
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    survivor = popen_cli(*worker, cwd=tmp_path, **FAST_HEARTBEAT)
    out, err = survivor.communicate(timeout=240)
    assert survivor.returncode == 0, err

    final = {t.number: t for t in trials(url, "long")}
    assert final[killed.number].state.name == "FAIL"
    assert final[killed.number].user_attrs["fail_reason"].startswith("stale: no heartbeat")
    retries = [t for t in final.values() if t.system_attrs.get("failed_trial") == killed.number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == killed.params or not killed.params
    assert Counter(t.state.name for t in final.values()) == {"COMPLETE": 3, "FAIL": 1}
    if sampler == "grid":
        assert sorted(t.params["units"] for t in final.values() if t.state.name == "COMPLETE") == [4, 8, 16]


@pytest.mark.postgres
def test_interrupted_workers_resume_when_the_command_is_run_again(tmp_path, pg_url):
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=40, epochs=200))
    command = ("study", "--config", config, "--storage", pg_url, "--workers", 2, "--no-progress", "--no-artifacts")
    gate = tmp_path / "gate"
    proc = popen_cli(*command, cwd=tmp_path, **gate_env(gate, free=1))
    held_trials(gate, 2, proc)  # both processes ran a trial and hold their second, RUNNING
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in out
    states = by_state(pg_url, "fast")
    assert states == {"COMPLETE": 2, "FAIL": 2}, states  # the held trials were recorded as failed
    assert all(t.user_attrs["fail_reason"].startswith("interrupted")
               for t in trials(pg_url, "fast") if t.state.name == "FAIL")
    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert by_state(pg_url, "fast")["COMPLETE"] == 40


@pytest.mark.postgres
def test_workers_ride_out_dropped_connections(tmp_path, pg_url):
    """The server drops every connection of the study's database, again and again, mid-run."""
    import psycopg2
    from conftest import PG_ADMIN_URL

    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=12, epochs=400))
    # Each process runs a trial, then holds its next one (heartbeats going) until connections
    # have been dropped under it several times, however fast the machine trains.
    gate = tmp_path / "gate"
    proc = popen_cli("study", "--config", config, "--storage", pg_url, "--workers", 2, "--no-progress", "--no-artifacts",
                     cwd=tmp_path, **FAST_HEARTBEAT, **gate_env(gate, free=1))
    database = pg_url.rsplit("/", 1)[1]
    dropped = []

    def drop_connections():
        try:
            held_trials(gate, 1)
            admin = psycopg2.connect(PG_ADMIN_URL)
            admin.autocommit = True
            with admin.cursor() as cur:
                while proc.poll() is None:
                    cur.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                "WHERE datname = %s AND pid <> pg_backend_pid()", (database,))
                    dropped.append(cur.fetchone()[0])
                    if sum(dropped) > 5:
                        open_gate(gate)
                    time.sleep(random.uniform(0.2, 0.6))
            admin.close()
        finally:
            open_gate(gate)  # whatever went wrong here, never leave the study held

    killer = threading.Thread(target=drop_connections, daemon=True)
    killer.start()
    out, err = proc.communicate(timeout=240)
    killer.join()
    assert proc.returncode == 0, err
    assert sum(dropped) > 5, dropped
    states = by_state(pg_url, "fast")
    assert states["COMPLETE"] == 12 and states["RUNNING"] == 0 and states["WAITING"] == 0, states
    for t in trials(pg_url, "fast"):
        if t.state.name == "COMPLETE":
            assert len(history(t, "val_loss")) == 400  # completed results are whole
        else:
            assert t.user_attrs.get("fail_reason"), t  # any failure says why


def test_sqlite_with_four_workers_never_says_database_is_locked(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=16, epochs=2))
    done = run_cli("study", "--config", config, "--storage", sqlite_url, "--workers", 4, "--no-progress", "--no-artifacts",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "locked" not in done.stdout + done.stderr
    assert by_state(sqlite_url, "fast")["COMPLETE"] == 16


def test_journal_file_with_workers_keeps_the_budget(tmp_path):
    url = f"journal:{tmp_path / 'fast.log'}"
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=10, epochs=2))
    done = run_cli("study", "--config", config, "--storage", url, "--workers", 3, "--no-progress", "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert by_state(url, "fast")["COMPLETE"] == 10


def test_mysql_workers_run_each_grid_point_once(tmp_path, mysql_url):
    config = write_toml(tmp_path / "grid.toml", GRID12)
    done = run_cli("study", "--config", config, "--storage", mysql_url, "--workers", 3, "--no-progress", "--no-artifacts",
                   cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    points = grid_points(mysql_url, "grid12")
    assert len(points) == 12 and set(points.values()) == {1}


@pytest.mark.postgres
@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used")
@pytest.mark.parametrize("where", ["postgres", "journal"])
def test_refusal_admits_exactly_the_budget_whatever_the_order(tmp_path, request, where):
    """The ledger's rule, step by step, on a real storage: six workers asked at once for a
    budget of three; whichever order they check in, only the three lowest numbers run."""
    from fcnn_opt.search import ledger
    from fcnn_opt.store.storages import open_storage

    url = request.getfixturevalue("pg_url") if where == "postgres" else f"journal:{tmp_path / 'j.log'}"
    study = optuna.create_study(storage=open_storage(url), study_name="rule")
    asked = [study.ask() for _ in range(6)]
    verdicts = {}
    for trial in random.Random(1).sample(asked, len(asked)):
        verdicts[trial.number] = ledger.refusal(ledger.rows(study), trial.number, 3, per_point=False)
        if verdicts[trial.number]:
            ledger.skip(study, trial, verdicts[trial.number])
    assert [n for n, v in sorted(verdicts.items()) if v is None] == [0, 1, 2]
    study.tell(asked[1], state=optuna.trial.TrialState.FAIL)  # a running trial fails: a slot opens
    late = study.ask()
    assert ledger.refusal(ledger.rows(study), late.number, 3, per_point=False) is None
    counts = ledger.Counts.of(study)
    assert (counts.running, counts.failed, counts.skipped) == (3, 1, 3)


def test_workers_can_train_batches_of_trials(tmp_path, sqlite_url):
    """``--batch-trials`` with ``--workers``: each worker claims several trials at a time;
    the ledger still admits each grid point once."""
    config = write_toml(tmp_path / "grid.toml", GRID12)
    done = run_cli("study", "--config", config, "--storage", sqlite_url, "--workers", 2, "--batch-trials", 4,
                   "--no-progress", "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    points = grid_points(sqlite_url, "grid12")
    assert len(points) == 12 and set(points.values()) == {1}
    assert all(t.user_attrs.get("engine", "").startswith("population") for t in trials(sqlite_url, "grid12"))


def test_grid_with_a_smaller_budget_queues_only_what_it_runs(tmp_path, sqlite_url):
    config = write_toml(tmp_path / "grid.toml", GRID12)
    for _ in range(2):
        done = run_cli("study", "--config", config, "--storage", sqlite_url, "--n-trials", 5, "--no-progress", "--no-artifacts",
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr
    assert by_state(sqlite_url, "grid12") == {"COMPLETE": 5}


def test_workers_started_ahead_of_their_study_go_only_when_told(sqlite_url):
    """``study --workers N`` starts its workers while it creates the study: each loads the
    study's backends and storage modules, then joins on "go" and ends on anything else."""
    import io

    from fcnn_opt.search.workers import GO, wait_for_go

    assert wait_for_go(sqlite_url, "numpy", io.StringIO(f"{GO}\n")) is True
    assert "fcnn_opt.training.backends._compiled" in sys.modules  # Numba's loop, loaded while waiting
    assert wait_for_go(sqlite_url, "numpy,sklearn", io.StringIO("stop\n")) is False
    assert wait_for_go(sqlite_url, "numpy", io.StringIO("")) is False  # the parent died: end quietly


def test_a_study_refused_with_workers_leaves_no_worker_behind(tmp_path):
    """The workers already started when the study is refused end quietly: one line from the
    command, exit code 2, no process left, the foreign file untouched."""
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database, but someone's file" * 100)
    before = foreign.read_bytes()
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=4, epochs=2))
    done = run_cli("study", "--config", config, "--storage", f"sqlite:///{foreign}", "--workers", 3,
                   "--no-progress", "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert foreign.read_bytes() == before
    left = subprocess.run(["pgrep", "-f", "--", "--study-name=fast .*--start-when-told"], capture_output=True, text=True)
    assert left.returncode == 1, left.stdout  # pgrep: no such process
