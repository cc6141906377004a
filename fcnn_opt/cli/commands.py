"""The command line: ``python -m fcnn_opt <command>`` (also installed as ``fcnn-opt``).

Each command parses its arguments, calls library functions and prints. Exit codes:
0 done, 2 bad usage or configuration (one line on stderr, no traceback), 1 anything
unexpected, 130 interrupted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from fcnn_opt import __version__
from fcnn_opt.cli.bench import WORKLOADS, run_bench
from fcnn_opt.cli.text import as_csv, as_json, created_summary, pareto_lines, run_summary, table
from fcnn_opt.search.cluster import cluster_address, run_on_cluster
from fcnn_opt.search.evaluation import evaluate_trial, refit_lines
from fcnn_opt.search.export import FORMATS, export_model
from fcnn_opt.search.models import ModelError, load_model, load_study, opened_storage, pick_trial
from fcnn_opt.search.pruners import PRUNERS
from fcnn_opt.search.refit import refit
from fcnn_opt.search.registry import PluginError, RegistryError
from fcnn_opt.search.runner import StudyError, as_stored, prepare_study, run_study
from fcnn_opt.search.samplers import SAMPLERS
from fcnn_opt.search.space import REFIT_MEMBERS, SEED_GRID, SpaceError, load_spec, parse_spec
from fcnn_opt.search.trial_source import DatabaseLost
from fcnn_opt.search.workers import run_parallel, run_worker, wait_for_go
from fcnn_opt.show.artifacts import PICTURE_MODES
from fcnn_opt.show.figures import PlotError
from fcnn_opt.show.figures._common import objective_names
from fcnn_opt.show.report import build_report
from fcnn_opt.store.artifact_files import artifact_dir as default_artifact_dir
from fcnn_opt.store.artifact_files import open_artifact_store
from fcnn_opt.store.optuna_internals import complete_trials
from fcnn_opt.store.storages import (
    DEFAULT_STORAGE,
    StorageError,
    default_url,
    mask_url,
    open_storage,
)
from fcnn_opt.training.datasets import list_datasets

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_CONFIG = "studies/seed_grid.toml"


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


def _storage_help() -> str:
    return (f"Optuna storage URL (default: $OPTUNA_STORAGE or {DEFAULT_STORAGE}); "
            "e.g. postgresql://user@host/db, or journal:PATH for a journal file")


def _add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", metavar="URL", help=_storage_help())


def _add_engine(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-trials", type=int, default=1, metavar="K",
                   help="ask K trials at once and train them together (population engine, PyTorch)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="device of the population engine (with --batch-trials)")


def _add_artifact_dir(p: argparse.ArgumentParser, legacy: bool = False) -> None:
    p.add_argument("--artifact-dir", metavar="DIR",
                   help="artifact folder: each trial's weights and pictures (default: artifacts/ beside an "
                        "SQLite or journal file, else studies/artifacts)")
    if legacy:  # before --artifact-dir, --artifacts named the folder
        p.add_argument("--artifacts", metavar="DIR", help=argparse.SUPPRESS)


def _add_snapshots(p: argparse.ArgumentParser) -> None:
    p.add_argument("--snapshots", type=int, default=0, metavar="N",
                   help="keep each network's weights after N epochs spread over its run: pictures become "
                        "animated PNGs of the boundary as it learns, and the report animates the best and worst")


def _add_artifacts(p: argparse.ArgumentParser) -> None:
    p.add_argument("--artifacts", metavar="WHICH",
                   help="which finished trials get a picture for optuna-dashboard: complete (default), all, "
                        "best (each new best) or none; drawn in the background while training goes on")
    p.add_argument("--no-artifacts", action="store_true", help="the same as --artifacts none")
    _add_artifact_dir(p)


def _artifact_options(args) -> dict:
    """``--artifacts WHICH``, ``--no-artifacts`` and ``--artifact-dir DIR`` (``--artifacts DIR``,
    the older spelling of the folder, is still read as one)."""
    mode, folder = "complete", args.artifact_dir
    if args.artifacts in PICTURE_MODES:
        mode = args.artifacts
    elif args.artifacts is not None:
        if folder is not None or args.artifacts.isalpha():
            raise UsageError(f"--artifacts {args.artifacts!r}: expected one of {', '.join(PICTURE_MODES)} "
                             "(the folder is --artifact-dir DIR).")
        folder = args.artifacts
    if args.no_artifacts:
        if args.artifacts in PICTURE_MODES and args.artifacts != "none":
            raise UsageError(f"--no-artifacts contradicts --artifacts {args.artifacts}.")
        mode = "none"
    return {"artifacts": mode, "artifact_dir": folder}


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser; the choices of ``--sampler``, ``--pruner`` and ``--format``
    are the registries' names (plugins loaded first, see :mod:`fcnn_opt.search.registry`)."""
    parser = argparse.ArgumentParser(
        prog="fcnn_opt",
        description="Hyperparameter studies of small fully connected networks, built on Optuna.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("study", help="create or resume a study and run its trials",
                       description="Create or resume a study and run trials until its budget (or grid) is done. "
                                   f"Without --config, runs {DEFAULT_CONFIG}: the seed article's 2x3 grid.")
    p.add_argument("--config", metavar="FILE", help=f"study definition (TOML; default {DEFAULT_CONFIG})")
    p.add_argument("--sampler", choices=SAMPLERS.names(), help="sampler (default: the file's)")
    p.add_argument("--pruner", choices=PRUNERS.names(), help="pruner (default: the file's)")
    p.add_argument("--n-trials", type=int, metavar="N", help="total trials of the study (not of this run)")
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting new trials after S seconds")
    _add_storage(p)
    p.add_argument("--study-name", metavar="NAME", help="study name (default: the file's)")
    p.add_argument("--lib", metavar="NAME", help="fix the training library: numpy, torch, tf, keras, sklearn")
    p.add_argument("--dataset", metavar="NAME", help="dataset name (see `datasets`)")
    p.add_argument("--seed", type=int, metavar="N", help="sampler and training seed")
    p.add_argument("--repeats", type=int, metavar="R",
                   help="networks per trial, one per seed (seed .. seed+R-1); the trial's value is their "
                        "mean, and its spread is kept (default: the file's [study] repeats, else 1)")
    p.add_argument("--folds", type=int, metavar="K",
                   help="cross-validate each trial on K folds of the rows outside the test split (stratified "
                        "for classification): K networks, the value their mean (default: the file's "
                        "[dataset] folds, else 1: one validation split)")
    _add_engine(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    p.add_argument("--workers", type=int, metavar="N",
                   help="run the study with N local worker processes (one combined progress bar); with "
                        "--cluster, N worker tasks on the cluster")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="run the workers as tasks on a Dask cluster: a scheduler (tcp://HOST:8786), local or "
                        "local:N (a LocalCluster of N workers here), or none (default: the file's [cluster] "
                        "address); pip install 'fcnn_opt[cluster]'")
    p.add_argument("--worker-resources", metavar="NAME=N[,...]",
                   help="with --cluster: the Dask resources each worker task needs, e.g. GPU=1 (default: the "
                        "file's [cluster] resources)")
    p.add_argument("--create-only", action="store_true",
                   help="create the study (and queue its grid), run nothing: for `worker` processes")
    p.add_argument("--allow-large", action="store_true",
                   help="accept counts above the limits (points, units, epochs, batch size, trials, table "
                        "rows and columns); what cannot fit in memory is refused all the same")
    _add_artifacts(p)
    _add_snapshots(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("worker", help="join a study and run its trials (many may run at once)",
                       description="Join a study created by `study` (see --create-only) and run trials "
                                   "until the study's total budget is reached or its grid is done. Start "
                                   "one per machine or GPU against a shared database; no study file needed.")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    p.add_argument("--timeout", type=float, metavar="S", help="stop starting new trials after S seconds")
    p.add_argument("--worker-id", type=int, metavar="K",
                   help="seed the sampler with the study's seed + K (default: a random seed)")
    _add_engine(p)
    _add_artifacts(p)
    _add_snapshots(p)
    p.add_argument("--no-progress", action="store_true", help="no live progress bar")
    # `study --workers N` starts its workers before the study exists: they load the backends
    # LIBS names, then wait for a line on stdin (fcnn_opt.search.workers.wait_for_go). Not for users.
    p.add_argument("--start-when-told", metavar="LIBS", help=argparse.SUPPRESS)
    # A Dask task's worker (fcnn_opt.search.cluster) also ends when its stdin does: its task's
    # Dask worker is gone (fcnn_opt.search.workers.watch_parent). Not for users.
    p.add_argument("--end-with-parent", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("trials", help="list a study's trials")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    p.add_argument("--format", choices=("table", "csv", "json"), default="table")
    p.set_defaults(func=cmd_trials)

    p = sub.add_parser("best", help="the best trial of a study, with its test estimate")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    _add_artifact_dir(p)
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("evaluate", help="a trial's loss and accuracy on the held-out test split",
                       description="Score a trial's networks (one per seed repeat) on the validation split "
                                   "and on the test split that the search never saw ([dataset] "
                                   "test_fraction), from their stored weights.")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    p.add_argument("--trial", type=int, metavar="N", help="this trial number (default: the best)")
    p.add_argument("--allow-partial", action="store_true", help="also score a pruned or failed trial")
    _add_artifact_dir(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("refit", help="train the chosen settings again on every row, average the best, calibrate",
                       description="Train the best trial's settings (or trial N's, or each of the --top K "
                                   "best trials') again on every row outside the test split, for the "
                                   "epochs the trial ran; average the K networks; fit one temperature to "
                                   "their held-out predictions (classification); store the result with the "
                                   "study, where load_model, best, evaluate and export find it. With "
                                   "--members folds, nothing is trained: the chosen trials' fold networks "
                                   "are averaged instead.")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="N", help="refit this trial's settings")
    which.add_argument("--top", type=int, metavar="K", default=1,
                       help="refit each of the K best complete trials and average their outputs (default 1)")
    p.add_argument("--members", choices=REFIT_MEMBERS, default="refit",
                   help="what each chosen trial adds: refit (its settings trained again on every row; default) "
                        "or folds (the networks its cross-validation trained, one per fold: nothing is trained)")
    _add_artifact_dir(p)
    p.set_defaults(func=cmd_refit)

    p = sub.add_parser("studies", help="the studies in a storage")
    _add_storage(p)
    p.set_defaults(func=cmd_studies)

    p = sub.add_parser("report", help="an offline HTML report and PNG figures of a study",
                       description="Write one self-contained HTML file (opens offline) and a PNG of "
                                   "every figure: Optuna's plots, the loss-history overlay, response "
                                   "surfaces of the best and worst trials, the hyperparameter surface "
                                   "and, when lib varies, the library comparison.")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    p.add_argument("--out", metavar="DIR", help="output folder (default: studies/reports/<study name>)")
    p.add_argument("--trials", metavar="N", type=int, nargs="+", default=[],
                   help="also draw the response surface of these trial numbers")
    p.add_argument("--color-by", metavar="PARAM", help="loss overlay: colour by this hyperparameter")
    p.add_argument("--style-by", metavar="PARAM", help="loss overlay: line style by this hyperparameter")
    p.add_argument("--x", metavar="PARAM", help="hyperparameter surface: x axis")
    p.add_argument("--y", metavar="PARAM", help="hyperparameter surface: y axis")
    p.add_argument("--features", metavar="NAME", nargs=2,
                   help="your own data: draw the response surfaces over these two features (default: the "
                        "two that matter most to each network; the others stay at their medians)")
    p.add_argument("--no-png", action="store_true", help="HTML only")
    p.add_argument("--surrogate", choices=["auto", "gp", "forest", "none"], default="auto",
                   help="the fitted surrogate behind the partial dependence, the surface with "
                        "uncertainty and the importances with error bars: auto (default: the better of "
                        "gp and forest by cross-validation), gp, forest, or none to skip those figures")
    _add_artifact_dir(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("dashboard", help="optuna-dashboard on a storage, with each trial's picture",
                       description="Serve optuna-dashboard on the storage with its artifact store, so "
                                   "each trial's page shows its response surface. Ctrl-C stops it.")
    _add_storage(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    _add_artifact_dir(p, legacy=True)
    p.set_defaults(func=cmd_dashboard)

    p = sub.add_parser("datasets", help="the available datasets")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("export", help="a trained network in another library's format",
                       description="Write a trained network (the study's refit if it has one, else its "
                                   "best complete trial's) in the chosen format, checked to predict what it "
                                   "predicted in fcnn_opt.")
    p.add_argument("--study-name", metavar="NAME", required=True)
    _add_storage(p)
    which = p.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, metavar="N", help="this trial number")
    which.add_argument("--best", action="store_true",
                       help="the best complete trial's own network (the default when the study has no refit)")
    formats = [entry.description or entry.name for entry in FORMATS]
    p.add_argument("--format", required=True, choices=FORMATS.names(),
                   help=f"{', '.join(formats[:-1])} or {formats[-1]}" if len(formats) > 1 else formats[0])
    p.add_argument("--out", metavar="PATH", required=True, help="the file to write")
    p.add_argument("--allow-partial", action="store_true", help="also export a pruned or failed trial")
    _add_artifact_dir(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("bench", help="time the standard workloads every way (prints a table)",
                       description="Run the workloads W1 (seed grid) and W2 (200-trial TPE study) with "
                                   "Keras, PyTorch and NumPy one trial at a time and with the population "
                                   "engine, each in its own process, and print one comparison table.")
    p.add_argument("--workloads", default="W1,W2", help="comma-separated: W1, W2 (default both)")
    p.add_argument("--quick", action="store_true", help="fewer trials per row (a few minutes in all)")
    p.add_argument("--anytime", action="store_true",
                   help="instead: the best validation loss after 5, 10, 20, 30 and 60 s of the time-budgeted "
                        "mode, the W2 study and a plain Optuna + PyTorch objective (about 11 minutes; runs "
                        "benchmarks/anytime.py from a source checkout)")
    p.add_argument("--tables", nargs="?", const="", metavar="NAMES",
                   help="instead: the model each tuner hands over on scikit-learn's tables (comma-separated; "
                        "default digits, breast_cancer, wine, diabetes) against FLAML, SMAC3, Optuna over "
                        "scikit-learn's MLP and its defaults, --seconds each (runs benchmarks/tables.py from a "
                        "source checkout; pip install 'fcnn_opt[bench]')")
    p.add_argument("--growth", action="store_true",
                   help="instead: milliseconds of overhead per trial as a study grows (W2's space, 2 epochs a "
                        "trial) at --trials counts, for TPE, random sampling and Optuna's public API, one and two "
                        "workers, on SQLite and PostgreSQL (runs benchmarks/growth.py from a source checkout)")
    p.add_argument("--trials", default="100,1000,3000,10000", metavar="COUNTS",
                   help="--growth: comma-separated trial counts to report; the studies run to the largest "
                        "(default 100,1000,3000,10000; e.g. 100,1000 for a short run)")
    p.add_argument("--seconds", type=float, default=60, metavar="S",
                   help="--anytime, --tables: seconds per run (default 60)")
    p.add_argument("--repeats", type=int, default=3, metavar="N",
                   help="--anytime, --tables: repetitions per system, seeds 0..N-1 (default 3)")
    p.set_defaults(func=cmd_bench)
    return parser


def _version() -> str:
    return f"fcnn_opt {__version__}"


def _load_spec(args):
    if args.config is None and not Path(DEFAULT_CONFIG).exists():
        spec = parse_spec(SEED_GRID, source="built-in seed_grid")
    else:
        spec = load_spec(args.config or DEFAULT_CONFIG)
    overrides = {"lib": args.lib, "dataset": args.dataset, "seed": args.seed,
                 "sampler": args.sampler, "pruner": args.pruner, "n_trials": args.n_trials,
                 "repeats": args.repeats, "folds": args.folds}
    return spec.with_overrides(**overrides)


def _default_study_name(args, spec) -> str:
    """The file's name, suffixed by what the command line changed, so runs do not mix."""
    if args.study_name:
        return args.study_name
    parts = [spec.name] + [f"{k}={v}" for k, v in (("lib", args.lib), ("dataset", args.dataset),
                                                  ("seed", args.seed)) if v is not None]
    return ".".join(parts)


def _check_timeout(args) -> None:
    if args.timeout is not None and args.timeout <= 0:
        raise UsageError(f"--timeout must be > 0 seconds, got {args.timeout}.")
def _check_snapshots(args) -> None:
    if not 0 <= args.snapshots <= 100:
        raise UsageError(f"--snapshots must be from 0 to 100 (epochs kept per network), got {args.snapshots}.")


def _check_batch(args) -> None:
    if args.batch_trials < 1:
        raise UsageError(f"--batch-trials must be >= 1, got {args.batch_trials}.")
    if args.device == "cuda" and args.batch_trials == 1:
        raise UsageError("--device cuda applies to the population engine: add --batch-trials K (K > 1).")


def cmd_study(args) -> int:
    """``study``: create or resume a study and run it (here, or in ``--workers`` processes), then
    refit it if its file asks; returns the exit code."""
    spec = _load_spec(args)
    _check_timeout(args)
    _check_batch(args)
    name = _default_study_name(args, spec)
    spec = as_stored(spec, args.storage, name)
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}.")
    cluster = cluster_address(args.cluster, spec)
    if args.worker_resources is not None and cluster is None:
        raise UsageError("--worker-resources places worker tasks on a Dask cluster: add --cluster ADDRESS.")
    if args.create_only:
        if args.cluster not in (None, "none"):
            raise UsageError("--create-only runs nothing; leave out --cluster.")
        if args.workers is not None:
            raise UsageError("--create-only runs nothing; leave out --workers, then start `worker` processes.")
        study, summary = prepare_study(spec, storage=args.storage, study_name=name,
                                       allow_large=args.allow_large,
                                       artifact_dir=_artifact_options(args)["artifact_dir"])
        print(created_summary(summary))
        return EXIT_OK
    _check_snapshots(args)
    engine = {"batch_trials": args.batch_trials, "device": args.device, "allow_large": args.allow_large,
              "snapshots": args.snapshots, **_artifact_options(args)}
    timeout = _search_time(spec, args.timeout)
    if cluster is not None:
        summary = run_on_cluster(spec, address=cluster, storage=args.storage, study_name=name,
                                 n_workers=args.workers, resources=args.worker_resources, timeout=timeout,
                                 progress=not args.no_progress, on_start=print, **engine)
    elif args.workers is not None:
        summary = run_parallel(spec, storage=args.storage, study_name=name, n_workers=args.workers,
                               timeout=timeout, progress=not args.no_progress, **engine)
    else:
        summary = run_study(spec, storage=args.storage, study_name=name,
                            timeout=timeout, progress=not args.no_progress, **engine)
    code = _report(summary, run_summary(summary))
    if code == EXIT_OK and spec.refit:
        budget = args.timeout if args.timeout is not None else spec.timeout
        deadline = None if budget is None else time.monotonic() + max(0.0, budget - summary.seconds)
        code = _refit_after_search(args, spec, name, engine["artifact_dir"], deadline)
    return code


# Of a time budget, kept for [study] refit after the search: a refit trains, an ensemble of
# fold networks only reads them from the trials' run files (1.2 s for 10 trials of diabetes).
REFIT_SHARE = {"refit": 0.1, "folds": 0.03}


def _search_time(spec, given: float | None) -> float | None:
    """The search's time budget: with ``[study] refit``, a share of it is kept for what follows
    the search (:data:`REFIT_SHARE`): a tenth for a refit, which refits as many of the best
    trials as the rest of the budget allows, 3 % for an ensemble of fold networks."""
    budget = given if given is not None else spec.timeout
    if budget is None or not spec.refit:
        return given
    return budget * (1 - REFIT_SHARE[spec.refit_members])


def _refit_after_search(args, spec, name: str, artifact_dir, deadline: float | None) -> int:
    """``[study] refit``: refit the best trial (or the k best) once the search has ended."""
    try:
        summary = refit(args.storage or default_url(), name, top=spec.refit, members=spec.refit_members,
                        artifact_dir=artifact_dir, deadline=deadline)
    except ModelError as exc:
        print(f"fcnn_opt study: the refit ([study] refit) failed: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print("\n".join(summary.lines()))
    return EXIT_OK


def _report(summary, text: str) -> int:
    print(text)
    for worker, code, tail in summary.failed_workers:
        print(f"fcnn_opt: worker {worker} exited with code {code}: {tail or 'no output'}", file=sys.stderr)
    if summary.interrupted:
        return EXIT_INTERRUPTED
    if summary.all_failed:
        print(f"fcnn_opt: every trial of this run failed ({next(iter(summary.failures), 'no reason recorded')}); "
              "see `python -m fcnn_opt trials`", file=sys.stderr)
    return EXIT_ERROR if summary.failed_workers or summary.all_failed else EXIT_OK


def cmd_worker(args) -> int:
    """``worker``: join a stored study and run its trials until its budget is spent; returns the
    exit code."""
    _check_timeout(args)
    _check_batch(args)
    _check_snapshots(args)
    if args.worker_id is not None and args.worker_id < 0:
        raise UsageError(f"--worker-id must be >= 0, got {args.worker_id}.")
    if args.start_when_told is not None:
        if not wait_for_go(args.storage, args.start_when_told, end_with_parent=args.end_with_parent):
            return EXIT_OK  # the study was not created: its creator says why
    summary = run_worker(storage=args.storage, study_name=args.study_name, timeout=args.timeout,
                         progress=not args.no_progress, worker_id=args.worker_id,
                         batch_trials=args.batch_trials, device=args.device, snapshots=args.snapshots,
                         **_artifact_options(args))
    return _report(summary, run_summary(summary))


def _load_study(args):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(args.storage, read_only=True)
    try:
        return optuna.load_study(study_name=args.study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        where = mask_url(args.storage or "the default storage")
        raise UsageError(f"No study named {args.study_name!r} in {where}. "
                         f"Studies there: {', '.join(names) or 'none'}.") from None


def trial_rows(study) -> tuple[list[str], list[list]]:
    """The headers and one row per trial of ``study`` (number, state, value(s), parameters,
    epochs, seconds per epoch, description or failure), as ``trials`` prints them."""
    names = sorted({k for t in study.trials for k in t.params})
    multi = len(study.directions) > 1
    headers = ["number", "state", "values" if multi else "value", *names, "epochs_run", "seconds_per_epoch",
               "description"]
    rows = []
    for t in study.trials:
        value = (" / ".join(f"{v:.5g}" for v in t.values) if t.values else None) if multi else t.value
        rows.append([t.number, t.state.name, value, *[t.params.get(n) for n in names],
                     t.user_attrs.get("epochs_run"), t.user_attrs.get("seconds_per_epoch"),
                     t.user_attrs.get("description") or t.user_attrs.get("fail_reason", "")])
    return headers, rows


def cmd_trials(args) -> int:
    """``trials``: print every trial of a study as a table, CSV or JSON; returns the exit code."""
    headers, rows = trial_rows(_load_study(args))
    render = {"table": table, "csv": as_csv, "json": as_json}[args.format]
    print(render(headers, rows))
    return EXIT_OK


def cmd_best(args) -> int:
    """``best``: print the best trial (or a multi-objective study's Pareto set), its test
    estimate and the study's refit; returns the exit code."""
    study = _load_study(args)
    if not complete_trials(study):
        raise UsageError(f"Study {args.study_name!r} has no complete trial yet.")
    if len(study.directions) > 1:
        return _print_pareto(study)
    best = study.best_trial
    spread = best.user_attrs.get(f"{study.user_attrs.get('metric', 'val_loss')}_std")
    folds = best.user_attrs.get("folds")
    over = (f"{folds['n']} folds" if folds else f"{best.user_attrs['repeats']['n']} seeds"
            if "repeats" in best.user_attrs else None)
    value = f"{best.value:.6g}" + (f" ± {spread:.2g} over {over}" if spread is not None and over else "")
    where = "cross-validated" if folds else "validation"
    print(f"trial {best.number}: value {value} ({study.direction.name.lower()}, {where})")
    for key, val in best.params.items():
        print(f"  {key} = {val}")
    if "description" in best.user_attrs:
        print(f"  {best.user_attrs['description']}")
    try:
        print("\n".join(evaluate_trial(study, best, args.artifact_dir).lines()[1:]))
    except ModelError as exc:
        print(f"  test        not computed: {exc}")
    try:
        print("\n".join(refit_lines(study, args.artifact_dir)))
    except ModelError as exc:
        print(f"model       the refit could not be read: {exc}")
    return EXIT_OK


def _print_pareto(study) -> int:
    """A multi-objective study's Pareto set: no trial is best at everything."""
    objectives = objective_names(study)
    pareto = sorted(((t.number, t.values) for t in study.best_trials), key=lambda row: row[1])
    directions = ", ".join(f"{name} ({d.name.lower()})" for name, d in zip(objectives, study.directions,
                                                                           strict=True))
    print(f"pareto set: {len(pareto)} trials, none beaten on every objective: {directions}")
    print("\n".join(pareto_lines(objectives, pareto, limit=len(pareto) + 1)))
    print("  (python -m fcnn_opt evaluate --trial N for a trial's test estimate)")
    return EXIT_OK


def cmd_evaluate(args) -> int:
    """``evaluate``: print a trial's (default: the best's) scores per split, and the refit's;
    returns the exit code."""
    try:  # one opening of the storage for the trial and the study's refit
        with opened_storage(args.storage or default_url()) as storage:
            study = load_study(storage, args.study_name)
            result = evaluate_trial(study, pick_trial(study, args.trial, args.allow_partial), args.artifact_dir)
            refitted = [] if args.trial is not None else refit_lines(study, args.artifact_dir)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    print("\n".join(refitted + result.lines()))
    return EXIT_OK


def cmd_studies(args) -> int:
    """``studies``: list the studies of a storage with their trial counts and best values;
    returns the exit code."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = open_storage(args.storage, read_only=True)
    rows = []
    for s in optuna.get_all_study_summaries(storage, include_best_trial=True):
        multi = len(s.directions) > 1
        best = s.best_trial.value if s.best_trial is not None and not multi else ("Pareto set" if multi else None)
        rows.append([s.study_name, s.n_trials, ", ".join(d.name.lower() for d in s.directions), best,
                     s.datetime_start.strftime("%Y-%m-%d %H:%M") if s.datetime_start else None])
    print(table(["study", "trials", "direction", "best", "started"], rows) if rows else "no studies")
    return EXIT_OK


def cmd_report(args) -> int:
    """``report``: write a study's offline HTML report and PNG figures; returns the exit code."""
    study = _load_study(args)
    try:
        report = build_report(study, args.out, trials=args.trials, color_by=args.color_by,
                              style_by=args.style_by, x=args.x, y=args.y, png=not args.no_png,
                              artifact_dir=args.artifact_dir, facts=_estimate_facts(study, args.artifact_dir),
                              features=args.features,
                              surrogate=None if args.surrogate == "none" else args.surrogate)
    except PlotError as exc:
        raise UsageError(str(exc)) from None
    print(f"report    {report.html} ({sum(report.seconds.values()):.1f} s)")
    if report.pngs:
        print(f"figures   {len(report.pngs)} PNG files in {report.out_dir}")
    for title, reason in report.skipped.items():
        print(f"skipped   {title}: {reason}")
    return EXIT_OK


def _estimate_facts(study, artifact_dir) -> dict[str, str]:
    """The best trial's spread over seeds and its scores on the validation (or cross-validated)
    and test splits, and the study's refit on the test split, for the report's header (nothing
    for a multi-objective study, or one with no complete trial)."""
    if len(study.directions) > 1 or not any(t.state.name == "COMPLETE" for t in study.trials):
        return {}
    try:
        result = evaluate_trial(study, study.best_trial, artifact_dir)
    except ModelError as exc:
        return {"test estimate": f"not computed: {exc}"}
    facts = {"cross-validated" if result.folds > 1 else "validation": result.scores_text("validation"),
             "test estimate": result.scores_text("test")}
    try:
        refitted = refit_lines(study, artifact_dir)
    except ModelError as exc:
        refitted = [f"model       the refit could not be read: {exc}"]
    if refitted:  # "model       the refit ...", then its test scores
        facts["model handed over"] = "; ".join(" ".join(line.split()[1 if i == 0 else 0:])
                                               for i, line in enumerate(refitted))
    return facts


def cmd_dashboard(args) -> int:
    """``dashboard``: serve optuna-dashboard on the storage, with the trials' pictures, until
    Ctrl-C; returns the exit code."""
    import optuna_dashboard

    if not 0 < args.port < 65536:
        raise UsageError(f"--port must be in 1..65535, got {args.port}.")
    url = args.storage or default_url()
    storage = open_storage(url, heartbeat=False)
    folder = Path(args.artifact_dir or args.artifacts or default_artifact_dir(url))
    store = open_artifact_store(folder)
    print(f"optuna-dashboard on {mask_url(url)} (artifacts in {folder})", flush=True)
    print(f"open http://{args.host}:{args.port}/dashboard  (Ctrl-C stops it)", flush=True)
    try:
        optuna_dashboard.run_server(storage, host=args.host, port=args.port, artifact_store=store)
    except OSError as exc:
        raise UsageError(f"cannot serve on {args.host}:{args.port}: {exc.strerror or exc}") from None
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def cmd_export(args) -> int:
    """``export``: write a trial's network (or the refit) in a registered format; returns the
    exit code."""
    try:
        model = load_model(args.storage or default_url(), args.study_name, args.trial,
                           artifact_dir=args.artifact_dir, allow_partial=args.allow_partial,
                           use_refit=not args.best)
        written = export_model(model, args.format, args.out)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    which = getattr(model, "description", "") or f"trial {model.trial_number}"
    print(f"exported  {which} of {args.study_name!r} ({args.format}): {', '.join(str(p) for p in written)}")
    return EXIT_OK


def cmd_refit(args) -> int:
    """``refit``: train the best trial's settings (or the ``--top`` best) again on every row and
    store the result; returns the exit code."""
    def progress(done, total, trial):
        print(f"training  trial {trial}'s settings on every row ({done + 1} of {total})", flush=True)

    try:
        summary = refit(args.storage or default_url(), args.study_name, trial=args.trial, top=args.top,
                        members=args.members, artifact_dir=args.artifact_dir, progress=progress)
    except ModelError as exc:
        raise UsageError(str(exc)) from None
    print("\n".join(summary.lines()))
    return EXIT_OK


def cmd_datasets(args) -> int:
    """``datasets``: list the built-in datasets; returns the exit code."""
    print(table(["name", "description"], list(list_datasets().items())))
    return EXIT_OK


def cmd_bench(args) -> int:
    """``bench``: time the standard workloads every way, or run ``benchmarks/anytime.py``
    (``--anytime``), ``benchmarks/tables.py`` (``--tables``) or ``benchmarks/growth.py``
    (``--growth``); returns the exit code."""
    if args.tables is not None:
        argv = ["--seconds", f"{args.seconds:g}", "--seeds", ",".join(str(s) for s in range(args.repeats))]
        return _run_benchmark("tables", [*argv, *(["--tables", args.tables] if args.tables else [])])
    if args.anytime:
        return _run_benchmark("anytime", ["--seconds", f"{args.seconds:g}", "--repeats", str(args.repeats)])
    if args.growth:
        return _run_benchmark("growth", ["--trials", args.trials])
    chosen = [w.strip() for w in args.workloads.split(",") if w.strip()]
    unknown = [w for w in chosen if w not in WORKLOADS]
    if unknown or not chosen:
        raise UsageError(f"Unknown workload(s) {unknown or chosen}. Valid workloads: {', '.join(WORKLOADS)}.")
    run_bench(chosen, quick=args.quick)
    return EXIT_OK


def _run_benchmark(name: str, argv: list[str]) -> int:
    """Run ``benchmarks/<name>.py`` with ``argv`` in its own process (it checks its arguments,
    exit code 2 on bad ones); returns its exit code."""
    script = Path(__file__).resolve().parents[2] / "benchmarks" / f"{name}.py"
    if not script.is_file():
        raise UsageError(f"--{name} runs {script}, which only a source checkout of fcnn_opt has.")
    return subprocess.call([sys.executable, str(script), *argv])


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``) and run the command; returns its exit code, and
    turns every bad input into one line on stderr and exit code 2. Safe to call from another
    program (:func:`fcnn_opt.cli.main` also ends the process)."""
    try:
        parser = build_parser()
    except (PluginError, RegistryError) as exc:  # a plugin that cannot be loaded, or registers badly
        print(f"fcnn_opt: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (UsageError, SpaceError, StorageError, StudyError, RegistryError, ImportError) as exc:
        print(f"fcnn_opt {args.command}: error: {mask_url(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except DatabaseLost as exc:
        print(f"fcnn_opt {args.command}: error: {mask_url(str(exc))}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"fcnn_opt {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
