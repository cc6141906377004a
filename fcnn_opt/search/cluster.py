"""Studies on a Dask cluster: ``study --cluster`` runs fcnn_opt's workers as Dask tasks.

    python -m fcnn_opt study --config studies/tpe.toml --storage postgresql://me@db/studies \\
        --cluster tcp://scheduler:8786 --workers 8
    python -m fcnn_opt study --config studies/tpe.toml --cluster local:2   # a LocalCluster here

This process submits N long-running tasks and, while their workers start, creates the study;
each task starts ``python -m fcnn_opt worker`` on the machine of the Dask worker the
scheduler placed it on:
the worker process and loop of ``study --workers N`` and of workers started by hand
(:mod:`fcnn_opt.search.workers`), against the shared storage. This process draws one
progress bar from the storage and prints the run's summary. Dask places the tasks (with
resources: ``--worker-resources GPU=1``), restarts lost workers and shows the tasks in its
dashboard; the exact budget, each grid point once and the rerun of a dead worker's trial
stay the storage's business, as ever (:mod:`fcnn_opt.search.ledger`).

A task's worker process ends with its Dask worker (:func:`fcnn_opt.search.workers.watch_parent`):
its running trial's heartbeat stops, another worker fails it as stale and runs it again,
and Dask runs the task again elsewhere. Ctrl-C or SIGTERM here sets the run's ``stop`` event
(a ``distributed.Event``, as ``go`` is once the study exists): each task sends its worker
SIGTERM, the worker records its running trials as failed, and the same command resumes the
study.

Dask is imported here only, and only when a study goes to a cluster
(``pip install 'fcnn_opt[cluster]'``): ``import fcnn_opt`` and a local study never load it.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fcnn_opt.search.ledger import Counts
from fcnn_opt.search.outcomes import sigterm_as_interrupt
from fcnn_opt.search.progress import close_bar, progress_bar, update_bar
from fcnn_opt.search.runner import StudyError, check_engine, prepare_study
from fcnn_opt.search.space import StudySpec
from fcnn_opt.search.summary import FailedWorker, RunSummary, fill_final
from fcnn_opt.search.workers import GO, STOP_GRACE, output_tail, worker_command, worker_env
from fcnn_opt.store.storages import default_url, mask_url, storage_kind

LOCAL = "local"  # --cluster local or local:N: a distributed.LocalCluster on this machine
NONE = "none"  # --cluster none: run here, whatever the study file's [cluster] address says
STOP = "stop"  # the line that ends a worker not yet told go, and the event that stops them all
POLL = 0.5  # seconds between a task's looks at the run's events, and the bar's redraws
GO_WAIT = 3600  # seconds a task waits to be told go or stop (its submitter may have died) before it gives up
CONNECT_TIMEOUT = 20  # seconds to reach a remote scheduler

__all__ = ["ClusterError", "check_storage", "cluster_address", "parse_resources", "run_on_cluster",
           "worker_task"]


class ClusterError(StudyError):
    """A cluster that cannot run the study as asked (one line, exit code 2)."""


def cluster_address(given: str | None, spec: StudySpec) -> str | None:
    """Where the study runs: ``given`` (``--cluster``), else the study file's ``[cluster]
    address``; None to run on this machine (neither, or ``none``)."""
    address = given if given is not None else spec.cluster.get("address")
    return None if address in (None, NONE) else address.strip()


def is_local(address: str) -> bool:
    """Whether ``address`` asks for a LocalCluster (``local`` or ``local:N``)."""
    return address == LOCAL or address.startswith(f"{LOCAL}:")


def local_size(address: str) -> int | None:
    """N of ``local:N`` (None for plain ``local``)."""
    _, _, size = address.partition(":")
    if not size:
        return None
    if not size.isdigit() or int(size) < 1:
        raise ClusterError(f"--cluster {address}: expected local or local:N with N >= 1 Dask workers.")
    return int(size)


def parse_resources(given: str | dict | None) -> dict[str, float]:
    """The Dask resources each worker task needs: ``"GPU=1,MEM=4e9"`` (``--worker-resources``)
    or a table (the study file's ``[cluster] resources``)."""
    if not given:
        return {}
    if isinstance(given, dict):
        return {str(name): float(amount) for name, amount in given.items()}
    resources = {}
    for item in given.split(","):
        name, _, amount = item.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not name.strip() or not value > 0 or not math.isfinite(value):
            raise ClusterError(f"--worker-resources {given!r}: expected NAME=AMOUNT[,NAME=AMOUNT...] with "
                               "amounts > 0, e.g. GPU=1 (the resources its Dask workers declare).")
        resources[name.strip()] = value
    return resources


def check_storage(url: str, address: str) -> None:
    """Refuse a storage the cluster's machines cannot share (a file on this machine: SQLite,
    a journal file), unless the cluster is local."""
    kind = storage_kind(url)
    if kind is not None and kind.local_file and not is_local(address):
        raise ClusterError(f"--cluster {address}: the cluster's machines cannot share {mask_url(url)}, a file "
                           "on this machine; use a database server they all reach (--storage "
                           "postgresql://USER@HOST/DB or mysql://USER@HOST/DB), or --cluster local.")


def run_on_cluster(spec: StudySpec, *, address: str, storage: str | None = None, study_name: str | None = None,
                   n_workers: int | None = None, resources: str | dict | None = None,
                   timeout: float | None = None, progress: bool = True, batch_trials: int = 1,
                   device: str = "cpu", artifacts: str | bool = "complete",
                   artifact_dir: str | Path | None = None, allow_large: bool = False, snapshots: int = 0,
                   on_start: Callable[[str], None] | None = None) -> RunSummary:
    """Create or resume the study, then run it with ``n_workers`` worker tasks on the Dask
    cluster at ``address`` (``local[:N]`` starts one here); returns the run's summary, as
    :func:`fcnn_opt.search.workers.run_parallel` does.

    ``n_workers`` defaults to N of ``local:N`` (else this machine's cores), or on a remote
    cluster to the tasks its workers can run at once now. Each task needs ``resources``
    (e.g. ``{"GPU": 1}``, which Dask workers declare with ``--resources GPU=1``) and takes
    one thread of its Dask worker until the study is done. ``on_start`` is told, once the
    tasks are submitted, where they went.
    """
    url = storage or default_url()
    check_storage(url, address)
    check_engine(spec, batch_trials)
    needs = parse_resources(resources if resources is not None else spec.cluster.get("resources"))
    name = study_name or spec.name
    options = {"timeout": timeout, "batch_trials": batch_trials, "device": device, "artifacts": artifacts,
               "artifact_dir": None if artifact_dir is None else str(Path(artifact_dir).resolve()),
               "snapshots": snapshots}
    distributed = _import_distributed()
    start = time.perf_counter()
    with _client(distributed, address, n_workers, needs) as client:
        n = n_workers or _room(client, needs, address)
        run = f"fcnn_opt-{uuid.uuid4().hex[:12]}"
        control = _Control(distributed, run, client)
        futures = [client.submit(worker_task, k, name, url, spec.libs, options, run,
                                 key=f"{run}-worker-{k}", resources=needs or None, pure=False)
                   for k in range(n)]
        try:  # the tasks' workers load their modules meanwhile (see workers.wait_for_go)
            study, summary = prepare_study(spec, storage=url, study_name=name, concurrent=batch_trials > 1,
                                           batch_trials=batch_trials * n, allow_large=allow_large,
                                           artifact_dir=artifact_dir)
        except BaseException:
            _end(distributed, futures, control, stop=True)
            raise
        if on_start is not None:
            on_start(_where(client, address, n))
        control.go.set()
        done_before = summary.counts.done
        summary.interrupted = _follow(distributed, client, futures, study, summary, control, progress, timeout)
        _end(distributed, futures, control, stop=summary.interrupted)
        if not summary.interrupted:
            summary.failed_workers += _failures(futures)
    summary.seconds = time.perf_counter() - start
    fill_final(summary, study, spec)
    summary.ran = summary.counts.done - done_before
    return summary


def worker_task(worker_id: int, study_name: str, url: str, libs: tuple[str, ...], options: dict,
                run: str) -> tuple[int, int | None, str]:
    """One Dask task: run ``python -m fcnn_opt worker`` (as worker ``worker_id``) on this Dask
    worker's machine until the study's budget or grid is done; returns ``(worker_id, its exit
    code, the end of its output)``.

    The worker starts at once and loads its modules, then waits for one of the run's events
    (``distributed.Event``, named after ``run``): ``go`` once the study exists, or ``stop``
    (the study was refused, or the run was stopped: then a running worker gets SIGTERM and
    records its trials as failed). Its standard input stays open while this Dask worker
    lives; should the Dask worker die, the worker ends too
    (:func:`fcnn_opt.search.workers.watch_parent`).
    """
    import distributed  # this runs on a Dask worker, which has it loaded

    control = _Control(distributed, run)
    command = worker_command(study_name, worker_id, start_when_told=libs, end_with_parent=True, **options)
    with tempfile.TemporaryDirectory(prefix="fcnn_opt-worker-") as logs:
        log_path = Path(logs) / "worker.log"
        with log_path.open("wb") as log:
            # A session of its own: a terminal's Ctrl-C reaches it once, through this task.
            child = subprocess.Popen(command, env=worker_env(url), stdin=subprocess.PIPE, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _supervise(child, control)
        finally:
            if child.poll() is None:
                child.kill()
            child.wait()
            child.stdin.close()
        return worker_id, child.returncode, output_tail(log_path)


class _Control:
    """The two events of one run on the cluster: ``go`` (the study exists) and ``stop``."""

    def __init__(self, distributed, run: str, client: Any = None):
        self.go = distributed.Event(f"{run}-go", client=client)
        self.stop = distributed.Event(f"{run}-stop", client=client)

    def told(self, wait: float) -> str | None:
        """``stop``, ``go``, or None when neither is set within ``wait`` seconds."""
        if _asked(self.stop.is_set):
            return STOP
        return GO if _asked(self.go.wait, wait) else None

    def stopping(self) -> bool:
        """Whether ``stop`` is set."""
        return _asked(self.stop.is_set)

    def remove(self) -> None:
        """Clear both events: the scheduler forgets them once nobody waits."""
        for event in (self.go, self.stop):
            _asked(event.clear)


def _asked(call, *args) -> bool:
    """``call(*args)`` to the scheduler; False if it is out of reach for a moment."""
    try:
        return bool(call(*args))
    except Exception:  # noqa: BLE001 - a dropped connection: the caller looks again
        time.sleep(POLL)
        return False


def _supervise(child: subprocess.Popen, control: _Control) -> None:
    """Tell ``child`` go or stop when the run's events say so, SIGTERM it on a later stop
    (SIGKILL after :data:`STOP_GRACE`), and return when it has ended."""
    told, asked, stopped = None, time.monotonic(), None
    while child.poll() is None:
        if told is None:
            state = control.told(POLL)  # waits up to POLL for go
            if state is not None or time.monotonic() - asked > GO_WAIT:
                told = state or STOP
                _say(child, told)
            continue
        try:
            child.wait(timeout=POLL)  # returns as soon as it ends
        except subprocess.TimeoutExpired:
            pass
        if child.poll() is not None:
            break
        if stopped is None and control.stopping():
            child.send_signal(signal.SIGTERM)  # records its running trials as failed, exits 130
            stopped = time.monotonic()
        elif stopped is not None and time.monotonic() - stopped > STOP_GRACE:
            child.kill()


def _say(child: subprocess.Popen, line: str) -> None:
    """Write ``line`` to a worker waiting to be told (see :func:`fcnn_opt.search.workers.wait_for_go`);
    after ``go`` its input stays open, the sign that this Dask worker lives."""
    try:
        child.stdin.write(f"{line}\n".encode())
        child.stdin.flush()
        if line != GO:
            child.stdin.close()
    except OSError:  # it has ended already; its exit code says why
        pass


def _import_distributed():
    """Dask's distributed scheduler, or an ImportError that says what to install."""
    try:
        import distributed
    except ImportError:
        raise ImportError("--cluster needs Dask's distributed scheduler: pip install 'fcnn_opt[cluster]' "
                          "(here and on the cluster's machines)") from None
    return distributed


@contextmanager
def _client(distributed, address: str, n_workers: int | None, needs: dict[str, float]) -> Iterator[Any]:
    """A client of the cluster at ``address``, or of a LocalCluster started here for ``local[:N]``;
    closed at the end.

    The LocalCluster's N Dask workers are threads of this process (with room for
    ``n_workers`` tasks between them): a task only watches its worker process, which trains,
    so worker processes of Dask's own would only add their start (2.5 s of W2's 30 s here).

    Dask's own log lines stay out of this command's output (its scheduler and workers keep
    theirs): errors only while it runs, nothing while it closes, when connections that end
    are reported at length."""
    from distributed.utils import silence_logging_cmgr

    with silence_logging_cmgr(logging.ERROR):
        cluster = None
        if is_local(address):
            size = local_size(address) or n_workers or os.cpu_count() or 1
            cluster = distributed.LocalCluster(
                n_workers=size, threads_per_worker=math.ceil((n_workers or size) / size), processes=False,
                dashboard_address=":0",  # a free port: the scheduler serves HTTP in any case
                silence_logs=False, resources=needs or None)
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(address, timeout=CONNECT_TIMEOUT)
            except (OSError, TimeoutError, ValueError) as exc:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise ClusterError(f"--cluster {address}: cannot reach the Dask scheduler ({reason}).") from None
        try:
            yield client
        finally:
            with silence_logging_cmgr(logging.CRITICAL):
                client.close()
                if cluster is not None:
                    cluster.close()


def _room(client: Any, needs: dict[str, float], address: str) -> int:
    """How many worker tasks the cluster's workers can run at once now (threads, and the
    resources each task needs)."""
    workers = _scheduler_info(client).get("workers", {})
    room = 0
    for info in workers.values():
        fits = [int(info.get("resources", {}).get(name, 0) // amount) for name, amount in needs.items()]
        room += min([info.get("nthreads", 1), *fits])
    if room < 1:
        wanted = f" with {', '.join(f'{k}={v:g}' for k, v in needs.items())}" if needs else ""
        raise ClusterError(f"--cluster {address}: the cluster has no worker{wanted} yet; give --workers N to "
                           "submit N worker tasks that wait for Dask workers to join.")
    return room


def _scheduler_info(client: Any) -> dict:
    """The scheduler's description of itself and of all its workers."""
    try:
        return client.scheduler_info(n_workers=-1)
    except TypeError:  # older releases of distributed take no n_workers and describe them all
        return client.scheduler_info()


def _where(client: Any, address: str, n: int) -> str:
    """One line on where the tasks went, with the dashboard's address when there is one."""
    where = f"a LocalCluster of {len(client.nthreads())} Dask workers" if is_local(address) \
        else f"the Dask cluster at {client.scheduler.address}"
    shown = "dashboard" in _scheduler_info(client).get("services", {})
    if is_local(address):  # a remote scheduler's machine may have bokeh; this one must, to draw it
        shown = shown and importlib.util.find_spec("bokeh") is not None
    dashboard = f" (dashboard {client.dashboard_link})" if shown else ""
    return f"cluster   {n} worker task{'s' if n != 1 else ''} on {where}{dashboard}"


def _follow(distributed, client: Any, futures: list, study: Any, summary: RunSummary, control: _Control,
            progress: bool, timeout: float | None) -> bool:
    """Wait for the tasks, drawing the progress bar from the storage; returns whether the run
    was stopped (Ctrl-C or SIGTERM: the tasks are told to stop, and waited for up to
    :data:`STOP_GRACE` seconds while their workers record their running trials)."""
    start = time.perf_counter()
    bar = progress_bar(progress, summary.budget, summary.counts, timeout)
    clock = (timeout, start) if timeout is not None else None
    try:
        with sigterm_as_interrupt():
            try:
                while not _all_ended(distributed, client, futures):
                    if bar is not None:
                        update_bar(bar, study, Counts.of(study), summary.budget, clock)
            except KeyboardInterrupt:
                control.stop.set()
                return True
            finally:
                if bar is not None:
                    update_bar(bar, study, Counts.of(study), summary.budget, clock)
    finally:
        close_bar(bar, start, timeout)
    return False


def _all_ended(distributed, client: Any, futures: list) -> bool:
    """Wait up to :data:`POLL` seconds for the tasks; whether all have ended. Once one worker
    has ended well (the study is done), a task still waiting for a thread, which a dead
    Dask worker's task may do, is cancelled rather than waited for."""
    try:
        distributed.wait(futures, timeout=POLL)
        return True
    except TimeoutError:
        pass
    if not any(f.status == "finished" and f.result()[1] == 0 for f in futures):
        return False
    busy = {key for keys in client.processing().values() for key in keys}
    waiting = [f for f in futures if not f.done() and f.key not in busy]
    if waiting:
        client.cancel(waiting)
    return all(f.done() or f in waiting for f in futures)


def _end(distributed, futures: list, control: _Control, stop: bool) -> None:
    """With ``stop``, set the stop event (every task still waiting or running ends its worker);
    wait for the tasks for up to :data:`STOP_GRACE` seconds, cancel those left, and remove the
    events (the stop event stays set if tasks are left that could still look)."""
    if stop:
        control.stop.set()
    try:
        distributed.wait(futures, timeout=STOP_GRACE + 2 * POLL)
    except (TimeoutError, KeyboardInterrupt):  # a second Ctrl-C: stop waiting
        pass
    left = [f for f in futures if not f.done()]
    if left:
        control.stop.set()
        left[0].client.cancel(left)
    else:
        control.remove()


def _failures(futures: list) -> list[FailedWorker]:
    """The worker tasks that ended badly: a worker's exit code and last lines, or the task's error."""
    failed = []
    for k, f in enumerate(futures):
        if f.status == "finished":
            _, code, tail = f.result()
            if code != 0:
                failed.append(FailedWorker(k, code, tail))
        elif f.status == "error":
            exc = f.exception()
            hint = ("; install fcnn_opt on the cluster's machines" if isinstance(exc, ModuleNotFoundError)
                    and "fcnn_opt" in str(exc) else "")
            failed.append(FailedWorker(k, 1, f"the Dask task failed: {type(exc).__name__}: {exc}{hint}"))
    return failed
