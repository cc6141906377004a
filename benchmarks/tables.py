"""The model each tuner hands over on real tables, in the same wall time: ``python benchmarks/tables.py``.

    python benchmarks/tables.py                                   # 60 s a run, seeds 0-2, four tables
    python benchmarks/tables.py --seconds 15 --seeds 0 --tables wine
    python benchmarks/tables.py --seeds 0-11 --tables wine,diabetes   # twelve splits: a paired test that can decide
    python benchmarks/tables.py --python /path/to/venv/bin/python # a Python with flaml and smac

For each table that ships inside scikit-learn (digits, breast_cancer, wine, diabetes) and each
seed, 20 % of the rows are held out as the test split (stratified for classification,
``train_test_split(..., random_state=seed)``); the other rows are written to ``train.csv``
(the features, then a column ``y``). Every system runs in its own process, started by the
Python ``--python`` names, with ``--seconds`` of wall time counted from the moment its process
starts (imports, search, the final training and the predictions all included). It reads
``train.csv``, and only once its model is trained the test features (never their labels); it
writes its predictions, which are scored here: test accuracy and log loss for
classification, RMSE for regression. The systems:

- ``fcnn_opt``: ``studies/digits.toml``'s search (its sampler, pruner and ``[params]``, read as
  shipped) on ``train.csv`` with no test split, the file saying nothing of folds or refit: the
  table defaults cross-validate each trial on 5 folds and hand over the fold networks of the
  best trials that ensemble selection chooses (up to 10); run as a user runs it (``python -m fcnn_opt study --no-artifacts``)
  with the budget less 5 s as its timeout, then ``fcnn_opt.load_model`` predicts;
- ``mlp_defaults``: scikit-learn's ``MLPClassifier`` (``MLPRegressor``) behind a
  ``StandardScaler``, its defaults, no search;
- ``optuna_sklearn``: Optuna's TPE over that pipeline (3-fold cross-validated log loss or RMSE)
  until 85 % of the budget, then the best settings trained on every row;
- ``flaml``: ``flaml.tune.run`` with its default search over the same space, 3 folds (BlendSearch:
  CFO's local search with Optuna's TPE as the global one, since Optuna is installed; it takes
  no seed, so only the split, the folds and the networks' initialisation change with it);
- ``smac``: SMAC3's ``MultiFidelityFacade`` (Hyperband over ``max_iter``, 5 to 200 epochs,
  200 being the default the other scikit-learn systems train to), 5 folds;
- ``linear``: no network, a reference: the linear model a data scientist fits first, behind
  the same scaler, its regularisation chosen by 5-fold cross-validation
  (``LogisticRegressionCV`` on log loss; ``RidgeCV`` for regression, 30 strengths from 1e-3 to
  1e3). It says whether a network is worth its search on the table at all.

Digits' 64 features are pixels, one unit for all (``ONE_UNIT``): there every system scales
them with one mean and one deviation over every value (fcnn_opt with ``[dataset] scaling =
"shared"``, as ``studies/digits.toml`` does; the scikit-learn systems with the same scaler in
place of ``StandardScaler``), so the comparison stays one of tuners, not of preprocessing.

The tuned systems search one space: 1-2 hidden layers of 16-256 units (log), L2 1e-6..1e-1,
learning rate 1e-4..1e-1 (log), batch size 32/64/128, relu or tanh. For regression the
scikit-learn systems also standardise the target (``TransformedTargetRegressor``), as fcnn_opt
does. Each cell is the median over the seeds and their range; ``fcnn_opt lower`` counts the
splits on which fcnn_opt's test log loss (RMSE) was below the row's system, split by split (the
medians of a few small test splits compare one split's luck with another's), with the p-value
of Wilcoxon's signed-rank test on the pairs (three splits can never give one under 0.25:
``--seeds 0-11`` for a difference the splits' luck cannot explain); trials are as each system counts
them (fcnn_opt: trials finished, pruned ones included; SMAC: evaluations at one budget). flaml
and smac come with ``pip install 'fcnn_opt[bench]'``; a system whose packages the Python lacks
is reported, not run. Prints one Markdown table per dataset; never a test.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("digits", "breast_cancer", "wine", "diabetes")
SYSTEMS = ("fcnn_opt", "flaml", "smac", "optuna_sklearn", "mlp_defaults", "linear")
PACKAGES = ("fcnn_opt", "optuna", "scikit-learn", "numpy", "numba", "flaml", "smac", "ConfigSpace")
SEARCH_SHARE = 0.85  # the peers stop searching here and train their choice on every row
FCNN_ALLOWANCE = 5.0  # seconds of fcnn_opt's budget kept for starting the command, loading, predicting
SMAC_BUDGETS = (5, 200)  # max_iter: Hyperband's smallest and largest budget
ONE_UNIT = {"digits"}  # tables whose features share one unit (pixels): every system scales them as one
NOT_INSTALLED = 3  # a child's exit status when an import fails

# the shipped search a user starts from (its sampler, pruner and [params]; the rest is set here)
SHIPPED = {"classify": ROOT / "studies" / "digits.toml", "regress": ROOT / "studies" / "diabetes.toml"}


# --- one system, in its own process ------------------------------------------------------------

def _mlp_params(config: dict, **extra) -> dict:
    """scikit-learn MLP keywords for one point of the shared space."""
    return {"hidden_layer_sizes": (int(config["units"]),) * int(config["n_layers"]),
            "alpha": float(config["alpha"]), "learning_rate_init": float(config["learning_rate_init"]),
            "batch_size": int(config["batch_size"]), "activation": str(config["activation"]), **extra}


SCALING = {"scaling": "columns"}  # this child's table: "shared" where its features share one unit (ONE_UNIT)


def _scaler():
    """``StandardScaler()``, or for a table whose features share one unit a scaler with one mean
    and one deviation over every value, as fcnn_opt's ``[dataset] scaling = "shared"``."""
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.preprocessing import StandardScaler

    if SCALING["scaling"] != "shared":
        return StandardScaler()

    class SharedScaler(TransformerMixin, BaseEstimator):
        def fit(self, X, y=None):
            self.mean_, self.scale_ = float(X.mean()), float(X.std()) or 1.0
            return self

        def transform(self, X):
            return (X - self.mean_) / self.scale_

    return SharedScaler()


