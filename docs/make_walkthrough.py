"""Make the images of docs/walkthrough.md: ``python docs/make_walkthrough.py``.

Retells the seed article with fcnn_opt: the circles data, one small model, the 2x3 grid
study (loss overlay, best and worst response surfaces, hyperparameter surface), then a TPE
study with median pruning. Studies run in a temporary SQLite file; the PNGs go to
docs/images/ (matplotlib, Agg, 100 dpi). Prints the numbers the walkthrough quotes.
Takes about two minutes on one core.
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
    plot_loss_histories,
    plot_points,
    plot_response,
)
from fcnn_opt.search.runner import run_study  # noqa: E402
from fcnn_opt.search.space import load_spec, parse_spec  # noqa: E402

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
                  artifacts=False)
        grid = optuna.load_study(study_name="seed_grid", storage=url)
        plot_loss_histories(grid, color_by="epochs", style_by="units", save=out / "grid_loss_overlay.png")
        ranked = sorted(grid.trials, key=lambda t: t.value)
        plot_response(ranked[0], study=grid, save=out / "grid_best.png")
        plot_response(ranked[-1], study=grid, save=out / "grid_worst.png")
        plot_hp_surface(grid, x="units", y="epochs", save=out / "grid_hp_surface.png")
        for t in ranked:
            print(f"grid trial {t.number}: {t.user_attrs['description']}: val_loss {t.value:.3f}, "
                  f"val_accuracy {t.user_attrs['val_accuracy'][-1]:.3f}")

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
              f"val_loss {best.value:.3f}, val_accuracy {best.user_attrs['val_accuracy'][-1]:.3f}, "
              f"{best.params}")
        epochs_run = sum(t.user_attrs.get("epochs_run", 0) for t in tpe.trials)
        print(f"tpe: {epochs_run} epochs trained of {len(tpe.trials) * 50} without pruning")
    for path in sorted(out.glob("*.png")):
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {path.stat().st_size // 1024} KB")
    print(f"done in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
