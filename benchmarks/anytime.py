"""The best model found after 5, 10, 20, 30 and 60 s: ``python benchmarks/anytime.py``.

    python benchmarks/anytime.py                          # 60 s a run, seeds 0-2 (about 11 minutes)
    python benchmarks/anytime.py --seconds 20 --repeats 1
    python -m fcnn_opt bench --anytime                    # the same, from the command line

Three ways of spending a minute on W2's task (circles, 2,500 points, the same 2,000/500
split), each in its own process, timed from the moment the process is started:

- fcnn_opt's time-budgeted mode, as ``studies/minute.toml`` ships it (epochs a resource up to
  400, successive halving, the last fifth continuing the best trials);
- fcnn_opt's W2 study (50 epochs a trial, median pruning) given the same time budget;
- a plain Optuna objective training a PyTorch model one trial at a time (50 epochs, reporting
  each epoch to a median pruner), as one writes it by hand.

All three search the same space (W2's, the epochs apart) with TPE on SQLite, with sampler seeds
0, 1 and 2. The best validation loss so far at a checkpoint is that of the best trial complete
by then (a network one can take away). Each cell is the median of the repetitions and their
range; a cold start (an empty compile cache for the NumPy engine) is its own row. Prints one
table; never a test.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import optuna

from fcnn_opt.cli.text import table

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = (5, 10, 20, 30, 60)
MINUTE = ROOT / "studies" / "minute.toml"
MAX_REPEATS = 20

W2_TIMED = """
[study]
name = "w2_timed"
sampler = "tpe"
pruner = "median"
timeout = {seconds}
[dataset]
name = "circles"
n_points = 2500
[params]
lib = "numpy"
epochs = 50
lr = {{ low = 1e-4, high = 1e-1, log = true }}
n_layers = {{ low = 1, high = 3 }}
units = {{ low = 2, high = 64, log = true, per_layer = true }}
activation = ["relu", "tanh", "sigmoid"]
optimizer = ["sgd", "adam", "rmsprop", "adagrad"]
batch_size = [32, 64, 128, 256]
"""

# A hand-written objective, as a user without fcnn_opt writes it: one PyTorch model per trial.
PLAIN_TORCH = '''
import sys
import optuna, torch
from torch import nn
from fcnn_opt import make_dataset

seconds, seed, url = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(1)
data = make_dataset("circles", n_points=2500, seed=0)
X, y = torch.tensor(data.X_train), torch.tensor(data.y_train, dtype=torch.long)
Xv, yv = torch.tensor(data.X_val), torch.tensor(data.y_val, dtype=torch.long)
acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
opts = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "rmsprop": torch.optim.RMSprop,
        "adagrad": torch.optim.Adagrad}

def objective(trial):
    layers, width = [], 2
    for i in range(trial.suggest_int("n_layers", 1, 3)):
        units = trial.suggest_int(f"units_l{i + 1}", 2, 64, log=True)
        layers += [nn.Linear(width, units), acts[trial.suggest_categorical("activation", list(acts))]()]
        width = units
    torch.manual_seed(seed)
    model = nn.Sequential(*layers, nn.Linear(width, 4))
    opt = opts[trial.suggest_categorical("optimizer", list(opts))](
        model.parameters(), lr=trial.suggest_float("lr", 1e-4, 1e-1, log=True))
    batch = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(1, 51):
        for idx in torch.randperm(len(X)).split(batch):
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
        with torch.no_grad():
            val = loss_fn(model(Xv), yv).item()
        trial.report(val, epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return val

optuna.logging.set_verbosity(optuna.logging.WARNING)
study = optuna.create_study(storage=url, study_name="plain", sampler=optuna.samplers.TPESampler(seed=seed),
                            pruner=optuna.pruners.MedianPruner(5, 5))
study.optimize(objective, timeout=seconds)
'''

SYSTEMS = ("fcnn_opt, time budget (studies/minute.toml)", "fcnn_opt, W2 (50 epochs a trial)",
           "plain Optuna + PyTorch, one trial at a time")


def _command(system: str, seconds: float, seed: int, folder: Path) -> tuple[list[str], str, str]:
    """The process to start, its storage URL and its study name."""
    url = f"sqlite:///{folder}/study.db"
    if system == SYSTEMS[2]:
        script = folder / "plain.py"
        script.write_text(PLAIN_TORCH)
        return [sys.executable, str(script), str(seconds), str(seed), url], url, "plain"
    if system == SYSTEMS[0]:
        config, name = MINUTE, "best_in_a_minute"
    else:
        config, name = folder / "w2.toml", "w2_timed"
        config.write_text(W2_TIMED.format(seconds=seconds))
    command = [sys.executable, "-m", "fcnn_opt", "study", "--config", str(config), "--storage", url,
               "--seed", str(seed), "--timeout", str(seconds), "--no-progress", "--study-name", name]
    return command, url, name


def run_once(system: str, seconds: float, seed: int, cold: bool = False) -> dict:
    """Run one system for ``seconds`` in a fresh folder; the best value at each checkpoint."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        command, url, study_name = _command(system, seconds, seed, folder)
        env = dict(os.environ)
        if cold:
            env["NUMBA_CACHE_DIR"] = str(folder / "numba-cache")  # nothing compiled yet
        started = time.time()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=folder)
        wall = time.time() - started
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit {done.returncode}"}
        trials = optuna.load_study(study_name=study_name, storage=url).get_trials(deepcopy=False)
    finished = sorted((_timestamp(t.datetime_complete) - started, t.value) for t in trials
                      if t.state.name == "COMPLETE" and t.value is not None)
    best = {}
    for checkpoint in CHECKPOINTS:
        values = [value for at, value in finished if at <= checkpoint]
        best[checkpoint] = min(values) if values else None
    epochs = sum(len(t.intermediate_values) for t in trials)
    return {"best": best, "trials": len(trials), "epochs": epochs, "wall": wall}


