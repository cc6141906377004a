"""Many worker processes on one study: ``worker`` joins a study, ``study --workers N`` starts N.

On one machine::

    python -m fcnn_opt study --config studies/tpe.toml --storage journal:studies/tpe.log --workers 4

On many (one worker per machine or per GPU, all pointed at one PostgreSQL database)::

    python -m fcnn_opt study --config studies/tpe.toml --storage postgresql://me@db/studies --create-only
    python -m fcnn_opt worker --storage postgresql://me@db/studies --study-name tpe   # on each machine

On a Dask cluster, ``study --cluster ADDRESS`` starts these same workers as Dask tasks
(:mod:`fcnn_opt.search.cluster`).

A worker needs no study file: the study stores its definition and its budget. The budget
is the study's, shared exactly by all workers (see :mod:`fcnn_opt.search.ledger`).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from fcnn_opt.search.objective import Objective
from fcnn_opt.search.runner import (
    check_engine,
    load_for_worker,
    prepare_study,
    run_trials,
    trial_artifacts,
)
from fcnn_opt.search.sizes import check_sizes
from fcnn_opt.search.space import StudySpec
from fcnn_opt.search.summary import FailedWorker, RunSummary, fill_final, new_summary
from fcnn_opt.show.artifacts import picture_mode
from fcnn_opt.store.storages import (
    default_url,
    load_storage_modules,
    mask_url,
    open_storage,
    safe_filename,
)
from fcnn_opt.training.backends import get_backend

STOP_GRACE = 60  # seconds children get to record their running trial after Ctrl-C/SIGTERM


def run_worker(*, storage: str | None = None, study_name: str, timeout: float | None = None,
               progress: bool = True, worker_id: int | None = None, batch_trials: int = 1,
               device: str = "cpu", artifacts: str | bool = "complete",
               artifact_dir: str | Path | None = None, snapshots: int = 0) -> RunSummary:
    """Join the study in ``storage`` and run its trials until its budget or grid is done.

    Artifacts (each trial's weights, and the pictures ``artifacts`` asks for) go to
    ``artifact_dir``, by default beside a database file or in ``studies/artifacts`` of this
    machine: on many machines, give each worker the same shared folder so that the report and
    optuna-dashboard find them all.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = storage or default_url()
    study, spec = load_for_worker(open_storage(url), study_name, worker_id=worker_id,
                                  concurrent=batch_trials > 1, artifact_dir=artifact_dir)
    # Whoever made the study chose its counts; whether they fit is this machine's question.
    check_sizes(spec, batch_trials=batch_trials, allow_large=True)
    check_engine(spec, batch_trials)
    summary = new_summary(study, spec, url)
    objective = Objective(spec, snapshots=snapshots)
    with trial_artifacts(objective, url, artifacts, artifact_dir):
        return run_trials(study, spec, objective, summary, timeout=timeout, progress=progress,
                          batch_trials=batch_trials, device=device)


def worker_command(study_name: str, worker_id: int, timeout: float | None, batch_trials: int = 1,
                   device: str = "cpu", artifacts: str | bool = "complete",
                   artifact_dir: str | Path | None = None, snapshots: int = 0,
                   start_when_told: tuple[str, ...] = (), end_with_parent: bool = False) -> list[str]:
    """The command line of one local worker (the storage URL goes in its environment, not here,
    so a password never shows in the process list). ``start_when_told``: the study's training
    libraries, for a worker started before its study exists (see :func:`wait_for_go`);
    ``end_with_parent``: it also ends when its parent does (see :func:`watch_parent`)."""
    command = [sys.executable, "-m", "fcnn_opt", "worker", f"--study-name={study_name}",
               f"--worker-id={worker_id}", "--no-progress"]
    if timeout is not None:
        command.append(f"--timeout={timeout}")
    if batch_trials != 1:
        command += [f"--batch-trials={batch_trials}", f"--device={device}"]
    command.append(f"--artifacts={picture_mode(artifacts)}")
    if artifact_dir is not None:
        command.append(f"--artifact-dir={Path(artifact_dir).resolve()}")
    if snapshots:
        command.append(f"--snapshots={snapshots}")
    if start_when_told:
        command.append(f"--start-when-told={','.join(start_when_told)}")
        if end_with_parent:
            command.append("--end-with-parent")
    return command


def worker_env(url: str) -> dict[str, str]:
    """The environment of a worker process started from this one: the storage URL (kept out of
    its command line), one BLAS thread, and this same checkout of fcnn_opt first on its path."""
    env = dict(os.environ, OPTUNA_STORAGE=url)
    # The workers are the parallelism: a BLAS thread pool in each would oversubscribe the
    # cores (W2 with two workers: 25 s with OpenBLAS's default threads, 10 s with one each).
    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(variable, "1")
    package_root = str(Path(__file__).resolve().parents[2])  # workers import this same checkout
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    return env


def run_parallel(spec: StudySpec, *, storage: str | None = None, study_name: str | None = None,
                 n_workers: int = 2, timeout: float | None = None, progress: bool = True,
                 batch_trials: int = 1, device: str = "cpu", artifacts: str | bool = "complete",
                 artifact_dir: str | Path | None = None, allow_large: bool = False,
                 snapshots: int = 0) -> RunSummary:
    """Create or resume the study, then run it with ``n_workers`` local workers: this process
    and ``n_workers - 1`` worker processes (``python -m fcnn_opt worker``).

    The worker processes start first and load their modules (the study's training library,
    the storage's) while this process creates the study, stores its definition and queues
    its grid; then it tells them to go (see :func:`wait_for_go`), and runs trials itself as
    worker 0, drawing one progress bar for the whole study. After a Ctrl-C or SIGTERM it
    records its own trial, then forwards the signal to the others and waits for them.
    Workers that exit with an error are listed in ``summary.failed_workers`` with the end of
    their output.
    """
    url = storage or default_url()
    check_engine(spec, batch_trials)
    name = study_name or spec.name
    env = worker_env(url)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"fcnn_opt-{safe_filename(name)}-") as logs:
        procs, log_paths = [], []
        stopping: list[int] = []

        def forward(signum, frame):
            stopping.append(signum)
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signum)

        try:
            for i in range(1, n_workers):
                log_paths.append(Path(logs) / f"worker{i}.log")
                command = worker_command(name, i, timeout, batch_trials, device, artifacts, artifact_dir, snapshots,
                                         start_when_told=spec.libs)
                with log_paths[-1].open("wb") as log:
                    # A session of its own: a terminal's Ctrl-C reaches the workers once, through us.
                    procs.append(subprocess.Popen(command, env=env,
                                                  stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                                                  start_new_session=True))
            try:
                study, summary = prepare_study(spec, storage=url, study_name=name, concurrent=batch_trials > 1,
                                               batch_trials=batch_trials * n_workers, allow_large=allow_large,
                                               artifact_dir=artifact_dir)
            except BaseException:
                _tell(procs, "stop")
                raise
            _tell(procs, GO)
            done_before = summary.counts.done
            objective = Objective(spec, snapshots=snapshots)
            with trial_artifacts(objective, url, artifacts, artifact_dir):
                run_trials(study, spec, objective, summary, timeout=timeout, progress=progress,
                           batch_trials=batch_trials, device=device)
            if summary.interrupted:  # this process recorded its trial; now the others
                forward(signal.SIGINT, None)
            previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                _wait(procs, stopping)
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)
        finally:
            for p in procs:  # never leave a worker behind
                if p.poll() is None:
                    p.kill()
                    p.wait()
        summary.interrupted = summary.interrupted or bool(stopping)
        for i, p in enumerate(procs, start=1):
            if p.returncode != 0 and not stopping:
                summary.failed_workers.append(FailedWorker(i, p.returncode, output_tail(log_paths[i - 1])))
    summary.seconds = time.perf_counter() - start
    fill_final(summary, study, spec)
    summary.ran = summary.counts.done - done_before
    return summary


