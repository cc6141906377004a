"""W3 on a GPU: 10,000 random-sampler trials of 50 epochs, and the population engine's raw speed.

Run on a machine with CUDA (it runs on the CPU too, slowly, with --device cpu and fewer
trials, which is how its logic is checked without a GPU)::

    python benchmarks/gpu_w3.py --device cuda
    python benchmarks/gpu_w3.py --device cpu --trials 200 --sizes 64,256

Prints two tables: lockstep training speed (model-epochs per second) of the 2-8-4 model at
several population sizes K, and the W3 study end to end (random sampler, median pruner,
population engine, journal storage) with its phases.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fcnn_opt import TrainConfig, make_dataset
from fcnn_opt.population import train_population
from fcnn_opt.space import parse_spec
from fcnn_opt.study import run_study
from fcnn_opt.text import table

W3 = {
    "study": {"name": "W3", "sampler": "random", "pruner": "median", "seed": 0},
    "dataset": {"name": "circles", "n_points": 2500},
    "params": {"lib": "torch", "epochs": 50, "lr": {"low": 1e-4, "high": 1e-1, "log": True},
               "n_layers": {"low": 1, "high": 3}, "units": {"low": 2, "high": 64, "log": True},
               "activation": ["relu", "tanh", "sigmoid"], "optimizer": ["sgd", "adam", "rmsprop", "adagrad"],
               "batch_size": 100},
}


def lockstep_speed(device: str, sizes: list[int], epochs: int = 5) -> list[list]:
    data = make_dataset("circles")
    rows = []
    for K in sizes:
        configs = [TrainConfig(lib="torch", dims=(8,), epochs=epochs, seed=i) for i in range(K)]
        train_population(data, configs[: min(K, 8)], device=device)  # warm-up: kernels, allocator
        start = time.perf_counter()
        train_population(data, configs, device=device)
        seconds = time.perf_counter() - start
        rows.append([K, epochs, round(seconds, 3), round(K * epochs / seconds)])
    return rows


def w3(device: str, trials: int, batch: int, storage: str) -> list[list]:
    spec = parse_spec(W3, source="W3").with_overrides(n_trials=trials)
    start = time.perf_counter()
    summary = run_study(spec, storage=storage, progress=False, batch_trials=batch, device=device,
                        artifacts=False)
    seconds = time.perf_counter() - start
    c = summary.counts
    return [[trials, batch, device, c.complete, c.pruned, c.failed, round(seconds, 1),
             round(trials / seconds, 1), summary.best_value]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=2048, help="trials asked and trained at once")
    parser.add_argument("--sizes", default="1024,8192", help="population sizes for the lockstep table")
    parser.add_argument("--storage", help="storage URL (default: a journal file in a temporary folder)")
    args = parser.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    print(table(["K", "epochs", "seconds", "model-epochs/s"], lockstep_speed(args.device, sizes)))
    with tempfile.TemporaryDirectory() as folder:
        storage = args.storage or f"journal:{Path(folder) / 'w3.log'}"
        print(table(["trials", "batch", "device", "complete", "pruned", "failed", "seconds", "trials/s",
                     "best val"], w3(args.device, args.trials, args.batch, storage)))


if __name__ == "__main__":
    main()
