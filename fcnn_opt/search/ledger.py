"""The study's ledger: which trials count toward the budget, which may run, which are dead.

Many processes on many machines share one study. Three rules keep its trial list exact:

**The budget is exact.** A trial *counts* while it is COMPLETE, PRUNED, RUNNING or WAITING.
Trial numbers only grow (the storage numbers trials in the order they are created), so
the set of counting trials numbered below a given trial can only shrink, by failures.
A worker that has just claimed trial ``t`` lets it run only if fewer than ``budget``
counting trials are numbered below it (:func:`refusal`); otherwise ``t`` is finished at
once as FAIL with the system attribute ``fcnn_opt_skipped = "surplus"`` and never trains.
If trials ``t1 < ... < tk`` all passed the check and still count, ``tk`` passed with fewer
than ``budget`` counting trials below it, ``t1 .. tk-1`` among them, so ``k <= budget``: no
interleaving of workers can finish more than ``budget`` trials. A failed trial leaves the
count, so a later trial takes its place until exactly ``budget`` are done.

**A grid point runs once.** Grid points are queued (``fixed_params``); a claimed grid trial
runs only if no counting trial with a lower number holds the same point; otherwise it is
finished as FAIL with ``fcnn_opt_skipped = "duplicate"``. The same argument as above,
with a budget of one per point, shows that a point completes at most once, even if the
grid was queued twice by two processes at the same moment.

**Dead workers are noticed.** A running trial records a heartbeat (Optuna's own on RDB
storages; a counter in a system attribute on journal files, which have no heartbeat of
their own). A trial whose heartbeat is older than the grace period (on RDB, measured on
the database server's clock), or that this process has watched stay unchanged for that
long (journal files, and RDB trials that died before their first heartbeat), is stale: it
is failed with a ``fail_reason`` and queued again with the same parameters, as Optuna's
``RetryHeartbeatStaleTrialCallback`` does (at most 3 times per trial).
"""

from __future__ import annotations

import bisect
import json
import os
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from fcnn_opt.store import optuna_internals as internals
from fcnn_opt.store.storages import heartbeat_settings, retrying

if TYPE_CHECKING:
    import optuna

SKIPPED_ATTR = "fcnn_opt_skipped"  # "surplus" or "duplicate": finished as FAIL without running
BEAT_ATTR = "fcnn_opt_beat"  # fcnn_opt's heartbeat counter, for storages without one
MAX_RETRY = 3  # a trial found stale is queued again at most this many times


class NextStep(StrEnum):
    """What the worker loop does next, as the ledger or the time left decides (each member
    equals the string it stood for before, so old comparisons still hold)."""

    DONE = "done"  # the budget is used up, or every grid point is done or failed for good
    STOP = "stop"  # too little time left to continue a trial: the run ends
    QUEUED = "queued"  # a continuation of a best trial was queued: claim it next
    SEARCH = "search"  # nothing to continue yet: the search goes on


@dataclass(frozen=True)
class Row:
    """One trial as the ledger needs it: no parameters, values or attributes loaded.

    ``trial_id`` is None where Optuna's public API gives only numbers (see :func:`trial_id`)."""

    trial_id: int | None
    number: int
    state: Any  # optuna.trial.TrialState
    point: str | None = None  # the grid point (fixed_params as JSON) of a queued trial
    skipped: str | None = None
    beat: Any = None  # the last heartbeat (a time on RDB, a counter on journals)


@dataclass
class Counts:
    """How many of a study's trials are in each state (skipped ones apart from failed ones)."""

    complete: int = 0
    pruned: int = 0
    failed: int = 0  # failed while running (errors, divergence, interrupts, stale)
    running: int = 0
    waiting: int = 0
    skipped: int = 0  # finished as FAIL without running: surplus or duplicate

    @classmethod
    def of(cls, study: optuna.Study) -> Counts:
        """The counts of ``study``'s trials now (one read of the trial list)."""
        return cls.from_rows(rows(study))

    @classmethod
    def from_rows(cls, trial_rows: list[Row]) -> Counts:
        """The counts of ``trial_rows`` by state (a trial failed without running counts as skipped)."""
        counts = cls()
        for r in trial_rows:
            name = r.state.name
            if name == "FAIL":
                name = "SKIPPED" if r.skipped else "FAILED"
            attr = name.lower()
            if hasattr(counts, attr):
                setattr(counts, attr, getattr(counts, attr) + 1)
        return counts

    @property
    def done(self) -> int:
        """Trials that count towards the budget: complete and pruned."""
        return self.complete + self.pruned