def _pipeline(task: str, seed: int, **params):
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if task == "classify":
        return make_pipeline(_scaler(), MLPClassifier(random_state=seed, **params))
    from sklearn.compose import TransformedTargetRegressor

    return TransformedTargetRegressor(make_pipeline(_scaler(), MLPRegressor(random_state=seed, **params)),
                                      transformer=StandardScaler())


def _folds(task: str, seed: int, k: int):
    """The k seeded, shuffled folds every scikit-learn system cross-validates on (stratified by
    class for classification)."""
    from sklearn.model_selection import KFold, StratifiedKFold

    return (StratifiedKFold if task == "classify" else KFold)(k, shuffle=True, random_state=seed)


def _cv_loss(task: str, seed: int, folds: int, X, y, params: dict) -> float:
    """Cross-validated log loss (classification) or RMSE; a failed fit costs 1e6."""
    import math

    import numpy as np
    from sklearn.model_selection import cross_val_score

    scoring = "neg_log_loss" if task == "classify" else "neg_root_mean_squared_error"
    value = -float(np.mean(cross_val_score(_pipeline(task, seed, **params), X, y, cv=_folds(task, seed, folds),
                                           scoring=scoring)))
    return value if math.isfinite(value) else 1e6


def _predict(model, task: str, X, n_classes: int):
    """Class probabilities in the order 0..k-1 (classification) or values."""
    import numpy as np

    if task != "classify":
        return np.asarray(model.predict(X), dtype=np.float64)
    proba = np.zeros((len(X), n_classes))
    proba[:, np.asarray(model.classes_, dtype=int)] = model.predict_proba(X)
    return proba


