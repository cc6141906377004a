"""W3 on a GPU: 10,000 random-sampler trials of 50 epochs, and the population engine's raw speed.

Run on a machine with CUDA (it runs on the CPU too, slowly, with --device cpu and fewer
trials, which is how its logic is checked without a GPU)::

    python benchmarks/gpu_w3.py --device cuda
    python benchmarks/gpu_w3.py --device cpu --trials 200 --batch 100 --sizes 64,256
    python benchmarks/gpu_w3.py --device cuda --storage sqlite --batch 5000 --no-agreement

Prints three tables: how far members trained on the device are from the same networks
trained alone by the PyTorch backend on the CPU; lockstep training speed (model-epochs per
second) of the 2-8-4 model at several population sizes K; and the W3 study end to end
(random sampler, median pruner, population engine, journal storage) with its phases.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.cli.text import table
from fcnn_opt.search.runner import run_study
from fcnn_opt.search.space import parse_spec
from fcnn_opt.training.population import train_population

W3 = {
    "study": {"name": "W3", "sampler": "random", "pruner": "median", "seed": 0},
    "dataset": {"name": "circles", "n_points": 2500},
    "params": {"lib": "torch", "epochs": 50, "lr": {"low": 1e-4, "high": 1e-1, "log": True},
               "n_layers": {"low": 1, "high": 3}, "units": {"low": 2, "high": 64, "log": True},
               "activation": ["relu", "tanh", "sigmoid"], "optimizer": ["sgd", "adam", "rmsprop", "adagrad"],
               "batch_size": 100},
}


def agreement(device: str, n: int = 12) -> list[list]:
    """Largest differences of validation loss between members trained together on ``device``
    and the same configs trained alone by the PyTorch backend on the CPU, over the first
    three epochs and over all ten; and, for scale, between the PyTorch and NumPy backends on
    the CPU (float32 rounding that training itself amplifies, most with adaptive optimisers
    at high learning rates)."""
    rng = np.random.default_rng(7)
    data = make_dataset("circles")
    configs = [TrainConfig(lib="torch", dims=tuple(int(rng.integers(2, 65)) for _ in range(1 + i % 3)),
                           activation=("relu", "tanh", "sigmoid")[i % 3],
                           optimizer=("sgd", "adam", "rmsprop", "adagrad")[i % 4],
                           lr=float(10 ** rng.uniform(-3, -1)), epochs=10, seed=i % 2) for i in range(n)]
    together = train_population(data, configs, device=device)
    rows = []
    for config, member in zip(configs, together, strict=True):
        alone = train(data, config).val_loss
        numpy_alone = train(data, TrainConfig(**{**config.to_dict(), "lib": "numpy"})).val_loss
        gap = np.abs(np.subtract(member.val_loss, alone))
        rows.append([config.description(["units", "activation", "optimizer"]) + f", lr: {config.lr:.3g}",
                     float(gap[:3].max()), float(gap.max()),
                     float(np.max(np.abs(np.subtract(numpy_alone, alone))))])
    return rows


def lockstep_speed(device: str, sizes: list[int], epochs: int = 5) -> list[list]:
    """Model-epochs per second of K copies of the seed model trained in lockstep, each with
    its own seed (K mini-batch orders, drawn on the CPU) and with one shared seed (one order,
    as the trials of a study have unless the seed is searched)."""
    data = make_dataset("circles")
    rows = []
    for K in sizes:
        row = [K, epochs]
        for shared in (False, True):
            configs = [TrainConfig(lib="torch", dims=(8,), epochs=epochs, seed=0 if shared else i)
                       for i in range(K)]
            train_population(data, configs[: min(K, 8)], device=device)  # warm-up: kernels, allocator
            start = time.perf_counter()
            train_population(data, configs, device=device)
            seconds = time.perf_counter() - start
            row += [round(seconds, 3), round(K * epochs / seconds)]
        rows.append(row)
    return rows


def w3(device: str, trials: int, batch: int, storage: str) -> tuple[list[list], list[list]]:
    """The W3 study end to end, and where its time went (timers around the runner's parts)."""
    import fcnn_opt.search.batches
    import fcnn_opt.search.trial_source
    import fcnn_opt.training.population

    spent: dict[str, float] = defaultdict(float)

    def timed(owner, name, label):
        inner = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start
        setattr(owner, name, wrapper)
        return owner, name, inner

    patched = [timed(fcnn_opt.training.population, "train_population", "training (population engine)"),
               timed(fcnn_opt.search.trial_source.TrialSource, "next_trials", "sampling and creating trials"),
               timed(fcnn_opt.search.batches, "tell_all", "finishing trials (records, states)")]
    spec = parse_spec(W3, source="W3").with_overrides(n_trials=trials)
    start = time.perf_counter()
    try:
        summary = run_study(spec, storage=storage, progress=False, batch_trials=batch, device=device,
                            artifacts=False)
    finally:
        for owner, name, inner in patched:
            setattr(owner, name, inner)
    seconds = time.perf_counter() - start
    c = summary.counts
    spent["other"] = seconds - sum(spent.values())
    return ([[trials, batch, device, c.complete, c.pruned, c.failed, round(seconds, 1),
              round(trials / seconds, 1), summary.best_value]],
            [[part, round(t, 2), f"{100 * t / seconds:.0f}%"] for part, t in spent.items()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--batch", default="2048", help="trials asked and trained at once (several: 2048,4096)")
    parser.add_argument("--sizes", default="1024,8192", help="population sizes for the lockstep table")
    parser.add_argument("--storage", default="journal",
                        help="journal or sqlite (a file in a temporary folder), or a storage URL")
    parser.add_argument("--no-agreement", action="store_true", help="skip the agreement table")
    args = parser.parse_args()

    if not args.no_agreement:
        print(table(["member", "engine vs torch, epochs 1-3", "engine vs torch, 1-10", "numpy vs torch, 1-10"],
                    agreement(args.device)), flush=True)
    sizes = [int(s) for s in args.sizes.split(",")]
    print(table(["K", "epochs", "seconds, own orders", "model-epochs/s", "seconds, one order", "model-epochs/s"],
                lockstep_speed(args.device, sizes)), flush=True)
    for batch in (int(b) for b in args.batch.split(",")):
        with tempfile.TemporaryDirectory() as folder:
            storage = {"journal": f"journal:{Path(folder) / 'w3.log'}",
                       "sqlite": f"sqlite:///{Path(folder) / 'w3.db'}"}.get(args.storage, args.storage)
            rows, phases = w3(args.device, args.trials, batch, storage)
        print(table(["trials", "batch", "device", "complete", "pruned", "failed", "seconds", "trials/s",
                     "best val"], rows))
        print(table(["part", "seconds", "share"], phases), flush=True)


if __name__ == "__main__":
    main()
