"""Optuna storages by URL: SQLite by default, any RDB or journal file on request.

Passwords in URLs are masked wherever a URL is shown (:func:`mask_url`). RDB storages
retry what is safe to retry when the connection drops (:class:`ResilientRDBStorage`), so a
worker rides out a restarted database server instead of losing its trial.

Heartbeat settings come from the environment, and every worker of one study must use the
same ones: ``FCNN_OPT_HEARTBEAT`` (seconds between a running trial's heartbeats, default 5),
``FCNN_OPT_GRACE`` (seconds of silence after which a running trial is stale, default 20) and
``FCNN_OPT_DB_RETRY`` (seconds a worker keeps retrying a lost database, default 120).

The kinds of storage are the entries of :data:`STORAGES` (SQLite, PostgreSQL, MySQL, journal
files), found by a URL's scheme; :func:`register_storage` adds one. Any other SQLAlchemy URL
is opened as an RDB storage, as it is.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcnn_opt.store.optuna_internals import (
    RETRIED_PRIVATE_METHODS,
    heartbeat_arguments,
    study_user_attrs,
)

DEFAULT_STORAGE = "sqlite:///studies/fcnn_opt.db"
HEARTBEAT_INTERVAL = 5  # seconds between a running trial's heartbeats
GRACE_PERIOD = 20  # a RUNNING trial silent this long is stale: failed, then retried
DB_RETRY_SECONDS = 120  # how long a transient database error is retried before giving up
CONNECT_TIMEOUT = 10  # seconds to reach a database server before "unreachable"


_log = logging.getLogger(__name__)


class StorageError(ValueError):
    """A storage URL that cannot be used; the message says why."""


def default_url() -> str:
    """The storage used when none is given: ``$OPTUNA_STORAGE``, else :data:`DEFAULT_STORAGE`."""
    return os.environ.get("OPTUNA_STORAGE") or DEFAULT_STORAGE


_PASSWORD_IN_NETLOC = re.compile(r"(\w[\w+.-]*://[^:/@\s'\"]*:)[^\s'\"]*@")
_PASSWORD_IN_QUERY = re.compile(r"((?:password|passwd)=)[^&\s'\"]*", re.IGNORECASE)


def mask_url(text: str) -> str:
    """Hide passwords in a URL or in a message quoting one.

    >>> mask_url("postgresql://user:s3cret@host/db")
    'postgresql://user:***@host/db'
    """
    return _PASSWORD_IN_QUERY.sub(r"\1***", _PASSWORD_IN_NETLOC.sub(r"\1***@", text))


def safe_filename(name: str) -> str:
    """A study name made safe for a file or folder name: no separators, no leading dots."""
    cleaned = re.sub(r"[^A-Za-z0-9._=-]+", "_", name).lstrip(".")
    return cleaned[:80] or "study"


def _env_seconds(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise StorageError(f"${name} must be a whole number of seconds > 0, got {raw!r}.")
    return value


def heartbeat_settings() -> tuple[int, int]:
    """(interval, grace period) in seconds, from the environment or the defaults."""
    interval = _env_seconds("FCNN_OPT_HEARTBEAT", HEARTBEAT_INTERVAL)
    grace = _env_seconds("FCNN_OPT_GRACE", GRACE_PERIOD)
    if grace <= interval:
        raise StorageError(f"$FCNN_OPT_GRACE ({grace} s) must be longer than the heartbeat interval "
                           f"({interval} s), or live trials would be taken for dead ones.")
    return interval, grace


def db_retry_seconds() -> int:
    """How long a transient database error is retried: ``$FCNN_OPT_DB_RETRY`` seconds, else
    :data:`DB_RETRY_SECONDS`."""
    return _env_seconds("FCNN_OPT_DB_RETRY", DB_RETRY_SECONDS)


def sqlite_path(url: str) -> Path | None:
    """The database file of an SQLite URL (relative as written), or None for any other URL."""
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    return None


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that exists but is not an Optuna database; never touch it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    import sqlite3

    # Read through SQLite only: closing a plain file handle on the database would drop every
    # POSIX lock this process holds on it, under the feet of its open connections (seen as
    # "disk I/O error" in a WAL database another process had just closed).
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        if "not a database" in str(exc):
            raise StorageError(f"{path} is not an SQLite database; refusing to use it as a study storage.") from None
        raise StorageError(f"{path} is a damaged SQLite file ({exc}); refusing to use it.") from None
    if tables and not {"studies", "trials"} <= tables:
        raise StorageError(f"{path} is an SQLite database of another application (tables: "
                           f"{', '.join(sorted(tables)[:5])}); refusing to use it as a study storage.")


def _check_journal_file(path: Path) -> None:
    """Refuse a file that exists but is not an Optuna journal; never touch it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    import json

    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    try:
        record = json.loads(first)
    except ValueError:
        record = None
    if not isinstance(record, dict) or "op_code" not in record:
        raise StorageError(f"{path} is not an Optuna journal file; refusing to use it as a study storage.")