def _fit_predict(task: str, seed: int, X, y, X_test_of, n_classes: int, params: dict):
    model = _pipeline(task, seed, **params).fit(X, y)
    return _predict(model, task, X_test_of(), n_classes)


def run_mlp_defaults(task, seed, folder, X, y, n_classes, deadline, started):
    return _fit_predict(task, seed, X, y, lambda: _test_rows(folder), n_classes, {}), None, ""


def run_linear(task, seed, folder, X, y, n_classes, deadline, started):
    import numpy as np
    from sklearn.linear_model import LogisticRegressionCV, RidgeCV
    from sklearn.pipeline import make_pipeline

    if task == "classify":
        model = LogisticRegressionCV(Cs=20, cv=_folds(task, seed, 5), scoring="neg_log_loss", max_iter=5000)
    else:
        model = RidgeCV(alphas=np.logspace(-3, 3, 30), cv=_folds(task, seed, 5))
    fitted = make_pipeline(_scaler(), model).fit(X, y)
    return _predict(fitted, task, _test_rows(folder), n_classes), None, ""


def run_optuna_sklearn(task, seed, folder, X, y, n_classes, deadline, started):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        config = {"n_layers": trial.suggest_int("n_layers", 1, 2),
                  "units": trial.suggest_int("units", 16, 256, log=True),
                  "alpha": trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
                  "learning_rate_init": trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True),
                  "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128]),
                  "activation": trial.suggest_categorical("activation", ["relu", "tanh"])}
        return _cv_loss(task, seed, 3, X, y, _mlp_params(config))

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(objective, timeout=max(_search_end(started, deadline) - time.time(), 0.1))
    pred = _fit_predict(task, seed, X, y, lambda: _test_rows(folder), n_classes, _mlp_params(study.best_params))
    return pred, len(study.trials), ""


def run_flaml(task, seed, folder, X, y, n_classes, deadline, started):
    from flaml import tune

    space = {"n_layers": tune.randint(1, 3), "units": tune.lograndint(16, 257),  # upper bounds exclusive
             "alpha": tune.loguniform(1e-6, 1e-1), "learning_rate_init": tune.loguniform(1e-4, 1e-1),
             "batch_size": tune.choice([32, 64, 128]), "activation": tune.choice(["relu", "tanh"])}

    def evaluate(config):
        return {"loss": _cv_loss(task, seed, 3, X, y, _mlp_params(config))}

    analysis = tune.run(evaluate, config=space, low_cost_partial_config={"n_layers": 1, "units": 16},
                        metric="loss", mode="min", num_samples=-1, verbose=0,
                        time_budget_s=max(_search_end(started, deadline) - time.time(), 0.1))
    pred = _fit_predict(task, seed, X, y, lambda: _test_rows(folder), n_classes, _mlp_params(analysis.best_config))
    return pred, len(analysis.trials), ""