def rows(study: optuna.Study) -> list[Row]:
    """Every trial of the study, ordered by number (one light query on RDB storages)."""
    found = retrying(internals.trial_rows, study, ("fixed_params", SKIPPED_ATTR), BEAT_ATTR,
                     what="reading the trial list")
    return [_row(r) for r in found]


def _row(r: internals.TrialRow) -> Row:
    return Row(r.trial_id, r.number, r.state, grid_point(r.system_attrs.get("fixed_params")),
               r.system_attrs.get(SKIPPED_ATTR), r.beat)


def _counted_as(row: Row) -> str:
    """The :class:`Counts` field a row counts in."""
    name = row.state.name
    return ("skipped" if row.skipped else "failed") if name == "FAIL" else name.lower()


def _counting(row: Row) -> bool:
    """Whether a row counts toward the budget (see the module's first rule)."""
    return row.state.name in ("COMPLETE", "PRUNED", "RUNNING", "WAITING") and not row.skipped


class TrialList:
    """The study's trial list, kept up to date by reading only what may have changed.

    A finished trial (complete, pruned or failed) never changes again, and the storage
    numbers a study's trials one at a time, so each :meth:`read` asks only for the trials
    created since the last read and for those that were waiting or running then: its cost
    follows what changed, not the study's size (one short query on RDB storages; see
    :func:`fcnn_opt.store.optuna_internals.trial_rows`). ``counts`` and the verdicts of
    :meth:`admission` are kept up to date with it; ``finished`` lists the rows that became
    complete or pruned, in the order they were read (the pruning mirror copies them from it).
    """

    def __init__(self, study: optuna.Study):
        self.study = study
        self.by_number: dict[int, Row] = {}
        self.numbers: list[int] = []  # sorted
        self.open: dict[int, Row] = {}  # number -> the waiting and running rows, as last read
        self.counts = Counts()
        self.not_counting: list[int] = []  # sorted numbers of the rows that do not count
        self.finished: list[Row] = []  # rows as they were read complete or pruned
        self._last: Row | None = None  # the newest row read

    def read(self) -> list[Row]:
        """Bring the list up to date; returns the rows that are new or changed since the last read."""
        after = None if self._last is None else (self._last.trial_id, self._last.number)
        found = retrying(internals.trial_rows, self.study, ("fixed_params", SKIPPED_ATTR), BEAT_ATTR, after,
                         [(r.trial_id, r.number) for r in self.open.values()], what="reading the trial list")
        changed = []
        for raw in found:
            row = _row(raw)
            old = self.by_number.get(row.number)
            if old is None:
                bisect.insort(self.numbers, row.number)
                if self._last is None or row.number > self._last.number:
                    self._last = row
            elif old == row:
                continue
            else:
                field = _counted_as(old)
                setattr(self.counts, field, getattr(self.counts, field) - 1)
            field = _counted_as(row)
            if hasattr(self.counts, field):
                setattr(self.counts, field, getattr(self.counts, field) + 1)
            if (old is None or _counting(old)) and not _counting(row):
                bisect.insort(self.not_counting, row.number)
            if row.state.name in ("WAITING", "RUNNING"):
                self.open[row.number] = row
            else:
                self.open.pop(row.number, None)
                if row.state.name in ("COMPLETE", "PRUNED") and (old is None or old.state != row.state):
                    self.finished.append(row)
            self.by_number[row.number] = row
            changed.append(row)
        return changed

    def waiting(self) -> list[Row]:
        """The queued trials, lowest number first."""
        return sorted((r for r in self.open.values() if r.state.name == "WAITING"), key=lambda r: r.number)

    def running(self) -> list[Row]:
        """The running trials, lowest number first."""
        return sorted((r for r in self.open.values() if r.state.name == "RUNNING"), key=lambda r: r.number)

    def rows(self) -> list[Row]:
        """Every row, ordered by number (a copy; reading it costs the study's size)."""
        return [self.by_number[n] for n in self.numbers]

    def counting_below(self, number: int) -> int:
        """How many trials numbered below ``number`` count toward the budget."""
        return bisect.bisect_left(self.numbers, number) - bisect.bisect_left(self.not_counting, number)

    def surely_admitted(self, number: int, budget: int) -> bool:
        """Whether trial ``number`` passes the budget rule whatever others did since the last
        read: at most ``number`` trials are numbered below it, and those this list knows not to
        count (failed ones never count again) leave fewer than ``budget``. Then a claim need
        not read the list again before admitting it (a worker far from the budget never does)."""
        return number - bisect.bisect_left(self.not_counting, number) < budget

    def refusal(self, number: int, budget: int, *, per_point: bool, rank: bool = True) -> str | None:
        """:meth:`Admission.refusal` on the list as last read, without rereading it: O(log n)
        for the budget rule; a grid's duplicate rule (``per_point``) reads every row."""
        if per_point:
            return Admission(self.rows()).refusal(number, budget, per_point=True, rank=rank)
        if rank and self.counting_below(number) >= budget:
            return f"surplus: the study's {budget} trials were claimed by others first; never ran"
        return None