def is_transient(exc: BaseException) -> bool:
    """Whether a database error is worth retrying: a lost connection or a lock, not bad data."""
    import optuna
    import sqlalchemy.exc as sa

    if isinstance(exc, optuna.exceptions.StorageInternalError):
        exc = exc.__cause__ or exc
    if isinstance(exc, sa.DBAPIError) and exc.connection_invalidated:
        return True
    # PendingRollbackError: a session whose connection died mid-transaction (Optuna may go on
    # using it after catching the first error); the retry starts a new transaction.
    return isinstance(exc, (sa.OperationalError, sa.InterfaceError, sa.TimeoutError, sa.PendingRollbackError))


def _racing_table_creation(exc: BaseException) -> bool:
    """Two processes creating Optuna's tables in a new database at once: one of them loses."""
    import sqlalchemy.exc as sa

    text = str(exc)
    return isinstance(exc, (sa.IntegrityError, sa.ProgrammingError)) and (
        "already exists" in text or "pg_type_typname_nsp_index" in text)


def retrying(fn, *args, what: str = "database call", deadline: float | None = None,
             retry_if=is_transient, **kwargs):
    """Call ``fn`` until it succeeds, retrying transient database errors with backoff.

    Gives up (re-raising the last error) after ``$FCNN_OPT_DB_RETRY`` seconds or at
    ``deadline``; says on stderr what is being retried (``what``) once an outage lasts.
    """
    deadline = deadline or time.monotonic() + db_retry_seconds()
    delay = 0.1
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:
            if not retry_if(exc) or time.monotonic() + delay > deadline:
                raise
            if what and delay >= 0.8:  # say so once an outage lasts, not on every blip
                reason = str(exc.__cause__ or exc).strip().splitlines()
                _log.warning("%s failed (%s); retrying", what, mask_url(reason[0] if reason else type(exc).__name__))
        time.sleep(delay)
        delay = min(delay * 2, 5.0)