def run_smac(task, seed, folder, X, y, n_classes, deadline, started):
    from ConfigSpace import Categorical, ConfigurationSpace, Float, Integer
    from smac import MultiFidelityFacade, Scenario

    space = ConfigurationSpace(seed=seed)
    space.add([Integer("n_layers", (1, 2), default=1), Integer("units", (16, 256), log=True, default=64),
               Float("alpha", (1e-6, 1e-1), log=True, default=1e-4),
               Float("learning_rate_init", (1e-4, 1e-1), log=True, default=1e-3),
               Categorical("batch_size", [32, 64, 128], default=64),
               Categorical("activation", ["relu", "tanh"], default="relu")])

    def train(config, seed: int = 0, budget: float = SMAC_BUDGETS[1]) -> float:
        import math

        return _cv_loss(task, seed, 5, X, y, _mlp_params(dict(config), max_iter=int(math.ceil(budget))))

    scenario = Scenario(space, name="tables", output_directory=Path(folder) / "smac3_output", deterministic=True,
                        walltime_limit=max(_search_end(started, deadline) - time.time(), 0.1), n_trials=100_000,
                        min_budget=SMAC_BUDGETS[0], max_budget=SMAC_BUDGETS[1], seed=seed)
    smac = MultiFidelityFacade(scenario, train, initial_design=MultiFidelityFacade.get_initial_design(scenario, n_configs=5),
                               overwrite=True, logging_level=40)
    incumbent = smac.optimize()
    if isinstance(incumbent, list):
        incumbent = incumbent[0] if incumbent else None
    note = "" if incumbent is not None else "no incumbent: the default settings"
    config = dict(incumbent if incumbent is not None else space.get_default_configuration())
    pred = _fit_predict(task, seed, X, y, lambda: _test_rows(folder), n_classes,
                        _mlp_params(config, max_iter=SMAC_BUDGETS[1]))
    return pred, len(smac.runhistory), note


def study_file(path: Path, task: str, seed: int, timeout: float, scaling: str = "columns") -> str:
    """The study a user writes for ``train.csv``: ``studies/digits.toml``'s search (its sampler,
    pruner and ``[params]``) on the file, no test split, within ``timeout``, its features scaled
    as ``scaling`` says. It says nothing of folds or refit, so the table defaults choose them
    (5 folds, the fold networks of the best trials)."""
    import tomllib

    text = SHIPPED[task].read_text()
    study = tomllib.loads(text)["study"]
    kept = {k: v for k, v in study.items() if k not in ("name", "timeout", "seed", "refit", "n_trials")
            and isinstance(v, (str, int, float))}
    lines = ["[study]", 'name = "tables"', *(f"{k} = {json.dumps(v)}" for k, v in kept.items()),
             f"timeout = {timeout:.1f}", f"seed = {seed}", "",
             "[dataset]", f"path = {json.dumps(str(path))}", 'target = "y"',
             *([f"scaling = {json.dumps(scaling)}"] if scaling != "columns" else []),
             *([] if task == "classify" else ['task = "regress"']), ""]
    return "\n".join(lines) + "\n" + text[text.index("[params]"):]


def run_fcnn_opt(task, seed, folder, X, y, n_classes, deadline, started):
    import optuna

    config, url = Path(folder) / "study.toml", f"sqlite:///{folder}/s.db"
    timeout = max(deadline - time.time() - FCNN_ALLOWANCE, 1.0)
    config.write_text(study_file(Path(folder) / "train.csv", task, seed, timeout, SCALING["scaling"]))
    done = subprocess.run([sys.executable, "-m", "fcnn_opt", "study", "--config", str(config), "--storage", url,
                           "--no-progress", "--no-artifacts"], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise RuntimeError(f"study exited {done.returncode}: {lines[-1] if lines else ''}")
    from fcnn_opt import load_model

    model = load_model(url, "tables")
    X_test = _test_rows(folder)
    pred = model.predict_proba(X_test) if task == "classify" else model.predict(X_test)
    trials = optuna.load_study(study_name="tables", storage=url).get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    pruned = sum(t.state.name == "PRUNED" for t in finished)
    return pred, len(finished), f"{pruned} pruned" if pruned else ""


def _search_end(started: float, deadline: float) -> float:
    return started + SEARCH_SHARE * (deadline - started)


def _test_rows(folder):
    import numpy as np

    return np.load(Path(folder) / "test_X.npy")


RUNNERS = {"fcnn_opt": run_fcnn_opt, "flaml": run_flaml, "smac": run_smac,
           "optuna_sklearn": run_optuna_sklearn, "mlp_defaults": run_mlp_defaults, "linear": run_linear}
IMPORTS = {"fcnn_opt": ("fcnn_opt", "optuna"), "flaml": ("flaml", "sklearn"),
           "smac": ("smac", "ConfigSpace", "sklearn"), "optuna_sklearn": ("optuna", "sklearn"),
           "mlp_defaults": ("sklearn",), "linear": ("sklearn",)}


def child(system: str, folder: str, task: str, seed: int, n_classes: int, started: float, seconds: float,
          scaling: str = "columns") -> int:
    """Run one system on ``folder/train.csv``, its features scaled as ``scaling`` says; write its
    test predictions and what it reports."""
    import importlib
    import warnings

    SCALING["scaling"] = scaling

    warnings.filterwarnings("ignore")  # convergence and experimental-feature warnings of every system
    try:
        for name in IMPORTS[system]:
            importlib.import_module(name)
    except ImportError as exc:
        print(f"not installed: {exc.name or exc}", file=sys.stderr)
        return NOT_INSTALLED
    import numpy as np

    data = np.loadtxt(Path(folder) / "train.csv", delimiter=",", skiprows=1)
    X, y = data[:, :-1], data[:, -1]
    if task == "classify":
        y = y.astype(int)
    pred, trials, note = RUNNERS[system](task, seed, folder, X, y, n_classes, started + seconds, started)
    np.save(Path(folder) / f"pred-{system}.npy", np.asarray(pred, dtype=np.float64))
    (Path(folder) / f"result-{system}.json").write_text(json.dumps({"trials": trials, "note": note}))
    return 0


# --- the parent: split, run, score, print ------------------------------------------------------

def load_table(name: str):
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, f"load_{name}")()
    return bunch.data, bunch.target, ("regress" if name == "diabetes" else "classify")


