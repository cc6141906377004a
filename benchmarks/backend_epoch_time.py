"""Per-epoch wall time of every backend on the seed article's model (a micro-benchmark, not a test).

The model: ``circles`` with 2500 points, one hidden layer of 8 ReLU units, Adam at lr 0.005,
batch 100, 50 epochs. An epoch's time is ``TrainResult.epoch_seconds``: the training pass
plus the prediction on the 500 validation points that every run makes after each epoch.
The first epochs (tracing, caches) are left out, then the median and the minimum are shown.
With ``--agreement`` it also prints each backend's final validation loss against NumPy's on
a few settings (docs/backends.md shows both tables). Run from the repository root::

    python -m benchmarks.backend_epoch_time [--epochs 50] [--warmup 5] [--agreement]
"""

from __future__ import annotations

import argparse
import os
import platform

import numpy as np

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.training.config import LIBS

SEED_MODEL = TrainConfig(dims=(8,), activation="relu", optimizer="adam", lr=0.005, batch_size=100,
                         epochs=50)

# (dataset, settings): every optimiser, activation and task, with and without weight decay.
AGREEMENT = [
    ("circles", SEED_MODEL),
    ("xor", TrainConfig(dims=(8, 8), activation="tanh", optimizer="sgd", lr=0.1, l2=1e-3, epochs=20)),
    ("prod", TrainConfig(dims=(16,), activation="sigmoid", optimizer="rmsprop", lr=0.005, epochs=20)),
    ("quadrants", TrainConfig(dims=(8,), optimizer="adagrad", lr=0.05, l2=1e-3, epochs=20)),
    ("sum_squares", TrainConfig(dims=(8,), activation="tanh", optimizer="adam", lr=0.01, l2=1e-4,
                                epochs=20)),
]


def cpu_name() -> str:
    """The CPU's model name where Linux tells it, else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def epoch_times(lib: str, epochs: int, warmup: int) -> np.ndarray:
    """Seconds per epoch of the seed model on ``lib``, warm-up epochs left out."""
    result = train(make_dataset("circles", n_points=2500), SEED_MODEL.replace(lib=lib, epochs=epochs))
    return np.asarray(result.epoch_seconds[warmup:])


def print_epoch_times(epochs: int, warmup: int) -> None:
    print(f"Per-epoch wall time on {cpu_name()} ({os.cpu_count()} cores), epochs {warmup + 1}-{epochs}:")
    print(f"{'lib':8s} {'median ms':>10s} {'min ms':>8s} {'x numpy':>8s}")
    reference = None
    for lib in LIBS:
        times = epoch_times(lib, epochs, warmup) * 1e3
        reference = reference or float(np.median(times))
        print(f"{lib:8s} {np.median(times):10.2f} {times.min():8.2f} {np.median(times) / reference:8.1f}")


def print_agreement() -> None:
    print("\nFinal validation loss, and the largest |difference| from NumPy's over all epochs:")
    print(f"{'dataset':12s} {'optimizer':9s} {'lib':8s} {'val loss':>10s} {'max |d|':>9s}")
    for name, config in AGREEMENT:
        data = make_dataset(name, n_points=2500)
        reference = train(data, config)
        for lib in LIBS:
            if lib == "sklearn" and config.optimizer not in ("sgd", "adam"):
                continue
            result = train(data, config.replace(lib=lib))
            gap = np.max(np.abs(np.subtract(result.val_loss, reference.val_loss)))
            print(f"{name:12s} {config.optimizer:9s} {lib:8s} {result.val_loss[-1]:10.6f} {gap:9.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5, help="first epochs left out")
    parser.add_argument("--agreement", action="store_true", help="also print the agreement table")
    args = parser.parse_args()
    print_epoch_times(args.epochs, args.warmup)
    if args.agreement:
        print_agreement()


if __name__ == "__main__":
    main()
