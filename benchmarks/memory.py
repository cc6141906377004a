"""Resident memory over 100 consecutive trials in one process, per library (a script, not a test).

Each scenario runs in its own Python process, trains its trials one after another with
``fcnn_opt.train`` and reads the process's resident set size (VmRSS, after ``gc.collect()``)
after trials 1, 10, 20, ..., 100. Growth per trial is measured from trial 10 to the last, so
the first runs' one-off costs (imports, first traces, allocator pools) are left out.

Scenarios (circles, 2500 points, 5 epochs, trial ``i`` uses seed ``i``):

- ``keras`` and ``tf``: the same network every trial (2-8-4 ReLU, Adam lr 0.005, batch 100).
- ``keras-varied``: a handful of networks in turn (widths, activations, optimisers, batch
  sizes, weight decay), with a different learning rate every trial.
- ``keras-distinct`` (only with ``--distinct``): a different width every trial, so no two
  trials share a network, as in a TPE study over widths.

With ``--w2`` it also prints the peak RSS (``ru_maxrss``) of the W2 workload
(:data:`fcnn_opt.cli.bench.W2`, 200 TPE trials, lib numpy, no artifacts) in its own process.
Run from the repository root::

    python -m benchmarks.memory [--trials 100] [--only keras,tf] [--distinct] [--w2]
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time

SCENARIOS = ("keras", "tf", "keras-varied", "keras-distinct")

# (dims, activation, optimizer, batch_size, l2) of the keras-varied sequence, taken in turn.
VARIED = [((8,), "relu", "adam", 100, 0.0),
          ((16, 8), "tanh", "sgd", 64, 1e-3),
          ((4,), "sigmoid", "rmsprop", 128, 0.0),
          ((32,), "relu", "adagrad", 32, 1e-4),
          ((8, 8, 8), "tanh", "adam", 256, 0.0)]


def rss_mb() -> float:
    """This process's resident set size now, in MB (Linux ``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found in /proc/self/status (Linux only)")


def config_of(scenario: str, i: int):
    from fcnn_opt import TrainConfig

    base = TrainConfig(dims=(8,), activation="relu", optimizer="adam", lr=0.005, batch_size=100,
                       epochs=5, seed=i)
    if scenario in ("keras", "tf"):
        return base.replace(lib=scenario)
    if scenario == "keras-varied":
        dims, activation, optimizer, batch_size, l2 = VARIED[i % len(VARIED)]
        return base.replace(lib="keras", dims=dims, activation=activation, optimizer=optimizer,
                            batch_size=batch_size, l2=l2, lr=0.002 * 1.05 ** i)
    return base.replace(lib="keras", dims=(2 + i,))  # keras-distinct


def run_scenario(scenario: str, trials: int) -> dict:
    """Train ``trials`` runs of ``scenario`` in this process; RSS and seconds per trial."""
    from fcnn_opt import make_dataset, train

    data = make_dataset("circles", n_points=2500)
    rss, seconds = {}, []
    for i in range(trials):
        start = time.perf_counter()
        train(data, config_of(scenario, i))
        seconds.append(time.perf_counter() - start)
        if i == 0 or (i + 1) % 10 == 0:
            gc.collect()
            rss[i + 1] = rss_mb()
    return {"rss": rss, "seconds": seconds}


def _in_subprocess(code: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip()[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def w2_peak_mb() -> dict:
    """Peak RSS and wall time of the W2 workload on lib numpy, in a fresh process."""
    with tempfile.TemporaryDirectory() as folder:
        code = ("import json; from fcnn_opt.cli.bench import run_row; "
                f"print(json.dumps(run_row('W2', 'numpy', 1, None, 'sqlite:///{folder}/w2.db')))")
        return _in_subprocess(code)


def print_table(results: dict[str, dict]) -> None:
    marks = sorted({int(k) for r in results.values() for k in r["rss"]})
    print("RSS (MB) after trial n, each scenario in its own process:")
    print(f"{'scenario':15s}" + "".join(f"{m:>7d}" for m in marks)
          + f"{'MB/trial':>10s}{'s first':>9s}{'s/trial':>9s}")
    for name, r in results.items():
        rss = {int(k): v for k, v in r["rss"].items()}
        last = max(rss)
        growth = (rss[last] - rss[10]) / (last - 10) if 10 in rss and last > 10 else float("nan")
        rest = r["seconds"][1:] or r["seconds"]
        print(f"{name:15s}" + "".join(f"{rss.get(m, float('nan')):7.0f}" for m in marks)
              + f"{growth:10.3f}{r['seconds'][0]:9.2f}{sum(rest) / len(rest):9.3f}")
    print("MB/trial: (RSS at the last trial - RSS at trial 10) / trials between. s first: the first "
          "trial (imports and first traces); s/trial: mean of the others.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--only", default="keras,tf,keras-varied",
                        help=f"comma-separated scenarios, from: {', '.join(SCENARIOS)}")
    parser.add_argument("--distinct", action="store_true", help="add the keras-distinct scenario")
    parser.add_argument("--w2", action="store_true", help="also measure the W2 (numpy) peak RSS")
    parser.add_argument("--scenario", help=argparse.SUPPRESS)  # the child process's job
    args = parser.parse_args()
    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args.trials)))
        return
    names = [s for s in args.only.split(",") if s] + (["keras-distinct"] if args.distinct else [])
    results = {}
    for name in names:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
        print(f"running {name} ({args.trials} trials) ...", file=sys.stderr, flush=True)
        results[name] = _in_subprocess(f"import sys; sys.argv = ['memory', '--scenario', {name!r}, "
                                       f"'--trials', '{args.trials}']; "
                                       "from benchmarks.memory import main; main()")
    if results:
        print_table(results)
    if args.w2:
        print("running W2 on numpy ...", file=sys.stderr, flush=True)
        row = w2_peak_mb()
        print(f"W2 (200 TPE trials, lib numpy, artifacts off): peak RSS {row['peak_mb']:.0f} MB, "
              f"{row['trials']} trials ({row['pruned']} pruned) in {row['seconds']:.1f} s")


if __name__ == "__main__":
    main()