def prepare(name: str, seed: int, folder: Path) -> dict:
    """Split the table, write the training rows and the test features; the labels stay here."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    X, y, task = load_table(name)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.2, random_state=seed, stratify=y if task == "classify" else None)
    header = ",".join([f"x{i + 1}" for i in range(X.shape[1])] + ["y"])
    np.savetxt(folder / "train.csv", np.column_stack([X_train, y_train]), delimiter=",", header=header,
               comments="", fmt=["%.17g"] * X.shape[1] + (["%d"] if task == "classify" else ["%.17g"]))
    np.save(folder / "test_X.npy", X_test)
    n_classes = int(len(np.unique(y))) if task == "classify" else 0
    return {"task": task, "y_test": y_test, "n_classes": n_classes, "rows": len(X), "features": X.shape[1],
            "train": len(X_train), "test": len(X_test), "scaling": "shared" if name in ONE_UNIT else "columns"}


def run_system(system: str, python: str, split: dict, seed: int, seconds: float, folder: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    started = time.time()
    args = [python, str(Path(__file__).resolve()), "--child", system, str(folder), split["task"], str(seed),
            str(split["n_classes"]), repr(started), repr(seconds), split["scaling"]]
    proc = subprocess.Popen(args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=2 * seconds + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the child and what it started
        proc.communicate()
        return {"error": f"killed after {2 * seconds + 60:g} s"}
    wall = time.time() - started
    if proc.returncode == NOT_INSTALLED:
        return {"missing": err.strip().splitlines()[-1]}
    if proc.returncode != 0:
        lines = err.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {proc.returncode}"}
    result = json.loads((folder / f"result-{system}.json").read_text())
    return {**result, "wall": wall, **score(split, folder / f"pred-{system}.npy")}


def score(split: dict, path: Path) -> dict:
    import numpy as np
    from sklearn.metrics import log_loss

    pred, y = np.load(path), split["y_test"]
    if split["task"] != "classify":
        return {"rmse": float(np.sqrt(np.mean((pred.reshape(-1) - y) ** 2)))}
    pred = np.clip(pred.reshape(len(y), split["n_classes"]), 1e-15, 1.0)
    pred = pred / pred.sum(axis=1, keepdims=True)
    return {"accuracy": float(np.mean(np.argmax(pred, axis=1) == y)),
            "log_loss": float(log_loss(y, pred, labels=list(range(split["n_classes"]))))}


def _cell(values: list, digits: int) -> str:
    if not values:
        return "-"
    median = statistics.median(values)
    if len(values) == 1:
        return f"{median:.{digits}f}"
    return f"{median:.{digits}f} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def markdown(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def head_to_head(key: str, ours: list[dict], theirs: list[dict]) -> str:
    """On how many splits fcnn_opt's ``key`` (a loss: log loss, RMSE) was lower than another
    system's, of the splits both finished, and how likely a difference as one-sided by chance:
    ``"2 of 3, p 0.75"`` (:func:`paired_p`). Runs are in the seeds' order, so run ``i`` of each
    system saw the same split. A median over a few splits compares one split's result with
    another's; this compares them split by split."""
    pairs = [(a[key], b[key]) for a, b in zip(ours, theirs, strict=True) if key in a and key in b]
    if not pairs:
        return "-"
    p = paired_p(pairs)
    return f"{sum(a < b for a, b in pairs)} of {len(pairs)}" + ("" if p is None else f", p {p:.2g}")


