"""`python -m fcnn_opt bench`: the standard workloads, each way of training, side by side.

W1 is the seed article's grid (6 trials), W2 a 200-trial TPE study with median pruning
(both on SQLite; see docs/performance.md). Each row runs in its own process, so its wall
time includes imports and its peak memory is its own. Prints one table; never a test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from fcnn_opt.cli.text import table
from fcnn_opt.search.runner import run_study
from fcnn_opt.search.space import parse_spec
from fcnn_opt.search.workers import run_parallel

W1 = {
    "study": {"name": "W1", "sampler": "grid", "pruner": "none", "seed": 0},
    "dataset": {"name": "circles", "n_points": 2500},
    "params": {"epochs": [50, 100], "n_layers": 1, "units": [2, 4, 8], "activation": "relu",
               "optimizer": "adam", "lr": 0.005, "batch_size": 100},
}
W2 = {
    "study": {"name": "W2", "sampler": "tpe", "pruner": "median", "n_trials": 200, "seed": 0},
    "dataset": {"name": "circles", "n_points": 2500},
    "params": {"epochs": 50, "lr": {"low": 1e-4, "high": 1e-1, "log": True},
               "n_layers": {"low": 1, "high": 3},
               "units": {"low": 2, "high": 64, "log": True, "per_layer": True},
               "activation": ["relu", "tanh", "sigmoid"],
               "optimizer": ["sgd", "adam", "rmsprop", "adagrad"],
               "batch_size": [32, 64, 128, 256]},
}
WORKLOADS = {"W1": W1, "W2": W2}


@dataclass
class Way:
    """One way of running a workload: a row of the table (library, population size, workers...)."""

    label: str
    lib: str
    batch_trials: int = 1
    n_trials: int | None = None  # a subset of the workload's trials (slow ways)
    workers: int = 1  # local worker processes (python -m fcnn_opt worker)
    default_path: bool = False  # as `study` runs it: a picture per complete trial, progress bar on
    snapshots: int = 0  # study --snapshots N (with default_path: an animated picture per trial too)


def ways(quick: bool) -> dict[str, list[Way]]:
    """Each workload's ways, in the table's order (``quick``: fewer trials for the slow ones)."""
    keras_w2 = 6 if quick else 20
    return {
        "W1": [Way("keras, one trial at a time", "keras"), Way("torch, one trial at a time", "torch"),
               Way("numpy, one trial at a time", "numpy"), Way("population K=6", "torch", 6)],
        "W2": [Way("keras, one trial at a time", "keras", n_trials=keras_w2),
               Way("torch, one trial at a time", "torch", n_trials=40 if quick else None),
               Way("numpy, as `study` runs it (pictures, progress bar)", "numpy",
                   n_trials=40 if quick else None, default_path=True),
               Way("numpy, as `study --snapshots 10` runs it", "numpy", n_trials=40 if quick else None,
                   default_path=True, snapshots=10),
               Way("numpy, one trial at a time", "numpy", n_trials=40 if quick else None),
               Way("numpy, 2 worker processes", "numpy", n_trials=40 if quick else None, workers=2),
               Way("population K=10", "torch", 10, n_trials=40 if quick else None),
               Way("population K=50", "torch", 50, n_trials=50 if quick else None)],
    }


def run_row(workload: str, lib: str, batch_trials: int, n_trials: int | None, storage: str,
            workers: int = 1, default_path: bool = False, snapshots: int = 0) -> dict:
    """Run one workload one way in this process (and its workers); returns the row's figures."""
    import resource

    spec = parse_spec(WORKLOADS[workload], source=workload).with_overrides(lib=lib, n_trials=n_trials)
    start = time.perf_counter()
    pictures = "complete" if default_path else "none"
    if workers > 1:
        summary = run_parallel(spec, storage=storage, n_workers=workers, progress=False, artifacts=pictures)
    else:
        summary = run_study(spec, storage=storage, progress=default_path, batch_trials=batch_trials,
                            artifacts=pictures, snapshots=snapshots)
    seconds = time.perf_counter() - start
    peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)  # the largest worker
    import optuna

    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
    epochs = sum(len(t.intermediate_values) for t in trials)
    c = summary.counts
    database = storage[len("sqlite:///"):] if storage.startswith("sqlite:///") else None
    db_kb = _database_kb(database) if database else None
    return {"seconds": seconds, "epochs": epochs, "trials": c.complete + c.pruned + c.failed, "complete": c.complete,
            "pruned": c.pruned, "failed": c.failed, "best": summary.best_value,
            "peak_mb": peak / 1024, "db_kb": db_kb}


