"""W2 through Dask (``study --cluster local:2``) against two local workers (``study --workers 2``).

    flock /tmp/fcnn_bench.lock python benchmarks/cluster.py     # about 2 minutes here
    python benchmarks/cluster.py --repeats 1 --n-trials 100
    python benchmarks/cluster.py --admin-url postgresql://me@db/postgres

W2 (``studies/tpe.toml``: circles, 2500 points, 200 trials of 50 epochs, TPE with a fixed
seed, median pruner, NumPy backend) on the PostgreSQL server, each run in a fresh database
(``benchmarks/scaling.py``'s), no per-trial pictures, as ``python -m fcnn_opt study ...
--no-artifacts`` runs it: once with ``--workers 2`` (this process and one worker process),
once with ``--cluster local:2`` (a LocalCluster started here, two worker tasks, each with
its worker process), alternately, ``--repeats`` times each. Prints one row per run
(trials done, errors, surplus claims, epochs trained, wall time from the call to the
summary, trials and epochs per second, the machine's load when the run started), then the
overhead of going through Dask: the median wall time of the cluster runs over that of the
local ones, and the same per epoch trained (two workers prune a little differently from
run to run, so the runs do not train the same epochs). Target: at most 1.2x.
A timing table, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's fcnn_opt

from scaling import run_row  # noqa: E402  (benchmarks/scaling.py, beside this file)

from fcnn_opt.cli.text import table  # noqa: E402
from fcnn_opt.search.cluster import run_on_cluster  # noqa: E402
from fcnn_opt.search.workers import run_parallel  # noqa: E402

WAYS = {
    "--workers 2": lambda spec, url: run_parallel(spec, storage=url, n_workers=2, progress=False, artifacts=False),
    "--cluster local:2": lambda spec, url: run_on_cluster(spec, address="local:2", storage=url, progress=False,
                                                          artifacts=False),
}


def run(way: str, n_trials: int, admin_url: str) -> list:
    """One run of W2 the ``way`` given, in a fresh database; its table row."""
    return run_row(way, WAYS[way], n_trials, admin_url)


def main() -> None:
    """Run W2 both ways, alternately, and print the table and the overhead."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each way (default 3)")
    parser.add_argument("--n-trials", type=int, default=200, help="the study's budget (W2: 200)")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a PostgreSQL URL allowed to create and drop databases")
    args = parser.parse_args()
    rows = []
    for _ in range(args.repeats):
        for way in WAYS:
            rows.append(run(way, args.n_trials, args.admin_url))
            print(f"{way}: {rows[-1]}", file=sys.stderr, flush=True)
    print(f"W2 (studies/tpe.toml, {args.n_trials} trials of 50 epochs, TPE + median pruner) on PostgreSQL, "
          f"{os.cpu_count()} cores")
    print(table(["run", "trials", "complete", "pruned", "errors", "surplus", "epochs", "wall s", "trials/s",
                 "epochs/s", "best val_loss", "load"], rows))
    local, dask = ([r for r in rows if r[0] == way] for way in WAYS)
    wall = statistics.median(r[7] for r in dask) / statistics.median(r[7] for r in local)
    per_epoch = (statistics.median(r[7] / r[6] for r in dask) / statistics.median(r[7] / r[6] for r in local))
    print(f"overhead of --cluster local:2 over --workers 2 (medians): {wall:.2f}x wall time, "
          f"{per_epoch:.2f}x seconds per epoch trained (target: at most 1.2x)")


if __name__ == "__main__":
    main()