def paired_p(pairs: list[tuple[float, float]]) -> float | None:
    """The two-sided p-value of Wilcoxon's signed-rank test (exact) on the paired differences
    ``a - b``: the chance that two systems as good as each other differ as one-sidedly as these
    splits do. Equal pairs are left out; None where every pair is equal. With ``n`` splits it
    is never below ``2 / 2**n``: 0.25 with three, so no three splits can tell two systems
    apart; 0.0005 with twelve."""
    from scipy.stats import wilcoxon

    differences = [a - b for a, b in pairs if a != b]
    return float(wilcoxon(differences, method="exact").pvalue) if differences else None


def table_rows(task: str, systems: list[str], runs: dict[str, list[dict]],
               seconds: float) -> tuple[list[str], list[list[str]]]:
    metrics = [("accuracy", "test accuracy", 4), ("log_loss", "test log loss", 4)] if task == "classify" \
        else [("rmse", "test RMSE", 2)]
    loss_key = metrics[-1][0]
    paired = "fcnn_opt" in systems and len(systems) > 1
    headers = ["system", *[label for _, label, _ in metrics], *(["fcnn_opt lower"] if paired else []),
               "trials", "wall s", "notes"]
    rows = []
    for system in systems:
        good = [r for r in runs[system] if "wall" in r]
        bad = [r for r in runs[system] if "wall" not in r]
        against = ([head_to_head(loss_key, runs["fcnn_opt"], runs[system]) if system != "fcnn_opt" else ""]
                   if paired else [])
        if not good:
            first = bad[0]
            why = ("not installed (pip install 'fcnn_opt[bench]')" if "missing" in first
                   else "error: " + first["error"])
            rows.append([system, *["-"] * len(metrics), *against, "-", "-", why])
            continue
        trials = [r["trials"] for r in good if r["trials"] is not None]
        notes = sorted({r["note"] for r in good if r["note"]})
        over = [r["wall"] - seconds for r in good if r["wall"] > 1.1 * seconds]
        if over:  # a trial or the final fit that outlasted the budget
            notes.append(f"{len(over)} run(s) over the budget by up to {max(over):.0f} s")
        if bad:
            notes.append(f"{len(bad)} of {len(runs[system])} runs failed: {bad[0].get('error', bad[0].get('missing'))}")
        rows.append([system, *[_cell([r[key] for r in good], digits) for key, _, digits in metrics], *against,
                     _cell(trials, 0) if trials else "-", _cell([r["wall"] for r in good], 1), "; ".join(notes)])
    return headers, rows


