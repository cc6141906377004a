"""Studies on a Dask cluster (``study --cluster``), against a real ``dask scheduler``, three
``dask worker`` processes and the PostgreSQL server.

Nothing is mocked: the cluster is started here the way docs/distributed.md starts one by
hand (one thread per Dask worker, each with a nanny), the study is a real
``python -m fcnn_opt`` process, a lost machine is a ``dask worker`` killed with SIGKILL and
Ctrl-C is SIGINT to the submitting process. The Dask workers' environment carries the gate
(tests/gate/), which every worker process their tasks start inherits, so a test finds
trials running when it signals, on any machine; no test waits on a clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import optuna
import pytest
from conftest import (
    FAST_HEARTBEAT,
    FAST_TPE,
    cli_env,
    gate_env,
    grid_study,
    held_trials,
    open_gate,
    require_service,
    run_cli,
    write_toml,
)

GRID6 = grid_study("grid6", epochs=100, units=[2, 4, 8], lr=[0.03, 0.3])


def _distributed():
    try:
        import distributed
    except ImportError:
        require_service("dask distributed", "pip install 'fcnn_opt[cluster]'")
    return distributed


@dataclass
class Cluster:
    """A running ``dask scheduler`` and its ``dask worker`` processes."""

    address: str
    workers: list[subprocess.Popen]
    gate: Path


class _Processes:
    """``dask scheduler`` and ``dask worker`` processes started in ``folder``, as docs/distributed.md
    starts them by hand (one thread per worker, each with its nanny). Their environment holds
    short heartbeats and the gate at ``folder/gate``, which the worker processes their tasks
    start inherit."""

    def __init__(self, folder: Path):
        self.folder, self.gate = folder, folder / "gate"
        self.env = cli_env(**FAST_HEARTBEAT, **gate_env(self.gate))
        self.scheduler_file = folder / "scheduler.json"
        self.workers: list[subprocess.Popen] = []
        self.scheduler = self._start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                                     "--dashboard-address", ":0", "--scheduler-file", str(self.scheduler_file))
        deadline = time.monotonic() + 120  # a hang guard only
        while not self.scheduler_file.exists():
            assert time.monotonic() < deadline and self.scheduler.poll() is None, self._log("scheduler")
            time.sleep(0.05)

    def _start(self, what: str, *args: str) -> subprocess.Popen:
        with (self.folder / f"{what}.log").open("ab") as log:
            return subprocess.Popen([sys.executable, "-m", "dask", what.rstrip("0123456789"), *args],
                                    cwd=self.folder, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def _log(self, what: str) -> str:
        return (self.folder / f"{what}.log").read_text(errors="replace")[-3000:]

    def ready(self, n_workers: int) -> Cluster:
        """``n_workers`` live Dask workers (a killed one replaced), an empty gate."""
        distributed = _distributed()
        self.workers = [w for w in self.workers if w.poll() is None]
        while len(self.workers) < n_workers:
            self.workers.append(self._start(f"worker{len(self.workers)}", "--scheduler-file", str(self.scheduler_file),
                                            "--nthreads", "1", "--no-dashboard", "--memory-limit", "0"))
        with distributed.Client(scheduler_file=str(self.scheduler_file), timeout=60) as client:
            client.wait_for_workers(n_workers, timeout=120)
            deadline = time.monotonic() + 120  # until the scheduler has dropped a killed worker
            while len(client.nthreads()) != n_workers:
                assert time.monotonic() < deadline, client.nthreads()
                time.sleep(0.1)
            address = client.scheduler.address
        if self.gate.exists():
            for f in self.gate.iterdir():
                f.unlink()
        self.gate.mkdir(exist_ok=True)
        return Cluster(address, list(self.workers), self.gate)

    def stop(self) -> None:
        """Kill them all: their tasks have ended with the studies, nothing is left to close well."""
        for proc in [*self.workers, self.scheduler]:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def _dask_processes(tmp_path_factory):
    _distributed()
    processes = _Processes(tmp_path_factory.mktemp("dask"))
    yield processes
    processes.stop()


@pytest.fixture
def dask_cluster(_dask_processes) -> Cluster:
    """A real Dask cluster of three ``dask worker`` processes, shared by this file's tests; every
    worker process its tasks start holds each trial at ``gate`` until the test opens it."""
    return _dask_processes.ready(3)


_STORAGES: dict = {}


def trials(url: str, name: str) -> list:
    from fcnn_opt.store.storages import open_storage

    if url not in _STORAGES:
        _STORAGES[url] = open_storage(url, heartbeat=False)
    return optuna.load_study(study_name=name, storage=_STORAGES[url]).trials


def by_state(url: str, name: str) -> Counter:
    return Counter(t.state.name for t in trials(url, name))


def popen_cli(*args, cwd) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "fcnn_opt", *map(str, args)], cwd=cwd, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def holders(gate: Path) -> dict[int, int]:
    """The worker processes holding a trial at the gate: pid -> trial number."""
    return {int(f.name.split("-")[1]): int(f.name.split("-")[2]) for f in gate.glob("held-*")}


def held_by(gate: Path, count: int, proc: subprocess.Popen) -> dict[int, int]:
    """Wait until ``count`` different worker processes hold a trial at the gate."""
    while len(holders(gate)) < count:
        held_trials(gate, len(list(gate.glob("held-*"))) + 1, proc)
    return holders(gate)


def gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


@pytest.mark.postgres
def test_the_budget_is_exact_on_a_dask_cluster(tmp_path, pg_url, dask_cluster):
    cluster = dask_cluster
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=15, epochs=200))
    proc = popen_cli("study", "--config", config, "--storage", pg_url, "--cluster", cluster.address,
                     "--workers", 3, "--no-progress", "--no-artifacts", cwd=tmp_path)
    held_by(cluster.gate, 3, proc)  # every task's worker has claimed a trial before any trains
    open_gate(cluster.gate)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"3 worker tasks on the Dask cluster at {cluster.address}" in out
    states = by_state(pg_url, "fast")
    assert states["COMPLETE"] == 15 and states["RUNNING"] == 0 and states["WAITING"] == 0, states
    everything = trials(pg_url, "fast")
    for t in everything:  # whatever raced past the budget was finished unrun, as surplus
        if t.state.name == "FAIL":
            assert t.user_attrs["fail_reason"].startswith("surplus") and "epochs_run" not in t.user_attrs
    assert len({t.user_attrs["worker"] for t in everything if t.state.name == "COMPLETE"}) == 3
    assert "this run: 15 " in out


@pytest.mark.postgres
def test_each_grid_point_runs_once_on_a_dask_cluster(tmp_path, pg_url, dask_cluster):
    cluster = dask_cluster
    config = write_toml(tmp_path / "grid.toml", GRID6)
    created = run_cli("study", "--config", config, "--storage", pg_url, "--create-only", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    study = optuna.load_study(study_name="grid6", storage=pg_url)
    for t in study.get_trials(states=(optuna.trial.TrialState.WAITING,)):  # queued twice, as by two commands
        study.enqueue_trial(t.system_attrs["fixed_params"], skip_if_exists=False)
    proc = popen_cli("study", "--config", config, "--storage", pg_url, "--cluster", cluster.address,
                     "--workers", 3, "--no-progress", "--no-artifacts", cwd=tmp_path)
    held_by(cluster.gate, 3, proc)
    open_gate(cluster.gate)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    done = Counter(tuple(sorted(t.params.items())) for t in trials(pg_url, "grid6") if t.state.name == "COMPLETE")
    assert len(done) == 6 and set(done.values()) == {1}, done
    failed = [t for t in trials(pg_url, "grid6") if t.state.name == "FAIL"]
    assert len(failed) == 6 and all(t.user_attrs["fail_reason"].startswith("duplicate") for t in failed)


@pytest.mark.postgres
def test_a_dask_worker_killed_mid_trial_loses_nothing(tmp_path, pg_url, dask_cluster):
    """SIGKILL to a ``dask worker`` (its nanny, as a lost machine): the worker process its task
    started ends with it, the trial it held goes stale, another worker fails it and runs it
    again, and the study completes with each grid point once."""
    import psutil

    cluster = dask_cluster
    config = write_toml(tmp_path / "grid.toml", grid_study("grid6", epochs=100, units=[2, 4, 8], lr=0.03))  # 3 points
    proc = popen_cli("study", "--config", config, "--storage", pg_url, "--cluster", cluster.address,
                     "--workers", 3, "--no-progress", "--no-artifacts", cwd=tmp_path)
    held = held_by(cluster.gate, 3, proc)  # each of the three holds one point, RUNNING
    victim, number = next(iter(held.items()))
    ancestors = {p.pid for p in psutil.Process(victim).parents()}
    dask_worker = next(w for w in cluster.workers if w.pid in ancestors)
    os.kill(dask_worker.pid, signal.SIGKILL)
    deadline = time.monotonic() + 60  # a hang guard only
    while not gone(victim):  # its worker process ends with it, before the gate opens
        assert time.monotonic() < deadline, f"worker process {victim} outlived its Dask worker"
        time.sleep(0.05)
    open_gate(cluster.gate)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err

    final = {t.number: t for t in trials(pg_url, "grid6")}
    assert final[number].state.name == "FAIL"
    assert final[number].user_attrs["fail_reason"].startswith("stale: no heartbeat")
    retries = [t for t in final.values() if t.system_attrs.get("failed_trial") == number]
    assert len(retries) == 1 and retries[0].state.name == "COMPLETE"
    assert retries[0].params == final[number].system_attrs["fixed_params"]  # the same point again
    assert Counter(t.state.name for t in final.values()) == {"COMPLETE": 3, "FAIL": 1}
    assert sorted(t.params["units"] for t in final.values() if t.state.name == "COMPLETE") == [2, 4, 8]


@pytest.mark.postgres
def test_ctrl_c_stops_the_cluster_run_and_the_same_command_resumes(tmp_path, pg_url, dask_cluster):
    cluster = dask_cluster
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=8, epochs=100))
    command = ("study", "--config", config, "--storage", pg_url, "--cluster", cluster.address, "--workers", 2,
               "--no-progress", "--no-artifacts")
    proc = popen_cli(*command, cwd=tmp_path)
    held = held_by(cluster.gate, 2, proc)  # both hold a trial, RUNNING
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Run the same command again to resume" in out
    assert by_state(pg_url, "fast") == {"FAIL": 2}  # the held trials, recorded as failed
    assert all(t.user_attrs["fail_reason"].startswith("interrupted")
               for t in trials(pg_url, "fast") if t.state.name == "FAIL")
    assert all(gone(pid) for pid in held)  # no worker process left behind on the cluster
    open_gate(cluster.gate)
    again = run_cli(*command, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert by_state(pg_url, "fast")["COMPLETE"] == 8


@pytest.mark.postgres
def test_worker_resources_place_every_task_on_a_worker_that_declares_them(tmp_path, pg_url, dask_cluster,
                                                                          _dask_processes):
    """``--worker-resources GPU=1``: of four Dask workers only one declares ``GPU=1`` (as a
    machine with one GPU would, ``dask worker --resources GPU=1``); the run submits as many
    tasks as that worker can hold (one) and its trials all run under it."""
    import psutil

    distributed = _distributed()
    # (named worker9: the log file is worker9.log, the command `dask worker`)
    gpu = _dask_processes._start("worker9", "--scheduler-file", str(_dask_processes.scheduler_file),
                                 "--nthreads", "1", "--no-dashboard", "--memory-limit", "0",
                                 "--resources", "GPU=1")
    try:
        with distributed.Client(dask_cluster.address, timeout=60) as client:
            client.wait_for_workers(4, timeout=120)
        config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=6, epochs=50))
        proc = popen_cli("study", "--config", config, "--storage", pg_url, "--cluster", dask_cluster.address,
                         "--worker-resources", "GPU=1", "--no-progress", "--no-artifacts", cwd=tmp_path)
        (pid, _), = held_by(dask_cluster.gate, 1, proc).items()
        assert gpu.pid in {p.pid for p in psutil.Process(pid).parents()}  # under the GPU worker
        open_gate(dask_cluster.gate)
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "1 worker task on the Dask cluster" in out
        done = [t for t in trials(pg_url, "fast") if t.state.name == "COMPLETE"]
        assert len(done) == 6 and {t.user_attrs["worker"].rsplit(":", 1)[1] for t in done} == {str(pid)}
    finally:
        gpu.kill()
        gpu.wait()


def test_a_local_cluster_runs_as_many_trials_as_local_workers(tmp_path):
    """``--cluster local:2`` (a LocalCluster here) against ``--workers 2``: the same budget,
    exactly, on the same SQLite file (a local cluster may share one)."""
    _distributed()
    counts = {}
    for how in (("--workers", 2), ("--cluster", "local:2")):
        config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=10, epochs=20))
        url = f"sqlite:///{tmp_path / f'{how[0][2:]}.db'}"
        done = run_cli("study", "--config", config, "--storage", url, *how, "--no-progress", "--no-artifacts",
                       cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        counts[how[0]] = (by_state(url, "fast")["COMPLETE"], done.stdout.split("this run: ")[1].split()[0])
    assert counts["--cluster"] == counts["--workers"] == (10, "10"), counts
    assert "2 worker tasks on a LocalCluster of 2 Dask workers" in done.stdout


def test_cluster_tasks_train_batches_of_trials_with_the_population_engine(tmp_path):
    """``--batch-trials 3`` on the cluster: each task's worker claims three trials at a time and
    trains them together; every grid point still runs once."""
    _distributed()
    config = write_toml(tmp_path / "grid6.toml", GRID6)
    url = f"sqlite:///{tmp_path / 'g.db'}"
    done = run_cli("study", "--config", config, "--storage", url, "--cluster", "local:2", "--batch-trials", 3,
                   "--no-progress", "--no-artifacts", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    everything = trials(url, "grid6")
    assert sorted((t.params["units"], t.params["lr"]) for t in everything) == \
        sorted((u, lr) for u in (2, 4, 8) for lr in (0.03, 0.3))
    assert all(t.state.name == "COMPLETE" and t.user_attrs.get("engine", "").startswith("population")
               for t in everything)


@pytest.mark.parametrize("storage", ["sqlite", "journal"])
def test_a_storage_the_cluster_cannot_share_is_refused_in_one_line(tmp_path, storage):
    url = f"sqlite:///{tmp_path / 's.db'}" if storage == "sqlite" else f"journal:{tmp_path / 's.log'}"
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=4, epochs=2)
                        + '\n[cluster]\naddress = "tcp://127.0.0.1:9"\n')  # the file names the cluster
    done = run_cli("study", "--config", config, "--storage", url, "--no-progress", cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "tcp://127.0.0.1:9" in done.stderr and "postgresql://" in done.stderr
    assert not list(tmp_path.glob("s.*"))  # refused before anything was written


def test_bad_cluster_options_are_refused_in_one_line(tmp_path):
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=4, epochs=2))
    for args, says in [(("--worker-resources", "GPU=1"), "--cluster"),
                       (("--cluster", "local:2", "--worker-resources", "GPU=x"), "NAME=AMOUNT"),
                       (("--cluster", "local:0"), "local:N"),
                       (("--cluster", "local", "--create-only"), "--create-only")]:
        done = run_cli("study", "--config", config, "--storage", f"sqlite:///{tmp_path / 's.db'}", *args,
                       "--no-progress", cwd=tmp_path)
        assert done.returncode == 2 and says in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_where_a_study_runs_is_not_part_of_it():
    """``[cluster]`` is read, but the study it describes is the same without it: same
    fingerprint, same stored definition (workers never see it)."""
    import tomllib

    from fcnn_opt.search.space import SpaceError, parse_spec

    data = tomllib.loads(FAST_TPE.format(n=4, epochs=2))
    placed = parse_spec({**data, "cluster": {"address": "tcp://s:8786", "resources": {"GPU": 1}}})
    plain = parse_spec(data)
    assert placed.cluster == {"address": "tcp://s:8786", "resources": {"GPU": 1}} and plain.cluster == {}
    assert placed.fingerprint() == plain.fingerprint() and placed.to_dict() == plain.to_dict()
    for bad in ({"adress": "x"}, {"address": 8786}, {"resources": {"GPU": 0}}):
        with pytest.raises(SpaceError, match=r"\[cluster\]"):
            parse_spec({**data, "cluster": bad})


def test_a_worker_that_watches_its_parent_ends_when_its_input_closes():
    """What a task's worker process does when its Dask worker dies (the kill test above sees
    it end): the input its parent held open closes, and it ends itself."""
    import threading

    from fcnn_opt.search.workers import watch_parent

    read, write = os.pipe()
    ended = threading.Event()
    with os.fdopen(read) as told:
        watch_parent(told, end=ended.set)
        os.write(write, b"nothing more is written, but lines would be ignored\n")
        assert not ended.is_set()  # the parent lives
        os.close(write)  # the parent is gone
        assert ended.wait(30)  # a hang guard only


def test_a_study_refused_after_its_tasks_started_ends_them_quietly(tmp_path):
    """The tasks' workers start while the study is created; when it is refused (here, a
    file that is not a study), they are told to stop: one line, exit code 2, no worker
    process left, the file untouched."""
    import psutil

    _distributed()
    foreign = tmp_path / "notes.db"
    foreign.write_bytes(b"not a database, but someone's file" * 100)
    before = foreign.read_bytes()
    config = write_toml(tmp_path / "fast.toml", FAST_TPE.format(n=4, epochs=2))
    proc = popen_cli("study", "--config", config, "--storage", f"sqlite:///{foreign}", "--cluster", "local:2",
                     "--no-progress", "--no-artifacts", cwd=tmp_path)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert foreign.read_bytes() == before
    left = [p.pid for p in psutil.process_iter(["cmdline", "cwd"])  # the tasks' worker processes
            if "--end-with-parent" in (p.info["cmdline"] or []) and p.info["cwd"] == str(tmp_path)]
    assert not left, left