def _make_resilient_class():
    import optuna
    from optuna.trial import TrialState

    class ResilientRDBStorage(optuna.storages.RDBStorage):
        """RDBStorage that retries reads and idempotent writes when the connection drops.

        Retried: every read, heartbeats, intermediate values, attributes and parameters
        (upserts, or inserts whose duplicate Optuna ignores), and finishing a trial (a retry
        that finds the trial already finished the same way counts as done). Not retried:
        creating a trial (Optuna itself retries it) and claiming a waiting trial, whose
        outcome cannot be known after a dropped commit; a trial lost that way has no
        heartbeat and is failed and requeued as stale.
        """

        def set_trial_state_values(self, trial_id, state, values=None):
            parent = super().set_trial_state_values
            if state == TrialState.RUNNING:
                return parent(trial_id, state, values)
            attempts = []

            def finish():
                attempts.append(1)
                try:
                    return parent(trial_id, state, values)
                except optuna.exceptions.UpdateFinishedTrialError:
                    if len(attempts) > 1:  # did our first, "failed" commit go through after all?
                        stored = self.get_trial(trial_id)
                        same = values is None or list(stored.values or []) == [float(v) for v in values]
                        if stored.state == state and same:
                            return True
                    raise

            return retrying(finish, what="finishing a trial")

    public = ("get_trial", "get_all_trials", "get_study_user_attrs", "get_study_system_attrs",
              "get_study_directions", "get_study_id_from_name", "get_study_name_from_id",
              "get_all_studies", "get_trial_id_from_study_id_trial_number", "get_best_trial",
              "get_trial_param", "get_trial_user_attrs", "get_trial_system_attrs", "record_heartbeat",
              "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
              "set_study_user_attr", "set_study_system_attr")
    for name in (*public, *RETRIED_PRIVATE_METHODS):
        method = getattr(optuna.storages.RDBStorage, name, None)  # a private one may be gone
        if method is not None:
            setattr(ResilientRDBStorage, name, _retried(method))
    optunas_attrs = ResilientRDBStorage.get_study_user_attrs

    def get_study_user_attrs(self, study_id):
        """The study's user attributes in one query (every worker reads its budget at every
        turn; Optuna's own read loads the study first), retried like the others; Optuna's own
        read where the fast path is off or the study has none (a missing study raises there)."""
        attrs = retrying(study_user_attrs, self, study_id, what="get_study_user_attrs")
        return attrs if attrs else optunas_attrs(self, study_id)

    ResilientRDBStorage.get_study_user_attrs = get_study_user_attrs
    return ResilientRDBStorage


def _retried(method):
    def wrapper(self, *args, **kwargs):
        return retrying(method, self, *args, what=method.__name__, **kwargs)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    return wrapper


_RESILIENT = None


def resilient_class():
    """``ResilientRDBStorage``: Optuna's ``RDBStorage`` whose calls retry through a dropped
    connection (built on first use, so that Optuna is imported only then)."""
    global _RESILIENT
    if _RESILIENT is None:
        _RESILIENT = _make_resilient_class()
    return _RESILIENT


@dataclass(frozen=True)
class StorageKind:
    """One kind of storage: its name, the URL schemes that mean it, how it is opened, the pip
    extra it needs, and what it is.

    ``factory(url, heartbeat=..., read_only=...)`` returns the Optuna storage for ``url``.
    ``drivers``: ``(SQLAlchemy driver, module)`` pairs, in our order of preference, one of
    which :func:`with_driver` names in a URL that names none. ``local_file``: the URL names a
    file on this machine (the artifact folder goes beside it). ``heartbeats``: the storage
    records running trials' heartbeats itself (a journal file gets fcnn_opt's own).
    """

    name: str
    schemes: tuple[str, ...]
    factory: Callable[..., Any]
    description: str = ""
    extra: str | None = None
    drivers: tuple[tuple[str, str], ...] = ()
    local_file: bool = False
    heartbeats: bool = True


STORAGES: dict[str, StorageKind] = {}  # name -> kind, in the order they were registered


def register_storage(name: str, schemes, factory: Callable[..., Any], *, description: str = "",
                     extra: str | None = None, drivers=(), local_file: bool = False, heartbeats: bool = True,
                     replace: bool = False) -> StorageKind:
    """Register a kind of storage under ``name`` for the URL ``schemes`` (``"redis"`` for
    ``redis://...``) and return it; ``factory(url, heartbeat=..., read_only=...)`` opens one.
    A scheme another kind has is an error unless ``replace`` is true."""
    taken = {scheme: kind.name for kind in STORAGES.values() for scheme in kind.schemes if kind.name != name}
    clash = [scheme for scheme in schemes if scheme in taken]
    if (name in STORAGES or clash) and not replace:
        raise StorageError(f"A storage named {name!r} or for the scheme(s) {clash} is registered already; "
                           "pass replace=True to replace it.")
    kind = StorageKind(name, tuple(schemes), factory, description, extra, tuple(drivers), local_file, heartbeats)
    STORAGES[name] = kind
    return kind


def url_scheme(url: str) -> str:
    """The scheme of a storage URL without its driver: ``postgresql`` for
    ``postgresql+psycopg2://...``, ``journal`` for ``journal:PATH``."""
    scheme, colon, _ = url.partition(":")
    return scheme.partition("+")[0] if colon else ""


