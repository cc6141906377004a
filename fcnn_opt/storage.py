"""Optuna storages by URL: SQLite by default, any RDB or journal file on request.

Passwords in URLs are masked wherever a URL is shown (:func:`mask_url`).
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

DEFAULT_STORAGE = "sqlite:///studies/fcnn_opt.db"
HEARTBEAT_INTERVAL = 5  # seconds between a running trial's heartbeats (RDB storages)
GRACE_PERIOD = 20  # a RUNNING trial silent this long is stale: failed, then retried


class StorageError(ValueError):
    """A storage URL that cannot be used; the message says why."""


def default_url() -> str:
    return os.environ.get("OPTUNA_STORAGE") or DEFAULT_STORAGE


def mask_url(url: str) -> str:
    """``postgresql://user:secret@host/db`` -> ``postgresql://user:***@host/db``."""
    return re.sub(r"(//[^:/@]+:)[^@]*@", r"\1***@", url)


def sqlite_path(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        return Path(url[len("sqlite:///"):])
    return None


def _check_sqlite_file(path: Path) -> None:
    """Refuse a file that exists but is not an Optuna database; never touch it."""
    if not path.exists() or path.stat().st_size == 0:
        return
    with path.open("rb") as fh:
        header = fh.read(16)
    if header != b"SQLite format 3\x00":
        raise StorageError(f"{path} is not an SQLite database; refusing to use it as a study storage.")
    import sqlite3

    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise StorageError(f"{path} is a damaged SQLite file ({exc}); refusing to use it.") from None
    if tables and not {"studies", "trials"} <= tables:
        raise StorageError(f"{path} is an SQLite database of another application (tables: "
                           f"{', '.join(sorted(tables)[:5])}); refusing to use it as a study storage.")


def open_storage(url: str | None = None, *, heartbeat: bool = True):
    """An Optuna storage for ``url`` (an RDB URL, or ``journal:PATH`` for a journal file)."""
    import optuna

    # Heartbeats and their retry callback are marked experimental; they are what we rely on.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    url = url or default_url()
    if url.startswith("journal:"):
        path = url[len("journal:"):]
        from optuna.storages.journal import JournalFileBackend

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" not in url:
        raise StorageError(f"Storage URL {mask_url(url)!r} is malformed. Expected e.g. "
                           f"{DEFAULT_STORAGE}, postgresql://user@host/db or journal:PATH.")
    path = sqlite_path(url)
    engine_kwargs: dict = {}
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _check_sqlite_file(path)
        # Wait for a lock instead of failing at once when several processes share the file.
        engine_kwargs = {"connect_args": {"timeout": 60}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    kwargs = {}
    if heartbeat and url != "sqlite:///:memory:":  # heartbeat threads need a shareable database
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        kwargs = {"heartbeat_interval": HEARTBEAT_INTERVAL, "grace_period": GRACE_PERIOD,
                  "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=3)}
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
    except Exception as exc:  # sqlalchemy raises many types; say what and where in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StorageError(f"Cannot open storage {mask_url(url)}: {mask_url(reason)}") from None
    if path is not None and str(path) != ":memory:":
        _tune_sqlite(storage.engine)
    return storage


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
