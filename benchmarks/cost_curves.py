"""How cost grows: with the population size K, with epochs, and with the study's length.

    python benchmarks/cost_curves.py            # prints three tables, writes docs/images/cost_curves.png

1. seconds per model-epoch of the 2-8-4 model trained alone (NumPy, PyTorch) and in
   populations of K members (PyTorch, CPU);
2. seconds of one trial against its number of epochs (NumPy backend, study on SQLite);
3. Optuna's own cost per trial (TPE sampling, storage) against the number of trials
   already in the study, with a trivial objective that reports 50 values.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.cli.text import table
from fcnn_opt.training.population import train_population

OUT = Path(__file__).resolve().parents[1] / "docs" / "images" / "cost_curves.png"


def per_model_epoch(sizes=(1, 4, 16, 64, 256), epochs=5):
    data = make_dataset("circles")
    rows = []
    for lib in ("numpy", "torch"):
        config = TrainConfig(lib=lib, dims=(8,), epochs=epochs)
        train(data, config.replace(epochs=1))
        start = time.perf_counter()
        train(data, config)
        rows.append([f"{lib}, alone", 1, 1000 * (time.perf_counter() - start) / epochs])
    for K in sizes:
        configs = [TrainConfig(lib="torch", dims=(8,), epochs=epochs, seed=i) for i in range(K)]
        train_population(data, configs[:2])
        start = time.perf_counter()
        train_population(data, configs)
        rows.append(["population", K, 1000 * (time.perf_counter() - start) / (K * epochs)])
    return rows


def per_epochs(epochs_list=(10, 25, 50, 100, 200)):
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        warm = parse_spec({"study": {"sampler": "random", "pruner": "none", "n_trials": 1},
                           "dataset": {"name": "circles"}, "params": {"epochs": 2}})
        run_study(warm, storage=f"sqlite:///{folder}/warm.db", progress=False, artifacts=False)
        for epochs in epochs_list:
            spec = parse_spec({"study": {"sampler": "random", "pruner": "none", "n_trials": 2},
                               "dataset": {"name": "circles"}, "params": {"epochs": epochs}})
            url = f"sqlite:///{folder}/e{epochs}.db"
            run_study(spec, storage=url, progress=False, artifacts=False)  # creates the database
            start = time.perf_counter()  # then 10 more trials in the same study: trial costs only
            run_study(spec.with_overrides(n_trials=12), storage=url, progress=False, artifacts=False)
            rows.append([epochs, (time.perf_counter() - start) / 10])
    return rows


def per_trial_overhead(n_trials=600, chunk=100):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = []

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        trial.suggest_int("n_layers", 1, 3)
        trial.suggest_categorical("activation", ["relu", "tanh", "sigmoid"])
        trial.suggest_categorical("batch_size", [32, 64, 128, 256])
        for step in range(50):
            trial.report(lr * (50 - step), step)
        return lr

    with tempfile.TemporaryDirectory() as folder:
        for storage in (None, f"sqlite:///{folder}/o.db"):
            study = optuna.create_study(storage=storage, sampler=optuna.samplers.TPESampler(seed=0))
            for first in range(0, n_trials, chunk):
                start = time.perf_counter()
                study.optimize(objective, n_trials=chunk)
                rows.append(["memory" if storage is None else "sqlite", first,
                             1000 * (time.perf_counter() - start) / chunk])
    return rows


def plot(a, b, c) -> None:
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), dpi=100)
    pop = [r for r in a if r[0] == "population"]
    ax = axes[0]
    ax.loglog([r[1] for r in pop], [r[2] for r in pop], "o-", label="population (PyTorch, CPU)")
    for r, style in zip([r for r in a if r[0] != "population"], ("s", "^"), strict=True):
        ax.axhline(r[2], ls="--", lw=1, color="gray")
        ax.plot([1], [r[2]], style, label=r[0])
    ax.set(xlabel="models trained together (K)", ylabel="ms per model-epoch", title="Training: per-call overhead shared")
    ax.set_yticks([0.5, 1, 2, 5, 10])
    ax.yaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.legend(fontsize=8)
    ax = axes[1]
    ax.plot([r[0] for r in b], [r[1] for r in b], "o-")
    ax.set(xlabel="epochs per trial", ylabel="seconds per trial", title="One trial (NumPy, SQLite)")
    ax = axes[2]
    for name in ("memory", "sqlite"):
        rows = [r for r in c if r[0] == name]
        ax.plot([r[1] for r in rows], [r[2] for r in rows], "o-", label=name)
    ax.set(xlabel="trials already in the study", ylabel="ms per trial (Optuna only)",
           title="TPE + storage, trivial objective")
    ax.legend(fontsize=8)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT)


def main() -> None:
    a, b, c = per_model_epoch(), per_epochs(), per_trial_overhead()
    print(table(["way", "K", "ms per model-epoch"], [[w, k, round(v, 3)] for w, k, v in a]))
    print(table(["epochs", "s per trial"], [[e, round(s, 3)] for e, s in b]))
    print(table(["storage", "trials before", "ms per trial"], [[s, n, round(v, 1)] for s, n, v in c]))
    plot(a, b, c)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
