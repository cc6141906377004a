"""How an epoch's cost grows with the rows of your own data: ``python benchmarks/rows_scaling.py``.

Synthetic tables of 2,500, 50,000 and 500,000 rows with 20 features (a seeded Gaussian
mixture, binary target), a 20-32-32-1 network, batch size 100, Adam. For the NumPy backend
(one network) and the population engine (8 networks at once), the seconds per epoch
(median of the timed epochs, after one warm-up epoch) and the microseconds per epoch per
row, with the ratio to the 2,500-row figure: the target is at most 1.5x. Prints a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fcnn_opt import Dataset, TrainConfig, train  # noqa: E402
from fcnn_opt.cli.text import table  # noqa: E402


def make_table(rows: int, features: int = 20, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, features))
    w = rng.normal(size=features)
    y = (np.tanh(X @ w / np.sqrt(features)) + 0.3 * rng.normal(size=rows) > 0).astype(int)
    return Dataset.from_arrays(X, y, name=f"table{rows}", allow_large=True)


def epoch_seconds(data: Dataset, engine: str, epochs: int) -> float:
    config = TrainConfig(dims=(32, 32), epochs=epochs + 1, batch_size=100, lr=1e-3)
    if engine == "numpy":
        result = train(data, config)
        return float(np.median(result.epoch_seconds[1:]))
    from fcnn_opt.training.population import train_population

    configs = [config.replace(seed=s) for s in range(8)]
    results = train_population(data, configs)
    # Each member's epoch_seconds is the population's epoch time shared out among its members.
    return float(np.median([np.median(r.epoch_seconds[1:]) for r in results])) * len(configs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="2500,50000,500000")
    parser.add_argument("--features", type=int, default=20, help="columns of each table")
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per run (after one warm-up)")
    args = parser.parse_args()
    rows_list = [int(r) for r in args.rows.split(",")]
    out = []
    for engine in ("numpy", "population (8 networks)"):
        base = None
        for rows in rows_list:
            data = make_table(rows, args.features)
            seconds = epoch_seconds(data, "numpy" if engine == "numpy" else "population", args.epochs)
            per_row = 1e6 * seconds / len(data.X_train)
            base = base or per_row
            out.append([engine, f"{rows:,}", round(seconds, 4), round(per_row, 3), f"{per_row / base:.2f}x"])
            print(f"  {engine}, {rows:,} rows: {seconds:.4f} s/epoch", file=sys.stderr, flush=True)
    print(f"{args.features} features, network {args.features}-32-32-1, batch size 100")
    print(table(["engine", "rows", "s / epoch", "us / epoch / training row", "vs 2,500 rows"], out))


if __name__ == "__main__":
    main()
