"""How the cost of a trial grows with the study: ``python benchmarks/growth.py``.

    python benchmarks/growth.py                                  # the whole table (about an hour)
    python benchmarks/growth.py --trials 100,1000 --storages sqlite --workers 1
    python -m fcnn_opt bench --growth --trials 100,1000           # the same, from the command line

The study is W2's search space (``studies/tpe.toml``: learning rate, depth, per-layer widths,
activation, optimizer, batch size) on 300 points of ``circles`` with 2 epochs a trial (about
1 ms of training) and no pruner, run up to the largest of ``--trials`` by

- ``tpe``: TPE on fcnn_opt's fast path (drawn on the pruning mirror),
- ``random``: the random sampler on the fast path,
- ``tpe public``: TPE on Optuna's public API (``FCNN_OPT_PUBLIC_API=1``; its cost grows with the
  study, so it stops at ``--public-max`` trials),
- ``qmc`` (only when asked for): Optuna's QMC sampler, asked of the study (not drawn on the mirror),

each in one process and with two workers (``run_parallel``: this process and one worker
process), on SQLite and on PostgreSQL (a fresh database on ``--pg-url``'s server, created
and dropped here; skipped when the server cannot be reached). Every run is its own process
with a fresh database, without per-trial pictures (run files are written, as always).

A cell is the overhead per trial at that count: the wall time of the ``--window`` trials that
finished last before the count was reached (ordered by their end; the first trial's start
opens the clock), times the number of workers, less the training those trials did (their
epochs' own seconds), in milliseconds per trial and per worker. ``s`` is the wall time of the
whole run. A timing table on a shared machine: compare rows of one run, not runs. Never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
W2 = ROOT / "studies" / "tpe.toml"
COUNTS = (100, 1000, 3000, 10000)
WAYS = {"tpe": ("tpe", False), "random": ("random", False), "tpe public": ("tpe", True), "qmc": ("qmc", False)}
DEFAULT_WAYS = ("tpe", "random", "tpe public")


def study_spec(sampler: str, n_trials: int):
    """W2's space on 300 points, 2 epochs a trial, no pruner."""
    from fcnn_opt.search.space import parse_spec

    data = tomllib.loads(W2.read_text())
    data["study"].update(name="growth", sampler=sampler, pruner="none", n_trials=n_trials)
    data["dataset"]["n_points"] = 300
    data["params"]["epochs"] = 2
    return parse_spec(data, source=str(W2))


def run_one(url: str, sampler: str, workers: int, n_trials: int, out: Path) -> None:
    """Run one study (in this process) and write its trials' end times and training seconds."""
    import optuna

    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.workers import run_parallel
    from fcnn_opt.store.storages import open_storage

    spec = study_spec(sampler, n_trials)
    start = time.time()
    if workers == 1:
        run_study(spec, storage=url, progress=False, artifacts=False)
    else:
        run_parallel(spec, storage=url, n_workers=workers, progress=False, artifacts=False)
    wall = time.time() - start
    trials = optuna.load_study(study_name="growth", storage=open_storage(url, heartbeat=False)).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED))
    trials.sort(key=lambda t: t.datetime_complete)
    first = min(t.datetime_start for t in trials).timestamp()
    out.write_text(json.dumps({
        "wall": wall, "first": first, "ends": [t.datetime_complete.timestamp() for t in trials],
        "training": [t.user_attrs.get("seconds_per_epoch", 0.0) * t.user_attrs.get("epochs_run", 0)
                     for t in trials]}))


def overheads(result: dict, counts: list[int], workers: int, window: int) -> list[float | None]:
    """ms of overhead per trial and worker over the ``window`` trials ending at each count."""
    ends, training = result["ends"], result["training"]
    cells = []
    for count in counts:
        if count > len(ends):
            cells.append(None)
            continue
        lo = max(0, count - window)
        opened = ends[lo - 1] if lo > 0 else result["first"]
        n = count - lo
        wall = (ends[count - 1] - opened) * workers / n
        cells.append(round(1000 * (wall - sum(training[lo:count]) / n), 1))
    return cells