def trial_id(study: optuna.Study, row: Row) -> int:
    """The storage id of a row's trial."""
    return row.trial_id if row.trial_id is not None else internals.trial_id_for_number(study, row.number)


def grid_point(fixed) -> str | None:
    """A grid point's fixed parameters as a canonical JSON key (None when the trial has none)."""
    return json.dumps(fixed, sort_keys=True) if fixed else None


class Admission:
    """The ledger's verdicts on just-claimed trials, from one read of the trial list.

    Works in O(log n) per trial (a batch of a thousand claimed trials in a study of ten
    thousand is checked at once). Trials refused earlier in the same batch still count
    here, which only makes later verdicts stricter, never looser.
    """

    def __init__(self, trial_rows: list[Row]):
        counting = [r for r in trial_rows if r.state.name in ("COMPLETE", "PRUNED", "RUNNING", "WAITING")
                    and not r.skipped]
        self.by_number = {r.number: r for r in trial_rows}
        self.numbers = sorted(r.number for r in counting)
        self.first_at: dict[str, int] = {}  # grid point -> lowest number of a counting trial on it
        for r in counting:
            if r.point is not None and r.number < self.first_at.get(r.point, r.number + 1):
                self.first_at[r.point] = r.number

    def refusal(self, number: int, budget: int, *, per_point: bool, rank: bool = True) -> str | None:
        """Why the just-claimed trial ``number`` must not run (surplus or duplicate), or None."""
        me = self.by_number[number]
        if per_point and me.point is not None and self.first_at.get(me.point, me.number) < me.number:
            return f"duplicate: trial {self.first_at[me.point]} already holds this grid point"
        if rank and bisect.bisect_left(self.numbers, me.number) >= budget:
            return f"surplus: the study's {budget} trials were claimed by others first; never ran"
        return None


def refusal(trial_rows: list[Row], number: int, budget: int, *, per_point: bool,
            rank: bool = True) -> str | None:
    """Why the just-claimed trial must not run (surplus or duplicate), or None if it may.

    ``rank``: refuse it when ``budget`` counting trials have lower numbers (the budget rule);
    ``per_point``: refuse it when a counting trial with a lower number holds its grid point.
    """
    return Admission(trial_rows).refusal(number, budget, per_point=per_point, rank=rank)


def skip(study: optuna.Study, trial: optuna.Trial, reason: str) -> None:
    """Finish a claimed trial as FAIL without running it, saying why."""
    from optuna.trial import TrialState

    storage = internals.storage_of(study)
    storage.set_trial_system_attr(internals.trial_id_of(trial), SKIPPED_ATTR, reason.split(":")[0])
    trial.set_user_attr("fail_reason", reason)
    study.tell(trial, state=TrialState.FAIL)


