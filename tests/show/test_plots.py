"""Every figure builds from a small real study (plotly and matplotlib, no display) and says
what it draws: the response surface is the stored network's, the overlay's legend names only
the hyperparameters that vary, the hyperparameter surface averages the right trials."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import optuna
import pytest
from conftest import cli_env
from PIL import Image

from fcnn_opt import TrainConfig, make_dataset, train
from fcnn_opt.plots import (
    PlotError,
    hp_surface_data,
    loss_histories_data,
    plot_hp_surface,
    plot_lib_comparison,
    plot_loss_histories,
    plot_points,
    plot_response,
    response_data,
    safe_name,
)


def is_png(path) -> bool:
    with Image.open(path) as image:
        return image.format == "PNG" and image.size[0] > 200 and image.size[1] > 150


def test_importing_the_plots_package_loads_no_plotting_library():
    code = ("import sys, fcnn_opt, fcnn_opt.plots; fcnn_opt.plots.plot_points; "
            "bad = [m for m in ('plotly', 'matplotlib', 'torch', 'tensorflow') if m in sys.modules]; "
            "assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], env=cli_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", ["circles", "xor", "prod", "spiral"])
def test_points_and_response_of_a_train_result_for_every_task(tmp_path, name):
    data = make_dataset(name, n_points=300)
    result = train(data, TrainConfig(dims=(4,), epochs=3))
    plot_points(data, save=tmp_path / "points.png")
    fig = plot_response(result, save=[tmp_path / "response.png", tmp_path / "response.html"])
    assert is_png(tmp_path / "points.png") and is_png(tmp_path / "response.png")
    assert (tmp_path / "response.html").stat().st_size > 1_000_000  # plotly.js is inside
    assert "lib: numpy, units: 2-4-" in fig.layout.title.text
    mpl = plot_response(result, backend="matplotlib")
    assert type(mpl).__name__ == "Figure" and len(mpl.axes) >= 3


def test_response_from_a_trial_is_the_stored_network(small_study):
    _, study = small_study
    trial = study.best_trial
    data = response_data(trial, study=study)
    assert data.task == "multiclass" and data.output.shape == (101, 101)
    assert set(np.unique(data.output[np.isfinite(data.output)])) <= {0.0, 1.0, 2.0, 3.0}
    assert f"trial {trial.number}" in data.subtitle and data.description == trial.user_attrs["description"]
    # Retrain the same configuration: the picture from stored weights is the model's own output.
    dataset = make_dataset(**trial.user_attrs["dataset_args"])
    result = train(dataset, TrainConfig.from_dict(trial.user_attrs["config"]))
    _, _, points = dataset.grid()
    expected = np.argmax(result.predict(points), axis=1).reshape(101, 101)
    assert np.mean(data.output == expected) > 0.999
    np.testing.assert_array_equal(data.X, dataset.X_train)


def test_response_refuses_what_it_cannot_draw(small_study):
    _, study = small_study
    with pytest.raises(PlotError, match="Cannot draw a response surface from str"):
        response_data("trial 3")
    bare = optuna.create_study()
    bare.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    with pytest.raises(PlotError, match="stores no dataset"):
        response_data(bare.trials[0])


def test_loss_overlay_colour_style_and_legend(small_study, tmp_path):
    _, study = small_study
    data = loss_histories_data(study, color_by="units", style_by="activation")
    finished = [t for t in study.trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(data.curves) == len(finished)
    assert data.color_levels == [2, 4, 8] and data.style_levels == ["relu", "tanh"]
    # The legend names the searched hyperparameters only (not optimizer, batch_size, ...).
    for curve in data.curves:
        keys = {part.split(":")[0] for part in curve.label.replace(" (pruned)", "").split(", ")}
        assert keys == {"lr", "units", "activation"}
    assert any(c.label.endswith("(pruned)") for c in data.curves)
    by_lr = loss_histories_data(study, color_by="lr")
    assert by_lr.color_range is not None and by_lr.color_log  # many values: a log colour scale
    fig = plot_loss_histories(study, color_by="lr", save=tmp_path / "loss.png")
    assert is_png(tmp_path / "loss.png") and len(fig.data) >= 2 * len(finished)
    with pytest.raises(PlotError, match="not a parameter of this study"):
        loss_histories_data(study, color_by="colour")
    with pytest.raises(PlotError, match="line styles can tell 4 apart"):
        loss_histories_data(study, color_by="units", style_by="lr")


def test_hp_surface_on_a_grid_is_the_grid_of_values(tmp_path, sqlite_url):
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    spec = parse_spec({"study": {"name": "grid", "sampler": "grid", "pruner": "none"},
                       "dataset": {"name": "xor", "n_points": 200},
                       "params": {"epochs": [2, 4], "units": [2, 4, 8]}})
    run_study(spec, storage=sqlite_url, progress=False, artifacts=False)
    study = optuna.load_study(study_name="grid", storage=sqlite_url)
    data = hp_surface_data(study, x="units", y="epochs")
    assert data.x.labels == ["2", "4", "8"] and data.y.labels == ["2", "4"]
    for t in study.trials:
        cell = data.z[data.y.labels.index(str(t.params["epochs"])), data.x.labels.index(str(t.params["units"]))]
        assert cell == pytest.approx(t.value)
    assert (data.counts == 1).all() and not data.binned
    units = next(m for m in data.marginals if m.axis.name == "units")
    by_units = {u: np.mean([t.value for t in study.trials if t.params["units"] == u]) for u in (2, 4, 8)}
    assert units.mean == pytest.approx([by_units[2], by_units[4], by_units[8]])
    plot_hp_surface(study, x="units", y="epochs", save=[tmp_path / "hp.png", tmp_path / "hp.html"])
    assert is_png(tmp_path / "hp.png")


def test_hp_surface_bins_sampled_floats(small_study, tmp_path):
    _, study = small_study
    data = hp_surface_data(study, x="lr", y="units")
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert data.x.binned and data.x.log and int(data.counts.sum()) == len(complete)
    finite = data.z[np.isfinite(data.z)]
    assert finite.min() >= min(t.value for t in complete) - 1e-12
    default = hp_surface_data(study)  # the two most important hyperparameters
    assert {default.x.name, default.y.name} <= {"lr", "units", "activation"}
    fig = plot_hp_surface(study, backend="matplotlib", save=tmp_path / "hp.png")
    assert is_png(tmp_path / "hp.png") and len(fig.axes) >= 4
    with pytest.raises(PlotError, match="two different"):
        hp_surface_data(study, x="lr", y="lr")


def test_library_comparison(tmp_path, sqlite_url):
    pytest.importorskip("torch")
    from fcnn_opt.search.runner import run_study
    from fcnn_opt.search.space import parse_spec

    spec = parse_spec({"study": {"name": "libs", "sampler": "grid", "pruner": "none"},
                       "dataset": {"name": "circles", "n_points": 200},
                       "params": {"lib": ["numpy", "torch"], "epochs": 3, "units": [4]}})
    run_study(spec, storage=sqlite_url, progress=False, artifacts=False)
    study = optuna.load_study(study_name="libs", storage=sqlite_url)
    fig = plot_lib_comparison(study, save=[tmp_path / "libs.png", tmp_path / "libs.html"])
    assert is_png(tmp_path / "libs.png")
    assert {t.name for t in fig.data if t.type == "bar"} == {"mean seconds per epoch"}


def test_library_comparison_needs_two_libraries(small_study):
    _, study = small_study
    with pytest.raises(PlotError, match="one library only"):
        plot_lib_comparison(study)


@pytest.mark.parametrize("name,expected", [
    ("seed_grid", "seed_grid"), ("../../etc/passwd", "__.._etc_passwd"), ("..", "_"),
    ("a b/c\\d:e", "a_b_c_d_e"), ("", "study"), (".hidden", "_hidden"),
])
def test_safe_name_never_leaves_its_folder(name, expected):
    assert safe_name(name) == expected
    assert "/" not in safe_name(name) and safe_name(name) not in (".", "..")


def test_unknown_backend_and_file_type(tmp_path):
    data = make_dataset("xor", n_points=100)
    with pytest.raises(PlotError, match="backend must be one of"):
        plot_points(data, backend="bokeh")
    with pytest.raises(PlotError, match="use a .png or .html path"):
        plot_points(data, save=tmp_path / "x.svg")