def versions(python: str) -> str:
    code = ("import importlib.metadata as m, platform\n"
            f"out = ['python ' + platform.python_version()]\n"
            f"for p in {PACKAGES!r}:\n"
            "    try:\n        out.append(p + ' ' + m.version(p))\n"
            "    except m.PackageNotFoundError:\n        out.append(p + ' not installed')\n"
            "print(', '.join(out))")
    done = subprocess.run([python, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() or f"(could not ask {python}: {done.stderr.strip()[-200:]})"


def _choice(text: str, valid: tuple[str, ...], what: str) -> list[str]:
    chosen = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in chosen if t not in valid]
    if unknown or not chosen:
        print(f"tables.py: error: Unknown {what}(s) {unknown or chosen}. Valid {what}s: {', '.join(valid)}.",
              file=sys.stderr)
        sys.exit(2)
    return chosen


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"``, ``"0-11"`` or both (``"0-2,7"``) as the seeds they name, in order; [] for
    anything else (a word, a range that runs backwards, a seed named twice)."""
    seeds = []
    for item in (t.strip() for t in text.split(",")):
        low, dash, high = item.partition("-")
        if not (low.isdigit() and (not dash or high.isdigit())):
            return []
        seeds += range(int(low), int(high if dash else low) + 1)
    return seeds if seeds and len(set(seeds)) == len(seeds) else []


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        system, folder, task, seed, n_classes, started, seconds, scaling = argv[1:9]
        sys.exit(child(system, folder, task, int(seed), int(n_classes), float(started), float(seconds), scaling))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60, help="wall time of each run (default 60)")
    parser.add_argument("--seeds", default="0,1,2", help="split and search seeds: 0,1,2 or 0-11")
    parser.add_argument("--tables", default=",".join(TABLES), help=f"comma-separated: {', '.join(TABLES)}")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help=f"comma-separated: {', '.join(SYSTEMS)}")
    parser.add_argument("--python", default=sys.executable, help="the Python each system runs in")
    args = parser.parse_args(argv)
    tables = _choice(args.tables, TABLES, "table")
    systems = _choice(args.systems, SYSTEMS, "system")
    seeds = parse_seeds(args.seeds)
    if not seeds or args.seconds <= 0:
        print(f"tables.py: error: --seeds must be integers or ranges (0,1,2 or 0-11) and --seconds > 0, "
              f"got {args.seeds!r} and {args.seconds:g}.", file=sys.stderr)
        sys.exit(2)
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs (nproc), load average {load:.1f} at the start; "
          f"{args.seconds:g} s a run, seeds {', '.join(map(str, seeds))}")
    print(versions(args.python), flush=True)
    for name in tables:
        runs: dict[str, list[dict]] = {s: [] for s in systems}
        for seed in seeds:
            with tempfile.TemporaryDirectory(prefix=f"tables-{name}-") as tmp:
                split = prepare(name, seed, Path(tmp))
                for system in systems:
                    print(f"running {name}, seed {seed}: {system} ...", file=sys.stderr, flush=True)
                    folder = Path(tmp) / system
                    folder.mkdir()
                    for f in ("train.csv", "test_X.npy"):
                        os.link(Path(tmp) / f, folder / f)
                    runs[system].append(run_system(system, args.python, split, seed, args.seconds, folder))
        kind = (f"{split['n_classes']} classes" if split["task"] == "classify" else "regression")
        print(f"\n### {name}: {split['rows']:,} rows, {split['features']} features, {kind}; "
              f"{split['train']:,} training rows, {split['test']:,} test rows\n")
        print(markdown(*table_rows(split["task"], systems, runs, args.seconds)), flush=True)
    print(f"\nEach cell: the median over the seeds (min-max); fcnn_opt lower: on how many of the splits "
          f"fcnn_opt's test log loss (RMSE) was below that system's, split by split, and p, the two-sided "
          f"p-value of Wilcoxon's signed-rank test on those pairs (with {len(seeds)} split(s) never below "
          f"{2 / 2 ** len(seeds):.2g}; where p is large, the splits' luck explains the difference); wall s: "
          f"each run's whole process, started with {args.seconds:g} s of budget (imports, search, the final fit "
          f"and the predictions included).")


if __name__ == "__main__":
    main()