GO = "go"  # the line that tells a worker started ahead of its study to join it


def wait_for_go(storage: str | None, libs: str, told=None, end_with_parent: bool = False) -> bool:
    """What a worker that ``study --workers N`` starts ahead of its study does first: load the
    study's training libraries (``libs``, comma-separated) and the storage's modules (0.6 s
    each on W2's machine, while the study is being created), then wait for one line on
    ``told`` (standard input): ``go`` to join the study (True), anything else or nothing (the
    study could not be created) to end (False). With ``end_with_parent``, after ``go`` it
    watches ``told`` for its end (see :func:`watch_parent`)."""
    for lib in libs.split(","):
        try:
            get_backend(lib).load()
        except (ImportError, ValueError):  # the study's own trials will say what is missing
            pass
    load_storage_modules(storage)
    told = told or sys.stdin
    go = told.readline().strip() == GO
    if go and end_with_parent:
        watch_parent(told)
    return go


def watch_parent(told, end=None) -> threading.Thread:
    """For a worker whose parent holds its standard input (``told``) open while it lives, as a
    Dask worker task does (:mod:`fcnn_opt.search.cluster`): once the input ends, the parent is
    gone (killed, or its machine lost), and this process ends as ``kill -9`` would end it
    (``end``, by default SIGKILL to its process group, so that no picture renderer outlives
    it). Its running trial stays RUNNING, and another worker reruns it when its heartbeat goes
    stale: a worker whose Dask worker died is a dead worker, as it would be by hand."""
    def watch() -> None:
        while told.readline():  # nothing more is written: only the end comes
            pass
        (end or _kill_own_group)()

    thread = threading.Thread(target=watch, name="fcnn_opt-parent-watch", daemon=True)
    thread.start()
    return thread


def _kill_own_group() -> None:
    """SIGKILL to this process's group if it leads one (a worker started in a session of its
    own), else to this process."""
    if os.getpgid(0) == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)


def _tell(procs, line: str) -> None:
    """Send each worker started ahead of its study its one line (see :func:`wait_for_go`)."""
    for p in procs:
        try:
            p.stdin.write(f"{line}\n".encode())
            p.stdin.close()
        except OSError:  # it has already ended; its exit code says why
            pass


def _wait(procs, stopping) -> None:
    """Wait until every worker process has exited (or the grace after a stop ends)."""
    deadline = None
    for p in procs:
        while p.poll() is None:
            if stopping and deadline is None:
                deadline = time.monotonic() + STOP_GRACE
            if deadline is not None and time.monotonic() > deadline:
                return
            try:  # returns as soon as the worker exits; a signal's handler runs meanwhile
                p.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass


def output_tail(path: Path, lines: int = 3) -> str:
    """The last ``lines`` non-empty lines of a worker's output file, joined, passwords masked."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return mask_url(" | ".join(kept))