def worker_name() -> str:
    """This process's name in the ledger and in stale-trial messages: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def watches_heartbeats(storage) -> bool:
    """Whether running trials on this storage carry heartbeats that can go stale: an RDB
    storage opened with heartbeats, or a journal file (never an in-memory storage)."""
    backend = internals.rdb_backend(storage)
    if backend is not None:
        return backend.get_heartbeat_interval() is not None
    return internals.is_journal(storage)


@contextmanager
def heartbeat(study: optuna.Study, trial_ids: list[int]):
    """Record the running trials' heartbeats in a background thread while the block runs."""
    storage = internals.storage_of(study)
    if not watches_heartbeats(storage):
        yield
        return
    interval, _ = heartbeat_settings()
    stop = threading.Event()

    # The first beat comes after one interval, not at once: a trial shorter than that writes
    # none (a write per trial that W2's and W3's short trials would pay), and a watcher judges a
    # trial without any beat by how long it has seen it RUNNING, over the same grace period.
    def beat():
        count = 0
        while not stop.wait(interval):
            count += 1
            try:
                internals.beat_all(storage, trial_ids, count, BEAT_ATTR)
            except Exception:  # a trial failed as stale, or a lost database: try again at the next beat
                pass

    thread = threading.Thread(target=beat, daemon=True, name="heartbeat")
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


class StaleWatch:
    """Finds this study's stale running trials, fails them and queues them again."""

    def __init__(self, study: optuna.Study):
        self.study = study
        self.storage = internals.storage_of(study)
        self.enabled = watches_heartbeats(self.storage)
        self.in_table = internals.beats_in_table(self.storage)  # else a counter attribute
        self.interval, self.grace = heartbeat_settings() if self.enabled else (0, 0)
        self._seen: dict[int, tuple[Any, float]] = {}  # trial_id -> (last beat, first seen at)
        self._last_sweep = -float("inf")

    def sweep(self, trial_rows: list[Row]) -> int:
        """Fail and requeue every stale trial; returns how many this process failed.

        Looks at most once per heartbeat interval: staleness is a matter of seconds.
        """
        now = time.monotonic()
        if not self.enabled or now - self._last_sweep < self.interval:
            return 0
        self._last_sweep = now
        running = {trial_id(self.study, r): r for r in trial_rows if r.state.name == "RUNNING"}
        stale = set(t for t in internals.stale_trial_ids(self.storage, internals.study_id_of(self.study))
                    if t in running)
        for trial_id_, r in running.items():
            if self.in_table and r.beat is not None:
                continue  # the server's clock judges trials with a heartbeat
            last = self._seen.get(trial_id_)
            if last is None or last[0] != r.beat:
                self._seen[trial_id_] = (r.beat, now)
            elif now - last[1] > self.grace:
                stale.add(trial_id_)
        self._seen = {k: v for k, v in self._seen.items() if k in running}
        return sum(self._fail_and_requeue(t) for t in sorted(stale))

    def _fail_and_requeue(self, trial_id: int) -> bool:
        import optuna
        from optuna.trial import TrialState

        storage = self.storage
        reason = (f"stale: no heartbeat for over {self.grace} s (its worker died or lost the "
                  f"database); failed by {worker_name()} and queued again")
        try:
            storage.set_trial_user_attr(trial_id, "fail_reason", reason)
            won = internals.set_state_without_retry(storage, trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            return False  # finished meanwhile, by its worker or by another watcher
        if won:
            requeue(self.study, storage.get_trial(trial_id))
        return bool(won)


def requeue(study: optuna.Study, trial, max_retry: int = MAX_RETRY) -> bool:
    """Queue a failed trial again with its parameters; the system attributes ``failed_trial``
    and ``retry_history`` follow Optuna's ``RetryHeartbeatStaleTrialCallback``."""
    import optuna

    system_attrs = {k: v for k, v in trial.system_attrs.items() if not k.startswith("fcnn_opt_")}
    history = [*system_attrs.get("retry_history", []), trial.number]
    if len(history) > max_retry:
        return False
    system_attrs = {"failed_trial": trial.number, **system_attrs, "retry_history": history}
    study.add_trial(optuna.trial.create_trial(
        state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        system_attrs=system_attrs))
    return True