def storage_kind(url: str) -> StorageKind | None:
    """The registered kind of storage ``url`` names by its scheme, or None (any other
    SQLAlchemy URL, opened as it is)."""
    scheme = url_scheme(url)
    return next((kind for kind in STORAGES.values() if scheme in kind.schemes), None)


def with_driver(url: str) -> str:
    """Name an installed driver in a PostgreSQL or MySQL URL that names none.

    SQLAlchemy 2.1 picks psycopg 3 for ``postgresql://`` and mysqlclient for ``mysql://``;
    the ``postgres`` and ``mysql`` extras install psycopg2 and PyMySQL. ``postgres://`` (as
    some hosting services write it) means ``postgresql://``.
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme == "postgres":
        scheme = "postgresql"
    kind = storage_kind(url) if sep else None
    if kind is None or not kind.drivers or "+" in scheme:
        return f"{scheme}{sep}{rest}"
    for driver, module in kind.drivers:
        if importlib.util.find_spec(module) is not None:
            return f"{scheme}+{driver}://{rest}"
    raise StorageError(f"Storage {mask_url(url)} needs a database driver: pip install 'fcnn_opt[{kind.extra}]'.")


def load_storage_modules(url: str | None = None) -> None:
    """Import what opening ``url`` will import, without opening it (a worker started while
    its study is still being created does this meanwhile). For a database, the first
    ``RDBStorage`` of a process costs 0.6 s (SQLAlchemy, Optuna's tables, Alembic's
    migration scripts), the next one 0.04 s: one is made on a private in-memory database."""
    url = url or default_url()
    if url.startswith("journal:") or "://" not in url:
        return
    import optuna

    optuna.storages.RDBStorage("sqlite://")


def open_storage(url: str | None = None, *, heartbeat: bool = True, read_only: bool = False):
    """An Optuna storage for ``url`` (an RDB URL, or ``journal:PATH`` for a journal file).

    RDB storages record heartbeats (unless ``heartbeat=False``); journal files get fcnn_opt's
    own heartbeat from the worker loop (see :mod:`fcnn_opt.search.ledger`). ``read_only``
    (the commands that only read: ``best``, ``trials``, ``report``...) records no heartbeat and
    leaves an SQLite file's journal mode as it found it, so reading never changes its bytes.
    An SQLite storage is closed when the process ends (:func:`close_sqlite_storages`), leaving
    one self-contained ``.db`` file behind.
    """
    heartbeat = heartbeat and not read_only
    import optuna

    # Heartbeats and their retry callback are marked experimental; they are what we rely on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = url or default_url()
    kind = storage_kind(url)
    if kind is None and "://" not in url:
        raise StorageError(f"Storage URL {mask_url(url)!r} is malformed. Expected e.g. "
                           f"{DEFAULT_STORAGE}, postgresql://user@host/db or journal:PATH.")
    return (kind.factory if kind is not None else _open_rdb)(url, heartbeat=heartbeat, read_only=read_only)


def _open_journal(url: str, *, heartbeat: bool, read_only: bool):
    """The journal storage of ``journal:PATH`` (its folder made, the file checked)."""
    import optuna

    path = Path(url[len("journal:"):])
    if not path.name:
        raise StorageError(f"Storage URL {url!r} names no file. Expected journal:PATH.")
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    _check_journal_file(path)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    except (OSError, ValueError) as exc:
        raise StorageError(f"Cannot open journal {path}: {exc}") from None


def _open_rdb(url: str, *, heartbeat: bool, read_only: bool):
    """The retrying RDB storage of an SQLAlchemy ``url`` (see :func:`open_storage`)."""
    if "://" not in url:
        raise StorageError(f"Storage URL {mask_url(url)!r} is malformed. Expected e.g. "
                           f"{DEFAULT_STORAGE}, postgresql://user@host/db or journal:PATH.")
    url = with_driver(url)
    path = sqlite_path(url)
    engine_kwargs: dict = {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(path)
        # Wait for a lock instead of failing at once when several processes share the file.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    elif url.startswith(("postgresql", "mysql", "mariadb")):
        # No ping before every use (it doubles the round trips of Optuna's one-session-per-call
        # style): a connection found dead is retried (ResilientRDBStorage), and SQLAlchemy then
        # replaces every pooled connection. Do not hang on an unreachable host.
        engine_kwargs = {"pool_pre_ping": False, "connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    kwargs = {}
    if heartbeat and url != "sqlite:///:memory:":  # heartbeat threads need a shareable database
        interval, grace = heartbeat_settings()
        kwargs = heartbeat_arguments(interval, grace, max_retry=3)
    try:  # a connection dropped while the tables are checked is retried, briefly
        storage = retrying(resilient_class(), url, engine_kwargs=engine_kwargs, what=None,
                           deadline=time.monotonic() + 3, **kwargs,
                           retry_if=lambda exc: is_transient(exc) or _racing_table_creation(exc))
    except Exception as exc:  # sqlalchemy raises many types; say what and where in one line
        exc = exc.__cause__ if isinstance(exc, ImportError) and exc.__cause__ else exc
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"Cannot open storage {mask_url(url)}: {mask_url(reason)}") from None
    if path is not None and str(path) != ":memory:":
        if not read_only:
            _tune_sqlite(storage.engine)
        _close_at_exit(storage.engine, writer=not read_only)
    return storage


register_storage("sqlite", ("sqlite",), _open_rdb, description="an SQLite file (the default)", local_file=True)
register_storage("postgresql", ("postgresql", "postgres"), _open_rdb, description="a PostgreSQL server",
                 extra="postgres", drivers=(("psycopg2", "psycopg2"), ("psycopg", "psycopg")))
register_storage("mysql", ("mysql", "mariadb"), _open_rdb, description="a MySQL or MariaDB server",
                 extra="mysql", drivers=(("pymysql", "pymysql"), ("mysqldb", "MySQLdb")))
register_storage("journal", ("journal",), _open_journal, description="an Optuna journal file (journal:PATH)",
                 local_file=True, heartbeats=False)

_SQLITE_ENGINES: dict = {}  # engine -> whether this process writes through it


def _close_at_exit(engine, *, writer: bool) -> None:
    if not _SQLITE_ENGINES:
        atexit.register(close_sqlite_storages)
    _SQLITE_ENGINES[engine] = _SQLITE_ENGINES.get(engine, False) or writer


def close_sqlite_storages() -> None:
    """Fold every SQLite study file this process wrote back into its ``.db`` and close it.

    A study file runs in write-ahead-log mode (:func:`_tune_sqlite`): commits land in
    ``NAME.db-wal`` and reach ``NAME.db`` at a checkpoint, which SQLite runs when the last
    connection to the file closes. A process that ends without closing its connections (the
    commands' quick exit, :mod:`fcnn_opt.cli.quick_exit`) would leave the study in the log:
    a copy of the ``.db`` alone would hold none of it, and the next reader would write the
    file. Here each file written is checkpointed (``TRUNCATE``: the log emptied) and every
    connection closed; the last process to close a file also removes its ``-wal`` and
    ``-shm``. Registered with :mod:`atexit` by :func:`open_storage`; safe to call twice.
    A process killed outright (SIGKILL) loses nothing either: SQLite replays the log on the
    next open.
    """
    import sqlalchemy.exc as sa

    while _SQLITE_ENGINES:
        engine, writer = _SQLITE_ENGINES.popitem()
        try:
            if writer:
                with engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            engine.dispose()
        except sa.SQLAlchemyError as exc:  # another process busy on the file: it closes it last
            _log.debug("closing %s: %s", engine.url, exc)


def _tune_sqlite(engine) -> None:
    """Write-ahead log and normal sync: commits stop waiting for fsync of the whole file.

    WAL keeps readers and one writer from blocking each other (several local processes);
    with synchronous=NORMAL a power cut can lose the last commits but never corrupts the
    database. Both cut Optuna's per-commit cost on SQLite several times over.
    """
    from sqlalchemy import event

    def on_connect(dbapi_connection, _record):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # connections opened before the listener reconnect with the pragmas