def _timestamp(moment: datetime) -> float:
    return moment.timestamp()  # Optuna stores local naive times; timestamp() reads them as local


def _cell(values: list) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return "none yet"
    median = statistics.median(known)
    missing = f", {len(values) - len(known)} none" if len(known) < len(values) else ""
    return f"{median:.4f} ({min(known):.4f}-{max(known):.4f}{missing})"


def run_anytime(seconds: float = 60, repeats: int = 3, cold_start: bool = True) -> list[dict]:
    """Run every system ``repeats`` times (sampler seeds 0..repeats-1) and print the table."""
    rows = []
    for system in SYSTEMS:
        runs = []
        for seed in range(repeats):
            print(f"running {system}, seed {seed} ...", file=sys.stderr, flush=True)
            runs.append(run_once(system, seconds, seed))
        rows.append({"system": system, "runs": runs})
    if cold_start:
        print(f"running {SYSTEMS[0]}, cold start ...", file=sys.stderr, flush=True)
        rows.append({"system": SYSTEMS[0] + ", cold start (empty compile cache)",
                     "runs": [run_once(SYSTEMS[0], seconds, 0, cold=True)]})
    checkpoints = [c for c in CHECKPOINTS if c <= seconds + 1e-9] or [CHECKPOINTS[0]]
    headers = ["system", "runs", *[f"best val at {c} s: median (range)" for c in checkpoints], "trials", "epochs"]
    body = []
    for row in rows:
        good = [r for r in row["runs"] if "error" not in r]
        if not good:
            body.append([row["system"], 0, "error: " + row["runs"][0]["error"]] + [None] * (len(checkpoints) + 1))
            continue
        body.append([row["system"], len(good), *[_cell([r["best"][c] for r in good]) for c in checkpoints],
                     round(statistics.median(r["trials"] for r in good)),
                     round(statistics.median(r["epochs"] for r in good))])
    print(table(headers, body))
    print(f"Each system ran {seconds:g} s per repetition, timed from its process start (imports, study "
          "creation, compilation included); best val: the best complete trial's validation loss by then.")
    _verdict(rows, checkpoints)
    return rows


def _verdict(rows: list[dict], checkpoints: list[int]) -> list[str]:
    """The targets, as printed lines: the median at 60 s, and at each checkpoint whether the
    time-budgeted mode beat the plain objective by more than the spread of the repetitions:
    the two ranges apart (its worst repetition better than the plain objective's best), which
    also puts the lead of the medians beyond its own range. A repetition without a complete
    trial yet has no model: anything beats it."""
    ours, plain = rows[0]["runs"], rows[2]["runs"]
    if any("error" in r for r in ours + plain):
        return []
    lines = []
    last = checkpoints[-1]
    finals = [r["best"][last] for r in ours if r["best"][last] is not None]
    if finals and last == 60:
        lines.append(f"time budget, median best val at {last} s: {statistics.median(finals):.4f} "
                     "(target: at most 0.035)")
    for c in checkpoints:
        a = [math.inf if r["best"][c] is None else r["best"][c] for r in ours]
        b = [math.inf if r["best"][c] is None else r["best"][c] for r in plain]
        lead = statistics.median(b) - statistics.median(a)
        better = max(a) < min(b)
        lines.append(f"at {c} s: {'better' if better else 'NOT clearly better'}: worst {_text(max(a))} against "
                     f"best {_text(min(b))}; median {_text(statistics.median(a))} against "
                     f"{_text(statistics.median(b))} (lead {_text(lead)}; ranges {_range(a):.4f} and {_range(b):.4f})")
    for line in lines:
        print(line)
    return lines


def _range(values: list[float]) -> float:
    """The spread of the repetitions that have a value (0 for one, or none)."""
    known = [v for v in values if not math.isinf(v)]
    return max(known) - min(known) if known else 0.0


def _text(value: float) -> str:
    return "no model" if math.isinf(value) and value > 0 else ("inf" if math.isinf(value) else f"{value:.4f}")


def main(argv: list[str] | None = None) -> None:
    """Parse ``--seconds`` and ``--repeats`` and run :func:`run_anytime`; a bad value is one line
    on stderr and exit code 2, before anything runs."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="wall time of each run (default 60)")
    parser.add_argument("--repeats", type=int, default=3,
                        help=f"repetitions per system, sampler seeds 0..N-1 (1 to {MAX_REPEATS}; default 3)")
    parser.add_argument("--no-cold-start", action="store_true", help="leave out the cold-start row")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or not 1 <= args.repeats <= MAX_REPEATS:
        print(f"anytime.py: error: --seconds must be > 0 and --repeats from 1 to {MAX_REPEATS}, got "
              f"{args.seconds:g} and {args.repeats}.", file=sys.stderr)
        sys.exit(2)
    run_anytime(args.seconds, args.repeats, cold_start=not args.no_cold_start)


if __name__ == "__main__":
    main()