def fresh_database(pg_url: str):
    """A new PostgreSQL database on ``pg_url``'s server: its storage URL and a function that drops it."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg2

    admin = psycopg2.connect(pg_url, connect_timeout=5)
    admin.autocommit = True
    name = f"fcnn_opt_growth_{uuid.uuid4().hex[:10]}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')

    def drop():
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()

    parts = urlsplit(pg_url)
    return urlunsplit(("postgresql+psycopg2", parts.netloc, "/" + name, "", "")), drop


def measure(storage: str, way: str, workers: int, n_trials: int, pg_url: str) -> dict:
    """One run in a fresh process and a fresh database; its result (see :func:`run_one`)."""
    sampler, public = WAYS[way]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    env.pop("FCNN_OPT_PUBLIC_API", None)
    if public:
        env["FCNN_OPT_PUBLIC_API"] = "1"
    with tempfile.TemporaryDirectory() as folder:
        drop = None
        if storage == "sqlite":
            url = f"sqlite:///{folder}/growth.db"
        else:
            url, drop = fresh_database(pg_url)
        out = Path(folder) / "result.json"
        try:
            done = subprocess.run([sys.executable, __file__, "--one", url, sampler, str(workers), str(n_trials),
                                   str(out)], env=env, cwd=folder, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{storage} {way} x{workers} failed:\n{done.stderr[-2000:]}")
            return json.loads(out.read_text())
        finally:
            if drop is not None:
                drop()


def postgres_reachable(pg_url: str) -> bool:
    try:
        import psycopg2

        psycopg2.connect(pg_url, connect_timeout=5).close()
        return True
    except Exception as exc:  # no driver, no server: the PostgreSQL rows are left out
        print(f"PostgreSQL at {pg_url} not reachable ({type(exc).__name__}): its rows are left out", file=sys.stderr)
        return False


def _usage(message: str) -> int:
    """One line on stderr for a bad argument; exit code 2."""
    print(f"growth.py: error: {message}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default=",".join(map(str, COUNTS)),
                        help="comma-separated trial counts to report (the study runs to the largest; "
                             "default 100,1000,3000,10000)")
    parser.add_argument("--ways", default=",".join(DEFAULT_WAYS),
                        help=f"comma-separated, of: {', '.join(WAYS)} (default {', '.join(DEFAULT_WAYS)})")
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--storages", default="sqlite,postgres", help="comma-separated: sqlite, postgres")
    parser.add_argument("--window", type=int, default=100, help="trials averaged at each count (default 100)")
    parser.add_argument("--public-max", type=int, default=300,
                        help="the public path's runs stop here, a count then reported too (default 300: its cost "
                             "grows with the study, about half a second a trial there on SQLite)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/test",
                        help="a PostgreSQL URL allowed to create and drop databases")
    args = parser.parse_args(argv)
    from fcnn_opt.cli.text import table

    try:
        counts = sorted({int(c) for c in args.trials.split(",") if c.strip()})
        workers = [int(w) for w in args.workers.split(",") if w.strip()]
    except ValueError:
        return _usage(f"--trials and --workers take comma-separated whole numbers, got {args.trials!r} and "
                      f"{args.workers!r}")
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    storages = [s.strip() for s in args.storages.split(",") if s.strip()]
    if not counts or min(counts) < 1 or not workers or min(workers) < 1 or args.window < 1:
        return _usage("--trials, --workers and --window must be positive")
    for flag, given, valid in (("--ways", ways, WAYS), ("--storages", storages, ("sqlite", "postgres"))):
        if not given or set(given) - set(valid):
            return _usage(f"{flag}: comma-separated, of {', '.join(valid)}; got {', '.join(given) or 'none'}")
    if any(WAYS[w][1] for w in ways) and 0 < args.public_max < max(counts):
        counts = sorted({*counts, args.public_max})  # where the public path's runs stop
    if "postgres" in storages and not postgres_reachable(args.pg_url):
        storages.remove("postgres")
    rows = []
    for storage in storages:
        for way in ways:
            for n_workers in workers:
                n_trials = max(counts) if not WAYS[way][1] else min(max(counts), args.public_max)
                result = measure(storage, way, n_workers, n_trials, args.pg_url)
                cells = overheads(result, counts, n_workers, args.window)
                rows.append([storage, way, n_workers, *cells, round(result["wall"])])
                print("  ".join(map(str, rows[-1])), file=sys.stderr, flush=True)
    print(f"Overhead per trial and worker (ms, training excluded), W2's space on 300 points, 2 epochs, "
          f"no pruner; the {args.window} trials before each count")
    print(table(["storage", "way", "workers", *[f"{c:,}" for c in counts], "s"], rows))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--one":
        sys.path.insert(0, str(ROOT))  # this checkout's fcnn_opt
        run_one(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), Path(sys.argv[6]))
    else:
        sys.path.insert(0, str(ROOT))
        sys.exit(main())