def _database_kb(path: str) -> float | None:
    """The database file's size once its write-ahead log is folded back in, as a user finds it."""
    import sqlite3

    if not os.path.exists(path):
        return None
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return os.path.getsize(path) / 1024


def _row_in_subprocess(workload: str, way: Way, folder: str) -> dict:
    storage = (f"sqlite:///{folder}/{workload}-{way.lib}-{way.batch_trials}-{way.workers}"
               f"{'-default' if way.default_path else ''}-{way.snapshots}.db")
    code = (f"import json; from fcnn_opt.cli.bench import run_row; "
            f"print(json.dumps(run_row({workload!r}, {way.lib!r}, {way.batch_trials}, {way.n_trials!r}, "
            f"{storage!r}, workers={way.workers}, default_path={way.default_path}, "
            f"snapshots={way.snapshots}))); "
            f"from fcnn_opt.cli.quick_exit import exit_quickly; exit_quickly(0)")  # as the command line ends
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    row = json.loads(done.stdout.strip().splitlines()[-1])
    row["process_seconds"] = time.perf_counter() - start
    return row


def run_bench(workloads: list[str], quick: bool = False) -> list[dict]:
    """Run the chosen workloads every way and print the comparison table."""
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for workload in workloads:
            base = {}
            for way in ways(quick)[workload]:
                print(f"running {workload}: {way.label} ...", file=sys.stderr, flush=True)
                row = {"workload": workload, "way": way.label, **_row_in_subprocess(workload, way, folder)}
                if "error" not in row:
                    row["per_trial"] = row["process_seconds"] / max(row["trials"], 1)
                    row["per_epoch"] = row["process_seconds"] / max(row["epochs"], 1)
                    if way.batch_trials == 1 and way.workers == 1:
                        base.setdefault(way.lib, row)
                rows.append(row)
            for row in rows:
                if row["workload"] == workload and "error" not in row:
                    for ref in ("keras", "torch"):
                        if ref in base:
                            row[f"x_{ref}"] = base[ref]["per_epoch"] / row["per_epoch"]
    headers = ["workload", "way", "trials", "complete", "pruned", "epochs", "wall s", "trials/s",
               "ms/epoch", "best val", "peak MB", "db KB", "vs keras", "vs torch"]
    body = []
    for r in rows:
        if "error" in r:
            body.append([r["workload"], r["way"], "error: " + r["error"]] + [None] * 11)
            continue
        body.append([r["workload"], r["way"], r["trials"], r["complete"], r["pruned"], r["epochs"],
                     round(r["process_seconds"], 2), round(r["trials"] / r["process_seconds"], 2),
                     round(1000 * r["per_epoch"], 2), r["best"], round(r["peak_mb"]),
                     None if r.get("db_kb") is None else round(r["db_kb"]),
                     _ratio(r.get("x_keras")), _ratio(r.get("x_torch"))])
    print(table(headers, body))
    print("wall s: the row's whole process (imports, study creation, training, storage) on SQLite. "
        "ms/epoch: wall time per epoch trained (pruned trials train fewer); the ratios compare it, "
        "since the slow ways run only a subset of W2.")
    by_way = {(r["workload"], r["way"]): r for r in rows if "error" not in r}
    default = by_way.get(("W2", "numpy, as `study` runs it (pictures, progress bar)"))
    plain = by_way.get(("W2", "numpy, one trial at a time"))
    if default and plain:
        print(f"W2 as `study` runs it against no pictures: {default['process_seconds'] / plain['process_seconds']:.2f}x "
              "the wall time (target: at most 1.15x)")
    animated = by_way.get(("W2", "numpy, as `study --snapshots 10` runs it"))
    if default and animated:
        print(f"W2 with --snapshots 10 against without: {animated['process_seconds'] / default['process_seconds']:.2f}x "
              "the wall time (target: at most 1.3x)")
    return rows


def _ratio(value) -> str | None:
    return None if value is None else f"{value:.1f}x"
