"""W2 (the TPE study of BENCHMARKS.md) run by 1, 2, 4 and 8 worker processes on PostgreSQL.

    python benchmarks/scaling.py                      # server at 127.0.0.1:5432, user postgres
    python benchmarks/scaling.py --workers 1 4 --n-trials 100
    python benchmarks/scaling.py --admin-url postgresql://me@db/postgres

Each run gets a fresh database (created and dropped here) and goes through the same path
as ``python -m fcnn_opt study --workers N --no-artifacts``: the study is created and N
``worker`` processes share it (no per-trial pictures, as in the other benchmarks). Prints, per run: trials done (complete + pruned, which must equal
the budget exactly), errors (failed trials and failed workers, which must be zero),
surplus claims (trials finished unrun because others took the budget first), epochs
trained (pruning makes trials unequal: more workers, fewer pruned), wall time from the
start of the command to the end of the last worker, trials and epochs per second, the
best value, and the machine's 1-minute load average when the run started (it is shared).
A timing table, not a test.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fcnn_opt

from fcnn_opt.cli.text import table  # noqa: E402
from fcnn_opt.search.space import load_spec  # noqa: E402
from fcnn_opt.search.workers import run_parallel  # noqa: E402

W2 = Path(__file__).resolve().parents[1] / "studies" / "tpe.toml"


def fresh_database(admin_url: str) -> tuple[str, callable]:
    """Create an empty database; returns its storage URL and a function that drops it."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    admin = psycopg2.connect(admin_url, connect_timeout=5)
    admin.autocommit = True
    name = f"fcnn_opt_bench_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(admin_url)

    def drop():
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    return urlunsplit(("postgresql+psycopg2", parts.netloc, "/" + name, "", "")), drop


def run(workers: int, n_trials: int, admin_url: str) -> list:
    """One run of W2 with ``workers`` local workers, in a fresh database; its table row."""
    return run_row(workers, lambda spec, url: run_parallel(spec, storage=url, n_workers=workers, progress=False,
                                                           artifacts=False), n_trials, admin_url)


def run_row(label, start_study, n_trials: int, admin_url: str) -> list:
    """W2 run by ``start_study(spec, url)`` (which returns its RunSummary) in a fresh database;
    the table row that starts with ``label``: trials done, complete, pruned, errors, surplus,
    epochs trained, wall s, trials/s, epochs/s, best value, the machine's load at the start."""
    import optuna

    spec = load_spec(W2).with_overrides(n_trials=n_trials)
    url, drop = fresh_database(admin_url)
    load = os.getloadavg()[0]  # the machine is shared: how busy it was when the run started
    try:
        start = time.perf_counter()
        summary = start_study(spec, url)
        wall = time.perf_counter() - start
        trials = optuna.load_study(study_name=spec.name, storage=url).trials
    finally:
        drop()
    epochs = sum(t.user_attrs.get("epochs_run", 0) for t in trials)
    c = summary.counts
    errors = c.failed + len(summary.failed_workers)
    return [label, c.done, c.complete, c.pruned, errors, c.skipped, epochs, round(wall, 1),
            round(c.done / wall, 2), round(epochs / wall), round(summary.best_value, 4), round(load, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--n-trials", type=int, default=200, help="the study's budget (W2: 200)")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL URL allowed to create and drop databases")
    args = parser.parse_args()
    rows = []
    for n in args.workers:
        rows.append(run(n, args.n_trials, args.admin_url))
        print(f"workers={n}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"W2 (studies/tpe.toml, {args.n_trials} trials of 50 epochs, TPE + median pruner) on PostgreSQL")
    print(table(["workers", "trials", "complete", "pruned", "errors", "surplus", "epochs", "wall s", "trials/s",
                 "epochs/s", "best val_loss", "load"], rows))


if __name__ == "__main__":
    main()
