"""Where each second of W2 goes when run as users run it: ``python -m fcnn_opt study --config
studies/tpe.toml`` (a picture per complete trial, progress bar on), in this process, with
timers wrapped around the runner's parts. Prints a table; never a test.

    python benchmarks/default_path.py [--artifacts none] [--n-trials 200]
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the command line sets it (fcnn_opt.cli)
os.environ.setdefault("OMP_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[1]
SPENT: dict[str, float] = defaultdict(float)
CALLS: dict[str, int] = defaultdict(int)


def timed(owner, name: str, label: str) -> None:
    """Wrap ``owner.name`` so that its time (outside other timed parts) adds to ``label``."""
    original = getattr(owner, name)
    stack: list[str] = timed.__dict__.setdefault("stack", [])

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        stack.append(label)
        try:
            return original(*args, **kwargs)
        finally:
            stack.pop()
            elapsed = time.perf_counter() - start
            SPENT[label] += elapsed
            CALLS[label] += 1
            if stack:  # the outer part did not spend this itself
                SPENT[stack[-1]] -= elapsed

    setattr(owner, name, wrapper)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--artifacts", default="complete")
    parser.add_argument("--n-trials", type=int, default=200)
    args = parser.parse_args()
    start = time.perf_counter()
    from fcnn_opt.cli.text import table
    from fcnn_opt.search import ledger, mirror, outcomes, runner, trial_source
    from fcnn_opt.search import objective as objective_module
    from fcnn_opt.search.space import load_spec
    from fcnn_opt.show import artifacts
    from fcnn_opt.store import optuna_internals

    timed(objective_module, "train", "training (epochs and per-epoch validation)")
    timed(trial_source, "suggest", "sampling (TPE on the mirror)")
    timed(optuna_internals, "create_trials", "creating trials (one transaction each)")
    timed(optuna_internals, "write_trial_records", "finishing trials (records, state, value)")
    timed(objective_module, "result_attrs", "run files (weights, histories to .npz)")
    timed(artifacts.TrialPictures, "submit", "pictures: handing over to the renderer")
    timed(artifacts.TrialPictures, "close", "pictures: waiting for the last ones")
    timed(ledger, "rows", "the ledger's trial list")
    timed(mirror.MirrorReporter, "report", "pruning decisions (every epoch)")
    timed(runner, "update_bar", "progress bar")
    timed(outcomes, "tell_all", "telling (besides the write)")
    imported = time.perf_counter() - start
    spec = load_spec(ROOT / "studies" / "tpe.toml").with_overrides(n_trials=args.n_trials)
    with tempfile.TemporaryDirectory() as folder:
        runner.run_study(spec, storage=f"sqlite:///{folder}/w2.db", progress=True, artifacts=args.artifacts)
    total = time.perf_counter() - start
    SPENT["imports"] = imported
    SPENT["everything else (study creation, the loop itself)"] = total - sum(SPENT.values())
    rows = [[label, round(seconds, 2), f"{100 * seconds / total:.0f} %", CALLS.get(label) or None]
            for label, seconds in sorted(SPENT.items(), key=lambda item: -item[1])]
    print(table(["part", "seconds", "share", "calls"], rows), file=sys.stderr)
    print(f"total {total:.2f} s (W2, {args.n_trials} trials, pictures: {args.artifacts})", file=sys.stderr)


if __name__ == "__main__":
    main()
