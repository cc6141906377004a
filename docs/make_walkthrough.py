"""Make the images of docs/walkthrough.md: ``python docs/make_walkthrough.py``.

Retells the seed article with fcnn_opt: the circles data, one small model, the 2x3 grid
study (loss overlay, best and worst response surfaces, hyperparameter surface, the 2- and
8-unit boundaries as they learn), then a TPE study with median pruning, and fitted surrogates
with importances and their error bars on circles and on the spiral. Studies run in a temporary SQLite file; the PNGs go to
docs/images/ (matplotlib, Agg, 100 dpi). Prints the numbers the walkthrough quotes.
Takes about a minute on two cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's fcnn_opt, installed or not

import optuna  # noqa: E402

import fcnn_opt  # noqa: E402
from fcnn_opt.plots import (  # noqa: E402
    optuna_figure,
    plot_hp_surface,
    plot_importance_uncertainty,
    plot_learning,
    plot_loss_histories,
    plot_partial_dependence,
    plot_points,
    plot_response,
    surrogate_data,
)
from fcnn_opt.search.runner import run_study  # noqa: E402
from fcnn_opt.search.space import load_spec, parse_spec  # noqa: E402
from fcnn_opt.show.pictures import animated_png  # noqa: E402
from fcnn_opt.store.artifact_files import load_histories, load_snapshots  # noqa: E402

# The article's TPE sequel: studies/tpe.toml's space, with fewer trials to keep this quick.
TPE = {
    "study": {"name": "tpe", "sampler": "tpe", "pruner": "median", "n_trials": 60, "seed": 0},
    "dataset": {"name": "circles", "n_points": 2500},
    "params": {"epochs": 50, "lr": {"low": 1e-4, "high": 1e-1, "log": True},
               "n_layers": {"low": 1, "high": 3},
               "units": {"low": 2, "high": 64, "log": True, "per_layer": True},
               "activation": ["relu", "tanh", "sigmoid"],
               "optimizer": ["sgd", "adam", "rmsprop", "adagrad"], "batch_size": [32, 64, 128, 256]},
}


def _spiral_study(url: str):
    """The TPE study's space on the two-arm spiral, 100 trials of 100 epochs."""
    spec = {**TPE, "study": {**TPE["study"], "name": "spiral", "n_trials": 100},
            "dataset": {"name": "spiral", "n_points": 2500}, "params": {**TPE["params"], "epochs": 100}}
    run_study(parse_spec(spec), storage=url, progress=False, artifacts=False)
    return optuna.load_study(study_name="spiral", storage=url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "docs" / "images"), help="image folder")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    data = fcnn_opt.make_dataset("circles", n_points=2500)
    plot_points(data, save=out / "circles.png")

    config = fcnn_opt.TrainConfig(lib="numpy", dims=(8,), activation="relu", lr=0.005, epochs=50)
    result = fcnn_opt.train(data, config)
    plot_response(result, save=out / "one_model.png")
    print(f"one model: {result.description(['lib', 'units', 'optimizer'])}, "
          f"val_loss {result.val_loss[-1]:.3f}, val_accuracy {result.val_accuracy[-1]:.3f}")

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'walkthrough.db'}"
        run_study(load_spec(ROOT / "studies" / "seed_grid.toml"), storage=url, progress=False,
                  artifacts=False, snapshots=10)
        grid = optuna.load_study(study_name="seed_grid", storage=url)
        plot_loss_histories(grid, color_by="epochs", style_by="units", save=out / "grid_loss_overlay.png")
        ranked = sorted(grid.trials, key=lambda t: t.value)
        plot_response(ranked[0], study=grid, save=out / "grid_best.png")
        plot_response(ranked[-1], study=grid, save=out / "grid_worst.png")
        plot_hp_surface(grid, x="units", y="epochs", save=out / "grid_hp_surface.png")
        for t in ranked:
            print(f"grid trial {t.number}: {t.user_attrs['description']}: val_loss {t.value:.3f}, "
                  f"val_accuracy {load_histories(t)['val_accuracy'][-1]:.3f}")
        # The seed article's point as a film: 2 units cannot bend the boundary round, 8 can.
        by_units = {t.params["units"]: t for t in grid.trials if t.params["epochs"] == 100}
        plot_learning(grid, trials=[("2 hidden units", by_units[2]), ("8 hidden units", by_units[8])],
                      save=out / "grid_learning.png")
        for units in (2, 8):
            trial = by_units[units]
            frames = animated_png(fcnn_opt.make_dataset(**grid.user_attrs["dataset"]), load_snapshots(trial),
                                  "relu", [], load_histories(trial)["val_loss"],
                                  title=trial.user_attrs["description"], subtitle=f"trial {trial.number}")
            (out / f"grid_learning_{units}_units.png").write_bytes(frames)

        summary = run_study(parse_spec(TPE), storage=url, progress=False, artifacts=False)
        tpe = optuna.load_study(study_name="tpe", storage=url)
        optuna_figure(tpe, "intermediate_values", save=out / "tpe_intermediate_values.png")
        optuna_figure(tpe, "param_importances", save=out / "tpe_param_importances.png")
        plot_loss_histories(tpe, color_by="lr", style_by="activation", save=out / "tpe_loss_overlay.png")
        plot_hp_surface(tpe, x="lr", y="n_layers", save=out / "tpe_hp_surface.png")
        plot_response(tpe.best_trial, study=tpe, save=out / "tpe_best.png")
        c = summary.counts
        best = tpe.best_trial
        print(f"tpe: {c.complete} complete, {c.pruned} pruned, {c.failed} failed; best trial {best.number}: "
              f"val_loss {best.value:.3f}, val_accuracy {load_histories(best)['val_accuracy'][-1]:.3f}, "
              f"{best.params}")
        epochs_run = sum(t.user_attrs.get("epochs_run", 0) for t in tpe.trials)
        print(f"tpe: {epochs_run} epochs trained of {len(tpe.trials) * 50} without pruning")
        # Which hyperparameters matter, and how sure we are: a fitted surrogate on circles and
        # on the spiral, and importances with error bars.
        for name, study in (("circles", tpe), ("spiral", _spiral_study(url))):
            fitted = surrogate_data(study)
            print(f"surrogate on {name}: {fitted.kind}, CV R2 {fitted.quality.r2:.2f} on {fitted.quality.n} trials, "
                  f"trusted: {fitted.trusted}")
            plot_partial_dependence(study, save=out / f"{name}_partial_dependence.png")
            plot_importance_uncertainty(study, save=out / f"{name}_importances.png")
    for path in sorted(out.glob("*.png")):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
